#pragma once
// Decoder-only transformer on LibTorch, with TransformerLens hook points. One forward pass for
// every family (lm/families.h): the family names the weights, ModelConfig's options shape the
// block. Internal header (LibTorch): include only from .cpp files.
#include <ATen/ATen.h>

#include <array>
#include <functional>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lm/families.h"
#include "lm/hooks.h"
#include "lm/model_config.h"
#include "lm/packed_product.h"

namespace monoscope::core {

class WeightStore;

// Keys and values of every layer for the positions seen so far.
struct KvCache {
  std::vector<at::Tensor> k;  // per layer [batch, n_kv_heads, pos, d_head]
  std::vector<at::Tensor> v;
  std::int64_t length = 0;
  void clear() { k.clear(); v.clear(); length = 0; }
};

// How a checkpoint's matrices are kept in memory. Float32: converted once at load (fastest).
// Stored: in the checkpoint's own BF16/F16 (half the memory), each converted to float32 as a
// layer multiplies by it, so the values are the same (the float32 model may take oneDNN's packed
// products, another summation order, within 1e-4). Auto: float32 unless that takes over 4 GiB
// or half the available memory and the checkpoint is BF16/F16 throughout.
enum class WeightDtype { Auto, Float32, Stored };
// "auto", "float32" or "stored"; anything else is refused naming `what` (e.g. "--weights").
WeightDtype weightDtypeFromName(const std::string& name, const std::string& what);

// torch's scaled_dot_product_attention replaces the blocked products on accelerators where the
// LibTorch build has it (2.1 and later). Tests turn it on for the CPU too; returns the previous setting.
bool torchAttentionAvailable();
bool setTorchAttentionOnCpu(bool on);

class Transformer {
 public:
  // Loads config.json + safetensors weights (Hugging Face names) from `dir` onto `device`. On the
  // CPU a model whose weights need more than the available memory is refused with the figures.
  static std::unique_ptr<Transformer> load(const std::string& dir, const c10::Device& device,
                                           WeightDtype weights = WeightDtype::Auto);
  // A freshly initialised model (GPT-2 initialisation: N(0, 0.02), scaled residual projections).
  static std::unique_ptr<Transformer> initRandom(const ModelConfig& config, std::uint64_t seed,
                                                 const c10::Device& device);

  // Writes config.json and model.safetensors in Hugging Face layout; `half` stores F16 weights
  // (half the size; loading converts back to F32).
  void save(const std::string& dir, bool half = false) const;

  // ids [batch, pos] (int64). Returns logits [batch, pos, vocab], or an undefined tensor when
  // `stop_after_layer` >= 0 (the forward pass stops after that block's hooks have run).
  at::Tensor forward(const at::Tensor& ids, const HookSet* hooks = nullptr, KvCache* cache = nullptr,
                     std::int64_t stop_after_layer = -1) const;

  const ModelConfig& config() const { return config_; }
  const c10::Device& device() const { return device_; }
  // The dtype the weight matrices are kept in (norms and biases are always float32).
  at::ScalarType weightDtype() const { return weight_dtype_; }
  // Parameters under their Hugging Face names (shared with the forward pass: training updates
  // them in place).
  const std::vector<std::pair<std::string, at::Tensor>>& parameters() const { return params_; }
  // The unembedding [vocab, d_model] (in weightDtype()) and the final norm's effective scale
  // (1 + w for Gemma's norm), for logit effects.
  at::Tensor unembed() const { return lm_head_; }
  // x [..., d_model] times the unembedding: [..., vocab]. Half-precision weights are widened a
  // slice of the vocabulary at a time, so no float32 copy of the whole matrix is made.
  at::Tensor unembedProduct(const at::Tensor& x) const;
  at::Tensor finalNormWeight() const { return config_.norm == NormKind::RmsNormPlus ? lnf_w_ + 1.0 : lnf_w_; }
  // Directions [n, width] at a hook as directions in the residual stream [n, d_model]: through
  // the output projection at attn.hook_z, the down projection at mlp.hook_post (and the
  // post-norm's scale where the family has one); unchanged at residual-stream hooks.
  at::Tensor toResidual(const std::string& hook, const at::Tensor& directions) const;

