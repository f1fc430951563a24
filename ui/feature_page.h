#pragma once
// The feature page: id, editable (versioned) explanation, density and activations; the
// activation histogram with intervals coloured by specificity; top examples and each interval's
// sample with token highlighting and 0-3 label buttons; logit effects; clickable neighbours.
#include <QWidget>
#include <optional>

#include "api/feature_db.h"

class QComboBox;
class QCustomPlot;
class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;
class QVBoxLayout;

namespace monoscope::ui {

class ActivationHistogram;
class ExampleRow;
class Session;

class FeaturePage : public QWidget {
  Q_OBJECT
 public:
  explicit FeaturePage(Session* session, QWidget* parent = nullptr);
  QSize sizeHint() const override { return QSize(900, 620); }  // the main window's first layout

  void showFeature(qint64 feature);  // reads the page from the session's database
  qint64 feature() const { return page_ ? page_->summary.id : -1; }
  const std::optional<core::FeaturePage>& page() const { return page_; }

  // Examples section: 0 = top activations, k + 1 = interval k.
  void showSection(int section);
  int section() const;
  QList<ExampleRow*> exampleRows() const;
  QListWidget* neighbourList() const { return neighbours_; }
  QCustomPlot* histogramPlot() const { return plot_; }
  QCustomPlot* logitPlot() const { return logit_plot_; }
  QLineEdit* explanationEdit() const { return explanation_; }
  void saveExplanation();

 private:
  void buildExamples();
  void fillLogits();
  void recordLabel(std::int64_t example, int score);
  void fillNeighbours();
  void clear(const QString& message);

  Session* session_;
  std::optional<core::FeaturePage> page_;
  QLabel* title_;
  QLabel* stats_;
  QLineEdit* explanation_;
  QPushButton* save_;
  QPushButton* steer_;
  QCustomPlot* plot_;
  ActivationHistogram* histogram_;
  QComboBox* sections_;
  QWidget* examples_;
  QVBoxLayout* examples_layout_;
  QList<ExampleRow*> rows_;  // reused from page to page
  QListWidget* logits_up_;
  QListWidget* logits_down_;
  QCustomPlot* logit_plot_;
  QListWidget* neighbours_;
};

}  // namespace monoscope::ui
