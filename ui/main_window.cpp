#include "main_window.h"

#include <algorithm>
#include <utility>

#include <QApplication>
#include <QCloseEvent>
#include <QShowEvent>
#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QScreen>
#include <QScrollArea>
#include <QSettings>
#include <QStatusBar>
#include <QTimer>

#include "api/indexer.h"
#include "api/scoring.h"
#include "api/training.h"
#include "sae/transcoder_set.h"
#include "feature_list_panel.h"
#include "feature_page.h"
#include "hub_dialog.h"
#include "job_dialogs.h"
#include "jobs_panel.h"
#include "map_panel.h"
#include "prompt_inspector.h"
#include "session.h"
#include "steering_panel.h"

namespace monoscope::ui {

namespace {
constexpr int kRecentLimit = 8;

QDockWidget* dock(QMainWindow* window, const QString& title, const QString& name, QWidget* panel, Qt::DockWidgetArea area) {
  auto* d = new QDockWidget(title, window);
  d->setObjectName(name);
  d->setWidget(panel);
  window->addDockWidget(area, d);
  return d;
}
template <typename Receiver, typename Slot>
QAction* action(QMenu* menu, const QString& text, Receiver* receiver, Slot slot, const QKeySequence& keys = {}) {
  auto* a = menu->addAction(text);
  a->setShortcut(keys);
  QObject::connect(a, &QAction::triggered, receiver, slot);
  return a;
}
}  // namespace

namespace {
// A warning about something that finished in the background (a model that failed to open, a
// job that failed): shown without blocking, so the event loop (and whatever else arrives through
// it) keeps running while it is on screen.
void warnLater(QWidget* parent, const QString& title, const QString& message) {
  auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, parent);
  box->setAttribute(Qt::WA_DeleteOnClose);
  box->open();
}

// A transcoder set's layer, "set.yaml#L": the set file and the layer's suffix ("#L"), else false.
bool splitSetLayer(const QString& p, QString* file, QString* suffix) {
  const int hash = static_cast<int>(p.lastIndexOf('#'));
  if (hash <= 0 || !core::isTranscoderSetFile(p.left(hash).toStdString())) return false;
  *file = p.left(hash);
  *suffix = p.mid(hash);
  return true;
}

// One spelling per file, so a path typed two ways is one dictionary (a set's layer: its file's).
QString samePath(const QString& p) {
  QString file, suffix;
  if (splitSetLayer(p, &file, &suffix)) {
    const QString canonical = QFileInfo(file).canonicalFilePath();
    return canonical.isEmpty() ? p : canonical + suffix;
  }
  const QString canonical = QFileInfo(p).canonicalFilePath();
  return canonical.isEmpty() ? p : canonical;
}

// Whether a dictionary's folder (or a set layer's file) is there.
bool dictionaryExists(const QString& p) {
  QString file, suffix;
  return splitSetLayer(p, &file, &suffix) ? QFileInfo(file).isFile() : QFileInfo::exists(p);
}
}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent), session_(new Session(this)) {
  setWindowTitle("Monoscope");
  setDockNestingEnabled(true);
  list_ = new FeatureListPanel(session_, this);
  page_ = new FeaturePage(session_, this);
  map_ = new MapPanel(session_, this);
  inspector_ = new PromptInspector(session_, this);
  steering_ = new SteeringPanel(session_, this);
  jobs_ = new JobsPanel(this);
  setCentralWidget(page_);
  dock(this, tr("Features"), "features_dock", list_, Qt::LeftDockWidgetArea);
  auto* map_dock = dock(this, tr("Map"), "map_dock", map_, Qt::RightDockWidgetArea);
  auto* jobs_dock = dock(this, tr("Jobs"), "jobs_dock", jobs_, Qt::RightDockWidgetArea);
  auto* inspector_dock = dock(this, tr("Prompt inspector"), "inspector_dock", inspector_, Qt::BottomDockWidgetArea);
  // The steering panel scrolls when its dock is short, so it never forces the page smaller.
  auto* steering_scroll = new QScrollArea(this);
  steering_scroll->setWidgetResizable(true);
  steering_scroll->setFrameShape(QFrame::NoFrame);
  steering_scroll->setWidget(steering_);
  steering_->setMinimumHeight(steering_->minimumSizeHint().height());
  auto* steering_dock = dock(this, tr("Steering"), "steering_dock", steering_scroll, Qt::BottomDockWidgetArea);
  tabifyDockWidget(map_dock, jobs_dock);
  tabifyDockWidget(inspector_dock, steering_dock);
  map_dock->raise();
  inspector_dock->raise();

  engine_status_ = new QLabel(tr("no model"), this);
  statusBar()->addPermanentWidget(engine_status_);
  auto& worker = session_->worker();
  connect(&worker, &InferenceWorker::loadProgress, this, [this](QString stage, qint64 done, qint64 total) {
    engine_status_->setText(total > 0 ? tr("loading %1 %2/%3").arg(stage).arg(done).arg(total) : tr("loading %1").arg(stage));
  });
  connect(&worker, &InferenceWorker::opened, this, [this](QString text) {
    engine_status_->setText(text);
    updateTitle();
  });
  connect(&worker, &InferenceWorker::openFailed, this, [this](QString message) {
    engine_status_->setText(tr("model failed to open"));
    warnLater(this, tr("Open model"), message);
  });
  connect(&worker, &InferenceWorker::busyChanged, this, [this](bool busy) {
    if (busy) statusBar()->showMessage(tr("model working..."));
    else statusBar()->clearMessage();
  });
  connect(session_, &Session::status, this, [this](QString m) { statusBar()->showMessage(m, 5000); });
  connect(session_, &Session::featureSelected, page_, &FeaturePage::showFeature);
  connect(session_, &Session::steerRequested, this, [this]() { showPanel(steering_); });
  connect(session_, &Session::databaseChanged, this, &MainWindow::updateTitle);
  QSettings settings;
  // The last workspace's dictionaries, for when its model is opened again.
  workspace_model_ = settings.value("workspace/model").toString();
  for (const QString& entry : settings.value("workspace/dictionaries").toStringList()) {
    const QStringList parts = entry.split('\n');
    if (!parts.value(0).isEmpty()) dictionaries_.push_back({parts[0], parts.value(1)});
  }
  buildMenus();
  default_state_ = saveState();
  restoreGeometry(settings.value("window/geometry").toByteArray());
  restoreState(settings.value("window/state").toByteArray());
  if (!settings.contains("window/geometry")) {  // first launch: the whole screen
    const QRect screen_area = screen() != nullptr ? screen()->availableGeometry() : QRect(0, 0, 1440, 920);
    setGeometry(screen_area);
    setWindowState(windowState() | Qt::WindowMaximized);
  }
}

