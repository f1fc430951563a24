#include "steering_panel.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QSplitter>
#include <QTableView>
#include <QTextBrowser>
#include <QVBoxLayout>
#include <QDateTime>

#include "feature_score_model.h"
#include "session.h"
#include "steering_export.h"
#include "steering_model.h"

namespace monoscope::ui {

namespace {
QString html(const std::string& text) {
  return QString::fromStdString(text).toHtmlEscaped().replace('\n', "<br>");
}
std::string joined(const std::vector<std::string>& pieces, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n && i < pieces.size(); ++i) s += pieces[i];
  return s;
}
}  // namespace

SteeringPanel::SteeringPanel(Session* session, QWidget* parent)
    : QWidget(parent), session_(session), model_(new SteeringModel(this)) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  auto* top = new QHBoxLayout;
  // Features and their values.
  auto* features_box = new QGroupBox(tr("Features (value x max activation, or absolute; negative allowed)"), this);
  auto* fl = new QVBoxLayout(features_box);
  table_ = new QTableView(features_box);
  table_->setModel(model_);
  table_->verticalHeader()->hide();
  table_->horizontalHeader()->setStretchLastSection(true);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setMinimumHeight(60);
  table_->setMaximumHeight(120);  // the completions below matter most
  fl->addWidget(table_);
  auto* fbar = new QHBoxLayout;
  auto* add_edit = new QLineEdit(features_box);
  add_edit->setPlaceholderText(tr("feature id"));
  add_edit->setMaximumWidth(110);
  auto* add = new QPushButton(tr("Add"), features_box);
  auto* remove = new QPushButton(tr("Remove"), features_box);
  fbar->addWidget(add_edit);
  fbar->addWidget(add);
  fbar->addWidget(remove);
  fbar->addStretch();
  fl->addLayout(fbar);
  top->addWidget(features_box, 3);
  connect(add, &QPushButton::clicked, this, [this, add_edit]() {
    bool ok = false;
    const qint64 id = add_edit->text().trimmed().toLongLong(&ok);
    if (ok && id >= 0) addFeature(id);
    add_edit->clear();
  });
  connect(add_edit, &QLineEdit::returnPressed, add, &QPushButton::click);
  connect(remove, &QPushButton::clicked, this, [this]() { model_->removeRow(table_->currentIndex().row()); });

  // Settings.
  auto* settings = new QGroupBox(tr("Settings"), this);
  auto* form = new QGridLayout(settings);  // two columns of settings, three rows
  mode_ = new QComboBox(settings);
  mode_->addItem(tr("clamp (keep SAE error)"), int(core::SteerMode::Clamp));
  mode_->addItem(tr("add (value x decoder row)"), int(core::SteerMode::Add));
  mode_->addItem(tr("ablate (clamp to 0)"), int(core::SteerMode::Ablate));
  positions_ = new QComboBox(settings);
  positions_->addItem(tr("all positions"), int(core::SteerPositions::All));
  positions_->addItem(tr("prompt only"), int(core::SteerPositions::Prompt));
  positions_->addItem(tr("generated only"), int(core::SteerPositions::Generated));
  temperature_ = new QDoubleSpinBox(settings);
  temperature_->setRange(0, 5);
  temperature_->setSingleStep(0.1);
  temperature_->setValue(0.7);
  top_p_ = new QDoubleSpinBox(settings);
  top_p_->setRange(0.01, 1);
  top_p_->setSingleStep(0.05);
  top_p_->setValue(0.95);
  seed_ = new QSpinBox(settings);
  seed_->setRange(0, 1 << 30);
  seed_->setValue(7);
  max_tokens_ = new QSpinBox(settings);
  max_tokens_->setRange(1, 4096);
  max_tokens_->setValue(32);
  const std::pair<QString, QWidget*> fields[] = {{tr("Mode"), mode_},       {tr("Temperature"), temperature_},
                                                 {tr("Positions"), positions_}, {tr("Top-p"), top_p_},
                                                 {tr("Seed"), seed_},           {tr("Max tokens"), max_tokens_}};
  for (int i = 0; i < 6; ++i) {
    form->addWidget(new QLabel(fields[i].first, settings), i / 2, (i % 2) * 2);
    form->addWidget(fields[i].second, i / 2, (i % 2) * 2 + 1);
  }
  top->addWidget(settings, 2);
  layout->addLayout(top);

  auto* prompt_bar = new QHBoxLayout;
  prompt_ = new QPlainTextEdit(this);
  prompt_->setPlaceholderText(tr("Prompt"));
  prompt_->setMaximumHeight(60);
  prompt_bar->addWidget(prompt_, 1);
  auto* buttons = new QVBoxLayout;
  generate_ = new QPushButton(tr("Generate"), this);
  generate_->setDefault(true);
  generate_->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_G));
  cancel_ = new QPushButton(tr("Cancel"), this);
  cancel_->setEnabled(false);
  buttons->addWidget(generate_);
  buttons->addWidget(cancel_);
  prompt_bar->addLayout(buttons);
  layout->addLayout(prompt_bar);
  connect(generate_, &QPushButton::clicked, this, &SteeringPanel::generate);
  connect(cancel_, &QPushButton::clicked, this, &SteeringPanel::cancel);

  auto* split = new QSplitter(Qt::Horizontal, this);
  const char* titles[2] = {"Default", "Steered"};
  for (int r = 0; r < 2; ++r) {
    auto* box = new QGroupBox(tr(titles[r]), split);
    auto* bl = new QVBoxLayout(box);
    bl->setContentsMargins(2, 2, 2, 2);
    outputs_[r] = new QTextBrowser(box);
    outputs_[r]->setObjectName(r == 0 ? "default_output" : "steered_output");
    outputs_[r]->setMinimumHeight(50);
    bl->addWidget(outputs_[r]);
  }
  auto* side = new QWidget(split);
  auto* sl = new QVBoxLayout(side);
  sl->setContentsMargins(0, 0, 0, 0);
  sl->addWidget(new QLabel(tr("History"), side));
  history_ = new QListWidget(side);
  sl->addWidget(history_, 1);
  auto* export_button = new QPushButton(tr("Export..."), side);
  export_button->setToolTip(tr("Save the shown run as Markdown (.md) or JSON (.json)"));
  sl->addWidget(export_button);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 3);
  split->setStretchFactor(2, 1);
  layout->addWidget(split, 1);
  connect(history_, &QListWidget::currentRowChanged, this, &SteeringPanel::showHistoryRun);
  connect(export_button, &QPushButton::clicked, this, [this]() {
    const QString path = QFileDialog::getSaveFileName(this, tr("Export steering run"),
                                                      QStringLiteral("steering-run-%1.md").arg(current_.id),
                                                      tr("Markdown (*.md);;JSON (*.json)"));
    if (!path.isEmpty()) exportRun(path);
  });

  // Attribution of the divergence.
  auto* attr_bar = new QHBoxLayout;
  attribute_ = new QPushButton(tr("Attribute divergence"), this);
  attribute_->setToolTip(tr("Attribute logit(target) - logit(versus) after the common prefix to features"));
  target_ = new QLineEdit(this);
  target_->setPlaceholderText(tr("target token"));
  versus_ = new QLineEdit(this);
  versus_->setPlaceholderText(tr("versus token"));
  attr_bar->addWidget(attribute_);
  attr_bar->addWidget(target_);
  attr_bar->addWidget(versus_);
  layout->addLayout(attr_bar);
  attribution_model_ = new FeatureScoreModel(tr("Attribution"), this);
  attribution_model_->setLabeler([this](qint64 f) { return session_->featureLabel(f); });
  auto* attr_table = new QTableView(this);
  attr_table->setModel(attribution_model_);
  attr_table->verticalHeader()->hide();
  attr_table->horizontalHeader()->setStretchLastSection(true);
  attr_table->setMaximumHeight(130);
  attr_table->setMinimumHeight(50);
  layout->addWidget(attr_table);
  connect(attribute_, &QPushButton::clicked, this, &SteeringPanel::attributeDivergence);
  connect(attr_table, &QTableView::clicked, this,
          [this](const QModelIndex& i) { session_->selectFeature(attribution_model_->featureAt(i.row())); });

  status_ = new QLabel(this);
  status_->setWordWrap(true);
  layout->addWidget(status_);
  connect(session_, &Session::steerRequested, this, [this](qint64 f) { addFeature(f); });
  connect(session_, &Session::databaseChanged, this, &SteeringPanel::reloadHistory);
  reloadHistory();
}

