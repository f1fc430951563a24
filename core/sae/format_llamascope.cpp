// Llama Scope (OpenMOSS lm_saes, as released for Llama-3.1-8B): a folder per SAE with
// hyperparams.json (d_model, d_sae, hook_point_in/out, act_fn, jump_relu_threshold,
// norm_activation, dataset_average_activation_norm {in, out}, ...) and
// checkpoints/final.safetensors (encoder.weight [d_sae, d_model], encoder.bias [d_sae],
// decoder.weight [d_model, d_sae], decoder.bias [d_model]), stored in the training space of
// dataset-wise normalised activations and with decoder columns of any norm.
//
// lm_saes's definition, with s_in = sqrt(d_model) / norm_in, s_out = sqrt(d_model) / norm_out and
// n_i = ||decoder column i|| (loading folds the normalisation and the decoder norms, and the
// released threshold theta was fitted on that folded model):
//   h_i = E_i . (s_in x) + b_enc_i,   a_i = n_i h_i / s_out  where that exceeds theta, else 0,
//   x_hat = sum_i a_i D_i / n_i + b_dec / s_out.
// As a JumpReLU SAE with b_dec not subtracted first: W_enc[:, i] = E_i s_in n_i / s_out,
// b_enc_i = b_enc_i n_i / s_out, threshold theta on every feature, W_dec[i] = D_i / n_i,
// b_dec = b_dec / s_out. A transcoder (hook_point_out another hook of the block, its norm the
// 'out' one) folds the same way: its output is x_hat at hook_point_out.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
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

fs::path weightsOf(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir / "checkpoints" / "final.safetensors", ec)) return dir / "checkpoints" / "final.safetensors";
  return dir / "final.safetensors";
}

bool matches(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "hyperparams.json", ec) && fs::is_regular_file(weightsOf(dir), ec);
}

std::unique_ptr<Sae> load(const fs::path& dir, const c10::Device& device) {
  c10::InferenceMode guard;
  const std::string cfg_path = (dir / "hyperparams.json").string();
  const nlohmann::json j = readJsonFile(cfg_path);
  const JsonFields f(j, "'" + cfg_path + "'");
  SaeConfig c;
  c.architecture = "jumprelu";
  c.d_in = f.integer("d_model");
  if (c.d_in <= 0 || c.d_in > (1 << 20)) f.fail("d_model", "is " + std::to_string(c.d_in) + ", outside 1..1048576");
  c.d_sae = f.integer("d_sae");
  if (c.d_sae <= 0 || c.d_sae > (1 << 26)) f.fail("d_sae", "is " + std::to_string(c.d_sae) + ", outside 1..67108864");
  const std::string in = f.string("hook_point_in"), out = f.string("hook_point_out", in);
  if (in != out) {
    // A transcoder (Llama Scope's LXTC: the MLP's input to its output) in the same block.
    const std::string cin = canonicalHook(in), cout = canonicalHook(out);
    const BlockHook hin = blockHookOf(cin), hout = blockHookOf(cout);
    const auto blockOf = [](const std::string& h) { return h.substr(0, h.find('.', 7)); };
    if (hin == kBlockHookCount || hout == kBlockHookCount || blockOf(cin) != blockOf(cout) || hout <= hin)
      f.fail("hook_point_out", "is '" + out + "' and hook_point_in '" + in + "'",
             "Monoscope reads Llama Scope transcoders that write a later hook of the block they read");
    c.hook_name_out = cout;
    c.d_out = c.d_in;
  }
  const std::string act = f.string("act_fn", "jumprelu");
  if (act != "jumprelu")
    f.fail("act_fn", "'" + act + "' is not supported", "Monoscope reads Llama Scope's JumpReLU SAEs (act_fn jumprelu)");
  if (f.boolean("use_glu_encoder", false)) f.fail("use_glu_encoder", "is true; GLU encoders are not read");
  if (f.boolean("apply_decoder_bias_to_pre_encoder", false))
    f.fail("apply_decoder_bias_to_pre_encoder", "is true; the released SAEs leave it false and only those are read");
  if (!f.boolean("sparsity_include_decoder_norm", true))
    f.fail("sparsity_include_decoder_norm", "is false; the released SAEs set it and only those are read");
  const double theta = f.number("jump_relu_threshold");
  if (!std::isfinite(theta) || theta < 0) f.fail("jump_relu_threshold", "must be a finite non-negative number");
  double s_in = 1.0, s_out = 1.0;
  const std::string norm = f.string("norm_activation", "dataset-wise");
  if (norm == "dataset-wise") {
    if (!j.contains("dataset_average_activation_norm") || !j["dataset_average_activation_norm"].is_object())
      f.fail("dataset_average_activation_norm", "is missing (norm_activation is dataset-wise)");
    const JsonFields avg(j["dataset_average_activation_norm"], "'" + cfg_path + "' dataset_average_activation_norm");
    const double n_in = avg.number("in"), n_out = avg.number("out", n_in);
    if (!(n_in > 0) || !std::isfinite(n_in) || !(n_out > 0) || !std::isfinite(n_out))
      f.fail("dataset_average_activation_norm", "must hold positive finite 'in' and 'out' norms");
    s_in = std::sqrt(static_cast<double>(c.d_in)) / n_in;
    s_out = std::sqrt(static_cast<double>(c.d_in)) / n_out;
  } else if (norm != "inference") {
    f.fail("norm_activation", "'" + norm + "' is not supported", "use dataset-wise or inference");
  }
  c.hook_name = canonicalHook(in);
  c.apply_b_dec_to_input = false;
  c.normalize_activations = "none";
  c.model_name = f.string("model_name", "");
  c.metadata = {{"hook_name", c.hook_name}, {"converted_from", "llama_scope"}, {"llama_scope_threshold", theta}};
  if (c.transcoder()) c.metadata["hook_name_out"] = c.hook_name_out;
  const std::string wpath = weightsOf(dir).string();
  WeightStore store = WeightStore::fromFile(wpath);
  const at::Tensor E = loadWeight(store, "encoder.weight", {c.d_sae, c.d_in}, device);
  const at::Tensor b_enc = loadWeight(store, "encoder.bias", {c.d_sae}, device);
  const at::Tensor D = loadWeight(store, "decoder.weight", {c.d_in, c.d_sae}, device);
  const at::Tensor b_dec = f.boolean("use_decoder_bias", true) ? loadWeight(store, "decoder.bias", {c.d_in}, device)
                                                               : at::zeros({c.d_in}, E.options());
  const std::int64_t d_sae = c.d_sae;
  const at::Tensor n = D.norm(2, 0);  // [d_sae]
  if (!(n.min().item<double>() > 0))
    throw Error("'" + wpath + "': decoder.weight has a zero column", "the checkpoint is damaged");
  const at::Tensor W_enc = (E * (n * (s_in / s_out)).unsqueeze(1)).t().contiguous();  // [d_in, d_sae]
  const at::Tensor W_dec = (D / n.unsqueeze(0)).t().contiguous();                        // [d_sae, d_in]
  return std::make_unique<Sae>(std::move(c), W_enc, b_enc * n / s_out, W_dec, b_dec / s_out,
                               at::full({d_sae}, theta, E.options()));
}

}  // namespace

extern const DictionaryFormat kLlamaScopeFormat = {
    "Llama Scope", "hyperparams.json and checkpoints/final.safetensors (encoder.weight, encoder.bias, decoder.weight, decoder.bias)",
    matches, load};

}  // namespace monoscope::core
