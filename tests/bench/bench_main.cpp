// monoscope-bench: the C++ side of tests/bench/run.sh. Prints one JSON line per measurement.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "index/umap.h"
#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "lm/transformer.h"
#include "sae/sae_trainer.h"
#include "text/tokenizer.h"
#include "util/mapped_file.h"
#include "util/runtime.h"

using namespace monoscope::core;
using Clock = std::chrono::steady_clock;

static double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

static int benchTokenizer(const std::string& dir, const std::string& file, int repeats) {
  configureThreads(1);
  const auto tok = Tokenizer::fromDirectory(dir);
  const std::string text = readTextFile(file);
  double best = 1e30;
  std::uint64_t checksum = 0;
  std::size_t count = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    const auto ids = tok.encodeIds(text);
    best = std::min(best, seconds(t0, Clock::now()));
    checksum = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) checksum = checksum * 1000003u + static_cast<std::uint64_t>(ids[i]);
    count = ids.size();
  }
  std::cout << nlohmann::json{{"bench", "tokenizer"}, {"impl", "monoscope"}, {"mb_per_s", text.size() / best / 1e6},
                              {"tokens", count}, {"checksum", std::to_string(checksum)}}.dump() << "\n";
  return 0;
}

static int benchForward(int threads, int seq, int batch, int iters) {
  configureThreads(threads);
  ModelConfig c;  // GPT-2 small
  c.vocab_size = 50257;
  c.d_model = 768;
  c.n_layers = 12;
  c.n_heads = 12;
  c.n_kv_heads = 12;
  c.d_head = 64;
  c.d_mlp = 3072;
  c.n_ctx = 1024;
  auto model = Transformer::initRandom(c, 0, c10::Device(c10::kCPU));
  c10::InferenceMode guard;
  at::Tensor ids = at::randint(0, c.vocab_size, {batch, seq}, at::kLong);
  model->forward(ids);  // warm-up
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    model->forward(ids);
    best = std::min(best, seconds(t0, Clock::now()));
  }
  std::cout << nlohmann::json{{"bench", "forward"}, {"impl", "monoscope"}, {"threads", threads},
                              {"tokens_per_s", batch * seq / best}}.dump() << "\n";
  return 0;
}

// SAE training steps on Gaussian activations (d_in 768, d_sae 24576 by default).
static int benchSae(const std::string& arch, int threads, int batch, int steps, int d_in, int d_sae) {
  configureThreads(threads);
  SaeTrainConfig c;
  c.architecture = arch;
  c.d_in = d_in;
  c.d_sae = d_sae;
  c.k = 32;
  c.batch_size = batch;
  c.total_tokens = static_cast<std::int64_t>(batch) * (steps + 1) * 10;
  c.grad_clip = 0;  // the peer loop does not clip
  SaeTrainer t(c, c10::Device(c10::kCPU));
  at::Tensor x = at::randn({batch, d_in});
  t.step(x);  // warm-up (and input scale)
  const auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) t.step(x);
  const double dt = seconds(t0, Clock::now());
  std::cout << nlohmann::json{{"bench", "sae_" + arch}, {"impl", "monoscope"}, {"threads", threads},
                              {"tokens_per_s", static_cast<double>(batch) * steps / dt}}.dump() << "\n";
  return 0;
}

// UMAP of the rows of tensor `name` in a safetensors file; writes `embedding` [n, 2].
static int benchUmap(const std::string& in, const std::string& name, const std::string& out, int threads) {
  configureThreads(threads);
  const auto store = WeightStore::fromFile(in);
  const at::Tensor data = toFloatTensor(store.tensor(name), in);
  UmapOptions o;
  const auto t0 = Clock::now();
  const at::Tensor y = umapEmbed(data, o);
  const double dt = seconds(t0, Clock::now());
  saveTensors(out, {{"embedding", y}});
  std::cout << nlohmann::json{{"bench", "umap"}, {"impl", "monoscope"}, {"threads", threads}, {"n", data.size(0)},
                              {"seconds", dt}}.dump() << "\n";
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 5 && std::strcmp(argv[1], "umap") == 0)
    return benchUmap(argv[2], argv[3], argv[4], argc > 5 ? std::atoi(argv[5]) : 2);
  if (argc >= 3 && std::strcmp(argv[1], "sae") == 0)
    return benchSae(argv[2], argc > 3 ? std::atoi(argv[3]) : 2, argc > 4 ? std::atoi(argv[4]) : 2048,
                    argc > 5 ? std::atoi(argv[5]) : 5, argc > 6 ? std::atoi(argv[6]) : 768,
                    argc > 7 ? std::atoi(argv[7]) : 24576);
  if (argc >= 4 && std::strcmp(argv[1], "tokenizer") == 0)
    return benchTokenizer(argv[2], argv[3], argc > 4 ? std::atoi(argv[4]) : 3);
  if (argc >= 2 && std::strcmp(argv[1], "forward") == 0)
    return benchForward(argc > 2 ? std::atoi(argv[2]) : 2, argc > 3 ? std::atoi(argv[3]) : 256,
                        argc > 4 ? std::atoi(argv[4]) : 1, argc > 5 ? std::atoi(argv[5]) : 5);
  std::cerr << "usage: monoscope-bench tokenizer DIR FILE [repeats] | forward [threads seq batch iters] |\n"
               "       sae standard|topk [threads batch steps d_in d_sae]\n";
  return 2;
}
