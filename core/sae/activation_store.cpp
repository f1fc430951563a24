#include "sae/activation_store.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <filesystem>

#include "io/safetensors.h"
#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "lm/hooks.h"
#include "sae/harvest.h"
#include "sae/sae.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace monoscope::core {

at::Tensor storedTokenIds(const SafetensorsFile& f, std::int64_t rows, const std::string& needed_for, const std::string& fix) {
  if (!f.has("tokens"))
    throw Error("'" + f.path() + "' has no tensor 'tokens' (the token id of each row), so " + needed_for, fix);
  const auto& tv = f.tensor("tokens");
  if (tv.dtype != DType::I32 || tv.shape.size() != 1 || tv.shape[0] != rows)
    throw Error("tensor 'tokens' in '" + f.path() + "' must be I32 [" + std::to_string(rows) + "], one id a row, got " +
                dtypeName(tv.dtype) + " " + shapeString(tv.shape));
  return at::from_blob(const_cast<std::uint8_t*>(tv.data), {rows}, at::kInt);
}

FileActivationSource::FileActivationSource(const std::string& path, std::uint64_t seed, std::int32_t boundary_token,
                                           double massive_factor, bool keep_tokens)
    : seed_(seed) {
  const std::vector<std::string> files = activationFiles(path);  // a harvest folder's chunks, or one file
  // Rows are kept as stored when that is F16 (half the memory of float; batches are converted as
  // they are served), else as float; every file is copied once into one tensor.
  std::int64_t rows = 0, width = 0;
  bool all_half = true;
  for (const auto& file : files) {
    SafetensorsFile f(file);
    const auto& view = f.tensor("activations");
    if (view.shape.size() != 2 || view.shape[0] <= 0 || view.shape[1] <= 0) {
      throw Error("tensor 'activations' in '" + file + "' must be [n, d_in], got " + shapeString(view.shape));
    }
    if (width != 0 && view.shape[1] != width)
      throw Error("'" + file + "' holds activations of width " + std::to_string(view.shape[1]) + ", not " + std::to_string(width));
    width = view.shape[1];
    rows += view.shape[0];
    all_half = all_half && view.dtype == DType::F16;
  }
  acts_ = at::empty({rows, width}, all_half ? at::kHalf : at::kFloat);  // [rows, d_in]
  if (keep_tokens) tokens_ = at::empty({rows}, at::kInt);
  std::int64_t at_row = 0;
  for (const auto& file : files) {
    SafetensorsFile f(file);
    const auto& view = f.tensor("activations");
    at::Tensor part = all_half ? at::from_blob(const_cast<std::uint8_t*>(view.data), view.shape, at::kHalf)
                               : toFloatTensor(view, file);
    if (!at::isfinite(part).all().item<bool>()) throw Error("'" + file + "' holds NaN or infinite activations");
    at::Tensor tokens;  // int32 [rows], when the rows' token ids are needed
    if (boundary_token >= 0 || keep_tokens) {
      tokens = keep_tokens ? storedTokenIds(f, view.shape[0], "a token table cannot be subtracted", "harvest it again (harvest writes the ids)")
                           : storedTokenIds(f, view.shape[0], "its end-of-text rows cannot be left out",
                                            "harvest it again, or keep those rows (--skip-end-of-text false)");
      if (keep_tokens && tokens.lt(0).any().item<bool>()) throw Error("tensor 'tokens' in '" + file + "' holds a negative token id");
    }
    if (boundary_token >= 0 || massive_factor > 0) {
      at::Tensor keep = at::ones({view.shape[0]}, at::kBool);  // [rows]
      if (boundary_token >= 0) {
        const at::Tensor boundary = tokens.eq(boundary_token);
        left_out_boundary_ += boundary.sum().item<std::int64_t>();
        keep &= boundary.logical_not();
      }
      if (massive_factor > 0) {
        const at::Tensor massive = massiveRowMask(part, massive_factor).logical_and(keep);
        left_out_massive_ += massive.sum().item<std::int64_t>();
        keep &= massive.logical_not();
      }
      const at::Tensor kept = keep.nonzero().squeeze(1);
      part = part.index_select(0, kept);
      if (keep_tokens) tokens = tokens.index_select(0, kept);
    }
    acts_.narrow(0, at_row, part.size(0)).copy_(part);
    if (keep_tokens) tokens_.narrow(0, at_row, part.size(0)).copy_(tokens);
    at_row += part.size(0);
  }
  if (at_row == 0) throw Error("'" + path + "' holds no rows once end-of-text and massive rows are left out");
  if (at_row < rows) {
    acts_ = acts_.narrow(0, 0, at_row);
    if (keep_tokens) tokens_ = tokens_.narrow(0, 0, at_row);
  }
}

