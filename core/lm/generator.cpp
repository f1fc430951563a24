#include "lm/generator.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <random>

#include "util/error.h"

namespace monoscope::core {

void SamplingOptions::validate() const {
  if (max_tokens < 0 || max_tokens > 1'000'000)
    throw Error("max_tokens " + std::to_string(max_tokens) + " is out of range", "use 0..1000000");
  if (!std::isfinite(temperature) || temperature < 0.0 || temperature > 100.0)
    throw Error("temperature must be a finite number in [0, 100]", "0 means greedy decoding");
  if (!std::isfinite(top_p) || top_p <= 0.0 || top_p > 1.0)
    throw Error("top_p must be in (0, 1]", "1 keeps the whole distribution");
}

std::int32_t sampleToken(const at::Tensor& logits, double temperature, double top_p, double uniform) {
  if (temperature <= 0.0) return static_cast<std::int32_t>(logits.argmax().item<std::int64_t>());
  at::Tensor probs = at::softmax(logits.to(at::kDouble) / temperature, -1);
  auto sorted = probs.sort(-1, /*descending=*/true);
  at::Tensor p = std::get<0>(sorted).contiguous();
  at::Tensor idx = std::get<1>(sorted).contiguous();
  const double* pp = p.data_ptr<double>();
  const std::int64_t* ip = idx.data_ptr<std::int64_t>();
  const std::int64_t n = p.numel();
  // Keep the smallest prefix whose mass reaches top_p (always at least one token).
  std::int64_t keep = 0;
  double mass = 0.0;
  while (keep < n && (keep == 0 || mass < top_p)) mass += pp[keep++];
  double target = uniform * mass, acc = 0.0;
  for (std::int64_t i = 0; i < keep; ++i) {
    acc += pp[i];
    if (target < acc) return static_cast<std::int32_t>(ip[i]);
  }
  return static_cast<std::int32_t>(ip[keep - 1]);
}

std::vector<std::int32_t> generate(const Transformer& model, const std::vector<std::int32_t>& prompt,
                                   const SamplingOptions& options, const HookSet* hooks,
                                   const GenerationProgress& progress) {
  options.validate();
  if (prompt.empty()) throw Error("the prompt is empty", "give at least one token of prompt");
  const std::int64_t n_ctx = model.config().n_ctx;
  if (static_cast<std::int64_t>(prompt.size()) + options.max_tokens > n_ctx) {
    throw Error("prompt (" + std::to_string(prompt.size()) + " tokens) plus max_tokens " +
                    std::to_string(options.max_tokens) + " exceeds the context of " + std::to_string(n_ctx),
                "shorten the prompt or lower max_tokens");
  }
  c10::InferenceMode guard;
  std::mt19937_64 rng(options.seed);
  auto draw = [&] { return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0); };
  KvCache cache;
  std::vector<std::int64_t> ids64(prompt.begin(), prompt.end());
  at::Tensor input = at::tensor(ids64, at::kLong).view({1, -1});
  std::vector<std::int32_t> out;
  for (std::int64_t step = 0; step < options.max_tokens; ++step) {
    at::Tensor logits = model.forward(input, hooks, &cache);  // [1, T, V]
    at::Tensor last = logits[0][logits.size(1) - 1].to(at::kCPU, at::kFloat);
    const std::int32_t next = sampleToken(last, options.temperature, options.top_p, draw());
    out.push_back(next);
    if (progress && !progress(step + 1, next)) break;
    if (next == options.stop_token) break;
    input = at::full({1, 1}, static_cast<std::int64_t>(next), at::kLong);
  }
  return out;
}

}  // namespace monoscope::core
