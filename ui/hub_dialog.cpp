#include "hub_dialog.h"

#include <QDialogButtonBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QPushButton>
#include <QVBoxLayout>

#include "api/hub.h"

namespace monoscope::ui {

namespace {
QString pathOf(const QListWidget* list) {
  const auto* item = list->currentItem();
  return item != nullptr ? item->data(Qt::UserRole).toString() : QString();
}
}  // namespace

HubDialog::HubDialog(QWidget* parent) : QDialog(parent) {
  setWindowTitle(tr("Open from the Hugging Face cache"));
  models_ = new QListWidget(this);
  dictionaries_ = new QListWidget(this);
  where_ = new QLabel(this);
  where_->setWordWrap(true);
  const auto entries = core::listHubCache();
  for (const auto& e : entries) {
    auto* item = new QListWidgetItem(QString::fromStdString(e.spec + "  (" + e.format + ")"));
    item->setData(Qt::UserRole, QString::fromStdString(e.path));
    item->setToolTip(QString::fromStdString(e.path));
    (e.kind == "model" ? models_ : dictionaries_)->addItem(item);
  }
  where_->setText(entries.empty() ? tr("Nothing Monoscope opens was found in %1 (it never downloads: copy a cache "
                                       "made with huggingface-cli download).")
                                        .arg(QString::fromStdString(core::hubCacheLocation()))
                                  : tr("In %1. Choose a model and, optionally, one of its dictionaries.")
                                        .arg(QString::fromStdString(core::hubCacheLocation())));
  if (models_->count() > 0) models_->setCurrentRow(0);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Open | QDialogButtonBox::Cancel, this);
  buttons->button(QDialogButtonBox::Open)->setEnabled(models_->count() > 0);
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  auto* columns = new QHBoxLayout;
  for (auto [title, list] : {std::pair{tr("Models"), models_}, std::pair{tr("Dictionaries"), dictionaries_}}) {
    auto* col = new QVBoxLayout;
    col->addWidget(new QLabel(title, this));
    col->addWidget(list);
    columns->addLayout(col);
  }
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(where_);
  layout->addLayout(columns);
  layout->addWidget(buttons);
  resize(900, 500);
}

QString HubDialog::modelPath() const { return pathOf(models_); }
QString HubDialog::dictionaryPath() const { return pathOf(dictionaries_); }

}  // namespace monoscope::ui
