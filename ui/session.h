#pragma once
// What the open workspace shares between panels: the feature database (read on the GUI thread;
// SQLite reads take milliseconds), the inference worker that owns the model, the selected
// feature with a back/forward history, and requests between panels (steer with a feature).
#include <QObject>
#include <QString>
#include <QVector>
#include <memory>

#include "api/feature_db.h"
#include "inference_worker.h"

namespace monoscope::ui {

class Session : public QObject {
  Q_OBJECT
 public:
  explicit Session(QObject* parent = nullptr);
  ~Session() override;

  // Opens a feature database (read-write when the file allows it, so labels and explanations
  // can be saved; otherwise read-only). Throws core::Error naming the file.
  void openDatabase(const QString& path);
  void closeDatabase();
  core::FeatureDb* db() const { return db_.get(); }
  bool writable() const { return writable_; }
  QString databasePath() const { return db_path_; }

  InferenceWorker& worker() { return worker_; }
  void openEngine(const QString& model_dir, const QString& sae_dir, const QString& device = "auto", int threads = 0);
  QString modelDir() const { return model_dir_; }
  QString saeDir() const { return sae_dir_; }

  // Navigation: select a feature (recorded in the history unless moving through it).
  void selectFeature(qint64 feature);
  qint64 currentFeature() const { return current_; }
  bool canGoBack() const { return pos_ > 0; }
  bool canGoForward() const { return pos_ + 1 < history_.size(); }
  void back();
  void forward();

  // A context menu for a feature (open it, steer with it) at a global position.
  void featureMenu(qint64 feature, const QPoint& global_pos, QWidget* parent);

  // A feature's one-line label: its explanation, or "feature N" without a database.
  QString featureLabel(qint64 feature) const;
  float featureMax(qint64 feature) const;  // max activation over the scan (0 when unknown)
  double featureDensity(qint64 feature) const;  // share of the scan's tokens it fires on (-1 when unknown)

 Q_SIGNALS:
  void databaseChanged();
  void featureSelected(qint64 feature);
  void historyChanged();
  void steerRequested(qint64 feature);
  void featureEdited(qint64 feature);  // explanation or labels changed
  void status(QString message);

 private:
  void setCurrent(qint64 feature);

  std::unique_ptr<core::FeatureDb> db_;
  QString db_path_;
  bool writable_ = false;
  InferenceWorker worker_;
  QString model_dir_, sae_dir_;
  QVector<qint64> history_;
  int pos_ = -1;
  qint64 current_ = -1;
};

}  // namespace monoscope::ui
