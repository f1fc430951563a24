#include "lm/lm_trainer.h"

#include <cstdio>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "dist/process_group.h"
#include "io/safetensors.h"
#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "lm/transformer.h"
#include "util/error.h"
#include "util/numbers.h"
#include "util/mapped_file.h"

namespace fs = std::filesystem;

namespace monoscope::core {

void LmTrainConfig::validate() const {
  auto bad = [](const std::string& f, const std::string& why) { throw Error("LM training: " + f + " " + why); };
  if (model.model_type != "gpt2") bad("architecture", "must be GPT-2");
  if (seq_len < 2 || seq_len > model.n_ctx) bad("seq_len", "must be in 2..n_ctx");
  if (batch_size < 1 || batch_size > 4096) bad("batch_size", "must be in 1..4096");
  if (total_steps < 1) bad("total_steps", "must be positive");
  if (warmup_steps < 0) bad("warmup_steps", "must be non-negative");
  if (!(lr > 0 && lr < 1)) bad("lr", "must be in (0, 1)");
  if (!(grad_clip > 0)) bad("grad_clip", "must be positive");
}

double LmTrainConfig::learningRate(std::int64_t step) const {
  if (step < warmup_steps) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const double span = std::max<std::int64_t>(1, total_steps - warmup_steps);
  const double t = std::min(1.0, static_cast<double>(step - warmup_steps) / span);
  const double floor = lr * min_lr_ratio;
  return floor + 0.5 * (lr - floor) * (1.0 + std::cos(M_PI * t));
}

TokenShard::TokenShard(const std::string& path) {
  SafetensorsFile f(path);
  const auto& v = f.tensor("tokens");
  if (v.dtype != DType::I32 || v.shape.size() != 1)
    throw Error("tensor 'tokens' in '" + path + "' must be I32 [n]", "rebuild the corpus shards");
  tokens_ = at::from_blob(const_cast<std::uint8_t*>(v.data), v.shape, at::kInt).to(at::kLong);
}

at::Tensor TokenShard::sample(std::int64_t batch, std::int64_t seq_len, at::Generator& gen) const {
  const std::int64_t n = size();
  if (n < seq_len + 2) {
    throw Error("the token shard holds " + std::to_string(n) + " tokens, fewer than one sequence of " +
                    std::to_string(seq_len + 1),
                "use a larger corpus or a shorter seq_len");
  }
  at::Tensor starts = at::randint(0, n - seq_len - 1, {batch, 1}, gen, at::kLong);
  at::Tensor idx = starts + at::arange(seq_len + 1, at::kLong).unsqueeze(0);  // [batch, seq_len + 1]
  return tokens_.index_select(0, idx.reshape(-1)).view({batch, seq_len + 1});
}

namespace {

double batchLoss(const Transformer& model, const at::Tensor& window) {
  at::Tensor input = window.narrow(1, 0, window.size(1) - 1);
  at::Tensor target = window.narrow(1, 1, window.size(1) - 1);
  at::Tensor logits = model.forward(input);  // [B, T, V]
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), target.reshape(-1).to(logits.device()))
      .item<double>();
}

double validationLoss(const Transformer& model, const TokenShard& shard, const LmTrainConfig& c) {
  at::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(12345);  // the same windows at every evaluation
  double total = 0;
  for (std::int64_t i = 0; i < c.eval_batches; ++i) total += batchLoss(model, shard.sample(c.batch_size, c.seq_len, gen));
  return total / static_cast<double>(c.eval_batches);
}

}  // namespace

