// Llama (1-3.x, SmolLM: RoPE with Llama 3's scaling, tied or untied embeddings) and Mistral
// (the same block with a sliding window on every layer).
#include "lm/families.h"

namespace monoscope::core {
namespace {

void readLlama(const JsonFields& f, ModelConfig& c) {
  family::readLlamaLike(f, c);
}

void writeLlama(const ModelConfig& c, nlohmann::json& j) { family::writeLlamaLike(c, j); }

void readMistral(const JsonFields& f, ModelConfig& c) {
  family::readLlamaLike(f, c);
  // Absent: transformers' default of 4096; null: no window.
  family::readWindows(f, c, f.raw().contains("sliding_window") ? f.integer("sliding_window", 0) : 4096, 0);
}

void writeMistral(const ModelConfig& c, nlohmann::json& j) {
  family::writeLlamaLike(c, j);
  j["sliding_window"] = c.windowOf(0) > 0 ? nlohmann::json(c.windowOf(0)) : nlohmann::json(nullptr);
}

WeightNames names(const ModelConfig& c) { return family::llamaNames(c); }

}  // namespace

extern const Family kLlamaFamily = {"llama", "LlamaForCausalLM", readLlama, writeLlama, names};
extern const Family kMistralFamily = {"mistral", "MistralForCausalLM", readMistral, writeMistral, names};

}  // namespace monoscope::core
