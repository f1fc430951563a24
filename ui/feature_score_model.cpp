#include "feature_score_model.h"

namespace monoscope::ui {

FeatureScoreModel::FeatureScoreModel(QString score_header, QObject* parent)
    : QAbstractTableModel(parent), header_(std::move(score_header)) {}

void FeatureScoreModel::setScores(std::vector<core::FeatureScore> scores) {
  beginResetModel();
  scores_ = std::move(scores);
  labels_.clear();
  for (const auto& s : scores_) labels_.push_back(labeler_ ? labeler_(s.feature) : QString());
  endResetModel();
}

qint64 FeatureScoreModel::featureAt(int row) const {
  return row >= 0 && row < static_cast<int>(scores_.size()) ? scores_[row].feature : -1;
}

int FeatureScoreModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(scores_.size());
}

int FeatureScoreModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant FeatureScoreModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.model() != this || index.row() >= static_cast<int>(scores_.size())) return {};
  const auto& s = scores_[index.row()];
  if (role == Qt::UserRole) return QVariant::fromValue<qint64>(s.feature);
  if (role == Qt::TextAlignmentRole)
    return index.column() == ExplanationColumn ? QVariant(int(Qt::AlignLeft | Qt::AlignVCenter))
                                               : QVariant(int(Qt::AlignRight | Qt::AlignVCenter));
  if (role != Qt::DisplayRole && role != Qt::ToolTipRole) return {};
  switch (index.column()) {
    case IdColumn: return QVariant::fromValue<qint64>(s.feature);
    case ScoreColumn: return QString::number(s.score, 'f', 3);
    case ExplanationColumn: return labels_[index.row()];
  }
  return {};
}

QVariant FeatureScoreModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, orientation, role);
  switch (section) {
    case IdColumn: return tr("Feature");
    case ScoreColumn: return header_;
    case ExplanationColumn: return tr("Explanation");
  }
  return {};
}

}  // namespace monoscope::ui
