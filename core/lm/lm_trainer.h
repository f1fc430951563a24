#pragma once
// Language-model training (GPT-2 architecture): AdamW, linear warm-up then cosine decay,
// gradient clipping, periodic validation loss, checkpoints that resume exactly.
// Internal (LibTorch).
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>

#include "api/progress.h"
#include "lm/model_config.h"

namespace monoscope::core {

struct LmTrainConfig {
  ModelConfig model;                 // architecture (GPT-2) and sizes
  std::int64_t batch_size = 16;      // sequences per step and rank
  std::int64_t seq_len = 256;        // tokens per sequence (<= model.n_ctx)
  std::int64_t total_steps = 1000;
  std::int64_t warmup_steps = 100;
  double lr = 1e-3;                  // peak learning rate
  double min_lr_ratio = 0.1;         // cosine floor as a share of the peak
  double weight_decay = 0.1;         // AdamW, on matrices only
  double beta1 = 0.9, beta2 = 0.95;
  double grad_clip = 1.0;
  std::int64_t eval_every = 200;     // steps between validation passes (and checkpoints)
  std::int64_t eval_batches = 16;
  double max_minutes = 0;            // stop (with a checkpoint) after this wall time; 0 = none
  std::uint64_t seed = 0;

  void validate() const;
  double learningRate(std::int64_t step) const;
};

struct LmTrainProgress {
  std::int64_t step = 0, total_steps = 0;
  double train_loss = 0;
  double valid_loss = -1;  // -1 when not evaluated at this step
  double tokens_per_second = 0;
  std::int64_t tokens_seen = 0;
  bool cancelled = false;  // stopped by the progress callback (a checkpoint was written)
};

// Token shard written by the corpus builder: `tokens` I32 [n].
class TokenShard {
 public:
  explicit TokenShard(const std::string& path);
  std::int64_t size() const { return tokens_.size(0); }
  // [batch, seq_len + 1] windows starting at random offsets drawn from `gen`.
  at::Tensor sample(std::int64_t batch, std::int64_t seq_len, at::Generator& gen) const;
  const at::Tensor& tokens() const { return tokens_; }

 private:
  at::Tensor tokens_;  // int64
};

class ProcessGroup;

// Trains (or resumes) into `out`: `out`/model (Hugging Face GPT-2 folder, refreshed at each
// checkpoint) and `out`/train_state.safetensors. Reports {"train", step, total_steps, detail}
// (detail: "loss L [valid V] T tok/s"); returning false stops with a checkpoint.
// With a process group of N ranks, each step's N * batch_size windows are split among them in
// rank order and gradients averaged (the same run as one process with batch N * batch_size);
// rank 0 evaluates and writes checkpoints, and any rank stopping stops all at the same step.
LmTrainProgress trainLm(const LmTrainConfig& config, const std::string& train_shard, const std::string& valid_shard,
                        const std::string& out, const ProgressFn& progress = {}, ProcessGroup* pg = nullptr);

// Mean next-token loss of a model folder over `batches` fixed windows of a shard.
double evaluateLoss(const std::string& model_dir, const std::string& shard, std::int64_t batches,
                    std::int64_t batch_size, std::int64_t seq_len);

}  // namespace monoscope::core
