#pragma once
// File > Open from Hugging Face Cache: the models and dictionaries the cache holds (offline;
// core/api/hub.h), a model and optionally a dictionary chosen together as one workspace.
#include <QDialog>
#include <QString>

class QLabel;
class QListWidget;

namespace monoscope::ui {

class HubDialog : public QDialog {
  Q_OBJECT
 public:
  explicit HubDialog(QWidget* parent = nullptr);
  QString modelPath() const;       // the chosen model's folder or .gguf file ("" when none)
  QString dictionaryPath() const;  // the chosen dictionary's folder ("" when none)
  QListWidget* models() const { return models_; }
  QListWidget* dictionaries() const { return dictionaries_; }

 private:
  QListWidget *models_, *dictionaries_;
  QLabel* where_;
};

}  // namespace monoscope::ui
