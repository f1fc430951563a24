#include "index/umap.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <array>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>

#include "util/error.h"

namespace monoscope::core {

std::pair<double, double> umapCurve(double min_dist, double spread) {
  std::vector<double> xs, ys;
  for (int i = 0; i < 300; ++i) {
    const double x = 3.0 * spread * i / 299.0;
    xs.push_back(x);
    ys.push_back(x < min_dist ? 1.0 : std::exp(-(x - min_dist) / spread));
  }
  auto loss = [&](double a, double b) {
    double s = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const double f = 1.0 / (1.0 + a * std::pow(xs[i], 2 * b));
      s += (f - ys[i]) * (f - ys[i]);
    }
    return s;
  };
  // Coarse-to-fine search over (log a, b).
  double la = 0.0, b = 1.0, step_a = 1.0, step_b = 0.5, best = loss(1.0, 1.0);
  for (int round = 0; round < 60; ++round) {
    bool moved = false;
    for (int da = -1; da <= 1; ++da)
      for (int db = -1; db <= 1; ++db) {
        const double na = la + da * step_a, nb = b + db * step_b;
        if (nb <= 0.05) continue;
        const double l = loss(std::exp(na), nb);
        if (l < best) best = l, la = na, b = nb, moved = true;
      }
    if (!moved) step_a *= 0.5, step_b *= 0.5;
  }
  return {std::exp(la), b};
}

