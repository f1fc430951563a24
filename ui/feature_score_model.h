#pragma once
// A short ranked list of features with a score each (top features of a token, contrastive
// search, attribution): id, score and the feature's explanation. Given the features' densities,
// a dense feature (on more than kDense of the database's tokens: an always-on direction that
// leads every list by activation and says little about this text; the feature list's "dense"
// filter is the wider 1%) is marked and, unless setDenseLast(false), listed after the others;
// the list keeps at most setLimit rows after that.
#include <QAbstractTableModel>
#include <functional>
#include <vector>

#include "api/types.h"

namespace monoscope::ui {

class FeatureScoreModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { IdColumn, ScoreColumn, ExplanationColumn, ColumnCount };
  explicit FeatureScoreModel(QString score_header, QObject* parent = nullptr);

  static constexpr double kDense = 0.1;

  void setLabeler(std::function<QString(qint64)> labeler) { labeler_ = std::move(labeler); }
  void setDensity(std::function<double(qint64)> density);  // < 0: unknown; the rows are read again
  void setDenseLast(bool on);
  void setLimit(int rows);  // 0: every row
  bool denseLast() const { return dense_last_; }
  void setScores(std::vector<core::FeatureScore> scores);
  std::vector<core::FeatureScore> scores() const;  // the rows shown, in order
  qint64 featureAt(int row) const;
  bool isDense(int row) const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

 private:
  struct Row {
    core::FeatureScore score;
    double density;  // < 0: unknown
    QString label;
  };
  void arrange();

  QString header_;
  std::vector<Row> given_;  // as setScores received them, labels and densities read once
  std::vector<Row> rows_;   // shown
  std::function<QString(qint64)> labeler_;
  std::function<double(qint64)> density_;
  bool dense_last_ = true;
  int limit_ = 0;
};

}  // namespace monoscope::ui
