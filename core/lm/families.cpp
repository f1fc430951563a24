// The family table and what the Llama-like families share (lm/families.h).
#include "lm/families.h"

#include <cmath>

#include "util/error.h"

namespace monoscope::core {

extern const Family kGpt2Family, kLlamaFamily, kMistralFamily, kQwen2Family, kQwen3Family, kGemmaFamily,
    kGemma2Family, kGemma3Family, kGptNeoxFamily;

const std::vector<const Family*>& families() {
  static const std::vector<const Family*> table = {&kGpt2Family,  &kLlamaFamily,  &kMistralFamily,
                                                   &kQwen2Family, &kQwen3Family,  &kGemmaFamily,
                                                   &kGemma2Family, &kGemma3Family, &kGptNeoxFamily};
  return table;
}

const Family& familyOf(const std::string& model_type, const std::string& source) {
  std::string known;
  for (const Family* f : families()) {
    if (model_type == f->model_type) return *f;
    known += (known.empty() ? "" : ", ") + std::string(f->model_type);
  }
  throw Error(source + ": field 'model_type' '" + model_type + "' is not supported", "Monoscope reads " + known);
}

namespace family {

RopeSpec readRope(const nlohmann::json& object, const std::string& source, RopeSpec r) {
  if (!object.is_object()) throw Error(source + " must be an object");
  const JsonFields f(object, source);
  r.theta = f.number("rope_theta", r.theta);
  r.scaling = f.has("rope_type") ? f.string("rope_type") : f.string("type", "default");
  if (r.scaling == "default") return r;
  if (r.scaling == "linear") {
    r.factor = f.number("factor");
    if (!(r.factor >= 1.0 && r.factor <= 1e6)) f.fail("factor", "must be in 1..1e6");
    return r;
  }
  if (r.scaling == "llama3") {
    r.factor = f.number("factor");
    r.low_freq_factor = f.number("low_freq_factor");
    r.high_freq_factor = f.number("high_freq_factor");
    r.original_context = f.integer("original_max_position_embeddings");
    if (!(r.factor >= 1.0 && r.factor <= 1e6)) f.fail("factor", "must be in 1..1e6");
    if (!(r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor))
      f.fail("high_freq_factor", "must exceed low_freq_factor, which must be positive");
    if (r.original_context < 1 || r.original_context > (1 << 24)) f.fail("original_max_position_embeddings", "must be in 1..16777216");
    return r;
  }
  f.fail("rope_type", "'" + r.scaling + "' is not supported", "Monoscope computes default, linear and llama3 RoPE");
}

nlohmann::json writeRope(const RopeSpec& r) {
  nlohmann::json j = {{"rope_type", r.scaling}, {"rope_theta", r.theta}};
  if (r.scaling != "default") j["factor"] = r.factor;
  if (r.scaling == "llama3") {
    j["low_freq_factor"] = r.low_freq_factor;
    j["high_freq_factor"] = r.high_freq_factor;
    j["original_max_position_embeddings"] = r.original_context;
  }
  return j;
}

void checkRopeBase(const JsonFields& f, double theta, const std::string& key) {
  // theta^(-2i/d) must be a finite, positive frequency: theta 0, negative or denormal is corrupt.
  if (!std::isfinite(theta) || theta < 1.0 || theta > 1e12)
    f.fail(key, "is " + std::to_string(theta) + ", outside 1..1e12", "use the model's real RoPE base (often 10000)");
}

void setLayers(const JsonFields& f, ModelConfig& c, std::int64_t n_layers, const std::string& key) {
  if (n_layers < 1 || n_layers > 1024) f.fail(key, "is " + std::to_string(n_layers) + ", outside 1..1024");
  c.n_layers = n_layers;
  c.window.assign(static_cast<std::size_t>(n_layers), 0);
}

void readLlamaLike(const JsonFields& f, ModelConfig& c) {
  c.vocab_size = f.integer("vocab_size");
  c.d_model = f.integer("hidden_size");
  setLayers(f, c, f.integer("num_hidden_layers"), "num_hidden_layers");
  c.n_heads = f.integer("num_attention_heads");
  c.n_kv_heads = f.integer("num_key_value_heads", c.n_heads);
  c.d_mlp = f.integer("intermediate_size");
  c.n_ctx = f.integer("max_position_embeddings", 2048);
  c.norm_eps = f.number("rms_norm_eps", 1e-6);
  c.d_head = f.integer("head_dim", c.n_heads > 0 ? c.d_model / c.n_heads : 0);
  c.norm = NormKind::RmsNorm;
  c.learned_positions = false;
  c.gated_mlp = true;
  c.activation = f.string("hidden_act", "silu");
  c.tied_embeddings = f.boolean("tie_word_embeddings", false);
  c.qkv_bias = c.o_bias = f.boolean("attention_bias", false);
  c.mlp_bias = f.boolean("mlp_bias", false);
  // RoPE: transformers 5 writes rope_parameters, earlier versions rope_theta and rope_scaling.
  c.rope.theta = f.number("rope_theta", 10000.0);
  if (f.has("rope_scaling")) c.rope = readRope(f.raw()["rope_scaling"], f.source() + " rope_scaling", c.rope);
  if (f.has("rope_parameters")) {
    const auto& rp = f.raw()["rope_parameters"];
    // Per-layer-type parameters (Gemma 3) are read by that family.
    if (!(rp.is_object() && rp.contains("full_attention")))
      c.rope = readRope(rp, f.source() + " rope_parameters", c.rope);
  }
  checkRopeBase(f, c.rope.theta, "rope_theta");
}

void writeLlamaLike(const ModelConfig& c, nlohmann::json& j) {
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.d_model;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.d_head;
  j["intermediate_size"] = c.d_mlp;
  j["max_position_embeddings"] = c.n_ctx;
  j["rms_norm_eps"] = c.norm_eps;
  j["hidden_act"] = c.activation;
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["attention_bias"] = c.qkv_bias;
  j["mlp_bias"] = c.mlp_bias;
  j["rope_theta"] = c.rope.theta;  // both spellings, for transformers 4 and 5
  j["rope_parameters"] = writeRope(c.rope);
  if (c.rope.scaling != "default") j["rope_scaling"] = writeRope(c.rope);
}

void readWindows(const JsonFields& f, ModelConfig& c, std::int64_t window, std::int64_t pattern) {
  c.window.assign(static_cast<std::size_t>(c.n_layers), 0);  // n_layers checked by setLayers
  if (pattern < 0 || pattern > (1 << 20)) f.fail("sliding_window_pattern", "is " + std::to_string(pattern) + ", outside 0..1048576");
  if (window < 0 || window > (1 << 24)) f.fail("sliding_window", "is " + std::to_string(window) + ", outside 0..16777216");
  if (f.has("layer_types")) {
    const auto& types = f.raw()["layer_types"];
    if (!types.is_array() || static_cast<std::int64_t>(types.size()) != c.n_layers)
      f.fail("layer_types", "must list one type per layer (" + std::to_string(c.n_layers) + ")");
    for (std::size_t l = 0; l < types.size(); ++l) {
      const std::string t = types[l].is_string() ? types[l].get<std::string>() : "";
      if (t == "sliding_attention") {
        c.window[l] = window;
      } else if (t != "full_attention") {
        f.fail("layer_types", "entry " + std::to_string(l) + " '" + t + "' is not supported",
               "use sliding_attention or full_attention");
      }
    }
    return;
  }
  for (std::int64_t l = 0; l < c.n_layers; ++l)
    if (pattern == 0 || (l + 1) % pattern != 0) c.window[static_cast<std::size_t>(l)] = window;
}

void writeWindows(const ModelConfig& c, nlohmann::json& j) {
  std::int64_t window = 0;
  nlohmann::json types = nlohmann::json::array();
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    window = std::max(window, c.windowOf(l));
    types.push_back(c.windowOf(l) > 0 ? "sliding_attention" : "full_attention");
  }
  j["layer_types"] = types;
  j["sliding_window"] = window > 0 ? nlohmann::json(window) : nlohmann::json(nullptr);
}

WeightNames llamaNames(const ModelConfig& c, const std::string& pre_mlp_norm) {
  WeightNames n;
  n.prefix = "model.";
  n.embed = "embed_tokens.weight";
  n.final_norm = "norm.weight";
  n.unembed = "lm_head.weight";
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    BlockNames b;
    b.norm1 = p + "input_layernorm.weight";
    b.norm2 = p + pre_mlp_norm + ".weight";
    b.q = p + "self_attn.q_proj.weight";
    b.k = p + "self_attn.k_proj.weight";
    b.v = p + "self_attn.v_proj.weight";
    b.o = p + "self_attn.o_proj.weight";
    if (c.qk_norm) {
      b.q_norm = p + "self_attn.q_norm.weight";
      b.k_norm = p + "self_attn.k_norm.weight";
    }
    b.gate = p + "mlp.gate_proj.weight";
    b.up = p + "mlp.up_proj.weight";
    b.down = p + "mlp.down_proj.weight";
    n.blocks.push_back(b);
  }
  return n;
}

}  // namespace family
}  // namespace monoscope::core