std::int64_t FileActivationSource::maxToken() const {
  if (!tokens_.defined()) throw Error("FileActivationSource::maxToken: token ids were not kept");
  return tokens_.max().item<std::int64_t>();
}

void FileActivationSource::reshuffle() {
  ++epoch_;
  auto gen = at::detail::createCPUGenerator(seed_ * 1000003u + static_cast<std::uint64_t>(epoch_));
  perm_ = at::randperm(acts_.size(0), gen);
  pos_ = 0;
}

void FileActivationSource::skip(std::int64_t consumed) {
  const std::int64_t n = acts_.size(0);
  epoch_ = consumed / n - 1;
  reshuffle();
  pos_ = consumed % n;
}

void FileActivationSource::advance(std::int64_t n) {
  while (n > 0) {
    if (epoch_ < 0 || pos_ >= acts_.size(0)) reshuffle();
    const std::int64_t take = std::min(n, acts_.size(0) - pos_);
    pos_ += take;
    n -= take;
  }
}

at::Tensor FileActivationSource::next(std::int64_t n) {
  std::vector<at::Tensor> parts, ids;
  while (n > 0) {
    if (epoch_ < 0 || pos_ >= acts_.size(0)) reshuffle();
    const std::int64_t take = std::min(n, acts_.size(0) - pos_);
    const at::Tensor rows = perm_.narrow(0, pos_, take);
    parts.push_back(acts_.index_select(0, rows).to(at::kFloat));
    if (tokens_.defined()) ids.push_back(tokens_.index_select(0, rows).to(at::kLong));
    pos_ += take;
    n -= take;
  }
  if (tokens_.defined()) last_tokens_ = ids.size() == 1 ? ids[0] : at::cat(ids, 0);
  return parts.size() == 1 ? parts[0] : at::cat(parts, 0);
}

ModelActivationSource::ModelActivationSource(std::shared_ptr<const Transformer> model, std::string hook,
                                             std::shared_ptr<const TokenShard> shard, std::int64_t context,
                                             std::int64_t buffer_tokens, std::uint64_t seed, bool skip_first,
                                             std::int32_t boundary_token, double sink_factor)
    : model_(std::move(model)),
      hook_(std::move(hook)),
      layer_(hookLayer(hook_, model_->config().n_layers)),
      shard_(std::move(shard)),
      context_(context),
      buffer_tokens_(buffer_tokens),
      skip_first_(skip_first && context > 1),
      boundary_(boundary_token),
      sink_factor_(sink_factor),
      gen_(at::detail::createCPUGenerator(seed)) {
  if (context_ < 1 || context_ > model_->config().n_ctx) throw Error("activation context must be in 1..n_ctx");
  if (buffer_tokens_ < context_) throw Error("the mixing buffer must hold at least one context");
  if (sink_factor_ != 0 && !(sink_factor_ >= 1))  // below 1 most rows would be sinks
    throw Error("the secondary-sink factor must be 0 (none) or at least 1, got " + std::to_string(sink_factor_));
}

at::Tensor hookActivations(const Transformer& model, const std::string& hook, const at::Tensor& windows) {
  c10::InferenceMode guard;
  const std::int64_t layer = hookLayer(hook, model.config().n_layers);
  HookSet hooks;
  at::Tensor captured;
  hooks.add(hook, [&captured](const at::Tensor& x, const HookContext&) {
    captured = x.clone();
    return at::Tensor();
  });
  model.forward(windows, &hooks, nullptr, layer < 0 ? 0 : layer);
  return captured;  // [batch, context, d_model]
}

at::Tensor ModelActivationSource::activations(const at::Tensor& windows) const {
  return hookActivations(*model_, hook_, windows);
}

void ModelActivationSource::refill() {
  std::vector<at::Tensor> fresh, fresh_ids;
  std::int64_t have = buffer_.defined() ? buffer_.size(0) : 0;
  const std::int64_t batch = std::max<std::int64_t>(1, 4096 / context_);
  while (have < buffer_tokens_) {
    at::Tensor windows = shard_->sample(batch, context_ - 1, gen_);  // [batch, context]
    at::Tensor acts = activations(windows);  // [batch, context, d_model]
    at::Tensor tokens = windows.narrow(1, 0, context_);
    at::Tensor keep;  // [batch, positions] bool on the CPU, or undefined: every row
    if (skip_first_) {
      if (sink_factor_ > 0) {  // secondary attention sinks, by the index's rule
        const at::Tensor sink = windowSinkMask(rowNorms(acts.reshape({-1, width()})).view({acts.size(0), context_}), sink_factor_);
        keep = sink.narrow(1, 1, context_ - 1).logical_not();
      }
      acts = acts.narrow(1, 1, context_ - 1);
      tokens = tokens.narrow(1, 1, context_ - 1);
    }
    if (boundary_ >= 0) {
      const at::Tensor ordinary = tokens.ne(boundary_).cpu();
      keep = keep.defined() ? keep.logical_and(ordinary) : ordinary;
    }
    acts = acts.reshape({-1, width()});
    at::Tensor ids = tokens.reshape(-1).to(at::kCPU, at::kLong);
    if (keep.defined()) {
      const at::Tensor kept = keep.reshape(-1).nonzero().squeeze(1);
      acts = acts.index_select(0, kept.to(acts.device()));
      ids = ids.index_select(0, kept);
    }
    have += acts.size(0);
    fresh.push_back(acts);
    fresh_ids.push_back(ids);
  }
  if (buffer_.defined()) {
    fresh.push_back(buffer_);
    fresh_ids.push_back(buffer_ids_);
  }
  const at::Tensor all = at::cat(fresh, 0);
  const at::Tensor perm = at::randperm(all.size(0), gen_);
  buffer_ = all.index_select(0, perm.to(all.device()));
  buffer_ids_ = at::cat(fresh_ids, 0).index_select(0, perm);
}