LmTrainProgress trainLm(const LmTrainConfig& c, const std::string& train_shard, const std::string& valid_shard,
                        const std::string& out, const ProgressFn& progress, ProcessGroup* pg) {
  c.validate();
  const int world = pg != nullptr ? pg->worldSize() : 1, rank = pg != nullptr ? pg->rank() : 0;
  const bool writer = rank == 0;
  fs::create_directories(out);
  const TokenShard train(train_shard), valid(valid_shard);
  const c10::Device device(c10::kCPU);
  auto model = Transformer::initRandom(c.model, c.seed, device);
  const auto& params = model->parameters();
  std::vector<at::Tensor> m, v;
  for (const auto& [name, p] : params) {
    p.requires_grad_(true);
    m.push_back(at::zeros_like(p));
    v.push_back(at::zeros_like(p));
  }
  std::int64_t step = 0;
  const std::string state_path = (fs::path(out) / "train_state.safetensors").string();
  if (writer && fs::exists(state_path)) {
    const WeightStore st = WeightStore::fromFile(state_path);
    SafetensorsFile meta(state_path);
    const auto it = meta.metadata().find("config");
    if (it == meta.metadata().end() || it->second != c.model.toJson().dump()) {
      throw Error("'" + state_path + "' was written for a different model configuration",
                  "use a new --out folder or the original settings");
    }
    at::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& [name, p] = params[i];
      p.copy_(loadWeight(st, name, p.sizes().vec(), device));
      m[i].copy_(loadWeight(st, "adam_m." + name, p.sizes().vec(), device));
      v[i].copy_(loadWeight(st, "adam_v." + name, p.sizes().vec(), device));
    }
    const auto step_it = meta.metadata().find("step");
    step = parseInt64(step_it == meta.metadata().end() ? "" : step_it->second, "checkpoint step");
    if (step < 0) throw Error("the checkpoint's step is negative", "delete train_state.safetensors to start afresh");
  }
  if (world > 1) {  // every rank starts from rank 0's weights, moments and step
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> state;
    for (std::size_t i = 0; i < params.size(); ++i) {
      state.push_back(params[i].second.detach());
      state.push_back(m[i]);
      state.push_back(v[i]);
    }
    pg->broadcast(state, 0, "the broadcast of the model's weights");
    std::vector<at::Tensor> s = {at::tensor({step}, at::kLong)};
    pg->broadcast(s, 0, "the broadcast of the step");
    step = s[0].item<std::int64_t>();
  }
  auto checkpoint = [&](std::int64_t at_step) {
    if (!writer) return;
    std::vector<std::pair<std::string, at::Tensor>> t;
    for (std::size_t i = 0; i < params.size(); ++i) {
      t.emplace_back(params[i].first, params[i].second);
      t.emplace_back("adam_m." + params[i].first, m[i]);
      t.emplace_back("adam_v." + params[i].first, v[i]);
    }
    saveTensors(state_path, t, {{"step", std::to_string(at_step)}, {"config", c.model.toJson().dump()}});
    model->save((fs::path(out) / "model").string());
  };

  // Batches are drawn from a generator re-seeded per step, so a resumed run sees the same data.
  LmTrainProgress prog;
  prog.total_steps = c.total_steps;
  prog.step = step;
  prog.tokens_seen = step * c.batch_size * world * c.seq_len;
  if (step >= c.total_steps) {  // already finished: report, do not train further
    if (writer) prog.valid_loss = validationLoss(*model, valid, c);
    return prog;
  }
  const auto start = std::chrono::steady_clock::now();
  std::int64_t tokens_this_run = 0;
  while (step < c.total_steps) {
    auto gen = at::detail::createCPUGenerator(c.seed * 1000003u + static_cast<std::uint64_t>(step));
    at::Tensor window = train.sample(c.batch_size * world, c.seq_len, gen);
    if (world > 1) window = window.narrow(0, rank * c.batch_size, c.batch_size);
    at::Tensor input = window.narrow(1, 0, c.seq_len), target = window.narrow(1, 1, c.seq_len);
    at::Tensor logits = model->forward(input);  // [B, T, V]
    at::Tensor loss = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), target.reshape(-1));
    double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value)) {
      throw Error("LM training diverged at step " + std::to_string(step) + " (loss is not finite)",
                  "lower lr; the last checkpoint in '" + out + "' is intact");
    }
    loss.backward();
    at::NoGradGuard no_grad;
    if (world > 1) {  // the mean gradient over ranks: the gradient of the whole step's mean loss
      std::vector<at::Tensor> grads;
      for (const auto& [name, p] : params) grads.push_back(p.mutable_grad());
      grads.push_back(at::tensor({loss_value}, at::kFloat));
      pg->allReduceSum(grads, "the gradient all-reduce");
      for (std::size_t i = 0; i < params.size(); ++i) params[i].second.mutable_grad().div_(world);
      loss_value = grads.back().item<double>() / world;
    }
    double sq = 0;
    for (const auto& [name, p] : params) sq += p.grad().pow(2).sum().item<double>();
    const double clip = std::min(1.0, c.grad_clip / (std::sqrt(sq) + 1e-6));
    const double lr = c.learningRate(step);
    ++step;
    const double bc1 = 1.0 - std::pow(c.beta1, static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(c.beta2, static_cast<double>(step));
    for (std::size_t i = 0; i < params.size(); ++i) {
      at::Tensor p = params[i].second;
      at::Tensor g = p.grad() * clip;
      if (p.dim() >= 2 && c.weight_decay > 0) p.mul_(1.0 - lr * c.weight_decay);
      m[i].mul_(c.beta1).add_(g, 1.0 - c.beta1);
      v[i].mul_(c.beta2).addcmul_(g, g, 1.0 - c.beta2);
      p.addcdiv_(m[i], (v[i] / bc2).sqrt_().add_(1e-8), -lr / bc1);
      p.mutable_grad().zero_();
    }
    tokens_this_run += c.batch_size * world * c.seq_len;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    prog.step = step;
    prog.train_loss = loss_value;
    prog.valid_loss = -1;
    prog.tokens_seen = step * c.batch_size * world * c.seq_len;
    prog.tokens_per_second = tokens_this_run / std::max(1e-9, elapsed);
    bool out_of_time = c.max_minutes > 0 && elapsed > c.max_minutes * 60.0;
    if (world > 1) {  // rank 0's clock decides, so every rank stops at the same step
      std::vector<at::Tensor> flag = {at::tensor({out_of_time ? 1.0f : 0.0f})};
      pg->broadcast(flag, 0, "the time-limit broadcast");
      out_of_time = flag[0].item<float>() > 0;
    }
    if (step % c.eval_every == 0 || step == c.total_steps || out_of_time) {
      if (writer) prog.valid_loss = validationLoss(*model, valid, c);
      checkpoint(step);
    }
    char detail[128];
    if (prog.valid_loss >= 0) {
      std::snprintf(detail, sizeof detail, "loss %.4f  valid %.4f  %.0f tok/s", prog.train_loss, prog.valid_loss, prog.tokens_per_second);
    } else {
      std::snprintf(detail, sizeof detail, "loss %.4f  %.0f tok/s", prog.train_loss, prog.tokens_per_second);
    }
    bool stop = progress && !progress(Progress{"train", step, c.total_steps, detail});
    if (world > 1) {  // one rank cancelled: all stop here
      std::vector<at::Tensor> flag = {at::tensor({stop ? 1.0f : 0.0f})};
      pg->allReduceSum(flag, "the cancellation all-reduce");
      stop = flag[0].item<float>() > 0;
    }
    if (stop) {
      checkpoint(step);
      prog.cancelled = true;
      break;
    }
    if (out_of_time) break;
  }
  return prog;
}

double evaluateLoss(const std::string& model_dir, const std::string& shard, std::int64_t batches,
                    std::int64_t batch_size, std::int64_t seq_len) {
  auto model = Transformer::load(model_dir, c10::Device(c10::kCPU));
  LmTrainConfig c;
  c.model = model->config();
  c.eval_batches = batches;
  c.batch_size = batch_size;
  c.seq_len = seq_len;
  return validationLoss(*model, TokenShard(shard), c);
}

}  // namespace monoscope::core
