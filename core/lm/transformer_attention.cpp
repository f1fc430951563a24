// Transformer's attention: the projections, RoPE and the KV cache, then one of four ways to
// compute softmax(q k^T * scale + mask) v: the whole score matrix masked (sliding windows,
// soft-capped scores), the fused AVX-512 kernel (CPU inference), torch's
// scaled_dot_product_attention (accelerators, LibTorch 2.1 and later), or blocks of queries
// with LibTorch's products (everything else).
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "lm/attention_kernel.h"
#include "lm/transformer.h"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define MONOSCOPE_TORCH_SDPA 1
#endif

namespace monoscope::core {

namespace {
std::atomic<bool>& torchAttentionOnCpuFlag() {
  static std::atomic<bool> on{false};
  return on;
}

// Grouped queries: each of the Hkv key/value heads serves H / Hkv query heads, in order (as
// Hugging Face's repeat_kv). [B, Hkv, S, dh] -> [B, H, S, dh].
at::Tensor repeatKvHeads(const at::Tensor& t, std::int64_t H) {
  return t.size(1) == H ? t : t.repeat_interleave(H / t.size(1), 1);
}
}  // namespace

bool torchAttentionAvailable() {
#ifdef MONOSCOPE_TORCH_SDPA
  return true;
#else
  return false;
#endif
}

bool setTorchAttentionOnCpu(bool on) { return torchAttentionOnCpuFlag().exchange(on); }

at::Tensor Transformer::attention(const Layer& w, const at::Tensor& h, std::int64_t layer,
                                  std::int64_t offset, KvCache* cache, const HookRun& run, RopeTables& ropes) const {
  const ModelConfig& c = config_;
  const std::int64_t B = h.size(0), T = h.size(1), H = c.n_heads, Hkv = c.n_kv_heads, dh = c.d_head;
  at::Tensor q, k, v;
  switch (names_.qkv_layout) {
    case QkvLayout::Gpt2Fused: {  // [B, T, 3, H, dh]
      auto parts = project(w.qkv, h, w.qkv_w, w.qkv_b).view({B, T, 3, H, dh}).permute({2, 0, 3, 1, 4});
      q = parts[0];
      k = parts[1];
      v = parts[2];
      break;
    }
    case QkvLayout::NeoxFused: {  // [B, T, H, 3, dh]
      auto parts = project(w.qkv, h, w.qkv_w, w.qkv_b).view({B, T, H, 3, dh}).permute({3, 0, 2, 1, 4});
      q = parts[0];
      k = parts[1];
      v = parts[2];
      break;
    }
    case QkvLayout::Separate:
      q = project(w.q, h, w.q_w, w.q_b).view({B, T, H, dh}).transpose(1, 2);      // [B, H, T, dh]
      k = project(w.k, h, w.k_w, w.k_b).view({B, T, Hkv, dh}).transpose(1, 2);    // [B, Hkv, T, dh]
      v = project(w.v, h, w.v_w, w.v_b).view({B, T, Hkv, dh}).transpose(1, 2);
      break;
  }
  if (c.qk_norm) {
    q = norm(q, w.q_norm_w, at::Tensor());
    k = norm(k, w.k_norm_w, at::Tensor());
  }
  if (!c.learned_positions) {
    const RopeTable& table = ropeTable(ropes, w.inv_freq, offset, q.size(2));
    q = rope(q, table);
    k = rope(k, table);
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
  const double scale = c.attn_scale > 0 ? c.attn_scale : 1.0 / std::sqrt(static_cast<double>(dh));
  // A window at least as long as the keys masks nothing beyond the causal mask.
  const std::int64_t window = w.window > 0 && w.window < k.size(2) ? w.window : 0;
  at::Tensor out;  // [B, T, H*dh]
  if (window > 0 || c.attn_softcap > 0) {
    out = maskedAttention(q, k, v, scale, window);
  } else if (useFusedAttention(q, k, v)) {
    out = fusedAttention(q, k, v, scale);
  } else {
    k = repeatKvHeads(k, H);
    v = repeatKvHeads(v, H);
    out = useTorchAttention(q, k) ? torchAttention(q, k, v, scale) : blockedAttention(q, k, v, scale);
  }
  return project(w.o, run(kAttnZ, out), w.o_w, w.o_b);
}

at::Tensor Transformer::maskedAttention(const at::Tensor& q, const at::Tensor& k_in, const at::Tensor& v_in,
                                        double scale, std::int64_t window) const {
  const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), dh = q.size(3), S = k_in.size(2);
  const at::Tensor k = repeatKvHeads(k_in, H), v = repeatKvHeads(v_in, H);
  // The whole [B, H, T, S] score matrix, worked on in place (one copy live). Fine for the index's
  // windows and prompts; a blocked version is the next step for long contexts.
  at::Tensor scores = at::matmul(q, k.transpose(2, 3)).mul_(scale);  // [B, H, T, S]
  if (config_.attn_softcap > 0) scores.div_(config_.attn_softcap).tanh_().mul_(config_.attn_softcap);
  // Query t sits at absolute position S - T + t; it sees keys s <= that and, with a window,
  // s > that - window.
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device_);
  const at::Tensor qpos = at::arange(S - T, S, opts).unsqueeze(1), kpos = at::arange(0, S, opts).unsqueeze(0);
  at::Tensor hidden = kpos > qpos;
  if (window > 0) hidden = hidden.logical_or(kpos <= qpos - window);
  scores.masked_fill_(hidden, -std::numeric_limits<float>::infinity());
  const at::Tensor out = at::matmul(at::_softmax(scores, -1, false), v);  // [B, H, T, dh]
  return out.transpose(1, 2).reshape({B, T, H * dh});
}

