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

void readGemma(const JsonFields& f, ModelConfig& c) { readCommon(f, c); }

// A soft-cap: absent means the family's default, null means none.
double softcap(const JsonFields& f, const std::string& key, double absent) {
  if (!f.raw().contains(key)) return absent;
  const double v = f.number(key, 0.0);
  if (v < 0 || v > 1e6) f.fail(key, "is " + std::to_string(v) + ", outside 0..1e6");
  return v;
}

void readSoftcaps(const JsonFields& f, ModelConfig& c, double attn_default, double final_default) {
  const double scalar = f.number("query_pre_attn_scalar", static_cast<double>(c.d_head));
  if (!(scalar > 0 && scalar < 1e9)) f.fail("query_pre_attn_scalar", "must be positive");
  c.attn_scale = 1.0 / std::sqrt(scalar);
  c.attn_softcap = softcap(f, "attn_logit_softcapping", attn_default);
  c.final_softcap = softcap(f, "final_logit_softcapping", final_default);
}

void readGemma2(const JsonFields& f, ModelConfig& c) {
  readCommon(f, c);
  c.post_norms = true;
  readSoftcaps(f, c, 50.0, 30.0);  // transformers' Gemma 2 defaults
  family::readWindows(f, c, f.integer("sliding_window", 4096), 2);
}

void readGemma3(const JsonFields& f, ModelConfig& c) {
  readCommon(f, c);
  c.post_norms = true;
  c.qk_norm = true;
  readSoftcaps(f, c, 0.0, 0.0);
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
  family::checkRopeBase(f, c.rope.theta, "rope_parameters.full_attention.rope_theta");
  family::checkRopeBase(f, c.rope_local.theta, "rope_local_base_freq");
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
