#pragma once
// Where the bundled demo lives (model, SAE, corpus sample) and where its feature database is
// or will be built: next to the demo when that folder is writable, else in the user's data
// folder.
#include <QString>

namespace monoscope::ui {

struct DemoPaths {
  QString root, model, sae, corpus, database;
  bool databaseExists() const;
};

// Search order: $MONOSCOPE_DEMO, <exe>/../share/monoscope/demo (installed), the source tree's
// data/demo (a build folder). Returns an empty root when none has a model.
DemoPaths findDemo(const QString& source_demo = {});

// Tokens the demo's database is built from (the same as packaging/demo.sh).
constexpr qint64 kDemoIndexTokens = 1048576;

}  // namespace monoscope::ui
