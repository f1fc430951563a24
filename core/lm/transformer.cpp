#include "lm/transformer.h"

#include <cmath>
#include <filesystem>

#include "io/gguf_import.h"
#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "util/memory.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace fs = std::filesystem;

namespace monoscope::core {

namespace {
const std::string kHookEmbed = "hook_embed";
const std::string kHookPosEmbed = "hook_pos_embed";
}  // namespace

namespace {

// RoPE frequencies theta^(-2i / dims) for `dims` rotary dimensions, computed as Hugging Face
// does (float32), then scaled as the spec says.
at::Tensor ropeFrequencies(const RopeSpec& r, std::int64_t dims, const c10::Device& device) {
  const at::Tensor idx = at::arange(0, dims, 2, at::kLong).to(at::kFloat);
  at::Tensor inv = (1.0 / at::pow(r.theta, idx / static_cast<double>(dims))).to(at::kFloat);
  if (r.scaling == "linear") inv = inv / r.factor;
  if (r.scaling == "llama3") {
    // Llama 3.1: long wavelengths divided by the factor, short ones kept, a smooth blend between.
    const double low_wavelen = static_cast<double>(r.original_context) / r.low_freq_factor;
    const double high_wavelen = static_cast<double>(r.original_context) / r.high_freq_factor;
    const at::Tensor wavelen = 2.0 * M_PI / inv;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv / r.factor, inv);
    const at::Tensor smooth = (static_cast<double>(r.original_context) / wavelen - r.low_freq_factor) /
                              (r.high_freq_factor - r.low_freq_factor);
    const at::Tensor smoothed = (1.0 - smooth) * scaled / r.factor + smooth * scaled;
    const at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv = at::where(medium, smoothed, scaled);
  }
  return inv.to(device);
}

std::string biasOf(const std::string& weight) {
  const std::string w = ".weight";
  if (weight.size() > w.size() && weight.compare(weight.size() - w.size(), w.size(), w) == 0)
    return weight.substr(0, weight.size() - w.size()) + ".bias";
  return weight + ".bias";
}

}  // namespace

Transformer::Transformer(ModelConfig config, c10::Device device)
    : config_(std::move(config)), device_(device) {
  config_.window.resize(static_cast<std::size_t>(config_.n_layers), 0);
  for (std::int64_t l = 0; l < config_.n_layers; ++l) {
    std::array<std::string, kBlockHookCount> names;
    for (int h = 0; h < kBlockHookCount; ++h)
      names[static_cast<std::size_t>(h)] = "blocks." + std::to_string(l) + "." + blockHookSuffix(static_cast<BlockHook>(h));
    hook_names_.push_back(std::move(names));
  }
  names_ = familyOf(config_.model_type).names(config_);
  if (static_cast<std::int64_t>(names_.blocks.size()) != config_.n_layers)
    throw Error("the " + config_.model_type + " family named " + std::to_string(names_.blocks.size()) + " blocks of " +
                std::to_string(config_.n_layers));
}

at::Tensor& Transformer::param(const std::string& name, std::vector<std::int64_t> shape) {
  const at::ScalarType dtype = shape.size() == 2 ? weight_dtype_ : at::kFloat;
  if (mapping_ && !planning_ && shape.size() == 2 && dtype != at::kFloat && device_.is_cpu()) {
    // Kept as stored: read from the file's pages in place, not copied.
    at::Tensor mapped = mapWeight(mapping_, prefix_ + name, shape, dtype);
    if (mapped.defined()) {
      params_.emplace_back(prefix_ + name, std::move(mapped));
      mapped_.push_back(true);
      return params_.back().second;
    }
  }
  params_.emplace_back(prefix_ + name, at::empty(shape, at::TensorOptions().dtype(dtype).device(planning_ ? c10::Device(c10::kMeta) : device_)));
  mapped_.push_back(false);
  return params_.back().second;
}

