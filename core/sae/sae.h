#pragma once
// A sparse autoencoder in the SAELens layout (cfg.json + sae_weights.safetensors).
// Internal (LibTorch): include only from .cpp files.
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "lm/packed_product.h"
#include "sae/sae_config.h"
#include "sae/screened_encoder.h"

namespace monoscope::core {

// Per-row state of the run-time input normalisation, needed to map outputs back.
struct SaeNorm {
  at::Tensor scale;  // output = normalised_output * scale + shift ([..., 1]); undefined = identity
  at::Tensor shift;
};

struct ReconstructionMetrics {
  double l0 = 0;                   // mean active features per token
  double fraction_variance_explained = 0;  // 1 - sum||x - x_hat||^2 / sum||x - mean(x)||^2
  double mse = 0;                  // mean squared error per element
};

// The rows of x [n, d] whose norm is at most `factor` times the median row norm (indices, on
// x's device). A few rows of a residual stream (attention sinks) have norms tens of times the
// median and hold much of its variance; measures over the others say how ordinary rows fare. With
// a median of zero (or not finite) every row is ordinary.
at::Tensor ordinaryRows(const at::Tensor& x, double factor);
// The complement as a mask: true for the rows of x [n, d] whose norm exceeds `factor` times the
// median row norm, or is not finite (a bool tensor [n] on the CPU).
at::Tensor massiveRowMask(const at::Tensor& x, double factor);
// Row norms of x [n, ...] in float32, on the CPU (without a float32 copy of x).
at::Tensor rowNorms(const at::Tensor& x);
// Secondary attention sinks of windows, the one rule of the index, contrastive search and the
// inspector: norms [windows, positions] (rowNorms of their rows) -> bool of the same shape, true
// where a row's norm is over `factor` times the median norm of the rows after each window's
// first position (that position, a sink of its own, is never marked here), or is not finite.
// With fewer than kSinkMedianRows rows after the first positions the median is `reference`
// instead (a typical norm measured elsewhere; 0: nothing is marked).
constexpr std::int64_t kSinkMedianRows = 8;
at::Tensor windowSinkMask(const at::Tensor& norms, double factor, double reference = 0);

// TopK's choice with groups (SaeConfig::topkGroups; the trainer's Matryoshka shares and caps):
// each group's own top g.k of ranked [..., d_sae] side by side, then the k largest of those (all
// of them when they number k or fewer). Values (before the ReLU) and features, [..., min(k, sum)].
std::pair<at::Tensor, at::Tensor> groupedTopk(const at::Tensor& ranked, const std::vector<SaeConfig::TopkGroup>& groups,
                                              std::int64_t k);

class Sae {
 public:
  // Loads `dir`/cfg.json and `dir`/sae_weights.safetensors onto `device`, validating shapes.
  static std::unique_ptr<Sae> load(const std::string& dir, const c10::Device& device);
  // Builds from tensors (W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_out], b_dec [d_out],
  // threshold [d_sae] for jumprelu, else undefined; W_skip [d_out, d_in] for a skip transcoder;
  // d_out is d_in for an SAE).
  // `mapped`: W_enc and W_dec read a mapped file (see mapped()); so is any not in float32.
  Sae(SaeConfig config, at::Tensor W_enc, at::Tensor b_enc, at::Tensor W_dec, at::Tensor b_dec,
      at::Tensor threshold = {}, at::Tensor W_skip = {}, bool mapped = false);

  // Writes cfg.json (SAELens v6) and sae_weights.safetensors.
  void save(const std::string& dir, bool half = false) const;  // half: F16 weights

