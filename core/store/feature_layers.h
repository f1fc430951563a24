#pragma once
// Precomputed layers that keep a dictionary of tens of millions of features browsable without
// reading all of it: the feature orders (every feature's position when sorted by density or by
// maximum activation), and the map's level-of-detail pyramid (density tiles at several zooms,
// points bucketed into grid cells). Written once after the features table is complete (the index
// merge, a schema migration, the synthetic bench database), read by FeatureDb. Internal.
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "api/feature_db.h"
#include "api/progress.h"

namespace monoscope::core {

class Sqlite;

// (Re)builds the orders and the map layers from the features table, replacing any earlier ones.
// Returns false when cancelled (the tables are then left empty and the database reads as before).
bool buildFeatureLayers(Sqlite& db, const ProgressFn& progress = {});

// The ids at ascending positions [first, first + count) of `sort` (density or max activation,
// ties by id).
std::vector<std::int64_t> readOrder(Sqlite& db, FeatureSort sort, std::int64_t first, std::int64_t count);
// The ascending position of `feature` in `sort`, or -1.
std::int64_t readPosition(Sqlite& db, FeatureSort sort, std::int64_t feature);

MapLayout readMapLayout(Sqlite& db);
MapTile readMapTile(Sqlite& db, const MapLayout& layout, int level, int tx, int ty);
std::vector<MapPoint> readMapCell(Sqlite& db, std::int64_t cell);

}  // namespace monoscope::core
