#include "feature_list_model.h"

#include <QColor>
#include <QLocale>

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
  beginResetModel();
  cache_.clear();
  row_of_.clear();
  ids_.clear();
  if (db_) ids_ = db_->featureIds(query_);
  endResetModel();
}

void FeatureListModel::refresh(qint64 feature) {
  if (feature < 0) {
    cache_.clear();
    if (!ids_.empty()) Q_EMIT dataChanged(index(0, 0), index(rowCount() - 1, ColumnCount - 1));
    return;
  }
  cache_.erase(feature);
  const int r = rowOf(feature);
  if (r >= 0) Q_EMIT dataChanged(index(r, 0), index(r, ColumnCount - 1));
}

qint64 FeatureListModel::featureAt(int row) const {
  return row >= 0 && row < static_cast<int>(ids_.size()) ? ids_[row] : -1;
}

int FeatureListModel::rowOf(qint64 feature) const {
  if (row_of_.empty() && !ids_.empty()) {
    row_of_.reserve(ids_.size());
    for (std::size_t i = 0; i < ids_.size(); ++i) row_of_.emplace(ids_[i], static_cast<int>(i));
  }
  const auto it = row_of_.find(feature);
  return it == row_of_.end() ? -1 : it->second;
}

const core::FeatureSummary* FeatureListModel::row(int r) const {
  if (!db_ || r < 0 || r >= static_cast<int>(ids_.size())) return nullptr;
  const auto id = ids_[r];
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
  return parent.isValid() ? 0 : static_cast<int>(ids_.size());
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
        .arg(QString::fromStdString(s->top_tokens))
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
  query_.sort = sort;
  query_.descending = descending;
  Q_EMIT layoutAboutToBeChanged();
  // A re-sort is a new id order; persistent indexes are remapped by feature id.
  const auto old = persistentIndexList();
  std::vector<qint64> old_ids;
  old_ids.reserve(old.size());
  for (const auto& i : old) old_ids.push_back(featureAt(i.row()));
  ids_ = db_ ? db_->featureIds(query_) : std::vector<std::int64_t>{};
  row_of_.clear();
  // The few persistent indexes (selection, current) found in one pass over the new order, not
  // through a map of every row.
  std::unordered_map<std::int64_t, int> new_row;
  for (const qint64 id : old_ids) new_row.emplace(id, -1);
  std::size_t missing = new_row.size();
  for (std::size_t r = 0; r < ids_.size() && missing > 0; ++r) {
    const auto it = new_row.find(ids_[r]);
    if (it != new_row.end() && it->second < 0) it->second = static_cast<int>(r), --missing;
  }
  QModelIndexList now;
  for (int i = 0; i < old.size(); ++i) {
    const int r = new_row.at(old_ids[i]);
    now.push_back(r < 0 ? QModelIndex() : index(r, old[i].column()));
  }
  changePersistentIndexList(old, now);
  Q_EMIT layoutChanged();
}

}  // namespace monoscope::ui
