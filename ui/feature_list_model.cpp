#include "feature_list_model.h"

#include <QColor>
#include <QLocale>
#include <algorithm>
#include <limits>

namespace monoscope::ui {

namespace {
constexpr std::size_t kCacheLimit = 20000;  // summaries kept (a few MB)
}

FeatureListModel::FeatureListModel(QObject* parent) : QAbstractTableModel(parent) {}

void FeatureListModel::setDatabase(const core::FeatureDb* db) {
  db_ = db;
  reload();
}

void FeatureListModel::setQuery(const core::FeatureQuery& query) {
  query_ = query;
  reload();
}

void FeatureListModel::reload() {
  Rows rows = fetchRows(query_);
  beginResetModel();
  cache_.clear();
  adopt(std::move(rows));
  endResetModel();
}

FeatureListModel::Rows FeatureListModel::fetchRows(const core::FeatureQuery& query) const {
  Rows out;
  if (!db_) return out;
  if (const auto range = db_->orderRange(query)) {
    out.ranged = true;
    out.begin = range->first;
    out.end = std::max(range->first, std::min<std::int64_t>(range->second, range->first + std::numeric_limits<int>::max()));
    return out;
  }
  const std::int64_t limit = query.text.empty() ? kMaterialiseLimit : kSearchLimit;
  std::int64_t total = 0;
  out.ids = db_->featureIds(query, limit, &total);
  out.truncated = total > limit;
  return out;
}

void FeatureListModel::adopt(Rows rows) {
  row_of_.clear();
  blocks_.clear();
  ids_ = std::move(rows.ids);
  truncated_ = rows.truncated;
  ranged_ = rows.ranged;
  begin_ = rows.begin;
  end_ = rows.end;
}

void FeatureListModel::refresh(qint64 feature) {
  if (feature < 0) {
    cache_.clear();
    if (rowCount() > 0) Q_EMIT dataChanged(index(0, 0), index(rowCount() - 1, ColumnCount - 1));
    return;
  }
  cache_.erase(feature);
  if (ranged_ && blocks_.empty()) return;  // no row of the order has been read yet
  const int r = rowOf(feature);
  if (r >= 0) Q_EMIT dataChanged(index(r, 0), index(r, ColumnCount - 1));
}

qint64 FeatureListModel::featureAt(int row) const {
  if (!ranged_) return row >= 0 && row < static_cast<int>(ids_.size()) ? ids_[row] : -1;
  if (row < 0 || row >= rowCount()) return -1;
  const std::int64_t pos = query_.descending ? end_ - 1 - row : begin_ + row;
  const std::int64_t block = pos / kBlock;
  auto it = blocks_.find(block);
  if (it == blocks_.end()) {
    if (blocks_.size() >= 256) blocks_.clear();
    try {
      it = blocks_.emplace(block, db_->idsInOrder(query_.sort, block * kBlock, kBlock)).first;
    } catch (const std::exception&) {
      return -1;
    }
  }
  const std::size_t at = static_cast<std::size_t>(pos - block * kBlock);
  return at < it->second.size() ? it->second[at] : -1;
}

int FeatureListModel::rowOf(qint64 feature) const {
  if (ranged_) {
    const std::int64_t pos = db_ ? db_->positionInOrder(query_.sort, feature) : -1;
    if (pos < begin_ || pos >= end_) return -1;
    return static_cast<int>(query_.descending ? end_ - 1 - pos : pos - begin_);
  }
  if (row_of_.empty() && !ids_.empty()) {
    row_of_.reserve(ids_.size());
    for (std::size_t i = 0; i < ids_.size(); ++i) row_of_.emplace(ids_[i], static_cast<int>(i));
  }
  const auto it = row_of_.find(feature);
  return it == row_of_.end() ? -1 : it->second;
}

const core::FeatureSummary* FeatureListModel::row(int r) const {
  if (!db_ || r < 0 || r >= rowCount()) return nullptr;
  const auto id = featureAt(r);
  if (id < 0) return nullptr;
  auto it = cache_.find(id);
  if (it != cache_.end()) return &it->second;
  if (cache_.size() >= kCacheLimit) cache_.clear();
  try {
    it = cache_.emplace(id, db_->summary(id)).first;
  } catch (const std::exception&) {
    core::FeatureSummary missing;
    missing.id = id;
    it = cache_.emplace(id, missing).first;
  }
  return &it->second;
}

int FeatureListModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid()) return 0;
  return ranged_ ? static_cast<int>(end_ - begin_) : static_cast<int>(ids_.size());
}

int FeatureListModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant FeatureListModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.model() != this || index.column() >= ColumnCount) return {};
  if (role == kFeatureIdRole) return QVariant::fromValue<qint64>(featureAt(index.row()));
  if (role != Qt::DisplayRole && role != Qt::ToolTipRole && role != Qt::TextAlignmentRole &&
      role != Qt::ForegroundRole)
    return {};
  const auto* s = row(index.row());
  if (!s) return {};
  const bool dead = s->count == 0;
  if (role == Qt::ForegroundRole) return dead ? QVariant(QColor(Qt::gray)) : QVariant();
  if (role == Qt::TextAlignmentRole)
    return index.column() == ExplanationColumn ? QVariant(int(Qt::AlignLeft | Qt::AlignVCenter))
                                               : QVariant(int(Qt::AlignRight | Qt::AlignVCenter));
  if (role == Qt::ToolTipRole) {
    return tr("Feature %1\n%2\ntop tokens: %3\n%4 activations, density %5")
        .arg(s->id)
        .arg(QString::fromStdString(s->explanation.empty() ? std::string("(no explanation)") : s->explanation))
        .arg(s->top_tokens.empty() ? QStringLiteral("-") : QString::fromStdString(s->top_tokens))
        .arg(s->count)
        .arg(s->density, 0, 'g', 3);
  }
  switch (index.column()) {
    case IdColumn: return QVariant::fromValue<qint64>(s->id);
    case DensityColumn: return dead ? tr("dead") : QString::number(s->density, 'e', 2);
    case MaxColumn: return QString::number(s->max_act, 'f', 2);
    case ExplanationColumn: return QString::fromStdString(s->explanation);
  }
  return {};
}

QVariant FeatureListModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, orientation, role);
  switch (section) {
    case IdColumn: return tr("ID");
    case DensityColumn: return tr("Density");
    case MaxColumn: return tr("Max");
    case ExplanationColumn: return tr("Explanation");
  }
  return {};
}

void FeatureListModel::sort(int column, Qt::SortOrder order) {
  core::FeatureSort sort = core::FeatureSort::Id;
  if (column == DensityColumn) sort = core::FeatureSort::Density;
  else if (column == MaxColumn) sort = core::FeatureSort::MaxActivation;
  else if (column != IdColumn) return;  // explanations are not ordered
  const bool descending = order == Qt::DescendingOrder;
  if (sort == query_.sort && descending == query_.descending) return;
  // A re-sort is a new id order; persistent indexes (selection, current: a few) are remapped by
  // feature id. A sort that changes the row count (a capped list against a whole order) resets.
  const auto old = persistentIndexList();
  std::vector<qint64> old_ids;
  old_ids.reserve(old.size());
  for (const auto& i : old) old_ids.push_back(featureAt(i.row()));
  core::FeatureQuery sorted = query_;
  sorted.sort = sort;
  sorted.descending = descending;
  Rows rows = fetchRows(sorted);
  const int new_rows = rows.ranged ? static_cast<int>(rows.end - rows.begin) : static_cast<int>(rows.ids.size());
  if (new_rows != rowCount()) {
    beginResetModel();
    query_ = sorted;
    cache_.clear();
    adopt(std::move(rows));
    endResetModel();
    return;
  }
  Q_EMIT layoutAboutToBeChanged();
  query_ = sorted;
  adopt(std::move(rows));
  QModelIndexList now;
  for (int i = 0; i < old.size(); ++i) {
    const int r = old_ids[i] < 0 ? -1 : rowOf(old_ids[i]);
    now.push_back(r < 0 ? QModelIndex() : index(r, old[i].column()));
  }
  changePersistentIndexList(old, now);
  Q_EMIT layoutChanged();
}

}  // namespace monoscope::ui