void Transformer::bindParameters() {
  const ModelConfig& c = config_;
  const WeightNames& n = names_;
  const std::int64_t D = c.d_model, M = c.d_mlp, V = c.vocab_size, dh = c.d_head;
  const std::int64_t Q = c.n_heads * dh, KV = c.n_kv_heads * dh;
  params_.clear();
  mapped_.clear();
  layers_.assign(static_cast<std::size_t>(c.n_layers), Layer{});
  auto linear = [&](const std::string& name, std::int64_t out, std::int64_t in) -> at::Tensor {
    return param(name, n.conv1d ? std::vector<std::int64_t>{in, out} : std::vector<std::int64_t>{out, in});
  };
  auto bias = [&](const std::string& weight, std::int64_t size) -> at::Tensor { return param(biasOf(weight), {size}); };
  auto normOf = [&](const std::string& name, std::int64_t size, at::Tensor* w, at::Tensor* b) {
    *w = param(name, {size});
    if (c.norm == NormKind::LayerNorm) *b = bias(name, size);
  };
  wte_ = param(n.embed, {V, D});
  if (c.learned_positions) wpe_ = param(n.positions, {c.n_ctx, D});
  const auto rotary = static_cast<std::int64_t>(static_cast<double>(dh) * c.rotary_fraction);
  at::Tensor global_freq, local_freq;
  if (!c.learned_positions) {
    global_freq = ropeFrequencies(c.rope, rotary, device_);
    local_freq = c.local_rope ? ropeFrequencies(c.rope_local, rotary, device_) : global_freq;
  }
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    Layer& w = layers_[static_cast<std::size_t>(l)];
    const BlockNames& b = n.blocks[static_cast<std::size_t>(l)];
    w.window = c.windowOf(l);
    w.inv_freq = w.window > 0 ? local_freq : global_freq;
    normOf(b.norm1, D, &w.n1_w, &w.n1_b);
    if (n.qkv_layout == QkvLayout::Separate) {
      w.q_w = linear(b.q, Q, D);
      w.k_w = linear(b.k, KV, D);
      w.v_w = linear(b.v, KV, D);
      if (c.qkv_bias) {
        w.q_b = bias(b.q, Q);
        w.k_b = bias(b.k, KV);
        w.v_b = bias(b.v, KV);
      }
    } else {
      w.qkv_w = linear(b.qkv, Q + 2 * KV, D);
      if (c.qkv_bias) w.qkv_b = bias(b.qkv, Q + 2 * KV);
    }
    w.o_w = linear(b.o, D, Q);
    if (c.o_bias) w.o_b = bias(b.o, D);
    if (c.qk_norm) {
      w.q_norm_w = param(b.q_norm, {dh});
      w.k_norm_w = param(b.k_norm, {dh});
    }
    if (c.post_norms) w.post_attn_w = param(b.post_attn, {D});
    normOf(b.norm2, D, &w.n2_w, &w.n2_b);
    if (c.gated_mlp) {
      w.gate_w = linear(b.gate, M, D);
      if (c.mlp_bias) w.gate_b = bias(b.gate, M);
    }
    w.up_w = linear(b.up, M, D);
    if (c.mlp_bias) w.up_b = bias(b.up, M);
    w.down_w = linear(b.down, D, M);
    if (c.mlp_bias) w.down_b = bias(b.down, D);
    if (c.post_norms) w.post_mlp_w = param(b.post_mlp, {D});
  }
  normOf(n.final_norm, D, &lnf_w_, &lnf_b_);
  if (c.tied_embeddings) {
    lm_head_ = wte_;
  } else {
    const std::string saved = prefix_;
    prefix_.clear();
    lm_head_ = param(n.unembed, {V, D});
    prefix_ = saved;
  }
}

WeightDtype weightDtypeFromName(const std::string& name, const std::string& what) {
  if (name == "auto") return WeightDtype::Auto;
  if (name == "float32") return WeightDtype::Float32;
  if (name == "stored") return WeightDtype::Stored;
  throw Error(what + " must be auto, float32 or stored, not '" + name + "'");
}

