// train-sae (from an activation file) and ground-truth (synthetic superposition benchmark).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "inputs.h"
#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "sae/sae.h"
#include "sae/activation_store.h"
#include "sae/sae_trainer.h"
#include "lm/lm_trainer.h"
#include "lm/transformer.h"
#include "util/mapped_file.h"
#include "util/error.h"

namespace fs = std::filesystem;
using monoscope::core::Error;

namespace monoscope::cli {

namespace {

core::SaeTrainConfig trainConfig(const Args& args, std::int64_t d_in) {
  core::SaeTrainConfig c;
  c.architecture = args.get("arch");
  c.d_in = d_in;
  c.d_sae = args.integer("d-sae", 1, 1 << 24);
  c.total_tokens = args.integer("tokens", 1, INT64_MAX / 2);
  c.seed = static_cast<std::uint64_t>(args.integer("seed", 0, 0, INT64_MAX));
  c.batch_size = args.integer("batch-size", 4096, 1, 1 << 22);
  c.lr = args.number("lr", c.lr);
  c.dead_window = args.integer("dead-window", c.dead_window, 1, INT64_MAX / 2);
  if (c.architecture == "topk") {
    c.k = args.integer("k", 1, c.d_sae);
  } else {
    c.l1_coefficient = args.number("l1", c.l1_coefficient);
  }
  c.validate();
  return c;
}

void report(const core::SaeTrainStats& s, std::int64_t total, double elapsed) {
  std::fprintf(stderr, "step %lld/%lld  mse %.4f  fve %.4f  L0 %.1f  dead %.3f  (%.0f s)\n",
               static_cast<long long>(s.step), static_cast<long long>(total), s.mse, s.fve, s.l0,
               s.dead_fraction, elapsed);
}

}  // namespace

int cmdTrainSae(const Args& args) {
  args.allowOnly({"activations", "model", "hook", "corpus", "arch", "l1", "k", "d-sae", "tokens", "seed", "out",
                  "batch-size", "lr", "dead-window", "context", "buffer", "device", "threads"});
  const auto device = c10::Device(applyRuntimeOptions(args));
  const std::string out = args.get("out");
  const bool from_model = args.has("model");
  if (from_model == args.has("activations")) {
    throw Error("give either --activations FILE.safetensors or --model DIR --hook NAME --corpus PATH");
  }
  std::unique_ptr<core::ActivationSource> source;
  core::FileActivationSource* file_source = nullptr;
  std::shared_ptr<const core::Transformer> model;
  std::shared_ptr<const core::TokenShard> valid_shard;
  std::string hook = args.get("hook", "");
  std::int64_t context = 0;
  if (from_model) {
    if (hook.empty()) throw Error("--model needs --hook NAME");
    model = core::Transformer::load(args.get("model"), device);
    context = args.integer("context", std::min<std::int64_t>(128, model->config().n_ctx), 2, model->config().n_ctx);
    // --corpus: a corpus folder (train/valid token shards) or one token shard file.
    const fs::path corpus = args.get("corpus");
    const fs::path train = fs::is_directory(corpus) ? corpus / "train.tokens.safetensors" : corpus;
    auto shard = std::make_shared<const core::TokenShard>(train.string());
    // CE loss recovered is measured on the validation shard when there is one.
    valid_shard = fs::is_directory(corpus) && fs::exists(corpus / "valid.tokens.safetensors")
                      ? std::make_shared<const core::TokenShard>((corpus / "valid.tokens.safetensors").string())
                      : shard;
    source = std::make_unique<core::ModelActivationSource>(model, hook, shard, context,
                                                           args.integer("buffer", 1 << 18, 1024, 1 << 26),
                                                           static_cast<std::uint64_t>(args.integer("seed", 0, 0, INT64_MAX)));
  } else {
    auto fsrc = std::make_unique<core::FileActivationSource>(args.get("activations"),
                                                            static_cast<std::uint64_t>(args.integer("seed", 0, 0, INT64_MAX)));
    file_source = fsrc.get();
    source = std::move(fsrc);
    if (hook.empty()) hook = "blocks.0.hook_resid_post";
  }
  auto cfg = trainConfig(args, source->width());
  cfg.hook_name = hook;
  if (file_source != nullptr && cfg.batch_size > file_source->rows()) {
    throw Error("the activation file holds " + std::to_string(file_source->rows()) + " rows, fewer than one batch of " +
                    std::to_string(cfg.batch_size),
                "lower --batch-size or collect more activations");
  }
  fs::create_directories(out);
  const std::string ck = (fs::path(out) / "checkpoint.safetensors").string();
  core::SaeTrainer trainer(cfg, device);
  if (trainer.loadCheckpoint(ck)) {
    std::cerr << "resuming from step " << trainer.stepsDone() << "\n";
    if (file_source != nullptr) file_source->skip(trainer.stepsDone() * cfg.batch_size);
  }
  const std::int64_t total = cfg.totalSteps();
  const auto t0 = std::chrono::steady_clock::now();
  core::SaeTrainStats last;
  for (std::int64_t s = trainer.stepsDone(); s < total; ++s) {
    last = trainer.step(source->next(cfg.batch_size));
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s % 100 == 0 || s + 1 == total) report(last, total, elapsed);
    if ((s + 1) % 500 == 0) trainer.saveCheckpoint(ck);
  }
  trainer.saveCheckpoint(ck);
  auto sae = trainer.exportSae();
  if (model) {
    nlohmann::json meta = sae->config().metadata;
    meta["model_name"] = fs::path(args.get("model")).filename().string();
    meta["context_size"] = context;
    auto cfg_out = sae->config();
    cfg_out.metadata = meta;
    cfg_out.model_name = meta["model_name"];
    sae = std::make_unique<core::Sae>(cfg_out, sae->W_enc(), sae->b_enc(), sae->W_dec(), sae->b_dec());
  }
  sae->save(out);
  nlohmann::ordered_json j;
  j["out"] = out;
  j["steps"] = trainer.stepsDone();
  j["tokens"] = trainer.stepsDone() * cfg.batch_size;
  const auto m = sae->metrics(source->next(std::min<std::int64_t>(16384, cfg.batch_size * 4)));
  j["fraction_variance_explained"] = m.fraction_variance_explained;
  j["l0"] = m.l0;
  j["dead_fraction"] = last.dead_fraction;
  j["dead_window_tokens"] = cfg.dead_window;
  if (model) {
    const auto ev = core::evaluateSplice(*model, *sae, *valid_shard, 16, 8, context);
    j["clean_loss"] = ev.clean_loss;
    j["spliced_loss"] = ev.sae_loss;
    j["zero_ablation_loss"] = ev.zero_loss;
    j["ce_loss_recovered"] = ev.ce_loss_recovered;
  }
  core::writeFileAtomically((fs::path(out) / "training.json").string(), j.dump(2));
  std::cout << j.dump() << "\n";
  return 0;
}