bool Transformer::useFusedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) const {
  const bool autograd = c10::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  return !autograd && device_.is_cpu() && fusedAttentionEnabled() && fusedAttentionSupported(q.size(3)) &&
         q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat &&
         k.size(2) >= q.size(2);
}

at::Tensor Transformer::fusedAttention(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                       double scale) const {
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
  a.scale = static_cast<float>(scale);
  const std::int64_t BH = B * H, threads = at::get_num_threads();
  if (threads > 1 && BH >= threads && !at::in_parallel_region()) {
    at::parallel_for(0, BH, (BH + threads - 1) / threads, [&](std::int64_t h0, std::int64_t h1) { fusedCausalAttention(a, h0, h1); });
  } else {
    fusedCausalAttention(a, 0, BH);
  }
  return out;
}

at::Tensor Transformer::blockedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         double scale) const {
  const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), dh = q.size(3);
  // Causal attention a block of queries at a time: block [s, e) sees keys 0 .. offset + e - 1, so the
  // keys after the block are never multiplied, and the scale, mask and softmax work in place on a
  // block small enough to stay in cache. On the CPU each thread takes its own share of the
  // batch x heads (the products are small: one thread each runs them better than both together).
  const std::int64_t S = k.size(2), BH = B * H;
  const at::Tensor q3 = (q * scale).reshape({BH, T, dh});
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

bool Transformer::useTorchAttention(const at::Tensor& q, const at::Tensor& k) const {
  if (!torchAttentionAvailable() || (device_.is_cpu() && !torchAttentionOnCpuFlag().load())) return false;
  // Causal when the queries are the keys (a window, a prompt); one new query sees every key. A
  // block of queries after cached keys would need a mask aligned to the end: the blocked path.
  const std::int64_t T = q.size(2), S = k.size(2);
  return T == S || T == 1;
}

at::Tensor Transformer::torchAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       double scale) const {
  const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), dh = q.size(3);
#ifdef MONOSCOPE_TORCH_SDPA
  const at::Tensor out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, T > 1, scale);  // [B, H, T, dh]
  return out.transpose(1, 2).reshape({B, T, H * dh});
#else
  (void)B, (void)H, (void)T, (void)dh;
  return blockedAttention(q, k, v, scale);  // not reached: useTorchAttention is false
#endif
}

}  // namespace monoscope::core
