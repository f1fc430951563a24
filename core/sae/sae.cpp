#include "sae/sae.h"

#include <c10/core/InferenceMode.h>

#include <filesystem>

#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace fs = std::filesystem;

namespace monoscope::core {

Sae::Sae(SaeConfig config, at::Tensor W_enc, at::Tensor b_enc, at::Tensor W_dec, at::Tensor b_dec,
         at::Tensor threshold)
    : config_(std::move(config)),
      W_enc_(std::move(W_enc)),
      b_enc_(std::move(b_enc)),
      W_dec_(std::move(W_dec)),
      b_dec_(std::move(b_dec)),
      threshold_(std::move(threshold)) {
  const std::int64_t d_in = config_.d_in, d_sae = config_.d_sae;
  auto check = [&](const at::Tensor& t, const char* name, std::vector<std::int64_t> shape) {
    if (!t.defined() || t.sizes().vec() != shape) {
      throw Error(std::string("SAE tensor ") + name + " has shape " +
                      (t.defined() ? shapeString(t.sizes().vec()) : "(missing)") + ", expected " +
                      shapeString(shape),
                  "cfg.json d_in/d_sae must match the weights");
    }
  };
  check(W_enc_, "W_enc", {d_in, d_sae});
  check(b_enc_, "b_enc", {d_sae});
  check(W_dec_, "W_dec", {d_sae, d_in});
  check(b_dec_, "b_dec", {d_in});
  if (config_.architecture == "jumprelu") check(threshold_, "threshold", {d_sae});
}

std::unique_ptr<Sae> Sae::load(const std::string& dir, const c10::Device& device) {
  try {
    SaeConfig cfg = SaeConfig::fromFile((fs::path(dir) / "cfg.json").string());
    const std::string wpath = (fs::path(dir) / "sae_weights.safetensors").string();
    if (!fs::exists(wpath)) {
      throw Error("'" + wpath + "' is missing",
                  "an SAE folder holds cfg.json and sae_weights.safetensors (pickle .pt files are not read)");
    }
    WeightStore store = WeightStore::fromFile(wpath);
    const std::int64_t d_in = cfg.d_in, d_sae = cfg.d_sae;
    at::Tensor W_enc = loadWeight(store, "W_enc", {d_in, d_sae}, device);
    at::Tensor b_enc = loadWeight(store, "b_enc", {d_sae}, device);
    at::Tensor W_dec = loadWeight(store, "W_dec", {d_sae, d_in}, device);
    at::Tensor b_dec = loadWeight(store, "b_dec", {d_in}, device);
    at::Tensor threshold;
    if (cfg.architecture == "jumprelu") threshold = loadWeight(store, "threshold", {d_sae}, device);
    return std::make_unique<Sae>(std::move(cfg), W_enc, b_enc, W_dec, b_dec, threshold);
  } catch (const Error& e) {
    throw e.withContext("loading SAE '" + dir + "'");
  }
}

void Sae::save(const std::string& dir) const {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, at::Tensor>> t = {
      {"W_enc", W_enc_}, {"b_enc", b_enc_}, {"W_dec", W_dec_}, {"b_dec", b_dec_}};
  if (threshold_.defined()) t.emplace_back("threshold", threshold_);
  saveTensors((fs::path(dir) / "sae_weights.safetensors").string(), t);
  writeFileAtomically((fs::path(dir) / "cfg.json").string(), config_.toJson().dump(2));
}

at::Tensor Sae::normalizeInput(const at::Tensor& x, SaeNorm* norm) const {
  if (x.size(-1) != config_.d_in) {
    throw Error("activation width " + std::to_string(x.size(-1)) + " does not match the SAE's d_in " +
                    std::to_string(config_.d_in),
                "use an SAE trained on this model's hook '" + config_.hook_name + "'");
  }
  at::Tensor xf = x.to(W_enc_.device(), at::kFloat);
  const std::string& mode = config_.normalize_activations;
  if (mode == "constant_norm_rescale") {
    at::Tensor coeff = std::sqrt(static_cast<double>(config_.d_in)) / xf.norm(2, -1, true);  // [..., 1]
    if (norm) norm->scale = 1.0 / coeff;
    return xf * coeff;
  }
  if (mode == "layer_norm") {
    at::Tensor mu = xf.mean(-1, true);
    at::Tensor centred = xf - mu;
    at::Tensor sd = centred.std(-1, /*unbiased=*/true, /*keepdim=*/true);
    if (norm) {
      norm->scale = sd;
      norm->shift = mu;
    }
    return centred / (sd + 1e-5);
  }
  return xf;
}

at::Tensor Sae::preActivations(const at::Tensor& xn) const {
  return encoder_.linear(encoderInput(xn), W_enc_, b_enc_);  // [..., d_sae]
}

at::Tensor Sae::encoderInput(const at::Tensor& xn) const {
  return config_.apply_b_dec_to_input ? xn - b_dec_ : xn;
}

at::Tensor Sae::activate(const at::Tensor& pre) const {
  if (config_.architecture == "topk") {
    at::Tensor ranked = config_.rescale_acts_by_decoder_norm ? pre * W_dec_.norm(2, -1) : pre;
    auto top = ranked.topk(config_.k, -1, /*largest=*/true, /*sorted=*/false);
    return at::zeros_like(ranked).scatter_(-1, std::get<1>(top), std::get<0>(top).relu());
  }
  at::Tensor f = at::relu(pre);
  if (config_.architecture == "jumprelu") f = f * (pre > threshold_).to(f.scalar_type());
  return f;
}

at::Tensor Sae::encode(const at::Tensor& x, SaeNorm* norm) const {
  if (config_.architecture == "standard") {  // ReLU in the same pass as the product
    return encoder_.linear(encoderInput(normalizeInput(x, norm)), W_enc_, b_enc_, Activation::Relu);
  }
  return activate(preActivations(normalizeInput(x, norm)));
}

at::Tensor Sae::decode(const at::Tensor& f, const SaeNorm* norm) const {
  at::Tensor fs = f;
  if (config_.architecture == "topk" && config_.rescale_acts_by_decoder_norm) fs = f / W_dec_.norm(2, -1);
  at::Tensor out = decoder_.linear(fs, W_dec_, b_dec_);  // [..., d_in]
  if (norm != nullptr && norm->scale.defined()) out = out * norm->scale;
  if (norm != nullptr && norm->shift.defined()) out = out + norm->shift;
  return out;
}

ReconstructionMetrics Sae::metrics(const at::Tensor& x) const {
  c10::InferenceMode guard;
  SaeNorm norm;
  at::Tensor xf = x.to(W_enc_.device(), at::kFloat).reshape({-1, config_.d_in});  // [n, d_in]
  at::Tensor f = encode(xf, &norm);
  at::Tensor x_hat = decode(f, &norm);
  ReconstructionMetrics m;
  m.l0 = (f > 0).sum(-1).to(at::kDouble).mean().item<double>();
  const double resid = (xf - x_hat).pow(2).sum().item<double>();
  const double total = (xf - xf.mean(0, true)).pow(2).sum().item<double>();
  m.fraction_variance_explained = total > 0 ? 1.0 - resid / total : 0.0;
  m.mse = (xf - x_hat).pow(2).mean().item<double>();
  return m;
}

}  // namespace monoscope::core
