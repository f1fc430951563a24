#pragma once
// Long jobs started from the app (building a feature database, scoring, training an SAE): each
// runs on its own thread with a progress bar and a Cancel button. Cancelling is not an error;
// an error is shown as a readable message naming the file or field, never a crash.
#include <QString>
#include <QWidget>
#include <atomic>
#include <functional>
#include <memory>

#include "api/progress.h"

class QVBoxLayout;

namespace monoscope::ui {

using JobFn = std::function<core::JobStatus(const core::ProgressFn&)>;

class JobsPanel : public QWidget {
  Q_OBJECT
 public:
  enum class Outcome { Done, Cancelled, Failed };
  explicit JobsPanel(QWidget* parent = nullptr);
  ~JobsPanel() override;  // cancels running jobs and waits for them

  // Starts `work` on a new thread; returns the job's id.
  int start(const QString& title, JobFn work);
  void cancel(int job);
  int running() const;

 Q_SIGNALS:
  void progressed(int job, QString stage, qint64 done, qint64 total);
  void finished(int job, monoscope::ui::JobsPanel::Outcome outcome, QString message);

 private:
  struct Job;
  QVBoxLayout* list_;
  std::vector<std::shared_ptr<Job>> jobs_;
  int next_id_ = 1;
};

}  // namespace monoscope::ui
