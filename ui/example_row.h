#pragma once
// One example of a feature: its context with token-level highlighting, and 0-3 buttons that
// store a person's specificity label (scorer `manual`); other scorers' scores are listed.
#include <QWidget>

#include "api/feature_db.h"

class QButtonGroup;
class QLabel;

namespace monoscope::ui {

class TokenTextView;

class ExampleRow : public QWidget {
  Q_OBJECT
 public:
  explicit ExampleRow(QWidget* parent = nullptr);
  // Shows another example (rows are reused from page to page: creating widgets is the slow part).
  void setExample(const core::Example& example, float scale, bool editable);
  std::int64_t exampleId() const { return id_; }
  int manualLabel() const;  // -1 when unlabelled
  TokenTextView* text() const { return text_; }
  QButtonGroup* labelButtons() const { return buttons_; }

 Q_SIGNALS:
  // score -1 removes the label
  void labelChosen(std::int64_t example, int score);

 private:
  std::int64_t id_ = -1;
  QLabel* value_;
  TokenTextView* text_;
  QButtonGroup* buttons_;
  QLabel* others_;
  int label_ = -1;
};

}  // namespace monoscope::ui
