#include "sae/sae.h"
#include "sae/token_table.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>

#include "io/hf_cache.h"
#include "sae/sae_releases.h"
#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "sae/sae_formats.h"
#include "sae/transcoder_set.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace fs = std::filesystem;

namespace monoscope::core {

struct Sae::ScreenCache {
  std::mutex mu;
  std::shared_ptr<const ScreenedEncoder> encoder;
  std::vector<std::int64_t> key;  // storage and version of the weights it was made from
};

Sae::Sae(SaeConfig config, at::Tensor W_enc, at::Tensor b_enc, at::Tensor W_dec, at::Tensor b_dec,
         at::Tensor threshold, at::Tensor W_skip, bool mapped)
    : config_(std::move(config)),
      mapped_(mapped || (W_enc.defined() && W_enc.scalar_type() != at::kFloat) || (W_dec.defined() && W_dec.scalar_type() != at::kFloat)),
      W_enc_(std::move(W_enc)),
      b_enc_(std::move(b_enc)),
      W_dec_(std::move(W_dec)),
      b_dec_(std::move(b_dec)),
      threshold_(std::move(threshold)),
      W_skip_(std::move(W_skip)),
      screen_(std::make_shared<ScreenCache>()) {
  const std::int64_t d_in = config_.d_in, d_sae = config_.d_sae, d_out = config_.outWidth();
  if (config_.transcoder() && config_.apply_b_dec_to_input)
    throw Error("a transcoder cannot subtract b_dec from its input (b_dec is in its output space)",
                "set apply_b_dec_to_input to false");
  auto check = [&](const at::Tensor& t, const char* name, std::vector<std::int64_t> shape) {
    if (!t.defined() || t.sizes().vec() != shape) {
      throw Error(std::string("SAE tensor ") + name + " has shape " +
                      (t.defined() ? shapeString(t.sizes().vec()) : "(missing)") + ", expected " +
                      shapeString(shape),
                  "cfg.json d_in/d_sae must match the weights");
    }
  };
  check(W_enc_, "W_enc", {d_in, d_sae});
  check(b_enc_, "b_enc", {d_sae});
  check(W_dec_, "W_dec", {d_sae, d_out});
  check(b_dec_, "b_dec", {d_out});
  // A TopK SAE may carry thresholds too, applied after the top k (sae-threshold writes them).
  if (config_.architecture == "jumprelu" || (config_.architecture == "topk" && threshold_.defined()))
    check(threshold_, "threshold", {d_sae});
  if (config_.skip) check(W_skip_, "W_skip", {d_out, d_in});
}

std::unique_ptr<Sae> Sae::load(const std::string& spec, const c10::Device& device) {
  // "set.yaml#L": one layer of a circuit-tracer transcoder set.
  std::string set_file;
  std::int64_t layer = 0;
  if (parseTranscoderSetSpec(spec, &set_file, &layer)) {
    try {
      return loadTranscoderSetLayer(set_file, layer, device);
    } catch (const Error& e) {
      throw e.withContext("loading transcoder '" + spec + "'");
    }
  }
  std::error_code ec;
  if (isTranscoderSetFile(spec) && fs::is_regular_file(spec, ec)) {
    const TranscoderSet set = TranscoderSet::read(spec);
    throw Error("'" + spec + "' is a transcoder set of " + std::to_string(set.transcoders.size()) + " layers",
                "name one layer: '" + spec + "#0' to '" + spec + "#" + std::to_string(set.transcoders.size() - 1) + "'");
  }
  // "RELEASE:ID" (SAELens's release names) or "org/repo/path/in/it", from the Hugging Face cache
  const std::string dir = resolveHubPath(resolveSaeRelease(spec));
  try {
    auto sae = dictionaryFormatOf(dir).load(dir, device);
    if (saeTokenTableOnEncoder(dir)) {
      if (sae->config().transcoder())
        throw Error("its token table says it sits on both sides, and a transcoder reads one hook and writes another",
                    "remove token_table.safetensors, or mark it \"sides\": \"decoder\"");
      sae->setInputTokenTable(loadSaeTokenTable(dir, sae->config().d_in, 0, device));
    }
    return sae;
  } catch (const Error& e) {
    throw e.withContext("loading SAE '" + dir + "'");
  }
}

at::Tensor Sae::tokenRows(const at::Tensor& ids) const {
  if (!input_table_.defined()) throw Error("this SAE has no token table on its encoder side");
  const at::Tensor flat = ids.reshape({-1}).to(input_table_.device(), at::kLong);
  if (flat.numel() > 0) {
    const std::int64_t lo = flat.min().item<std::int64_t>(), hi = flat.max().item<std::int64_t>();
    if (lo < 0 || hi >= input_table_.size(0)) {  // a token past the table has no row: zero
      const at::Tensor inside = flat.ge(0).logical_and(flat.lt(input_table_.size(0)));
      at::Tensor rows = input_table_.index_select(0, flat.clamp(0, input_table_.size(0) - 1)) * inside.unsqueeze(1).to(at::kFloat);
      std::vector<std::int64_t> shape(ids.sizes().begin(), ids.sizes().end());
      shape.push_back(config_.d_in);
      return rows.view(shape);
    }
  }
  std::vector<std::int64_t> shape(ids.sizes().begin(), ids.sizes().end());
  shape.push_back(config_.d_in);
  return input_table_.index_select(0, flat).view(shape);
}

at::Tensor Sae::lessTokenRows(const at::Tensor& x, const at::Tensor& ids) const {
  if (!input_table_.defined()) return x;
  if (!ids.defined() || ids.numel() * config_.d_in != x.numel())
    throw Error("this SAE reads each activation less its token's table row, and " + std::to_string(x.numel() / std::max<std::int64_t>(1, config_.d_in)) +
                    " activations came with " + std::to_string(ids.defined() ? ids.numel() : 0) + " token ids");
  return x.to(input_table_.device(), at::kFloat) - tokenRows(ids).view(x.sizes());
}

void Sae::save(const std::string& dir, bool half) const {
  const std::string cfg = config_.toJson().dump(2);  // first: a config SAELens cannot hold writes nothing
  fs::create_directories(dir);
  std::vector<std::pair<std::string, at::Tensor>> t = {
      {"W_enc", W_enc_}, {"b_enc", b_enc_}, {"W_dec", W_dec_}, {"b_dec", b_dec_}};
  if (threshold_.defined()) t.emplace_back("threshold", threshold_);
  if (W_skip_.defined()) t.emplace_back("W_skip", W_skip_);
  saveTensors((fs::path(dir) / "sae_weights.safetensors").string(), t, {}, half);
  writeFileAtomically((fs::path(dir) / "cfg.json").string(), cfg);
}

at::Tensor Sae::normalizeInput(const at::Tensor& x, SaeNorm* norm) const {
  if (x.size(-1) != config_.d_in) {
    throw Error("activation width " + std::to_string(x.size(-1)) + " does not match the SAE's d_in " +
                    std::to_string(config_.d_in),
                "use an SAE trained on this model's hook '" + config_.hook_name + "'");
  }
  at::Tensor xf = x.to(W_enc_.device(), at::kFloat);
  const std::string& mode = config_.normalize_activations;
  if (mode == "constant_norm_rescale") {
    at::Tensor coeff = std::sqrt(static_cast<double>(config_.d_in)) / xf.norm(2, -1, true);  // [..., 1]
    if (norm) norm->scale = 1.0 / coeff;
    return xf * coeff;
  }
  if (mode == "layer_norm") {
    at::Tensor mu = xf.mean(-1, true);
    at::Tensor centred = xf - mu;
    at::Tensor sd = centred.std(-1, /*unbiased=*/true, /*keepdim=*/true);
    if (norm) {
      norm->scale = sd;
      norm->shift = mu;
    }
    return centred / (sd + 1e-5);
  }
  return xf;
}

at::Tensor Sae::preActivations(const at::Tensor& xn) const {
  if (mapped_)
    throw Error("pre-activations of all " + std::to_string(config_.d_sae) + " features at once are not built for a mapped dictionary",
                "use forEachFeatureBlock");
  return encoder_.linear(encoderInput(xn), W_enc_, b_enc_);  // [..., d_sae]
}

at::Tensor Sae::encoderInput(const at::Tensor& xn) const {
  return config_.apply_b_dec_to_input ? xn - b_dec_ : xn;
}

std::pair<at::Tensor, at::Tensor> groupedTopk(const at::Tensor& ranked, const std::vector<SaeConfig::TopkGroup>& groups,
                                              std::int64_t k) {
  if (groups.size() == 1 && groups[0].begin == 0 && groups[0].end == ranked.size(-1)) {
    auto top = ranked.topk(std::min(k, groups[0].k), -1, /*largest=*/true, /*sorted=*/false);
    return {std::get<0>(top), std::get<1>(top)};
  }
  std::vector<at::Tensor> tv, ti;
  for (const auto& g : groups) {
    auto top = ranked.narrow(-1, g.begin, g.end - g.begin).topk(g.k, -1, /*largest=*/true, /*sorted=*/false);
    tv.push_back(std::get<0>(top));
    ti.push_back(std::get<1>(top).add_(g.begin));
  }
  return Sae::keepLargest(at::cat(tv, -1), at::cat(ti, -1), k);
}

std::pair<at::Tensor, at::Tensor> Sae::groupedTop(const at::Tensor& ranked) const {
  return groupedTopk(ranked, config_.topkGroups(), config_.k);
}

std::pair<at::Tensor, at::Tensor> Sae::keepLargest(const at::Tensor& values, const at::Tensor& indices, std::int64_t k) {
  if (values.size(-1) <= k) return {values, indices};
  auto top = values.topk(k, -1, /*largest=*/true, /*sorted=*/false);
  return {std::get<0>(top), indices.gather(-1, std::get<1>(top))};
}

at::Tensor Sae::activate(const at::Tensor& pre) const {
  if (config_.architecture == "topk") {
    at::Tensor ranked = config_.rescale_acts_by_decoder_norm ? pre * W_dec_.norm(2, -1) : pre;
    const auto [values, indices] = groupedTop(ranked);
    at::Tensor f = at::zeros_like(ranked).scatter_(-1, indices, values.relu());
    if (threshold_.defined()) f = f * (f > threshold_).to(f.scalar_type());
    return f;
  }
  at::Tensor f = at::relu(pre);
  if (config_.architecture == "jumprelu") f = f * (pre > threshold_).to(f.scalar_type());
  return f;
}

std::shared_ptr<const ScreenedEncoder> Sae::screened(const at::Tensor& x) const {
  // The copies it keeps (bf16 tiles and W_enc transposed) cost 6 bytes per weight: up to 2 GiB.
  constexpr double kBudget = 2.0 * (1ull << 30);
  if ((config_.architecture != "standard" && config_.architecture != "jumprelu") || !ScreenedEncoder::supported() ||
      !x.device().is_cpu() || !W_enc_.device().is_cpu() || x.scalar_type() != at::kFloat ||
      W_enc_.scalar_type() != at::kFloat || 6.0 * static_cast<double>(W_enc_.numel()) > kBudget) {
    return nullptr;
  }
  if (at::GradMode::is_enabled() && (x.requires_grad() || W_enc_.requires_grad() || b_enc_.requires_grad())) {
    return nullptr;
  }
  auto id = [](const at::Tensor& t) -> std::vector<std::int64_t> {
    if (!t.defined()) return {0, 0};
    // Inference tensors carry no version counter (and cannot be changed outside inference mode).
    return {reinterpret_cast<std::int64_t>(t.data_ptr()), t.is_inference() ? 0 : static_cast<std::int64_t>(t._version())};
  };
  std::vector<std::int64_t> key = id(W_enc_);
  for (const at::Tensor* t : {&b_enc_, &threshold_}) {
    const auto k = id(*t);
    key.insert(key.end(), k.begin(), k.end());
  }
  std::lock_guard<std::mutex> lock(screen_->mu);
  if (!screen_->encoder || screen_->key != key) {
    const at::Tensor w = W_enc_.contiguous(), b = b_enc_.contiguous();
    const at::Tensor t = threshold_.defined() ? threshold_.to(at::kCPU, at::kFloat).contiguous() : at::Tensor();
    screen_->encoder = std::make_shared<ScreenedEncoder>(w.data_ptr<float>(), b.to(at::kFloat).data_ptr<float>(),
                                                         t.defined() ? t.data_ptr<float>() : nullptr, config_.d_in,
                                                         config_.d_sae);
    screen_->key = std::move(key);
  }
  return screen_->encoder;
}

namespace {
// Rows of (feature, value) pairs from entries in row-major order (row ascending, then feature):
// row r holds the next counts[r] entries; values not above 0 are left out.
SparseRows rowsFromEntries(const at::Tensor& counts, const at::Tensor& feature, const at::Tensor& value) {
  const at::Tensor c = counts.to(at::kCPU, at::kLong).contiguous(), f = feature.to(at::kCPU, at::kInt).contiguous();
  const at::Tensor v = value.to(at::kCPU, at::kFloat).contiguous();
  const std::int64_t* pc = c.data_ptr<std::int64_t>();
  const std::int32_t* pf = f.data_ptr<std::int32_t>();
  const float* pv = v.data_ptr<float>();
  SparseRows out;
  out.offsets.reserve(static_cast<std::size_t>(c.numel()) + 1);
  std::int64_t i = 0;
  for (std::int64_t r = 0; r < c.numel(); ++r) {
    for (const std::int64_t end = i + pc[r]; i < end; ++i) {
      if (!(pv[i] > 0.0f)) continue;
      out.features.push_back(static_cast<std::uint32_t>(pf[i]));
      out.acts.push_back(pv[i]);
    }
    out.offsets.push_back(static_cast<std::uint32_t>(out.features.size()));
  }
  return out;
}
}  // namespace

SparseRows Sae::topkRows(const at::Tensor& xin) const {
  // As activate(): the top k of the (rescaled) pre-activations, ReLU, then the thresholds; in
  // feature order within each row, as the dense rows are read.
  const at::Tensor pre = encoder_.linear(xin, W_enc_, b_enc_);
  const at::Tensor ranked = config_.rescale_acts_by_decoder_norm ? pre * W_dec_.norm(2, -1) : pre;
  const auto [top_values, top_indices] = groupedTop(ranked);
  const auto order = top_indices.sort(-1);
  const at::Tensor feature = std::get<0>(order);
  at::Tensor value = top_values.gather(-1, std::get<1>(order)).relu();
  if (threshold_.defined()) value = value * (value > threshold_.index_select(0, feature.reshape(-1)).view_as(value)).to(value.scalar_type());
  return rowsFromEntries(at::full({xin.size(0)}, feature.size(1), at::kLong), feature.reshape(-1), value.reshape(-1));
}

SparseRows Sae::positiveRows(const at::Tensor& xin) const {
  const at::Tensor f = config_.architecture == "standard" ? encoder_.linear(xin, W_enc_, b_enc_, Activation::Relu)
                                                          : activate(encoder_.linear(xin, W_enc_, b_enc_));
  const at::Tensor positive = f > 0;
  const at::Tensor where = positive.nonzero();  // [nnz, 2], row-major order
  return rowsFromEntries(positive.sum(1), where.select(1, 1), f.masked_select(positive));
}

bool Sae::encodeSparse(const at::Tensor& x, SparseRows* out) const {
  const at::Tensor xin = encoderInput(normalizeInput(x, nullptr));
  const auto enc = screened(xin);
  if (!enc) {
    const bool topk = config_.architecture == "topk";
    if (mapped_ || (!topk && xin.device().is_cpu())) return false;
    // Rows in parts whose dense pre-activations stay near 64 MiB (a wide dictionary in bounded memory).
    const at::Tensor flat = xin.reshape({-1, config_.d_in});
    const std::int64_t n = flat.size(0), part = std::max<std::int64_t>(1, (std::int64_t{1} << 24) / config_.d_sae);
    for (std::int64_t r = 0; r < n; r += part) {
      const at::Tensor rows = flat.slice(0, r, std::min(n, r + part));
      appendRows(topk ? topkRows(rows) : positiveRows(rows), out);
    }
    return true;
  }
  const at::Tensor flat = xin.reshape({-1, config_.d_in}).contiguous();
  const std::int64_t n = flat.size(0), d_in = config_.d_in;
  // Parts of 256 rows on every thread, joined in order (the result does not depend on the split).
  constexpr std::int64_t kPart = 256;
  std::vector<SparseRows> parts(static_cast<std::size_t>((n + kPart - 1) / kPart));
  const float* px = flat.data_ptr<float>();
  at::parallel_for(0, static_cast<std::int64_t>(parts.size()), 1, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) {
      const std::int64_t r0 = p * kPart;
      enc->encode(px + r0 * d_in, std::min(kPart, n - r0), &parts[static_cast<std::size_t>(p)]);
    }
  });
  for (const SparseRows& part : parts) appendRows(part, out);
  return true;
}

