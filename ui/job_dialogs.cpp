#include "job_dialogs.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLineEdit>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>

namespace monoscope::ui {

PathField::PathField(Kind kind, const QString& value, const QString& filter, QWidget* parent)
    : QWidget(parent), edit_(new QLineEdit(value, this)) {
  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(edit_, 1);
  auto* browse = new QPushButton(tr("Browse..."), this);
  layout->addWidget(browse);
  connect(browse, &QPushButton::clicked, this, [this, kind, filter]() {
    QString chosen;
    if (kind == Folder) chosen = QFileDialog::getExistingDirectory(this, tr("Choose a folder"), edit_->text());
    else if (kind == OpenFile) chosen = QFileDialog::getOpenFileName(this, tr("Choose a file"), edit_->text(), filter);
    else chosen = QFileDialog::getSaveFileName(this, tr("Choose a file"), edit_->text(), filter);
    if (!chosen.isEmpty()) edit_->setText(chosen);
  });
}

QString PathField::path() const { return edit_->text().trimmed(); }

namespace {

// Runs the dialog until the options validate or the user gives up.
template <typename Options>
std::optional<Options> runForm(QDialog& dialog, const std::function<Options()>& read) {
  while (dialog.exec() == QDialog::Accepted) {
    try {
      Options o = read();
      o.validate();
      return o;
    } catch (const std::exception& e) {
      QMessageBox::warning(&dialog, dialog.windowTitle(), QString::fromUtf8(e.what()));
    }
  }
  return std::nullopt;
}

QFormLayout* formOf(QDialog& dialog) {
  auto* outer = new QVBoxLayout(&dialog);
  auto* form = new QFormLayout;
  outer->addLayout(form);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, &dialog);
  QObject::connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
  QObject::connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
  outer->addWidget(buttons);
  dialog.setMinimumWidth(560);
  return form;
}

QSpinBox* countBox(qint64 value, qint64 lo, qint64 hi) {
  auto* box = new QSpinBox;
  box->setRange(static_cast<int>(lo), static_cast<int>(std::min<qint64>(hi, 2000000000)));
  box->setValue(static_cast<int>(value));
  box->setGroupSeparatorShown(true);
  return box;
}

}  // namespace

std::optional<core::IndexOptions> askIndexOptions(QWidget* parent, const QString& model_dir, const QString& sae_dir) {
  QDialog dialog(parent);
  dialog.setWindowTitle(QObject::tr("Build feature database"));
  auto* form = formOf(dialog);
  core::IndexOptions defaults;
  auto* model = new PathField(PathField::Folder, model_dir);
  auto* sae = new PathField(PathField::Folder, sae_dir);
  auto* corpus = new PathField(PathField::OpenFile, {}, QObject::tr("Corpus (*.safetensors *.txt);;All files (*)"));
  auto* out = new PathField(PathField::SaveFile, "features.db", QObject::tr("Feature database (*.db)"));
  auto* tokens = countBox(defaults.tokens, 1, 2000000000);
  auto* intervals = countBox(defaults.intervals, 1, 100);
  auto* per_interval = countBox(defaults.per_interval, 1, 1000);
  auto* top = countBox(defaults.top, 1, 1000);
  auto* seed = countBox(0, 0, 1 << 30);
  form->addRow(QObject::tr("Model folder"), model);
  form->addRow(QObject::tr("SAE folder"), sae);
  form->addRow(QObject::tr("Corpus (token shard, corpus folder or text)"), corpus);
  form->addRow(QObject::tr("Tokens to scan"), tokens);
  form->addRow(QObject::tr("Activation intervals"), intervals);
  form->addRow(QObject::tr("Examples per interval"), per_interval);
  form->addRow(QObject::tr("Top examples"), top);
  form->addRow(QObject::tr("Seed"), seed);
  form->addRow(QObject::tr("Output database"), out);
  return runForm<core::IndexOptions>(dialog, [&]() {
    core::IndexOptions o;
    o.model_dir = model->path().toStdString();
    o.sae_dir = sae->path().toStdString();
    o.corpus = corpus->path().toStdString();
    o.out = out->path().toStdString();
    o.tokens = tokens->value();
    o.intervals = intervals->value();
    o.per_interval = per_interval->value();
    o.top = top->value();
    o.seed = static_cast<std::uint64_t>(seed->value());
    return o;
  });
}

namespace {
// The endpoint fields both LLM jobs show (URL and model remembered, the key never) and the
// feature-id list they take.
struct LlmFields {
  QLineEdit* url;
  QLineEdit* model;
  QLineEdit* key;
  QLineEdit* features;

  LlmFields(QFormLayout* form, const QString& features_hint) {
    QSettings settings;
    url = new QLineEdit(settings.value("llm/base_url", "http://127.0.0.1:8080/v1").toString());
    model = new QLineEdit(settings.value("llm/model").toString());
    key = new QLineEdit(qEnvironmentVariable("MONOSCOPE_LLM_API_KEY"));
    key->setEchoMode(QLineEdit::Password);
    key->setToolTip(QObject::tr("Used for this job only; never saved (set MONOSCOPE_LLM_API_KEY to prefill it)"));
    features = new QLineEdit;
    features->setPlaceholderText(features_hint);
    form->addRow(QObject::tr("LLM base URL"), url);
    form->addRow(QObject::tr("LLM model"), model);
    form->addRow(QObject::tr("API key"), key);
    form->addRow(QObject::tr("Features"), features);
  }
  core::LlmEndpoint endpoint() const {
    core::LlmEndpoint ep;
    ep.base_url = url->text().trimmed().toStdString();
    ep.model = model->text().trimmed().toStdString();
    ep.api_key = key->text().toStdString();
    return ep;
  }
  std::vector<std::int64_t> featureIds() const {
    std::vector<std::int64_t> ids;
    for (const auto& part : features->text().split(',', Qt::SkipEmptyParts)) {
      bool ok = false;
      const qint64 id = part.trimmed().toLongLong(&ok);
      if (!ok || id < 0) throw std::runtime_error("features: \"" + part.trimmed().toStdString() + "\" is not a feature id");
      ids.push_back(id);
    }
    return ids;
  }
  void remember() const {
    QSettings settings;
    settings.setValue("llm/base_url", url->text().trimmed());  // the key is never stored
    settings.setValue("llm/model", model->text().trimmed());
  }
};

struct ScoreForm {
  core::ScoreOptions options;
  void validate() const {
    if (options.scorer == "llm" && options.llm.base_url.empty())
      throw std::runtime_error("llm.base_url is empty: give the endpoint's base URL, e.g. http://127.0.0.1:8080/v1");
  }
};
}  // namespace

