// monoscope-bench: the C++ side of tests/bench/run.sh. Prints one JSON line per measurement.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "api/engine.h"
#include "api/engine_impl.h"
#include "api/feature_db.h"
#include "scale_bench.h"
#include "index/token_corpus.h"
#include "index/umap.h"
#include "store/schema.h"
#include "store/sqlite.h"
#include "io/torch_bridge.h"
#include "io/weight_store.h"
#include "lm/attention_kernel.h"
#include "lm/packed_product.h"
#include "lm/transformer.h"
#include "sae/sae_trainer.h"
#include "sae/screened_encoder.h"
#include "util/sparse_row.h"
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

// The whole model's logits (GPT-2 small with random weights, or a model folder / .gguf file).
// Resident memory from /proc/self/status ("VmRSS:" now, "VmHWM:" the peak), in MB.
static double residentMegabytes(const char* key) {
  std::ifstream status("/proc/self/status");
  std::string k;
  double kb = 0;
  while (status >> k) {
    if (k == key) {
      status >> kb;
      return kb / 1024.0;
    }
  }
  return 0;
}

static int benchForward(int threads, int seq, int batch, int iters, const std::string& model_path) {
  configureThreads(threads);
  const auto t_load = Clock::now();
  std::unique_ptr<Transformer> model;
  if (model_path.empty()) {
    ModelConfig c;  // GPT-2 small
    c.vocab_size = 50257;
    c.d_model = 768;
    c.n_layers = 12;
    c.n_heads = 12;
    c.n_kv_heads = 12;
    c.d_head = 64;
    c.d_mlp = 3072;
    c.n_ctx = 1024;
    model = Transformer::initRandom(c, 0, c10::Device(c10::kCPU));
  } else {
    model = Transformer::load(model_path, c10::Device(c10::kCPU));
  }
  const double load_seconds = seconds(t_load, Clock::now());
  const double rss_after_load = residentMegabytes("VmRSS:");
  c10::InferenceMode guard;
  at::Tensor ids = at::randint(0, model->config().vocab_size, {batch, seq}, at::kLong);
  model->forward(ids);  // warm-up
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    model->forward(ids);
    best = std::min(best, seconds(t0, Clock::now()));
  }
  const at::ScalarType wd = model->weightDtype();
  const bool bf16_products = model->weightDtype() == at::kBFloat16 && bf16ProductsEnabled();
  std::cout << nlohmann::json{{"bench", "forward"}, {"impl", "monoscope"}, {"threads", threads},
                              {"dtype", bf16_products ? "bf16 products" : "f32"},
                              {"weights", wd == at::kFloat ? "float32" : wd == at::kBFloat16 ? "bfloat16" : "float16"},
                              {"parameters", model->config().parameterCount()},
                              {"model", model_path.empty() ? "gpt2-small-random" : model_path},
                              {"load_s", load_seconds}, {"rss_after_load_mb", rss_after_load},
                              {"peak_rss_mb", residentMegabytes("VmHWM:")},
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
  if (const char* knn = std::getenv("MONOSCOPE_UMAP_KNN")) o.knn = parseKnnMethod(knn);
  if (const char* sgd = std::getenv("MONOSCOPE_UMAP_SGD")) o.sgd = std::string(sgd) == "batched" ? UmapSgd::Batched : UmapSgd::Sequential;
  const auto t0 = Clock::now();
  // Stage times on stderr: where the time goes (k-NN, then the SGD epochs).
  std::string stage;
  auto last = t0;
  const ProgressFn progress = [&](const Progress& p) {
    if (p.stage != stage) {
      const auto now = Clock::now();
      if (!stage.empty()) std::cerr << "umap stage " << stage << ": " << seconds(last, now) << " s\n";
      stage = p.stage;
      last = now;
    }
    return true;
  };
  const at::Tensor y = umapEmbed(data, o, nullptr, progress);
  std::cerr << "umap stage " << stage << ": " << seconds(last, Clock::now()) << " s\n";
  const double dt = seconds(t0, Clock::now());
  saveTensors(out, {{"embedding", y}});
  std::cout << nlohmann::json{{"bench", "umap"}, {"impl", "monoscope"}, {"threads", threads}, {"n", data.size(0)},
                              {"seconds", dt}}.dump() << "\n";
  return 0;
}