 private:
  struct Layer {
    at::Tensor n1_w, n1_b, n2_w, n2_b, post_attn_w, post_mlp_w, q_norm_w, k_norm_w;
    at::Tensor qkv_w, qkv_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
    at::Tensor up_w, up_b, gate_w, gate_b, down_w, down_b;
    PackedProduct qkv, q, k, v, o, up, gate, down;  // the products with the weights above
    at::Tensor inv_freq;                            // RoPE frequencies of this layer
    std::int64_t window = 0;                        // sliding window (0: full causal)
  };
  Transformer(ModelConfig config, c10::Device device);
  at::Tensor& param(const std::string& name, std::vector<std::int64_t> shape);
  void bindParameters();
  // x @ W^T + b for a weight in Linear layout [out, in] (or x @ W + b for Conv1D [in, out]).
  at::Tensor project(const PackedProduct& p, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                     Activation activation = Activation::None) const;
  // Runs the hooks registered at a point (the identity when there are none).
  using HookRun = std::function<at::Tensor(BlockHook, at::Tensor)>;
  // cos and sin of the rotary angles at one forward pass's positions, for one frequency table
  // (layers share it; Gemma 3 has a local and a global one): made once a pass, not per q and k.
  struct RopeTable {
    const void* inv_freq = nullptr;
    at::Tensor cos, sin;  // [pos, dims]
  };
  using RopeTables = std::vector<RopeTable>;
  at::Tensor attention(const Layer& w, const at::Tensor& h, std::int64_t layer, std::int64_t offset,
                       KvCache* cache, const HookRun& run, RopeTables& ropes) const;
  // softmax(q k^T * scale + causal mask) v with LibTorch: q [B, H, T, dh], k, v [B, H, S, dh]
  // -> [B, T, H*dh].
  at::Tensor blockedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) const;
  // The same in one fused CPU kernel (inference, fp32): q [B, H, T, dh], k, v [B, Hkv, S, dh].
  bool useFusedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) const;
  at::Tensor fusedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) const;
  // With a sliding window and/or soft-capped scores: the whole score matrix, masked.
  at::Tensor maskedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                             std::int64_t window) const;
  // torch's scaled_dot_product_attention (flash or memory-efficient kernels): on accelerators,
  // for a whole window or a single new query. q, k, v [B, H, T or S, dh].
  bool useTorchAttention(const at::Tensor& q, const at::Tensor& k) const;
  at::Tensor torchAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) const;
  at::Tensor mlp(const Layer& w, const at::Tensor& h, const HookRun& run) const;
  at::Tensor norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) const;
  // The norm in two steps: normalised (no weights), then the weights (and bias).
  at::Tensor normalize(const at::Tensor& x) const;
  at::Tensor normWeights(const at::Tensor& y, const at::Tensor& w, const at::Tensor& b) const;
  const RopeTable& ropeTable(RopeTables& tables, const at::Tensor& inv_freq, std::int64_t offset, std::int64_t T) const;
  at::Tensor rope(const at::Tensor& x, const RopeTable& table) const;

  ModelConfig config_;
  c10::Device device_;
  WeightNames names_;
  std::string prefix_;  // names_.prefix, or "" for a checkpoint saved without it
  at::ScalarType weight_dtype_ = at::kFloat;  // of the matrices (param with two dimensions)
  bool planning_ = false;                     // bindParameters only lists names and shapes
  // Set while loading half-precision matrices on the CPU: param() maps them from the files in
  // place instead of allocating (io/torch_bridge.h mapWeight); `mapped_` names those it mapped.
  std::shared_ptr<const WeightStore> mapping_;
  std::vector<bool> mapped_;
  static constexpr std::int64_t kUnembedSlice = 32768;  // vocabulary rows widened at a time
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<Layer> layers_;
  at::Tensor wte_, wpe_, lnf_w_, lnf_b_, lm_head_;
  PackedProduct unembed_;
  std::vector<std::array<std::string, kBlockHookCount>> hook_names_;  // per layer, by BlockHook
};

}  // namespace monoscope::core
