#pragma once
// SAE training with hand-derived gradients (no autograd graph): `standard` (ReLU, L1 weighted
// by decoder norms, Anthropic's April 2024 recipe), `topk` (sparse decoder, auxiliary loss on
// dead latents) and `batchtopk` (the k * batch largest activations of a batch, exported as a
// JumpReLU whose threshold is the running mean of the smallest kept one). Internal (LibTorch).
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sae/sae.h"

namespace monoscope::core {

struct SaeTrainConfig {
  std::string architecture = "standard";  // standard | topk | batchtopk
  std::int64_t d_in = 0;
  std::int64_t d_sae = 0;
  std::string hook_name;                   // recorded in the saved cfg.json
  double l1_coefficient = 5.0;             // standard: lambda (after warm-up)
  std::int64_t k = 32;                     // topk: active latents per token (batchtopk: on average)
  std::int64_t aux_k = 256;                // topk: dead latents used by the auxiliary loss
  double aux_coefficient = 1.0 / 32.0;     // topk: weight of the auxiliary loss
  double lr = 4e-4;                        // Adam learning rate
  double beta1 = 0.9, beta2 = 0.999;       // Adam moments
  double grad_clip = 1.0;                  // global gradient-norm clip (standard)
  double l1_warmup_fraction = 0.05;        // lambda ramps from 0 over this share of steps
  double lr_decay_fraction = 0.2;          // lr decays linearly to 0 over the last share
  double init_decoder_norm = 0.1;          // standard: initial ||W_dec[i]||
  bool init_b_dec_mean = true;             // b_dec starts at the first batch's (scaled) mean
  std::int64_t batch_size = 4096;          // tokens per step and rank
  int world_size = 1;                      // data-parallel ranks (each with batch_size rows)
  std::int64_t total_tokens = 0;           // training length
  std::int64_t dead_window = 10'000'000;   // tokens without firing that make a latent dead
  std::int64_t resample_every = 0;         // topk, batchtopk: tokens between re-aimings of dead latents (0: never)
  // The encoder's product x W_enc^T in "f32" or "bf16" (inputs rounded to bf16, sums kept in
  // f32 by the BLAS, the bias added in f32): on CPUs with AVX512-BF16 or AMX, and on GPUs, about
  // twice as fast; which latents fire and their values then carry bf16's ~3 significant digits.
  // Master weights, gradients and Adam stay f32.
  std::string encoder_precision = "f32";
  // topk, batchtopk: nested ("Matryoshka") prefixes of the dictionary, increasing, each under
  // d_sae. The objective is the mean of the squared error of the whole code and of the code
  // restricted to each prefix's latents, so the first latents must reconstruct alone and carry
  // general directions, and later ones refine them instead of splitting them. Empty: plain TopK.
  std::vector<std::int64_t> matryoshka;
  // topk with prefixes: the most of each row's k latents each group of the dictionary may give
  // (the groups are split at the prefixes: one more entry than prefixes, each at most k, summing
  // to k or more; summing to k, each group gives exactly its share). Empty: one top k over the
  // whole dictionary, where the first latents, trained to reconstruct alone, grow dense and take
  // most of the k places, starving the rest.
  std::vector<std::int64_t> matryoshka_k;
  std::uint64_t seed = 0;

