#pragma once
// The feature list: a lazy table model over a feature database. It keeps only the ids in the
// query's order (8 bytes a feature) and reads a row's summary from SQLite when the view first
// shows it, so a million features scroll smoothly.
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

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;
  void sort(int column, Qt::SortOrder order = Qt::AscendingOrder) override;

 private:
  const core::FeatureSummary* row(int r) const;
  void reload();

  const core::FeatureDb* db_ = nullptr;
  core::FeatureQuery query_;
  std::vector<std::int64_t> ids_;
  mutable std::unordered_map<std::int64_t, core::FeatureSummary> cache_;
  mutable std::unordered_map<std::int64_t, int> row_of_;  // built on first rowOf()
};

}  // namespace monoscope::ui