// Time to load whole feature pages (random ids) from a database, and a sorted, paged list.
static int benchPage(const std::string& path, int queries) {
  const auto t_open = Clock::now();
  auto db = FeatureDb::open(path);
  const double open_ms = seconds(t_open, Clock::now()) * 1e3;
  const std::int64_t n = db->info().d_sae;
  // A synthetic database has examples for every stride-th feature only: pages are read there.
  const std::string recorded = db->metaValue("bench_sample_stride");
  const std::int64_t stride = recorded.empty() ? 1 : std::max<std::int64_t>(1, std::stoll(recorded));
  std::mt19937_64 rng(7);
  std::vector<double> ms;
  for (int q = 0; q < queries; ++q) {
    const auto id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>((n + stride - 1) / stride)) * stride;
    const auto t0 = Clock::now();
    const auto page = db->page(id);
    ms.push_back(seconds(t0, Clock::now()) * 1e3);
    if (page.summary.id != id) return 1;
  }
  std::sort(ms.begin(), ms.end());
  FeatureQuery fq;
  fq.sort = FeatureSort::Density;
  fq.descending = true;
  fq.limit = 100;
  const auto t1 = Clock::now();
  db->listFeatures(fq);
  const double list_ms = seconds(t1, Clock::now()) * 1e3;
  std::cout << nlohmann::json{{"bench", "feature_page"}, {"features", n}, {"queries", queries}, {"open_ms", open_ms},
                              {"median_ms", ms[ms.size() / 2]}, {"p95_ms", ms[ms.size() * 95 / 100]}, {"max_ms", ms.back()},
                              {"first_page_of_list_ms", list_ms}}.dump() << "\n";
  return 0;
}

