#pragma once
// Autoregressive generation with a KV cache. Internal (LibTorch).
#include <cstdint>
#include <functional>
#include <vector>

#include "lm/hooks.h"
#include "lm/transformer.h"

namespace monoscope::core {

struct SamplingOptions {
  std::int64_t max_tokens = 32;  // tokens to generate after the prompt
  double temperature = 0.0;      // 0 = greedy (argmax)
  double top_p = 1.0;            // nucleus sampling mass, (0, 1]
  std::uint64_t seed = 0;        // sampling seed; the same seed gives the same draws
  std::int64_t stop_token = -1;  // end-of-text id; generation stops after emitting it (-1: never)

  // Throws Error naming the offending field.
  void validate() const;
};

// Called after each generated token with the count so far and the token; return false to cancel.
using GenerationProgress = std::function<bool(std::int64_t generated, std::int32_t id)>;

// Generates up to max_tokens ids after `prompt` (ids only, prompt excluded). Hooks run on every
// forward pass; HookContext::position_offset tells prompt (< prompt.size()) from generated rows.
std::vector<std::int32_t> generate(const Transformer& model, const std::vector<std::int32_t>& prompt,
                                   const SamplingOptions& options, const HookSet* hooks = nullptr,
                                   const GenerationProgress& progress = {});

// Picks the next token from a logits row [vocab] (CPU float); `uniform` is a draw in [0, 1).
std::int32_t sampleToken(const at::Tensor& logits, double temperature, double top_p, double uniform);

}  // namespace monoscope::core
