#pragma once
// Training an SAE (public API): from a model's activations at a hook, streamed over a token
// corpus, or from a file of stored activations. Resumable from the checkpoint in `out`.
#include <cstdint>
#include <string>
#include <vector>

#include "api/progress.h"

namespace monoscope::core {

struct SaeTrainingOptions {
  std::string activations;              // safetensors file with `activations` [n, d_in] or a harvest
                                        // folder (with model_dir: that model evaluates the splice), or
  std::string model_dir, hook, corpus;  // a model, the hook to read, and a token shard / corpus folder
  std::int64_t context = 0;             // tokens per model window (0: min(128, n_ctx)); recorded in cfg.json
  std::int64_t buffer_tokens = 1 << 18; // mixing buffer for streamed activations
  bool skip_first = true;               // each window's first position (an attention sink in most
                                        // trained LMs) and, with a model, its end-of-text tokens
                                        // (massive activations too) are left out of training and
                                        // of the splice, as the index leaves them out
  bool skip_end_of_text = true;         // false: the end-of-text tokens stay (the first position
                                        // is still left out with skip_first)
  bool skip_sinks = true;               // with skip_first, rows over kMassiveRowFactor x the median
                                        // norm (secondary sinks) are left out too; false: they stay
  std::string architecture = "standard";  // standard | topk
  double l1_coefficient = 5.0;          // standard
  std::int64_t k = 32;                  // topk
  std::int64_t d_sae = 0;
  std::int64_t tokens = 0;              // training length
  std::int64_t batch_size = 0;          // 0: chosen for `tokens` (at least ~2,000 steps, 256..4096)
  double lr = 4e-4;
  std::int64_t dead_window = 0;         // 0: min(10M, tokens / 3) tokens
  std::int64_t resample_every = 0;      // topk: tokens between re-aimings of dead latents (0: never)
  std::string encoder_precision = "f32";  // f32 | bf16: the encoder's product (SaeTrainConfig)
  std::vector<std::int64_t> matryoshka;  // topk: nested prefixes of the dictionary (SaeTrainConfig)
  std::vector<std::int64_t> matryoshka_k;  // topk: each prefix group's share of k (SaeTrainConfig)
  // A token table (safetensors: `token_ids` I32 [n], `token_means` [n, d_in]; e.g. each frequent
  // token's mean activation, `monoscope-cli token-means`): the decoder learns each row less its
  // token's table row (zero for a token not in it), so the table carries what a token is and
  // the latents what its context adds. Needs a harvest (its rows' token ids); the table is copied
  // into `out` beside the SAE.
  std::string token_table;
  // With a token table: "decoder" (the encoder reads the whole row) or "both" (the encoder reads
  // the row less its token's table row too, so latents see only what the context adds; the
  // index, inspector and steering then subtract the table before encoding).
  std::string token_table_side = "decoder";
  std::uint64_t seed = 0;
  std::string out;                      // folder: checkpoint, then cfg.json + sae_weights.safetensors
  std::string device = "auto";
  int threads = 0;
  std::int64_t checkpoint_every = 500;  // steps between checkpoints
  // Data parallelism (as torchrun starts processes): batch_size rows per rank, gradients averaged
  // over the ranks, rank 0 writes checkpoints and the result. world_size 1: one process.
  int rank = 0, world_size = 1;
  std::string master_addr = "127.0.0.1";  // where rank 0 hosts the rendezvous store
  int master_port = 29500;
  int dist_timeout_s = 300;             // a rank silent this long stops the others with an error