  // x [..., d_in] -> normalised input; fills `norm` for mapping outputs back.
  at::Tensor normalizeInput(const at::Tensor& x, SaeNorm* norm) const;
  // Pre-activations [..., d_sae] of a normalised input.
  at::Tensor preActivations(const at::Tensor& x_normalised) const;
  // Feature activations [..., d_sae] from pre-activations.
  at::Tensor activate(const at::Tensor& pre) const;
  // f(x): [..., d_in] -> [..., d_sae]
  at::Tensor encode(const at::Tensor& x, SaeNorm* norm = nullptr) const;
  // The positive activations of each row of x [n, d_in], appended to `out`, with encode()'s
  // values, without a dense [n, d_sae] copy on the CPU: the screened encoder (screened_encoder.h;
  // ReLU and JumpReLU on a CPU with AMX), a TopK SAE's k best per row on any device (only they
  // are copied back), or any SAE on an accelerator (its positive entries found there). False,
  // with `out` untouched, elsewhere (a mapped dictionary; ReLU or JumpReLU on a CPU without AMX).
  bool encodeSparse(const at::Tensor& x, SparseRows* out) const;
  // x_hat: [..., d_sae] -> [..., d_out], undoing the input normalisation when `norm` is given.
  at::Tensor decode(const at::Tensor& f, const SaeNorm* norm = nullptr) const;
  // A transcoder's output for its input x [..., d_in]: decode(encode(x)) plus x W_skip^T for a
  // skip transcoder ([..., d_out]).
  at::Tensor transcode(const at::Tensor& x) const;
  // Metrics over activations x [n, d_in] (an SAE's: a transcoder's output is another hook's, so
  // it is refused here). `added` [n, d_in], when given, is added to the reconstruction (a token
  // table's rows, for an SAE trained on what the table leaves); with `encode_less_added` the
  // encoder reads x - added too (an SAE whose table sits on both sides).
  ReconstructionMetrics metrics(const at::Tensor& x, const at::Tensor& added = {}, bool encode_less_added = false) const;

  // Dictionaries too wide to copy into float32 (more than mapBudgetBytes() for W_enc and W_dec)
  // keep both in the mapped file, in their stored precision, and run every product a block of
  // features at a time; encode() and decode() then build their dense [n, d_sae] only where it
  // fits in memory, and the methods below never build it.
  bool mapped() const { return mapped_; }
  static double mapBudgetBytes();  // min(4 GiB, a quarter of RAM); MONOSCOPE_SAE_MAP_ABOVE overrides
  // Activations of x [n, d_in], a block of features at a time: fn(begin, acts [n, end - begin]),
  // blocks in order, each equal to encode()'s columns (a TopK SAE chooses its k over every block
  // first).
  void forEachFeatureBlock(const at::Tensor& x, const std::function<void(std::int64_t, const at::Tensor&)>& fn) const;
  // Per row of x [n, d_in], its k largest activations, strongest first: values [n, k] (zero
  // where fewer are positive), indices [n, k] (int64).
  std::pair<at::Tensor, at::Tensor> encodeTop(const at::Tensor& x, std::int64_t k) const;
  // Max over the rows of x [n, d_in] of every feature's activation: [d_sae].
  at::Tensor maxOverRows(const at::Tensor& x) const;
  // The activations of features `idx` (int64 [m]) for x [n, d_in]: [n, m]; fills `norm` as encode().
  at::Tensor encodeColumns(const at::Tensor& x, const at::Tensor& idx, SaeNorm* norm = nullptr) const;
  // Sum over rows of f(x) * (grad writeBlock^T): each feature's first-order effect along grad [n, d_out].
  at::Tensor attributionScores(const at::Tensor& x, const at::Tensor& grad) const;
  // Decoder rows as float32: idx int64 [m] -> [m, d_out]; a range [begin, end) -> [end - begin, d_out].
  at::Tensor decoderRows(const at::Tensor& idx) const;
  at::Tensor decoderBlock(std::int64_t begin, std::int64_t end) const;
  // What one unit of each feature's activation adds to the output: the decoder rows, divided by
  // their norms for a TopK SAE with rescale_acts_by_decoder_norm (whose activations are scaled
  // by those norms). Steering, attribution and logit effects use these.
  at::Tensor writeRows(const at::Tensor& idx) const;
  at::Tensor writeBlock(std::int64_t begin, std::int64_t end) const;
  at::Tensor encoderBlock(std::int64_t begin, std::int64_t end) const;  // W_enc[:, begin:end] as float32