std::optional<core::ScoreOptions> askScoreOptions(QWidget* parent) {
  QDialog dialog(parent);
  dialog.setWindowTitle(QObject::tr("Score specificity"));
  auto* form = formOf(dialog);
  auto* scorer = new QComboBox;
  scorer->addItem(QObject::tr("concept (rule-based keyword matcher)"), "concept");
  scorer->addItem(QObject::tr("llm (OpenAI-compatible endpoint)"), "llm");
  form->addRow(QObject::tr("Scorer"), scorer);
  const LlmFields llm(form, QObject::tr("all alive features, or ids such as 3, 17, 42"));
  auto result = runForm<ScoreForm>(dialog, [&]() {
    ScoreForm f;
    f.options.scorer = scorer->currentData().toString().toStdString();
    f.options.llm = llm.endpoint();
    f.options.features = llm.featureIds();
    return f;
  });
  if (!result) return std::nullopt;
  llm.remember();
  return result->options;
}

namespace {
struct ExplainForm {
  core::ExplainOptions options;
  void validate() const {
    if (options.llm.base_url.empty())
      throw std::runtime_error("llm.base_url is empty: give the endpoint's base URL, e.g. http://127.0.0.1:8080/v1");
    if (options.llm.model.empty()) throw std::runtime_error("llm.model is empty: give the model name the server expects");
  }
};
}  // namespace

std::optional<core::ExplainOptions> askExplainOptions(QWidget* parent) {
  QDialog dialog(parent);
  dialog.setWindowTitle(QObject::tr("Explain features with an LLM"));
  auto* form = formOf(dialog);
  const LlmFields llm(form, QObject::tr("all alive features (densest first), or ids such as 3, 17, 42"));
  core::ExplainOptions defaults;
  auto* top = countBox(defaults.top_examples, 1, 100);
  auto* per_interval = countBox(defaults.interval_examples, 0, 20);
  auto* redo = new QCheckBox(QObject::tr("Explain again features this model has already explained"));
  form->addRow(QObject::tr("Top examples shown"), top);
  form->addRow(QObject::tr("Examples per interval"), per_interval);
  form->addRow(QString(), redo);
  auto result = runForm<ExplainForm>(dialog, [&]() {
    ExplainForm f;
    f.options.llm = llm.endpoint();
    f.options.features = llm.featureIds();
    f.options.top_examples = static_cast<int>(top->value());
    f.options.interval_examples = static_cast<int>(per_interval->value());
    f.options.redo = redo->isChecked();
    return f;
  });
  if (!result) return std::nullopt;
  llm.remember();
  return result->options;
}

std::optional<core::SaeTrainingOptions> askTrainingOptions(QWidget* parent, const QString& model_dir) {
  QDialog dialog(parent);
  dialog.setWindowTitle(QObject::tr("Train an SAE"));
  auto* form = formOf(dialog);
  core::SaeTrainingOptions defaults;
  auto* model = new PathField(PathField::Folder, model_dir);
  auto* hook = new QLineEdit("blocks.3.hook_resid_post");
  auto* corpus = new PathField(PathField::OpenFile, {}, QObject::tr("Corpus (*.safetensors);;All files (*)"));
  auto* architecture = new QComboBox;
  architecture->addItems({"standard", "topk", "batchtopk"});
  auto* d_sae = countBox(4096, 1, 1 << 24);
  auto* tokens = countBox(2000000, 1, 2000000000);
  auto* l1 = new QDoubleSpinBox;
  l1->setRange(0, 1000);
  l1->setValue(defaults.l1_coefficient);
  auto* k = countBox(defaults.k, 1, 4096);
  auto* out = new PathField(PathField::Folder, "sae-out");
  form->addRow(QObject::tr("Model folder"), model);
  form->addRow(QObject::tr("Hook"), hook);
  form->addRow(QObject::tr("Corpus (token shard or corpus folder)"), corpus);
  form->addRow(QObject::tr("Architecture"), architecture);
  form->addRow(QObject::tr("Features (d_sae)"), d_sae);
  form->addRow(QObject::tr("Training tokens"), tokens);
  form->addRow(QObject::tr("L1 coefficient (standard)"), l1);
  form->addRow(QObject::tr("k (topk, batchtopk)"), k);
  form->addRow(QObject::tr("Output folder"), out);
  return runForm<core::SaeTrainingOptions>(dialog, [&]() {
    core::SaeTrainingOptions o;
    o.model_dir = model->path().toStdString();
    o.hook = hook->text().trimmed().toStdString();
    o.corpus = corpus->path().toStdString();
    o.architecture = architecture->currentText().toStdString();
    o.d_sae = d_sae->value();
    o.tokens = tokens->value();
    o.l1_coefficient = l1->value();
    o.k = k->value();
    o.out = out->path().toStdString();
    return o;
  });
}

}  // namespace monoscope::ui
