#include "steering_model.h"

#include <cmath>

#include "util/error.h"

namespace monoscope::ui {

namespace {
constexpr double kValueLimit = 1e6;  // |value| beyond this is refused as a typo
}

SteeringModel::SteeringModel(QObject* parent) : QAbstractTableModel(parent) {}

void SteeringModel::add(const SteeringFeature& feature) {
  for (std::size_t i = 0; i < features_.size(); ++i) {
    if (features_[i].feature != feature.feature) continue;
    features_[i] = feature;
    Q_EMIT dataChanged(index(static_cast<int>(i), 0), index(static_cast<int>(i), ColumnCount - 1));
    return;
  }
  const int row = static_cast<int>(features_.size());
  beginInsertRows({}, row, row);
  features_.push_back(feature);
  endInsertRows();
}

void SteeringModel::removeRow(int row) {
  if (row < 0 || row >= static_cast<int>(features_.size())) return;
  beginRemoveRows({}, row, row);
  features_.erase(features_.begin() + row);
  endRemoveRows();
}

void SteeringModel::clear() {
  beginResetModel();
  features_.clear();
  endResetModel();
}

std::vector<core::FeatureEdit> SteeringModel::edits() const {
  std::vector<core::FeatureEdit> out;
  for (const auto& f : features_) {
    if (f.relative && !(f.max_act > 0.0f))
      throw core::Error("feature " + std::to_string(f.feature) + ": its max activation is unknown (dead, or no database)",
                        "give an absolute value instead of a multiple of the max");
    out.push_back({f.feature, f.relative ? f.value * f.max_act : f.value});
  }
  return out;
}

int SteeringModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(features_.size());
}
int SteeringModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant SteeringModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.model() != this || index.row() >= static_cast<int>(features_.size())) return {};
  const auto& f = features_[index.row()];
  if (index.column() == RelativeColumn) {
    if (role == Qt::CheckStateRole) return f.relative ? Qt::Checked : Qt::Unchecked;
    if (role == Qt::DisplayRole) return f.relative ? tr("x max (%1)").arg(f.max_act, 0, 'f', 2) : tr("absolute");
    return {};
  }
  if (role == Qt::EditRole && index.column() == ValueColumn) return f.value;
  if (role != Qt::DisplayRole && role != Qt::ToolTipRole) return {};
  switch (index.column()) {
    case FeatureColumn: return QVariant::fromValue<qint64>(f.feature);
    case ValueColumn: return QString::number(f.value, 'g', 4);
    case ExplanationColumn: return f.label;
  }
  return {};
}

bool SteeringModel::setData(const QModelIndex& index, const QVariant& value, int role) {
  if (!index.isValid() || index.row() >= static_cast<int>(features_.size())) return false;
  auto& f = features_[index.row()];
  if (index.column() == ValueColumn && role == Qt::EditRole) {
    bool ok = false;
    const double v = value.toString().trimmed().remove('x').toDouble(&ok);
    if (!ok || !std::isfinite(v) || std::abs(v) > kValueLimit) return false;
    f.value = v;
  } else if (index.column() == RelativeColumn && role == Qt::CheckStateRole) {
    f.relative = value.toInt() == Qt::Checked;
  } else {
    return false;
  }
  Q_EMIT dataChanged(this->index(index.row(), 0), this->index(index.row(), ColumnCount - 1));
  return true;
}

Qt::ItemFlags SteeringModel::flags(const QModelIndex& index) const {
  if (!index.isValid()) return Qt::NoItemFlags;
  Qt::ItemFlags flags = Qt::ItemIsEnabled | Qt::ItemIsSelectable;
  if (index.column() == ValueColumn) flags |= Qt::ItemIsEditable;
  if (index.column() == RelativeColumn) flags |= Qt::ItemIsUserCheckable;
  return flags;
}

QVariant SteeringModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, orientation, role);
  switch (section) {
    case FeatureColumn: return tr("Feature");
    case ValueColumn: return tr("Value");
    case RelativeColumn: return tr("Unit");
    case ExplanationColumn: return tr("Explanation");
  }
  return {};
}

}  // namespace monoscope::ui