  void validate() const;
  std::int64_t globalBatch() const { return batch_size * world_size; }
  std::int64_t totalSteps() const { return (total_tokens + globalBatch() - 1) / globalBatch(); }
};

struct SaeTrainStats {
  std::int64_t step = 0;
  double mse = 0;                // mean over tokens of ||x - x_hat||^2 (normalised space)
  double fve = 0;                // fraction of variance explained on this batch
  double l0 = 0;                 // mean active latents per token
  double dead_fraction = 0;      // latents silent for dead_window tokens
  std::int64_t resampled = 0;    // dead latents re-aimed in this step (config.resample_every)
  double loss = 0;
};

class ProcessGroup;

// The MSE loss's gradients through a sparse code (TopK and BatchTopK), without a [n, d_in] copy of
// the chosen decoder rows: the code is (row, latent, value) triples with the rows non-decreasing
// (a row's triples are contiguous; a row may have none), values after the ReLU, and a value of 0
// passes no gradient. The reconstruction sums each row's decoder rows (embedding_bag), their dot
// products with the error come from its per-sample-weight gradient, and the weight gradients are
// products of the sparse [d_sae, B] code with the batch. The loss is the mean over rows of the
// squared error; xc is the encoder's input, x - b_dec, so gb_dec holds both of b_dec's paths (a
// caller whose target does not depend on b_dec, as the auxiliary loss's, ignores it). Rows out
// of order give wrong gradients without an error.
struct SparseCodeGradients {
  at::Tensor error;    // x_hat - x: [B, d_in]
  at::Tensor g_values; // d loss / d value of each triple: [n]
  at::Tensor gW_dec, gW_encT, gb_enc, gb_dec;
};
SparseCodeGradients sparseCodeGradients(const at::Tensor& x, const at::Tensor& xc, const at::Tensor& W_dec,
                                        const at::Tensor& b_dec, const at::Tensor& W_encT, const at::Tensor& rows,
                                        const at::Tensor& latents, const at::Tensor& values);
// The same for the Matryoshka objective: the mean over the whole code and its restrictions to
// latents < each of `prefixes` of the squared error (error: the whole code's; g_values empty).
// `squared_error` receives the objective's value times B (the mean of the summed squares).
SparseCodeGradients matryoshkaCodeGradients(const at::Tensor& x, const at::Tensor& xc, const at::Tensor& W_dec,
                                            const at::Tensor& b_dec, const at::Tensor& W_encT, const at::Tensor& rows,
                                            const at::Tensor& latents, const at::Tensor& values,
                                            const std::vector<std::int64_t>& prefixes, double& squared_error);

// TopK with prefixes and at most ks[g] latents from each group between them
// (SaeTrainConfig::matryoshka_k): each row's ks[g] largest pre-activations among latents
// [prefixes[g-1], prefixes[g]), the groups side by side, then, where they number more than k, the
// k largest of those. Returns latents and pre-activations (before the ReLU), both [B, min(k, sum ks)].
std::pair<at::Tensor, at::Tensor> groupTopk(const at::Tensor& pre, const std::vector<std::int64_t>& prefixes,
                                            const std::vector<std::int64_t>& ks, std::int64_t k);

// TopK's auxiliary loss: the min(aux_k, dead) largest pre-activations of dead latents in each
// row (dead: [d_sae] bool), through a ReLU, reconstruct that row's error e = x_hat - x, taken as
// a constant, which revives them. Adds `coefficient` times the loss's gradients into the four
// gradient tensors (so scaled by 1/B of this batch) and returns the loss, the mean over rows of
// the squared residual. With at most dense_limit dead latents (negative: no limit) and a
// [B, dead] code of at most 64M entries, the work is four matrix products over the dead
// columns; otherwise the code goes as (row, latent, value) triples through sparseCodeGradients.
// pre: [B, d_sae] pre-activations; xc: [B, d_in], the input minus b_dec.
double addTopkAuxiliaryLoss(const at::Tensor& pre, const at::Tensor& dead, const at::Tensor& e, const at::Tensor& xc,
                            const at::Tensor& W_dec, const at::Tensor& W_encT, std::int64_t aux_k, double coefficient,
                            at::Tensor& gW_dec, at::Tensor& gW_encT, at::Tensor& gb_enc, at::Tensor& gb_dec,
                            std::int64_t dense_limit = -1);

class SaeTrainer {
 public:
  SaeTrainer(SaeTrainConfig config, const c10::Device& device);

  // Data parallelism: gradients, fired latents and statistics are averaged over `pg`'s ranks,
  // which must number config.world_size (null: one process). Not owned.
  void setProcessGroup(ProcessGroup* pg) { pg_ = pg; }
  // Every rank takes the weights, optimiser state and counters of rank `root` (after it resumed).
  void broadcastState(int root);

  // One optimisation step on raw activations [batch, d_in]. The first call fixes the input
  // scale so that E||x|| = sqrt(d_in). `target` (raw, [batch, d_in]; undefined: the batch) is
  // what the decoder learns to reconstruct from the batch's code: with a token table, the
  // activation less its token's row (the table reconstructs the rest; SaeTrainingOptions).
  // The statistics measure the target.
  SaeTrainStats step(const at::Tensor& batch, const at::Tensor& target = {});

  // Re-aims every dead latent (with config.resample_every set: every latent silent for that many
  // tokens, when fewer than dead_window; see auxMask) at the residual of one of the batch's
  // worst-reconstructed rows (raw activations [batch, d_in]; a row each, worst first, round the
  // rows again when there are more dead latents than rows): its decoder row becomes that
  // residual's direction, its encoder row the same direction at 0.2 times the alive encoder
  // rows' mean norm, its encoder bias 0, and their Adam moments 0 (Anthropic's resampling,
  // after the top k). A dead latent's pre-activations are mostly negative on every row, so the
  // auxiliary loss, through its ReLU, gives it no gradient; aimed at a residual it has one, and
  // it stays in the auxiliary loss until it fires. step() calls it each time the tokens seen
  // pass a multiple of config.resample_every, before the learning rate decays. With several
  // ranks rank 0's rows decide. Returns the number re-aimed. Not for `standard`.
  std::int64_t resampleDead(const at::Tensor& batch);
  // Latents silent for dead_window tokens ([d_sae] bool).
  at::Tensor deadLatents() const { return deadMask(); }

