#include "feature_score_model.h"

#include <QBrush>
#include <QPalette>
#include <algorithm>

namespace monoscope::ui {

FeatureScoreModel::FeatureScoreModel(QString score_header, QObject* parent)
    : QAbstractTableModel(parent), header_(std::move(score_header)) {}

void FeatureScoreModel::setScores(std::vector<core::FeatureScore> scores) {
  given_.clear();
  for (const auto& s : scores) {
    Row r{s, density_ ? density_(s.feature) : -1.0, labeler_ ? labeler_(s.feature) : QString()};
    if (r.density > kDense) r.label = tr("Dense (%1% of tokens): %2").arg(100.0 * r.density, 0, 'f', 0).arg(r.label);
    given_.push_back(std::move(r));
  }
  arrange();
}

void FeatureScoreModel::setDensity(std::function<double(qint64)> density) {
  density_ = std::move(density);
  std::vector<core::FeatureScore> scores;
  for (const auto& r : given_) scores.push_back(r.score);
  setScores(std::move(scores));
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
  rows_ = given_;
  if (dense_last_)
    std::stable_partition(rows_.begin(), rows_.end(), [](const Row& r) { return !(r.density > kDense); });
  if (limit_ > 0 && static_cast<int>(rows_.size()) > limit_) rows_.resize(static_cast<std::size_t>(limit_));
  endResetModel();
}

std::vector<core::FeatureScore> FeatureScoreModel::scores() const {
  std::vector<core::FeatureScore> out;
  for (const auto& r : rows_) out.push_back(r.score);
  return out;
}

qint64 FeatureScoreModel::featureAt(int row) const {
  return row >= 0 && row < static_cast<int>(rows_.size()) ? rows_[static_cast<std::size_t>(row)].score.feature : -1;
}

bool FeatureScoreModel::isDense(int row) const {
  return row >= 0 && row < static_cast<int>(rows_.size()) && rows_[static_cast<std::size_t>(row)].density > kDense;
}

int FeatureScoreModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(rows_.size());
}

int FeatureScoreModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant FeatureScoreModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.model() != this || index.row() >= static_cast<int>(rows_.size())) return {};
  const auto& s = rows_[static_cast<std::size_t>(index.row())].score;
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
    case ExplanationColumn: return rows_[static_cast<std::size_t>(index.row())].label;
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