MainWindow::~MainWindow() = default;

void MainWindow::buildMenus() {
  auto* file = menuBar()->addMenu(tr("&File"));
  action(file, tr("Open &Model..."), this, &MainWindow::openModelDialog, QKeySequence("Ctrl+Shift+M"));
  action(file, tr("Open &SAE..."), this, &MainWindow::openSaeDialog, QKeySequence("Ctrl+Shift+S"));
  action(file, tr("Open &Transcoder Set..."), this, &MainWindow::openTranscoderSetDialog);
  action(file, tr("Open Feature &Database..."), this, &MainWindow::openDatabaseDialog, QKeySequence::Open);
  action(file, tr("Open from &Hugging Face Cache..."), this, &MainWindow::openHubDialog, QKeySequence("Ctrl+Shift+H"));
  recent_menu_ = file->addMenu(tr("&Recent"));
  // The open model's dictionaries (one per layer or hook, each with its database).
  dictionary_menu_ = menuBar()->addMenu(tr("&Dictionary"));
  connect(&session_->worker(), &InferenceWorker::opened, this, [this](QString, QString sae) {
    open_dictionary_ = sae;
    if (sae.isEmpty()) {
      rebuildDictionaryMenu();
      return;
    }
    // A transcoder set's layers join the workspace, in order, once one of them has loaded.
    bool in_set = false;
    for (const QString& l : pending_set_layers_) in_set |= samePath(l) == samePath(sae);
    if (in_set) {
      const QStringList layers = std::exchange(pending_set_layers_, {});
      for (const QString& l : layers) rememberDictionary(l, pending_db_.take(samePath(l)));
    }
    rememberDictionary(sae, pending_db_.take(samePath(sae)));
  });
  connect(&session_->worker(), &InferenceWorker::openFailed, this, [this]() { pending_set_layers_.clear(); });
  rebuildDictionaryMenu();
  rebuildRecentMenu();
  file->addSeparator();
  action(file, tr("&Quit"), this, &QWidget::close, QKeySequence::Quit);

  auto* go = menuBar()->addMenu(tr("&Go"));
  back_ = action(go, tr("&Back"), session_, &Session::back, QKeySequence::Back);
  forward_ = action(go, tr("&Forward"), session_, &Session::forward, QKeySequence::Forward);
  action(go, tr("&Next feature"), this, [this]() { list_->step(+1); }, QKeySequence("Ctrl+Down"));
  action(go, tr("&Previous feature"), this, [this]() { list_->step(-1); }, QKeySequence("Ctrl+Up"));
  action(go, tr("Go to &feature..."), this, &MainWindow::goToFeatureDialog, QKeySequence("Ctrl+L"));
  action(go, tr("&Search features"), this, [this]() {
    showPanel(list_);
    list_->focusSearch();
  }, QKeySequence::Find);
  auto update_history = [this]() {
    back_->setEnabled(session_->canGoBack());
    forward_->setEnabled(session_->canGoForward());
  };
  connect(session_, &Session::historyChanged, this, update_history);
  update_history();

  auto* jobs = menuBar()->addMenu(tr("&Jobs"));
  action(jobs, tr("&Build feature database..."), this, &MainWindow::startIndexJob);
  action(jobs, tr("&Score specificity..."), this, &MainWindow::startScoreJob);
  action(jobs, tr("&Explain features with an LLM..."), this, &MainWindow::startExplainJob);
  action(jobs, tr("&Train SAE..."), this, &MainWindow::startTrainJob);

  auto* view = menuBar()->addMenu(tr("&View"));
  for (auto* d : findChildren<QDockWidget*>()) view->addAction(d->toggleViewAction());
  view->addSeparator();
  action(view, tr("&Reset layout"), this, [this]() { restoreState(default_state_); });
  auto* help = menuBar()->addMenu(tr("&Help"));
  action(help, tr("&About Monoscope"), this, [this]() {
    QMessageBox::about(this, tr("About Monoscope"),
                       tr("<b>Monoscope %1</b><p>Browse a sparse autoencoder's features, inspect prompts and steer a "
                          "language model with features, offline.</p>")
                           .arg(QApplication::applicationVersion()));
  });
}

