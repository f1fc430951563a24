#pragma once
// Model families: one row each in a table (families.cpp), defined in one small file per family
// (family_*.cpp). A family reads its config.json keys into ModelConfig's options, writes them
// back, and names its weights; the forward pass (transformer.cpp) is shared and reads only the
// options. Adding a family is adding a row and its file.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "lm/model_config.h"

namespace monoscope::core {

// How a block's attention input projections are stored.
enum class QkvLayout {
  Separate,    // q_proj, k_proj, v_proj (Linear)
  Gpt2Fused,   // c_attn, Conv1D [d_model, 3 * d_model]: q | k | v along the output
  NeoxFused    // query_key_value, Linear [3 * d_model, d_model]: per head q | k | v
};

// The names of one block's weights ("" where the family has none). Biases are the weight's
// name with ".bias" for ".weight" where the config has them (qkv_bias, o_bias, mlp_bias; a
// LayerNorm always has one).
struct BlockNames {
  std::string norm1, norm2;            // before attention, before the MLP
  std::string q, k, v, qkv, o;         // qkv for the fused layouts, else q, k, v
  std::string q_norm, k_norm;          // per-head norms (qk_norm)
  std::string post_attn, post_mlp;     // post_norms
  std::string gate, up, down;          // gate only for gated MLPs
};

struct WeightNames {
  std::string prefix;                  // in front of every name but the unembedding ("model.")
  std::string embed, positions, final_norm;
  std::string unembed;                 // without the prefix; read when not tied
  bool conv1d = false;                 // Linear weights stored [in, out] (GPT-2's Conv1D)
  QkvLayout qkv_layout = QkvLayout::Separate;
  std::vector<BlockNames> blocks;
};

struct Family {
  const char* model_type;                                      // config.json model_type
  const char* hf_class;                                        // config.json architectures[0]
  void (*read)(const JsonFields& f, ModelConfig& c);           // every option and size
  void (*write)(const ModelConfig& c, nlohmann::json& j);      // the family's own keys
  WeightNames (*names)(const ModelConfig& c);
};

// The family of a model_type; throws Error naming `source` and the families there are.
const Family& familyOf(const std::string& model_type, const std::string& source = "config.json");
const std::vector<const Family*>& families();

// Shared by the family files.
namespace family {
// Llama-style keys: sizes, RMSNorm eps, RoPE (rope_theta / rope_scaling or rope_parameters,
// either spelling), hidden_act, tie_word_embeddings, attention_bias, mlp_bias, head_dim.
void readLlamaLike(const JsonFields& f, ModelConfig& c);
void writeLlamaLike(const ModelConfig& c, nlohmann::json& j);
// RoPE parameters from a rope_parameters / rope_scaling object; `source` names it in errors.
RopeSpec readRope(const nlohmann::json& object, const std::string& source, RopeSpec base);
nlohmann::json writeRope(const RopeSpec& r);
// Checks the layer count (before anything is sized by it) and clears the per-layer windows.
void setLayers(const JsonFields& f, ModelConfig& c, std::int64_t n_layers, const std::string& key);
// A RoPE base must be a finite frequency base in 1..1e12; `key` names the field in errors.
void checkRopeBase(const JsonFields& f, double theta, const std::string& key);
// Per-layer windows from layer_types ("sliding_attention" | "full_attention"), or `pattern`
// (every pattern-th layer full, the others sliding; 0: all sliding) when the config has none.
void readWindows(const JsonFields& f, ModelConfig& c, std::int64_t window, std::int64_t pattern);
void writeWindows(const ModelConfig& c, nlohmann::json& j);
// The Llama block's names under "model.layers.L." (self_attn.*, mlp.*).
WeightNames llamaNames(const ModelConfig& c, const std::string& pre_mlp_norm = "post_attention_layernorm");
}  // namespace family

}  // namespace monoscope::core
