// build-corpus, train-tokenizer, train-lm: the demo's data and model pipeline.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/hub.h"
#include "commands.h"
#include "io/hf_cache.h"
#include "corpus/corpus_builder.h"
#include "dist/process_group.h"
#include "inputs.h"
#include "lm/lm_trainer.h"
#include "text/bpe_trainer.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace fs = std::filesystem;
using monoscope::core::Error;

namespace monoscope::cli {

int cmdBuildCorpus(const Args& args) {
  args.allowOnly({"manifest", "out", "tokenizer"});
  const std::string out = args.get("out");
  const std::string manifest = args.get("manifest", "data/corpus/sources.json");
  if (!fs::exists(fs::path(out) / "train.jsonl")) {
    const auto m = core::CorpusManifest::fromFile(manifest);
    const auto stats = core::buildCorpusText(m, out, [](const core::Progress& p) {
      std::cerr << p.detail << "\n";
      return true;
    });
    for (const auto& s : stats.sources)
      std::fprintf(stderr, "  %-18s %-11s %7lld docs %9lld bytes (%lld duplicates dropped)\n", s.name.c_str(),
                   s.domain.c_str(), static_cast<long long>(s.documents), static_cast<long long>(s.bytes),
                   static_cast<long long>(s.duplicates));
  } else {
    std::cerr << "text already built in " << out << " (delete train.jsonl to rebuild)\n";
  }
  if (args.has("tokenizer")) {
    const auto tok = core::Tokenizer::fromDirectory(args.get("tokenizer"));
    for (const char* split : {"train", "valid"}) {
      const auto n = core::writeTokenShard(out, split, tok);
      std::fprintf(stderr, "  %s: %lld tokens\n", split, static_cast<long long>(n));
    }
  }
  std::cout << core::readTextFile((fs::path(out) / "stats.json").string()) << "\n";
  return 0;
}

int cmdSampleCorpus(const Args& args) {
  args.allowOnly({"corpus", "tokens", "out"});
  fs::path corpus = args.get("corpus");
  if (fs::is_directory(corpus)) corpus /= "train.tokens.safetensors";
  const std::int64_t n = core::sampleTokenShard(corpus.string(), args.integer("tokens", 1, 1ll << 34), args.get("out"));
  std::cerr << "wrote " << n << " tokens of whole documents to " << args.get("out") << "\n";
  return 0;
}

int cmdTrainTokenizer(const Args& args) {
  args.allowOnly({"corpus", "text-file", "vocab-size", "out"});
  core::BpeTrainOptions opt;
  opt.vocab_size = args.integer("vocab-size", 257, 1'000'000);
  core::BpeTrainer trainer(opt);
  if (args.has("corpus")) {
    for (const auto& d : core::readCorpusSplit(args.get("corpus"), "train")) trainer.addText(d.text);
  } else {
    trainer.addText(readTextInput(args));
  }
  std::cerr << trainer.distinctWords() << " distinct pre-tokens\n";
  const auto tok = *trainer.train([](const core::Progress& p) {
    if (p.done % 2048 == 0) std::cerr << "merges " << p.done << "/" << p.total << "\n";
    return true;
  });
  tok.save(args.get("out"));
  std::cout << nlohmann::json{{"out", args.get("out")}, {"vocab_size", tok.vocabSize()}}.dump() << "\n";
  return 0;
}

core::LmTrainConfig lmConfig(const Args& args, std::int64_t vocab_size) {
  core::LmTrainConfig c;
  auto& m = c.model;
  m.model_type = "gpt2";
  m.vocab_size = vocab_size;
  m.d_model = args.integer("d-model", 256, 8, 8192);
  m.n_layers = args.integer("layers", 4, 1, 128);
  m.n_heads = args.integer("heads", 4, 1, 128);
  m.n_kv_heads = m.n_heads;
  if (m.d_model % m.n_heads != 0) throw Error("--heads must divide --d-model");
  m.d_head = m.d_model / m.n_heads;
  m.d_mlp = 4 * m.d_model;
  m.n_ctx = args.integer("context", 256, 8, 8192);
  m.activation = "gelu_new";
  c.batch_size = args.integer("batch-size", 16, 1, 4096);
  c.seq_len = args.integer("seq-len", m.n_ctx, 2, m.n_ctx);
  c.total_steps = args.integer("steps", 1000, 1, 100'000'000);
  c.warmup_steps = args.integer("warmup", std::min<std::int64_t>(200, c.total_steps / 10), 0, c.total_steps);
  c.lr = args.number("lr", 1e-3);
  c.eval_every = args.integer("eval-every", 200, 1, 1'000'000);
  c.max_minutes = args.number("max-minutes", 0);
  c.seed = static_cast<std::uint64_t>(args.integer("seed", 0, 0, INT64_MAX));
  c.validate();
  return c;
}

int cmdTrainLm(const Args& args) {
  args.allowOnly({"corpus", "tokenizer", "out", "d-model", "layers", "heads", "context", "batch-size", "seq-len",
                  "steps", "warmup", "lr", "eval-every", "max-minutes", "seed", "device", "threads", "dist-timeout"});
  applyRuntimeOptions(args);
  // Data parallelism: ranks started as torchrun (or srun through packaging/slurm) starts them.
  const core::DistEnv env = core::DistEnv::fromEnvironment();
  const auto pg = core::ProcessGroup::join(env, c10::Device(c10::kCPU),
                                           std::chrono::seconds(args.integer("dist-timeout", 300, 1, 86400)));
  const std::string corpus = args.get("corpus");
  const auto tok = core::Tokenizer::fromDirectory(args.get("tokenizer"));
  auto c = lmConfig(args, tok.vocabSize());
  c.model.bos_token_id = c.model.eos_token_id = tok.endOfTextId();
  const std::string out = args.get("out");
  std::fprintf(stderr, "GPT-2: %lld layers, d_model %lld, %lld heads, context %lld, vocab %lld: %.2fM parameters\n",
               static_cast<long long>(c.model.n_layers), static_cast<long long>(c.model.d_model),
               static_cast<long long>(c.model.n_heads), static_cast<long long>(c.model.n_ctx),
               static_cast<long long>(c.model.vocab_size), c.model.parameterCount() / 1e6);
  const auto result = core::trainLm(c, (fs::path(corpus) / "train.tokens.safetensors").string(),
                                    (fs::path(corpus) / "valid.tokens.safetensors").string(), out,
                                    [](const core::Progress& p) {
                                      if (p.done % 20 == 0 || p.detail.find("valid") != std::string::npos)
                                        std::fprintf(stderr, "step %lld/%lld  %s\n", static_cast<long long>(p.done),
                                                     static_cast<long long>(p.total), p.detail.c_str());
                                      return true;
                                    },
                                    pg.get());
  if (env.rank != 0) {
    std::fprintf(stderr, "rank %d of %d: done (%lld steps); rank 0 writes the model\n", env.rank, env.world_size,
                 static_cast<long long>(result.step));
    return 0;
  }
  tok.save((fs::path(out) / "model").string());
  nlohmann::ordered_json j;
  j["layers"] = c.model.n_layers;
  j["d_model"] = c.model.d_model;
  j["heads"] = c.model.n_heads;
  j["context"] = c.model.n_ctx;
  j["vocab_size"] = c.model.vocab_size;
  j["batch_size"] = c.batch_size;
  if (env.world_size > 1) j["ranks"] = env.world_size;  // batch_size sequences each
  j["seq_len"] = c.seq_len;
  j["peak_lr"] = c.lr;
  j["model"] = (fs::path(out) / "model").string();
  j["steps"] = result.step;
  j["tokens_seen"] = result.tokens_seen;
  j["parameters"] = c.model.parameterCount();
  j["valid_loss"] = result.valid_loss;
  if (result.tokens_per_second > 0) {  // a run that trained (not one resumed at its end)
    j["train_loss"] = result.train_loss;
    j["tokens_per_second"] = result.tokens_per_second;
  }
  j["finished"] = result.step >= c.total_steps;
  if (j["finished"]) core::writeFileAtomically((fs::path(out) / "result.json").string(), j.dump(2));
  std::cout << j.dump() << "\n";
  return 0;
}

int cmdHubList(const Args& args) {
  args.allowOnly({"limit"});
  const auto entries = core::listHubCache(static_cast<std::size_t>(args.integer("limit", 10000, 1, 1000000)));
  nlohmann::ordered_json j = nlohmann::ordered_json::array();
  for (const auto& e : entries) j.push_back({{"kind", e.kind}, {"spec", e.spec}, {"format", e.format}, {"path", e.path}});
  std::cerr << entries.size() << " models and dictionaries in " << core::hubCacheDir() << "\n";
  std::cout << j.dump(1) << "\n";
  return 0;
}

}  // namespace monoscope::cli
