#pragma once
// Hyperparameters of a decoder-only LM, read from a Hugging Face config.json.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace monoscope::core {

enum class Architecture { Gpt2, Llama };

struct ModelConfig {
  Architecture arch = Architecture::Gpt2;
  std::string model_type = "gpt2";   // config.json model_type
  std::int64_t vocab_size = 0;
  std::int64_t d_model = 0;          // n_embd / hidden_size
  std::int64_t n_layers = 0;
  std::int64_t n_heads = 0;
  std::int64_t n_kv_heads = 0;       // grouped-query attention (Llama); = n_heads for GPT-2
  std::int64_t d_head = 0;
  std::int64_t d_mlp = 0;            // n_inner (default 4 d_model) / intermediate_size
  std::int64_t n_ctx = 0;            // n_positions / max_position_embeddings
  double norm_eps = 1e-5;            // layer_norm_epsilon / rms_norm_eps
  double rope_theta = 10000.0;       // Llama only
  std::string activation = "gelu_new";  // activation_function / hidden_act
  bool tied_embeddings = true;       // tie_word_embeddings
  bool attention_bias = false;       // Llama attention_bias
  bool mlp_bias = false;             // Llama mlp_bias
  std::int64_t bos_token_id = -1;
  std::int64_t eos_token_id = -1;

  // Parses and validates config.json; errors name the file and field.
  static ModelConfig fromJson(const nlohmann::json& j, const std::string& source);
  static ModelConfig fromFile(const std::string& path);
  // Hugging Face config.json for this model.
  nlohmann::json toJson() const;
  std::int64_t parameterCount() const;
};

}  // namespace monoscope::core
