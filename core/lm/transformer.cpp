#include "lm/transformer.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <filesystem>

#include "io/gguf_import.h"
#include "io/torch_bridge.h"
#include "lm/attention_kernel.h"
#include "io/weight_store.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace fs = std::filesystem;

namespace monoscope::core {

namespace {
enum HookIdx { kResidPre = 0, kResidMid, kResidPost, kAttnOut, kMlpOut };
const std::string kHookEmbed = "hook_embed";
const std::string kHookPosEmbed = "hook_pos_embed";
}  // namespace

Transformer::Transformer(ModelConfig config, c10::Device device)
    : config_(std::move(config)), device_(device) {
  for (std::int64_t l = 0; l < config_.n_layers; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    hook_names_.push_back({b + "hook_resid_pre", b + "hook_resid_mid", b + "hook_resid_post",
                           b + "hook_attn_out", b + "hook_mlp_out"});
  }
  if (config_.arch == Architecture::Llama) {
    // inv_freq[i] = theta^(-2i / d_head), computed as Hugging Face does (float32).
    at::Tensor idx = at::arange(0, config_.d_head, 2, at::kLong).to(at::kFloat);
    inv_freq_ = (1.0 / at::pow(config_.rope_theta, idx / static_cast<double>(config_.d_head)))
                    .to(at::kFloat).to(device_);
  }
}

at::Tensor& Transformer::param(const std::string& name, std::vector<std::int64_t> shape) {
  params_.emplace_back(prefix_ + name, at::empty(shape, at::TensorOptions().dtype(at::kFloat).device(device_)));
  return params_.back().second;
}

void Transformer::bindParameters() {
  const ModelConfig& c = config_;
  const std::int64_t D = c.d_model, M = c.d_mlp, V = c.vocab_size;
  params_.clear();
  layers_.assign(c.n_layers, Layer{});
  if (c.arch == Architecture::Gpt2) {
    wte_ = param("wte.weight", {V, D});
    wpe_ = param("wpe.weight", {c.n_ctx, D});
    for (std::int64_t l = 0; l < c.n_layers; ++l) {
      Layer& w = layers_[l];
      const std::string p = "h." + std::to_string(l) + ".";
      w.n1_w = param(p + "ln_1.weight", {D});
      w.n1_b = param(p + "ln_1.bias", {D});
      w.qkv_w = param(p + "attn.c_attn.weight", {D, 3 * D});  // Conv1D: [in, out]
      w.qkv_b = param(p + "attn.c_attn.bias", {3 * D});
      w.o_w = param(p + "attn.c_proj.weight", {D, D});
      w.o_b = param(p + "attn.c_proj.bias", {D});
      w.n2_w = param(p + "ln_2.weight", {D});
      w.n2_b = param(p + "ln_2.bias", {D});
      w.up_w = param(p + "mlp.c_fc.weight", {D, M});
      w.up_b = param(p + "mlp.c_fc.bias", {M});
      w.down_w = param(p + "mlp.c_proj.weight", {M, D});
      w.down_b = param(p + "mlp.c_proj.bias", {D});
    }
    lnf_w_ = param("ln_f.weight", {D});
    lnf_b_ = param("ln_f.bias", {D});
  } else {
    const std::int64_t Q = c.n_heads * c.d_head, KV = c.n_kv_heads * c.d_head;
    wte_ = param("embed_tokens.weight", {V, D});
    for (std::int64_t l = 0; l < c.n_layers; ++l) {
      Layer& w = layers_[l];
      const std::string p = "layers." + std::to_string(l) + ".";
      w.n1_w = param(p + "input_layernorm.weight", {D});
      w.q_w = param(p + "self_attn.q_proj.weight", {Q, D});  // Linear: [out, in]
      w.k_w = param(p + "self_attn.k_proj.weight", {KV, D});
      w.v_w = param(p + "self_attn.v_proj.weight", {KV, D});
      w.o_w = param(p + "self_attn.o_proj.weight", {D, Q});
      if (c.attention_bias) {
        w.q_b = param(p + "self_attn.q_proj.bias", {Q});
        w.k_b = param(p + "self_attn.k_proj.bias", {KV});
        w.v_b = param(p + "self_attn.v_proj.bias", {KV});
        w.o_b = param(p + "self_attn.o_proj.bias", {D});
      }
      w.n2_w = param(p + "post_attention_layernorm.weight", {D});
      w.gate_w = param(p + "mlp.gate_proj.weight", {M, D});
      w.up_w = param(p + "mlp.up_proj.weight", {M, D});
      w.down_w = param(p + "mlp.down_proj.weight", {D, M});
      if (c.mlp_bias) {
        w.gate_b = param(p + "mlp.gate_proj.bias", {M});
        w.up_b = param(p + "mlp.up_proj.bias", {M});
        w.down_b = param(p + "mlp.down_proj.bias", {D});
      }
    }
    lnf_w_ = param("norm.weight", {D});
  }
  if (c.tied_embeddings) {
    lm_head_ = wte_;
  } else {
    const std::string saved = prefix_;
    prefix_.clear();
    lm_head_ = param("lm_head.weight", {V, D});
    prefix_ = saved;
  }
}

std::unique_ptr<Transformer> Transformer::load(const std::string& model, const c10::Device& device) {
  try {
    const std::string dir = resolveModelDir(model);  // a GGUF file is imported once into the cache
    ModelConfig cfg = ModelConfig::fromFile((fs::path(dir) / "config.json").string());
    std::unique_ptr<Transformer> m(new Transformer(cfg, device));
    WeightStore store(dir);
    if (cfg.arch == Architecture::Gpt2) {
      m->prefix_ = store.has("transformer.wte.weight") ? "transformer." : "";
    } else {
      m->prefix_ = store.has("model.embed_tokens.weight") ? "model." : "";
    }
    m->bindParameters();
    for (auto& [name, t] : m->params_) {
      at::Tensor loaded = loadWeight(store, name, t.sizes().vec(), device);
      t.copy_(loaded);
    }
    return m;
  } catch (const Error& e) {
    throw e.withContext("loading model '" + model + "'");
  }
}

std::unique_ptr<Transformer> Transformer::initRandom(const ModelConfig& config, std::uint64_t seed,
                                                     const c10::Device& device) {
  std::unique_ptr<Transformer> m(new Transformer(config, device));
  m->prefix_ = config.arch == Architecture::Gpt2 ? "transformer." : "model.";
  m->bindParameters();
  auto gen = at::detail::createCPUGenerator(seed);
  const double resid_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config.n_layers));
  for (auto& [name, t] : m->params_) {
    at::Tensor cpu;
    const bool is_norm = name.find("ln_") != std::string::npos || name.find("norm") != std::string::npos;
    if (is_norm && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
      cpu = at::ones(t.sizes());
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      cpu = at::zeros(t.sizes());
    } else {
      const bool resid = name.find("c_proj") != std::string::npos || name.find("o_proj") != std::string::npos ||
                         name.find("down_proj") != std::string::npos;
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

at::Tensor Transformer::norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) const {
  if (config_.arch == Architecture::Gpt2) {
    return at::layer_norm(x, {config_.d_model}, w, b, config_.norm_eps);
  }
  // RMSNorm: w * x / sqrt(mean(x^2) + eps)
  at::Tensor var = x.pow(2).mean(-1, true);
  return w * (x * at::rsqrt(var + config_.norm_eps));
}

at::Tensor Transformer::rope(const at::Tensor& x, std::int64_t offset) const {
  // x [batch, heads, pos, d_head]; rotate-half convention (Hugging Face Llama).
  const std::int64_t T = x.size(2);
  at::Tensor pos = at::arange(offset, offset + T, at::TensorOptions().dtype(at::kFloat).device(device_));
  at::Tensor freqs = at::outer(pos, inv_freq_);   // [pos, d_head/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);   // [pos, d_head]
  at::Tensor cos = emb.cos(), sin = emb.sin();
  const std::int64_t half = config_.d_head / 2;
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor rotated = at::cat({-x2, x1}, -1);
  return x * cos + rotated * sin;
}

at::Tensor Transformer::attention(const Layer& w, const at::Tensor& h, std::int64_t layer,
                                  std::int64_t offset, KvCache* cache) const {
  const ModelConfig& c = config_;
  const std::int64_t B = h.size(0), T = h.size(1), H = c.n_heads, Hkv = c.n_kv_heads, dh = c.d_head;
  at::Tensor q, k, v;
  if (c.arch == Architecture::Gpt2) {
    at::Tensor qkv = w.qkv.addmm(w.qkv_b, h.reshape({B * T, c.d_model}), w.qkv_w);  // [B*T, 3D]
    auto parts = qkv.view({B, T, 3, H, dh}).permute({2, 0, 3, 1, 4});           // [3, B, H, T, dh]
    q = parts[0];
    k = parts[1];
    v = parts[2];
  } else {
    q = w.q.linear(h, w.q_w.t(), w.q_b).view({B, T, H, dh}).transpose(1, 2);      // [B, H, T, dh]
    k = w.k.linear(h, w.k_w.t(), w.k_b).view({B, T, Hkv, dh}).transpose(1, 2);    // [B, Hkv, T, dh]
    v = w.v.linear(h, w.v_w.t(), w.v_b).view({B, T, Hkv, dh}).transpose(1, 2);
    q = rope(q, offset);
    k = rope(k, offset);
  }
  if (cache != nullptr) {
    if (static_cast<std::int64_t>(cache->k.size()) <= layer) {
      cache->k.resize(layer + 1);
      cache->v.resize(layer + 1);
    }
    if (cache->k[layer].defined()) {
      k = at::cat({cache->k[layer], k}, 2);
      v = at::cat({cache->v[layer], v}, 2);
    }
    cache->k[layer] = k;
    cache->v[layer] = v;
  }
  at::Tensor out;  // [B, T, H*dh]
  if (useFusedAttention(q, k, v)) {
    out = fusedAttention(q, k, v);
  } else {
    if (Hkv != H) {
      k = k.repeat_interleave(H / Hkv, 1);  // [B, H, S, dh]
      v = v.repeat_interleave(H / Hkv, 1);
    }
    out = blockedAttention(q, k, v);
  }
  if (c.arch == Architecture::Gpt2) {
    return w.o.addmm(w.o_b, out.view({B * T, c.d_model}), w.o_w).view({B, T, c.d_model});
  }
  return w.o.linear(out, w.o_w.t(), w.o_b);
}

bool Transformer::useFusedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) const {
  const bool autograd = c10::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  return !autograd && device_.is_cpu() && fusedAttentionEnabled() && fusedAttentionSupported(q.size(3)) &&
         q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat &&
         k.size(2) >= q.size(2);
}

