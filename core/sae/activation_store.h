#pragma once
// Activations for SAE training: streamed from a model at a hook through a shuffled mixing
// buffer (nothing cached on disk), or read from a safetensors file. Internal (LibTorch).
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

#include "lm/lm_trainer.h"
#include "lm/transformer.h"

namespace monoscope::core {

class SafetensorsFile;
// The token ids stored beside the `rows` activations of `f` (tensor `tokens`, I32 [rows], which
// harvest writes), as an int32 tensor over `f`'s mapping (valid while `f` lives). Throws Error
// naming the file when the tensor is missing (`needed_for`: what the ids are needed for; `fix`:
// what to do) or is not I32 [rows].
at::Tensor storedTokenIds(const SafetensorsFile& f, std::int64_t rows, const std::string& needed_for, const std::string& fix);

class ActivationSource {
 public:
  virtual ~ActivationSource() = default;
  virtual at::Tensor next(std::int64_t n) = 0;  // [n, d_in] float32
  virtual std::int64_t width() const = 0;
};

// Rows of tensor `activations` [n, d_in] (one file, or a harvest folder's chunks) in a seeded
// random order, epoch after epoch. Rows can be left out as the index leaves them out: those whose
// stored token id (tensor `tokens`, which harvest writes) is `boundary_token` (-1: none), and with
// `massive_factor` > 0 those whose norm is over that many times the median of their file or chunk
// (secondary attention sinks, kMassiveRowFactor; 0: none). leftOutBoundary() and leftOutMassive()
// count them. With `keep_tokens` the stored token ids are kept beside the rows (every file must
// have them), and lastTokens() gives those of the rows the last next() served.
class FileActivationSource : public ActivationSource {
 public:
  FileActivationSource(const std::string& path, std::uint64_t seed, std::int32_t boundary_token = -1,
                       double massive_factor = 0, bool keep_tokens = false);
  at::Tensor next(std::int64_t n) override;
  std::int64_t width() const override { return acts_.size(1); }
  std::int64_t rows() const { return acts_.size(0); }
  std::int64_t leftOutBoundary() const { return left_out_boundary_; }
  std::int64_t leftOutMassive() const { return left_out_massive_; }
  // int64 [n]: the token ids of the rows of the last next() (keep_tokens only).
  const at::Tensor& lastTokens() const { return last_tokens_; }
  // The largest stored token id (keep_tokens only).
  std::int64_t maxToken() const;
  // Positions the stream as if `consumed` rows had been read (for exact resumption).
  void skip(std::int64_t consumed);
  // Moves `n` rows further along the stream without reading them.
  void advance(std::int64_t n);

 private:
  at::Tensor acts_, perm_;
  at::Tensor tokens_, last_tokens_;  // keep_tokens: int32 [rows] and int64 [n]
  std::uint64_t seed_;
  std::int64_t left_out_boundary_ = 0, left_out_massive_ = 0;
  std::int64_t epoch_ = -1, pos_ = 0;
  void reshuffle();
};

// Runs the model on random windows of a token shard, captures the hook, and serves rows from a
// mixing buffer: each refill appends fresh activations, shuffles, and hands out half.
// Activations [batch, context, d_model] at `hook` of the given windows (int64 [batch, context]),
// running the model only as far as the hook's block.
at::Tensor hookActivations(const Transformer& model, const std::string& hook, const at::Tensor& windows);

class ModelActivationSource : public ActivationSource {
 public:
  ModelActivationSource(std::shared_ptr<const Transformer> model, std::string hook, std::shared_ptr<const TokenShard> shard,
                        std::int64_t context, std::int64_t buffer_tokens, std::uint64_t seed, bool skip_first = true,
                        std::int32_t boundary_token = -1, double sink_factor = 0);
  at::Tensor next(std::int64_t n) override;
  // int64 [n]: the token ids of the rows of the last next().
  const at::Tensor& lastTokens() const { return last_tokens_; }
  std::int64_t width() const override { return hookWidth(hook_, model_->config()); }
  // Activations [batch, context, d_model] of the given windows (int64 [batch, context]).
  at::Tensor activations(const at::Tensor& windows) const;

 private:
  void refill();
  std::shared_ptr<const Transformer> model_;
  std::string hook_;
  std::int64_t layer_;
  std::shared_ptr<const TokenShard> shard_;
  std::int64_t context_, buffer_tokens_;
  bool skip_first_;  // leave out each window's first position
  std::int32_t boundary_;  // and the rows of this token (a document boundary), -1: none
  double sink_factor_;     // and with skip_first, secondary sinks by windowSinkMask with this factor (0: none)
  at::Generator gen_;
  at::Tensor buffer_;  // [rows, d_model]
  at::Tensor buffer_ids_, last_tokens_;  // int64: the buffer's rows' token ids; those of the last next()
};

struct SpliceEvaluation {
  double clean_loss = 0;    // next-token loss of the unmodified model
  double sae_loss = 0;      // with the SAE's reconstruction spliced in at its hook
  double zero_loss = 0;     // with the hook's activation zero-ablated
  double ce_loss_recovered = 0;  // (zero - sae) / (zero - clean), as SAELens defines it
};

class Sae;
// Positions before `first` keep the model's own activations in the spliced and ablated runs
// (1: the first position, an attention sink the SAE was not trained on) and are not scored;
// positions holding `boundary_token` (a document boundary) keep theirs too.
// With `token_table` (dense [vocab, d_in], sae/token_table.h) the reconstruction spliced in is the
// SAE's plus each position's token row.
SpliceEvaluation evaluateSplice(const Transformer& model, const Sae& sae, const TokenShard& shard,
                                std::int64_t batches, std::int64_t batch_size, std::int64_t context,
                                std::int64_t first = 0, std::int32_t boundary_token = -1,
                                const at::Tensor& token_table = {});

}  // namespace monoscope::core