void SteeringPanel::addFeature(qint64 feature, double value, bool relative) {
  SteeringFeature f;
  f.feature = feature;
  f.label = session_->featureLabel(feature);
  f.max_act = session_->featureMax(feature);
  f.value = value;
  f.relative = relative && f.max_act > 0;
  if (relative && !(f.max_act > 0)) status_->setText(tr("Feature %1 has no known max activation: its value is absolute.").arg(feature));
  model_->add(f);
}

void SteeringPanel::setPrompt(const QString& prompt) { prompt_->setPlainText(prompt); }

void SteeringPanel::setSampling(double temperature, double top_p, quint64 seed, int max_tokens) {
  temperature_->setValue(temperature);
  top_p_->setValue(top_p);
  seed_->setValue(static_cast<int>(seed));
  max_tokens_->setValue(max_tokens);
}

void SteeringPanel::setMode(core::SteerMode mode, core::SteerPositions positions) {
  mode_->setCurrentIndex(mode_->findData(int(mode)));
  positions_->setCurrentIndex(positions_->findData(int(positions)));
}

QString SteeringPanel::requestJson(const core::GenerateRequest& request) const {
  QJsonObject o;
  o["mode"] = core::steerModeName(request.mode);
  o["positions"] = core::steerPositionsName(request.positions);
  o["temperature"] = request.temperature;
  o["top_p"] = request.top_p;
  o["seed"] = static_cast<qint64>(request.seed);
  o["max_tokens"] = static_cast<qint64>(request.max_tokens);
  QJsonArray features;
  for (std::size_t i = 0; i < request.edits.size(); ++i) {
    QJsonObject f;
    f["feature"] = static_cast<qint64>(request.edits[i].feature);
    f["value"] = request.edits[i].value;
    if (i < model_->features().size()) {
      const auto& sf = model_->features()[i];
      if (sf.relative) f["times_max"] = sf.value;
      f["explanation"] = sf.label;
    }
    features.append(f);
  }
  o["features"] = features;
  return QString::fromUtf8(QJsonDocument(o).toJson(QJsonDocument::Compact));
}