void MainWindow::showPanel(QWidget* panel) {
  for (auto* d : findChildren<QDockWidget*>()) {
    if (d->widget() != panel && !d->widget()->isAncestorOf(panel)) continue;
    d->show();
    d->raise();
    // The steering panel needs room for the two completions side by side.
    if (panel == steering_ && !d->isFloating() && d->height() < height() / 2)
      resizeDocks({d}, {height() * 11 / 20}, Qt::Vertical);
  }
}

QString MainWindow::openWorkspace(const Workspace& given, bool quiet) {
  QString errors;
  Workspace w = given;
  // A circuit-tracer transcoder set is one dictionary per layer: each joins the workspace and
  // the first layer opens.
  QStringList set_layers;
  if (!w.sae_dir.isEmpty() && core::isTranscoderSetFile(w.sae_dir.toStdString()) && QFileInfo(w.sae_dir).isFile()) {
    try {
      const QString path = QFileInfo(w.sae_dir).absoluteFilePath();
      for (const auto& spec : core::TranscoderSet::read(path.toStdString()).specs()) set_layers << QString::fromStdString(spec);
      w.sae_dir = set_layers.value(0);
    } catch (const std::exception& e) {
      errors = QString::fromUtf8(e.what());
      if (!quiet) QMessageBox::warning(this, tr("Open transcoder set"), errors);
      return errors;
    }
  }
  if (!w.model_dir.isEmpty()) {
    if (samePath(w.model_dir) != samePath(workspace_model_)) {  // another model: a new workspace
      workspace_model_ = w.model_dir;
      dictionaries_.clear();
      QSettings().remove("workspace/dictionaries");
    }
    // The session keeps the model loaded when only the dictionary changes.
    session_->openEngine(w.model_dir, w.sae_dir);
    addRecent("models", w.model_dir + (w.sae_dir.isEmpty() ? QString() : "\n" + w.sae_dir));
    if (!w.sae_dir.isEmpty()) pending_db_[samePath(w.sae_dir)] = w.database;  // recorded once it has loaded
    pending_set_layers_ = set_layers;  // they join the workspace once the first has loaded
  }
  if (!w.database.isEmpty()) {
    try {
      session_->openDatabase(w.database);
      addRecent("databases", w.database);
      QSettings().setValue("workspace/database", w.database);
      // A database built from another dictionary of the open model switches to that dictionary
      // (the model stays loaded), so the features browsed are the ones steered.
      const auto& info = session_->db()->info();
      const QString db_model = QString::fromStdString(info.model), db_sae = QString::fromStdString(info.sae);
      // A set opened with a database: the layer the database was built from.
      const bool choose = w.model_dir.isEmpty() || !set_layers.isEmpty();
      if (choose && !session_->modelDir().isEmpty() && !db_sae.isEmpty() && dictionaryExists(db_sae) &&
          samePath(db_model) == samePath(session_->modelDir())) {
        if (samePath(db_sae) != samePath(session_->saeDir())) {
          if (!set_layers.isEmpty()) pending_db_.remove(samePath(w.sae_dir));
          pending_db_[samePath(db_sae)] = w.database;
          session_->openEngine(session_->modelDir(), db_sae);
        } else {
          rememberDictionary(db_sae, w.database);
        }
      }
    } catch (const std::exception& e) {
      errors = QString::fromUtf8(e.what());
      if (!quiet) QMessageBox::warning(this, tr("Open feature database"), errors);
    }
  }
  if (!w.model_dir.isEmpty()) {
    QSettings settings;
    settings.setValue("workspace/model", w.model_dir);
    settings.setValue("workspace/sae", w.sae_dir);
  }
  if (session_->db() && session_->currentFeature() < 0 && session_->db()->info().d_sae > 0) {
    // Open on a common feature, something to look at straight away, but not one that fires on
    // nearly every token (an always-on direction says nothing): the densest below 1%.
    // A page of summaries at a time: dense features are few, so this reads one or two pages
    // even for tens of millions of features.
    core::FeatureQuery q;
    q.sort = core::FeatureSort::Density;
    q.descending = true;
    q.filter = core::FeatureFilter::Alive;
    q.limit = 512;
    qint64 densest = 0, first = -1;
    for (int page = 0; page < 64 && first < 0; ++page) {
      q.offset = page * q.limit;
      const auto top = session_->db()->listFeatures(q);
      if (top.empty()) break;
      if (page == 0) densest = top.front().id;  // should every feature be dense
      for (const auto& f : top) {
        if (f.density < 0.01) {
          first = f.id;
          break;
        }
      }
    }
    if (first < 0) first = densest;
    session_->selectFeature(first);
  }
  return errors;
}

