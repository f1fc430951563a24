#pragma once
// The features a steering run edits: id, explanation, value and whether the value is a
// multiple of the feature's max activation (e.g. 10x, -5x) or absolute. Value and unit are
// editable in place.
#include <QAbstractTableModel>
#include <vector>

#include "api/types.h"

namespace monoscope::ui {

struct SteeringFeature {
  qint64 feature = 0;
  QString label;
  float max_act = 0.0f;   // over the indexed corpus (0 when unknown)
  double value = 10.0;
  bool relative = true;   // value x max_act
};

class SteeringModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { FeatureColumn, ValueColumn, RelativeColumn, ExplanationColumn, ColumnCount };
  explicit SteeringModel(QObject* parent = nullptr);

  void add(const SteeringFeature& feature);  // replaces an existing entry of the same feature
  void removeRow(int row);
  void clear();
  const std::vector<SteeringFeature>& features() const { return features_; }

  // The edits in absolute values. Throws core::Error naming the feature when a relative value
  // has no known max activation.
  std::vector<core::FeatureEdit> edits() const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  bool setData(const QModelIndex& index, const QVariant& value, int role = Qt::EditRole) override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

 private:
  std::vector<SteeringFeature> features_;
};

}  // namespace monoscope::ui
