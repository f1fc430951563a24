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
#include "sae/sae_trainer.h"
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
                  "batch-size", "lr", "dead-window", "device", "threads"});
  const auto device = c10::Device(applyRuntimeOptions(args));
  if (!args.has("activations")) {
    throw Error("train-sae needs --activations FILE.safetensors",
                "training from --model/--hook/--corpus streams needs the activation store, not yet available");
  }
  const std::string out = args.get("out");
  const std::string file = args.get("activations");
  auto store = core::WeightStore::fromFile(file);
  const auto& view = store.tensor("activations");
  if (view.shape.size() != 2 || view.shape[0] <= 0 || view.shape[1] <= 0) {
    throw Error("tensor 'activations' in '" + file + "' must be [n, d_in], got " + core::shapeString(view.shape));
  }
  at::Tensor acts = core::toFloatTensor(view, file);  // [n, d_in]
  if (!at::isfinite(acts).all().item<bool>()) throw Error("'" + file + "' holds NaN or infinite activations");
  auto cfg = trainConfig(args, acts.size(1));
  cfg.hook_name = args.get("hook", "blocks.0.hook_resid_post");
  if (cfg.batch_size > acts.size(0)) {
    throw Error("the activation file holds " + std::to_string(acts.size(0)) + " rows, fewer than one batch of " +
                    std::to_string(cfg.batch_size),
                "lower --batch-size or collect more activations");
  }
  fs::create_directories(out);
  const std::string ck = (fs::path(out) / "checkpoint.safetensors").string();
  core::SaeTrainer trainer(cfg, device);
  if (trainer.loadCheckpoint(ck)) std::cerr << "resuming from step " << trainer.stepsDone() << "\n";
  // Epochs over a seeded permutation; the position is derived from the step, so resuming is exact.
  const std::int64_t n = acts.size(0), per_epoch = n / cfg.batch_size, total = cfg.totalSteps();
  const auto t0 = std::chrono::steady_clock::now();
  at::Tensor perm;
  std::int64_t perm_epoch = -1;
  core::SaeTrainStats last;
  for (std::int64_t s = trainer.stepsDone(); s < total; ++s) {
    const std::int64_t epoch = s / per_epoch;
    if (epoch != perm_epoch) {
      auto gen = at::detail::createCPUGenerator(cfg.seed * 1000003u + static_cast<std::uint64_t>(epoch));
      perm = at::randperm(n, gen);
      perm_epoch = epoch;
    }
    at::Tensor rows = perm.narrow(0, (s % per_epoch) * cfg.batch_size, cfg.batch_size);
    last = trainer.step(acts.index_select(0, rows));
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s % 100 == 0 || s + 1 == total) report(last, total, elapsed);
    if ((s + 1) % 1000 == 0) trainer.saveCheckpoint(ck);
  }
  trainer.saveCheckpoint(ck);
  auto sae = trainer.exportSae();
  sae->save(out);
  const auto m = sae->metrics(acts.narrow(0, 0, std::min<std::int64_t>(n, 65536)));
  nlohmann::ordered_json j;
  j["out"] = out;
  j["steps"] = trainer.stepsDone();
  j["fraction_variance_explained"] = m.fraction_variance_explained;
  j["l0"] = m.l0;
  j["dead_fraction"] = last.dead_fraction;
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