void MainWindow::buildDatabase(const QString& model_dir, const QString& sae_dir, const QString& corpus,
                               const QString& out, qint64 tokens) {
  core::IndexOptions o;
  o.model_dir = model_dir.toStdString();
  o.sae_dir = sae_dir.toStdString();
  o.corpus = corpus.toStdString();
  o.out = out.toStdString();
  o.tokens = tokens;
  showPanel(jobs_);
  const int id = jobs_->start(tr("Building %1").arg(QFileInfo(out).fileName()),
                              [o](const core::ProgressFn& p) { return core::buildIndex(o, p); });
  connect(jobs_, &JobsPanel::finished, this, [this, id, out](int job, JobsPanel::Outcome outcome, QString message) {
    if (job != id) return;
    if (outcome == JobsPanel::Outcome::Done) openWorkspace({{}, {}, out});
    else if (outcome == JobsPanel::Outcome::Failed) warnLater(this, tr("Build feature database"), message);
  });
}

void MainWindow::addRecent(const QString& kind, const QString& path) {
  QSettings settings;
  QStringList list = settings.value("recent/" + kind).toStringList();
  list.removeAll(path);
  list.prepend(path);
  while (list.size() > kRecentLimit) list.removeLast();
  settings.setValue("recent/" + kind, list);
  rebuildRecentMenu();
}

void MainWindow::rebuildRecentMenu() {
  if (!recent_menu_) return;
  recent_menu_->clear();
  QSettings settings;
  for (const auto& db : settings.value("recent/databases").toStringList())
    recent_menu_->addAction(tr("Database %1").arg(db), this, [this, db]() { openWorkspace({{}, {}, db}); });
  recent_menu_->addSeparator();
  for (const auto& entry : settings.value("recent/models").toStringList()) {
    const QStringList parts = entry.split('\n');
    recent_menu_->addAction(tr("Model %1").arg(parts.join(" + ")), this,
                            [this, parts]() { openWorkspace({parts[0], parts.value(1), {}}); });
  }
  recent_menu_->setEnabled(!recent_menu_->isEmpty());
}

