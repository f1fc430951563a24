// Fuzz: arbitrary bytes opened as a feature database, then the queries the app makes. A file that
// is not a valid feature database must be refused with core::Error, never crash.
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
  } catch (const core::Error&) {
  }
  return 0;
}
