#include "jobs_panel.h"

#include <QElapsedTimer>
#include <QHBoxLayout>
#include <QLabel>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QThread>
#include <QVBoxLayout>

namespace monoscope::ui {

struct JobsPanel::Job {
  int id = 0;
  std::atomic<bool> cancel{false};
  std::atomic<bool> running{true};
  QThread* thread = nullptr;
  QElapsedTimer clock;
  qint64 last_report_ms = -1000;
};

JobsPanel::JobsPanel(QWidget* parent) : QWidget(parent) {
  auto* outer = new QVBoxLayout(this);
  outer->setContentsMargins(4, 4, 4, 4);
  list_ = new QVBoxLayout;
  outer->addLayout(list_);
  auto* hint = new QLabel(tr("Jobs started from the Jobs menu appear here."), this);
  hint->setStyleSheet("color: gray");
  outer->addWidget(hint);
  outer->addStretch();
}

JobsPanel::~JobsPanel() {
  for (auto& job : jobs_) job->cancel.store(true);
  for (auto& job : jobs_)
    if (job->thread) job->thread->wait();
}

int JobsPanel::running() const {
  int n = 0;
  for (const auto& job : jobs_) n += job->running.load() ? 1 : 0;
  return n;
}

void JobsPanel::cancel(int id) {
  for (auto& job : jobs_)
    if (job->id == id) job->cancel.store(true);
}

int JobsPanel::start(const QString& title, JobFn work) {
  auto job = std::make_shared<Job>();
  job->id = next_id_++;
  job->clock.start();
  jobs_.push_back(job);

  auto* row = new QWidget(this);
  auto* layout = new QVBoxLayout(row);
  layout->setContentsMargins(0, 2, 0, 2);
  auto* head = new QHBoxLayout;
  auto* name = new QLabel(QStringLiteral("<b>%1</b>").arg(title.toHtmlEscaped()), row);
  auto* cancel = new QPushButton(tr("Cancel"), row);
  head->addWidget(name, 1);
  head->addWidget(cancel);
  layout->addLayout(head);
  auto* bar = new QProgressBar(row);
  bar->setRange(0, 0);
  layout->addWidget(bar);
  auto* detail = new QLabel(tr("starting"), row);
  detail->setWordWrap(true);
  layout->addWidget(detail);
  list_->addWidget(row);
  connect(cancel, &QPushButton::clicked, this, [job, detail]() {
    job->cancel.store(true);
    detail->setText(tr("cancelling at the next checkpoint..."));
  });

  const int id = job->id;
  auto on_progress = [this, job, bar, detail, id](const core::Progress& p) {
    // At most ~20 updates a second reach the GUI thread.
    const qint64 now = job->clock.elapsed();
    if (now - job->last_report_ms >= 50 || (p.total > 0 && p.done >= p.total)) {
      job->last_report_ms = now;
      const QString stage = QString::fromStdString(p.stage), text = QString::fromStdString(p.detail);
      QMetaObject::invokeMethod(
          this,
          [this, bar, detail, p, stage, text, id]() {
            if (p.total > 0) {
              bar->setRange(0, 1000);
              bar->setValue(static_cast<int>(1000.0 * std::min(p.done, p.total) / p.total));
              bar->setFormat(QStringLiteral("%1  %2 / %3").arg(stage).arg(p.done).arg(p.total));
            } else {
              bar->setRange(0, 0);
            }
            detail->setText(text.isEmpty() ? stage : stage + ": " + text);
            Q_EMIT progressed(id, stage, p.done, p.total);
          },
          Qt::QueuedConnection);
    }
    return !job->cancel.load();
  };
  job->thread = QThread::create([this, job, work = std::move(work), on_progress, bar, detail, cancel, id]() {
    Outcome outcome = Outcome::Done;
    QString message;
    try {
      outcome = work(on_progress) == core::JobStatus::Cancelled ? Outcome::Cancelled : Outcome::Done;
    } catch (const std::exception& e) {
      outcome = Outcome::Failed;
      message = QString::fromUtf8(e.what());
    } catch (...) {
      outcome = Outcome::Failed;
      message = tr("unexpected error");
    }
    const qint64 ms = job->clock.elapsed();
    job->running.store(false);
    QMetaObject::invokeMethod(
        this,
        [this, outcome, message, bar, detail, cancel, id, ms]() {
          cancel->setEnabled(false);
          bar->setRange(0, 1000);
          if (outcome == Outcome::Done) {
            bar->setValue(1000);
            detail->setText(tr("done in %1 s").arg(ms / 1000.0, 0, 'f', 1));
          } else if (outcome == Outcome::Cancelled) {
            detail->setText(tr("cancelled; starting it again resumes where it stopped"));
          } else {
            detail->setText(tr("failed: %1").arg(message));
            detail->setStyleSheet("color: #b00020");
          }
          Q_EMIT finished(id, outcome, message);
        },
        Qt::QueuedConnection);
  });
  job->thread->setObjectName(QStringLiteral("job-%1").arg(id));
  connect(job->thread, &QThread::finished, job->thread, &QObject::deleteLater);
  connect(job->thread, &QObject::destroyed, this, [job]() { job->thread = nullptr; });
  job->thread->start();
  return id;
}

}  // namespace monoscope::ui
