#pragma once
// The steering panel: features with clamp values (multiples of max activation or absolute,
// negative allowed), mode and positions, prompt and sampling settings; Generate streams the
// default and the steered completion side by side, token by token, marks where they diverge,
// and can be cancelled. Runs are saved in the database's history and export as Markdown or
// JSON; the logit difference at the divergence is attributed to features in one click.
#include <QWidget>
#include <QElapsedTimer>
#include <atomic>

#include "api/engine.h"
#include "api/feature_db.h"

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;
class QTableView;
class QTextBrowser;

namespace monoscope::ui {

class FeatureScoreModel;
class Session;
class SteeringModel;

class SteeringPanel : public QWidget {
  Q_OBJECT
 public:
  explicit SteeringPanel(Session* session, QWidget* parent = nullptr);
  QSize sizeHint() const override { return QSize(800, 250); }  // the main window's first layout

  SteeringModel* model() const { return model_; }
  FeatureScoreModel* attributionModel() const { return attribution_model_; }
  void addFeature(qint64 feature, double value = 10.0, bool relative = true);
  void setPrompt(const QString& prompt);
  void setSampling(double temperature, double top_p, quint64 seed, int max_tokens);
  void setMode(core::SteerMode mode, core::SteerPositions positions);

  void generate();
  void cancel();
  void attributeDivergence();
  bool running() const { return running_; }
  // Tokens the model produced after the last cancel() (the contract: at most one).
  int tokensAfterCancel() const { return cancel_at_ < 0 ? 0 : produced_.load() - cancel_at_; }

  // The run shown (the last finished or the one picked from the history).
  const core::SteeringRunRecord& currentRun() const { return current_; }
  const std::vector<std::string>& pieces(int run) const { return pieces_[run]; }
  int divergence() const;  // first generated token index where the runs differ (-1 none)
  void exportRun(const QString& path);  // writes .md or .json
  void reloadHistory();

 Q_SIGNALS:
  void tokenStreamed(int run, QString piece);
  void finished(bool cancelled);
  void attributed();
  void failed(QString message);

 private:
  void render();
  void finish(const core::GenerateResult& result);
  QString requestJson(const core::GenerateRequest& request) const;
  void showHistoryRun(int row);

  Session* session_;
  SteeringModel* model_;
  QTableView* table_;
  QComboBox* mode_;
  QComboBox* positions_;
  QPlainTextEdit* prompt_;
  QDoubleSpinBox* temperature_;
  QDoubleSpinBox* top_p_;
  QSpinBox* seed_;
  QSpinBox* max_tokens_;
  QPushButton* generate_;
  QPushButton* cancel_;
  QPushButton* attribute_;
  QTextBrowser* outputs_[2];
  QLabel* status_;
  QListWidget* history_;
  FeatureScoreModel* attribution_model_;
  QLineEdit* target_;
  QLineEdit* versus_;

  bool running_ = false;
  std::vector<std::string> pieces_[2];
  std::vector<std::int32_t> ids_[2];
  core::SteeringRunRecord current_;
  std::vector<core::SteeringRunRecord> runs_;
  QElapsedTimer clock_;
  std::atomic<int> produced_{0};  // tokens produced by the worker in this run
  int cancel_at_ = -1;
};

}  // namespace monoscope::ui