std::unique_ptr<Transformer> Transformer::load(const std::string& model, const c10::Device& device, WeightDtype weights) {
  try {
    const std::string dir = resolveModelDir(model);  // a GGUF file is imported once into the cache
    ModelConfig cfg = ModelConfig::fromFile((fs::path(dir) / "config.json").string());
    std::unique_ptr<Transformer> m(new Transformer(cfg, device));
    const auto shared_store = std::make_shared<const WeightStore>(dir);
    const WeightStore& store = *shared_store;
    m->prefix_ = store.has(m->names_.prefix + m->names_.embed) ? m->names_.prefix : "";
    // The parameters' names and shapes first (no memory), to size the model in each dtype.
    m->planning_ = true;
    m->bindParameters();
    m->planning_ = false;
    std::uint64_t matrices = 0, vectors = 0;
    // One half dtype for every matrix, else Undefined.
    at::ScalarType stored = at::ScalarType::Undefined;
    bool first_matrix = true;
    // Kept in half precision, a product widens its weight first: the largest one (the
    // unembedding a slice at a time; embeddings are only indexed) is float32 for a moment.
    std::uint64_t widened = 0;
    for (const auto& [name, t] : m->params_) {
      const auto n = static_cast<std::uint64_t>(t.numel());
      if (t.dim() != 2) {
        vectors += n;
        continue;
      }
      matrices += n;
      const DType d = store.tensor(name).dtype;
      const at::ScalarType half = d == DType::BF16 ? at::kBFloat16 : d == DType::F16 ? at::kHalf : at::ScalarType::Undefined;
      if (first_matrix) stored = half;
      else if (stored != half) stored = at::ScalarType::Undefined;
      first_matrix = false;
      const bool embedding = name == m->prefix_ + m->names_.embed || name == m->prefix_ + m->names_.positions;
      const bool unembedding = name == m->names_.unembed || name == m->prefix_ + m->names_.unembed;
      if (unembedding) widened = std::max<std::uint64_t>(widened, static_cast<std::uint64_t>(std::min(kUnembedSlice, t.size(0)) * t.size(1)));
      else if (!embedding) widened = std::max(widened, n);
    }
    const bool has_half = stored != at::ScalarType::Undefined;
    if (m->config_.tied_embeddings)
      widened = std::max<std::uint64_t>(widened, static_cast<std::uint64_t>(std::min(kUnembedSlice, m->config_.vocab_size) * m->config_.d_model));
    const std::uint64_t float_bytes = 4 * (matrices + vectors), half_bytes = 2 * matrices + 4 * vectors + 4 * widened;
    const std::uint64_t available = device.is_cpu() ? availableMemory() : 0;
    bool keep_half = false;
    switch (weights) {
      case WeightDtype::Float32: break;
      case WeightDtype::Stored: keep_half = has_half; break;
      case WeightDtype::Auto: {
        const std::uint64_t budget = std::min<std::uint64_t>(4ull << 30, available > 0 ? available / 2 : 4ull << 30);
        keep_half = has_half && float_bytes > budget;
        break;
      }
    }
    m->weight_dtype_ = keep_half ? stored : at::kFloat;
    if (device.is_cpu()) {
      const std::string half_name = stored == at::kBFloat16 ? "bfloat16" : "float16";
      const std::string as = keep_half ? half_name : "float32";
      requireMemory(keep_half ? half_bytes : float_bytes, "model", "'" + model + "' (" +
                        std::to_string(matrices + vectors) + " parameters as " + as + ")",
                    has_half && !keep_half ? "keep its " + half_name +
                                                 " weights as stored (half the memory; --weights stored), or free memory"
                                           : "free memory, or use a machine with more");
    }
    if (keep_half && device.is_cpu()) m->mapping_ = shared_store;
    m->bindParameters();
    m->mapping_.reset();  // the mapped tensors hold the store themselves
    for (std::size_t i = 0; i < m->params_.size(); ++i)
      if (!m->mapped_[i]) copyWeightInto(store, m->params_[i].first, m->params_[i].second);
    return m;
  } catch (const Error& e) {
    throw e.withContext("loading model '" + model + "'");
  }
}

