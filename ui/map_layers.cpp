#include "map_layers.h"

#include <algorithm>
#include <cmath>

#include "map_view.h"

namespace monoscope::ui {

void MapLayers::setDatabase(const core::FeatureDb* db) {
  db_ = db;
  layout_ = db ? db->mapLayout() : core::MapLayout{};
  tiles_.clear();
  tile_age_.clear();
  cells_.clear();
  cell_age_.clear();
  cell_points_ = 0;
  ramp_.resize(256);
  for (int i = 0; i < 256; ++i)
    ramp_[i] = MapView::densityColor(layout_.log_lo + (layout_.log_hi - layout_.log_lo) * i / 255.0, layout_.log_lo, layout_.log_hi).rgb();
}

QRgb MapLayers::colorOf(double log10_density) const {
  if (!(log10_density > -90)) return qRgb(170, 170, 170);  // dead
  const double span = layout_.log_hi - layout_.log_lo;
  const int i = span > 0 ? std::clamp(static_cast<int>((log10_density - layout_.log_lo) / span * 255.0 + 0.5), 0, 255) : 128;
  return ramp_[static_cast<std::size_t>(i)];
}

const QImage* MapLayers::tile(int level, int tx, int ty, bool may_read) {
  const std::int64_t key = (static_cast<std::int64_t>(level) << 40) | (static_cast<std::int64_t>(ty) << 20) | tx;
  if (auto it = tiles_.find(key); it != tiles_.end()) {
    tile_age_.splice(tile_age_.begin(), tile_age_, it->second.age);
    return &it->second.image;
  }
  if (!may_read || !active()) return nullptr;
  const core::MapTile t = db_->mapTile(level, tx, ty);
  ++tile_reads_;
  QImage image;
  if (!t.count.empty()) {
    const int n = core::kMapTileBins;
    image = QImage(n, n, QImage::Format_ARGB32_Premultiplied);
    image.fill(Qt::transparent);
    // Opacity grows with the bin's count on a log scale, saturating at 50 times the level's
    // average bin, so sparse outskirts stay visible and dense cores read as solid.
    const double bins = std::ldexp(static_cast<double>(n) * n, 2 * level);
    const double saturate = std::max(4.0, 50.0 * static_cast<double>(layout_.points) / bins);
    for (int by = 0; by < n; ++by) {
      auto* row = reinterpret_cast<QRgb*>(image.scanLine(n - 1 - by));
      for (int bx = 0; bx < n; ++bx) {
        const std::size_t b = static_cast<std::size_t>(by) * n + bx;
        const std::uint32_t c = t.count[b];
        if (c == 0) continue;
        const QRgb rgb = t.alive[b] > 0 ? colorOf(t.mean_log_density[b]) : qRgb(170, 170, 170);
        const double a = std::clamp(0.3 + 0.7 * std::log1p(c) / std::log1p(saturate), 0.0, 1.0);
        const int alpha = static_cast<int>(a * 255 + 0.5);
        row[bx] = qRgba(qRed(rgb) * alpha / 255, qGreen(rgb) * alpha / 255, qBlue(rgb) * alpha / 255, alpha);
      }
    }
  }
  if (tiles_.size() >= kTileCacheLimit) {
    tiles_.erase(tile_age_.back());
    tile_age_.pop_back();
  }
  tile_age_.push_front(key);
  auto& slot = tiles_[key];
  slot.image = std::move(image);
  slot.age = tile_age_.begin();
  return &slot.image;
}

const std::vector<core::MapPoint>* MapLayers::cell(std::int64_t index, bool may_read) {
  if (auto it = cells_.find(index); it != cells_.end()) {
    cell_age_.splice(cell_age_.begin(), cell_age_, it->second.age);
    return &it->second.points;
  }
  if (!may_read || !active()) return nullptr;
  auto points = db_->mapCell(index);
  ++cell_reads_;
  while (!cell_age_.empty() && cell_points_ + static_cast<std::int64_t>(points.size()) > kCellCachePoints) {
    const auto old = cells_.find(cell_age_.back());
    cell_points_ -= static_cast<std::int64_t>(old->second.points.size());
    cells_.erase(old);
    cell_age_.pop_back();
  }
  cell_age_.push_front(index);
  auto& slot = cells_[index];
  slot.colors.reserve(points.size());
  for (const auto& p : points) slot.colors.push_back(p.density > 0 ? colorOf(std::log10(p.density)) : qRgb(170, 170, 170));
  cell_points_ += static_cast<std::int64_t>(points.size());
  slot.points = std::move(points);
  slot.age = cell_age_.begin();
  return &slot.points;
}

const std::vector<QRgb>* MapLayers::cellColors(std::int64_t index) const {
  const auto it = cells_.find(index);
  return it == cells_.end() ? nullptr : &it->second.colors;
}

}  // namespace monoscope::ui