at::Tensor ModelActivationSource::next(std::int64_t n) {
  if (!buffer_.defined() || buffer_.size(0) < std::max(n, buffer_tokens_ / 2)) refill();
  at::Tensor out = buffer_.narrow(0, 0, n).clone();
  last_tokens_ = buffer_ids_.narrow(0, 0, n).clone();
  buffer_ = buffer_.narrow(0, n, buffer_.size(0) - n);
  buffer_ids_ = buffer_ids_.narrow(0, n, buffer_ids_.size(0) - n);
  return out;
}

SpliceEvaluation evaluateSplice(const Transformer& model, const Sae& sae, const TokenShard& shard,
                                std::int64_t batches, std::int64_t batch_size, std::int64_t context,
                                std::int64_t first, std::int32_t boundary_token, const at::Tensor& token_table) {
  c10::InferenceMode guard;
  auto gen = at::detail::createCPUGenerator(4242);
  SpliceEvaluation ev;
  const std::string& hook = sae.config().hook_name;
  auto loss = [&](const at::Tensor& window, const HookSet* hooks) {
    at::Tensor input = window.narrow(1, 0, context), target = window.narrow(1, 1, context);
    at::Tensor logits = model.forward(input, hooks).narrow(1, first, context - first);
    target = target.narrow(1, first, context - first);
    return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), target.reshape(-1)).item<double>();
  };
  // x [batch, pos, d]: positions from `first` on replaced, the ones before kept, and so are the
  // boundary positions of the current window.
  at::Tensor boundary_mask;  // [batch, pos, 1], true at boundary tokens
  auto keepFirst = [first, &boundary_mask](const at::Tensor& x, at::Tensor replaced) {
    if (boundary_mask.defined()) replaced = at::where(boundary_mask.to(x.device()), x, replaced);
    if (first > 0) replaced.narrow(1, 0, first).copy_(x.narrow(1, 0, first));
    return replaced;
  };
  at::Tensor input_ids;  // [batch, pos], the current window's input tokens (for the token table)
  HookSet splice, zero;
  splice.add(hook, [&sae, keepFirst, &token_table, &input_ids](const at::Tensor& x, const HookContext&) {
    SaeNorm norm;
    at::Tensor x_hat = sae.decode(sae.encode(sae.lessTokenRows(x, input_ids), &norm), &norm);
    if (token_table.defined())
      x_hat = x_hat + token_table.index_select(0, input_ids.reshape(-1).to(token_table.device())).view(x_hat.sizes()).to(x_hat.device());
    return keepFirst(x, x_hat.to(x.scalar_type()).contiguous());
  });
  zero.add(hook, [keepFirst](const at::Tensor& x, const HookContext&) { return keepFirst(x, at::zeros_like(x)); });
  for (std::int64_t b = 0; b < batches; ++b) {
    at::Tensor window = shard.sample(batch_size, context, gen);
    if (boundary_token >= 0) boundary_mask = window.narrow(1, 0, context).eq(boundary_token).unsqueeze(2);
    input_ids = window.narrow(1, 0, context);
    if (token_table.defined() && input_ids.max().item<std::int64_t>() >= token_table.size(0))
      throw Error("the corpus holds token id " + std::to_string(input_ids.max().item<std::int64_t>()) + ", past the token table's " +
                  std::to_string(token_table.size(0)) + " rows");
    ev.clean_loss += loss(window, nullptr) / batches;
    ev.sae_loss += loss(window, &splice) / batches;
    ev.zero_loss += loss(window, &zero) / batches;
  }
  const double gap = ev.zero_loss - ev.clean_loss;
  ev.ce_loss_recovered = gap != 0 ? (ev.zero_loss - ev.sae_loss) / gap : 0.0;
  return ev;
}

}  // namespace monoscope::core