namespace {

// Fuzzy simplicial set of a k-NN graph: symmetric edge list (heads, tails, weights).
struct Graph {
  at::Tensor heads, tails, weights;
};

Graph fuzzySet(const KnnResult& knn, std::int64_t n, std::int64_t k) {
  const at::Tensor dist = (1.0 - knn.sims.slice(1, 0, k).to(at::kDouble)).clamp_min(0.0);  // [n, k] cosine distances
  const at::Tensor ids = knn.ids.slice(1, 0, k);
  const double target = std::log2(static_cast<double>(k + 1));  // the point itself counts in umap-learn's k
  const at::Tensor rho = std::get<0>(at::where(dist > 0, dist, at::full_like(dist, INFINITY)).min(1));
  const at::Tensor rho_ok = at::where(at::isinf(rho), at::zeros_like(rho), rho).unsqueeze(1);  // [n, 1]
  const at::Tensor d = (dist - rho_ok).clamp_min(0.0);
  at::Tensor lo = at::zeros({n, 1}, at::kDouble), hi = at::full({n, 1}, INFINITY, at::kDouble), mid = at::ones({n, 1}, at::kDouble);
  for (int it = 0; it < 64; ++it) {
    const at::Tensor psum = at::exp(-d / mid).sum(1, true);
    const at::Tensor too_big = psum > target;  // sigma too large
    hi = at::where(too_big, mid, hi);
    lo = at::where(too_big, lo, mid);
    mid = at::where(at::isinf(hi), mid * 2, (lo + hi) / 2);
  }
  // umap-learn's floor on sigma: 1e-3 of the mean distance.
  const at::Tensor mean_d = dist.mean(1, true);
  const at::Tensor sigma = at::maximum(mid, 1e-3 * at::where(rho_ok > 0, mean_d, at::full_like(mean_d, dist.mean().item<double>())));
  const at::Tensor w = at::exp(-d / sigma);  // [n, k]
  // Symmetrise: w_ij + w_ji - w_ij * w_ji.
  const at::Tensor rows = at::arange(n, at::kLong).unsqueeze(1).expand({n, k}).reshape(-1);
  const at::Tensor cols = ids.reshape(-1);
  const at::Tensor wv = w.reshape(-1);
  const at::Tensor keys = at::cat({rows * n + cols, cols * n + rows});
  const at::Tensor vals = at::cat({wv, wv});
  auto uniq = at::_unique2(keys, /*sorted=*/true, /*return_inverse=*/true, /*return_counts=*/false);
  const at::Tensor ukeys = std::get<0>(uniq), inv = std::get<1>(uniq);
  const std::int64_t m = ukeys.numel();
  const at::Tensor sum = at::zeros({m}, at::kDouble).index_add_(0, inv, vals);
  const at::Tensor cnt = at::zeros({m}, at::kDouble).index_add_(0, inv, at::ones_like(vals));
  const at::Tensor logsum = at::zeros({m}, at::kDouble).index_add_(0, inv, at::log(vals.clamp_min(1e-300)));
  // Key i*n+j collects w_ij (forward) and w_ji (mirrored); both present when counted twice.
  const at::Tensor both = cnt > 1.5;
  const at::Tensor s = sum, prod = at::where(both, at::exp(logsum), at::zeros_like(sum));
  const at::Tensor weight = s - prod;
  Graph g;
  g.heads = at::div(ukeys, n, "floor");
  g.tails = ukeys - g.heads * n;
  g.weights = weight;
  const at::Tensor keep = g.heads != g.tails;
  g.heads = g.heads.index({keep});
  g.tails = g.tails.index({keep});
  g.weights = g.weights.index({keep});
  return g;
}

at::Tensor pcaInit(const at::Tensor& data, std::uint64_t seed) {
  const at::Tensor x = data.to(at::kDouble);
  const at::Tensor centred = x - x.mean(0, true);
  const at::Tensor cov = at::matmul(centred.t(), centred);  // [d, d]
  auto eig = at::linalg_eigh(cov);
  const at::Tensor vecs = std::get<1>(eig);  // ascending eigenvalues
  const std::int64_t d = vecs.size(1);
  const at::Tensor top = vecs.slice(1, std::max<std::int64_t>(0, d - 2), d).flip({1});
  at::Tensor y = at::matmul(centred, top);  // [n, 2]
  if (y.size(1) < 2) y = at::cat({y, at::zeros({y.size(0), 2 - y.size(1)}, y.options())}, 1);
  // Scale to a max coordinate of 10, plus tiny noise (as umap-learn's noisy_scale_coords).
  y = y * (10.0 / y.abs().max().clamp_min(1e-12));
  auto gen = at::detail::createCPUGenerator(seed);
  y = y + 1e-4 * at::randn(y.sizes(), gen, at::kDouble);
  // Each coordinate rescaled to [0, 10], as umap-learn does before optimising.
  const at::Tensor lo = std::get<0>(y.min(0, true)), hi = std::get<0>(y.max(0, true));
  return (10.0 * (y - lo) / (hi - lo).clamp_min(1e-12)).to(at::kFloat);
}

// Edge by edge, epoch by epoch (umap-learn's optimiser, in single precision like its numba code),
// on the CPU. The points are split into kSgdParts ranges of about equal work; each part moves its
// own points live and sees the other parts' points as they were when the epoch began, and
// attraction toward a point of another part is applied after the epoch, in a fixed order. So the
// parts can run on separate threads and the layout is the same for any thread count. y [n, 2]
// float, edges sorted by head.
constexpr int kSgdParts = 2;

struct SgdPart {
  std::int64_t edge_begin = 0, edge_end = 0;  // edges whose head this part owns
  std::int64_t point_begin = 0, point_end = 0;
  std::uint64_t state = 0;                     // xorshift64* state
  std::vector<std::pair<std::int64_t, std::array<float, 2>>> deferred;  // moves of other parts' points
};

bool sequentialSgd(at::Tensor& y_t, const at::Tensor& heads_t, const at::Tensor& tails_t, const at::Tensor& eps_t,
                   double a_d, double b_d, const UmapOptions& o, std::int64_t n_epochs, const ProgressFn& progress) {
  const std::int64_t n = y_t.size(0), m = heads_t.numel();
  float* y = y_t.data_ptr<float>();
  const at::Tensor h64 = heads_t.contiguous(), t64 = tails_t.contiguous(), e64 = eps_t.contiguous();
  const std::int64_t* head = h64.data_ptr<std::int64_t>();
  const std::int64_t* tail = t64.data_ptr<std::int64_t>();
  const double* eps = e64.data_ptr<double>();
  std::vector<double> next(eps, eps + m), eps_neg(static_cast<std::size_t>(m)), next_neg(static_cast<std::size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) next_neg[i] = eps_neg[i] = eps[i] / static_cast<double>(o.negative_sample_rate);
  // Split at a head boundary so that each part samples about the same number of edges.
  std::array<SgdPart, kSgdParts> parts;
  {
    double total = 0;
    for (std::int64_t i = 0; i < m; ++i) total += 1.0 / eps[i];
    double acc = 0;
    std::int64_t i = 0;
    for (int p = 0; p < kSgdParts; ++p) {
      SgdPart& part = parts[static_cast<std::size_t>(p)];
      part.edge_begin = i;
      part.point_begin = p == 0 ? 0 : parts[static_cast<std::size_t>(p - 1)].point_end;
      const double goal = total * (p + 1) / kSgdParts;
      if (p + 1 == kSgdParts) {
        i = m;
        part.point_end = n;
      } else {
        while (i < m && acc < goal) acc += 1.0 / eps[i++];
        while (i < m && i > 0 && head[i] == head[i - 1]) acc += 1.0 / eps[i++];  // keep a head's edges together
        part.point_end = i < m ? head[i] : n;
      }
      part.edge_end = i;
      part.state = (o.seed + static_cast<std::uint64_t>(p)) * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    }
  }
  std::vector<float> before(static_cast<std::size_t>(2 * n));
  const auto un = static_cast<std::uint64_t>(n);
  auto clip = [](float v) { return v > 4.0f ? 4.0f : (v < -4.0f ? -4.0f : v); };
  const float a = static_cast<float>(a_d), b = static_cast<float>(b_d);
  const float gamma = static_cast<float>(o.repulsion_strength);
  const float attract = -2.0f * a * b, repel = 2.0f * gamma * b;
  auto run = [&](SgdPart& part, float alpha, double now) {
    // Locals, so the loop keeps them in registers (the stores to y could alias `part`).
    std::uint64_t state = part.state;
    auto rnd = [&state]() {  // xorshift64*: the high 32 bits
      state ^= state >> 12;
      state ^= state << 25;
      state ^= state >> 27;
      return static_cast<std::uint32_t>((state * 0x2545F4914F6CDD1Dull) >> 32);
    };
    const auto first = static_cast<std::uint64_t>(part.point_begin);
    const auto width = static_cast<std::uint64_t>(part.point_end - part.point_begin);
    // Where a point is read from, without a branch: live if this part owns it, else the snapshot.
    float* const live = y;
    const float* const source[2] = {before.data(), live};
    auto mine = [first, width](std::int64_t k) { return static_cast<std::uint64_t>(k) - first < width; };
    std::vector<std::pair<std::int64_t, std::array<float, 2>>>& deferred = part.deferred;
    deferred.clear();
    const std::int64_t edge_end = part.edge_end;
    for (std::int64_t i = part.edge_begin; i < edge_end; ++i) {
      if (next[i] > now) continue;
      float* cur = live + 2 * head[i];
      const std::int64_t t = tail[i];
      const bool own = mine(t);
      const float* other = source[own] + 2 * t;
      float dx = cur[0] - other[0], dy = cur[1] - other[1];
      float d2 = dx * dx + dy * dy;
      if (d2 > 0.0f) {
        const float pb = std::exp2(b * std::log2(d2));
        const float gc = attract * (pb / d2) / (a * pb + 1.0f);
        const float gx = clip(gc * dx) * alpha, gy = clip(gc * dy) * alpha;
        cur[0] += gx, cur[1] += gy;
        if (own) {
          live[2 * t] -= gx, live[2 * t + 1] -= gy;
        } else {
          deferred.push_back({t, {-gx, -gy}});
        }
      }
      next[i] += eps[i];
      const auto n_neg = static_cast<std::int64_t>((now - next_neg[i]) / eps_neg[i]);
      const std::int64_t h = head[i];
      float cx = cur[0], cy = cur[1];
      for (std::int64_t q = 0; q < n_neg; ++q) {
        // A uniform point by multiply-shift (no division).
        const auto k = static_cast<std::int64_t>((static_cast<std::uint64_t>(rnd()) * un) >> 32);
        if (k == h) continue;
        other = source[mine(k)] + 2 * k;
        dx = cx - other[0], dy = cy - other[1];
        d2 = dx * dx + dy * dy;
        if (d2 > 0.0f) {
          const float gc = repel / ((0.001f + d2) * (a * std::exp2(b * std::log2(d2)) + 1.0f));
          cx += clip(gc * dx) * alpha, cy += clip(gc * dy) * alpha;
        } else {
          cx += 4.0f * alpha, cy += 4.0f * alpha;
        }
      }
      cur[0] = cx, cur[1] = cy;
      next_neg[i] += static_cast<double>(std::max<std::int64_t>(0, n_neg)) * eps_neg[i];
    }
    part.state = state;
  };
  const bool threaded = at::get_num_threads() > 1;
  for (std::int64_t epoch = 0; epoch < n_epochs; ++epoch) {
    const float alpha = static_cast<float>(o.learning_rate * (1.0 - static_cast<double>(epoch) / static_cast<double>(n_epochs)));
    const double now = static_cast<double>(epoch);
    std::copy(y, y + 2 * n, before.begin());
    if (threaded) {
      std::vector<std::thread> helpers;
      for (int p = 1; p < kSgdParts; ++p) helpers.emplace_back(run, std::ref(parts[static_cast<std::size_t>(p)]), alpha, now);
      run(parts[0], alpha, now);
      for (auto& h : helpers) h.join();
    } else {
      for (auto& part : parts) run(part, alpha, now);
    }
    for (const auto& part : parts)
      for (const auto& [t, d] : part.deferred) y[2 * t] += d[0], y[2 * t + 1] += d[1];
    if (progress && (epoch % 10 == 0 || epoch + 1 == n_epochs) && !progress(Progress{"umap", epoch + 1, n_epochs, {}})) return false;
  }
  return true;
}

}  // namespace

