#include "store/feature_layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "store/schema.h"
#include "store/sqlite.h"
#include "util/error.h"

namespace monoscope::core {

namespace {

constexpr int kMaxLevels = 6;           // finest tile grid 256 * 2^5 = 8192 bins a side
constexpr int kMaxCells = 2048;         // point cells a side
constexpr int kPointsPerCell = 256;     // the cell grid aims at this many points a cell on average
constexpr float kDeadLog = -99.0f;      // log density stored for a dead feature's point

// A tile's non-empty bin as stored (16 bytes, little-endian as written on this platform).
struct StoredBin {
  std::uint32_t bin, count, alive;
  float mean_log_density;
};
// A point as stored in a cell.
struct StoredPoint {
  std::uint32_t id;
  float x, y, log_density;
};
static_assert(sizeof(StoredBin) == 16 && sizeof(StoredPoint) == 16, "packed records");

int sortCode(FeatureSort s) { return s == FeatureSort::MaxActivation ? 2 : 1; }

std::int64_t tileKey(int level, int tx, int ty) {
  return (static_cast<std::int64_t>(level) << 40) | (static_cast<std::int64_t>(ty) << 20) | tx;
}

bool report(const ProgressFn& progress, const char* detail, std::int64_t done, std::int64_t total) {
  return !progress || progress(Progress{"layers", done, total, detail});
}

// One order: walks the features by (column, id) through the column's index and writes each
// position; `position` receives every feature's position, `dead_prefix` the number of dead
// features when they are exactly the first positions (else -1).
bool writeOrder(Sqlite& db, FeatureSort sort, std::int64_t n, std::vector<std::uint32_t>& position,
                std::int64_t& dead_prefix, const ProgressFn& progress) {
  const std::string col = sort == FeatureSort::MaxActivation ? "max_act" : "density";
  auto sel = db.prepare("SELECT id, count FROM features ORDER BY " + col + ", id");
  auto ins = db.prepare("INSERT INTO feature_order(sort, rank, id) VALUES(?, ?, ?)");
  const int code = sortCode(sort);
  std::int64_t rank = 0, dead = 0;
  bool prefix = true;
  while (sel.step()) {
    const std::int64_t id = sel.integer(0);
    const bool is_dead = sel.integer(1) == 0;
    if (is_dead) {
      if (dead != rank) prefix = false;
      ++dead;
    }
    if (id >= 0 && id < n) position[static_cast<std::size_t>(id)] = static_cast<std::uint32_t>(rank);
    ins.bind(1, code).bind(2, rank).bind(3, id);
    ins.step();
    ins.reset();
    ++rank;
    if (rank % (1 << 20) == 0 && !report(progress, sort == FeatureSort::MaxActivation ? "order by max" : "order by density", rank, n))
      return false;
  }
  dead_prefix = prefix ? dead : -1;
  return true;
}

// The map pyramid and cells from every feature with a map position.
nlohmann::json writeMap(Sqlite& db, const ProgressFn& progress, std::string& cell_counts_blob, bool& cancelled) {
  std::vector<StoredPoint> pts;
  {
    auto st = db.prepare("SELECT id, umap_x, umap_y, density FROM features WHERE umap_x IS NOT NULL AND umap_y IS NOT NULL");
    while (st.step()) {
      const std::int64_t id = st.integer(0);
      const double x = st.real(1), y = st.real(2), d = st.real(3);
      if (id < 0 || id > std::numeric_limits<std::uint32_t>::max() || !std::isfinite(x) || !std::isfinite(y)) continue;
      pts.push_back({static_cast<std::uint32_t>(id), static_cast<float>(x), static_cast<float>(y),
                     d > 0 ? static_cast<float>(std::log10(d)) : kDeadLog});
    }
  }
  const std::int64_t n = static_cast<std::int64_t>(pts.size());
  if (n == 0) return nullptr;
  float min_x = pts[0].x, max_x = pts[0].x, min_y = pts[0].y, max_y = pts[0].y;
  double log_lo = 0, log_hi = -12;
  for (const auto& p : pts) {
    min_x = std::min(min_x, p.x), max_x = std::max(max_x, p.x);
    min_y = std::min(min_y, p.y), max_y = std::max(max_y, p.y);
    if (p.log_density > kDeadLog) log_lo = std::min(log_lo, double(p.log_density)), log_hi = std::max(log_hi, double(p.log_density));
  }
  if (log_hi < log_lo) log_lo = log_hi = 0;
  const double w = std::max(double(max_x) - min_x, 1e-6), h = std::max(double(max_y) - min_y, 1e-6);
  const double side = std::sqrt(static_cast<double>(n));
  const int levels = std::clamp(static_cast<int>(std::ceil(std::log2(std::max(1.0, side / kMapTileBins)))) + 1, 1, kMaxLevels);
  int cells = 1;
  while (cells < kMaxCells && static_cast<double>(cells) * cells * kPointsPerCell < static_cast<double>(n)) cells *= 2;
  auto binOf = [](double v, double lo, double span, int grid) {
    return std::clamp(static_cast<int>((v - lo) / span * grid), 0, grid - 1);
  };

  // Finest level first, then each coarser one by summing 2 x 2 bins.
  int grid = kMapTileBins << (levels - 1);
  std::vector<std::uint32_t> count(static_cast<std::size_t>(grid) * grid), alive(count.size());
  std::vector<float> sum(count.size());
  for (const auto& p : pts) {
    const std::size_t b = static_cast<std::size_t>(binOf(p.y, min_y, h, grid)) * grid + binOf(p.x, min_x, w, grid);
    ++count[b];
    if (p.log_density > kDeadLog) ++alive[b], sum[b] += p.log_density;
  }
  auto ins = db.prepare("INSERT INTO map_tiles(key, bins) VALUES(?, ?)");
  std::vector<StoredBin> bins;
  for (int level = levels - 1; level >= 0; --level) {
    const int tiles = 1 << level;
    for (int ty = 0; ty < tiles; ++ty)
      for (int tx = 0; tx < tiles; ++tx) {
        bins.clear();
        for (int by = 0; by < kMapTileBins; ++by) {
          const std::size_t row = static_cast<std::size_t>(ty * kMapTileBins + by) * grid + static_cast<std::size_t>(tx) * kMapTileBins;
          for (int bx = 0; bx < kMapTileBins; ++bx) {
            const std::size_t b = row + bx;
            if (count[b] == 0) continue;
            bins.push_back({static_cast<std::uint32_t>(by * kMapTileBins + bx), count[b], alive[b],
                            alive[b] ? sum[b] / static_cast<float>(alive[b]) : 0.0f});
          }
        }
        if (bins.empty()) continue;
        ins.bind(1, tileKey(level, tx, ty)).bindBlob(2, bins.data(), bins.size() * sizeof(StoredBin));
        ins.step();
        ins.reset();
      }
    if (!report(progress, "map tiles", levels - level, levels)) {
      cancelled = true;
      return nullptr;
    }
    if (level == 0) break;
    const int half = grid / 2;
    std::vector<std::uint32_t> c2(static_cast<std::size_t>(half) * half), a2(c2.size());
    std::vector<float> s2(c2.size());
    for (int y = 0; y < half; ++y)
      for (int x = 0; x < half; ++x) {
        const std::size_t o = static_cast<std::size_t>(y) * half + x;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) {
            const std::size_t i = static_cast<std::size_t>(2 * y + dy) * grid + 2 * x + dx;
            c2[o] += count[i], a2[o] += alive[i], s2[o] += sum[i];
          }
      }
    count.swap(c2), alive.swap(a2), sum.swap(s2);
    grid = half;
  }