at::Tensor Sae::encode(const at::Tensor& x, SaeNorm* norm) const {
  const at::Tensor xin = encoderInput(normalizeInput(x, norm));
  if (mapped_) {
    std::vector<std::int64_t> shape = x.sizes().vec();
    shape.back() = config_.d_sae;
    return encodeMapped(xin.reshape({-1, config_.d_in})).view(shape);
  }
  if (const auto enc = screened(xin)) {
    const at::Tensor flat = xin.reshape({-1, config_.d_in}).contiguous();
    const std::int64_t n = flat.size(0), d_in = config_.d_in, d_sae = config_.d_sae;
    at::Tensor out = at::empty({n, d_sae}, flat.options());
    const float* px = flat.data_ptr<float>();
    float* po = out.data_ptr<float>();
    at::parallel_for(0, n, 256, [&](std::int64_t r0, std::int64_t r1) {
      enc->encodeDense(px + r0 * d_in, r1 - r0, po + r0 * d_sae);
    });
    std::vector<std::int64_t> shape = x.sizes().vec();
    shape.back() = d_sae;
    return out.view(shape);
  }
  if (config_.architecture == "standard") {  // ReLU in the same pass as the product
    return encoder_.linear(xin, W_enc_, b_enc_, Activation::Relu);
  }
  return activate(encoder_.linear(xin, W_enc_, b_enc_));
}