void SteeringPanel::generate() {
  if (running_) return;
  core::GenerateRequest request;
  request.prompt = prompt_->toPlainText().toStdString();
  if (request.prompt.empty()) {
    status_->setText(tr("Type a prompt first."));
    return;
  }
  try {
    request.edits = model_->edits();
  } catch (const std::exception& e) {
    status_->setText(QString::fromUtf8(e.what()));
    Q_EMIT failed(status_->text());
    return;
  }
  if (request.edits.empty()) status_->setText(tr("No features to steer with: only the default completion runs."));
  request.mode = static_cast<core::SteerMode>(mode_->currentData().toInt());
  request.positions = static_cast<core::SteerPositions>(positions_->currentData().toInt());
  request.temperature = temperature_->value();
  request.top_p = top_p_->value();
  request.seed = static_cast<std::uint64_t>(seed_->value());
  request.max_tokens = max_tokens_->value();
  current_ = {};
  current_.prompt = request.prompt;
  current_.request_json = requestJson(request).toStdString();
  for (int r = 0; r < 2; ++r) {
    pieces_[r].clear();
    ids_[r].clear();
  }
  running_ = true;
  produced_.store(0);
  cancel_at_ = -1;
  generate_->setEnabled(false);
  cancel_->setEnabled(true);
  clock_.start();
  render();
  InferenceWorker* worker = &session_->worker();
  session_->worker().post<core::GenerateResult>(
      this,
      [this, request, worker](const core::Engine& engine) {
        return engine.generate(request, [this, worker](int run, std::int32_t id, const std::string& piece) {
          produced_.fetch_add(1);
          QMetaObject::invokeMethod(
              this,
              [this, run, id, piece]() {
                if (!running_ || run < 0 || run > 1) return;
                pieces_[run].push_back(piece);
                ids_[run].push_back(id);
                render();
                Q_EMIT tokenStreamed(run, QString::fromStdString(piece));
              },
              Qt::QueuedConnection);
          return !worker->cancelRequested();
        });
      },
      [this](core::GenerateResult result) { finish(result); },
      [this](QString error) {
        running_ = false;
        generate_->setEnabled(true);
        cancel_->setEnabled(false);
        status_->setText(error);
        Q_EMIT failed(error);
      });
}

