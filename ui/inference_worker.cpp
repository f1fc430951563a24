#include "inference_worker.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFileInfo>

namespace monoscope::ui {

namespace {
// The dictionary's folder with its parent ("smollm2/sae", "layer_12/width_16k"): the last
// component alone is often just "sae".
QString dictionaryName(const QString& dir) {
  const QFileInfo f(QDir::cleanPath(dir));
  return f.dir().dirName() + "/" + f.fileName();
}
}  // namespace

InferenceWorker::InferenceWorker() : anchor_(new QObject) {
  thread_.setObjectName("inference");
  anchor_->moveToThread(&thread_);
  connect(&thread_, &QThread::finished, anchor_, &QObject::deleteLater);
  thread_.start();
}

InferenceWorker::~InferenceWorker() {
  cancel_.store(true);
  // The engine is destroyed on the worker thread that owns it.
  QMetaObject::invokeMethod(anchor_, [this]() { engine_.reset(); }, Qt::QueuedConnection);
  thread_.quit();
  thread_.wait();
}

core::EngineInfo InferenceWorker::info() const {
  std::lock_guard<std::mutex> lock(info_mutex_);
  return info_;
}

void InferenceWorker::jobStarted() {
  if (pending_.fetch_add(1) == 0) Q_EMIT busyChanged(true);
}

void InferenceWorker::jobFinished() {
  if (pending_.fetch_sub(1) == 1) Q_EMIT busyChanged(false);
}

void InferenceWorker::runOnWorker(std::function<void()> job) {
  jobStarted();
  QMetaObject::invokeMethod(
      anchor_,
      [this, job = std::move(job)]() {
        cancel_.store(false);
        job();
        jobFinished();
      },
      Qt::QueuedConnection);
}

namespace {
// The model's files as last written (a GGUF file, or a folder's config and weights): a model
// opened again unchanged need not be read again.
QString modelStamp(const QString& path) {
  const QFileInfo info(path);
  if (!info.isDir()) return QString::number(info.size()) + "@" + QString::number(info.lastModified().toMSecsSinceEpoch());
  QString stamp;
  for (const QFileInfo& f : QDir(path).entryInfoList({"*.json", "*.safetensors"}, QDir::Files, QDir::Name))
    stamp += f.fileName() + ":" + QString::number(f.size()) + "@" + QString::number(f.lastModified().toMSecsSinceEpoch()) + ";";
  return stamp;
}
}  // namespace

void InferenceWorker::open(const core::EngineOptions& options) {
  cancel();
  runOnWorker([this, options]() {
    try {
      auto progress = [this](const core::Progress& p) {
        Q_EMIT loadProgress(QString::fromStdString(p.stage), p.done, p.total);
        return !cancel_.load();
      };
      const QString stamp = modelStamp(QString::fromStdString(options.model_dir));
      if (engine_ && engine_->info().model_dir == options.model_dir && stamp == model_stamp_ &&
          options.threads == threads_ && (options.device == "auto" || options.device == engine_->info().device)) {
        // The same model, unchanged on disk: only the dictionary changes, the model stays loaded.
        Q_EMIT loadProgress(QStringLiteral("load SAE"), 2, 3);
        engine_->setDictionary(options.sae_dir);
      } else {
        auto engine = core::Engine::open(options, progress);
        if (!engine) return;  // cancelled: keep the previous engine
        engine_ = std::move(engine);
        model_stamp_ = stamp;
        threads_ = options.threads;
      }
      {
        std::lock_guard<std::mutex> lock(info_mutex_);
        info_ = engine_->info();
      }
      has_engine_.store(true);
      const auto& i = engine_->info();
      QString text = tr("%1, %2 layers, d_model %3, %4 on %5")
                         .arg(QString::fromStdString(i.model_type))
                         .arg(i.n_layers)
                         .arg(i.d_model)
                         .arg(QString::fromStdString(i.dtype) +
                              (i.compute_dtype.empty() || i.compute_dtype == i.dtype ? QString() : tr(" (%1 products)").arg(QString::fromStdString(i.compute_dtype))))
                         .arg(QString::fromStdString(i.device));
      if (!i.hook_name.empty() && !i.hook_name_out.empty())
        text += tr("; transcoder %1 (%2, %3 features) from %4 to %5")
                    .arg(dictionaryName(QString::fromStdString(i.sae_dir)))
                    .arg(QString::fromStdString(i.architecture))
                    .arg(i.d_sae)
                    .arg(QString::fromStdString(i.hook_name))
                    .arg(QString::fromStdString(i.hook_name_out));
      else if (!i.hook_name.empty())
        text += tr("; dictionary %1 (%2, %3 features) at %4")
                    .arg(dictionaryName(QString::fromStdString(i.sae_dir)))
                    .arg(QString::fromStdString(i.architecture))
                    .arg(i.d_sae)
                    .arg(QString::fromStdString(i.hook_name));
      Q_EMIT opened(text, QString::fromStdString(i.sae_dir));
    } catch (const std::exception& e) {
      Q_EMIT openFailed(QString::fromUtf8(e.what()));
    }
  });
}

}  // namespace monoscope::ui
