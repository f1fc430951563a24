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
  const auto shared = std::make_shared<const WeightStore>(WeightStore::fromFile((dir / "sae_weights.safetensors").string()));
  const WeightStore& store = *shared;
  const std::int64_t d_in = cfg.d_in, d_sae = cfg.d_sae, d_out = cfg.outWidth();
  // A dictionary whose float32 copy would not fit the budget is read in place (sae/sae.h, mapped()).
  at::Tensor W_enc, W_dec;
  const double float_bytes = 4.0 * static_cast<double>(d_sae) * static_cast<double>(d_in + d_out);
  if (device.is_cpu() && float_bytes > Sae::mapBudgetBytes()) {
    for (const auto dtype : {at::kHalf, at::kBFloat16, at::kFloat}) {
      if (!W_enc.defined()) W_enc = mapWeight(shared, "W_enc", {d_in, d_sae}, dtype);
      if (!W_dec.defined()) W_dec = mapWeight(shared, "W_dec", {d_sae, d_out}, dtype);
    }
  }
  const bool mapped = W_enc.defined() && W_dec.defined();
  if (!mapped) {
    W_enc = loadWeight(store, "W_enc", {d_in, d_sae}, device);
    W_dec = loadWeight(store, "W_dec", {d_sae, d_out}, device);
  }
  at::Tensor b_enc = loadWeight(store, "b_enc", {d_sae}, device);
  at::Tensor b_dec = loadWeight(store, "b_dec", {d_out}, device);
  at::Tensor threshold, W_skip;
  // TopK: optional thresholds applied after the top k (Monoscope's sae-threshold writes them).
  if (cfg.architecture == "jumprelu" || (cfg.architecture == "topk" && store.has("threshold")))
    threshold = loadWeight(store, "threshold", {d_sae}, device);
  if (cfg.skip) W_skip = loadWeight(store, "W_skip", {d_out, d_in}, device);
  return std::make_unique<Sae>(std::move(cfg), W_enc, b_enc, W_dec, b_dec, threshold, W_skip, mapped);
}

}  // namespace

extern const DictionaryFormat kSaeLensFormat = {"SAELens", "cfg.json and sae_weights.safetensors", matches, load};

}  // namespace monoscope::core
