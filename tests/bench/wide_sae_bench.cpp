// A dictionary the paper's size opened by the engine: a synthetic TopK SAE of n features in the
// SAELens layout with F16 weights (written once, streamed to disk), read in place, and timed on
// every query the app makes of an SAE: encoding a prompt, a feature's values, the strongest
// features of the last token, contrastive search, attribution, logit effects and steered
// generation; peak RSS. The model is any with d_model = d_in (the bench script passes the
// tiny GPT-2 fixture).
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/engine.h"
#include "api/engine_impl.h"
#include "scale_bench.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace monoscope::core;

namespace monoscope::bench {

namespace {

// Streams random F16 values, `count` of them, scaled by `scale`, in chunks.
void writeRandomHalf(std::ofstream& out, std::int64_t count, double scale, std::uint64_t seed) {
  at::manual_seed(seed);
  constexpr std::int64_t kChunk = 1 << 24;
  for (std::int64_t done = 0; done < count; done += kChunk) {
    const at::Tensor t = (at::randn({std::min(kChunk, count - done)}) * scale).to(at::kHalf).contiguous();
    out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  }
}

void writeWideSae(const std::string& dir, std::int64_t n, std::int64_t d, std::int64_t k) {
  fs::create_directories(dir);
  nlohmann::json cfg = {{"architecture", "topk"}, {"d_in", d}, {"d_sae", n}, {"k", k}, {"dtype", "float16"},
                        {"apply_b_dec_to_input", true}, {"normalize_activations", "none"},
                        {"metadata", {{"hook_name", "blocks.0.hook_resid_post"}, {"model_name", "synthetic"}, {"context_size", 64}}}};
  // W_enc [d, n], b_enc [n], W_dec [n, d], b_dec [d], all F16.
  const std::int64_t enc = d * n * 2, benc = n * 2, dec = n * d * 2, bdec = d * 2;
  nlohmann::json header = {
      {"W_enc", {{"dtype", "F16"}, {"shape", {d, n}}, {"data_offsets", {0, enc}}}},
      {"b_enc", {{"dtype", "F16"}, {"shape", {n}}, {"data_offsets", {enc, enc + benc}}}},
      {"W_dec", {{"dtype", "F16"}, {"shape", {n, d}}, {"data_offsets", {enc + benc, enc + benc + dec}}}},
      {"b_dec", {{"dtype", "F16"}, {"shape", {d}}, {"data_offsets", {enc + benc + dec, enc + benc + dec + bdec}}}}};
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h += ' ';
  const std::string tmp = dir + "/sae_weights.safetensors.partial";
  {
    std::ofstream out(tmp, std::ios::binary);
    const std::uint64_t len = h.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    writeRandomHalf(out, d * n, 1.0 / std::sqrt(static_cast<double>(d)), 1);
    writeRandomHalf(out, n, 0.0, 2);
    writeRandomHalf(out, n * d, 1.0 / std::sqrt(static_cast<double>(d)), 3);
    writeRandomHalf(out, d, 0.0, 4);
    if (!out) throw Error("could not write '" + tmp + "' (disk full?)");
  }
  fs::rename(tmp, dir + "/sae_weights.safetensors");
  std::ofstream(dir + "/cfg.json") << cfg.dump(2);
}

template <typename F>
double timeMs(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int benchWideSae(const std::string& model, const std::string& dir, std::int64_t n, std::int64_t d) {
  double write_s = 0;
  if (!fs::exists(dir + "/sae_weights.safetensors")) write_s = timeMs([&] { writeWideSae(dir, n, d, 32); }) / 1e3;
  EngineOptions o;
  o.model_dir = model;
  o.sae_dir = dir;
  o.threads = 2;
  std::unique_ptr<Engine> engine;
  const double open_ms = timeMs([&] { engine = Engine::open(o); });
  const double open_rss = peakRssMb();
  if (engine->info().d_sae != n) throw Error("the engine opened " + std::to_string(engine->info().d_sae) + " features");
  const std::string prompt = "one two three four five six seven eight nine ten eleven twelve";
  const std::int64_t last = n - 1;
  nlohmann::ordered_json j;
  j["bench"] = "wide_sae";
  j["features"] = n;
  j["d_in"] = d;
  j["mapped"] = engine->impl().sae->mapped();
  j["file_gb"] = static_cast<double>(fs::file_size(dir + "/sae_weights.safetensors")) / 1e9;
  if (write_s > 0) j["write_s"] = write_s;
  j["open_ms"] = open_ms;
  j["open_rss_mb"] = open_rss;
  EncodedText enc;
  j["encode_prompt_ms"] = timeMs([&] { enc = engine->encode(prompt, 16); });
  j["prompt_tokens"] = enc.tokens.size();
  j["active_per_token"] = enc.active.empty() ? 0 : enc.active.back().size();
  j["feature_values_ms"] = timeMs([&] { engine->featureValues(prompt, last); });
  j["top_last_token_ms"] = timeMs([&] { engine->topFeaturesLastToken(prompt, 10); });
  j["contrastive_ms"] = timeMs([&] { engine->contrastive(prompt, "seven eight nine", 10); });
  std::vector<std::string> single;  // two token texts that are one token each, for attribution
  for (std::int32_t id = 0; id < engine->info().vocab_size && single.size() < 2; ++id) {
    const std::string t = engine->tokenText(id);
    try {
      if (!t.empty() && engine->tokenIds(t).size() == 1) single.push_back(t);
    } catch (const Error&) {
    }
  }
  if (single.size() < 2) throw Error("the model's vocabulary has no two single-token texts");
  j["attribute_ms"] = timeMs([&] { engine->attribute(prompt, single[0], single[1], 10); });
  j["logit_effects_ms"] = timeMs([&] { engine->logitEffects(last, 10); });
  GenerateRequest req;
  req.prompt = prompt;
  req.max_tokens = 4;
  req.edits = {{last, 5.0}};
  GenerateResult g;
  j["generate_4_steered_ms"] = timeMs([&] { g = engine->generate(req); });
  j["steered_differs"] = g.steered_run.ids != g.default_run.ids;
  j["peak_rss_mb"] = peakRssMb();  // with the pages of the mapped file that were read
  {
    std::ifstream status("/proc/self/status");  // RssAnon: the process's own memory, not the file's
    for (std::string line; std::getline(status, line);)
      if (line.rfind("RssAnon:", 0) == 0) j["anon_rss_mb"] = std::stod(line.substr(8)) / 1024.0;
  }
  std::cout << j.dump() << "\n";
  return 0;
}

}  // namespace monoscope::bench