  // Points by cell: a counting sort, then one blob a cell.
  std::vector<std::uint32_t> cell_of(pts.size());
  std::vector<std::uint32_t> per_cell(static_cast<std::size_t>(cells) * cells, 0);
  for (std::size_t i = 0; i < pts.size(); ++i) {
    cell_of[i] = static_cast<std::uint32_t>(binOf(pts[i].y, min_y, h, cells) * cells + binOf(pts[i].x, min_x, w, cells));
    ++per_cell[cell_of[i]];
  }
  std::vector<std::uint64_t> start(per_cell.size() + 1, 0);
  for (std::size_t c = 0; c < per_cell.size(); ++c) start[c + 1] = start[c] + per_cell[c];
  std::vector<StoredPoint> sorted(pts.size());
  {
    std::vector<std::uint64_t> next(start.begin(), start.end() - 1);
    for (std::size_t i = 0; i < pts.size(); ++i) sorted[next[cell_of[i]]++] = pts[i];
  }
  std::vector<StoredPoint>().swap(pts);
  auto ci = db.prepare("INSERT INTO map_cells(cell, points) VALUES(?, ?)");
  for (std::size_t c = 0; c < per_cell.size(); ++c) {
    if (per_cell[c] == 0) continue;
    ci.bind(1, static_cast<std::int64_t>(c)).bindBlob(2, sorted.data() + start[c], per_cell[c] * sizeof(StoredPoint));
    ci.step();
    ci.reset();
  }
  cell_counts_blob.assign(reinterpret_cast<const char*>(per_cell.data()), per_cell.size() * sizeof(std::uint32_t));
  return nlohmann::json{{"min_x", min_x}, {"max_x", max_x}, {"min_y", min_y}, {"max_y", max_y}, {"levels", levels},
                        {"cells", cells}, {"log_lo", log_lo}, {"log_hi", log_hi}, {"points", n}};
}

}  // namespace