int cmdGroundTruth(const Args& args) {
  args.allowOnly({"arch", "l1", "k", "d-in", "features", "active", "d-sae", "tokens", "seed", "batch-size", "lr",
                  "device", "threads"});
  const auto device = c10::Device(applyRuntimeOptions(args));
  const std::int64_t d_in = args.integer("d-in", 256, 1, 1 << 16);
  const std::int64_t n_feat = args.integer("features", 512, 1, 1 << 20);
  const double active = args.number("active", 5.0);
  auto cfg = trainConfig(args, d_in);
  cfg.dead_window = std::max<std::int64_t>(cfg.batch_size * 200, 1);
  core::SyntheticFeatures data(d_in, n_feat, active, cfg.seed + 17);
  core::SaeTrainer trainer(cfg, device);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::int64_t s = 0; s < cfg.totalSteps(); ++s) {
    auto st = trainer.step(data.sample(cfg.batch_size));
    if (s % 500 == 0 || s + 1 == cfg.totalSteps())
      report(st, cfg.totalSteps(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const auto r = core::compareWithTruth(trainer.exportSae()->W_dec(), data.features());
  nlohmann::ordered_json j;
  j["mmcs_learned_to_true"] = r.mmcs_learned_to_true;
  j["mmcs_true_to_learned"] = r.mmcs_true_to_learned;
  j["recovered_above_0.9"] = r.recovered_fraction;
  std::cout << j.dump() << "\n";
  return 0;
}

}  // namespace monoscope::cli
