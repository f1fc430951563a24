// EleutherAI sparsify: a folder per hookpoint named after it ("layers.6", "layers.6.mlp") with
// cfg.json (d_in, k, num_latents or expansion_factor, activation, transcode, skip_connection)
// and sae.safetensors (encoder.weight [latents, d_in], encoder.bias, W_dec [latents, d_in],
// b_dec [d_in], W_skip [d_in, d_in] with a skip connection). Encoding: relu(encoder(x - b_dec)),
// the k largest kept: SAELens's TopK with W_enc = encoder.weight^T. A transcoder (transcode:
// true) encodes x itself (no b_dec first), reads its module's input and writes its output, and
// adds x W_skip^T with a skip connection.
#include <filesystem>

#include "io/json_file.h"
#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "lm/hooks.h"
#include "sae/sae_formats.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace monoscope::core {
namespace {

bool matches(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "cfg.json", ec) && fs::is_regular_file(dir / "sae.safetensors", ec);
}

std::unique_ptr<Sae> load(const fs::path& dir, const c10::Device& device) {
  const std::string cfg_path = (dir / "cfg.json").string();
  const nlohmann::json j = readJsonFile(cfg_path);
  const JsonFields f(j, "'" + cfg_path + "'");
  SaeConfig c;
  c.architecture = "topk";
  c.d_in = f.integer("d_in");
  if (c.d_in <= 0 || c.d_in > (1 << 20)) f.fail("d_in", "is " + std::to_string(c.d_in) + ", outside 1..1048576");
  c.d_sae = f.integer("num_latents", 0);
  if (c.d_sae == 0) {
    const std::int64_t factor = f.integer("expansion_factor");
    if (factor < 1 || factor > 65536) f.fail("expansion_factor", "is " + std::to_string(factor) + ", outside 1..65536");
    c.d_sae = c.d_in * factor;
  }
  if (c.d_sae <= 0 || c.d_sae > (1 << 26)) f.fail("num_latents", "gives " + std::to_string(c.d_sae) + " latents, outside 1..67108864");
  c.k = f.integer("k");
  if (c.k <= 0 || c.k > c.d_sae) f.fail("k", "is " + std::to_string(c.k) + ", outside 1..latents");
  const std::string activation = f.string("activation", "topk");
  if (activation != "topk") f.fail("activation", "'" + activation + "' is not supported", "Monoscope reads sparsify's topk coders");
  const bool transcode = f.boolean("transcode", false);
  c.skip = f.boolean("skip_connection", false);
  if (c.skip && !transcode)
    f.fail("skip_connection", "is true for an autoencoder; Monoscope reads a skip connection (W_skip) only on transcoders");
  if (f.boolean("multi_topk", false)) f.fail("multi_topk", "is true; only plain TopK coders are read");
  // The folder's name is the hookpoint: a Hugging Face module path or a TransformerLens name.
  const fs::path folder = dir.filename().empty() ? dir.parent_path().filename() : dir.filename();
  const std::string hookpoint = folder.string();
  if (transcode) {
    // A transcoder reads the hookpoint module's input and predicts its output: an MLP
    // ("layers.L.mlp": mlp.hook_in to mlp.hook_out) or a whole block ("layers.L").
    const std::string out = canonicalHook(hookpoint);
    const BlockHook h = blockHookOf(out);
    if (h != kMlpModuleOut && h != kResidPost)
      throw Error("sparsify transcoder '" + dir.string() + "' is trained on '" + hookpoint + "'",
                  "Monoscope reads sparsify transcoders of an MLP (layers.L.mlp) or a whole layer (layers.L)");
    const std::string block = out.substr(0, out.find('.', 7) + 1);
    c.hook_name = block + (h == kMlpModuleOut ? "mlp.hook_in" : "hook_resid_pre");
    c.hook_name_out = out;
    c.d_out = c.d_in;
  } else {
    c.hook_name = canonicalHook(hookpoint);
  }
  c.apply_b_dec_to_input = !transcode;  // sparsify subtracts b_dec only when autoencoding
  c.metadata = {{"hook_name", c.hook_name}, {"converted_from", "sparsify"}, {"sparsify_hookpoint", hookpoint}};
  if (transcode) c.metadata["hook_name_out"] = c.hook_name_out;
  WeightStore store = WeightStore::fromFile((dir / "sae.safetensors").string());
  const at::Tensor enc = loadWeight(store, "encoder.weight", {c.d_sae, c.d_in}, device);
  const at::Tensor b_enc = loadWeight(store, "encoder.bias", {c.d_sae}, device);
  const at::Tensor W_dec = loadWeight(store, "W_dec", {c.d_sae, c.d_in}, device);
  const at::Tensor b_dec = loadWeight(store, "b_dec", {c.d_in}, device);
  const at::Tensor W_skip = c.skip ? loadWeight(store, "W_skip", {c.d_in, c.d_in}, device) : at::Tensor();
  return std::make_unique<Sae>(std::move(c), enc.t().contiguous(), b_enc, W_dec, b_dec, at::Tensor(), W_skip);
}

}  // namespace

extern const DictionaryFormat kSparsifyFormat = {
    "sparsify", "cfg.json (d_in, k, num_latents) and sae.safetensors (encoder.weight, encoder.bias, W_dec, b_dec)",
    matches, load};

}  // namespace monoscope::core
