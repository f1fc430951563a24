// train-sae (from an activation file) and ground-truth (synthetic superposition benchmark).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/training.h"
#include "dist/process_group.h"
#include "commands.h"
#include "inputs.h"
#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "sae/sae.h"
#include "sae/activation_store.h"
#include "sae/harvest.h"
#include "sae/sae_trainer.h"
#include "sae/token_table.h"
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
  c.batch_size = args.integer("batch-size", core::defaultSaeBatchSize(c.total_tokens), 1, 1 << 22);
  c.lr = args.number("lr", c.lr);
  c.dead_window = args.integer("dead-window", c.dead_window, 1, INT64_MAX / 2);
  if (c.architecture != "standard") {
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
                  "batch-size", "lr", "dead-window", "resample-dead", "encoder-precision", "matryoshka", "matryoshka-k", "token-table", "token-table-side", "context", "buffer", "skip-first", "skip-end-of-text", "skip-sinks", "device",
                  "threads", "checkpoint-every", "dist-timeout"});
  core::SaeTrainingOptions o;
  // Data parallelism: the variables torchrun (or srun through packaging/slurm) sets.
  const core::DistEnv env = core::DistEnv::fromEnvironment();
  o.rank = env.rank;
  o.world_size = env.world_size;
  o.master_addr = env.master_addr;
  o.master_port = env.master_port;
  o.dist_timeout_s = static_cast<int>(args.integer("dist-timeout", o.dist_timeout_s, 1, 86400));
  o.checkpoint_every = args.integer("checkpoint-every", o.checkpoint_every, 1, INT64_MAX / 2);
  o.activations = args.get("activations", "");
  o.model_dir = args.get("model", "");
  o.hook = args.get("hook", "");
  o.corpus = args.get("corpus", "");
  if (o.model_dir.empty() && o.activations.empty())
    throw Error("give --activations FILE.safetensors|HARVEST_DIR or --model DIR --hook NAME --corpus PATH (or both: "
                "the model then only evaluates the splice)");
  o.skip_first = args.get("skip-first", "true") != "false";
  o.skip_end_of_text = args.get("skip-end-of-text", "true") != "false";
  o.skip_sinks = args.get("skip-sinks", "true") != "false";
  if (!o.model_dir.empty() && o.hook.empty()) throw Error("--model needs --hook NAME");
  if (!o.model_dir.empty() && o.corpus.empty()) throw Error("--model needs --corpus PATH");
  o.architecture = args.get("arch");
  o.d_sae = args.integer("d-sae", 1, 1 << 24);
  o.tokens = args.integer("tokens", 1, INT64_MAX / 2);
  o.seed = static_cast<std::uint64_t>(args.integer("seed", 0, 0, INT64_MAX));
  o.batch_size = args.integer("batch-size", 0, 0, 1 << 22);
  o.lr = args.number("lr", o.lr);
  o.dead_window = args.integer("dead-window", 0, 0, INT64_MAX / 2);
  o.resample_every = args.integer("resample-dead", 0, 0, INT64_MAX / 2);
  o.encoder_precision = args.get("encoder-precision", o.encoder_precision);
  auto integers = [&](const char* flag, std::vector<std::int64_t>& out) {  // "512,2048,8192"
    const std::string list = args.get(flag);
    std::size_t at = 0;
    while (at <= list.size()) {
      const std::size_t comma = std::min(list.find(',', at), list.size());
      out.push_back(parseInteger(list.substr(at, comma - at), std::string("--") + flag));
      at = comma + 1;
    }
  };
  if (args.has("matryoshka")) integers("matryoshka", o.matryoshka);  // nested prefixes of the dictionary
  if (args.has("matryoshka-k")) integers("matryoshka-k", o.matryoshka_k);  // each group's share of k
  o.token_table = args.get("token-table", "");  // the decoder learns each row less its token's table row
  o.token_table_side = args.get("token-table-side", o.token_table_side);  // decoder | both (the encoder too)
  o.context = args.integer("context", 0, 0, 1 << 20);
  o.buffer_tokens = args.integer("buffer", o.buffer_tokens, 1024, 1 << 26);
  if (o.architecture != "standard") {
    o.k = args.integer("k", 1, o.d_sae);
  } else {
    o.l1_coefficient = args.number("l1", o.l1_coefficient);
  }
  o.out = args.get("out");
  o.device = args.get("device", "auto");
  o.threads = threadsOption(args);
  if (o.batch_size == 0)
    std::cerr << "batch size " << core::defaultSaeBatchSize(o.tokens) << " (chosen for " << o.tokens
              << " tokens; set --batch-size to override)\n";
  std::int64_t last_print = -1;
  const auto progress = [&](const core::Progress& p) {
    if (p.stage == "resume") std::cerr << "resuming from step " << p.done << "\n";
    if (p.stage == "train" && (p.done - last_print >= 100 || p.done == p.total)) {
      last_print = p.done;
      std::fprintf(stderr, "step %lld/%lld  %s\n", static_cast<long long>(p.done), static_cast<long long>(p.total), p.detail.c_str());
    }
    return true;
  };
  core::SaeTrainingResult r;
  core::trainSae(o, progress, &r);
  if (r.rank != 0) {
    std::cerr << "rank " << r.rank << " of " << r.world_size << ": done (" << r.steps << " steps); rank 0 writes the SAE\n";
    return 0;
  }
  std::cout << core::readTextFile((fs::path(o.out) / "training.json").string());
  std::cout << "\n";
  return 0;
}