std::unique_ptr<Transformer> Transformer::initRandom(const ModelConfig& config, std::uint64_t seed,
                                                     const c10::Device& device) {
  std::unique_ptr<Transformer> m(new Transformer(config, device));
  m->prefix_ = m->names_.prefix;
  m->bindParameters();
  auto gen = at::detail::createCPUGenerator(seed);
  const double resid_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config.n_layers));
  for (auto& [name, t] : m->params_) {
    at::Tensor cpu;
    const bool is_norm = t.dim() == 1 && (name.find("ln") != std::string::npos || name.find("norm") != std::string::npos);
    if (is_norm && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
      cpu = config.norm == NormKind::RmsNormPlus ? at::zeros(t.sizes()) : at::ones(t.sizes());
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      cpu = at::zeros(t.sizes());
    } else {
      const bool resid = name.find("c_proj") != std::string::npos || name.find("o_proj") != std::string::npos ||
                         name.find("down_proj") != std::string::npos || name.find("dense") != std::string::npos;
      cpu = at::empty(t.sizes()).normal_(0.0, resid ? resid_std : 0.02, gen);
    }
    t.copy_(cpu);
  }
  return m;
}

void Transformer::save(const std::string& dir, bool half) const {
  fs::create_directories(dir);
  SafetensorsWriter w;
  w.setMetadata("format", "pt");
  for (const auto& [name, t] : params_) {
    at::Tensor c = t.detach().to(at::kCPU, half ? at::kHalf : at::kFloat).contiguous();
    w.add(name, half ? DType::F16 : DType::F32, c.sizes().vec(), c.data_ptr(), static_cast<std::size_t>(c.nbytes()));
  }
  w.write((fs::path(dir) / "model.safetensors").string());
  auto config = config_.toJson();
  config["torch_dtype"] = half ? "float16" : "float32";
  writeFileAtomically((fs::path(dir) / "config.json").string(), config.dump(2));
}

at::Tensor Transformer::toResidual(const std::string& hook, const at::Tensor& d) const {
  const std::string name = canonicalHook(hook);
  const std::int64_t layer = hookLayer(name, config_.n_layers);
  if (layer < 0) return d;
  const Layer& w = layers_[static_cast<std::size_t>(layer)];
  const auto scaleBy = [&](const at::Tensor& x, const at::Tensor& post) {
    if (!config_.post_norms) return x;
    return x * (config_.norm == NormKind::RmsNormPlus ? post + 1.0 : post);
  };
  switch (blockHookOf(name)) {
    case kAttnZ:
      return scaleBy(at::matmul(d, (names_.conv1d ? w.o_w : w.o_w.t()).to(d.scalar_type())), w.post_attn_w);
    case kMlpPost:
      return scaleBy(at::matmul(d, (names_.conv1d ? w.down_w : w.down_w.t()).to(d.scalar_type())), w.post_mlp_w);
    case kMlpModuleOut:  // before the post-norm, whose weights then scale it
      return scaleBy(d, w.post_mlp_w);
    default:
      return d;
  }
}

at::Tensor Transformer::norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) const {
  switch (config_.norm) {
    case NormKind::LayerNorm:
      return at::layer_norm(x, {x.size(-1)}, w, b, config_.norm_eps);
    case NormKind::RmsNorm:  // w * x / sqrt(mean(x^2) + eps)
      return w * (x * at::rsqrt(x.pow(2).mean(-1, true) + config_.norm_eps));
    case NormKind::RmsNormPlus:  // (1 + w) * x / sqrt(mean(x^2) + eps)
      return (x * at::rsqrt(x.pow(2).mean(-1, true) + config_.norm_eps)) * (w + 1.0);
  }
  return x;
}

