#pragma once
// A short ranked list of features with a score each (top features of a token, contrastive
// search, attribution): id, score and the feature's explanation.
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

  void setLabeler(std::function<QString(qint64)> labeler) { labeler_ = std::move(labeler); }
  void setScores(std::vector<core::FeatureScore> scores);
  const std::vector<core::FeatureScore>& scores() const { return scores_; }
  qint64 featureAt(int row) const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

 private:
  QString header_;
  std::vector<core::FeatureScore> scores_;
  std::vector<QString> labels_;
  std::function<QString(qint64)> labeler_;
};

}  // namespace monoscope::ui
