#include "sae/sae_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "dist/process_group.h"
#include "io/safetensors.h"
#include "io/torch_bridge.h"
#include "util/error.h"
#include "util/memory.h"
#include "util/numbers.h"

namespace monoscope::core {

void SaeTrainConfig::validate() const {
  auto bad = [](const std::string& field, const std::string& why) {
    throw Error("SAE training: " + field + " " + why);
  };
  if (architecture != "standard" && architecture != "topk" && architecture != "batchtopk")
    bad("architecture", "must be standard, topk or batchtopk");
  if (d_in <= 0 || d_in > (1 << 20)) bad("d_in", "is out of range");
  if (d_sae <= 0 || d_sae > (1 << 24)) bad("d_sae", "must be in 1..16777216");
  if (architecture != "standard" && (k <= 0 || k > d_sae)) bad("k", "must be in 1..d_sae");
  if (!(l1_coefficient >= 0) || !std::isfinite(l1_coefficient)) bad("l1_coefficient", "must be a finite non-negative number");
  if (!(lr > 0) || !std::isfinite(lr) || lr > 1) bad("lr", "must be in (0, 1]");
  if (batch_size <= 0 || batch_size > (1 << 22)) bad("batch_size", "must be in 1..4194304");
  if (total_tokens <= 0) bad("total_tokens", "must be positive");
  if (world_size < 1 || world_size > (1 << 16)) bad("world_size", "must be in 1..65536");
  if (resample_every < 0) bad("resample_every", "must be non-negative");
  if (resample_every > 0 && architecture == "standard") bad("resample_every", "is for topk and batchtopk");
  if (encoder_precision != "f32" && encoder_precision != "bf16") bad("encoder_precision", "must be f32 or bf16");
  if (!matryoshka.empty() && architecture == "standard") bad("matryoshka", "is for topk and batchtopk");
  if (matryoshka.size() > 64) bad("matryoshka", "has more than 64 prefixes");
  for (std::size_t i = 0; i < matryoshka.size(); ++i) {
    if (matryoshka[i] < 1 || matryoshka[i] >= d_sae) bad("matryoshka", "prefixes must be in 1..d_sae-1");
    if (i > 0 && matryoshka[i] <= matryoshka[i - 1]) bad("matryoshka", "prefixes must increase");
  }
  if (!matryoshka_k.empty()) {
    if (architecture != "topk") bad("matryoshka_k", "is for topk");
    if (matryoshka_k.size() != matryoshka.size() + 1)
      bad("matryoshka_k", "needs one entry more than the prefixes (" + std::to_string(matryoshka.size() + 1) + ")");
    std::int64_t sum = 0;
    for (std::size_t g = 0; g < matryoshka_k.size(); ++g) {
      const std::int64_t lo = g == 0 ? 0 : matryoshka[g - 1], hi = g < matryoshka.size() ? matryoshka[g] : d_sae;
      const std::int64_t most = std::min(hi - lo, k);
      if (matryoshka_k[g] < 1 || matryoshka_k[g] > most)
        bad("matryoshka_k", "entry " + std::to_string(g + 1) + " must be in 1.." + std::to_string(most) + " (its group's size and k)");
      sum += matryoshka_k[g];
    }
    if (sum < k) bad("matryoshka_k", "sums to " + std::to_string(sum) + ", under k (" + std::to_string(k) + ")");
  }
}

SaeTrainer::SaeTrainer(SaeTrainConfig config, const c10::Device& device)
    : config_(std::move(config)), device_(device) {
  config_.validate();
  const std::int64_t d = config_.d_in, S = config_.d_sae;
  // Encoder, decoder, their gradients and two Adam moments each: about eight [d_sae, d_in] floats.
  requireMemory(saturatingProduct({8, 4, static_cast<std::uint64_t>(S), static_cast<std::uint64_t>(d)}), "d_sae",
                std::to_string(S) + " features of width " + std::to_string(d) + " (weights, gradients, optimiser state)",
                "use fewer features");
  auto gen = at::detail::createCPUGenerator(config_.seed);
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  // Decoder rows: random directions; standard uses a fixed small norm, topk unit norm.
  at::Tensor W_dec = at::empty({S, d}, opts).normal_(0.0, 1.0, gen);
  const double norm = config_.architecture == "standard" ? config_.init_decoder_norm : 1.0;
  W_dec = W_dec / W_dec.norm(2, 1, true) * norm;
  W_dec_ = W_dec.to(device_);
  W_encT_ = W_dec.clone().to(device_);  // W_enc = W_dec^T
  b_enc_ = at::zeros({S}, opts.device(device_));
  b_dec_ = at::zeros({d}, opts.device(device_));
  at::Tensor* params[4] = {&W_encT_, &b_enc_, &W_dec_, &b_dec_};
  for (int i = 0; i < 4; ++i) {
    m_[i] = at::zeros_like(*params[i]);
    v_[i] = at::zeros_like(*params[i]);
  }
  since_fired_ = at::zeros({S}, at::TensorOptions().dtype(at::kLong).device(device_));
}

void SaeTrainer::adam(at::Tensor& p, at::Tensor& m, at::Tensor& v, const at::Tensor& g, double lr, double bc1,
                      double bc2) {
  m.mul_(config_.beta1).add_(g, 1.0 - config_.beta1);
  v.mul_(config_.beta2).addcmul_(g, g, 1.0 - config_.beta2);
  at::Tensor denom = (v / bc2).sqrt_().add_(1e-8);
  p.addcdiv_(m, denom, -lr / bc1);
}

at::Tensor SaeTrainer::deadMask() const { return since_fired_ >= config_.dead_window; }

at::Tensor SaeTrainer::auxMask() const {
  const std::int64_t every = config_.resample_every;
  return every > 0 ? since_fired_ >= std::min(every, config_.dead_window) : deadMask();
}

namespace {

// A sparse code as (row, latent, value) triples, rows non-decreasing, values after the ReLU.
struct CodeTriples {
  at::Tensor rows, latents, values;
};

// The k largest scores of each row.
CodeTriples rowTopk(const at::Tensor& scores, std::int64_t k) {
  auto top = scores.topk(k, 1, true, false);
  const at::Tensor latents = std::get<1>(top).reshape(-1);
  return {at::arange(scores.size(0), latents.options()).repeat_interleave(k), latents,
          at::relu(std::get<0>(top)).reshape(-1)};
}

// The code of the SAE being trained: TopK's k per row, or BatchTopK's k * B largest
// pre-activations of the whole batch (a token with more going on keeps more latents than one
// with less), sorted by flat = row * S + latent.
CodeTriples selectCode(const SaeTrainConfig& c, const at::Tensor& pre) {
  if (c.architecture == "topk" && !c.matryoshka_k.empty()) {
    auto [latents, values] = groupTopk(pre, c.matryoshka, c.matryoshka_k, c.k);
    return {at::arange(pre.size(0), latents.options()).repeat_interleave(latents.size(1)), latents.reshape(-1),
            at::relu(values).reshape(-1)};
  }
  if (c.architecture != "batchtopk") return rowTopk(pre, c.k);
  const std::int64_t B = pre.size(0), S = pre.size(1);
  auto top = at::relu(pre).view({-1}).topk(std::min(c.k * B, B * S), 0, true, false);
  auto order = std::get<1>(top).sort();
  const at::Tensor flat = std::get<0>(order);
  return {at::div(flat, S, "floor"), flat.remainder(S), std::get<0>(top).index_select(0, std::get<1>(order))};
}

}  // namespace

double addTopkAuxiliaryLoss(const at::Tensor& pre, const at::Tensor& dead, const at::Tensor& e, const at::Tensor& xc,
                            const at::Tensor& W_dec, const at::Tensor& W_encT, std::int64_t aux_k, double coefficient,
                            at::Tensor& gW_dec, at::Tensor& gW_encT, at::Tensor& gb_enc, at::Tensor& gb_dec,
                            std::int64_t dense_limit) {
  const std::int64_t B = pre.size(0), d = W_dec.size(1), S = W_dec.size(0);
  if (coefficient <= 0 || B == 0) return 0.0;
  const at::Tensor cols = dead.nonzero().squeeze(1);
  const std::int64_t n_dead = cols.size(0);
  if (n_dead == 0) return 0.0;
  const std::int64_t ka = std::min(aux_k, n_dead);
  // The dense way holds a few times 64M floats at most; past that, or past dense_limit dead
  // latents, the aux code goes as sparse triples.
  constexpr std::int64_t kBudget = std::int64_t{64} << 20;
  if (dense_limit < 0) dense_limit = S;
  double sq = 0;
  at::Tensor gb;
  if (n_dead <= dense_limit && B * n_dead <= kBudget) {
    // The aux code is a dense [B, n_dead] matrix over the dead columns, and the four products
    // below are plain matrix multiplications.
    const at::Tensor pd = pre.index_select(1, cols);
    auto top = pd.topk(ka, 1, true, false);
    const at::Tensor A = at::zeros_like(pd).scatter_(1, std::get<1>(top), at::relu(std::get<0>(top)));
    const at::Tensor Wd = W_dec.index_select(0, cols);                // [n_dead, d]
    const at::Tensor ae = at::addmm(e, A, Wd);                         // e_hat - (x - x_hat)
    sq = ae.pow(2).sum().item<double>();
    const at::Tensor g_ehat = ae * (2.0 * coefficient / B);
    at::Tensor gA = at::mm(g_ehat, Wd.t());                            // [B, n_dead]
    gA.mul_(A > 0);
    gW_dec.index_add_(0, cols, at::mm(A.t(), g_ehat));
    gW_encT.index_add_(0, cols, at::mm(gA.t(), xc));
    gb = at::zeros({S}, pre.options()).index_add_(0, cols, gA.sum(0));
  } else {
    // The aux code as (row, latent, value) triples, through the main code's sparse gradients: its
    // reconstruction of -e is scored as the main code's is of x (no decoder bias: e is fixed).
    const CodeTriples a = rowTopk(pre.masked_fill(dead.logical_not().unsqueeze(0), -INFINITY), ka);
    const SparseCodeGradients g =
        sparseCodeGradients(-e, xc, W_dec, at::zeros({d}, e.options()), W_encT, a.rows, a.latents, a.values);
    sq = g.error.pow(2).sum().item<double>();  // the error is e_hat + e
    gW_dec.add_(g.gW_dec, coefficient);
    gW_encT.add_(g.gW_encT, coefficient);
    gb = g.gb_enc * coefficient;
  }
  gb_enc += gb;
  gb_dec -= at::mv(W_encT.t(), gb);
  return sq / static_cast<double>(B);
}

SaeTrainStats SaeTrainer::step(const at::Tensor& raw, const at::Tensor& target) {
  c10::InferenceMode guard;
  const std::int64_t B = raw.size(0), d = config_.d_in, S = config_.d_sae;
  if (raw.dim() != 2 || raw.size(1) != d) {
    throw Error("SAE training batch has shape " + shapeString(raw.sizes().vec()) + ", expected [n, " +
                std::to_string(d) + "]");
  }
  if (target.defined() && target.sizes() != raw.sizes()) {
    throw Error("SAE training target has shape " + shapeString(target.sizes().vec()) + ", not the batch's " +
                shapeString(raw.sizes().vec()));
  }
  at::Tensor x = raw.to(device_, at::kFloat);
  const double world = static_cast<double>(config_.world_size);
  auto meanOverRanks = [&](at::Tensor t, const char* what) {  // equal batches: the global mean
    if (pg_ == nullptr || pg_->worldSize() == 1) return t;
    std::vector<at::Tensor> v = {t.contiguous()};
    pg_->allReduceSum(v, what);
    return v[0] / world;
  };
  if (scale_ == 0.0) {
    const double mean_norm =
        meanOverRanks(x.norm(2, 1).mean().to(at::kDouble).reshape({1}), "the input scale's all-reduce").item<double>();
    if (!(mean_norm > 0) || !std::isfinite(mean_norm)) throw Error("SAE training: the first batch has zero or non-finite norm");
    scale_ = std::sqrt(static_cast<double>(d)) / mean_norm;
  }
  x = x * scale_;
  const at::Tensor y = target.defined() ? target.to(device_, at::kFloat) * scale_ : x;  // what is reconstructed
  // b_dec starts at the first batch's mean: residual streams are far from centred, and from zero
  // the encoder spends its first thousand steps learning the offset.
  if (step_ == 0 && config_.init_b_dec_mean) b_dec_.copy_(meanOverRanks(y.mean(0), "the decoder bias's all-reduce"));
  // Schedules follow the tokens seen, so a run resumed with another number of ranks keeps them.
  const double t = static_cast<double>(tokens_seen_) / static_cast<double>(config_.total_tokens);
  double lr = config_.lr;
  if (t > 1.0 - config_.lr_decay_fraction) lr *= std::max(0.0, (1.0 - t) / config_.lr_decay_fraction);
  const double lambda = config_.l1_coefficient *
                        (config_.l1_warmup_fraction > 0 ? std::min(1.0, t / config_.l1_warmup_fraction) : 1.0);

  at::Tensor xc = x - b_dec_;                                          // [B, d]
  at::Tensor pre = config_.encoder_precision == "bf16"
                       ? at::mm(xc.to(at::kBFloat16), W_encT_.to(at::kBFloat16).t()).to(at::kFloat).add_(b_enc_)
                       : at::addmm(b_enc_, xc, W_encT_.t());           // [B, S]
  at::Tensor gW_encT, gb_enc, gW_dec, gb_dec, err, fired;  // err: x_hat - x
  SaeTrainStats st;
  double aux_loss = 0;
  double smallest = -1.0;  // batchtopk: the smallest activation kept (-1: none)
  double objective_sq = -1.0;  // matryoshka: the objective's squared error (-1: the whole code's)
  if (config_.architecture == "standard") {
    at::Tensor f = at::relu(pre);                                      // [B, S]
    err = at::addmm(b_dec_, f, W_dec_).sub_(y);                        // [B, d]
    at::Tensor norms = W_dec_.norm(2, 1);                              // [S]
    at::Tensor g_xhat = err * (2.0 / B);                               // [B, d]
    at::Tensor f_sum = f.sum(0);                                       // [S]
    gW_dec = at::mm(f.t(), g_xhat);                                    // [S, d]
    gW_dec.addcmul_((f_sum * (lambda / B) / norms.clamp_min(1e-12)).unsqueeze(1), W_dec_);
    // dL/dpre = (g_xhat W_dec^T + lambda ||W_dec|| / B) * 1[pre > 0], built in place on `f`.
    at::Tensor g_pre = at::addmm((norms * (lambda / B)).unsqueeze(0), g_xhat, W_dec_.t());  // [B, S]
    g_pre.mul_(pre > 0);
    gW_encT = at::mm(g_pre.t(), xc);                                   // [S, d]
    gb_enc = g_pre.sum(0);
    gb_dec = g_xhat.sum(0) - at::mv(W_encT_.t(), gb_enc);
    st.l0 = (f > 0).sum(1).to(at::kDouble).mean().item<double>();
    fired = f_sum > 0;
    st.loss = lambda * (f * norms).sum(1).mean().item<double>();  // and the MSE, below
  } else {
    const CodeTriples c = selectCode(config_, pre);
    const at::Tensor &latents = c.latents, &values = c.values;
    SparseCodeGradients g =
        config_.matryoshka.empty()
            ? sparseCodeGradients(y, xc, W_dec_, b_dec_, W_encT_, c.rows, latents, values)
            : matryoshkaCodeGradients(y, xc, W_dec_, b_dec_, W_encT_, c.rows, latents, values, config_.matryoshka,
                                      objective_sq);
    err = g.error;
    gW_dec = g.gW_dec, gW_encT = g.gW_encT, gb_enc = g.gb_enc, gb_dec = g.gb_dec;
    aux_loss = addTopkAuxiliaryLoss(pre, auxMask(), err, xc, W_dec_, W_encT_, config_.aux_k, config_.aux_coefficient,
                                    gW_dec, gW_encT, gb_enc, gb_dec);
    st.loss = config_.aux_coefficient * aux_loss;  // and the MSE, below
    const at::Tensor on = values > 0;
    st.l0 = on.sum().item<double>() / static_cast<double>(B);
    fired = at::zeros({S}, at::TensorOptions().dtype(at::kBool).device(device_));
    fired.index_fill_(0, latents.masked_select(on), true);
    if (config_.architecture == "batchtopk")
      smallest = on.any().item<bool>() ? values.masked_select(on).min().item<double>() : -1.0;
  }
  const double sq = err.pow(2).sum().item<double>();
  st.mse = sq / static_cast<double>(B);  // the whole code's, with or without prefixes
  st.loss += (objective_sq >= 0 ? objective_sq : sq) / static_cast<double>(B);
  // Data parallelism: every rank holds the mean gradient, the one a single process would get on
  // all ranks' rows together; latents fired anywhere count as fired.
  const std::int64_t global_batch = B * config_.world_size;
  if (pg_ != nullptr && pg_->worldSize() > 1) {
    std::vector<at::Tensor> grads = {gW_encT, gb_enc, gW_dec, gb_dec};
    pg_->allReduceSum(grads, "the gradient all-reduce");
    for (auto& g : grads) g.div_(world);
    gW_encT = grads[0], gb_enc = grads[1], gW_dec = grads[2], gb_dec = grads[3];
    std::vector<at::Tensor> f = {fired.to(at::kFloat)};
    pg_->allReduceSum(f, "the fired-latents all-reduce");
    fired = f[0] > 0;
    const bool has = smallest >= 0;  // batchtopk: this rank kept an activation
    std::vector<at::Tensor> stats = {at::tensor({st.loss, st.l0, has ? smallest : 0.0, has ? 1.0 : 0.0},
                                                at::TensorOptions().dtype(at::kDouble).device(device_))};
    pg_->allReduceSum(stats, "the statistics all-reduce");
    const at::Tensor sv = stats[0].cpu();
    st.loss = sv[0].item<double>() / world;
    st.l0 = sv[1].item<double>() / world;
    smallest = sv[3].item<double>() > 0 ? sv[2].item<double>() / sv[3].item<double>() : -1.0;
  }
  if (config_.architecture == "batchtopk" && smallest >= 0) {
    // The inference threshold: a running mean of the smallest kept activation (SAELens's rule).
    threshold_ = threshold_ < 0 ? smallest : (1.0 - kThresholdRate) * threshold_ + kThresholdRate * smallest;
  }
  if (config_.architecture == "standard" && config_.grad_clip > 0) {  // global gradient-norm clipping
    const double gn = std::sqrt(gW_dec.pow(2).sum().item<double>() + gW_encT.pow(2).sum().item<double>() +
                                gb_enc.pow(2).sum().item<double>() + gb_dec.pow(2).sum().item<double>());
    if (gn > config_.grad_clip) {
      const double c = config_.grad_clip / gn;
      gW_dec.mul_(c);
      gW_encT.mul_(c);
      gb_enc.mul_(c);
      gb_dec.mul_(c);
    }
  }
  if (!std::isfinite(st.loss)) {
    throw Error("SAE training diverged at step " + std::to_string(step_) + " (loss is not finite)",
                "lower lr or l1_coefficient; the last checkpoint is kept");
  }
  ++step_;
  const double bc1 = 1.0 - std::pow(config_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(config_.beta2, static_cast<double>(step_));
  adam(W_encT_, m_[0], v_[0], gW_encT, lr, bc1, bc2);
  adam(b_enc_, m_[1], v_[1], gb_enc, lr, bc1, bc2);
  adam(W_dec_, m_[2], v_[2], gW_dec, lr, bc1, bc2);
  adam(b_dec_, m_[3], v_[3], gb_dec, lr, bc1, bc2);
  if (config_.architecture != "standard") W_dec_.div_(W_dec_.norm(2, 1, true).clamp_min(1e-12));

  since_fired_.add_(global_batch);
  tokens_seen_ += global_batch;
  since_fired_.masked_fill_(fired, 0);
  const std::int64_t every = config_.resample_every;
  if (every > 0 && t < 1.0 - config_.lr_decay_fraction && tokens_seen_ / every > (tokens_seen_ - global_batch) / every)
    st.resampled = resampleScaled(y, y + err);
  st.step = step_;
  const double var = (y - y.mean(0, true)).pow(2).sum().item<double>();
  st.fve = var > 0 ? 1.0 - sq / var : 0.0;
  st.dead_fraction = deadMask().to(at::kDouble).mean().item<double>();
  return st;
}

at::Tensor SaeTrainer::encodeTopk(const at::Tensor& x) const {
  const at::Tensor pre = at::addmm(b_enc_, x - b_dec_, W_encT_.t());
  const CodeTriples c = selectCode(config_, pre);
  return at::addmm(b_dec_, at::zeros_like(pre).index_put_({c.rows, c.latents}, c.values), W_dec_);
}

std::int64_t SaeTrainer::resampleDead(const at::Tensor& raw) {
  c10::InferenceMode guard;
  if (config_.architecture == "standard") throw Error("resampling dead latents is for topk and batchtopk SAEs");
  if (scale_ == 0.0) throw Error("the SAE has not been trained on any batch yet");
  if (raw.dim() != 2 || raw.size(1) != config_.d_in || raw.size(0) == 0)
    throw Error("resampling batch has shape " + shapeString(raw.sizes().vec()) + ", expected [n, " + std::to_string(config_.d_in) + "]");
  const at::Tensor x = raw.to(device_, at::kFloat) * scale_;
  return resampleScaled(x, encodeTopk(x));
}

std::int64_t SaeTrainer::resampleScaled(const at::Tensor& x, const at::Tensor& x_hat) {
  const at::Tensor dead = auxMask();
  const at::Tensor cols = dead.nonzero().squeeze(1);
  const std::int64_t n = cols.size(0), B = x.size(0);
  if (n == 0 || n == config_.d_sae) return 0;  // none, or no alive row to take a norm from
  const at::Tensor r = x - x_hat;
  const std::int64_t take = std::min(n, B);
  const at::Tensor worst = std::get<1>(r.pow(2).sum(1).topk(take, 0, true, true));
  const at::Tensor pick = worst.index_select(0, at::arange(n, worst.options()).remainder(take));
  at::Tensor u = r.index_select(0, pick);
  u = u / u.norm(2, 1, true).clamp_min(1e-12);  // [n, d]
  if (pg_ != nullptr && pg_->worldSize() > 1) {
    if (pg_->rank() != 0) u.zero_();
    std::vector<at::Tensor> v = {u};
    pg_->allReduceSum(v, "the resampled directions' all-reduce");
    u = v[0];
  }
  const double enc_norm = W_encT_.index_select(0, dead.logical_not().nonzero().squeeze(1)).norm(2, 1).mean().item<double>();
  W_dec_.index_copy_(0, cols, u);
  W_encT_.index_copy_(0, cols, u * (0.2 * enc_norm));
  b_enc_.index_fill_(0, cols, 0.0);
  for (int i : {0, 1, 2}) {  // W_encT, b_enc, W_dec: their rows (entries) of the re-aimed latents
    m_[i].index_fill_(0, cols, 0.0);
    v_[i].index_fill_(0, cols, 0.0);
  }
  return n;
}

std::unique_ptr<Sae> SaeTrainer::exportSae() const {
  c10::InferenceMode guard;
  if (scale_ == 0.0) throw Error("the SAE has not been trained on any batch yet");
  SaeConfig cfg;
  // A BatchTopK SAE runs as a JumpReLU with its learned threshold on every latent, as SAELens
  // saves one; its k stays in the metadata.
  const bool batch = config_.architecture == "batchtopk";
  cfg.architecture = batch ? "jumprelu" : config_.architecture;
  if (batch) {
    cfg.metadata["trained_as"] = "batchtopk";
    cfg.metadata["k"] = config_.k;
  }
  cfg.d_in = config_.d_in;
  cfg.d_sae = config_.d_sae;
  cfg.hook_name = config_.hook_name;
  cfg.k = config_.architecture == "topk" ? config_.k : 0;
  if (!config_.matryoshka_k.empty()) {  // encodes as it was trained: each group its share of k
    cfg.group_ends = config_.matryoshka;
    cfg.group_k = config_.matryoshka_k;
  }
  cfg.apply_b_dec_to_input = true;
  cfg.normalize_activations = "none";
  // Fold the input scale s: f(x) = act((s W_enc)^T (x - b_dec/s) + b_enc), x_hat = b_dec/s + (W_dec/s)^T f.
  const double s = scale_;
  // The threshold compares pre-activations, which the folding leaves unchanged.
  at::Tensor threshold;
  if (batch) threshold = at::full({config_.d_sae}, std::max(0.0, threshold_), b_enc_.options());
  return std::make_unique<Sae>(cfg, (W_encT_.t() * s).contiguous(), b_enc_.clone(), (W_dec_ / s).contiguous(),
                               b_dec_ / s, threshold);
}

std::map<std::string, std::string> SaeTrainer::runSettingsOf(const std::map<std::string, std::string>& metadata) {
  std::map<std::string, std::string> run;
  for (const auto& [key, value] : metadata)
    if (key.rfind(kRunPrefix, 0) == 0) run[key.substr(sizeof kRunPrefix - 1)] = value;
  return run;
}

std::map<std::string, std::string> SaeTrainer::checkpointRunSettings(const std::string& path) {
  if (!std::filesystem::exists(path)) return {};
  return runSettingsOf(SafetensorsFile(path).metadata());
}

void SaeTrainer::saveCheckpoint(const std::string& path) const {
  std::vector<std::pair<std::string, at::Tensor>> t = {{"W_encT", W_encT_}, {"b_enc", b_enc_}, {"W_dec", W_dec_},
                                                       {"b_dec", b_dec_}};
  const char* names[4] = {"W_encT", "b_enc", "W_dec", "b_dec"};
  for (int i = 0; i < 4; ++i) {
    t.emplace_back(std::string("adam_m.") + names[i], m_[i]);
    t.emplace_back(std::string("adam_v.") + names[i], v_[i]);
  }
  t.emplace_back("since_fired", since_fired_.to(at::kFloat));
  // The scale in full precision (std::to_string keeps 6 decimals, and a resumed run then drifted
  // from an uninterrupted one).
  std::map<std::string, std::string> meta = {{"step", std::to_string(step_)},
                                             {"scale", roundTripDecimal(scale_)},
                                             {"threshold", roundTripDecimal(threshold_)},
                                             {"tokens", std::to_string(tokens_seen_)},
                                             {"architecture", config_.architecture},
                                             {"d_in", std::to_string(config_.d_in)},
                                             {"d_sae", std::to_string(config_.d_sae)}};
  for (const auto& [key, value] : run_settings_) meta[kRunPrefix + key] = value;
  saveTensors(path, t, meta);
}

bool SaeTrainer::loadCheckpoint(const std::string& path) {
  if (!std::filesystem::exists(path)) return false;
  SafetensorsFile f(path);
  const auto& meta = f.metadata();
  auto get = [&](const std::string& key) {
    auto it = meta.find(key);
    if (it == meta.end()) throw Error("checkpoint '" + path + "' lacks '" + key + "'", "delete it to start afresh");
    return it->second;
  };
  if (get("architecture") != config_.architecture || get("d_in") != std::to_string(config_.d_in) ||
      get("d_sae") != std::to_string(config_.d_sae)) {
    throw Error("checkpoint '" + path + "' was written for another architecture or size",
                "use a new --out folder, or the settings the checkpoint was made with");
  }
  // Every run setting the checkpoint recorded must be this run's too.
  for (const auto& [name, value] : runSettingsOf(meta)) {
    const auto now = run_settings_.find(name);
    const std::string current = now == run_settings_.end() ? "(not set)" : now->second;
    if (current != value)
      throw Error("checkpoint '" + path + "' was written with " + name + " = " + value + ", this run has " + current,
                  "resume with the settings the checkpoint was made with, or use a new --out folder");
  }
  const WeightStore store = WeightStore::fromFile(path);  // maps the file once for every tensor
  auto load = [&](const std::string& name, at::Tensor& into) {
    into.copy_(loadWeight(store, name, into.sizes().vec(), device_));
  };
  load("W_encT", W_encT_);
  load("b_enc", b_enc_);
  load("W_dec", W_dec_);
  load("b_dec", b_dec_);
  const char* names[4] = {"W_encT", "b_enc", "W_dec", "b_dec"};
  for (int i = 0; i < 4; ++i) {
    load(std::string("adam_m.") + names[i], m_[i]);
    load(std::string("adam_v.") + names[i], v_[i]);
  }
  at::Tensor sf = at::empty({config_.d_sae}, at::kFloat);
  load("since_fired", sf);
  since_fired_ = sf.to(at::kLong).to(device_);
  step_ = parseInt64(get("step"), "checkpoint '" + path + "': step");
  const std::string scale = get("scale");
  char* end = nullptr;
  scale_ = std::strtod(scale.c_str(), &end);
  if (step_ < 0 || end == scale.c_str() || *end != '\0' || !std::isfinite(scale_) || !(scale_ > 0))
    throw Error("checkpoint '" + path + "' has an invalid step or scale", "delete it to start afresh");
  // Tokens seen by all ranks; checkpoints written before data parallelism count steps only.
  tokens_seen_ = meta.count("tokens") != 0 ? parseInt64(meta.at("tokens"), "checkpoint '" + path + "': tokens")
                                           : step_ * config_.batch_size;
  threshold_ = -1.0;
  if (meta.count("threshold") != 0) {  // checkpoints written before BatchTopK have none
    const std::string t = meta.at("threshold");
    threshold_ = std::strtod(t.c_str(), &end);
    if (end == t.c_str() || *end != '\0' || !std::isfinite(threshold_))
      throw Error("checkpoint '" + path + "' has an invalid threshold", "delete it to start afresh");
  }
  return true;
}

void SaeTrainer::broadcastState(int root) {
  if (pg_ == nullptr || pg_->worldSize() == 1) return;
  c10::InferenceMode guard;
  std::vector<at::Tensor> state = {W_encT_, b_enc_, W_dec_, b_dec_};
  for (int i = 0; i < 4; ++i) {
    state.push_back(m_[i]);
    state.push_back(v_[i]);
  }
  pg_->broadcast(state, root, "the broadcast of the SAE's weights");
  std::vector<at::Tensor> counters = {since_fired_,
                                      at::tensor({step_, tokens_seen_}, at::TensorOptions().dtype(at::kLong).device(device_))};
  pg_->broadcast(counters, root, "the broadcast of the training counters");
  const at::Tensor c = counters[1].cpu();
  step_ = c[0].item<std::int64_t>();
  tokens_seen_ = c[1].item<std::int64_t>();
  std::vector<at::Tensor> scalars = {at::tensor({scale_, threshold_}, at::TensorOptions().dtype(at::kDouble).device(device_))};
  pg_->broadcast(scalars, root, "the broadcast of the input scale");
  const at::Tensor sc = scalars[0].cpu();
  scale_ = sc[0].item<double>();
  threshold_ = sc[1].item<double>();
}

SyntheticFeatures::SyntheticFeatures(std::int64_t d_in, std::int64_t n_features, double mean_active,
                                     std::uint64_t seed)
    : p_(mean_active / static_cast<double>(n_features)), gen_(at::detail::createCPUGenerator(seed)) {
  if (d_in <= 0 || n_features <= 0 || !(mean_active > 0) || mean_active > n_features)
    throw Error("synthetic data: d_in, feature count and mean active count must be positive (active <= features)");
  requireMemory(saturatingProduct({2, 4, static_cast<std::uint64_t>(n_features), static_cast<std::uint64_t>(d_in)}),
                "features", std::to_string(n_features) + " ground-truth features of width " + std::to_string(d_in),
                "use fewer features or a smaller d_in");
  F_ = at::empty({n_features, d_in}).normal_(0.0, 1.0, gen_);
  F_ = F_ / F_.norm(2, 1, true);
}

at::Tensor SyntheticFeatures::sample(std::int64_t n) {
  const std::int64_t m = F_.size(0);
  at::Tensor on = at::empty({n, m}).uniform_(0.0, 1.0, gen_) < p_;
  at::Tensor mag = at::empty({n, m}).uniform_(0.0, 1.0, gen_);
  return at::mm(mag * on, F_);  // [n, d_in]
}

GroundTruthReport compareWithTruth(const at::Tensor& W_dec, const at::Tensor& true_features) {
  c10::InferenceMode guard;
  at::Tensor a = W_dec.to(at::kCPU, at::kFloat);
  a = a / a.norm(2, 1, true).clamp_min(1e-12);
  at::Tensor b = true_features.to(at::kCPU, at::kFloat);
  b = b / b.norm(2, 1, true).clamp_min(1e-12);
  at::Tensor cos = at::mm(a, b.t());  // [d_sae, n_true]
  GroundTruthReport r;
  r.mmcs_learned_to_true = std::get<0>(cos.max(1)).mean().item<double>();
  at::Tensor best = std::get<0>(cos.max(0));
  r.mmcs_true_to_learned = best.mean().item<double>();
  r.recovered_fraction = (best > 0.9).to(at::kDouble).mean().item<double>();
  return r;
}

}  // namespace monoscope::core