at::Tensor Sae::decode(const at::Tensor& f, const SaeNorm* norm) const {
  at::Tensor fs = f;
  at::Tensor out;
  if (mapped_) {
    std::vector<std::int64_t> shape = f.sizes().vec();
    shape.back() = config_.outWidth();
    out = decodeMapped(f.reshape({-1, config_.d_sae})).view(shape);
  } else {
    if (config_.architecture == "topk" && config_.rescale_acts_by_decoder_norm) fs = f / W_dec_.norm(2, -1).clamp_min(1e-12);
    out = decoder_.linear(fs, W_dec_, b_dec_);  // [..., d_in]
  }
  if (norm != nullptr && norm->scale.defined()) out = out * norm->scale;
  if (norm != nullptr && norm->shift.defined()) out = out + norm->shift;
  return out;
}

at::Tensor Sae::transcode(const at::Tensor& x) const {
  SaeNorm norm;
  at::Tensor out = decode(encode(x, &norm), &norm);
  if (W_skip_.defined()) out = out + at::matmul(x.to(W_skip_.device(), at::kFloat), W_skip_.t());
  return out;
}

at::Tensor rowNorms(const at::Tensor& x) {
  c10::InferenceMode guard;
  const std::vector<std::int64_t> last{-1};
  return at::linalg_vector_norm(x.flatten(1), 2, at::IntArrayRef(last), false, at::kFloat).to(at::kCPU);
}

