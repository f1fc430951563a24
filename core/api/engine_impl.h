#pragma once
// Internal (LibTorch): what an Engine holds, for core's own jobs. Include only from .cpp files.
#include <functional>
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/engine.h"
#include "lm/transformer.h"
#include "sae/sae.h"
#include "text/tokenizer.h"

namespace monoscope::core {

struct Engine::Impl {
  std::unique_ptr<Transformer> model;
  std::shared_ptr<Sae> sae;  // null when opened without an SAE
  Tokenizer tokenizer;
  EngineInfo info;
  std::int64_t layer = 0;    // block whose hooks include the SAE's hook (-1: embeddings)
  std::size_t max_token_bytes = 1;  // the longest token's bytes: a text of more than n_ctx times
                                    // this cannot fit the context, whatever its tokens

  // Activations [n, d_model] at the SAE's hook for `ids`, run in windows of info.window tokens
  // (windows of equal length are batched, `batch` at a time).
  at::Tensor hookActivations(const std::vector<std::int32_t>& ids, std::int64_t batch = 8) const;
  // Same for a batch of equal-length windows: ids [batch, pos] int64 -> [batch, pos, d_model].
  at::Tensor hookActivationsBatch(const at::Tensor& ids) const;
  // Feature activations [n, d_sae] for `ids`.
  at::Tensor featureActs(const std::vector<std::int32_t>& ids) const;
  // Window by window: fn(first token, activations h [w, d_model] at the SAE's hook, the SAE's
  // input for them), for the SAE's own products (a dictionary too wide for [w, d_sae] works a
  // block of features at a time). The input is h, less each token's table row for an SAE that
  // reads its token table (Sae::lessTokenRows).
  void forEachWindow(const std::vector<std::int32_t>& ids,
                     const std::function<void(std::size_t, const at::Tensor&, const at::Tensor&)>& fn) const;
  // The SAE's input for activations h [n, d_model] of tokens `ids` (Sae::lessTokenRows).
  at::Tensor saeInput(const at::Tensor& h, const std::vector<std::int32_t>& ids) const;
  // The rows of one window's activations h [w, d_model] that are attention sinks: its first
  // position and rows windowSinkMask marks (bool [w], CPU); a window too short for a median of
  // its own is measured against referenceNorm().
  at::Tensor sinkRows(const at::Tensor& h) const;
  // The median residual norm at the SAE's hook over a fixed neutral text (first position left
  // out), measured once per hook.
  double referenceNorm() const;
  mutable std::mutex reference_mu;
  mutable std::map<std::string, double> reference_norms;  // hook -> referenceNorm()
  // [d_sae] max over the tokens, each window's sink rows left out (unless nothing else is left)
  at::Tensor maxActs(const std::vector<std::int32_t>& ids) const;
  std::vector<std::int32_t> tokenIds(std::string_view text, const char* what) const;
  // Loads the dictionary in `sae_dir` (empty: none), checks it fits the model, and makes it the
  // open one with its hook, width and window in `info`; throws, changing nothing, otherwise.
  void attachDictionary(const std::string& sae_dir);
  // The last info.window ids (what the SAE sees for the last token).
  std::vector<std::int32_t> lastWindow(std::vector<std::int32_t> ids) const;
  const Sae& requireSae() const;
  // Logit effects of features [begin, end): W_dec[i] (times the final norm's scale) @ W_U, the
  // k strongest up and down and a histogram over the vocabulary with `bins` bins.
  std::vector<LogitEffects> logitEffectsRange(std::int64_t begin, std::int64_t end, std::size_t k, int bins) const;
};

// The SAE reads a hook this model has, with the model's width; returns the hook's block.
std::int64_t checkSaeFitsModel(const Sae& sae, const Transformer& model, const std::string& sae_dir);

}  // namespace monoscope::core
