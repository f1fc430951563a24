// GPT-NeoX (Pythia): attention and MLP side by side on the same input (use_parallel_residual),
// RoPE on a share of each head's dimensions (rotary_pct), LayerNorm with biases, fused per-head
// q | k | v, an untied embed_out.
#include "lm/families.h"

namespace monoscope::core {
namespace {

void read(const JsonFields& f, ModelConfig& c) {
  c.vocab_size = f.integer("vocab_size");
  c.d_model = f.integer("hidden_size");
  family::setLayers(f, c, f.integer("num_hidden_layers"), "num_hidden_layers");
  c.n_heads = f.integer("num_attention_heads");
  c.n_kv_heads = c.n_heads;
  c.d_head = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
  c.d_mlp = f.integer("intermediate_size", 4 * c.d_model);
  c.n_ctx = f.integer("max_position_embeddings", 2048);
  c.norm_eps = f.number("layer_norm_eps", 1e-5);
  c.activation = f.string("hidden_act", "gelu");
  c.tied_embeddings = f.boolean("tie_word_embeddings", false);
  c.norm = NormKind::LayerNorm;
  c.learned_positions = false;
  c.parallel_residual = f.boolean("use_parallel_residual", true);
  c.qkv_bias = c.o_bias = f.boolean("attention_bias", true);
  c.mlp_bias = true;
  // RoPE: rotary_pct / rotary_emb_base (transformers 4) or rope_parameters (5).
  c.rotary_fraction = f.number("rotary_pct", f.number("partial_rotary_factor", 0.25));  // transformers' default
  c.rope.theta = f.number("rotary_emb_base", f.number("rope_theta", 10000.0));
  if (f.has("rope_scaling")) c.rope = family::readRope(f.raw()["rope_scaling"], f.source() + " rope_scaling", c.rope);
  if (f.has("rope_parameters")) {
    const auto& rp = f.raw()["rope_parameters"];
    c.rope = family::readRope(rp, f.source() + " rope_parameters", c.rope);
    if (rp.is_object() && rp.contains("partial_rotary_factor") && rp["partial_rotary_factor"].is_number())
      c.rotary_fraction = rp["partial_rotary_factor"].get<double>();
  }
  if (!(c.rotary_fraction > 0.0 && c.rotary_fraction <= 1.0)) f.fail("rotary_pct", "must be in (0, 1]");
  family::checkRopeBase(f, c.rope.theta, "rotary_emb_base");
  if (c.n_heads > 0 && c.d_model % c.n_heads != 0) f.fail("num_attention_heads", "does not divide hidden_size");
  if (c.activation != "gelu" && c.activation != "gelu_new" && c.activation != "gelu_pytorch_tanh" && c.activation != "relu")
    f.fail("hidden_act", "'" + c.activation + "' is not supported", "use gelu, gelu_new, gelu_pytorch_tanh or relu");
}

void write(const ModelConfig& c, nlohmann::json& j) {
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.d_model;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["intermediate_size"] = c.d_mlp;
  j["max_position_embeddings"] = c.n_ctx;
  j["layer_norm_eps"] = c.norm_eps;
  j["hidden_act"] = c.activation;
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["use_parallel_residual"] = c.parallel_residual;
  j["attention_bias"] = c.qkv_bias;
  j["rotary_pct"] = c.rotary_fraction;
  j["rotary_emb_base"] = c.rope.theta;
  nlohmann::json rp = family::writeRope(c.rope);
  rp["partial_rotary_factor"] = c.rotary_fraction;
  j["rope_parameters"] = rp;
}

WeightNames names(const ModelConfig& c) {
  WeightNames n;
  n.prefix = "gpt_neox.";
  n.embed = "embed_in.weight";
  n.final_norm = "final_layer_norm.weight";
  n.unembed = "embed_out.weight";
  n.qkv_layout = QkvLayout::NeoxFused;
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    BlockNames b;
    b.norm1 = p + "input_layernorm.weight";
    b.norm2 = p + "post_attention_layernorm.weight";
    b.qkv = p + "attention.query_key_value.weight";
    b.o = p + "attention.dense.weight";
    b.up = p + "mlp.dense_h_to_4h.weight";
    b.down = p + "mlp.dense_4h_to_h.weight";
    n.blocks.push_back(b);
  }
  return n;
}

}  // namespace

extern const Family kGptNeoxFamily = {"gpt_neox", "GPTNeoXForCausalLM", read, write, names};

}  // namespace monoscope::core
