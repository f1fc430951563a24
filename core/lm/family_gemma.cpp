// Gemma, Gemma 2 and Gemma 3 (text): RMSNorm scaled by (1 + w), GeGLU with tanh GELU,
// embeddings scaled by sqrt(d_model). Gemma 2 and 3 add norms after attention and the MLP, a
// query scale of query_pre_attn_scalar^-1/2, soft-capped scores and logits (Gemma 2) and
// sliding-window layers; Gemma 3 adds per-head q/k norms and its own RoPE base on the
// sliding-window layers.
#include <cmath>

#include "lm/families.h"

namespace monoscope::core {
namespace {

void readCommon(const JsonFields& f, ModelConfig& c) {
  family::readLlamaLike(f, c);
  c.norm = NormKind::RmsNormPlus;
  c.tied_embeddings = f.boolean("tie_word_embeddings", true);
  // Gemma's MLP is always the tanh GELU; hidden_activation overrides the legacy hidden_act.
  c.activation = f.string("hidden_activation", "gelu_pytorch_tanh");
  c.embed_scale = std::sqrt(static_cast<double>(c.d_model));
}

void readGemma(const JsonFields& f, ModelConfig& c) {
  readCommon(f, c);
  c.window.assign(static_cast<std::size_t>(std::max<std::int64_t>(0, c.n_layers)), 0);
}

void readSoftcaps(const JsonFields& f, ModelConfig& c) {
  c.attn_scale = 1.0 / std::sqrt(f.number("query_pre_attn_scalar", static_cast<double>(c.d_head)));
  c.attn_softcap = f.number("attn_logit_softcapping", 0.0);
  c.final_softcap = f.number("final_logit_softcapping", 0.0);
  if (!(f.number("query_pre_attn_scalar", 1.0) > 0)) f.fail("query_pre_attn_scalar", "must be positive");
  if (c.attn_softcap < 0) f.fail("attn_logit_softcapping", "must not be negative");
  if (c.final_softcap < 0) f.fail("final_logit_softcapping", "must not be negative");
}

void readGemma2(const JsonFields& f, ModelConfig& c) {
  readCommon(f, c);
  c.post_norms = true;
  readSoftcaps(f, c);
  family::readWindows(f, c, f.integer("sliding_window", 4096), 2);
}

void readGemma3(const JsonFields& f, ModelConfig& c) {
  readCommon(f, c);
  c.post_norms = true;
  c.qk_norm = true;
  readSoftcaps(f, c);
  family::readWindows(f, c, f.integer("sliding_window", 4096), f.integer("sliding_window_pattern", 6));
  c.local_rope = true;
  c.rope_local = RopeSpec{};
  c.rope_local.theta = f.number("rope_local_base_freq", 10000.0);
  if (f.has("rope_parameters") && f.raw()["rope_parameters"].contains("full_attention")) {
    const auto& rp = f.raw()["rope_parameters"];
    c.rope = family::readRope(rp["full_attention"], f.source() + " rope_parameters.full_attention", c.rope);
    if (rp.contains("sliding_attention"))
      c.rope_local = family::readRope(rp["sliding_attention"], f.source() + " rope_parameters.sliding_attention", c.rope_local);
  }
  if (!std::isfinite(c.rope_local.theta) || c.rope_local.theta < 1.0 || c.rope_local.theta > 1e12)
    f.fail("rope_local_base_freq", "is " + std::to_string(c.rope_local.theta) + ", outside 1..1e12");
}

void writeCommon(const ModelConfig& c, nlohmann::json& j) {
  family::writeLlamaLike(c, j);
  j.erase("hidden_act");
  j.erase("mlp_bias");
  j["hidden_activation"] = c.activation;
}

void writeGemma(const ModelConfig& c, nlohmann::json& j) { writeCommon(c, j); }

void writeCaps(const ModelConfig& c, nlohmann::json& j) {
  j["query_pre_attn_scalar"] = 1.0 / (c.attn_scale * c.attn_scale);
  j["attn_logit_softcapping"] = c.attn_softcap > 0 ? nlohmann::json(c.attn_softcap) : nlohmann::json(nullptr);
  j["final_logit_softcapping"] = c.final_softcap > 0 ? nlohmann::json(c.final_softcap) : nlohmann::json(nullptr);
  family::writeWindows(c, j);
}

void writeGemma2(const ModelConfig& c, nlohmann::json& j) {
  writeCommon(c, j);
  writeCaps(c, j);
}

void writeGemma3(const ModelConfig& c, nlohmann::json& j) {
  writeCommon(c, j);
  writeCaps(c, j);
  j["rope_local_base_freq"] = c.rope_local.theta;
  j["rope_parameters"] = {{"full_attention", family::writeRope(c.rope)}, {"sliding_attention", family::writeRope(c.rope_local)}};
}

WeightNames namesGemma(const ModelConfig& c) { return family::llamaNames(c); }

WeightNames namesGemma23(const ModelConfig& c) {
  WeightNames n = family::llamaNames(c, "pre_feedforward_layernorm");
  for (std::size_t l = 0; l < n.blocks.size(); ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    n.blocks[l].post_attn = p + "post_attention_layernorm.weight";
    n.blocks[l].post_mlp = p + "post_feedforward_layernorm.weight";
  }
  return n;
}

}  // namespace

extern const Family kGemmaFamily = {"gemma", "GemmaForCausalLM", readGemma, writeGemma, namesGemma};
extern const Family kGemma2Family = {"gemma2", "Gemma2ForCausalLM", readGemma2, writeGemma2, namesGemma23};
extern const Family kGemma3Family = {"gemma3_text", "Gemma3ForCausalLM", readGemma3, writeGemma3, namesGemma23};

}  // namespace monoscope::core
