// Measuring an SAE on held-out text, and calibrating per-feature thresholds for a TopK SAE
// (api/training.h).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "api/training.h"
#include "lm/transformer.h"
#include "sae/activation_store.h"
#include "sae/sae.h"
#include "sae/token_table.h"
#include "text/tokenizer.h"
#include "util/cancel.h"
#include "util/device.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/memory.h"
#include "util/runtime.h"

namespace fs = std::filesystem;

namespace monoscope::core {

void SaeEvaluationOptions::validate() const {
  auto bad = [](const std::string& f, const std::string& why) { throw Error("evaluation option " + f + " " + why); };
  if (model_dir.empty()) bad("model", "is empty");
  if (sae.empty()) bad("sae", "is empty");
  if (corpus.empty()) bad("corpus", "is empty");
  if (context < 0 || context > (1 << 20)) bad("context", "must be in 0..1048576 (0: the SAE's)");
  if (rows < 1 || rows > (1 << 18)) bad("rows", "must be in 1..262144");
  if (splice_batches < 1 || splice_batches > 100000) bad("splice_batches", "must be in 1..100000");
  if (splice_batch_size < 1 || splice_batch_size > 4096) bad("splice_batch_size", "must be in 1..4096");
}

JobStatus evaluateSae(const SaeEvaluationOptions& o, const ProgressFn& progress, SaeEvaluationResult* result) {
  o.validate();
  configureThreads(o.threads);
  const c10::Device device = resolveDevice(o.device);
  report(progress, "load", 0, 1);
  std::shared_ptr<const Transformer> model = Transformer::load(o.model_dir, device);
  const auto sae = Sae::load(o.sae, device);
  if (sae->config().transcoder())
    throw Error("'" + o.sae + "' is a transcoder; evaluate-sae measures SAEs", "give an SAE that reconstructs the hook it reads");
  std::int32_t boundary = -1;
  if (o.skip_first && o.skip_end_of_text) {
    try {
      boundary = Tokenizer::endOfTextIdOf(o.model_dir);
    } catch (const Error& e) {
      throw e.withContext("reading the end-of-text id that skip_first leaves out");
    }
  }
  const std::int64_t n_ctx = model->config().n_ctx;
  std::int64_t context = o.context;
  if (context == 0) context = sae->config().context_size > 0 ? sae->config().context_size : std::min<std::int64_t>(128, n_ctx);
  context = std::min(context, n_ctx);
  if (context < 2) throw Error("context " + std::to_string(context) + " is too short to score next tokens", "give --context 2 or more");
  const fs::path corpus = o.corpus;
  const fs::path valid = corpus / "valid.tokens.safetensors", train = corpus / "train.tokens.safetensors";
  std::error_code ec;
  const std::string shard_path = !fs::is_directory(corpus, ec) ? corpus.string()
                                 : fs::exists(valid, ec)       ? valid.string()
                                                               : train.string();
  auto shard = std::make_shared<const TokenShard>(shard_path);
  report(progress, "reconstruct", 0, 2);
  // The held-out windows train-sae measures for the same seed, with every row kept (train-sae,
  // with --skip-sinks, leaves the secondary sinks out of its own measure; the ordinary rows here
  // are the comparable figure).
  ModelActivationSource source(model, sae->config().hook_name, shard, context, std::max<std::int64_t>(1 << 15, o.rows * 2),
                               o.seed + 99, o.skip_first, boundary);
  const at::Tensor x = source.next(o.rows);
  // An SAE trained with a token table reconstructs each row less its token's table row.
  const at::Tensor table = loadSaeTokenTable(o.sae, sae->config().d_in, model->config().vocab_size, device);
  const at::Tensor added = table.defined() ? table.index_select(0, source.lastTokens().to(device)) : at::Tensor();
  const auto m = sae->metrics(x, added, sae->readsTokenTable());
  // A few rows (secondary attention sinks) carry norms tens of times the median and much of the
  // variance; the same measure without them says how the ordinary rows are reconstructed.
  const at::Tensor ordinary = ordinaryRows(x, kMassiveRowFactor);
  const std::int64_t n_ordinary = ordinary.size(0);
  report(progress, "reconstruct", 1, 2);
  const auto ev = evaluateSplice(*model, *sae, *shard, o.splice_batches, o.splice_batch_size, context, o.skip_first ? 1 : 0, boundary,
                                 table);
  report(progress, "reconstruct", 2, 2);
  SaeEvaluationResult r;
  r.fraction_variance_explained = m.fraction_variance_explained;
  r.l0 = m.l0;
  r.massive_rows = x.size(0) - n_ordinary;
  r.fraction_variance_explained_ordinary = r.massive_rows == 0 ? m.fraction_variance_explained
                                                               : sae->metrics(x.index_select(0, ordinary),
                                                                              added.defined() ? added.index_select(0, ordinary) : added,
                                                                              sae->readsTokenTable())
                                                                     .fraction_variance_explained;
  r.clean_loss = ev.clean_loss;
  r.spliced_loss = ev.sae_loss;
  r.zero_ablation_loss = ev.zero_loss;
  r.ce_loss_recovered = ev.ce_loss_recovered;
  r.rows = o.rows;
  r.context = context;
  if (result) *result = r;
  return JobStatus::Done;
}

void SaeThresholdOptions::validate() const {
  auto bad = [](const std::string& f, const std::string& why) { throw Error("threshold option " + f + " " + why); };
  if (sae.empty()) bad("sae", "is empty");
  if (activations.empty()) bad("activations", "is empty");
  if (out.empty()) bad("out", "is empty");
  if (!(fraction >= 0.0 && fraction < 1.0)) bad("fraction", "must be in [0, 1)");
  if (rows < 1 || rows > (1ll << 32)) bad("rows", "must be in 1..4294967296");
  if (!std::isfinite(refit_lambda) || refit_lambda == 0.0)
    bad("refit_lambda", "must be positive and finite (negative: no refit)");
}

namespace {

// Variance explained of x [n, d] by decoder W with codes of `sae`.
double fveOf(const Sae& sae, const at::Tensor& x, const at::Tensor& W, const at::Tensor& added) {
  const Sae with(sae.config(), sae.W_enc(), sae.b_enc(), W, sae.b_dec(), sae.threshold(), {}, sae.mapped());
  return with.metrics(x, added).fraction_variance_explained;
}

// Ridge regression of the decoder on the thresholded codes of `fit` rows (see SaeThresholdOptions),
// reconstructing the rows less `fit_less` (a token table's rows; undefined: none).
// A feature that never fires on those rows has a row of G that is lambda on the diagonal and zero
// elsewhere, so the system splits: its decoder row stays the trained one exactly, and only the
// features that fire form the A x A system solved (A well under d_sae for most dictionaries).
at::Tensor refitDecoder(const Sae& sae, const at::Tensor& fit, const at::Tensor& fit_less, double lambda, const ProgressFn& progress,
                        std::int64_t* solved) {
  const std::int64_t S = sae.config().d_sae, d = sae.config().d_in, k = sae.config().k;
  const auto dbl = at::TensorOptions().dtype(at::kDouble);
  at::Tensor R = at::zeros({S, d}, dbl);  // F^T (X - b_dec), every feature
  const at::Tensor b_dec = sae.b_dec().to(at::kCPU, at::kFloat);
  constexpr std::int64_t kBatch = 1024;
  const std::int64_t n = fit.size(0);
  std::vector<at::Tensor> values, slots;  // each batch's codes [b, k], kept for G (float32, int32)
  at::Tensor fired = at::zeros({S}, at::TensorOptions().dtype(at::kBool));
  for (std::int64_t r = 0; r < n; r += kBatch) {
    const std::int64_t b = std::min(kBatch, n - r);
    const at::Tensor x = fit.narrow(0, r, b).to(at::kCPU, at::kFloat);
    const auto top = sae.encodeTop(x, k);  // the k slots of each row; cut ones hold zero
    const at::Tensor v = top.first.to(at::kCPU, at::kFloat), i = top.second.to(at::kCPU, at::kLong);  // [b, k]
    const at::Tensor y = fit_less.defined() ? x - fit_less.narrow(0, r, b).to(at::kCPU, at::kFloat) : x;  // the target
    R.index_add_(0, i.reshape(-1), (v.to(at::kDouble).unsqueeze(2) * (y - b_dec).to(at::kDouble).unsqueeze(1)).reshape({-1, d}));
    fired.index_put_({i.masked_select(v != 0)}, true);
    values.push_back(v);
    slots.push_back(i.to(at::kInt));
    report(progress, "refit", std::min(r + kBatch, n), n + n / 4);
  }
  const at::Tensor active = fired.nonzero().reshape(-1);  // ascending feature ids
  const std::int64_t A = active.size(0);
  *solved = A;
  // LAPACK's factorisation and solve work on copies: measured, the peak holds about five A x A
  // matrices in float64 (16.0 GB for A = 20,465).
  requireMemory(saturatingProduct({40, static_cast<std::uint64_t>(A), static_cast<std::uint64_t>(A)}), "refit_lambda",
                "the decoder refit's system over the " + std::to_string(A) + " features that fire (" + std::to_string(A) +
                    " x " + std::to_string(A) + " in float64, with the factorisation's copies)",
                "pass --refit false");
  at::Tensor position = at::zeros({S}, at::TensorOptions().dtype(at::kLong));  // feature -> row of the system
  position.index_put_({active}, at::arange(A, at::TensorOptions().dtype(at::kLong)));
  at::Tensor G = at::zeros({A, A}, dbl);  // F^T F over the features that fire
  for (std::size_t b = 0; A > 0 && b < values.size(); ++b) {
    // A slot of a feature that does not fire holds zero and adds zero wherever it lands.
    const at::Tensor v = values[b].to(at::kDouble), p = position.index({slots[b].to(at::kLong)});
    const std::int64_t rows = v.size(0);
    G.index_put_({p.unsqueeze(2).expand({rows, k, k}).reshape(-1), p.unsqueeze(1).expand({rows, k, k}).reshape(-1)},
                 (v.unsqueeze(2) * v.unsqueeze(1)).reshape(-1), /*accumulate=*/true);
    values[b] = at::Tensor();
  }
  G.diagonal().add_(lambda);
  const at::Tensor W_trained = sae.W_dec().to(at::kCPU, at::kDouble);
  const at::Tensor Ra = R.index({active}).add_(W_trained.index({active}), lambda);
  R = at::Tensor();
  at::Tensor W = W_trained.clone();
  if (A > 0) {
    try {
      const at::Tensor L = at::linalg_cholesky(G);
      G = at::Tensor();  // freed before the solve
      W.index_put_({active}, at::cholesky_solve(Ra, L));
    } catch (const c10::Error& e) {
      throw Error(std::string("the decoder refit's system could not be solved: ") + e.what_without_backtrace(),
                  "raise --refit-lambda, or pass --refit false");
    }
  }
  report(progress, "refit", n + n / 4, n + n / 4);
  return W.to(at::kFloat).to(sae.device());
}

}  // namespace

JobStatus calibrateSaeThresholds(const SaeThresholdOptions& o, const ProgressFn& progress, SaeThresholdResult* result) {
  o.validate();
  configureThreads(o.threads);
  const c10::Device device = resolveDevice(o.device);
  report(progress, "load", 0, 1);
  const auto sae = Sae::load(o.sae, device);
  const SaeConfig& cfg = sae->config();
  if (cfg.architecture != "topk")
    throw Error("'" + o.sae + "' is a " + cfg.architecture + " SAE; thresholds after the top k need a TopK SAE",
                "a JumpReLU SAE already has its own thresholds");
  if (cfg.transcoder())
    throw Error("'" + o.sae + "' is a transcoder; sae-threshold calibrates SAEs", "give an SAE that reconstructs the hook it reads");
  at::Tensor x;      // the calibration rows [rows, d_in], float
  at::Tensor added;  // with a token table: each row's token row (the decoder reconstructs the rest)
  {
    std::error_code ec;
    const bool has_table = fs::exists(fs::path(o.sae) / kSaeTokenTableFile, ec);
    FileActivationSource source(o.activations, o.seed, -1, 0, has_table);
    if (source.width() != cfg.d_in)
      throw Error("'" + o.activations + "' holds activations of width " + std::to_string(source.width()) + ", the SAE reads " +
                      std::to_string(cfg.d_in),
                  "harvest the SAE's hook '" + cfg.hook_name + "'");
    x = source.next(std::min(o.rows, source.rows())).to(device);
    if (has_table)
      added = loadSaeTokenTable(o.sae, cfg.d_in, source.maxToken() + 1, device).index_select(0, source.lastTokens().to(device));
    if (sae->readsTokenTable()) {  // table on both sides: the encoder and decoder see what the table leaves
      x = x - added;
      added = at::Tensor();
    }
  }
  const std::int64_t rows = x.size(0);
  // The SAE without thresholds (a calibrated one is calibrated afresh).
  const Sae plain(cfg, sae->W_enc(), sae->b_enc(), sae->W_dec(), sae->b_dec(), {}, {}, sae->mapped());
  c10::InferenceMode guard;
  at::Tensor max = at::zeros({cfg.d_sae}, at::TensorOptions().dtype(at::kFloat).device(device));
  constexpr std::int64_t kBatch = 4096;
  double active = 0;
  for (std::int64_t done = 0; done < rows; done += kBatch) {
    at::Tensor f = plain.encode(x.narrow(0, done, std::min(kBatch, rows - done)));
    max = at::maximum(max, std::get<0>(f.max(0)));
    active += (f > 0).sum().item<double>();
    report(progress, "calibrate", std::min(done + kBatch, rows), rows * 2);
  }
  const at::Tensor threshold = max * o.fraction;
  const Sae calibrated(cfg, sae->W_enc(), sae->b_enc(), sae->W_dec(), sae->b_dec(), threshold, {}, sae->mapped());
  SaeThresholdResult r;
  at::Tensor W_dec = sae->W_dec();
  if (o.refit_lambda >= 0) {
    if (cfg.rescale_acts_by_decoder_norm)
      throw Error("'" + o.sae + "' ranks by decoder norms, which a refitted decoder would change", "pass --refit false");
    if (cfg.normalize_activations != "none" && cfg.normalize_activations != "expected_average_only_in")
      throw Error("'" + o.sae + "' normalises its input per row (" + cfg.normalize_activations + "), which the refit does not model",
                  "pass --refit false");
    if (rows < 20) throw Error("refitting the decoder needs at least 20 calibration rows, not " + std::to_string(rows));
    const std::int64_t held = rows / 10;
    const at::Tensor fit = x.narrow(0, 0, rows - held), test = x.narrow(0, rows - held, held);
    const at::Tensor fit_less = added.defined() ? added.narrow(0, 0, rows - held) : added;
    const at::Tensor test_added = added.defined() ? added.narrow(0, rows - held, held) : added;
    W_dec = refitDecoder(calibrated, fit, fit_less, o.refit_lambda, progress, &r.refit_features);
    r.refitted = true;
    r.fve_plain = plain.metrics(test, test_added).fraction_variance_explained;
    r.fve_thresholded = fveOf(calibrated, test, sae->W_dec(), test_added);
    r.fve_refitted = fveOf(calibrated, test, W_dec, test_added);
  }
  double kept = 0;
  for (std::int64_t done = 0; done < rows; done += kBatch) {
    kept += (calibrated.encode(x.narrow(0, done, std::min(kBatch, rows - done))) > 0).sum().item<double>();
    report(progress, "calibrate", rows + std::min(done + kBatch, rows), rows * 2);
  }
  r.rows = rows;
  r.features = cfg.d_sae;
  r.never_active = (max <= 0).sum().item<std::int64_t>();
  r.l0_before = active / static_cast<double>(rows);
  r.l0_after = kept / static_cast<double>(rows);
  SaeConfig out_cfg = cfg;
  out_cfg.metadata["threshold_after_topk"] = {{"fraction_of_max", o.fraction}, {"calibration_rows", rows},
                                              {"calibration_source", fs::path(o.activations).filename().string()}};
  if (r.refitted) out_cfg.metadata["threshold_after_topk"]["decoder_refit_lambda"] = o.refit_lambda;
  Sae(out_cfg, sae->W_enc(), sae->b_enc(), W_dec, sae->b_dec(), threshold, {}, sae->mapped()).save(o.out, o.half);
  copySaeTokenTable(o.sae, o.out, o.half);
  nlohmann::ordered_json j;
  j["sae"] = o.sae;
  j["fraction_of_max"] = o.fraction;
  j["calibration_rows"] = rows;
  j["features_never_active"] = r.never_active;
  j["l0_before"] = r.l0_before;
  j["l0_after"] = r.l0_after;
  if (r.refitted) {
    j["decoder_refit_lambda"] = o.refit_lambda;
    j["decoder_refit_features"] = r.refit_features;  // those that fire on the fitted rows
    j["held_out_rows"] = rows / 10;
    j["fve_held_out_without_thresholds"] = r.fve_plain;
    j["fve_held_out_thresholded"] = r.fve_thresholded;
    j["fve_held_out_refitted"] = r.fve_refitted;
    if (sae->readsTokenTable()) j["fve_of"] = "rows less their token's table row (the SAE reads its table on both sides)";
  }
  writeFileAtomically((fs::path(o.out) / "thresholds.json").string(), j.dump(2));
  if (result) *result = r;
  return JobStatus::Done;
}

}  // namespace monoscope::core
