#pragma once
// The map of a dictionary too large to hold as points (millions of features): density tiles and
// point cells read from the database's map layers (core MapLayout) as the view needs them, kept
// in bounded caches. Zoomed out the map is drawn from the tile level whose bins are about a
// device pixel; once the view holds few enough points (kPointBudget), from the points themselves.
// Reads are budgeted per frame: what is not read yet is drawn from a coarser cached level and
// filled in over the next frames, so no frame waits on many reads.
#include <QImage>
#include <QRgb>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "api/feature_db.h"

namespace monoscope::ui {

class MapLayers {
 public:
  static constexpr std::int64_t kPointBudget = 150000;   // points drawn one by one at most (default)
  static constexpr std::size_t kTileCacheLimit = 384;    // tiles (256 KB each as images)
  static constexpr std::int64_t kCellCachePoints = 2000000;

  // The database must outlive this object or be replaced first (nullptr clears).
  void setDatabase(const core::FeatureDb* db);
  bool active() const { return db_ != nullptr && layout_.present; }
  const core::FeatureDb* database() const { return db_; }
  const core::MapLayout& layout() const { return layout_; }

  // A tile as an image (row 0 the highest y), read when `may_read`; nullptr when absent or not
  // read. An empty tile is a null image.
  const QImage* tile(int level, int tx, int ty, bool may_read);
  // A cell's points, read when `may_read`; nullptr when not read.
  const std::vector<core::MapPoint>* cell(std::int64_t index, bool may_read);
  const std::vector<QRgb>* cellColors(std::int64_t index) const;

  QRgb colorOf(double log10_density) const;
  std::int64_t pointBudget() const { return point_budget_; }
  void setPointBudget(std::int64_t points) { point_budget_ = points; }

  // Statistics for benchmarks and tests.
  std::int64_t tileReads() const { return tile_reads_; }
  std::int64_t cellReads() const { return cell_reads_; }

 private:
  const core::FeatureDb* db_ = nullptr;
  core::MapLayout layout_;
  std::vector<QRgb> ramp_;  // 256 colours over [log_lo, log_hi]
  struct CachedTile {
    QImage image;
    std::list<std::int64_t>::iterator age;
  };
  std::unordered_map<std::int64_t, CachedTile> tiles_;
  std::list<std::int64_t> tile_age_;  // most recent first
  struct CachedCell {
    std::vector<core::MapPoint> points;
    std::vector<QRgb> colors;
    std::list<std::int64_t>::iterator age;
  };
  std::unordered_map<std::int64_t, CachedCell> cells_;
  std::list<std::int64_t> cell_age_;
  std::int64_t cell_points_ = 0;
  std::int64_t tile_reads_ = 0, cell_reads_ = 0;
  std::int64_t point_budget_ = kPointBudget;
};

}  // namespace monoscope::ui
