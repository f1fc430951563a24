#pragma once
// The feature list: a lazy table model over a feature database. Where the database holds the
// precomputed orders (FeatureDb::orderRange: sorted by density or max, whole or filtered to
// alive, dead or dense features) the model holds no ids at all: a row's id is read with its block
// of rows from the order when the view first shows it, so tens of millions of features sort at
// once and scroll smoothly. Other queries (searches, the labelled filter, filtered id order) keep
// their ids in memory (8 bytes each), at most kMaterialiseLimit of them: a longer result shows
// its first rows and says it was cut. A row's summary is read from SQLite when first shown.
#include <QAbstractTableModel>
#include <unordered_map>
#include <vector>

#include "api/feature_db.h"

namespace monoscope::ui {

class FeatureListModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { IdColumn, DensityColumn, MaxColumn, ExplanationColumn, ColumnCount };
  static constexpr int kFeatureIdRole = Qt::UserRole + 1;

  explicit FeatureListModel(QObject* parent = nullptr);

  // The database read from (not owned; nullptr empties the list).
  void setDatabase(const core::FeatureDb* db);
  // Re-runs the query (text search, filter, sort) and resets the model.
  void setQuery(const core::FeatureQuery& query);
  const core::FeatureQuery& query() const { return query_; }
  // Forgets cached rows (after an explanation or label changed).
  void refresh(qint64 feature = -1);

  qint64 featureAt(int row) const;
  int rowOf(qint64 feature) const;  // -1 when not in the list

  // Rows a query keeps in memory at most, and for a text search (matches in id order, then
  // sorted): a search typed into tens of millions of explanations stays interactive.
  static constexpr std::int64_t kMaterialiseLimit = 100000;
  static constexpr std::int64_t kSearchLimit = 20000;
  // Whether the list holds only the first rows of a longer result.
  bool truncated() const { return truncated_; }
  // Whether rows come straight from a precomputed order (no ids held).
  bool ranged() const { return ranged_; }

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;
  void sort(int column, Qt::SortOrder order = Qt::AscendingOrder) override;

 private:
  const core::FeatureSummary* row(int r) const;
  void reload();
  // The rows of a query: a range of a precomputed order, or ids held in memory.
  struct Rows {
    std::vector<std::int64_t> ids;
    bool truncated = false, ranged = false;
    std::int64_t begin = 0, end = 0;  // ascending positions of the range in the sort's order
  };
  Rows fetchRows(const core::FeatureQuery& query) const;
  void adopt(Rows rows);

  static constexpr std::int64_t kBlock = 256;  // rows read from an order at a time

  const core::FeatureDb* db_ = nullptr;
  core::FeatureQuery query_;
  std::vector<std::int64_t> ids_;
  bool truncated_ = false;
  bool ranged_ = false;
  std::int64_t begin_ = 0, end_ = 0;  // ascending positions of the range in the sort's order
  mutable std::unordered_map<std::int64_t, std::vector<std::int64_t>> blocks_;  // block -> ids (ascending)
  mutable std::unordered_map<std::int64_t, core::FeatureSummary> cache_;
  mutable std::unordered_map<std::int64_t, int> row_of_;  // built on first rowOf()
};

}  // namespace monoscope::ui