void SteeringPanel::cancel() {
  if (!running_) return;
  cancel_at_ = produced_.load();
  session_->worker().cancel();
}

void SteeringPanel::finish(const core::GenerateResult& result) {
  running_ = false;
  generate_->setEnabled(true);
  cancel_->setEnabled(false);
  pieces_[0] = result.default_run.pieces;
  pieces_[1] = result.steered_run.pieces;
  ids_[0] = result.default_run.ids;
  ids_[1] = result.steered_run.ids;
  current_.default_text = result.default_run.text;
  current_.steered_text = result.steered_run.text;
  const bool cancelled = result.default_run.cancelled || result.steered_run.cancelled;
  QString message = cancelled ? tr("Cancelled.") : tr("Done in %1 ms.").arg(clock_.elapsed());
  for (const auto& w : result.warnings) message += " " + QString::fromStdString(w);
  const int d = divergence();
  if (d >= 0) message += tr(" The completions diverge at generated token %1.").arg(d + 1);
  else if (!ids_[1].empty()) message += tr(" The completions are identical.");
  if (!cancelled && session_->db() && session_->writable()) {
    try {
      current_.id = session_->db()->saveSteeringRun(current_);
      reloadHistory();
    } catch (const std::exception& e) {
      message += " " + QString::fromUtf8(e.what());
    }
  }
  status_->setText(message);
  render();
  if (d >= 0) {
    target_->setText(QString::fromStdString(pieces_[1][d]));
    versus_->setText(QString::fromStdString(pieces_[0][d]));
  }
  Q_EMIT finished(cancelled);
}

int SteeringPanel::divergence() const {
  const auto n = std::min(ids_[0].size(), ids_[1].size());
  for (std::size_t i = 0; i < n; ++i)
    if (ids_[0][i] != ids_[1][i]) return static_cast<int>(i);
  return -1;
}

