#include "session.h"

#include <QFileInfo>
#include <QMenu>

#include "util/error.h"

namespace monoscope::ui {

namespace {
constexpr int kHistoryLimit = 500;
}

Session::Session(QObject* parent) : QObject(parent) {
  // What failed to open is not open: the model and dictionary are the engine's again.
  connect(&worker_, &InferenceWorker::openFailed, this, [this]() {
    if (!worker_.hasEngine()) return;
    const auto info = worker_.info();
    model_dir_ = QString::fromStdString(info.model_dir);
    sae_dir_ = QString::fromStdString(info.sae_dir);
  });
}
Session::~Session() = default;

void Session::openDatabase(const QString& path) {
  std::unique_ptr<core::FeatureDb> db;
  bool writable = QFileInfo(path).isWritable() && QFileInfo(QFileInfo(path).absolutePath()).isWritable();
  try {
    db = core::FeatureDb::open(path.toStdString(), writable ? core::FeatureDb::Mode::ReadWrite : core::FeatureDb::Mode::ReadOnly);
  } catch (const core::Error&) {
    if (!writable) throw;
    // A file another program holds for writing can still be browsed.
    db = core::FeatureDb::open(path.toStdString(), core::FeatureDb::Mode::ReadOnly);
    writable = false;
  }
  db_ = std::move(db);
  writable_ = writable;
  db_path_ = path;
  history_.clear();
  pos_ = -1;
  current_ = -1;
  Q_EMIT databaseChanged();
  Q_EMIT historyChanged();
}

void Session::closeDatabase() {
  db_.reset();
  db_path_.clear();
  history_.clear();
  pos_ = -1;
  current_ = -1;
  Q_EMIT databaseChanged();
  Q_EMIT historyChanged();
}

void Session::openEngine(const QString& model_dir, const QString& sae_dir, const QString& device, int threads) {
  model_dir_ = model_dir;
  sae_dir_ = sae_dir;
  core::EngineOptions options;
  options.model_dir = model_dir.toStdString();
  options.sae_dir = sae_dir.toStdString();
  options.device = device.toStdString();
  options.threads = threads;
  worker_.open(options);
}

void Session::setCurrent(qint64 feature) {
  current_ = feature;
  Q_EMIT featureSelected(feature);
  Q_EMIT historyChanged();
}

void Session::selectFeature(qint64 feature) {
  if (feature < 0 || feature == current_) return;
  if (db_ && feature >= db_->info().d_sae) {
    Q_EMIT status(tr("Feature %1 is outside this dictionary (%2 features).").arg(feature).arg(db_->info().d_sae));
    return;
  }
  history_.resize(pos_ + 1);
  history_.push_back(feature);
  if (history_.size() > kHistoryLimit) history_.remove(0, history_.size() - kHistoryLimit);
  pos_ = history_.size() - 1;
  setCurrent(feature);
}

void Session::back() {
  if (!canGoBack()) return;
  --pos_;
  setCurrent(history_[pos_]);
}

void Session::forward() {
  if (!canGoForward()) return;
  ++pos_;
  setCurrent(history_[pos_]);
}

void Session::featureMenu(qint64 feature, const QPoint& global_pos, QWidget* parent) {
  if (feature < 0) return;
  QMenu menu(parent);
  menu.addAction(tr("Open feature %1").arg(feature), this, [this, feature]() { selectFeature(feature); });
  menu.addAction(tr("Steer with feature %1").arg(feature), this, [this, feature]() { Q_EMIT steerRequested(feature); });
  menu.exec(global_pos);
}

QString Session::featureLabel(qint64 feature) const {
  if (db_) {
    try {
      const auto s = db_->summary(feature);
      if (!s.explanation.empty()) return QString::fromStdString(s.explanation);
    } catch (const std::exception&) {
    }
  }
  return tr("feature %1").arg(feature);
}

float Session::featureMax(qint64 feature) const {
  if (!db_) return 0.0f;
  try {
    return db_->summary(feature).max_act;
  } catch (const std::exception&) {
    return 0.0f;
  }
}

double Session::featureDensity(qint64 feature) const {
  if (!db_) return -1.0;
  try {
    return db_->summary(feature).density;
  } catch (const std::exception&) {
    return -1.0;
  }
}

}  // namespace monoscope::ui
