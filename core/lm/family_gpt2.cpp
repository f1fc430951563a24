// GPT-2: learned positions, LayerNorm with biases, fused qkv and MLP in Conv1D layout ([in, out]).
#include "lm/families.h"

namespace monoscope::core {
namespace {

void read(const JsonFields& f, ModelConfig& c) {
  c.vocab_size = f.integer("vocab_size");
  c.d_model = f.integer("n_embd");
  family::setLayers(f, c, f.integer("n_layer"), "n_layer");
  c.n_heads = f.integer("n_head");
  c.n_kv_heads = c.n_heads;
  c.d_head = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
  c.n_ctx = f.integer("n_positions", f.integer("n_ctx", 1024));
  c.d_mlp = f.integer("n_inner", 4 * c.d_model);
  c.norm_eps = f.number("layer_norm_epsilon", 1e-5);
  c.activation = f.string("activation_function", "gelu_new");
  c.tied_embeddings = f.boolean("tie_word_embeddings", true);
  c.norm = NormKind::LayerNorm;
  c.learned_positions = true;
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  if (f.boolean("scale_attn_by_inverse_layer_idx", false) || f.boolean("reorder_and_upcast_attn", false))
    f.fail("scale_attn_by_inverse_layer_idx", "is set; this GPT-2 variant is not supported");
  if (!f.boolean("scale_attn_weights", true)) f.fail("scale_attn_weights", "false is not supported");
  if (c.n_heads > 0 && c.d_model % c.n_heads != 0) f.fail("n_head", "does not divide n_embd");
  if (c.activation == "relu" || c.activation == "gelu" || c.activation == "gelu_new" || c.activation == "gelu_pytorch_tanh") return;
  f.fail("activation_function", "'" + c.activation + "' is not supported", "use gelu_new, gelu_pytorch_tanh, gelu or relu");
}

void write(const ModelConfig& c, nlohmann::json& j) {
  j["vocab_size"] = c.vocab_size;
  j["n_embd"] = c.d_model;
  j["n_layer"] = c.n_layers;
  j["n_head"] = c.n_heads;
  j["n_positions"] = c.n_ctx;
  j["n_ctx"] = c.n_ctx;
  j["n_inner"] = c.d_mlp;
  j["layer_norm_epsilon"] = c.norm_eps;
  j["activation_function"] = c.activation;
  j["resid_pdrop"] = 0.0;
  j["embd_pdrop"] = 0.0;
  j["attn_pdrop"] = 0.0;
  j["tie_word_embeddings"] = c.tied_embeddings;
}

WeightNames names(const ModelConfig& c) {
  WeightNames n;
  n.prefix = "transformer.";
  n.embed = "wte.weight";
  n.positions = "wpe.weight";
  n.final_norm = "ln_f.weight";
  n.unembed = "lm_head.weight";
  n.conv1d = true;
  n.qkv_layout = QkvLayout::Gpt2Fused;
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    BlockNames b;
    b.norm1 = p + "ln_1.weight";
    b.qkv = p + "attn.c_attn.weight";
    b.o = p + "attn.c_proj.weight";
    b.norm2 = p + "ln_2.weight";
    b.up = p + "mlp.c_fc.weight";
    b.down = p + "mlp.c_proj.weight";
    n.blocks.push_back(b);
  }
  return n;
}

}  // namespace

extern const Family kGpt2Family = {"gpt2", "GPT2LMHeadModel", read, write, names};

}  // namespace monoscope::core