at::Tensor Transformer::normalize(const at::Tensor& x) const {
  if (config_.norm == NormKind::LayerNorm) return at::layer_norm(x, {x.size(-1)}, {}, {}, config_.norm_eps);
  return x * at::rsqrt(x.pow(2).mean(-1, true) + config_.norm_eps);
}

at::Tensor Transformer::unembedProduct(const at::Tensor& x) const {
  if (lm_head_.scalar_type() == x.scalar_type() ||
      (lm_head_.scalar_type() == at::kBFloat16 && x.scalar_type() == at::kFloat && bf16ProductsOn(x.device())))
    return unembed_.linear(x, lm_head_.t(), at::Tensor());
  const std::int64_t V = lm_head_.size(0);
  std::vector<at::Tensor> parts;
  for (std::int64_t v = 0; v < V; v += kUnembedSlice) {
    const std::int64_t n = std::min(kUnembedSlice, V - v);
    parts.push_back(at::matmul(x, lm_head_.narrow(0, v, n).to(x.scalar_type()).t()));
  }
  return parts.size() == 1 ? parts[0] : at::cat(parts, -1);
}

at::Tensor Transformer::normWeights(const at::Tensor& y, const at::Tensor& w, const at::Tensor& b) const {
  switch (config_.norm) {
    case NormKind::LayerNorm:
      return b.defined() ? y * w + b : y * w;
    case NormKind::RmsNorm:
      return w * y;
    case NormKind::RmsNormPlus:
      return y * (w + 1.0);
  }
  return y;
}

at::Tensor Transformer::project(const PackedProduct& p, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                                Activation activation) const {
  return p.linear(x, names_.conv1d ? w : w.t(), b, activation);
}

const Transformer::RopeTable& Transformer::ropeTable(RopeTables& tables, const at::Tensor& inv_freq,
                                                     std::int64_t offset, std::int64_t T) const {
  const void* key = inv_freq.unsafeGetTensorImpl();
  for (const RopeTable& t : tables) {
    if (t.inv_freq == key) return t;
  }
  at::Tensor pos = at::arange(offset, offset + T, at::TensorOptions().dtype(at::kFloat).device(device_));
  at::Tensor freqs = at::outer(pos, inv_freq);   // [pos, dims/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);  // [pos, dims]
  tables.push_back({key, emb.cos(), emb.sin()});
  return tables.back();
}

at::Tensor Transformer::rope(const at::Tensor& x, const RopeTable& table) const {
  // x [batch, heads, pos, d_head]; rotate-half convention (Hugging Face), on the first dims
  // dimensions of each head (all of them but for partial rotary).
  const std::int64_t dims = table.cos.size(-1);
  const at::Tensor rot = dims == x.size(-1) ? x : x.narrow(-1, 0, dims);
  const std::int64_t half = dims / 2;
  at::Tensor x1 = rot.narrow(-1, 0, half), x2 = rot.narrow(-1, half, half);
  at::Tensor rotated = rot * table.cos + at::cat({-x2, x1}, -1) * table.sin;
  if (dims == x.size(-1)) return rotated;
  return at::cat({rotated, x.narrow(-1, dims, x.size(-1) - dims)}, -1);
}

at::Tensor Transformer::mlp(const Layer& w, const at::Tensor& h, const HookRun& run) const {
  const std::string& a = config_.activation;
  const Activation fused = a == "gelu_new" || a == "gelu_pytorch_tanh" ? Activation::GeluTanh
                           : a == "gelu"                               ? Activation::GeluErf
                           : a == "relu"                               ? Activation::Relu
                                                                       : Activation::None;
  const auto act = [&](const PackedProduct& p, const at::Tensor& x, const at::Tensor& wt, const at::Tensor& b) {
    at::Tensor y = project(p, x, wt, b, fused);
    return a == "silu" ? at::silu(y) : y;
  };
  const at::Tensor neurons = config_.gated_mlp ? act(w.gate, h, w.gate_w, w.gate_b) * project(w.up, h, w.up_w, w.up_b)
                                              : act(w.up, h, w.up_w, w.up_b);
  return project(w.down, run(kMlpPost, neurons), w.down_w, w.down_b);
}

