#include "lm/model_config.h"

#include <cmath>

#include "io/json_file.h"
#include "util/error.h"

namespace monoscope::core {

namespace {
void requirePositive(const JsonFields& f, const std::string& key, std::int64_t v,
                     std::int64_t max) {
  if (v <= 0 || v > max) f.fail(key, "is " + std::to_string(v) + ", outside 1.." + std::to_string(max));
}
}  // namespace

ModelConfig ModelConfig::fromJson(const nlohmann::json& j, const std::string& source) {
  const JsonFields f(j, source);
  ModelConfig c;
  c.model_type = f.string("model_type", "");
  if (c.model_type == "gpt2") {
    c.arch = Architecture::Gpt2;
    c.vocab_size = f.integer("vocab_size");
    c.d_model = f.integer("n_embd");
    c.n_layers = f.integer("n_layer");
    c.n_heads = f.integer("n_head");
    c.n_kv_heads = c.n_heads;
    c.n_ctx = f.integer("n_positions", f.integer("n_ctx", 1024));
    c.d_mlp = f.integer("n_inner", 4 * c.d_model);
    c.norm_eps = f.number("layer_norm_epsilon", 1e-5);
    c.activation = f.string("activation_function", "gelu_new");
    c.tied_embeddings = f.boolean("tie_word_embeddings", true);
    if (f.boolean("scale_attn_by_inverse_layer_idx", false) || f.boolean("reorder_and_upcast_attn", false)) {
      f.fail("scale_attn_by_inverse_layer_idx", "is set; this GPT-2 variant is not supported");
    }
    if (!f.boolean("scale_attn_weights", true)) f.fail("scale_attn_weights", "false is not supported");
    if (c.activation != "gelu_new" && c.activation != "gelu" && c.activation != "relu" &&
        c.activation != "gelu_pytorch_tanh") {
      f.fail("activation_function", "'" + c.activation + "' is not supported",
             "use gelu_new, gelu_pytorch_tanh, gelu or relu");
    }
  } else if (c.model_type == "llama" || c.model_type == "mistral") {
    c.arch = Architecture::Llama;
    c.vocab_size = f.integer("vocab_size");
    c.d_model = f.integer("hidden_size");
    c.n_layers = f.integer("num_hidden_layers");
    c.n_heads = f.integer("num_attention_heads");
    c.n_kv_heads = f.integer("num_key_value_heads", c.n_heads);
    c.d_mlp = f.integer("intermediate_size");
    c.n_ctx = f.integer("max_position_embeddings", 2048);
    c.norm_eps = f.number("rms_norm_eps", 1e-6);
    c.rope_theta = f.number("rope_theta", 10000.0);
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
      const JsonFields rp(j["rope_parameters"], source + " rope_parameters");
      c.rope_theta = rp.number("rope_theta", c.rope_theta);
      const std::string type = rp.string("rope_type", "default");
      if (type != "default") rp.fail("rope_type", "'" + type + "' is not supported", "only unscaled RoPE is implemented");
    }
    // theta^(-2i/d) must be a finite, positive frequency: theta 0, negative or denormal is corrupt.
    if (!std::isfinite(c.rope_theta) || c.rope_theta < 1.0 || c.rope_theta > 1e12)
      f.fail("rope_theta", "is " + std::to_string(c.rope_theta) + ", outside 1..1e12", "use the model's real RoPE base (often 10000)");
    if (f.has("rope_scaling")) {
      const auto& rs = j["rope_scaling"];
      const std::string type = rs.is_object() ? rs.value("rope_type", rs.value("type", "")) : "";
      if (type != "default") f.fail("rope_scaling", "is set; scaled RoPE is not supported", "use an unscaled model");
    }
    c.activation = f.string("hidden_act", "silu");
    if (c.activation != "silu") f.fail("hidden_act", "'" + c.activation + "' is not supported", "Llama models use silu");
    c.tied_embeddings = f.boolean("tie_word_embeddings", false);
    c.attention_bias = f.boolean("attention_bias", false);
    c.mlp_bias = f.boolean("mlp_bias", false);
  } else {
    f.fail("model_type", "'" + c.model_type + "' is not supported", "Monoscope reads gpt2 and llama-family models");
  }
  requirePositive(f, "vocab_size", c.vocab_size, 10'000'000);
  requirePositive(f, "hidden size", c.d_model, 1 << 16);
  requirePositive(f, "layer count", c.n_layers, 1024);
  requirePositive(f, "head count", c.n_heads, 4096);
  requirePositive(f, "key/value head count", c.n_kv_heads, c.n_heads);
  requirePositive(f, "MLP width", c.d_mlp, 1 << 20);
  requirePositive(f, "context length", c.n_ctx, 1 << 24);
  const std::int64_t d_head_default = c.d_model / c.n_heads;
  c.d_head = f.integer("head_dim", d_head_default);
  if (c.arch == Architecture::Gpt2 && c.d_model % c.n_heads != 0)
    f.fail("n_head", "does not divide n_embd");
  if (c.n_heads % c.n_kv_heads != 0) f.fail("num_key_value_heads", "does not divide num_attention_heads");
  requirePositive(f, "head_dim", c.d_head, 4096);
  if (c.arch == Architecture::Llama && c.d_head % 2 != 0) f.fail("head_dim", "must be even for RoPE");
  if (!(c.norm_eps > 0.0 && c.norm_eps < 1.0)) f.fail("norm epsilon", "must be in (0, 1)");
  auto token_id = [&](const std::string& key) -> std::int64_t {
    if (!f.has(key)) return -1;
    if (j[key].is_array()) return j[key].empty() ? -1 : j[key][0].get<std::int64_t>();
    return f.integer(key);
  };
  c.bos_token_id = token_id("bos_token_id");
  c.eos_token_id = token_id("eos_token_id");
  return c;
}

