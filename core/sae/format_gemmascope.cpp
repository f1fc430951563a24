// Gemma Scope (Google DeepMind's JumpReLU SAEs for Gemma 2): a folder per SAE holding
// params.npz with W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in] and
// threshold [d_sae]. Encoding: pre = x W_enc + b_enc (b_dec is not subtracted first), a feature
// is pre where pre > threshold, else 0: SAELens's jumprelu with apply_b_dec_to_input false.
// The file does not name its hook; the release lays its folders out as
// <release>/layer_<L>/width_<W>/average_l0_<N>/params.npz with the release named
// gemma-scope-<model>-<pt|it>-<res|mlp|att|transcoders>, and the hook is read from that path (also
// inside the Hugging Face cache, where the release is models--google--gemma-scope-...). The
// transcoders (W_dec [d_sae, d_out]) read blocks.L.ln2.hook_normalized and write
// blocks.L.hook_mlp_out, the hooks circuit-tracer's Gemma Scope sets give them.
#include <filesystem>

#include "io/npz.h"
#include "io/torch_bridge.h"
#include "sae/sae_formats.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace monoscope::core {
namespace {

bool matches(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "params.npz", ec);
}

// The hook the release's folder names imply (and, for a transcoder, the one it writes in
// *hook_out), or "" with *why set.
std::string hookFromPath(const fs::path& dir, std::string* why, std::string* hook_out) {
  std::string site;
  long layer = -1;
  // Components "layer_<digits>" and "...gemma-scope-...-<site>[-canonical]" (by hand: std::regex
  // trips GCC 12's maybe-uninitialized warning under the sanitizers).
  for (const auto& part : fs::absolute(dir)) {
    std::string p = part.string();
    if (p.rfind("layer_", 0) == 0 && p.size() > 6 && p.size() <= 10 &&
        p.find_first_not_of("0123456789", 6) == std::string::npos)
      layer = std::stol(p.substr(6));
    if (p.find("gemma-scope-") == std::string::npos) continue;
    const std::string canonical = "-canonical";
    if (p.size() > canonical.size() && p.compare(p.size() - canonical.size(), canonical.size(), canonical) == 0)
      p.resize(p.size() - canonical.size());
    for (const char* s : {"res", "mlp", "att", "transcoders"}) {
      const std::string suffix = std::string("-") + s;
      if (p.size() > suffix.size() && p.compare(p.size() - suffix.size(), suffix.size(), suffix) == 0) site = s;
    }
  }
  if (layer < 0 || site.empty()) {
    *why = "its path does not name the layer (layer_<L>) and the site (a gemma-scope-...-res, -mlp, -att or -transcoders release folder)";
    return "";
  }
  const std::string L = std::to_string(layer);
  if (site == "transcoders") {  // as circuit-tracer reads the release
    *hook_out = "blocks." + L + ".hook_mlp_out";
    return "blocks." + L + ".ln2.hook_normalized";
  }
  if (site == "res") return "blocks." + L + ".hook_resid_post";
  if (site == "mlp") return "blocks." + L + ".hook_mlp_out";
  return "blocks." + L + ".attn.hook_z";
}

at::Tensor tensorOf(const NpzFile& npz, const std::string& name, const std::vector<std::int64_t>& shape, const c10::Device& device) {
  const auto& have = npz.shape(name);
  if (have != shape)
    throw Error("'" + npz.path() + "' array '" + name + "' is " + shapeString(have) + ", expected " + shapeString(shape),
                "W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in], threshold [d_sae]");
  NpyArray a = npz.read(name);
  return at::from_blob(a.values.data(), shape, at::kFloat).clone().to(device);
}

std::unique_ptr<Sae> load(const fs::path& dir, const c10::Device& device) {
  std::string why;
  SaeConfig c;
  c.hook_name = hookFromPath(dir, &why, &c.hook_name_out);
  if (c.hook_name.empty())
    throw Error("Gemma Scope SAE '" + dir.string() + "': " + why,
                "keep the release's layout (gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz)");
  c.metadata = {{"converted_from", "gemma-scope"}};
  return loadGemmaScopeParams((dir / "params.npz").string(), std::move(c), device);
}

}  // namespace

std::unique_ptr<Sae> loadGemmaScopeParams(const std::string& path, SaeConfig c, const c10::Device& device) {
  const NpzFile npz(path);
  for (const char* name : {"W_enc", "b_enc", "W_dec", "b_dec", "threshold"})
    if (!npz.has(name)) throw Error("'" + npz.path() + "' has no array '" + name + "'", "a Gemma Scope params.npz holds W_enc, b_enc, W_dec, b_dec, threshold");
  const auto& enc_shape = npz.shape("W_enc");
  if (enc_shape.size() != 2 || enc_shape[0] <= 0 || enc_shape[1] <= 0 || enc_shape[0] > (1 << 20) || enc_shape[1] > (1 << 26))
    throw Error("'" + npz.path() + "' array 'W_enc' is " + shapeString(enc_shape) + ", not [d_in, d_sae]");
  c.architecture = "jumprelu";
  c.d_in = enc_shape[0];
  c.d_sae = enc_shape[1];
  c.apply_b_dec_to_input = false;
  if (c.transcoder()) {
    const auto& dec_shape = npz.shape("W_dec");
    c.d_out = dec_shape.size() == 2 && dec_shape[1] > 0 && dec_shape[1] <= (1 << 20) ? dec_shape[1] : c.d_in;
  }
  c.metadata["hook_name"] = c.hook_name;
  if (c.transcoder()) c.metadata["hook_name_out"] = c.hook_name_out;
  const at::Tensor W_enc = tensorOf(npz, "W_enc", {c.d_in, c.d_sae}, device);
  const at::Tensor b_enc = tensorOf(npz, "b_enc", {c.d_sae}, device);
  const at::Tensor W_dec = tensorOf(npz, "W_dec", {c.d_sae, c.outWidth()}, device);
  const at::Tensor b_dec = tensorOf(npz, "b_dec", {c.outWidth()}, device);
  const at::Tensor threshold = tensorOf(npz, "threshold", {c.d_sae}, device);
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor*>{"W_enc", &W_enc}, {"b_enc", &b_enc}, {"W_dec", &W_dec},
                                {"b_dec", &b_dec}, {"threshold", &threshold}})
    if (!at::isfinite(*t).all().item<bool>()) throw Error("'" + npz.path() + "' array '" + name + "' holds NaN or infinite values");
  return std::make_unique<Sae>(std::move(c), W_enc, b_enc, W_dec, b_dec, threshold);
}

extern const DictionaryFormat kGemmaScopeFormat = {
    "gemma-scope", "params.npz (W_enc, b_enc, W_dec, b_dec, threshold) under <release>/layer_<L>/...; a -transcoders release reads blocks.L.ln2.hook_normalized and writes blocks.L.hook_mlp_out", matches, load};

}  // namespace monoscope::core