at::Tensor Transformer::fusedAttention(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in) const {
  // The kernel reads the heads where they lie (GPT-2's q, k and v are views of one qkv product)
  // as long as each head's vectors are contiguous.
  auto rows = [](const at::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); };
  const at::Tensor q = rows(q_in), k = rows(k_in), v = rows(v_in);
  const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), dh = q.size(3);
  at::Tensor out = at::empty({B, T, H * dh}, q.options());
  AttentionArgs a;
  a.q = q.data_ptr<float>();
  a.q_b = q.stride(0), a.q_h = q.stride(1), a.q_t = q.stride(2);
  a.k = k.data_ptr<float>();
  a.k_b = k.stride(0), a.k_h = k.stride(1), a.k_t = k.stride(2);
  a.v = v.data_ptr<float>();
  a.v_b = v.stride(0), a.v_h = v.stride(1), a.v_t = v.stride(2);
  a.out = out.data_ptr<float>();
  a.o_b = T * H * dh, a.o_h = dh, a.o_t = H * dh;
  a.B = B, a.H = H, a.Hkv = k.size(1), a.T = T, a.S = k.size(2), a.dh = dh;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh)));
  const std::int64_t BH = B * H, threads = at::get_num_threads();
  if (threads > 1 && BH >= threads && !at::in_parallel_region()) {
    at::parallel_for(0, BH, (BH + threads - 1) / threads, [&](std::int64_t h0, std::int64_t h1) { fusedCausalAttention(a, h0, h1); });
  } else {
    fusedCausalAttention(a, 0, BH);
  }
  return out;
}

