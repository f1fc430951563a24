// Llama (1-3.x, SmolLM: RoPE with Llama 3's scaling, tied or untied embeddings) and Mistral
// (the same block with a sliding window on every layer).
#include "lm/families.h"

namespace monoscope::core {
namespace {

void readLlama(const JsonFields& f, ModelConfig& c) {
  family::readLlamaLike(f, c);
  c.window.assign(static_cast<std::size_t>(std::max<std::int64_t>(0, c.n_layers)), 0);
}

void writeLlama(const ModelConfig& c, nlohmann::json& j) { family::writeLlamaLike(c, j); }

void readMistral(const JsonFields& f, ModelConfig& c) {
  family::readLlamaLike(f, c);
  family::readWindows(f, c, f.integer("sliding_window", 0), 0);
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
