// Products of an SAE a block of features at a time, for dictionaries too wide for float32 copies
// of their weights or for dense [n, d_sae] activations (sae/sae.h, mapped()); the same methods
// on an ordinary SAE use its dense products.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "sae/sae.h"
#include "util/error.h"
#include "util/memory.h"

namespace monoscope::core {

namespace {
// A block's float32 copies of its weights and its [rows, block] activations stay near this.
constexpr std::int64_t kBlockFloats = 1 << 22;  // 16 MiB: under glibc's largest mmap threshold, so the
                                                // blocks reuse heap memory instead of faulting in fresh pages
// Keeps in (values, indices) [n, <= k] each row's k largest of them and of `block` [n, B], whose
// column j is feature offset + j.
void mergeTop(at::Tensor& values, at::Tensor& indices, const at::Tensor& block, std::int64_t offset, std::int64_t k) {
  auto top = block.topk(std::min<std::int64_t>(k, block.size(1)), 1);
  const at::Tensor v = at::cat({values, std::get<0>(top)}, 1), i = at::cat({indices, std::get<1>(top) + offset}, 1);
  auto keep = v.topk(std::min<std::int64_t>(k, v.size(1)), 1);
  values = std::get<0>(keep);
  indices = i.gather(1, std::get<1>(keep));
}

}  // namespace

double Sae::mapBudgetBytes() {
  if (const char* v = std::getenv("MONOSCOPE_SAE_MAP_ABOVE")) {
    char* end = nullptr;
    const double b = std::strtod(v, &end);
    if (end != v && b >= 0) return b;
  }
  const double ram = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  return std::min(4.0 * (1ull << 30), ram > 0 ? ram / 4 : 4.0 * (1ull << 30));
}

std::int64_t Sae::featureBlock(std::int64_t rows) const {
  if (const char* v = std::getenv("MONOSCOPE_SAE_BLOCK_FEATURES")) {  // tests: many blocks of a small SAE
    const long long b = std::atoll(v);
    if (b > 0) return std::min<std::int64_t>(b, std::max<std::int64_t>(config_.d_sae, 1));
  }
  const std::int64_t widest = std::max({rows, config_.d_in, config_.outWidth(), std::int64_t{1}});
  return std::min<std::int64_t>(std::max<std::int64_t>(kBlockFloats / widest, 1024), std::max<std::int64_t>(config_.d_sae, 1));
}

at::Tensor Sae::decoderBlock(std::int64_t begin, std::int64_t end) const {
  return W_dec_.slice(0, begin, end).to(at::kFloat).contiguous();
}

namespace {
bool rescaled(const SaeConfig& c) { return c.architecture == "topk" && c.rescale_acts_by_decoder_norm; }
// Decoder rows per unit of activation (a zero row writes nothing).
at::Tensor perUnit(const SaeConfig& c, const at::Tensor& rows) {
  return rescaled(c) ? rows / rows.norm(2, -1, true).clamp_min(1e-12) : rows;
}
}  // namespace

at::Tensor Sae::writeRows(const at::Tensor& idx) const { return perUnit(config_, decoderRows(idx)); }

at::Tensor Sae::writeBlock(std::int64_t begin, std::int64_t end) const { return perUnit(config_, decoderBlock(begin, end)); }

at::Tensor Sae::encoderBlock(std::int64_t begin, std::int64_t end) const {
  if (!W_enc_.device().is_cpu()) return W_enc_.slice(1, begin, end).to(at::kFloat);
  // Row by row on every thread: each row's slice is contiguous, so each copy converts with the
  // vector kernel (one strided copy of the whole block runs on one thread, elementwise).
  at::Tensor out = at::empty({config_.d_in, end - begin}, at::kFloat);
  const bool inference = c10::InferenceMode::is_enabled();  // thread-local: carried to the workers
  at::parallel_for(0, config_.d_in, 1, [&](std::int64_t r0, std::int64_t r1) {
    c10::InferenceMode guard(inference);
    for (std::int64_t r = r0; r < r1; ++r) out.select(0, r).copy_(W_enc_.select(0, r).slice(0, begin, end));
  });
  return out;
}

at::Tensor Sae::decoderRows(const at::Tensor& idx) const {
  return W_dec_.index_select(0, idx.to(W_dec_.device(), at::kLong)).to(at::kFloat);
}

void Sae::forEachFeatureBlock(const at::Tensor& x, const std::function<void(std::int64_t, const at::Tensor&)>& fn) const {
  c10::InferenceMode guard;
  if (mapped_) return blocksOf(encoderInput(normalizeInput(x, nullptr)).reshape({-1, config_.d_in}).contiguous(), fn);
  const std::int64_t d_sae = config_.d_sae;
  const at::Tensor f = encode(x).reshape({-1, d_sae});
  const std::int64_t block = featureBlock(f.size(0));
  for (std::int64_t b = 0; b < d_sae; b += block) fn(b, f.slice(1, b, std::min(d_sae, b + block)));
}

void Sae::blocksOf(const at::Tensor& xin, const std::function<void(std::int64_t, const at::Tensor&)>& fn) const {
  const std::int64_t n = xin.size(0), d_sae = config_.d_sae;
  const std::int64_t block = featureBlock(n);
  if (config_.architecture != "topk") {
    for (std::int64_t b = 0; b < d_sae; b += block) {
      const std::int64_t e = std::min(d_sae, b + block);
      const at::Tensor p = at::addmm(b_enc_.slice(0, b, e).to(at::kFloat), xin, encoderBlock(b, e));  // [n, e - b]
      at::Tensor f = p.relu();
      if (config_.architecture == "jumprelu") f = f * (p > threshold_.slice(0, b, e)).to(f.scalar_type());
      fn(b, f);
    }
    return;
  }
  // TopK: the blocks are each row's k activations (one pass over the weights) scattered into place.
  const auto [values, indices] = topkCodes(xin);
  for (std::int64_t b = 0; b < d_sae; b += block) {
    const std::int64_t e = std::min(d_sae, b + block);
    const at::Tensor in = (indices >= b).logical_and(indices < e);
    at::Tensor f = at::zeros({n, e - b});
    // Entries of other blocks add zero at column 0.
    f.scatter_add_(1, at::where(in, indices - b, at::zeros_like(indices)), at::where(in, values, at::zeros_like(values)));
    fn(b, f);
  }
}

std::pair<at::Tensor, at::Tensor> Sae::topkCodes(const at::Tensor& xin) const {
  const std::int64_t n = xin.size(0), block = featureBlock(n);
  std::vector<at::Tensor> gv, gi;  // each group's own top k (one group: the whole dictionary)
  for (const auto& g : config_.topkGroups()) {
    at::Tensor values = at::empty({n, 0}), indices = at::empty({n, 0}, at::kLong);
    for (std::int64_t b = g.begin; b < g.end; b += block) {
      const std::int64_t e = std::min(g.end, b + block);
      const at::Tensor p = at::addmm(b_enc_.slice(0, b, e).to(at::kFloat), xin, encoderBlock(b, e));  // [n, e - b]
      mergeTop(values, indices, config_.rescale_acts_by_decoder_norm ? p * decoderBlock(b, e).norm(2, -1) : p, b,
               std::min(g.k, g.end - g.begin));
    }
    gv.push_back(values);
    gi.push_back(indices);
  }
  auto [values, indices] = gv.size() == 1 ? std::make_pair(gv[0], gi[0]) : keepLargest(at::cat(gv, 1), at::cat(gi, 1), config_.k);
  values = values.relu();
  if (threshold_.defined()) values = values * (values > threshold_.to(at::kFloat).index_select(0, indices.reshape({-1})).view(indices.sizes()));
  return {values, indices};
}

at::Tensor Sae::encodeMapped(const at::Tensor& xin) const {
  const std::int64_t n = xin.size(0), d_sae = config_.d_sae;
  requireMemory(static_cast<std::uint64_t>(4) * static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(d_sae), "x",
                std::to_string(n) + " rows x " + std::to_string(d_sae) + " dense feature activations",
                "encode fewer rows at once; the engine's searches read this dictionary a block of features at a time");
  at::Tensor out = at::empty({n, d_sae}, at::kFloat);
  blocksOf(xin.contiguous(), [&](std::int64_t b, const at::Tensor& f) { out.slice(1, b, b + f.size(1)).copy_(f); });
  return out;
}

at::Tensor Sae::decodeMapped(const at::Tensor& f) const {
  const std::int64_t n = f.size(0), d_sae = config_.d_sae;
  at::Tensor out = b_dec_.to(at::kFloat).unsqueeze(0).repeat({n, 1});  // [n, d_out]
  const at::Tensor ff = f.to(at::kCPU, at::kFloat);
  const std::int64_t block = featureBlock(n);
  for (std::int64_t b = 0; b < d_sae; b += block) {
    const std::int64_t e = std::min(d_sae, b + block);
    at::Tensor fb = ff.slice(1, b, e);
    if (!fb.any().item<bool>()) continue;  // a sparse code leaves most blocks empty
    const at::Tensor W = decoderBlock(b, e);
    if (rescaled(config_)) fb = fb / W.norm(2, -1).clamp_min(1e-12);
    out.addmm_(fb, W);
  }
  return out;
}

std::pair<at::Tensor, at::Tensor> Sae::encodeTop(const at::Tensor& x, std::int64_t k) const {
  c10::InferenceMode guard;
  k = std::clamp<std::int64_t>(k, 1, config_.d_sae);
  if (mapped_ && config_.architecture == "topk") {  // the codes are the answer: no blocks to build
    const auto [v, i] = topkCodes(encoderInput(normalizeInput(x, nullptr)).reshape({-1, config_.d_in}).contiguous());
    auto order = v.topk(std::min<std::int64_t>(k, v.size(1)), 1);
    at::Tensor values = std::get<0>(order), indices = i.gather(1, std::get<1>(order));
    if (values.size(1) < k) {  // asked for more than the SAE's k: the rest are zeros
      values = at::cat({values, at::zeros({values.size(0), k - values.size(1)})}, 1);
      indices = at::cat({indices, at::zeros({indices.size(0), k - indices.size(1)}, at::kLong)}, 1);
    }
    return {values, indices};
  }
  const std::int64_t n = x.numel() / std::max<std::int64_t>(1, x.size(-1));
  at::Tensor values = at::zeros({n, 0}), indices = at::zeros({n, 0}, at::kLong);
  forEachFeatureBlock(x, [&](std::int64_t b, const at::Tensor& f) { mergeTop(values, indices, f.to(at::kCPU, at::kFloat), b, k); });
  return {values, indices};
}

at::Tensor Sae::maxOverRows(const at::Tensor& x) const {
  c10::InferenceMode guard;
  at::Tensor out = at::zeros({config_.d_sae}, at::kFloat);
  if (mapped_ && config_.architecture == "topk") {  // from the codes: no blocks to build
    const auto [v, i] = topkCodes(encoderInput(normalizeInput(x, nullptr)).reshape({-1, config_.d_in}).contiguous());
    return out.scatter_reduce_(0, i.reshape({-1}), v.reshape({-1}), "amax");
  }
  forEachFeatureBlock(x, [&](std::int64_t b, const at::Tensor& f) {
    if (f.size(0) > 0) out.slice(0, b, b + f.size(1)).copy_(std::get<0>(f.to(at::kCPU, at::kFloat).max(0)));
  });
  return out;
}

at::Tensor Sae::encodeColumns(const at::Tensor& x, const at::Tensor& idx, SaeNorm* norm) const {
  if (!mapped_) return encode(x, norm).index_select(-1, idx.to(W_enc_.device(), at::kLong));
  if (norm) normalizeInput(x, norm);
  const at::Tensor want = idx.to(at::kCPU, at::kLong).contiguous();
  const std::int64_t m = want.numel();
  std::vector<std::int64_t> shape = x.sizes().vec();
  shape.back() = m;
  at::Tensor out = at::zeros({x.numel() / config_.d_in, m}, at::kFloat);
  const std::int64_t* w = want.data_ptr<std::int64_t>();
  forEachFeatureBlock(x, [&](std::int64_t b, const at::Tensor& f) {
    for (std::int64_t j = 0; j < m; ++j)
      if (w[j] >= b && w[j] < b + f.size(1)) out.select(1, j).copy_(f.select(1, w[j] - b));
  });
  return out.view(shape).to(x.device());
}

at::Tensor Sae::attributionScores(const at::Tensor& x, const at::Tensor& grad) const {
  c10::InferenceMode guard;
  if (!mapped_) {
    const at::Tensor g = grad.reshape({-1, config_.outWidth()}).to(W_dec_.device(), at::kFloat);
    const at::Tensor f = encode(x).reshape({g.size(0), config_.d_sae});
    at::Tensor along = at::matmul(g, W_dec_.t());  // [n, d_sae]
    if (rescaled(config_)) along = along / W_dec_.norm(2, -1).clamp_min(1e-12);
    return (f * along).sum(0).to(at::kCPU, at::kFloat);
  }
  const at::Tensor g = grad.reshape({-1, config_.outWidth()}).to(at::kCPU, at::kFloat);
  at::Tensor out = at::zeros({config_.d_sae}, at::kFloat);
  forEachFeatureBlock(x, [&](std::int64_t b, const at::Tensor& f) {
    const std::int64_t e = b + f.size(1);
    out.slice(0, b, e).copy_((f.to(at::kCPU, at::kFloat) * at::matmul(g, writeBlock(b, e).t())).sum(0));
  });
  return out;
}

}  // namespace monoscope::core