  // The trained SAE on raw activations (the normalisation factor folded into the weights).
  std::unique_ptr<Sae> exportSae() const;

  // Checkpoint (weights, Adam state, counters) for resuming; writes atomically.
  void saveCheckpoint(const std::string& path) const;
  // Returns false when `path` does not exist; throws Error when it belongs to another config or
  // was written with other run settings.
  bool loadCheckpoint(const std::string& path);
  // Settings that decide the rows a run reads and how it learns (seed, source, rows left out,
  // schedule...), beyond the config's own. Written into every checkpoint; a checkpoint written
  // with a different value for one of them is refused, naming it, since resuming would silently
  // read another stream of rows. (Checkpoints written before these existed carry none.)
  void setRunSettings(std::map<std::string, std::string> settings) { run_settings_ = std::move(settings); }
  // The run settings the checkpoint at `path` recorded (none when it does not exist).
  static std::map<std::string, std::string> checkpointRunSettings(const std::string& path);

  std::int64_t stepsDone() const { return step_; }
  std::int64_t tokensSeen() const { return tokens_seen_; }  // by all ranks together
  double inputScale() const { return scale_; }
  // batchtopk: the inference threshold on pre-activations (-1 before the first step).
  double threshold() const { return threshold_; }
  const SaeTrainConfig& config() const { return config_; }

 private:
  struct Grads;
  void adam(at::Tensor& p, at::Tensor& m, at::Tensor& v, const at::Tensor& g, double lr, double bc1, double bc2);
  at::Tensor deadMask() const;
  // Latents that the auxiliary loss trains and re-aiming re-aims: silent for dead_window tokens,
  // or, re-aiming every resample_every tokens, silent for that many (when fewer): a latent
  // re-aimed that has not fired since is in the auxiliary loss and re-aimed again.
  at::Tensor auxMask() const;
  at::Tensor encodeTopk(const at::Tensor& x) const;  // scaled rows -> reconstruction (topk, batchtopk)
  std::int64_t resampleScaled(const at::Tensor& x, const at::Tensor& x_hat);
  static constexpr double kThresholdRate = 0.01;  // batchtopk threshold's running-mean rate

  SaeTrainConfig config_;
  c10::Device device_;
  double scale_ = 0.0;  // input multiplier; 0 until the first batch
  std::int64_t step_ = 0;
  std::int64_t tokens_seen_ = 0;
  ProcessGroup* pg_ = nullptr;
  static constexpr char kRunPrefix[] = "run.";  // a run setting's metadata key is kRunPrefix + name
  static std::map<std::string, std::string> runSettingsOf(const std::map<std::string, std::string>& metadata);
  std::map<std::string, std::string> run_settings_;
  double threshold_ = -1.0;  // batchtopk: running mean of the smallest kept activation
  // Parameters in the normalised space. W_enc is kept transposed ([d_sae, d_in]) so both the
  // dense encoder and the sparse topk gradients are row operations.
  at::Tensor W_encT_, b_enc_, W_dec_, b_dec_;
  at::Tensor m_[4], v_[4];      // Adam moments in the order W_encT, b_enc, W_dec, b_dec
  at::Tensor since_fired_;      // [d_sae] int64: tokens since each latent last fired
};

// Synthetic superposition data: `n_features` unit directions in d_in dimensions; each sample
// activates each feature independently with probability mean_active / n_features, with a
// magnitude uniform in [0, 1].
class SyntheticFeatures {
 public:
  SyntheticFeatures(std::int64_t d_in, std::int64_t n_features, double mean_active, std::uint64_t seed);
  at::Tensor sample(std::int64_t n);                 // [n, d_in]
  const at::Tensor& features() const { return F_; }  // [n_features, d_in], unit rows

 private:
  at::Tensor F_;
  double p_;
  at::Generator gen_;
};

struct GroundTruthReport {
  double mmcs_learned_to_true = 0;  // mean over decoder rows of the max cosine with a true feature
  double mmcs_true_to_learned = 0;  // mean over true features of the max cosine with a decoder row
  double recovered_fraction = 0;    // true features whose best cosine exceeds 0.9
};

GroundTruthReport compareWithTruth(const at::Tensor& W_dec, const at::Tensor& true_features);

}  // namespace monoscope::core
