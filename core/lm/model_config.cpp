#include "lm/model_config.h"

#include <cmath>

#include "io/json_file.h"
#include "lm/families.h"
#include "util/error.h"

namespace monoscope::core {

namespace {
void requirePositive(const JsonFields& f, const std::string& key, std::int64_t v, std::int64_t max) {
  if (v <= 0 || v > max) f.fail(key, "is " + std::to_string(v) + ", outside 1.." + std::to_string(max));
}
}  // namespace

ModelConfig ModelConfig::fromJson(const nlohmann::json& j, const std::string& source) {
  const JsonFields f(j, source);
  ModelConfig c;
  c.model_type = f.string("model_type", "");
  const Family& family = familyOf(c.model_type, source);
  family.read(f, c);
  requirePositive(f, "vocab_size", c.vocab_size, 10'000'000);
  requirePositive(f, "hidden size", c.d_model, 1 << 16);
  requirePositive(f, "layer count", c.n_layers, 1024);
  requirePositive(f, "head count", c.n_heads, 4096);
  requirePositive(f, "key/value head count", c.n_kv_heads, c.n_heads);
  requirePositive(f, "MLP width", c.d_mlp, 1 << 20);
  requirePositive(f, "context length", c.n_ctx, 1 << 24);
  requirePositive(f, "head_dim", c.d_head, 4096);
  if (c.n_heads % c.n_kv_heads != 0) f.fail("num_key_value_heads", "does not divide num_attention_heads");
  if (!c.learned_positions) {
    const auto rotary = static_cast<std::int64_t>(static_cast<double>(c.d_head) * c.rotary_fraction);
    if (rotary < 2 || rotary % 2 != 0) f.fail("head_dim", "must give an even number of rotary dimensions for RoPE");
  }
  if (!(c.norm_eps > 0.0 && c.norm_eps < 1.0)) f.fail("norm epsilon", "must be in (0, 1)");
  const std::string& a = c.activation;
  if (a != "silu" && a != "gelu" && a != "gelu_new" && a != "gelu_pytorch_tanh" && a != "relu")
    f.fail("hidden_act", "'" + a + "' is not supported", "Monoscope computes silu, gelu, gelu_new, gelu_pytorch_tanh and relu");
  c.window.resize(static_cast<std::size_t>(c.n_layers), 0);
  auto token_id = [&](const std::string& key) -> std::int64_t {
    if (!f.has(key)) return -1;
    if (j[key].is_array()) return j[key].empty() || !j[key][0].is_number_integer() ? -1 : j[key][0].get<std::int64_t>();
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
  const Family& family = familyOf(model_type);
  nlohmann::json j = {{"model_type", model_type}, {"architectures", {family.hf_class}}};
  family.write(*this, j);
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  return j;
}

std::int64_t ModelConfig::parameterCount() const {
  const std::int64_t q = n_heads * d_head, kv = n_kv_heads * d_head;
  const std::int64_t emb = vocab_size * d_model + (learned_positions ? n_ctx * d_model : 0);
  const std::int64_t norm_size = norm == NormKind::LayerNorm ? 2 * d_model : d_model;
  std::int64_t per_layer = d_model * (q + 2 * kv) + q * d_model + (gated_mlp ? 3 : 2) * d_model * d_mlp + 2 * norm_size;
  if (qkv_bias) per_layer += q + 2 * kv;
  if (o_bias) per_layer += d_model;
  if (mlp_bias) per_layer += (gated_mlp ? 2 : 1) * d_mlp + d_model;
  if (post_norms) per_layer += 2 * norm_size;
  if (qk_norm) per_layer += 2 * d_head;
  return emb + n_layers * per_layer + (tied_embeddings ? 0 : vocab_size * d_model) + norm_size;
}

ModelConfig ModelConfig::gpt2(std::int64_t vocab, std::int64_t d_model, std::int64_t n_layers, std::int64_t n_heads,
                              std::int64_t n_ctx) {
  ModelConfig c;
  c.model_type = "gpt2";
  c.vocab_size = vocab;
  c.d_model = d_model;
  c.n_layers = n_layers;
  c.n_heads = c.n_kv_heads = n_heads;
  c.d_head = n_heads > 0 ? d_model / n_heads : 0;
  c.d_mlp = 4 * d_model;
  c.n_ctx = n_ctx;
  c.activation = "gelu_new";
  c.window.assign(static_cast<std::size_t>(std::max<std::int64_t>(0, n_layers)), 0);
  return c;
}

}  // namespace monoscope::core