void MainWindow::rememberDictionary(const QString& sae_dir, const QString& database) {
  auto it = std::find_if(dictionaries_.begin(), dictionaries_.end(),
                         [&](const WorkspaceDictionary& d) { return samePath(d.sae_dir) == samePath(sae_dir); });
  if (it == dictionaries_.end()) {
    dictionaries_.push_back({sae_dir, database});
  } else if (!database.isEmpty()) {
    it->database = database;
  }
  QStringList saved;
  for (const auto& d : dictionaries_) saved << d.sae_dir + "\n" + d.database;
  QSettings().setValue("workspace/dictionaries", saved);
  rebuildDictionaryMenu();
}

void MainWindow::rebuildDictionaryMenu() {
  if (!dictionary_menu_) return;
  dictionary_menu_->clear();
  const QString current = samePath(open_dictionary_);
  for (const auto& d : dictionaries_) {
    const QString name = QDir(d.sae_dir).dirName() + " (" + QFileInfo(QDir(d.sae_dir).absolutePath()).dir().dirName() + ")";
    QAction* a = dictionary_menu_->addAction(d.database.isEmpty() ? name : tr("%1 with %2").arg(name, QFileInfo(d.database).fileName()));
    a->setCheckable(true);
    a->setChecked(samePath(d.sae_dir) == current);
    a->setToolTip(d.sae_dir);
    connect(a, &QAction::triggered, this, [this, d]() { openWorkspace({workspace_model_, d.sae_dir, d.database}); });
  }
  if (!dictionaries_.isEmpty()) dictionary_menu_->addSeparator();
  dictionary_menu_->addAction(tr("&Add Dictionary..."), this, &MainWindow::openSaeDialog);
}

void MainWindow::updateTitle() {
  QString title = "Monoscope";
  if (session_->db()) title += " - " + QFileInfo(session_->databasePath()).fileName();
  if (!session_->modelDir().isEmpty()) title += " - " + QDir(session_->modelDir()).dirName();
  setWindowTitle(title);
}

void MainWindow::openModelDialog() {
  // A llama.cpp GGUF file, or (Cancel, then the folder dialog) a Hugging Face model folder.
  QFileDialog dialog(this, tr("Open a model: a GGUF file, or choose a Hugging Face model folder"), session_->modelDir());
  dialog.setFileMode(QFileDialog::ExistingFile);
  dialog.setNameFilters({tr("GGUF models (*.gguf)"), tr("Hugging Face config (config.json)")});
  if (dialog.exec() != QDialog::Accepted || dialog.selectedFiles().isEmpty()) return;
  QString path = dialog.selectedFiles().front();
  if (QFileInfo(path).fileName() == "config.json") path = QFileInfo(path).absolutePath();  // the folder
  openWorkspace({path, session_->saeDir(), {}});
}

void MainWindow::openSaeDialog() {
  if (session_->modelDir().isEmpty()) {
    QMessageBox::information(this, tr("Open SAE"), tr("Open the model the SAE was trained on first (File > Open Model)."));
    return;
  }
  const QString dir = QFileDialog::getExistingDirectory(this, tr("Open a SAELens SAE folder"), session_->saeDir());
  if (!dir.isEmpty()) openWorkspace({session_->modelDir(), dir, {}});
}

void MainWindow::openTranscoderSetDialog() {
  if (session_->modelDir().isEmpty()) {
    QMessageBox::information(this, tr("Open transcoder set"), tr("Open the model the transcoders were trained on first (File > Open Model)."));
    return;
  }
  const QString path = QFileDialog::getOpenFileName(this, tr("Open a circuit-tracer transcoder set"), QString(),
                                                    tr("Transcoder sets (*.yaml *.yml);;All files (*)"));
  if (!path.isEmpty()) openWorkspace({session_->modelDir(), path, {}});
}

void MainWindow::openHubDialog() {
  HubDialog dialog(this);
  if (dialog.exec() != QDialog::Accepted || dialog.modelPath().isEmpty()) return;
  openWorkspace({dialog.modelPath(), dialog.dictionaryPath(), {}});
}

void MainWindow::openDatabaseDialog() {
  const QString path = QFileDialog::getOpenFileName(this, tr("Open a feature database"), session_->databasePath(),
                                                    tr("Feature databases (*.db);;All files (*)"));
  if (!path.isEmpty()) openWorkspace({{}, {}, path});
}

void MainWindow::goToFeatureDialog() {
  bool ok = false;
  const int max = session_->db() ? static_cast<int>(session_->db()->info().d_sae - 1) : (1 << 30);
  const int id = QInputDialog::getInt(this, tr("Go to feature"), tr("Feature id"),
                                      std::max<qint64>(0, session_->currentFeature()), 0, max, 1, &ok);
  if (ok) session_->selectFeature(id);
}

