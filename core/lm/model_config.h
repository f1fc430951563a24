#pragma once
// Hyperparameters of a decoder-only LM, read from a Hugging Face config.json. Each family
// (lm/families.h) reads its own keys into the options below; the forward pass reads only the
// options, never the family's name.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace monoscope::core {

enum class NormKind {
  LayerNorm,   // (x - mean) / sqrt(var + eps) * w + b
  RmsNorm,     // x / sqrt(mean(x^2) + eps) * w
  RmsNormPlus  // x / sqrt(mean(x^2) + eps) * (1 + w)   (Gemma)
};

// RoPE frequencies: the base and, where a model scales them, how.
struct RopeSpec {
  double theta = 10000.0;
  std::string scaling = "default";   // default | linear | llama3
  double factor = 1.0;               // linear, llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  std::int64_t original_context = 0;                     // llama3
};

struct ModelConfig {
  std::string model_type = "gpt2";   // config.json model_type: the family (lm/families.h)
  std::int64_t vocab_size = 0;
  std::int64_t d_model = 0;          // n_embd / hidden_size
  std::int64_t n_layers = 0;
  std::int64_t n_heads = 0;
  std::int64_t n_kv_heads = 0;       // grouped-query attention; = n_heads without it
  std::int64_t d_head = 0;
  std::int64_t d_mlp = 0;            // n_inner (default 4 d_model) / intermediate_size
  std::int64_t n_ctx = 0;            // n_positions / max_position_embeddings
  double norm_eps = 1e-5;            // layer_norm_epsilon / rms_norm_eps
  std::string activation = "gelu_new";  // activation_function / hidden_act / hidden_activation
  bool tied_embeddings = true;       // tie_word_embeddings
  std::int64_t bos_token_id = -1;
  std::int64_t eos_token_id = -1;

  // The block's shape (the defaults are GPT-2's).
  NormKind norm = NormKind::LayerNorm;
  bool learned_positions = true;     // GPT-2's position embedding (else RoPE)
  bool gated_mlp = false;            // act(gate x) * (up x) -> down  (else up -> act -> down)
  bool parallel_residual = false;    // x + attn(ln1 x) + mlp(ln2 x)  (GPT-NeoX)
  bool post_norms = false;           // norms after attention and MLP, before the sums (Gemma 2/3)
  bool qk_norm = false;              // a norm over each head's queries and keys (Qwen3, Gemma 3)
  bool qkv_bias = true, o_bias = true, mlp_bias = true;
  double embed_scale = 1.0;          // embeddings times this (Gemma: sqrt(d_model))
  double attn_scale = 0.0;           // query scale; 0: 1 / sqrt(d_head)
  double attn_softcap = 0.0;         // scores -> cap * tanh(scores / cap); 0: none
  double final_softcap = 0.0;        // the same on the logits
  double rotary_fraction = 1.0;      // share of each head's dims that RoPE rotates (GPT-NeoX)
  RopeSpec rope;                     // global layers
  RopeSpec rope_local;               // sliding-window layers where they differ (Gemma 3)
  bool local_rope = false;           // rope_local applies to sliding-window layers
  std::vector<std::int64_t> window;  // per layer: 0 = full causal attention, else the window

  // Parses and validates config.json; errors name the file and field.
  static ModelConfig fromJson(const nlohmann::json& j, const std::string& source);
  static ModelConfig fromFile(const std::string& path);
  // Hugging Face config.json for this model.
  nlohmann::json toJson() const;
  std::int64_t parameterCount() const;
  // The sliding window of layer l (0: full attention).
  std::int64_t windowOf(std::int64_t l) const {
    return l < static_cast<std::int64_t>(window.size()) ? window[static_cast<std::size_t>(l)] : 0;
  }
  // A GPT-2 config with the given sizes (the toy models Monoscope trains).
  static ModelConfig gpt2(std::int64_t vocab_size, std::int64_t d_model, std::int64_t n_layers, std::int64_t n_heads,
                          std::int64_t n_ctx);
};

}  // namespace monoscope::core