namespace {
// true where norms (float, CPU) are over factor x median or not finite; all false for a median
// that is not positive and finite.
at::Tensor aboveMedian(const at::Tensor& norms, double median, double factor) {
  if (!(median > 0) || !std::isfinite(median)) return at::zeros(norms.sizes(), at::TensorOptions().dtype(at::kBool));
  return (norms <= median * factor).logical_not();
}
}  // namespace

at::Tensor massiveRowMask(const at::Tensor& x, double factor) {
  c10::InferenceMode guard;
  if (x.size(0) == 0) return at::zeros({0}, at::TensorOptions().dtype(at::kBool));
  const at::Tensor norms = rowNorms(x);
  return aboveMedian(norms, norms.nanmedian().item<double>(), factor);  // a row of NaNs does not hide the others
}

at::Tensor windowSinkMask(const at::Tensor& norms, double factor, double reference) {
  c10::InferenceMode guard;
  if (norms.dim() != 2) throw Error("window norms must be [windows, positions], not " + std::to_string(norms.dim()) + "-D");
  const at::Tensor n = norms.to(at::kCPU, at::kFloat);
  at::Tensor mask = at::zeros(n.sizes(), at::TensorOptions().dtype(at::kBool));
  if (n.size(1) < 2) return mask;
  const at::Tensor rest = n.narrow(1, 1, n.size(1) - 1);  // the first positions neither count nor are marked
  mask.narrow(1, 1, n.size(1) - 1).copy_(aboveMedian(rest, rest.numel() >= kSinkMedianRows ? rest.nanmedian().item<double>() : reference, factor));
  return mask;
}

