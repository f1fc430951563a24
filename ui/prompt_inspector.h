#pragma once
// The prompt inspector: a text's tokens highlighted for the selected feature; per token its top
// features; the features on the last token (the feature-completeness probe); and a contrastive
// search against a negative prompt; dense features listed last unless unticked. All model work
// runs on the inference worker.
#include <QWidget>

#include "api/engine.h"

class QCheckBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QTableView;

namespace monoscope::ui {

class FeatureScoreModel;
class Session;
class TokenTextView;

class PromptInspector : public QWidget {
  Q_OBJECT
 public:
  explicit PromptInspector(Session* session, QWidget* parent = nullptr);
  QSize sizeHint() const override { return QSize(800, 250); }  // the main window's first layout

  void setPrompt(const QString& text);
  void inspect();      // tokenise + encode the prompt
  void contrast();     // contrastive search against the negative prompt
  void showToken(int token);

  TokenTextView* tokens() const { return tokens_; }
  FeatureScoreModel* tokenModel() const { return token_model_; }
  FeatureScoreModel* lastTokenModel() const { return last_model_; }
  FeatureScoreModel* contrastModel() const { return contrast_model_; }
  QCheckBox* denseLastBox() const { return dense_last_; }
  const core::EncodedText& encoded() const { return encoded_; }

 Q_SIGNALS:
  void inspected();   // tokens and features are shown
  void contrasted();

 private:
  void highlightFeature(qint64 feature);
  QTableView* makeTable(FeatureScoreModel* model);

  Session* session_;
  QPlainTextEdit* prompt_;
  QLineEdit* negative_;
  QPushButton* inspect_;
  QPushButton* contrast_;
  QCheckBox* dense_last_;
  TokenTextView* tokens_;
  QLabel* status_;
  FeatureScoreModel* token_model_;
  FeatureScoreModel* last_model_;
  FeatureScoreModel* contrast_model_;
  core::EncodedText encoded_;
  QString encoded_text_;
  int token_ = -1;
};

}  // namespace monoscope::ui
