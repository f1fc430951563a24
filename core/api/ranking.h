#pragma once
// Ranking features by a score vector (plain C++, no tensors).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "api/types.h"

namespace monoscope::core {

// The k highest entries of `scores` (ties by lower id), strongest first; k is capped at the size.
std::vector<FeatureScore> topFeatures(const float* scores, std::size_t n, std::size_t k);

}  // namespace monoscope::core