at::Tensor ordinaryRows(const at::Tensor& x, double factor) {
  c10::InferenceMode guard;
  return massiveRowMask(x, factor).logical_not().nonzero().squeeze(1).to(x.device());
}

ReconstructionMetrics Sae::metrics(const at::Tensor& x, const at::Tensor& added, bool encode_less_added) const {
  if (config_.transcoder())
    throw Error("reconstruction metrics need an SAE, and this is a transcoder (it reads " + config_.hook_name + " and writes " +
                    config_.hook_name_out + ")",
                "open an SAE here");
  c10::InferenceMode guard;
  SaeNorm norm;
  at::Tensor xf = x.to(W_enc_.device(), at::kFloat).reshape({-1, config_.d_in});  // [n, d_in]
  at::Tensor a;
  if (added.defined()) {
    if (added.numel() != xf.numel()) throw Error("metrics: the added rows do not match the activations' shape");
    a = added.to(xf.device(), at::kFloat).reshape(xf.sizes());
  }
  at::Tensor f = encode(a.defined() && encode_less_added ? xf - a : xf, &norm);
  at::Tensor x_hat = decode(f, &norm);
  if (a.defined()) x_hat = x_hat + a;
  ReconstructionMetrics m;
  m.l0 = (f > 0).sum(-1).to(at::kDouble).mean().item<double>();
  const double resid = (xf - x_hat).pow(2).sum().item<double>();
  const double total = (xf - xf.mean(0, true)).pow(2).sum().item<double>();
  m.fraction_variance_explained = total > 0 ? 1.0 - resid / total : 0.0;
  m.mse = (xf - x_hat).pow(2).mean().item<double>();
  return m;
}

}  // namespace monoscope::core
