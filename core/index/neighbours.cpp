#include "index/neighbours.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "util/error.h"

namespace monoscope::core {

KnnMethod parseKnnMethod(const std::string& s) {
  if (s == "auto") return KnnMethod::Auto;
  if (s == "exact") return KnnMethod::Exact;
  if (s == "hnsw") return KnnMethod::Hnsw;
  throw Error("unknown neighbour method '" + s + "'", "use auto, exact or hnsw");
}

namespace {

// The k best (similarity, id) of one row, best first; `floor` is the k-th best so far.
struct RowTop {
  std::vector<float> sim;
  std::vector<std::int64_t> id;
  float floor = -INFINITY;
  void offer(float v, std::int64_t j, std::size_t k) {
    // Ties go to the smaller id, so the result does not depend on the order of offers.
    std::size_t pos = sim.size();
    while (pos > 0 && (sim[pos - 1] < v || (sim[pos - 1] == v && id[pos - 1] > j))) --pos;
    if (pos >= k) return;
    sim.insert(sim.begin() + static_cast<std::ptrdiff_t>(pos), v);
    id.insert(id.begin() + static_cast<std::ptrdiff_t>(pos), j);
    if (sim.size() > k) sim.pop_back(), id.pop_back();
    if (sim.size() == k) floor = sim.back();
  }
};

// a @ b^T in fixed tiles of 64 rows, each on one thread: BLAS runs single-threaded inside the
// parallel region, so the bits do not depend on the thread count (some OpenBLAS kernels, e.g. with
// OPENBLAS_CORETYPE=Haswell, split a product differently for 1 and 2 threads).
at::Tensor tiledProduct(const at::Tensor& a, const at::Tensor& b) {
  constexpr std::int64_t kTile = 64;
  const std::int64_t rows = a.size(0);
  at::Tensor out = at::empty({rows, b.size(0)}, a.options());  // [ra, rb]
  const at::Tensor bt = b.t();
  at::parallel_for(0, (rows + kTile - 1) / kTile, 1, [&](std::int64_t t0, std::int64_t t1) {
    c10::InferenceMode guard;  // worker threads do not inherit it
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t s = t * kTile, e = std::min(rows, s + kTile);
      at::Tensor o = out.slice(0, s, e);
      at::mm_out(o, a.slice(0, s, e), bt);
    }
  });
  return out;
}

// On the CPU, each pair of row blocks is multiplied once (the similarity matrix is symmetric),
// and both blocks' rows take their candidates from that product: half the arithmetic of a full
// product. Elsewhere (a GPU), full products of a block of rows against all rows and top-k.
KnnResult exactKnn(const at::Tensor& unit, std::int64_t k, const ProgressFn& progress) {
  const std::int64_t n = unit.size(0);
  const std::int64_t block = 1024;
  if (!unit.device().is_cpu()) {
    std::vector<at::Tensor> ids, sims;
    for (std::int64_t s = 0; s < n; s += block) {
      const std::int64_t e = std::min(n, s + block);
      at::Tensor sim = at::matmul(unit.slice(0, s, e), unit.t());  // [b, n]
      // Exclude each row itself.
      sim.index_put_({at::arange(e - s, at::kLong).to(sim.device()), at::arange(s, e, at::kLong).to(sim.device())}, -2.0f);
      auto top = sim.topk(k, 1);
      sims.push_back(std::get<0>(top).to(at::kCPU));
      ids.push_back(std::get<1>(top).to(at::kCPU));
      if (progress && !progress(Progress{"neighbours", e, n, "exact"})) return {};
    }
    return {at::cat(ids, 0), at::cat(sims, 0)};
  }
  const auto uk = static_cast<std::size_t>(k);
  std::vector<RowTop> top(static_cast<std::size_t>(n));
  const std::int64_t blocks = (n + block - 1) / block;
  const std::int64_t pairs = blocks * (blocks + 1) / 2;
  std::int64_t done_pairs = 0;
  for (std::int64_t bi = 0; bi < blocks; ++bi) {
    const std::int64_t s = bi * block, e = std::min(n, s + block);
    for (std::int64_t bj = bi; bj < blocks; ++bj) {
      const std::int64_t s2 = bj * block, e2 = std::min(n, s2 + block);
      const at::Tensor sim = tiledProduct(unit.slice(0, s, e), unit.slice(0, s2, e2));  // [b, b2]
      const float* p = sim.data_ptr<float>();
      const std::int64_t w = e2 - s2;
      for (std::int64_t r = s; r < e; ++r) {
        const float* row = p + (r - s) * w;
        RowTop& mine = top[static_cast<std::size_t>(r)];
        for (std::int64_t c = 0; c < w; ++c) {
          const std::int64_t j = s2 + c;
          if (j == r) continue;
          const float v = row[c];
          if (v >= mine.floor) mine.offer(v, j, uk);
          if (bj != bi) {
            RowTop& theirs = top[static_cast<std::size_t>(j)];
            if (v >= theirs.floor) theirs.offer(v, r, uk);
          }
        }
      }
      ++done_pairs;
      if (progress && !progress(Progress{"neighbours", done_pairs * n / pairs, n, "exact"})) return {};
    }
  }
  at::Tensor ids = at::zeros({n, k}, at::kLong), sims = at::zeros({n, k}, at::kFloat);
  auto* ip = ids.data_ptr<std::int64_t>();
  auto* sp = sims.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    const RowTop& t = top[static_cast<std::size_t>(i)];
    for (std::size_t j = 0; j < uk; ++j) {
      const bool have = j < t.id.size();  // fewer only if similarities were not numbers
      ip[i * k + static_cast<std::int64_t>(j)] = have ? t.id[j] : i;
      sp[i * k + static_cast<std::int64_t>(j)] = have ? t.sim[j] : 0.0f;
    }
  }
  return {ids, sims};
}