std::int64_t MapLayout::pointsIn(int x0, int y0, int x1, int y1) const {
  if (!present || cells <= 0) return 0;
  x0 = std::clamp(x0, 0, cells), x1 = std::clamp(x1, 0, cells);
  y0 = std::clamp(y0, 0, cells), y1 = std::clamp(y1, 0, cells);
  if (x1 <= x0 || y1 <= y0) return 0;
  const auto at = [&](int x, int y) { return cell_prefix[static_cast<std::size_t>(y) * (cells + 1) + x]; };
  return at(x1, y1) - at(x0, y1) - at(x1, y0) + at(x0, y0);
}

bool buildFeatureLayers(Sqlite& db, const ProgressFn& progress) {
  db.exec("DELETE FROM feature_order; DELETE FROM feature_position; DELETE FROM map_tiles; DELETE FROM map_cells; "
          "DELETE FROM map_layout; DELETE FROM meta WHERE key = 'layers'");
  std::int64_t n = 0, min_id = 0, max_id = -1;
  {
    auto st = db.prepare("SELECT COUNT(*), MIN(id), MAX(id) FROM features");
    st.step();
    n = st.integer(0), min_id = st.integer(1), max_id = st.integer(2);
  }
  if (n == 0) return true;
  if (n > std::numeric_limits<std::uint32_t>::max())
    throw Error("'" + db.path() + "' holds " + std::to_string(n) + " features, more than the layers address", "split the dictionary");
  const bool dense_ids = min_id == 0 && max_id == n - 1;
  // Positions are kept only for dense ids (the indexer's): one array entry per id.
  std::vector<std::uint32_t> by_density(dense_ids ? static_cast<std::size_t>(n) : 0), by_max(by_density.size());
  std::int64_t dead_density = -1, dead_max = -1;
  auto clear = [&] {
    db.exec("DELETE FROM feature_order; DELETE FROM feature_position; DELETE FROM map_tiles; DELETE FROM map_cells");
    return false;
  };
  if (!writeOrder(db, FeatureSort::Density, dense_ids ? n : 0, by_density, dead_density, progress)) return clear();
  if (!writeOrder(db, FeatureSort::MaxActivation, dense_ids ? n : 0, by_max, dead_max, progress)) return clear();
  if (dense_ids) {
    auto ins = db.prepare("INSERT INTO feature_position(id, density, max_act) VALUES(?, ?, ?)");
    for (std::int64_t id = 0; id < n; ++id) {
      ins.bind(1, id).bind(2, static_cast<std::int64_t>(by_density[static_cast<std::size_t>(id)]))
          .bind(3, static_cast<std::int64_t>(by_max[static_cast<std::size_t>(id)]));
      ins.step();
      ins.reset();
    }
  } else {
    db.exec("INSERT INTO feature_position(id, density, max_act) SELECT d.id, d.rank, m.rank FROM feature_order d "
            "JOIN feature_order m ON m.id = d.id AND m.sort = 2 WHERE d.sort = 1");
  }
  std::vector<std::uint32_t>().swap(by_density);
  std::vector<std::uint32_t>().swap(by_max);
  bool cancelled = false;
  std::string cell_counts;
  const nlohmann::json map = writeMap(db, progress, cell_counts, cancelled);
  if (cancelled) return clear();
  if (!map.is_null()) {
    auto st = db.prepare("INSERT INTO map_layout(id, layout, cell_counts) VALUES(0, ?, ?)");
    st.bind(1, map.dump()).bindBlob(2, cell_counts.data(), cell_counts.size());
    st.step();
  }
  putMeta(db, "layers",
          nlohmann::json{{"features", n}, {"dense_ids", dense_ids}, {"dead_prefix_density", dead_density}, {"dead_prefix_max", dead_max}}
              .dump());
  return true;
}

std::vector<std::int64_t> readOrder(Sqlite& db, FeatureSort sort, std::int64_t first, std::int64_t count) {
  std::vector<std::int64_t> out;
  if (count <= 0) return out;
  auto st = db.prepare("SELECT id FROM feature_order WHERE sort = ? AND rank >= ? AND rank < ? ORDER BY rank");
  st.bind(1, sortCode(sort)).bind(2, first).bind(3, first + count);
  out.reserve(static_cast<std::size_t>(std::min<std::int64_t>(count, 1 << 20)));
  while (st.step()) out.push_back(st.integer(0));
  return out;
}

