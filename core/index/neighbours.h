#pragma once
// Nearest neighbours of rows by cosine similarity: exact (blocked matrix products) for small
// sets, approximate (HNSW, Debian's hnswlib) for large ones. Internal (LibTorch).
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "api/progress.h"

namespace monoscope::core {

enum class KnnMethod { Auto, Exact, Hnsw };
KnnMethod parseKnnMethod(const std::string& s);

struct KnnResult {
  at::Tensor ids;   // [n, k] int64, nearest first, the row itself excluded
  at::Tensor sims;  // [n, k] float cosine similarities
};

// Rows with more than this many vectors use HNSW under KnnMethod::Auto.
constexpr std::int64_t kExactKnnLimit = 30000;

// k nearest rows of every row of `rows` [n, d] by cosine similarity. Returns undefined tensors
// when cancelled. Zero rows get similarity 0 to everything.
KnnResult cosineKnn(const at::Tensor& rows, std::int64_t k, KnnMethod method, std::uint64_t seed, const ProgressFn& progress = {});

}  // namespace monoscope::core
