// FeatureDb's layers of large dictionaries (schema 4): feature orders and the map's tiles and
// cells, read through store/feature_layers.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "store/feature_db_impl.h"
#include "store/feature_layers.h"
#include "store/schema.h"

namespace monoscope::core {

void readLayers(FeatureDb::Impl& impl, const std::string& where) {
  if (!impl.db->hasTable("feature_order")) return;
  const auto layers = nlohmann::json::parse(getMeta(*impl.db, "layers", "null"), nullptr, false);
  if (!layers.is_object()) return;  // a migrated file whose layers were never built, or were cancelled
  try {
    impl.layer_features = layers.at("features").get<std::int64_t>();
    impl.dense_ids = layers.at("dense_ids").get<bool>();
    impl.dead_prefix_density = layers.at("dead_prefix_density").get<std::int64_t>();
    impl.dead_prefix_max = layers.at("dead_prefix_max").get<std::int64_t>();
  } catch (const nlohmann::json::exception&) {
    throw Error(where + "layers is malformed", "the file is damaged; rebuild it with the index command");
  }
  if (impl.layer_features < 0 || impl.dead_prefix_density > impl.layer_features || impl.dead_prefix_max > impl.layer_features)
    throw Error(where + "layers is out of range", "the file is damaged; rebuild it with the index command");
  impl.layers = true;
  impl.map = readMapLayout(*impl.db);
}

bool FeatureDb::hasLayers() const { return impl_->layers; }

std::optional<std::pair<std::int64_t, std::int64_t>> FeatureDb::orderRange(const FeatureQuery& q) const {
  const Impl& m = *impl_;
  if (!m.layers || !ftsQuery(q.text).empty()) return std::nullopt;
  const std::int64_t n = m.layer_features;
  if (q.filter == FeatureFilter::All && (q.sort != FeatureSort::Id || m.dense_ids)) return std::make_pair<std::int64_t, std::int64_t>(0, std::int64_t(n));
  if (q.sort == FeatureSort::Id) return std::nullopt;
  const std::int64_t dead = q.sort == FeatureSort::Density ? m.dead_prefix_density : m.dead_prefix_max;
  if (q.filter == FeatureFilter::Dead && dead >= 0) return std::make_pair<std::int64_t, std::int64_t>(0, std::int64_t(dead));
  if (q.filter == FeatureFilter::Alive && dead >= 0) return std::make_pair(dead, n);
  if (q.filter == FeatureFilter::Dense && q.sort == FeatureSort::Density) {
    auto st = m.db->prepare("SELECT COUNT(*) FROM features WHERE density > ?");
    st.bind(1, q.dense_threshold);
    st.step();
    return std::make_pair(n - st.integer(0), n);
  }
  return std::nullopt;
}

std::vector<std::int64_t> FeatureDb::idsInOrder(FeatureSort sort, std::int64_t first, std::int64_t count) const {
  const Impl& m = *impl_;
  if (!m.layers) throw Error("'" + m.info.path + "' has no feature orders", "open it once for writing to build them");
  first = std::max<std::int64_t>(0, first);
  count = std::clamp<std::int64_t>(count, 0, std::max<std::int64_t>(0, m.layer_features - first));
  if (sort != FeatureSort::Id) return readOrder(*m.db, sort, first, count);
  std::vector<std::int64_t> out(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) out[static_cast<std::size_t>(i)] = first + i;
  return out;
}

std::int64_t FeatureDb::positionInOrder(FeatureSort sort, std::int64_t feature) const {
  const Impl& m = *impl_;
  if (!m.layers || feature < 0) return -1;
  if (sort == FeatureSort::Id) return m.dense_ids && feature < m.layer_features ? feature : -1;
  return readPosition(*m.db, sort, feature);
}

const MapLayout& FeatureDb::mapLayout() const { return impl_->map; }

MapTile FeatureDb::mapTile(int level, int tx, int ty) const { return readMapTile(*impl_->db, impl_->map, level, tx, ty); }

std::vector<MapPoint> FeatureDb::mapCell(std::int64_t cell) const {
  const auto& m = impl_->map;
  if (!m.present || cell < 0 || cell >= static_cast<std::int64_t>(m.cells) * m.cells) return {};
  return readMapCell(*impl_->db, cell);
}

std::optional<MapPoint> FeatureDb::mapPoint(std::int64_t feature) const {
  auto st = impl_->db->prepare("SELECT umap_x, umap_y, density FROM features WHERE id = ? AND umap_x IS NOT NULL AND umap_y IS NOT NULL");
  st.bind(1, feature);
  if (!st.step()) return std::nullopt;
  return MapPoint{feature, static_cast<float>(st.real(0)), static_cast<float>(st.real(1)), st.real(2)};
}

}  // namespace monoscope::core
