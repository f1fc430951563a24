#pragma once
// Where the bundled demos live (model, SAE, corpus sample) and where a demo's feature database
// is or will be built: next to the demo when that folder is writable, else in the user's data
// folder. Two demos: the real one (SmolLM2-135M-Instruct, its GGUF file installed at set-up by
// packaging/install-models.sh, with the SAE Monoscope trained on it) and the toy one (a 6-layer
// GPT-2 trained by Monoscope, used by the fast tests).
#include <QString>

namespace monoscope::ui {

struct DemoPaths {
  QString root, model, sae, corpus, database;
  qint64 tokens = 0;  // tokens the database is built from
  bool real = false;  // the SmolLM2 demo
  // The database exists and was built from this SAE (its recorded fingerprint matches the
  // weights now in sae/), so a demo whose SAE was replaced rebuilds its database.
  bool databaseExists() const;
};

// Search order: $MONOSCOPE_DEMO, <exe>/../share/monoscope/{smollm2,demo} (installed), the source
// tree's data/{smollm2,demo}. The real demo is taken when its model is installed, unless `toy`.
// Returns an empty root when none is found.
DemoPaths findDemo(const QString& source_data = {}, bool toy = false);

// Tokens each demo's database is built from (the same as packaging/demo.sh for the toy one).
constexpr qint64 kToyDemoIndexTokens = 1048576;
constexpr qint64 kRealDemoIndexTokens = 524288;

}  // namespace monoscope::ui