ModelConfig ModelConfig::fromFile(const std::string& path) {
  return fromJson(readJsonFile(path), "'" + path + "'");
}

nlohmann::json ModelConfig::toJson() const {
  nlohmann::json j;
  if (arch == Architecture::Gpt2) {
    j = {{"model_type", "gpt2"},
         {"architectures", {"GPT2LMHeadModel"}},
         {"vocab_size", vocab_size},
         {"n_embd", d_model},
         {"n_layer", n_layers},
         {"n_head", n_heads},
         {"n_positions", n_ctx},
         {"n_ctx", n_ctx},
         {"n_inner", d_mlp},
         {"layer_norm_epsilon", norm_eps},
         {"activation_function", activation},
         {"resid_pdrop", 0.0},
         {"embd_pdrop", 0.0},
         {"attn_pdrop", 0.0},
         {"tie_word_embeddings", tied_embeddings}};
  } else {
    j = {{"model_type", model_type},
         {"architectures", {"LlamaForCausalLM"}},
         {"vocab_size", vocab_size},
         {"hidden_size", d_model},
         {"num_hidden_layers", n_layers},
         {"num_attention_heads", n_heads},
         {"num_key_value_heads", n_kv_heads},
         {"head_dim", d_head},
         {"intermediate_size", d_mlp},
         {"max_position_embeddings", n_ctx},
         {"rms_norm_eps", norm_eps},
         {"rope_theta", rope_theta},
         {"hidden_act", activation},
         {"tie_word_embeddings", tied_embeddings},
         {"attention_bias", attention_bias},
         {"mlp_bias", mlp_bias}};
  }
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  return j;
}

std::int64_t ModelConfig::parameterCount() const {
  const std::int64_t emb = vocab_size * d_model + (arch == Architecture::Gpt2 ? n_ctx * d_model : 0);
  std::int64_t per_layer;
  if (arch == Architecture::Gpt2) {
    per_layer = 4 * d_model * d_model + 4 * d_model + 2 * d_model * d_mlp + d_mlp + d_model + 4 * d_model;
  } else {
    const std::int64_t q = n_heads * d_head, kv = n_kv_heads * d_head;
    per_layer = d_model * (q + 2 * kv) + q * d_model + 3 * d_model * d_mlp + 2 * d_model;
  }
  return emb + n_layers * per_layer + (tied_embeddings ? 0 : vocab_size * d_model) + 2 * d_model;
}

}  // namespace monoscope::core