at::Tensor Transformer::blockedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) const {
  const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), dh = q.size(3);
  // Causal attention a block of queries at a time: block [s, e) sees keys 0 .. offset + e - 1, so the
  // keys after the block are never multiplied, and the scale, mask and softmax work in place on a
  // block small enough to stay in cache. On the CPU each thread takes its own share of the
  // batch x heads (the products are small: one thread each runs them better than both together).
  const std::int64_t S = k.size(2), BH = B * H;
  const at::Tensor q3 = (q * (1.0 / std::sqrt(static_cast<double>(dh)))).reshape({BH, T, dh});
  const at::Tensor k3 = k.reshape({BH, S, dh}), v3 = v.reshape({BH, S, dh});
  constexpr std::int64_t kQueryBlock = 64;
  const std::int64_t block = std::min(T, kQueryBlock);
  at::Tensor upper;  // [block, block]: key after query
  if (block > 1) upper = at::ones({block, block}, at::TensorOptions().dtype(at::kBool).device(device_)).triu(1);
  at::Tensor out = at::empty({BH, T, dh}, q3.options());
  const bool inference = c10::InferenceMode::is_enabled();
  auto heads = [&](std::int64_t h0, std::int64_t h1) {
    c10::InferenceMode inference_mode(inference);  // a thread-local mode, as on the calling thread
    for (std::int64_t s = 0; s < T; s += block) {
      const std::int64_t e = std::min(T, s + block), keys = S - T + e;
      at::Tensor scores = at::bmm(q3.slice(0, h0, h1).slice(1, s, e), k3.slice(0, h0, h1).slice(1, 0, keys).transpose(1, 2));
      if (e - s > 1) {
        const at::Tensor later = upper.slice(0, 0, e - s).slice(1, 0, e - s);
        scores.slice(2, keys - (e - s), keys).masked_fill_(later, -std::numeric_limits<float>::infinity());
      }
      out.slice(0, h0, h1).slice(1, s, e).copy_(at::bmm(at::_softmax(scores, -1, false), v3.slice(0, h0, h1).slice(1, 0, keys)));
    }
  };
  const std::int64_t threads = at::get_num_threads();
  const bool autograd = c10::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (device_.is_cpu() && !autograd && threads > 1 && BH >= threads && !at::in_parallel_region()) {
    at::parallel_for(0, BH, (BH + threads - 1) / threads, heads);
  } else {
    heads(0, BH);
  }
  return out.view({B, H, T, dh}).transpose(1, 2).reshape({B, T, H * dh});  // [B, T, H*dh]
}

