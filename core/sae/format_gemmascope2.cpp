// Gemma Scope 2 (Google DeepMind's JumpReLU dictionaries for Gemma 3): a folder per dictionary,
// <site>/layer_<L>_width_<W>_l0_<N>/ with params.safetensors (w_enc [d_in, d_sae], b_enc [d_sae],
// w_dec [d_sae, d_out], b_dec [d_out], threshold [d_sae]) and config.json (architecture
// "jump_relu", model_name, hf_hook_point_in, and for transcoders hf_hook_point_out and
// affine_connection). Encoding as Gemma Scope's: pre = x w_enc + b_enc, kept where pre >
// threshold (b_dec not subtracted first). The hook is the Hugging Face point the config names
// (model.layers.L.output, ...self_attn.o_proj.input, ...post_feedforward_layernorm.output), else
// the site folder (resid_post, attn_out, mlp_out). Transcoders read the MLP's input
// (pre_feedforward_layernorm.output: mlp.hook_in) and write hook_mlp_out, with
// affine_skip_connection [d_in, d_out] as W_skip when affine; cross-layer transcoders are refused.
#include <filesystem>

#include "io/json_file.h"
#include "io/safetensors.h"
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
  return fs::is_regular_file(dir / "params.safetensors", ec);
}

// The layer in a folder name "layer_<L>_width_..." (or "layer_<L>"), -1 if none.
long layerOf(const std::string& name) {
  if (name.rfind("layer_", 0) != 0) return -1;
  const auto end = name.find_first_not_of("0123456789", 6);
  const std::string digits = name.substr(6, end == std::string::npos ? std::string::npos : end - 6);
  if (digits.empty() || digits.size() > 4) return -1;
  return std::stol(digits);
}

std::unique_ptr<Sae> load(const fs::path& dir, const c10::Device& device) {
  const fs::path abs = fs::absolute(dir);
  const fs::path folder = abs.filename().empty() ? abs.parent_path() : abs;
  const std::string name = folder.filename().string(), site = folder.parent_path().filename().string();
  const std::string cfg_path = (folder / "config.json").string();
  nlohmann::json j = nlohmann::json::object();
  std::error_code ec;
  if (fs::is_regular_file(cfg_path, ec)) j = readJsonFile(cfg_path);
  const JsonFields f(j, "'" + cfg_path + "'");
  const std::string arch = f.string("architecture", "jump_relu");
  if (arch != "jump_relu") f.fail("architecture", "'" + arch + "' is not supported", "Monoscope reads Gemma Scope 2's jump_relu dictionaries");
  if (name.find("clt") != std::string::npos || site.find("clt") != std::string::npos)
    throw Error("'" + folder.string() + "' is a Gemma Scope 2 cross-layer transcoder (its features write to every later layer)",
                "Monoscope reads Gemma Scope 2 SAEs and single-layer transcoders");
  const bool transcoder = f.has("hf_hook_point_out") || name.find("transcoder") != std::string::npos ||
                          site.find("transcoder") != std::string::npos;
  auto mapped = [&f](const char* key, const char* expected) {
    const std::string hook = canonicalHook(f.string(key));
    if (hook.rfind("blocks.", 0) != 0)
      f.fail(key, "'" + f.string(key) + "' is not a point Monoscope maps to a hook", std::string("expected ") + expected);
    return hook;
  };
  std::string hook, hook_out;
  bool affine = false;
  const long layer = layerOf(name);
  const std::string block = "blocks." + std::to_string(layer) + ".";
  if (f.has("hf_hook_point_in")) {
    hook = mapped("hf_hook_point_in",
                  "model.layers.L.output, model.layers.L.self_attn.o_proj.input, "
                  "model.layers.L.pre_feedforward_layernorm.output or model.layers.L.post_feedforward_layernorm.output");
  } else {
    const bool known = site == "resid_post" || site == "attn_out" || site == "mlp_out" || transcoder;
    if (layer < 0 || !known)
      throw Error("'" + folder.string() + "' has no config.json and its path names no site and layer",
                  "expected <resid_post|attn_out|mlp_out|transcoder_all>/layer_<L>_width_<W>_l0_<N>/ as the release lays it out");
    hook = block + (transcoder               ? "mlp.hook_in"
                    : site == "resid_post"   ? "hook_resid_post"
                    : site == "attn_out"     ? "attn.hook_z"
                                             : "hook_mlp_out");
  }
  if (transcoder) {  // reads the MLP's input, writes its output (after the post-feedforward norm)
    if (f.has("hf_hook_point_out")) {
      hook_out = mapped("hf_hook_point_out", "model.layers.L.post_feedforward_layernorm.output");
    } else if (layer >= 0) {
      hook_out = block + "hook_mlp_out";
    } else {
      f.fail("hf_hook_point_out", "is missing and the folder names no layer", "add the Hugging Face point the transcoder writes");
    }
  }
  const std::string wpath = (folder / "params.safetensors").string();
  WeightStore store = WeightStore::fromFile(wpath);
  SafetensorsFile shapes(wpath);
  if (transcoder) {  // the skip connection is there when its tensor is, and the config must agree
    affine = shapes.has("affine_skip_connection");
    if (f.has("affine_connection") && f.boolean("affine_connection", affine) != affine)
      f.fail("affine_connection", std::string("is ") + (affine ? "false" : "true") + " but '" + wpath + "' " +
                                      (affine ? "holds" : "has no") + " affine_skip_connection");
  }
  const auto& enc = shapes.tensor("w_enc").shape;
  const auto& dec = shapes.tensor("w_dec").shape;
  if (enc.size() != 2) throw Error("'" + wpath + "': w_enc must be [d_in, d_sae], got " + shapeString(enc));
  if (dec.size() != 2) throw Error("'" + wpath + "': w_dec must be [d_sae, d_out], got " + shapeString(dec));
  SaeConfig c;
  c.architecture = "jumprelu";
  c.d_in = enc[0];
  c.d_sae = enc[1];
  c.hook_name = hook;
  c.hook_name_out = hook_out;
  c.d_out = transcoder ? dec[1] : 0;
  c.skip = affine;
  c.apply_b_dec_to_input = false;
  c.model_name = f.string("model_name", "");
  c.metadata = {{"hook_name", hook}, {"converted_from", "gemma-scope-2"}};
  const std::int64_t d_in = c.d_in, d_sae = c.d_sae, d_out = c.outWidth();
  at::Tensor W_skip;  // stored [d_in, d_out] as affine_skip_connection
  if (affine) W_skip = loadWeight(store, "affine_skip_connection", {d_in, d_out}, device).t().contiguous();
  return std::make_unique<Sae>(std::move(c), loadWeight(store, "w_enc", {d_in, d_sae}, device),
                               loadWeight(store, "b_enc", {d_sae}, device), loadWeight(store, "w_dec", {d_sae, d_out}, device),
                               loadWeight(store, "b_dec", {d_out}, device), loadWeight(store, "threshold", {d_sae}, device),
                               W_skip);
}

}  // namespace

extern const DictionaryFormat kGemmaScope2Format = {
    "Gemma Scope 2", "params.safetensors (w_enc, b_enc, w_dec, b_dec, threshold) with config.json", matches, load};

}  // namespace monoscope::core