  void validate() const;  // throws Error naming the field
};

struct SaeTrainingResult {
  std::int64_t steps = 0, tokens = 0, batch_size = 0, dead_window = 0;
  int rank = 0, world_size = 1;         // a rank other than 0 trains but writes nothing
  bool batch_size_chosen = false;       // batch_size was picked for the run length
  bool resumed = false;
  double fraction_variance_explained = 0, l0 = 0, dead_fraction = 0;
  bool has_splice = false;              // the CE-loss fields are set (training from a model)
  double clean_loss = 0, spliced_loss = 0, zero_ablation_loss = 0, ce_loss_recovered = 0;
};

// The batch size used when none is given: the largest power of two giving ~2,000 steps.
std::int64_t defaultSaeBatchSize(std::int64_t tokens);

JobStatus trainSae(const SaeTrainingOptions& options, const ProgressFn& progress, SaeTrainingResult* result);

// Measuring an SAE on held-out text: variance explained and L0 over `rows` activations of
// random windows of the corpus's validation shard (the training shard where there is none), and
// the next-token loss with the SAE's reconstruction spliced in at its hook against the clean and
// zero-ablated model. The first position and end-of-text tokens are treated as in training.
struct SaeEvaluationOptions {
  std::string model_dir, sae, corpus;
  std::int64_t context = 0;             // 0: the SAE's context_size, else min(128, n_ctx)
  bool skip_first = true, skip_end_of_text = true;
  std::int64_t rows = 16384;            // activations for variance explained and L0
  std::int64_t splice_batches = 16, splice_batch_size = 8;
  std::uint64_t seed = 1;               // the windows drawn (train-sae's held-out rows for its seed)
  std::string device = "auto";
  int threads = 0;
  void validate() const;
};

// Rows whose norm exceeds this many times the median are "massive" (attention sinks).
constexpr double kMassiveRowFactor = 10.0;

struct SaeEvaluationResult {
  double fraction_variance_explained = 0, l0 = 0;
  // The same measure over the rows whose norm is at most kMassiveRowFactor times the median, and
  // how many rows were above it.
  double fraction_variance_explained_ordinary = 0;
  std::int64_t massive_rows = 0;
  double clean_loss = 0, spliced_loss = 0, zero_ablation_loss = 0, ce_loss_recovered = 0;
  std::int64_t rows = 0, context = 0;
};

JobStatus evaluateSae(const SaeEvaluationOptions& options, const ProgressFn& progress, SaeEvaluationResult* result);

// Per-feature thresholds for a TopK SAE: a feature's activation is kept only above `fraction`
// of its largest activation over `rows` rows of a harvest (or activation file), so the weakest
// activations, which TopK keeps to fill its k slots, are cut. The SAE is written to `out` with
// the thresholds (tensor `threshold`, applied after the top k) and the report in thresholds.json.
struct SaeThresholdOptions {
  std::string sae, activations, out;
  double fraction = 0.2;                // of each feature's calibration maximum, in [0, 1)
  std::int64_t rows = 262144;
  std::uint64_t seed = 0;
  bool half = false;                    // F16 weights
  // The decoder refitted to the thresholded codes by ridge regression towards the trained one:
  // W_dec = argmin ||X - b_dec - F W||^2 + refit_lambda ||W - W_dec||^2 over the calibration
  // rows but the last tenth (held out for the report); the codes, and so every feature's
  // activations, do not change. Negative: no refit. With a token table in the SAE's folder, X is
  // each row less its token's row, and the table is written beside the result.
  double refit_lambda = 10.0;
  std::string device = "auto";
  int threads = 0;
  void validate() const;
};

struct SaeThresholdResult {
  std::int64_t rows = 0, features = 0, never_active = 0;  // never_active keep threshold 0
  double l0_before = 0, l0_after = 0;   // over the calibration rows
  bool refitted = false;
  std::int64_t refit_features = 0;     // the features that fire on the fitted rows: the system's size
  // On the held-out tenth: without thresholds, with them, and with them and the refitted decoder.
  double fve_plain = 0, fve_thresholded = 0, fve_refitted = 0;
};

JobStatus calibrateSaeThresholds(const SaeThresholdOptions& options, const ProgressFn& progress, SaeThresholdResult* result);

}  // namespace monoscope::core