std::int64_t readPosition(Sqlite& db, FeatureSort sort, std::int64_t feature) {
  auto st = db.prepare(std::string("SELECT ") + (sort == FeatureSort::MaxActivation ? "max_act" : "density") +
                       " FROM feature_position WHERE id = ?");
  st.bind(1, feature);
  return st.step() ? st.integer(0) : -1;
}

MapLayout readMapLayout(Sqlite& db) {
  MapLayout m;
  auto st = db.prepare("SELECT layout, cell_counts FROM map_layout WHERE id = 0");
  if (!st.step()) return m;
  const auto j = nlohmann::json::parse(st.text(0), nullptr, false);
  const std::string where = "'" + db.path() + "': the map layout";
  try {
    if (!j.is_object()) throw nlohmann::json::type_error::create(302, "not an object", nullptr);
    m.min_x = j.at("min_x").get<float>(), m.max_x = j.at("max_x").get<float>();
    m.min_y = j.at("min_y").get<float>(), m.max_y = j.at("max_y").get<float>();
    m.levels = j.at("levels").get<int>(), m.cells = j.at("cells").get<int>();
    m.log_lo = j.at("log_lo").get<double>(), m.log_hi = j.at("log_hi").get<double>();
    m.points = j.at("points").get<std::int64_t>();
  } catch (const nlohmann::json::exception&) {
    throw Error(where + " is malformed", "the file is damaged; rebuild it with the index command");
  }
  const auto counts = st.blobAs<std::uint32_t>(1);
  if (m.levels < 1 || m.levels > kMaxLevels || m.cells < 1 || m.cells > kMaxCells ||
      counts.size() != static_cast<std::size_t>(m.cells) * m.cells || !(m.max_x >= m.min_x) || !(m.max_y >= m.min_y))
    throw Error(where + " is out of range", "the file is damaged; rebuild it with the index command");
  const int c = m.cells;
  m.cell_prefix.assign(static_cast<std::size_t>(c + 1) * (c + 1), 0);
  for (int y = 0; y < c; ++y) {
    std::int64_t row = 0;
    for (int x = 0; x < c; ++x) {
      row += counts[static_cast<std::size_t>(y) * c + x];
      m.cell_prefix[static_cast<std::size_t>(y + 1) * (c + 1) + x + 1] = m.cell_prefix[static_cast<std::size_t>(y) * (c + 1) + x + 1] + row;
    }
  }
  m.present = true;
  return m;
}

MapTile readMapTile(Sqlite& db, const MapLayout& layout, int level, int tx, int ty) {
  MapTile t;
  if (!layout.present || level < 0 || level >= layout.levels || tx < 0 || ty < 0 || tx >= (1 << level) || ty >= (1 << level)) return t;
  auto st = db.prepare("SELECT bins FROM map_tiles WHERE key = ?");
  st.bind(1, tileKey(level, tx, ty));
  if (!st.step()) return t;
  const std::size_t nb = static_cast<std::size_t>(kMapTileBins) * kMapTileBins;
  t.count.assign(nb, 0), t.alive.assign(nb, 0), t.mean_log_density.assign(nb, 0.0f);
  const std::size_t n = st.blobSize(0) / sizeof(StoredBin);
  const auto* p = static_cast<const unsigned char*>(st.blob(0));
  for (std::size_t i = 0; i < n; ++i) {
    StoredBin b;
    std::memcpy(&b, p + i * sizeof(StoredBin), sizeof b);
    if (b.bin >= nb) continue;  // a damaged record is skipped, never written out of bounds
    t.count[b.bin] = b.count, t.alive[b.bin] = std::min(b.alive, b.count), t.mean_log_density[b.bin] = b.mean_log_density;
  }
  return t;
}

std::vector<MapPoint> readMapCell(Sqlite& db, std::int64_t cell) {
  std::vector<MapPoint> out;
  auto st = db.prepare("SELECT points FROM map_cells WHERE cell = ?");
  st.bind(1, cell);
  if (!st.step()) return out;
  const std::size_t n = st.blobSize(0) / sizeof(StoredPoint);
  const auto* p = static_cast<const unsigned char*>(st.blob(0));
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    StoredPoint s;
    std::memcpy(&s, p + i * sizeof(StoredPoint), sizeof s);
    out.push_back({static_cast<std::int64_t>(s.id), s.x, s.y, s.log_density > kDeadLog ? std::pow(10.0, double(s.log_density)) : 0.0});
  }
  return out;
}

}  // namespace monoscope::core