at::Tensor umapEmbed(const at::Tensor& data_in, const UmapOptions& o, const KnnResult* given, const ProgressFn& progress) {
  c10::InferenceMode guard;
  const at::Tensor data = data_in.to(at::kCPU, at::kFloat);
  const std::int64_t n = data.size(0);
  if (n < 4) throw Error("UMAP needs at least 4 points, got " + std::to_string(n));
  const std::int64_t k = std::min(o.n_neighbors - 1, n - 1);
  if (k < 1) throw Error("UMAP n_neighbors must be at least 2");
  KnnResult knn;
  if (given && given->ids.defined() && given->ids.size(1) >= k) {
    knn = *given;
  } else {
    knn = cosineKnn(data, k, o.knn, o.seed, progress);
    if (!knn.ids.defined()) return {};
  }
  const Graph g = fuzzySet(knn, n, k);
  const std::int64_t n_epochs = o.n_epochs > 0 ? o.n_epochs : (n <= 10000 ? 500 : 200);
  const auto [a, b] = umapCurve(o.min_dist, o.spread);
  // Prune edges too weak to be sampled (umap-learn: weight < max / n_epochs).
  const double wmax = g.weights.max().item<double>();
  const at::Tensor keep = g.weights >= wmax / static_cast<double>(n_epochs);
  const at::Tensor heads = g.heads.index({keep}), tails = g.tails.index({keep});
  const at::Tensor w = g.weights.index({keep});
  const at::Tensor eps = (wmax / w).to(at::kDouble);  // epochs per sample
  at::Tensor y = pcaInit(data, o.seed).contiguous();  // [n, 2]
  const bool batched = o.sgd == UmapSgd::Batched || (o.sgd == UmapSgd::Auto && !data_in.device().is_cpu());
  if (!batched) {
    if (!sequentialSgd(y, heads, tails, eps, a, b, o, n_epochs, progress)) return {};
    return y;
  }
  // Batched: every tensor on the data's device.
  const auto dev = data_in.device();
  y = y.to(dev);
  const at::Tensor H = heads.to(dev), T = tails.to(dev), E = eps.to(dev);
  const at::Tensor EN = E / static_cast<double>(o.negative_sample_rate);
  at::Tensor next_sample = E.clone(), next_neg = EN.clone();
  auto gen = at::detail::createCPUGenerator(o.seed + 1);
  for (std::int64_t epoch = 0; epoch < n_epochs; ++epoch) {
    const double alpha = o.learning_rate * (1.0 - static_cast<double>(epoch) / static_cast<double>(n_epochs));
    const at::Tensor active = next_sample <= static_cast<double>(epoch);
    const at::Tensor idx = active.nonzero().squeeze(1);
    if (idx.numel() > 0) {
      const at::Tensor h = H.index_select(0, idx), t = T.index_select(0, idx);
      // Attraction along sampled edges: both ends move.
      const at::Tensor diff = y.index_select(0, h) - y.index_select(0, t);  // [m, 2]
      const at::Tensor d2 = (diff * diff).sum(1, true);
      const at::Tensor coeff = at::where(d2 > 0, -2.0 * a * b * at::pow(d2, b - 1.0) / (a * at::pow(d2, b) + 1.0), at::zeros_like(d2));
      const at::Tensor grad = (coeff * diff).clamp(-4.0, 4.0) * alpha;
      at::Tensor delta = at::zeros_like(y);
      delta.index_add_(0, h, grad);
      delta.index_add_(0, t, -grad);
      // Repulsion from random points, as many per edge as its negative schedule owes.
      const at::Tensor owed = at::floor((static_cast<double>(epoch) - next_neg.index_select(0, idx)) / EN.index_select(0, idx))
                                  .clamp_min(0).to(at::kLong);
      const at::Tensor nh = h.repeat_interleave(owed);
      if (nh.numel() > 0) {
        const at::Tensor nt = at::randint(n, {nh.numel()}, gen, at::kLong).to(dev);
        const at::Tensor nd = y.index_select(0, nh) - y.index_select(0, nt);
        const at::Tensor nd2 = (nd * nd).sum(1, true);
        const at::Tensor rc = 2.0 * o.repulsion_strength * b / ((0.001 + nd2) * (a * at::pow(nd2, b) + 1.0));
        at::Tensor rg = at::where(nd2 > 0, (rc * nd).clamp(-4.0, 4.0), at::full_like(nd, 4.0));
        rg = at::where((nh == nt).unsqueeze(1), at::zeros_like(rg), rg);
        delta.index_add_(0, nh, rg * alpha);
      }
      y += delta;
      next_sample.index_put_({idx}, next_sample.index_select(0, idx) + E.index_select(0, idx));
      next_neg.index_put_({idx}, next_neg.index_select(0, idx) + owed.to(at::kDouble) * EN.index_select(0, idx));
    }
    if (progress && (epoch % 10 == 0 || epoch + 1 == n_epochs) && !progress(Progress{"umap", epoch + 1, n_epochs, {}})) return {};
  }
  return y.to(at::kCPU);
}

}  // namespace monoscope::core
