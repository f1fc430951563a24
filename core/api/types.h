#pragma once
// Plain value types shared by the public API and the engine: steering kinds and small records.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace monoscope::core {

enum class SteerMode {
  Clamp,   // x' = x + sum_i (c_i - f_i(x)) W_dec[i]   (the SAE error term is kept)
  Add,     // x' = x + sum_i c_i W_dec[i]
  Ablate,  // clamp to 0
};
enum class SteerPositions { All, Prompt, Generated };

SteerMode parseSteerMode(const std::string& s);
SteerPositions parseSteerPositions(const std::string& s);
const char* steerModeName(SteerMode m);
const char* steerPositionsName(SteerPositions p);

struct FeatureEdit {
  std::int64_t feature = 0;
  double value = 0.0;  // clamp target or additive coefficient (ignored by Ablate)
};

// A feature with a score (an activation, an attribution, a search rank).
struct FeatureScore {
  std::int64_t feature = 0;
  double score = 0.0;
};

// Equal-width bins over [lo, hi].
struct Histogram {
  double lo = 0.0, hi = 0.0;
  std::vector<std::int64_t> counts;
};

}  // namespace monoscope::core
