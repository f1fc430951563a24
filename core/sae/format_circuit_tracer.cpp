// One layer of a circuit-tracer transcoder set (sae/transcoder_set.h). A params.npz is read as
// Gemma Scope stores it; a safetensors file in circuit-tracer's ReLU layout: W_enc [d_sae, d_in],
// b_enc [d_sae], W_dec [d_sae, d_out] (files saved for circuit-tracer's first release hold it
// transposed, [d_out, d_sae], told apart by shape), b_dec [d_out], W_skip [d_out, d_in] when
// there is one. Its encoding is relu(x W_enc^T + b_enc) (no b_dec first) and its output
// acts W_dec + b_dec (+ x W_skip^T): SAELens's transcoder and skip_transcoder with W_enc
// transposed.
#include <filesystem>

#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "sae/sae_formats.h"
#include "sae/transcoder_set.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace monoscope::core {
namespace {

std::unique_ptr<Sae> loadReluLayout(const std::string& file, SaeConfig c, const c10::Device& device) {
  WeightStore store = WeightStore::fromFile(file);
  const char* layout = "circuit-tracer's layout: W_enc [d_sae, d_in], b_enc [d_sae], W_dec [d_sae, d_out], b_dec [d_out], optional W_skip [d_out, d_in]";
  for (const char* name : {"W_enc", "b_enc", "W_dec", "b_dec"})
    if (!store.has(name)) throw Error("'" + file + "' has no tensor '" + name + "'", layout);
  if (store.has("log_thresholds") || store.has("threshold"))
    throw Error("'" + file + "' holds thresholds; circuit-tracer reads only ReLU transcoders from safetensors", layout);
  const auto& enc = store.tensor("W_enc").shape;
  const auto& dec = store.tensor("W_dec").shape;
  const auto& bdec = store.tensor("b_dec").shape;
  if (enc.size() != 2 || enc[0] <= 0 || enc[1] <= 0 || enc[0] > (1 << 26) || enc[1] > (1 << 20) || bdec.size() != 1 ||
      bdec[0] <= 0 || bdec[0] > (1 << 20))
    throw Error("'" + file + "' W_enc is " + shapeString(enc) + " and b_dec " + shapeString(bdec), layout);
  c.architecture = "standard";
  c.d_sae = enc[0];
  c.d_in = enc[1];
  c.d_out = bdec[0];
  const bool transposed = dec != std::vector<std::int64_t>{c.d_sae, c.d_out} && dec == std::vector<std::int64_t>{c.d_out, c.d_sae};
  c.apply_b_dec_to_input = false;
  c.skip = store.has("W_skip");
  c.metadata["hook_name"] = c.hook_name;
  c.metadata["hook_name_out"] = c.hook_name_out;
  const at::Tensor W_enc = loadWeight(store, "W_enc", {c.d_sae, c.d_in}, device).t().contiguous();
  const at::Tensor b_enc = loadWeight(store, "b_enc", {c.d_sae}, device);
  const at::Tensor W_dec = transposed ? loadWeight(store, "W_dec", {c.d_out, c.d_sae}, device).t().contiguous()
                                      : loadWeight(store, "W_dec", {c.d_sae, c.d_out}, device);
  const at::Tensor b_dec = loadWeight(store, "b_dec", {c.d_out}, device);
  const at::Tensor W_skip = c.skip ? loadWeight(store, "W_skip", {c.d_out, c.d_in}, device) : at::Tensor();
  return std::make_unique<Sae>(std::move(c), W_enc, b_enc, W_dec, b_dec, at::Tensor(), W_skip);
}

}  // namespace

std::unique_ptr<Sae> loadTranscoderSetLayer(const std::string& yaml_path, std::int64_t layer, const c10::Device& device) {
  const TranscoderSet set = TranscoderSet::read(yaml_path);
  const std::string file = set.localFile(layer);
  SaeConfig c;
  c.hook_name = set.inputHook(layer);
  c.hook_name_out = set.outputHook(layer);
  c.model_name = set.model_name;
  c.metadata = {{"converted_from", "circuit-tracer"}, {"transcoder_set", set.path}, {"transcoder_id", set.entry(layer).id}};
  if (!c.model_name.empty()) c.metadata["model_name"] = c.model_name;
  const std::string ext = fs::path(file).extension().string();
  try {
    if (ext == ".npz") return loadGemmaScopeParams(file, std::move(c), device);
    if (ext == ".safetensors") return loadReluLayout(file, std::move(c), device);
  } catch (const Error& e) {
    throw e.withContext("transcoder set '" + set.path + "' layer " + std::to_string(layer));
  }
  throw Error("transcoder set '" + set.path + "' layer " + std::to_string(layer) + ": '" + file + "' is neither .npz nor .safetensors",
              "Monoscope reads Gemma Scope params.npz and circuit-tracer's safetensors transcoders (never pickles)");
}

}  // namespace monoscope::core
