#pragma once
// UMAP (McInnes, Healy & Melville 2018) on LibTorch, so it runs on CPU or GPU: a k-NN graph by
// cosine distance, its fuzzy simplicial set, PCA initialisation, then SGD on the cross-entropy
// with negative sampling (edge by edge on the CPU, in two parts that can run on two threads and
// give the same layout either way; all edges of an epoch at once on a GPU).
// Internal (LibTorch).
#include <ATen/ATen.h>

#include <cstdint>

#include "api/progress.h"
#include "index/neighbours.h"

namespace monoscope::core {

// How the layout is optimised: edge by edge on the CPU (umap-learn's order of updates), or all
// edges of an epoch at once as tensor operations (for GPUs).
enum class UmapSgd { Auto, Sequential, Batched };

struct UmapOptions {
  std::int64_t n_neighbors = 15;       // neighbourhood size, the point itself included (as umap-learn)
  double min_dist = 0.1;               // how tightly points may pack in the embedding
  double spread = 1.0;                 // scale of the embedded clusters
  std::int64_t n_epochs = 0;           // 0: 500 for up to 10,000 points, else 200
  std::int64_t negative_sample_rate = 5;
  double learning_rate = 1.0;
  double repulsion_strength = 1.0;     // gamma
  std::uint64_t seed = 0;
  KnnMethod knn = KnnMethod::Auto;
  UmapSgd sgd = UmapSgd::Auto;         // Auto: sequential on the CPU, batched on a GPU
};

// The curve 1 / (1 + a d^(2b)) closest to the min_dist/spread target (least squares).
std::pair<double, double> umapCurve(double min_dist, double spread);

// 2-D embedding [n, 2] of the rows of `data` [n, d]; reuses `knn` when given (k >= n_neighbors-1).
// Returns an undefined tensor when cancelled.
at::Tensor umapEmbed(const at::Tensor& data, const UmapOptions& options, const KnnResult* knn = nullptr,
                     const ProgressFn& progress = {});

}  // namespace monoscope::core
