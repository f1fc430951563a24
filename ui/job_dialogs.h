#pragma once
// Forms that start the long jobs from the app: build a feature database (index), score
// specificity (concept matcher or an LLM endpoint), explain features with an LLM, train an SAE. Each returns the job's
// options, validated by core (the message names the field).
#include <QDialog>
#include <optional>

#include "api/indexer.h"
#include "api/scoring.h"
#include "api/training.h"

class QFormLayout;
class QLineEdit;

namespace monoscope::ui {

std::optional<core::IndexOptions> askIndexOptions(QWidget* parent, const QString& model_dir, const QString& sae_dir);
std::optional<core::ScoreOptions> askScoreOptions(QWidget* parent);
std::optional<core::ExplainOptions> askExplainOptions(QWidget* parent);
std::optional<core::SaeTrainingOptions> askTrainingOptions(QWidget* parent, const QString& model_dir);

// A line edit with a Browse button choosing a folder or a file, for these forms.
class PathField : public QWidget {
  Q_OBJECT
 public:
  enum Kind { Folder, OpenFile, SaveFile };
  PathField(Kind kind, const QString& value, const QString& filter = {}, QWidget* parent = nullptr);
  QString path() const;

 private:
  QLineEdit* edit_;
};

}  // namespace monoscope::ui
