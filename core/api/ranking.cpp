#include "api/ranking.h"

#include <algorithm>
#include <numeric>

namespace monoscope::core {

std::vector<FeatureScore> topFeatures(const float* scores, std::size_t n, std::size_t k) {
  k = std::min(k, n);
  std::vector<std::int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), [scores](std::int64_t a, std::int64_t b) {
    return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;
  });
  std::vector<FeatureScore> out;
  for (std::size_t i = 0; i < k; ++i) out.push_back({order[i], scores[order[i]]});
  return out;
}

}  // namespace monoscope::core
