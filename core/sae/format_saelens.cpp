// SAELens: cfg.json (v6, or pre-6.0: sae/sae_config.h) and sae_weights.safetensors (W_enc
// [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec, threshold for jumprelu, and
// optionally for topk, applied after the top k); transcoders with
// W_dec [d_sae, d_out], b_dec [d_out] and, for skip transcoders, W_skip [d_out, d_in].
#include <filesystem>

#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "sae/sae_formats.h"

namespace fs = std::filesystem;

namespace monoscope::core {
namespace {

bool matches(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "cfg.json", ec) && fs::is_regular_file(dir / "sae_weights.safetensors", ec);
}

std::unique_ptr<Sae> load(const fs::path& dir, const c10::Device& device) {
  SaeConfig cfg = SaeConfig::fromFile((dir / "cfg.json").string());
  WeightStore store = WeightStore::fromFile((dir / "sae_weights.safetensors").string());
  const std::int64_t d_in = cfg.d_in, d_sae = cfg.d_sae, d_out = cfg.outWidth();
  at::Tensor W_enc = loadWeight(store, "W_enc", {d_in, d_sae}, device);
  at::Tensor b_enc = loadWeight(store, "b_enc", {d_sae}, device);
  at::Tensor W_dec = loadWeight(store, "W_dec", {d_sae, d_out}, device);
  at::Tensor b_dec = loadWeight(store, "b_dec", {d_out}, device);
  at::Tensor threshold, W_skip;
  // TopK: optional thresholds applied after the top k (Monoscope's sae-threshold writes them).
  if (cfg.architecture == "jumprelu" || (cfg.architecture == "topk" && store.has("threshold")))
    threshold = loadWeight(store, "threshold", {d_sae}, device);
  if (cfg.skip) W_skip = loadWeight(store, "W_skip", {d_out, d_in}, device);
  return std::make_unique<Sae>(std::move(cfg), W_enc, b_enc, W_dec, b_dec, threshold, W_skip);
}

}  // namespace

extern const DictionaryFormat kSaeLensFormat = {"SAELens", "cfg.json and sae_weights.safetensors", matches, load};

}  // namespace monoscope::core
