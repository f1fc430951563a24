#include "feature_score_model.h"

#include <QBrush>
#include <QPalette>
#include <algorithm>

namespace monoscope::ui {

FeatureScoreModel::FeatureScoreModel(QString score_header, QObject* parent)
    : QAbstractTableModel(parent), header_(std::move(score_header)) {}

void FeatureScoreModel::setScores(std::vector<core::FeatureScore> scores) {
  given_ = std::move(scores);
  arrange();
}

void FeatureScoreModel::setDenseLast(bool on) {
  if (on == dense_last_) return;
  dense_last_ = on;
  arrange();
}

void FeatureScoreModel::setLimit(int rows) {
  limit_ = std::max(0, rows);
  arrange();
}

void FeatureScoreModel::arrange() {
  beginResetModel();
  std::vector<std::pair<core::FeatureScore, double>> rows;
  for (const auto& s : given_) rows.push_back({s, density_ ? density_(s.feature) : -1.0});
  if (dense_last_)
    std::stable_partition(rows.begin(), rows.end(), [](const auto& r) { return !(r.second > kDense); });
  if (limit_ > 0 && static_cast<int>(rows.size()) > limit_) rows.resize(static_cast<std::size_t>(limit_));
  scores_.clear();
  densities_.clear();
  labels_.clear();
  for (const auto& [s, d] : rows) {
    scores_.push_back(s);
    densities_.push_back(d);
    QString label = labeler_ ? labeler_(s.feature) : QString();
    if (d > kDense) label = tr("Dense (%1% of tokens): %2").arg(100.0 * d, 0, 'f', 0).arg(label);
    labels_.push_back(label);
  }
  endResetModel();
}

qint64 FeatureScoreModel::featureAt(int row) const {
  return row >= 0 && row < static_cast<int>(scores_.size()) ? scores_[row].feature : -1;
}

bool FeatureScoreModel::isDense(int row) const {
  return row >= 0 && row < static_cast<int>(densities_.size()) && densities_[static_cast<std::size_t>(row)] > kDense;
}

int FeatureScoreModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(scores_.size());
}

int FeatureScoreModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant FeatureScoreModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.model() != this || index.row() >= static_cast<int>(scores_.size())) return {};
  const auto& s = scores_[index.row()];
  if (role == Qt::UserRole) return QVariant::fromValue<qint64>(s.feature);
  if (role == Qt::ForegroundRole)
    return isDense(index.row()) ? QVariant(QPalette().brush(QPalette::Disabled, QPalette::Text)) : QVariant();
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