at::Tensor Transformer::forward(const at::Tensor& ids, const HookSet* hooks, KvCache* cache,
                                std::int64_t stop_after_layer) const {
  const ModelConfig& c = config_;
  if (ids.dim() != 2) throw Error("token ids must be [batch, pos]");
  const std::int64_t T = ids.size(1);
  const std::int64_t offset = cache != nullptr ? cache->length : 0;
  if (offset + T > c.n_ctx) {
    throw Error("input of " + std::to_string(offset + T) + " tokens exceeds the model's context of " +
                    std::to_string(c.n_ctx) + " tokens",
                "shorten the text or lower max_tokens");
  }
  const bool hooked = hooks != nullptr && !hooks->empty();
  const at::Tensor dev_ids = ids.to(device_, at::kLong);
  auto run = [&](const std::string& name, at::Tensor x) {
    return hooked ? hooks->run(name, std::move(x), offset, &dev_ids) : x;
  };
  at::Tensor x = at::embedding(wte_, dev_ids).to(at::kFloat);  // [B, T, D]
  if (c.embed_scale != 1.0) x = x * c.embed_scale;
  x = run(kHookEmbed, x);
  if (c.learned_positions) {
    at::Tensor pos = at::arange(offset, offset + T, at::TensorOptions().dtype(at::kLong).device(device_));
    x = x + run(kHookPosEmbed, at::embedding(wpe_, pos).to(at::kFloat).unsqueeze(0).expand_as(x));
  }
  RopeTables ropes;
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const Layer& w = layers_[static_cast<std::size_t>(l)];
    const auto& names = hook_names_[static_cast<std::size_t>(l)];
    const HookRun hook = [&](BlockHook h, at::Tensor t) { return run(names[h], std::move(t)); };
    x = hook(kResidPre, x);
    at::Tensor attn_out = attention(w, norm(x, w.n1_w, w.n1_b), l, offset, cache, hook, ropes);
    if (c.post_norms) attn_out = norm(attn_out, w.post_attn_w, at::Tensor());
    attn_out = hook(kAttnOut, attn_out);
    // TransformerLens's hook_mlp_in is the residual stream the MLP's norm reads: the block's
    // input where attention and MLP run side by side, else the stream after attention.
    const at::Tensor resid_pre = x;
    x = hook(kResidMid, x + attn_out);
    const at::Tensor mlp_in = hook(kMlpIn, c.parallel_residual ? resid_pre : x);
    at::Tensor mlp_out;
    if (hooked && hooks->has(names[kMlpNormalized])) {
      // As TransformerLens: the normalised stream before the norm's weights (and bias).
      mlp_out = mlp(w, hook(kMlpModuleIn, normWeights(hook(kMlpNormalized, normalize(mlp_in)), w.n2_w, w.n2_b)), hook);
    } else {
      mlp_out = mlp(w, hook(kMlpModuleIn, norm(mlp_in, w.n2_w, w.n2_b)), hook);
    }
    mlp_out = hook(kMlpModuleOut, mlp_out);
    if (c.post_norms) mlp_out = norm(mlp_out, w.post_mlp_w, at::Tensor());
    mlp_out = hook(kMlpOut, mlp_out);
    x = hook(kResidPost, x + mlp_out);
    if (l == stop_after_layer) {
      if (cache != nullptr) cache->length = offset + T;
      return at::Tensor();
    }
  }
  if (cache != nullptr) cache->length = offset + T;
  x = norm(x, lnf_w_, lnf_b_);
  at::Tensor logits = unembedProduct(x);  // [B, T, V]
  if (c.final_softcap > 0) logits.div_(c.final_softcap).tanh_().mul_(c.final_softcap);  // in place: logits are large
  return logits;
}

}  // namespace monoscope::core
