#pragma once
// The inference worker: one QObject on its own thread that owns the Engine (model + tokenizer +
// SAE). Every forward pass runs here, never on the GUI thread. Work is posted as a function of
// the engine; its result or error is delivered back on the caller's thread through a context
// object (dropped if that object is gone). No exception crosses the thread boundary.
#include <QObject>
#include <QPointer>
#include <QString>
#include <QThread>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "api/engine.h"

namespace monoscope::ui {

class InferenceWorker : public QObject {
  Q_OBJECT
 public:
  InferenceWorker();
  ~InferenceWorker() override;  // stops the thread after the running job

  // Opens (or replaces) the engine on the worker thread; progress and the outcome arrive as
  // signals. A running generation is cancelled first.
  void open(const core::EngineOptions& options);
  bool hasEngine() const { return has_engine_.load(); }
  core::EngineInfo info() const;  // a copy; empty before the first successful open

  // Runs `work(engine)` on the worker; then `done(result)` or `fail(message)` on `context`'s
  // thread. Work posted before an engine is open fails with a message saying so.
  template <typename T>
  void post(QObject* context, std::function<T(const core::Engine&)> work, std::function<void(T)> done,
            std::function<void(QString)> fail = {});

  // Asks the running job to stop at its next callback (generation: within one token).
  void cancel() { cancel_.store(true); }
  // For jobs' callbacks: true once cancel() was called since the job began.
  bool cancelRequested() const { return cancel_.load(); }
  // Jobs posted and not yet finished.
  int pending() const { return pending_.load(); }

 Q_SIGNALS:
  void loadProgress(QString stage, qint64 done, qint64 total);
  // sae_dir: the dictionary this open loaded (empty for a model alone), carried with the signal
  // because the worker may have opened another by the time a queued receiver runs.
  void opened(QString description, QString sae_dir);
  void openFailed(QString message);
  void busyChanged(bool busy);

 private:
  void runOnWorker(std::function<void()> job);
  void jobStarted();
  void jobFinished();

  QThread thread_;
  QObject* anchor_;  // lives on the worker thread; posted jobs run in its event loop
  std::unique_ptr<core::Engine> engine_;  // touched only on the worker thread
  QString model_stamp_;                    // the open model's files when read (worker thread)
  int threads_ = 0;                        // and the thread count it was opened with
  std::atomic<bool> has_engine_{false};
  std::atomic<bool> cancel_{false};
  std::atomic<int> pending_{0};
  mutable std::mutex info_mutex_;
  core::EngineInfo info_;
};

template <typename T>
void InferenceWorker::post(QObject* context, std::function<T(const core::Engine&)> work, std::function<void(T)> done,
                           std::function<void(QString)> fail) {
  QPointer<QObject> target(context);
  runOnWorker([this, target, work = std::move(work), done = std::move(done), fail = std::move(fail)]() {
    auto deliverError = [&](const QString& message) {
      if (!fail || !target) return;
      QMetaObject::invokeMethod(target, [fail, message]() { fail(message); }, Qt::QueuedConnection);
    };
    if (!engine_) {
      deliverError(tr("No model is open: open a model folder (File > Open Model) first."));
      return;
    }
    try {
      auto result = std::make_shared<T>(work(*engine_));
      if (target && done) QMetaObject::invokeMethod(target, [done, result]() { done(std::move(*result)); }, Qt::QueuedConnection);
    } catch (const std::exception& e) {
      deliverError(QString::fromUtf8(e.what()));
    } catch (...) {
      deliverError(tr("Unexpected error in the inference worker."));
    }
  });
}

}  // namespace monoscope::ui
