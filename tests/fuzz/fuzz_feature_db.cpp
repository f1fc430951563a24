// Fuzz: arbitrary bytes opened as a feature database, then the queries the app makes. A file that
// is not a valid feature database must be refused with core::Error, never crash; damaged layers
// (orders, map tiles and cells) likewise.
#include "api/feature_db.h"
#include "fuzz_util.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace monoscope;
  const std::string path = fuzz::writeScratch("f.db", data, size);
  std::remove((path + "-wal").c_str());
  std::remove((path + "-shm").c_str());
  try {
    const auto db = core::FeatureDb::open(path, core::FeatureDb::Mode::ReadOnly);
    core::FeatureQuery q;
    q.limit = 5;
    for (const auto& s : db->listFeatures(q)) (void)db->page(s.id);
    (void)db->mapPoints();
    q.text = "the";
    (void)db->featureIds(q);
    std::int64_t total = 0;
    (void)db->featureIds(q, 10, &total);
    // The layers of large dictionaries: orders and the map's tiles and cells.
    q.text.clear();
    for (const auto sort : {core::FeatureSort::Density, core::FeatureSort::MaxActivation}) {
      q.sort = sort;
      if (const auto range = db->orderRange(q)) {
        for (const auto id : db->idsInOrder(sort, range->first, 8)) (void)db->positionInOrder(sort, id);
      }
      q.filter = core::FeatureFilter::Dense;
      (void)db->featureIds(q, 10, &total);
      q.filter = core::FeatureFilter::All;
    }
    const auto& layout = db->mapLayout();
    if (layout.present) {
      (void)layout.pointsIn(0, 0, layout.cells, layout.cells);
      for (int level = 0; level < layout.levels && level < 3; ++level) (void)db->mapTile(level, 0, 0);
      for (std::int64_t c = 0; c < 4; ++c) (void)db->mapCell(c);
    }
  } catch (const core::Error&) {
  }
  return 0;
}