void SteeringPanel::render() {
  const QString prompt = QStringLiteral("<span style='color:gray'>%1</span>").arg(html(current_.prompt));
  // Token mode (a live or finished run): split at the first differing token; a run from the
  // history has only texts, so it splits at the first differing character.
  std::string text[2];
  std::size_t split[2];
  const int d = divergence();
  for (int r = 0; r < 2; ++r) {
    if (!pieces_[r].empty() || running_) {
      text[r] = joined(pieces_[r], pieces_[r].size());
      split[r] = d >= 0 ? joined(pieces_[r], d).size() : text[r].size();
    } else {
      text[r] = r == 0 ? current_.default_text : current_.steered_text;
    }
  }
  if (pieces_[0].empty() && pieces_[1].empty() && !running_) {
    std::size_t common = 0;
    while (common < text[0].size() && common < text[1].size() && text[0][common] == text[1][common]) ++common;
    while (common > 0 && (static_cast<unsigned char>(text[0][common]) & 0xC0) == 0x80) --common;  // whole characters
    split[0] = split[1] = common;
  }
  const char* colour[2] = {"#d6e6ff", "#ffd9cc"};
  for (int r = 0; r < 2; ++r) {
    const std::string same = text[r].substr(0, std::min(split[r], text[r].size()));
    const std::string differ = text[r].substr(same.size());
    QString body = prompt + QStringLiteral("<b>%1</b>").arg(html(same));
    if (!differ.empty()) body += QStringLiteral("<b><span style='background:%1'>%2</span></b>").arg(colour[r], html(differ));
    if (running_) body += QStringLiteral("<span style='color:gray'> ...</span>");
    outputs_[r]->setHtml(QStringLiteral("<div style='white-space: pre-wrap'>%1</div>").arg(body));
  }
}

void SteeringPanel::reloadHistory() {
  const QSignalBlocker block(history_);
  history_->clear();
  runs_.clear();
  if (!session_->db()) return;
  try {
    runs_ = session_->db()->steeringRuns(200);
  } catch (const std::exception& e) {
    status_->setText(QString::fromUtf8(e.what()));
  }
  for (const auto& r : runs_) {
    QString prompt = QString::fromStdString(r.prompt).simplified();
    if (prompt.size() > 40) prompt = prompt.left(40) + "...";
    history_->addItem(QStringLiteral("#%1  %2  %3")
                          .arg(r.id)
                          .arg(QDateTime::fromSecsSinceEpoch(static_cast<qint64>(r.created)).toString("MM-dd hh:mm"))
                          .arg(prompt));
  }
}

void SteeringPanel::showHistoryRun(int row) {
  if (row < 0 || row >= static_cast<int>(runs_.size()) || running_) return;
  current_ = runs_[row];
  for (int r = 0; r < 2; ++r) {
    pieces_[r].clear();
    ids_[r].clear();
  }
  render();
  status_->setText(tr("Run #%1: %2").arg(current_.id).arg(QString::fromStdString(current_.request_json)));
}

void SteeringPanel::exportRun(const QString& path) {
  const QString error = exportSteeringRun(current_, path);
  if (!error.isEmpty()) {
    QMessageBox::warning(this, tr("Export steering run"), error);
    return;
  }
  status_->setText(tr("Saved %1.").arg(path));
}

void SteeringPanel::attributeDivergence() {
  const int d = divergence();
  const std::string target = target_->text().toStdString(), versus = versus_->text().toStdString();
  if (target.empty() || versus.empty()) {
    status_->setText(tr("Give a target and a versus token (a finished run with a divergence fills them)."));
    return;
  }
  // At the divergence: the prompt plus the tokens both runs share.
  const std::string prompt = current_.prompt + (d >= 0 ? joined(pieces_[0], d) : std::string());
  attribute_->setEnabled(false);
  session_->worker().post<std::vector<core::FeatureScore>>(
      this, [prompt, target, versus](const core::Engine& e) { return e.attribute(prompt, target, versus, 20); },
      [this, target, versus](std::vector<core::FeatureScore> scores) {
        attribute_->setEnabled(true);
        attribution_model_->setScores(std::move(scores));
        status_->setText(tr("Features pushing \"%1\" over \"%2\" (positive) and against it (negative).")
                             .arg(QString::fromStdString(target), QString::fromStdString(versus)));
        Q_EMIT attributed();
      },
      [this](QString error) {
        attribute_->setEnabled(true);
        status_->setText(error);
        Q_EMIT failed(error);
      });
}

}  // namespace monoscope::ui