at::Tensor Transformer::mlp(const Layer& w, const at::Tensor& h) const {
  const ModelConfig& c = config_;
  if (c.arch == Architecture::Gpt2) {
    const std::int64_t B = h.size(0), T = h.size(1);
    const Activation act = c.activation == "gelu_new" || c.activation == "gelu_pytorch_tanh" ? Activation::GeluTanh
                           : c.activation == "gelu"                                          ? Activation::GeluErf
                                                                                             : Activation::Relu;
    const at::Tensor a = w.up.addmm(w.up_b, h.reshape({B * T, c.d_model}), w.up_w, act);  // [B*T, M]
    return w.down.addmm(w.down_b, a, w.down_w).view({B, T, c.d_model});
  }
  at::Tensor g = at::silu(w.gate.linear(h, w.gate_w.t(), w.gate_b)) * w.up.linear(h, w.up_w.t(), w.up_b);
  return w.down.linear(g, w.down_w.t(), w.down_b);
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
  auto run = [&](const std::string& name, at::Tensor x) {
    return hooked ? hooks->run(name, std::move(x), offset) : x;
  };
  at::Tensor dev_ids = ids.to(device_, at::kLong);
  at::Tensor x = run(kHookEmbed, at::embedding(wte_, dev_ids));  // [B, T, D]
  if (c.arch == Architecture::Gpt2) {
    at::Tensor pos = at::arange(offset, offset + T, at::TensorOptions().dtype(at::kLong).device(device_));
    x = x + run(kHookPosEmbed, at::embedding(wpe_, pos).unsqueeze(0).expand_as(x));
  }
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const Layer& w = layers_[l];
    const auto& names = hook_names_[l];
    x = run(names[kResidPre], x);
    at::Tensor attn_out = run(names[kAttnOut], attention(w, norm(x, w.n1_w, w.n1_b), l, offset, cache));
    x = run(names[kResidMid], x + attn_out);
    at::Tensor mlp_out = run(names[kMlpOut], mlp(w, norm(x, w.n2_w, w.n2_b)));
    x = run(names[kResidPost], x + mlp_out);
    if (l == stop_after_layer) {
      if (cache != nullptr) cache->length = offset + T;
      return at::Tensor();
    }
  }
  if (cache != nullptr) cache->length = offset + T;
  x = norm(x, lnf_w_, lnf_b_);
  return unembed_.linear(x, lm_head_.t(), at::Tensor());  // [B, T, V]
}

}  // namespace monoscope::core