// Runs `run` iters + 1 times (the first builds caches) and returns the median time in
// milliseconds; `last` receives the last result.
template <typename Fn>
static double medianMs(int iters, Fn&& run, at::Tensor* last) {
  std::vector<double> ms;
  for (int i = 0; i < iters + 1; ++i) {
    const auto t0 = Clock::now();
    *last = run();
    if (i > 0) ms.push_back(seconds(t0, Clock::now()) * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// b + x [M, K] @ w [K, N]: LibTorch's BLAS product against the packed oneDNN product, each timed
// as the median of `iters` runs and checked against a float64 product.
static int benchProduct(std::int64_t M, std::int64_t K, std::int64_t N, int threads, int iters) {
  tuneAllocator();
  configureThreads(threads);
  c10::InferenceMode guard;
  at::manual_seed(0);
  const at::Tensor x = at::randn({M, K}), w = at::randn({K, N}) / std::sqrt(static_cast<double>(K)), b = at::randn({N});
  const at::Tensor exact = at::addmm(b.to(at::kDouble), x.to(at::kDouble), w.to(at::kDouble));
  auto time = [&](const char* impl, auto&& product) {
    at::Tensor y;
    const double median = medianMs(iters, product, &y);
    const double err = (y.to(at::kDouble) - exact).abs().max().item<double>();
    std::cout << nlohmann::json{{"bench", "product"}, {"impl", impl}, {"shape", {M, K, N}}, {"threads", threads},
                                {"median_ms", median}, {"gflops", 2e-6 * M * K * N / median},
                                {"max_abs_error", err}, {"max_abs_value", exact.abs().max().item<double>()}}.dump() << "\n";
  };
  time("blas", [&] { return at::addmm(b, x, w); });
  if (!packedProductsAvailable()) {
    std::cerr << "this build has no oneDNN: packed products are not available\n";
    return 0;
  }
  PackedProduct product;
  time("packed", [&] { return product.addmm(b, x, w); });
  if (bf16ProductsAvailable()) {
    // The same product with the weight stored as BF16 ([N, K], as a checkpoint holds it).
    const at::Tensor stored = w.t().contiguous().to(at::kBFloat16);
    time("bf16", [&] { return product.addmm(b, x, stored.t()); });
  }
  return 0;
}

// Causal attention on GPT-2's layout (q, k, v views of one qkv product): the fused kernel
// (lm/attention_kernel.h, batch x heads split between threads as the model does) against LibTorch's
// masked softmax between two batched products, each the median of `iters` runs; GFLOP/s count the
// causal half's multiply-adds of both products.
static int benchAttention(std::int64_t B, std::int64_t H, std::int64_t T, std::int64_t dh, int threads, int iters) {
  tuneAllocator();
  configureThreads(threads);
  c10::InferenceMode guard;
  at::manual_seed(0);
  const at::Tensor qkv = at::randn({B, T, 3, H, dh});
  const at::Tensor q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2), v = qkv.select(2, 2).transpose(1, 2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  const at::Tensor mask = at::ones({T, T}, at::kBool).triu(1);
  auto libtorch = [&] {
    const at::Tensor s = at::matmul(q, k.transpose(2, 3)).mul_(scale).masked_fill_(mask, -std::numeric_limits<float>::infinity());
    return at::matmul(at::softmax(s, -1), v).transpose(1, 2).reshape({B, T, H * dh});
  };
  auto fused = [&] {
    at::Tensor out = at::empty({B, T, H * dh});
    AttentionArgs a;
    a.q = q.data_ptr<float>(), a.q_b = q.stride(0), a.q_h = q.stride(1), a.q_t = q.stride(2);
    a.k = k.data_ptr<float>(), a.k_b = k.stride(0), a.k_h = k.stride(1), a.k_t = k.stride(2);
    a.v = v.data_ptr<float>(), a.v_b = v.stride(0), a.v_h = v.stride(1), a.v_t = v.stride(2);
    a.out = out.data_ptr<float>(), a.o_b = T * H * dh, a.o_h = dh, a.o_t = H * dh;
    a.B = B, a.H = H, a.Hkv = H, a.T = T, a.S = T, a.dh = dh, a.scale = static_cast<float>(scale);
    const std::int64_t BH = B * H, n = at::get_num_threads();
    at::parallel_for(0, BH, (BH + n - 1) / n, [&](std::int64_t h0, std::int64_t h1) { fusedCausalAttention(a, h0, h1); });
    return out;
  };
  const at::Tensor reference = libtorch();
  const double flop = 2.0 * 2.0 * static_cast<double>(B * H) * dh * (T * (T + 1) / 2.0);
  auto time = [&](const char* impl, auto&& run) {
    at::Tensor y;
    const double median = medianMs(iters, run, &y);
    std::cout << nlohmann::json{{"bench", "attention"}, {"impl", impl}, {"shape", {B, H, T, dh}}, {"threads", threads},
                                {"median_ms", median}, {"gflops", 1e-6 * flop / median},
                                {"max_abs_diff_vs_libtorch", (y - reference).abs().max().item<double>()}}.dump() << "\n";
  };
  time("libtorch", libtorch);
  if (!fusedAttentionSupported(dh)) {
    std::cerr << "this CPU has no AVX-512 (or dh is not a multiple of 16): the fused kernel is not available\n";
    return 0;
  }
  time("fused", fused);
  return 0;
}

// The SAE encoder on one scan block (`windows` windows of the corpus at the SAE's hook), from the
// hook's activations to each token's positive activations: the screened encoder (bf16 tiles, then
// exact fp32 dots; sae/screened_encoder.h) against the packed fp32 product followed by the sparse
// pass over its rows, on one thread as a scan lane runs it; medians of `iters` runs.
static int benchEncoder(const std::string& model, const std::string& sae_dir, const std::string& corpus_path,
                        int windows, int iters) {
  tuneAllocator();
  configureThreads(1);
  EngineOptions eo;
  eo.model_dir = model;
  eo.sae_dir = sae_dir;
  auto engine = Engine::open(eo);
  const auto tok = Tokenizer::fromDirectory(model);
  const std::int64_t context = engine->info().window;
  TokenCorpus corpus(corpus_path, tok, windows * context, context);
  std::vector<std::int64_t> flat;
  std::vector<std::int32_t> ids;
  for (std::int64_t w = 0; w < corpus.windows(); ++w) {
    corpus.windowTokens(w, &ids);
    flat.insert(flat.end(), ids.begin(), ids.end());
  }
  c10::InferenceMode guard;
  const at::Tensor h = engine->impl().hookActivationsBatch(at::tensor(flat, at::kLong).view({-1, context}));
  const at::Tensor x = h.reshape({-1, h.size(2)}).contiguous();
  const Sae& sae = *engine->impl().sae;
  auto dense = [&] {
    const bool was = ScreenedEncoder::setEnabled(false);
    const at::Tensor acts = sae.encode(x).contiguous();
    ScreenedEncoder::setEnabled(was);
    SparseRows rows;
    appendPositiveRows(acts.data_ptr<float>(), acts.size(0), acts.size(1), &rows);
    return rows;
  };
  auto screened = [&] {
    SparseRows rows;
    if (!sae.encodeSparse(x, &rows)) throw std::runtime_error("the screened encoder does not apply");
    return rows;
  };
  auto median = [&](auto&& run, SparseRows* last) {
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
      const auto t0 = Clock::now();
      *last = run();
      ms.push_back(1e3 * seconds(t0, Clock::now()));
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  SparseRows a, b;
  const double ms_dense = median(dense, &a);
  std::cout << nlohmann::json{{"bench", "encoder"}, {"impl", "packed+sparse"}, {"rows", x.size(0)},
                              {"median_ms", ms_dense}, {"active", a.features.size()}}.dump() << "\n";
  if (!ScreenedEncoder::supported()) {
    std::cerr << "this CPU has no AMX-BF16 (or MONOSCOPE_SCREENED_ENCODER=0): the screened encoder is not available\n";
    return 0;
  }
  const double ms_screened = median(screened, &b);
  double max_diff = 0;
  std::size_t common = 0;
  for (std::int64_t r = 0; r < b.rows(); ++r) {  // values of the features active on both paths
    std::size_t i = a.offsets[r], j = b.offsets[r];
    while (i < a.offsets[r + 1] && j < b.offsets[r + 1]) {
      if (a.features[i] == b.features[j]) {
        max_diff = std::max(max_diff, static_cast<double>(std::fabs(a.acts[i] - b.acts[j])));
        ++common, ++i, ++j;
      } else if (a.features[i] < b.features[j]) {
        ++i;
      } else {
        ++j;
      }
    }
  }
  std::cout << nlohmann::json{{"bench", "encoder"}, {"impl", "screened"}, {"rows", x.size(0)},
                              {"median_ms", ms_screened}, {"active", b.features.size()}, {"common", common},
                              {"max_abs_diff", max_diff}, {"speedup", ms_dense / ms_screened}}.dump() << "\n";
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 5 && std::strcmp(argv[1], "product") == 0)
    return benchProduct(std::atoll(argv[2]), std::atoll(argv[3]), std::atoll(argv[4]), argc > 5 ? std::atoi(argv[5]) : 2,
                        argc > 6 ? std::atoi(argv[6]) : 20);
  if (argc >= 6 && std::strcmp(argv[1], "attention") == 0)
    return benchAttention(std::atoll(argv[2]), std::atoll(argv[3]), std::atoll(argv[4]), std::atoll(argv[5]),
                          argc > 6 ? std::atoi(argv[6]) : 2, argc > 7 ? std::atoi(argv[7]) : 20);
  if (argc >= 4 && std::strcmp(argv[1], "synthetic-db") == 0)
    return monoscope::bench::writeSyntheticDb(argv[2], std::atoll(argv[3]), argc > 4 ? std::atoll(argv[4]) : 20000,
                                              argc > 5 ? std::atoi(argv[5]) : 50257);
  if (argc >= 3 && std::strcmp(argv[1], "scale") == 0) return monoscope::bench::benchScale(argv[2], argc > 3 ? std::atoi(argv[3]) : 200);
  if (argc >= 4 && std::strcmp(argv[1], "hnsw") == 0)
    return monoscope::bench::benchHnsw(std::atoll(argv[2]), std::atoll(argv[3]), argc > 4 ? std::atoi(argv[4]) : 2);
  if (argc >= 6 && std::strcmp(argv[1], "wide-sae") == 0)
    return monoscope::bench::benchWideSae(argv[2], argv[3], std::atoll(argv[4]), std::atoll(argv[5]));
  if (argc >= 3 && std::strcmp(argv[1], "page") == 0) return benchPage(argv[2], argc > 3 ? std::atoi(argv[3]) : 200);
  if (argc >= 5 && std::strcmp(argv[1], "umap") == 0)
    return benchUmap(argv[2], argv[3], argv[4], argc > 5 ? std::atoi(argv[5]) : 2);
  if (argc >= 3 && std::strcmp(argv[1], "sae") == 0)
    return benchSae(argv[2], argc > 3 ? std::atoi(argv[3]) : 2, argc > 4 ? std::atoi(argv[4]) : 2048,
                    argc > 5 ? std::atoi(argv[5]) : 5, argc > 6 ? std::atoi(argv[6]) : 768,
                    argc > 7 ? std::atoi(argv[7]) : 24576);
  if (argc >= 4 && std::strcmp(argv[1], "tokenizer") == 0)
    return benchTokenizer(argv[2], argv[3], argc > 4 ? std::atoi(argv[4]) : 3);
  if (argc >= 5 && std::strcmp(argv[1], "encoder") == 0)
    return benchEncoder(argv[2], argv[3], argv[4], argc > 5 ? std::atoi(argv[5]) : 16, argc > 6 ? std::atoi(argv[6]) : 9);
  if (argc >= 2 && std::strcmp(argv[1], "forward") == 0)
    return benchForward(argc > 2 ? std::atoi(argv[2]) : 2, argc > 3 ? std::atoi(argv[3]) : 256,
                        argc > 4 ? std::atoi(argv[4]) : 1, argc > 5 ? std::atoi(argv[5]) : 5, argc > 6 ? argv[6] : "");
  std::cerr << "usage: monoscope-bench tokenizer DIR FILE [repeats] | forward [threads seq batch iters [MODEL]] |\n"
               "       sae standard|topk [threads batch steps d_in d_sae] | product M K N [threads iters] |\n"
               "       attention B H T dh [threads iters] | encoder MODEL SAE CORPUS [windows iters] |\n"
               "       synthetic-db DB N [sample vocab] | scale DB [queries] | hnsw N D [threads] | wide-sae MODEL DIR N D\n";
  return 2;
}