void MainWindow::startIndexJob() {
  const auto options = askIndexOptions(this, session_->modelDir(), session_->saeDir());
  if (!options) return;
  buildDatabase(QString::fromStdString(options->model_dir), QString::fromStdString(options->sae_dir),
                QString::fromStdString(options->corpus), QString::fromStdString(options->out), options->tokens);
}

void MainWindow::startScoreJob() {
  if (!session_->db()) {
    QMessageBox::information(this, tr("Score specificity"), tr("Open a feature database first."));
    return;
  }
  const auto options = askScoreOptions(this);
  if (!options) return;
  const std::string path = session_->databasePath().toStdString();
  showPanel(jobs_);
  const int id = jobs_->start(tr("Scoring with %1").arg(QString::fromStdString(options->scorer)),
                              [path, o = *options](const core::ProgressFn& p) {
                                core::ScoreSummary summary;
                                return core::scoreFeatures(path, o, p, &summary);
                              });
  connect(jobs_, &JobsPanel::finished, this, [this, id](int job, JobsPanel::Outcome outcome, QString message) {
    if (job != id) return;
    if (outcome == JobsPanel::Outcome::Failed) warnLater(this, tr("Score specificity"), message);
    if (session_->currentFeature() >= 0) page_->showFeature(session_->currentFeature());
  });
}

void MainWindow::startExplainJob() {
  if (!session_->db()) {
    QMessageBox::information(this, tr("Explain features"), tr("Open a feature database first."));
    return;
  }
  const auto options = askExplainOptions(this);
  if (!options) return;
  const std::string path = session_->databasePath().toStdString();
  showPanel(jobs_);
  const int id = jobs_->start(tr("Explaining with %1").arg(QString::fromStdString(options->llm.model)),
                              [path, o = *options](const core::ProgressFn& p) {
                                core::ExplainSummary summary;
                                return core::explainFeatures(path, o, p, &summary);
                              });
  connect(jobs_, &JobsPanel::finished, this, [this, id](int job, JobsPanel::Outcome outcome, QString message) {
    if (job != id) return;
    if (outcome == JobsPanel::Outcome::Failed) warnLater(this, tr("Explain features"), message);
    // The list, search and page read the new explanations from a fresh connection.
    const qint64 current = session_->currentFeature();
    try {
      session_->openDatabase(session_->databasePath());
      if (current >= 0) session_->selectFeature(current);
    } catch (const std::exception& e) {
      QMessageBox::warning(this, tr("Explain features"), QString::fromUtf8(e.what()));
    }
  });
}

void MainWindow::startTrainJob() {
  const auto options = askTrainingOptions(this, session_->modelDir());
  if (!options) return;
  showPanel(jobs_);
  const int id = jobs_->start(tr("Training an SAE into %1").arg(QString::fromStdString(options->out)),
                              [o = *options](const core::ProgressFn& p) {
                                core::SaeTrainingResult result;
                                return core::trainSae(o, p, &result);
                              });
  connect(jobs_, &JobsPanel::finished, this, [this, id](int job, JobsPanel::Outcome outcome, QString message) {
    if (job == id && outcome == JobsPanel::Outcome::Failed) warnLater(this, tr("Train SAE"), message);
  });
}

void MainWindow::showEvent(QShowEvent* event) {
  QMainWindow::showEvent(event);
  if (sized_) return;
  sized_ = true;
  if (QSettings().contains("window/state")) return;  // the person's own layout
  // First launch: the feature page gets most of the window (once the layout has settled).
  QTimer::singleShot(0, this, [this]() {
    resizeDocks({findChild<QDockWidget*>("features_dock"), findChild<QDockWidget*>("map_dock")},
                {width() * 27 / 100, width() / 4}, Qt::Horizontal);
    resizeDocks({findChild<QDockWidget*>("inspector_dock")}, {height() * 35 / 100}, Qt::Vertical);
    default_state_ = saveState();
  });
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (jobs_->running() > 0 &&
      QMessageBox::question(this, tr("Quit"), tr("%1 job(s) are running. Cancel them and quit? They resume when started again.")
                                                  .arg(jobs_->running())) != QMessageBox::Yes) {
    event->ignore();
    return;
  }
  QSettings settings;
  settings.setValue("window/geometry", saveGeometry());
  settings.setValue("window/state", saveState());
  session_->worker().cancel();
  event->accept();
}

}  // namespace monoscope::ui