  // An SAE trained with a token table on both sides (SaeTrainingOptions::token_table_side, the
  // folder's token_table.safetensors) reads each activation less its token's table row: callers
  // that encode pass the rows' token ids through lessTokenRows() first (x [..., d_in], ids the
  // matching int64 [...]); for any other SAE it returns x as it is.
  void setInputTokenTable(at::Tensor table) { input_table_ = std::move(table); }
  bool readsTokenTable() const { return input_table_.defined(); }
  at::Tensor lessTokenRows(const at::Tensor& x, const at::Tensor& ids) const;
  // The table rows of `ids` [...] as [..., d_in] float on the SAE's device (needs readsTokenTable()).
  at::Tensor tokenRows(const at::Tensor& ids) const;

  const SaeConfig& config() const { return config_; }
  const at::Tensor& W_enc() const { return W_enc_; }
  const at::Tensor& b_enc() const { return b_enc_; }
  const at::Tensor& W_dec() const { return W_dec_; }
  const at::Tensor& b_dec() const { return b_dec_; }
  const at::Tensor& threshold() const { return threshold_; }
  const at::Tensor& W_skip() const { return W_skip_; }
  c10::Device device() const { return W_enc_.device(); }

 private:
  // The encoder's input: x (normalised) less b_dec when the config says so.
  at::Tensor encoderInput(const at::Tensor& xn) const;

  // encodeSparse for rows of the encoder's input: a TopK SAE's k best, or the positive entries of
  // a dense encoding (on an accelerator).
  SparseRows topkRows(const at::Tensor& xin) const;
  SparseRows positiveRows(const at::Tensor& xin) const;

  // The screened encoder for an input, made on first use (and again if the weights change);
  // null where it does not apply.
  std::shared_ptr<const ScreenedEncoder> screened(const at::Tensor& x) const;

  // Features per block for n rows (mapped dictionaries; MONOSCOPE_SAE_BLOCK_FEATURES overrides).
  std::int64_t featureBlock(std::int64_t rows) const;
  // Blocks of a mapped dictionary for the encoder's input xin [n, d_in] (normalised, b_dec applied).
  void blocksOf(const at::Tensor& xin, const std::function<void(std::int64_t, const at::Tensor&)>& fn) const;
  at::Tensor encodeMapped(const at::Tensor& xin) const;  // dense [n, d_sae] (memory checked)
  // A mapped TopK SAE's codes of xin: each row's k activations (relu, thresholds applied) and
  // their features, [n, k] each, from one pass over the encoder.
  std::pair<at::Tensor, at::Tensor> topkCodes(const at::Tensor& xin) const;
  // TopK's choice from ranked pre-activations [..., d_sae]: each group's own top (config
  // topkGroups), then the k largest of them; values (before the ReLU) and features, [..., k].
  std::pair<at::Tensor, at::Tensor> groupedTop(const at::Tensor& ranked) const;
  // Of (values, indices) [..., m], the k largest values and their indices (all of them when m <= k).
  static std::pair<at::Tensor, at::Tensor> keepLargest(const at::Tensor& values, const at::Tensor& indices, std::int64_t k);
  friend std::pair<at::Tensor, at::Tensor> groupedTopk(const at::Tensor&, const std::vector<SaeConfig::TopkGroup>&, std::int64_t);
  at::Tensor decodeMapped(const at::Tensor& f) const;

  SaeConfig config_;
  bool mapped_ = false;
  at::Tensor W_enc_, b_enc_, W_dec_, b_dec_, threshold_, W_skip_;
  at::Tensor input_table_;  // dense [vocab, d_in] float, or undefined (setInputTokenTable)
  PackedProduct encoder_, decoder_;
  struct ScreenCache;
  std::shared_ptr<ScreenCache> screen_;
};

}  // namespace monoscope::core
