// build-demo: the whole recipe of the bundled demo, from Debian text to data/demo. Every stage
// skips work already done (or resumes it), so an interrupted build continues where it stopped.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "inputs.h"
#include "index/token_corpus.h"
#include "io/safetensors.h"
#include "lm/transformer.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace fs = std::filesystem;
using monoscope::core::Error;

namespace monoscope::cli {

namespace {

int runStage(const std::string& title, int (*cmd)(const Args&), std::vector<std::string> argv) {
  std::cerr << "== " << title << "\n";
  std::vector<char*> ptrs;
  static char prog[] = "monoscope-cli";
  ptrs.push_back(prog);
  for (auto& a : argv) ptrs.push_back(a.data());
  const Args args(static_cast<int>(ptrs.size()), ptrs.data(), 1);
  const int rc = cmd(args);
  if (rc != 0) throw Error("demo stage '" + title + "' failed");
  return rc;
}

}  // namespace

// The demo's recipe, in one place.
struct DemoRecipe {
  std::string vocab_size = "8192";
  std::vector<std::string> lm = {"--d-model", "256", "--layers", "6", "--heads", "8", "--context", "256",
                                 "--batch-size", "16", "--steps", "3200", "--warmup", "100", "--lr", "1e-3",
                                 "--eval-every", "200", "--max-minutes", "100", "--seed", "0"};
  std::string hook = "blocks.3.hook_resid_post";
  // Short runs on 200k stored activations of an early checkpoint: L1 4 gave FVE 0.89 at L0 108,
  // L1 8 gave FVE 0.78 at L0 77 after 1.2M tokens; on the final model, 6M tokens at L1 5 gave
  // FVE 0.76 at L0 16 (CE loss recovered 0.92), so the demo uses L1 2. The SAE reads full
  // 256-token windows: one trained on 128 leaves positions past 128 to features that track
  // absolute position (L0 rose from 44 to 107 there).
  std::vector<std::string> sae = {"--arch", "standard", "--l1", "2", "--d-sae", "4096", "--tokens", "6000000",
                                  "--batch-size", "2048", "--lr", "4e-4", "--context", "256", "--dead-window",
                                  "2000000", "--seed", "0"};
  std::int64_t sample_tokens = 1 << 20;  // the corpus sample shipped for the demo database
  std::int64_t sample_window = 256;
};

int cmdBuildDemo(const Args& args) {
  args.allowOnly({"work", "out", "manifest", "threads", "device"});
  const std::string work = args.get("work", "build/demo-work");
  const std::string out = args.get("out", "data/demo");
  const std::string threads = args.get("threads", "2");
  const std::string device = args.get("device", "auto");
  const DemoRecipe r;
  const std::string corpus = work + "/corpus", tok = work + "/tokenizer", lm = work + "/lm", sae = work + "/sae-ctx256";
  runStage("corpus text", cmdBuildCorpus, {"--manifest", args.get("manifest", "data/corpus/sources.json"), "--out", corpus});
  if (!fs::exists(tok + "/tokenizer.json"))
    runStage("tokenizer", cmdTrainTokenizer, {"--corpus", corpus, "--vocab-size", r.vocab_size, "--out", tok});
  if (!fs::exists(corpus + "/train.tokens.safetensors"))
    runStage("token shards", cmdBuildCorpus, {"--out", corpus, "--tokenizer", tok});
  std::vector<std::string> lm_args = {"--corpus", corpus, "--tokenizer", tok, "--out", lm, "--threads", threads, "--device", device};
  lm_args.insert(lm_args.end(), r.lm.begin(), r.lm.end());
  // The language model: trained here, unless this work folder has none and the exported demo
  // model is already in `out` (then the SAE is trained on the exported, F16-rounded weights).
  std::string lm_model = lm + "/model";
  if (!fs::exists(lm + "/result.json")) {
    if (fs::exists(out + "/model/training.json") && !fs::exists(lm)) {
      std::cerr << "== language model: using the exported " << out << "/model\n";
      lm_model = out + "/model";
    } else {
      runStage("language model", cmdTrainLm, lm_args);
    }
  }
  std::vector<std::string> sae_args = {"--model", lm_model, "--hook", r.hook, "--corpus", corpus, "--out", sae,
                                       "--threads", threads, "--device", device};
  sae_args.insert(sae_args.end(), r.sae.begin(), r.sae.end());
  if (!fs::exists(sae + "/training.json")) runStage("sparse autoencoder", cmdTrainSae, sae_args);

  std::cerr << "== export to " << out << "\n";
  fs::create_directories(out + "/model");
  if (lm_model != out + "/model") {
    auto model = core::Transformer::load(lm_model, c10::Device(c10::kCPU));
    model->save(out + "/model", /*half=*/true);
    core::Tokenizer::fromDirectory(tok).save(out + "/model");
    fs::copy_file(lm + "/result.json", out + "/model/training.json", fs::copy_options::overwrite_existing);
  }
  fs::create_directories(out + "/sae");
  for (const char* f : {"cfg.json", "sae_weights.safetensors", "training.json"})
    fs::copy_file(sae + "/" + f, out + "/sae/" + f, fs::copy_options::overwrite_existing);
  fs::copy_file(corpus + "/stats.json", out + "/corpus_stats.json", fs::copy_options::overwrite_existing);
  // A sample of the training shard (evenly spaced windows) for the demo's feature database.
  {
    const auto tokenizer = core::Tokenizer::fromDirectory(out + "/model");
    const core::TokenCorpus sample(corpus + "/train.tokens.safetensors", tokenizer, r.sample_tokens, r.sample_window);
    std::vector<std::int32_t> all, w;
    for (std::int64_t i = 0; i < sample.windows(); ++i) {
      sample.windowTokens(i, &w);
      all.insert(all.end(), w.begin(), w.end());
    }
    fs::create_directories(out + "/corpus");
    core::SafetensorsWriter writer;
    writer.add("tokens", core::DType::I32, {static_cast<std::int64_t>(all.size())}, all.data(), all.size() * 4);
    writer.setMetadata("source", "evenly spaced " + std::to_string(r.sample_window) + "-token windows of the demo corpus's training shard");
    writer.write(out + "/corpus/sample.tokens.safetensors");
  }
  std::cout << nlohmann::json{{"demo", out}}.dump() << "\n";
  return 0;
}

}  // namespace monoscope::cli
