// Qwen2 / Qwen2.5 (bias on q, k and v, not on o) and Qwen3 (per-head RMSNorm on queries and
// keys). Both may slide a window over the layers from max_window_layers on.
#include <algorithm>

#include "lm/families.h"

namespace monoscope::core {
namespace {

void readWindowsOf(const JsonFields& f, ModelConfig& c) {
  const std::int64_t window = f.integer("sliding_window", 0);
  if (f.has("layer_types")) {
    family::readWindows(f, c, window, 1);
    return;
  }
  // transformers 4: with use_sliding_window, the layers from max_window_layers on slide.
  c.window.assign(static_cast<std::size_t>(c.n_layers), 0);
  if (!f.boolean("use_sliding_window", false)) return;
  const std::int64_t from = std::clamp<std::int64_t>(f.integer("max_window_layers", c.n_layers), 0, c.n_layers);
  for (std::int64_t l = from; l < c.n_layers; ++l) c.window[static_cast<std::size_t>(l)] = window;
}

void readQwen2(const JsonFields& f, ModelConfig& c) {
  family::readLlamaLike(f, c);
  c.qkv_bias = true;
  c.o_bias = false;
  readWindowsOf(f, c);
}

void readQwen3(const JsonFields& f, ModelConfig& c) {
  family::readLlamaLike(f, c);
  c.d_head = f.integer("head_dim", 128);  // transformers' Qwen3 default, not hidden / heads
  c.qk_norm = true;
  readWindowsOf(f, c);
}

void write(const ModelConfig& c, nlohmann::json& j) {
  family::writeLlamaLike(c, j);
  family::writeWindows(c, j);
  j.erase("mlp_bias");
  bool slides = false;
  for (std::int64_t l = 0; l < c.n_layers; ++l) slides = slides || c.windowOf(l) > 0;
  j["use_sliding_window"] = slides;
  if (c.model_type == "qwen2") j.erase("attention_bias");
}

WeightNames names(const ModelConfig& c) { return family::llamaNames(c); }

}  // namespace

extern const Family kQwen2Family = {"qwen2", "Qwen2ForCausalLM", readQwen2, write, names};
extern const Family kQwen3Family = {"qwen3", "Qwen3ForCausalLM", readQwen3, write, names};

}  // namespace monoscope::core