KnnResult hnswKnn(const at::Tensor& unit_in, std::int64_t k, std::uint64_t seed, const ProgressFn& progress) {
  const at::Tensor unit = unit_in.to(at::kCPU, at::kFloat).contiguous();
  const std::int64_t n = unit.size(0), d = unit.size(1);
  hnswlib::InnerProductSpace space(static_cast<std::size_t>(d));
  hnswlib::HierarchicalNSW<float> index(&space, static_cast<std::size_t>(n), 16, 200, static_cast<std::size_t>(seed));
  const float* data = unit.data_ptr<float>();
  const unsigned threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::atomic<std::int64_t> next{0};
  std::atomic<bool> cancel{false};
  index.addPoint(data, 0);
  auto parallel = [&](auto&& fn) {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&] {
        for (std::int64_t i; !cancel && (i = next.fetch_add(1)) < n;) fn(i);
      });
    for (auto& t : pool) t.join();
  };
  // Insertion is sequential: Debian's hnswlib (0.6) reads past a link list when points are added
  // from several threads at once (AddressSanitizer finds it), and one inserting thread also
  // makes the graph, hence the neighbours, the same on every run. Searching is parallel.
  for (std::int64_t i = 1; i < n; ++i) {
    index.addPoint(data + i * d, static_cast<hnswlib::labeltype>(i));
    if (i % 4096 == 0 && progress && !progress(Progress{"neighbours", i / 2, n, "hnsw graph"})) return {};
  }
  if (progress && !progress(Progress{"neighbours", n / 2, n, "hnsw graph built"})) return {};
  index.setEf(static_cast<std::size_t>(std::max<std::int64_t>(64, 2 * k + 1)));
  at::Tensor ids = at::zeros({n, k}, at::kLong), sims = at::zeros({n, k}, at::kFloat);
  auto* ip = ids.data_ptr<std::int64_t>();
  auto* sp = sims.data_ptr<float>();
  parallel([&](std::int64_t i) {
    auto pq = index.searchKnn(data + i * d, static_cast<std::size_t>(k + 1));
    std::vector<std::pair<float, std::int64_t>> found;
    while (!pq.empty()) {
      if (static_cast<std::int64_t>(pq.top().second) != i) found.emplace_back(1.0f - pq.top().first, static_cast<std::int64_t>(pq.top().second));
      pq.pop();
    }
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (std::int64_t j = 0; j < k; ++j) {
      const bool have = j < static_cast<std::int64_t>(found.size());
      ip[i * k + j] = have ? found[static_cast<std::size_t>(j)].second : i;
      sp[i * k + j] = have ? found[static_cast<std::size_t>(j)].first : 0.0f;
    }
  });
  if (progress && !progress(Progress{"neighbours", n, n, "hnsw"})) return {};
  return {ids, sims};
}

}  // namespace

KnnResult cosineKnn(const at::Tensor& rows, std::int64_t k, KnnMethod method, std::uint64_t seed, const ProgressFn& progress) {
  c10::InferenceMode guard;
  const std::int64_t n = rows.size(0);
  if (n < 2) throw Error("nearest neighbours need at least two rows");
  k = std::min(k, n - 1);
  const at::Tensor norms = rows.norm(2, 1, true).clamp_min(1e-12);
  const at::Tensor unit = (rows / norms).to(at::kFloat);  // [n, d]
  if (method == KnnMethod::Auto) method = n > kExactKnnLimit ? KnnMethod::Hnsw : KnnMethod::Exact;
  return method == KnnMethod::Exact ? exactKnn(unit, k, progress) : hnswKnn(unit, k, seed, progress);
}

}  // namespace monoscope::core