int cmdHarvest(const Args& args) {
  args.allowOnly({"model", "hook", "corpus", "tokens", "context", "skip-first", "skip-end-of-text", "chunk-rows", "batch", "seed", "out",
                  "device", "threads"});
  core::HarvestOptions o;
  o.model_dir = args.get("model");
  o.hook = args.get("hook");
  o.corpus = args.get("corpus");
  o.out = args.get("out");
  o.tokens = args.integer("tokens", 1, 1ll << 34);
  o.context = args.integer("context", 128, 2, 1 << 20);
  o.skip_first = args.get("skip-first", "true") != "false";
  o.skip_end_of_text = args.get("skip-end-of-text", "true") != "false";
  o.chunk_rows = args.integer("chunk-rows", o.chunk_rows, 1024, 1 << 22);
  o.batch = args.integer("batch", o.batch, 1, 4096);
  o.seed = static_cast<std::uint64_t>(args.integer("seed", 0, 0, INT64_MAX));
  o.device = args.get("device", "auto");
  o.threads = threadsOption(args);
  const auto start = std::chrono::steady_clock::now();
  std::int64_t last = -1;
  const auto progress = [&](const core::Progress& p) {
    if (p.stage == "harvest" && (p.done - last >= 16384 || p.done == p.total)) {
      last = p.done;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "harvest %lld/%lld rows  %.0f s\n", static_cast<long long>(p.done), static_cast<long long>(p.total), s);
    }
    return true;
  };
  core::harvestActivations(o, progress);
  std::cerr << "harvested into " << o.out << "\n";
  return 0;
}

int cmdTokenMeans(const Args& args) {
  args.allowOnly({"activations", "out", "top", "massive-factor"});
  core::TokenMeansOptions o;
  o.activations = args.get("activations");
  o.out = args.get("out");
  o.top = args.integer("top", o.top, 1, 1 << 24);
  o.massive_factor = args.number("massive-factor", o.massive_factor);
  const auto progress = [&](const core::Progress& p) {
    if (p.done % 16 == 0 || p.done == p.total)
      std::fprintf(stderr, "token-means %lld/%lld files\n", static_cast<long long>(p.done), static_cast<long long>(p.total));
    return true;
  };
  core::computeTokenMeans(o, progress);
  std::cerr << "wrote " << o.out << "\n";
  return 0;
}

int cmdEvaluateSae(const Args& args) {
  args.allowOnly({"model", "sae", "corpus", "context", "rows", "splice-batches", "seed", "skip-first", "skip-end-of-text",
                  "device", "threads"});
  core::SaeEvaluationOptions o;
  o.model_dir = args.get("model");
  o.sae = args.get("sae");
  o.corpus = args.get("corpus");
  o.context = args.integer("context", 0, 0, 1 << 20);
  o.rows = args.integer("rows", o.rows, 1, 1 << 18);
  o.splice_batches = args.integer("splice-batches", o.splice_batches, 1, 100000);
  o.seed = static_cast<std::uint64_t>(args.integer("seed", 1, 0, INT64_MAX));
  o.skip_first = args.get("skip-first", "true") != "false";
  o.skip_end_of_text = args.get("skip-end-of-text", "true") != "false";
  o.device = args.get("device", "auto");
  o.threads = threadsOption(args);
  core::SaeEvaluationResult r;
  core::evaluateSae(o, {}, &r);
  nlohmann::ordered_json j;
  j["sae"] = o.sae;
  j["metrics_on"] = std::to_string(r.rows) + " held-out activations and " + std::to_string(o.splice_batches * o.splice_batch_size) +
                    " windows of " + std::to_string(r.context) + " tokens";
  j["first_position"] = o.skip_first ? "excluded" : "included";
  j["end_of_text"] = o.skip_first && o.skip_end_of_text ? "excluded" : "included";
  j["fraction_variance_explained"] = r.fraction_variance_explained;
  j["fraction_variance_explained_ordinary_rows"] = r.fraction_variance_explained_ordinary;
  j["massive_rows"] = r.massive_rows;
  j["massive_row_norm_above_median_times"] = core::kMassiveRowFactor;
  j["l0"] = r.l0;
  j["clean_loss"] = r.clean_loss;
  j["spliced_loss"] = r.spliced_loss;
  j["zero_ablation_loss"] = r.zero_ablation_loss;
  j["ce_loss_recovered"] = r.ce_loss_recovered;
  std::cout << j.dump(2) << "\n";
  return 0;
}

int cmdSaeThreshold(const Args& args) {
  args.allowOnly({"sae", "activations", "fraction", "out", "rows", "dtype", "seed", "refit", "refit-lambda", "device", "threads"});
  core::SaeThresholdOptions o;
  o.sae = args.get("sae");
  o.activations = args.get("activations");
  o.out = args.get("out");
  o.fraction = args.number("fraction", o.fraction);
  o.rows = args.integer("rows", o.rows, 1, 1ll << 32);
  const std::string dtype = args.get("dtype", "f32");
  if (dtype != "f32" && dtype != "f16") throw Error("--dtype must be f32 or f16, not '" + dtype + "'");
  o.half = dtype == "f16";
  o.seed = static_cast<std::uint64_t>(args.integer("seed", 0, 0, INT64_MAX));
  o.refit_lambda = args.number("refit-lambda", o.refit_lambda);
  if (!(o.refit_lambda > 0)) throw Error("--refit-lambda must be positive (--refit false: no refit)");
  if (args.get("refit", "true") == "false") o.refit_lambda = -1;
  o.device = args.get("device", "auto");
  o.threads = threadsOption(args);
  core::SaeThresholdResult r;
  core::calibrateSaeThresholds(o, {}, &r);
  std::cout << core::readTextFile((fs::path(o.out) / "thresholds.json").string()) << "\n";
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
