// Finalising an index: statistics, intervals, reservoir samples and top examples from one or
// more scans, then logit effects, neighbours, the map and first explanations, written to a
// temporary database that replaces the output atomically.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>

#include "api/engine.h"
#include "api/engine_impl.h"
#include "index/index_job.h"
#include "index/neighbours.h"
#include "index/scan_set.h"
#include "index/umap.h"
#include "store/feature_layers.h"
#include "index/window_log.h"
#include "interp/concept_scorer.h"
#include "interp/explainer.h"
#include "store/schema.h"
#include "store/sqlite.h"
#include "util/cancel.h"
#include "util/error.h"
#include "util/numbers.h"
#include "util/utf8.h"

namespace fs = std::filesystem;

namespace monoscope::core {

namespace {

const std::string kNoDomain;
constexpr std::int64_t kRareActivations = 20;  // fewer in the scan: the explanation says "Rare"
constexpr double kWindowStartShare = 0.5;      // of the examples' activation at a window's first two
                                               // tokens (by chance 1 of the 127 positions that record,
                                               // the first left out): "Window start"

// Mean plus `sds` standard deviations of a histogram's values, each bin at its centre.
double histogramAbove(const Histogram& h, double sds) {
  const double w = h.counts.empty() ? 0.0 : (h.hi - h.lo) / static_cast<double>(h.counts.size());
  double n = 0, sum = 0, sq = 0;
  for (std::size_t i = 0; i < h.counts.size(); ++i) {
    const double x = h.lo + (static_cast<double>(i) + 0.5) * w, c = static_cast<double>(h.counts[i]);
    n += c, sum += c * x, sq += c * x * x;
  }
  if (n <= 0) return 0.0;
  const double mean = sum / n;
  return mean + sds * std::sqrt(std::max(0.0, sq / n - mean * mean));
}

struct Cand {
  float act;
  std::int64_t window;
  std::int32_t pos;
};
// Stronger activation first; ties broken by position in the corpus, so shards agree.
bool better(const Cand& a, const Cand& b) {
  if (a.act != b.act) return a.act > b.act;
  if (a.window != b.window) return a.window < b.window;
  return a.pos < b.pos;
}

struct Res {
  std::uint64_t key;
  std::int64_t window;
  std::int32_t pos;
  float act;
};
// Smaller priority first; equal priorities (a hash collision) ordered by place in the corpus.
bool resLess(const Res& a, const Res& b) {
  if (a.key != b.key) return a.key < b.key;
  if (a.window != b.window) return a.window < b.window;
  return a.pos < b.pos;
}

// Keeps in `heap` the `limit` items that come first under the strict order `first`, whatever
// the order they arrive in (the heap's front is the last of those kept).
template <typename T, typename First>
void keepFirst(std::vector<T>& heap, const T& x, int limit, First first) {
  if (static_cast<int>(heap.size()) < limit) {
    heap.push_back(x);
    std::push_heap(heap.begin(), heap.end(), first);
  } else if (limit > 0 && first(x, heap.front())) {
    std::pop_heap(heap.begin(), heap.end(), first);
    heap.back() = x;
    std::push_heap(heap.begin(), heap.end(), first);
  }
}

int binOf(float a, float max, int bins) {
  if (!(max > 0)) return 0;
  const int b = static_cast<int>(std::ceil(static_cast<double>(a) * bins / static_cast<double>(max))) - 1;
  return std::clamp(b, 0, bins - 1);
}

struct Request {
  std::uint32_t feature;
  int kind;      // 0 top, 1 interval sample
  int interval;
  int rank;
  std::int32_t pos;
  float act;
};

void syncFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string blobOf(const std::vector<std::int64_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(std::int64_t));
}

}  // namespace

void finalizeIndex(const std::vector<std::string>& scans, const std::string& out, const std::string& device,
                   int threads, const ProgressFn& progress, const Engine* scan_engine) {
  ScanSet set = openScans(scans);
  const std::int64_t d_sae = set.d_sae;
  const int K = static_cast<int>(set.integer("intervals")), M = static_cast<int>(set.integer("per_interval"));
  const int T = static_cast<int>(set.integer("top")), H = static_cast<int>(set.integer("histogram_bins"));
  const int left = static_cast<int>(set.integer("left")), right = static_cast<int>(set.integer("right"));
  const std::uint64_t seed = parseUint64(set.meta.count("seed") ? set.meta.at("seed") : "", "the scan's metadata seed");
  report(progress, "load", 0, 1, "model and SAE for logit effects and the map");
  EngineOptions eo;
  eo.model_dir = set.meta.at("model");
  eo.sae_dir = set.meta.at("sae");
  // A merge reads the SAE again (logit effects, neighbours, the map): it must be the scanned one.
  // (A single run keeps the engine that scanned; a folder that is gone is named by Engine::open.)
  const auto fp = set.meta.find("sae_fingerprint");
  const std::string now = scan_engine == nullptr && fp != set.meta.end() && !fp->second.empty() ? dictionaryFingerprint(eo.sae_dir) : "";
  if (!now.empty() && now != fp->second)
    throw Error("the SAE in '" + eo.sae_dir + "' changed since the scan (its files differ from the fingerprint the scan recorded)",
                "restore the SAE the scan was made with, or rerun the scan with this one");
  eo.device = device;
  eo.threads = threads;
  // Logit effects with the model's matrices as the scan kept them.
  eo.weights = set.meta.count("weights") ? set.meta.at("weights") : "auto";
  std::unique_ptr<Engine> opened;
  if (scan_engine == nullptr) opened = Engine::open(eo);
  const Engine* engine = scan_engine != nullptr ? scan_engine : opened.get();
  if (engine->info().d_sae != d_sae) throw Error("the SAE in '" + eo.sae_dir + "' changed since the scan (d_sae differs)", "rerun the scan");
  const Engine::Impl& E = engine->impl();
  const std::int64_t vocab = E.tokenizer.vocabSize();

  // Passes 1 and 2 split the windows between threads, each with its own partial results, merged
  // in a fixed order: counts, maxima, top examples and samples do not depend on the split (the
  // candidates are totally ordered), sums only to rounding.
  // Each part's partial results take ~(24 K + 48) bytes per feature before any example is kept:
  // parts are limited so that together they stay near 1 GiB for large dictionaries.
  const std::int64_t per_part = std::max<std::int64_t>(1, d_sae * (24 * K + 48));
  const int parts = static_cast<int>(std::clamp<std::int64_t>(std::min<std::int64_t>(threads, (std::int64_t{1} << 30) / per_part), 1, 8));
  const auto d = static_cast<std::size_t>(d_sae);

  // Pass 1: counts, sums, maxima, top examples, corpus token frequencies.
  struct Stats {
    std::vector<std::int64_t> count, token_counts;
    std::vector<double> sum;
    std::vector<float> max;
    std::vector<std::vector<Cand>> top;
    std::int64_t total_tokens = 0;
  };
  auto pushTop = [T](std::vector<Cand>& h, const Cand& c) { keepFirst(h, c, T, better); };
  std::vector<Stats> stats(static_cast<std::size_t>(parts));
  for (auto& st : stats) {
    st.count.assign(d, 0);
    st.token_counts.assign(static_cast<std::size_t>(vocab), 0);
    st.sum.assign(d, 0.0);
    st.max.assign(d, 0.0f);
    st.top.resize(d);
  }
  forEachWindowInParts(set, parts, "statistics", progress, [&](int part, std::int64_t w, const WindowLog& log) {
    Stats& st = stats[static_cast<std::size_t>(part)];
    for (std::size_t p = 0; p < log.size(); ++p) {
      const auto t = log.tokens[p];
      if (t >= 0 && t < vocab) ++st.token_counts[static_cast<std::size_t>(t)];
      ++st.total_tokens;
      for (auto i = log.offsets[p]; i < log.offsets[p + 1]; ++i) {
        const auto f = log.features[i];
        if (f >= d_sae) throw Error("scan window " + std::to_string(w) + " names feature " + std::to_string(f) + " beyond d_sae");
        const float a = log.acts[i];
        ++st.count[f];
        st.sum[f] += a;
        st.max[f] = std::max(st.max[f], a);
        pushTop(st.top[f], Cand{a, w, static_cast<std::int32_t>(p)});
      }
    }
  });
  Stats& all = stats[0];
  for (std::size_t q = 1; q < stats.size(); ++q) {
    Stats& st = stats[q];
    for (std::size_t f = 0; f < d; ++f) {
      all.count[f] += st.count[f];
      all.sum[f] += st.sum[f];
      all.max[f] = std::max(all.max[f], st.max[f]);
      for (const Cand& c : st.top[f]) pushTop(all.top[f], c);
      std::vector<Cand>().swap(st.top[f]);
    }
    for (std::size_t t = 0; t < all.token_counts.size(); ++t) all.token_counts[t] += st.token_counts[t];
    all.total_tokens += st.total_tokens;
  }
  stats.resize(1);
  std::vector<std::int64_t>& count = all.count;
  std::vector<std::int64_t>& token_counts = all.token_counts;
  std::vector<double>& sum = all.sum;
  std::vector<float>& max = all.max;
  std::vector<std::vector<Cand>>& top = all.top;
  const std::int64_t total_tokens = all.total_tokens;

  // Pass 2: interval counts, histograms and uniform samples per interval (the M smallest
  // hash priorities: a reservoir that any split into shards reproduces exactly).
  struct Samples {
    std::vector<std::int64_t> iv_count, hist;
    std::vector<std::vector<Res>> res;
  };
  auto pushRes = [M](std::vector<Res>& r, const Res& x) { keepFirst(r, x, M, resLess); };
  std::vector<Samples> samples(static_cast<std::size_t>(parts));
  for (auto& sm : samples) {
    sm.iv_count.assign(static_cast<std::size_t>(d_sae * K), 0);
    sm.hist.assign(static_cast<std::size_t>(d_sae * H), 0);
    sm.res.resize(static_cast<std::size_t>(d_sae * K));
  }
  forEachWindowInParts(set, parts, "intervals", progress, [&](int part, std::int64_t w, const WindowLog& log) {
    Samples& sm = samples[static_cast<std::size_t>(part)];
    for (std::size_t p = 0; p < log.size(); ++p) {
      for (auto i = log.offsets[p]; i < log.offsets[p + 1]; ++i) {
        const auto f = log.features[i];
        if (f >= d_sae) throw Error("scan window " + std::to_string(w) + " names feature " + std::to_string(f) + " beyond d_sae");
        const float a = log.acts[i];
        const int iv = binOf(a, max[f], K);
        ++sm.iv_count[f * K + iv];
        ++sm.hist[f * H + binOf(a, max[f], H)];
        pushRes(sm.res[f * K + iv], Res{mixHash(seed, f, static_cast<std::uint64_t>(w), p), w, static_cast<std::int32_t>(p), a});
      }
    }
  });
  Samples& merged = samples[0];
  for (std::size_t q = 1; q < samples.size(); ++q) {
    Samples& sm = samples[q];
    for (std::size_t i = 0; i < merged.iv_count.size(); ++i) merged.iv_count[i] += sm.iv_count[i];
    for (std::size_t i = 0; i < merged.hist.size(); ++i) merged.hist[i] += sm.hist[i];
    for (std::size_t i = 0; i < merged.res.size(); ++i) {
      for (const Res& x : sm.res[i]) pushRes(merged.res[i], x);
      std::vector<Res>().swap(sm.res[i]);
    }
  }
  samples.resize(1);
  std::vector<std::int64_t>& iv_count = merged.iv_count;
  std::vector<std::int64_t>& hist = merged.hist;
  std::vector<std::vector<Res>>& res = merged.res;

  // The output is built beside its final path and renamed into place when complete.
  const std::string partial = out + ".partial";
  fs::remove(partial);
  auto db = std::make_unique<Sqlite>(partial, Sqlite::Open::Create);
  db->exec("PRAGMA journal_mode=OFF");
  db->exec("PRAGMA synchronous=OFF");
  migrateFeatureSchema(*db);
  Transaction txn(*db);
  // The schema's indexes are built once after the bulk inserts (a sort), not row by row.
  std::vector<std::pair<std::string, std::string>> indexes;
  {
    auto st = db->prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL");
    while (st.step()) indexes.emplace_back(st.text(0), st.text(1));
  }
  for (const auto& [name, sql] : indexes) db->exec("DROP INDEX \"" + name + "\"");

  // Pass 3: the examples' context windows.
  std::unordered_map<std::int64_t, std::vector<Request>> requests;
  for (std::int64_t f = 0; f < d_sae; ++f) {
    auto& h = top[static_cast<std::size_t>(f)];
    std::sort(h.begin(), h.end(), better);
    for (std::size_t r = 0; r < h.size(); ++r)
      requests[h[r].window].push_back({static_cast<std::uint32_t>(f), 0, 0, static_cast<int>(r), h[r].pos, h[r].act});
    for (int iv = 0; iv < K; ++iv) {
      auto& s = res[static_cast<std::size_t>(f * K + iv)];
      std::sort(s.begin(), s.end(), [](const Res& a, const Res& b) {
        return a.act != b.act ? a.act > b.act : (a.window != b.window ? a.window < b.window : a.pos < b.pos);
      });
      for (std::size_t r = 0; r < s.size(); ++r)
        requests[s[r].window].push_back({static_cast<std::uint32_t>(f), 1, iv, static_cast<int>(r), s[r].pos, s[r].act});
    }
  }
  // What each feature's examples show, for its explanation (interp/explainer.h).
  std::vector<FeatureEvidence> evidence(static_cast<std::size_t>(d_sae));
  const WindowDomains domains = windowDomains(set, E.tokenizer);
  {
    auto ins = db->prepare("INSERT INTO examples(feature, kind, interval, rank, max_act, center, window, position, tokens, acts, scale) "
                           "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    // Windows with examples are taken 64 at a time: their rows (token ids, activations quantised
    // to 1/65535 of the feature's maximum) built on every thread, then written in window order.
    struct Row {
      std::vector<std::int32_t> toks;
      std::vector<std::uint16_t> q;
      double scale = 1.0;
      int first = 0;  // the window position of toks[0]
    };
    struct Pending {
      std::int64_t window;
      WindowLog log;
      const std::vector<Request>* reqs;
    };
    std::vector<Pending> pending;
    std::vector<std::vector<Row>> rows;
    auto flush = [&] {
      rows.assign(pending.size(), {});
      at::parallel_for(0, static_cast<std::int64_t>(pending.size()), 1, [&](std::int64_t i0, std::int64_t i1) {
        for (std::int64_t i = i0; i < i1; ++i) {
          const WindowLog& log = pending[static_cast<std::size_t>(i)].log;
          const auto& reqs = *pending[static_cast<std::size_t>(i)].reqs;
          auto& out = rows[static_cast<std::size_t>(i)];
          out.resize(reqs.size());
          const int n = static_cast<int>(log.size());
          for (std::size_t k = 0; k < reqs.size(); ++k) {
            const Request& r = reqs[k];
            Row& row = out[k];
            const int b = std::max(0, r.pos - left), e = std::min(n, r.pos + right + 1);
            row.first = b;
            row.scale = max[r.feature] > 0 ? max[r.feature] / 65535.0 : 1.0;
            row.toks.assign(log.tokens.begin() + b, log.tokens.begin() + e);
            for (int p = b; p < e; ++p)
              row.q.push_back(
                  static_cast<std::uint16_t>(std::clamp(std::lround(log.value(static_cast<std::size_t>(p), r.feature) / row.scale), 0l, 65535l)));
          }
        }
      });
      for (std::size_t i = 0; i < pending.size(); ++i) {
        const auto& [w, log, reqs_of] = pending[i];
        const auto& reqs = *reqs_of;
        for (std::size_t k = 0; k < reqs.size(); ++k) {
          const Request& r = reqs[k];
          const Row& row = rows[i][k];
          ins.bind(1, static_cast<std::int64_t>(r.feature)).bind(2, r.kind).bind(3, r.interval).bind(4, r.rank);
          ins.bind(5, static_cast<double>(r.act)).bind(6, r.pos - row.first).bind(7, w).bind(8, r.pos);
          ins.bindBlob(9, row.toks.data(), row.toks.size() * 4).bindBlob(10, row.q.data(), row.q.size() * 2).bind(11, row.scale);
          ins.step();
          ins.reset();
          FeatureEvidence& ev = evidence[static_cast<std::size_t>(r.feature)];
          ev.mass[log.tokens[static_cast<std::size_t>(r.pos)]] += r.act;
          ev.total += r.act;
          if (r.pos < 2) ev.window_start += r.act;
          for (int back = 1; back <= 2 && r.pos - back >= 0; ++back) ev.before[log.tokens[static_cast<std::size_t>(r.pos - back)]] += r.act;
          if (static_cast<std::size_t>(r.pos) + 1 < log.tokens.size()) ev.after[log.tokens[static_cast<std::size_t>(r.pos) + 1]] += r.act;
          const std::int32_t dom = domains.of(w);
          if (dom >= 0) {
            if (ev.domain_mass.empty()) ev.domain_mass.assign(domains.names.size(), 0.0);
            ev.domain_mass[static_cast<std::size_t>(dom)] += r.act;
          }
        }
      }
      pending.clear();
    };
    forEachWindow(set, "examples", progress, [&](std::int64_t w, const WindowLog& log) {
      const auto it = requests.find(w);
      if (it == requests.end()) return;
      pending.push_back({w, log, &it->second});
      if (pending.size() == 64) flush();
    });
    flush();
  }
  requests.clear();
  res.clear();
  top.clear();

  // Logit effects, in blocks of features: write row i (W_dec[i], over its norm for a rescaled TopK SAE;
  // times the final norm's scale) @ W_U.
  c10::InferenceMode guard;
  const Sae& sae = E.requireSae();
  {
    auto ins = db->prepare("INSERT INTO logits(feature, top, bottom, lo, hi, histogram) VALUES(?, ?, ?, ?, ?, ?)");
    for (std::int64_t s = 0; s < d_sae; s += 256) {
      const std::int64_t e = std::min(d_sae, s + 256);
      const auto effects = E.logitEffectsRange(s, e, 10, 40);
      for (std::int64_t r = 0; r < e - s; ++r) {
        const LogitEffects& le = effects[static_cast<std::size_t>(r)];
        // Candidates for what it promotes: the top effects standing out of the vocabulary's
        // distribution (mean + 3 standard deviations, from the histogram); the explanation keeps
        // those that the examples bear out.
        const double outlier = histogramAbove(le.histogram, 3.0);
        auto& promotes = evidence[static_cast<std::size_t>(s + r)].promotes;
        for (const auto& [text, value] : le.top)
          if (value > 0 && value >= outlier) promotes.push_back(text);
        const std::string hb = blobOf(le.histogram.counts);
        ins.bind(1, s + r).bind(2, nlohmann::json(le.top).dump()).bind(3, nlohmann::json(le.bottom).dump());
        ins.bind(4, le.histogram.lo).bind(5, le.histogram.hi).bindBlob(6, hb.data(), hb.size());
        ins.step();
        ins.reset();
      }
      report(progress, "logit effects", e, d_sae);
    }
  }

  // Neighbours and the map share one k-NN graph of the decoder rows.
  const std::int64_t n_neigh = set.integer("neighbours");
  const bool want_umap = set.meta.at("umap") == "1" && d_sae >= 4;
  UmapOptions uo;
  uo.seed = seed;
  uo.n_epochs = set.integer("umap_epochs");
  uo.knn = parseKnnMethod(set.meta.at("neighbour_method"));
  const std::int64_t knn_k = std::max(n_neigh, want_umap ? uo.n_neighbors - 1 : 0);
  KnnResult knn;
  at::Tensor decoder;  // float32 (a mapped SAE's is copied only when neighbours or the map need it)
  if ((knn_k > 0 && d_sae >= 2) || want_umap) decoder = sae.mapped() ? sae.decoderBlock(0, d_sae) : sae.W_dec();
  if (knn_k > 0 && d_sae >= 2) {
    knn = cosineKnn(decoder, knn_k, uo.knn, seed, progress);
    if (!knn.ids.defined()) throw Cancelled{};
    auto ins = db->prepare("INSERT INTO neighbours(feature, ids, cosines) VALUES(?, ?, ?)");
    const std::int64_t kk = std::min(n_neigh, knn.ids.size(1));
    const at::Tensor ids = knn.ids.slice(1, 0, kk).to(at::kInt).contiguous(), sims = knn.sims.slice(1, 0, kk).contiguous();
    for (std::int64_t f = 0; f < d_sae; ++f) {
      ins.bind(1, f).bindBlob(2, ids.data_ptr<std::int32_t>() + f * kk, kk * 4).bindBlob(3, sims.data_ptr<float>() + f * kk, kk * 4);
      ins.step();
      ins.reset();
    }
  }
  at::Tensor map;
  if (want_umap) {
    map = umapEmbed(decoder, uo, &knn, progress).contiguous();
    if (!map.defined()) throw Cancelled{};
  }

  // Features, intervals, explanations and the search index.
  std::vector<ExplanationParts> keywords(d);  // of each feature's first explanation
  CorpusProfile profile;
  profile.token_counts = token_counts;
  profile.total = total_tokens;
  profile.domains = domains.names;
  profile.domain_share = domains.share;
  {
    auto fi = db->prepare("INSERT INTO features(id, count, density, max_act, mean_act, histogram, umap_x, umap_y, top_tokens, explanation) "
                          "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    auto ii = db->prepare("INSERT INTO intervals(feature, idx, lo, hi, count) VALUES(?, ?, ?, ?, ?)");
    auto ei = db->prepare("INSERT INTO explanations(feature, version, text, author, created) VALUES(?, 1, ?, 'auto:token-lift', ?)");
    auto ti = db->prepare("INSERT INTO feature_text(rowid, explanation, top_tokens) VALUES(?, ?, ?)");
    const double now = static_cast<double>(std::time(nullptr));
    // A token that holds only part of a character (a byte-level vocabulary splits rarer ones, e.g.
    // ' \xC3' of ' ü') is named by the character it starts in the feature's examples: with the
    // token that most often follows it there, where together they complete it.
    const FeatureEvidence* current = nullptr;
    auto bytes_of = [&](std::int32_t id) { return id >= 0 && id < vocab ? E.tokenizer.tokenBytes(id) : std::string(); };
    auto activating_text = [&](std::int32_t id) { return tokenTextBefore(bytes_of(id), current->after, bytes_of); };
    auto text_of = [&](std::int32_t id) { return toValidUtf8(bytes_of(id)); };
    std::int64_t dead = 0;
    for (std::int64_t f = 0; f < d_sae; ++f) {
      const auto fu = static_cast<std::size_t>(f);
      const auto c = count[fu];
      if (c == 0) ++dead;
      current = &evidence[fu];
      AutoExplanation ex = c > 0 ? explainFeature(evidence[fu], profile, text_of, activating_text) : AutoExplanation{};
      // A handful of activations cannot support a concept, however high the lifts: say so first.
      // A window's start (after the first position, left out) sees almost no context: a feature
      // whose examples sit mostly there is an artifact of position, whatever its tokens.
      const FeatureEvidence& ev = evidence[fu];
      if (c > 0 && ev.total > 0 && ev.window_start >= kWindowStartShare * ev.total)
        ex.text = "Window start (" + std::to_string(std::lround(100.0 * ev.window_start / ev.total)) +
                  "% on a window's first two tokens): " + ex.text;
      if (c > 0 && c < kRareActivations) ex.text = "Rare (" + std::to_string(c) + " activations): " + ex.text;
      keywords[fu] = explanationParts(ex.text);
      const std::vector<std::int64_t> h(hist.begin() + f * H, hist.begin() + (f + 1) * H);
      const std::string hb = blobOf(h);
      fi.bind(1, f).bind(2, c).bind(3, static_cast<double>(c) / static_cast<double>(std::max<std::int64_t>(1, total_tokens)));
      fi.bind(4, static_cast<double>(max[fu])).bind(5, c > 0 ? sum[fu] / static_cast<double>(c) : 0.0).bindBlob(6, hb.data(), hb.size());
      if (map.defined()) {
        fi.bind(7, static_cast<double>(map[f][0].item<float>())).bind(8, static_cast<double>(map[f][1].item<float>()));
      } else {
        fi.bindNull(7).bindNull(8);
      }
      fi.bind(9, ex.top_tokens).bind(10, ex.text);
      fi.step();
      fi.reset();
      ti.bind(1, f).bind(2, ex.text.substr(explanationWarningsEnd(ex.text))).bind(3, ex.top_tokens);  // searched without the warnings
      ti.step();
      ti.reset();
      if (c > 0) {
        ei.bind(1, f).bind(2, ex.text).bind(3, now);
        ei.step();
        ei.reset();
        for (int iv = 0; iv < K; ++iv) {
          ii.bind(1, f).bind(2, iv).bind(3, static_cast<double>(max[fu]) * iv / K).bind(4, static_cast<double>(max[fu]) * (iv + 1) / K);
          ii.bind(5, iv_count[static_cast<std::size_t>(f * K + iv)]);
          ii.step();
          ii.reset();
        }
      }
      if (f % 1024 == 0) report(progress, "explanations", f, d_sae);
    }
    // The density histogram of alive features (log10 density).
    std::vector<double> log_density;
    for (const auto c : count)
      if (c > 0) log_density.push_back(std::log10(static_cast<double>(c) / static_cast<double>(total_tokens)));
    double lo = 0, hi = 0;
    std::vector<std::int64_t> dh(40, 0);
    if (!log_density.empty()) {
      lo = *std::min_element(log_density.begin(), log_density.end());
      hi = *std::max_element(log_density.begin(), log_density.end());
      for (const double l : log_density) ++dh[static_cast<std::size_t>(std::clamp(static_cast<int>((l - lo) / std::max(hi - lo, 1e-12) * 40), 0, 39))];
    }
    auto meta = set.meta;
    meta.erase("kind");
    meta["tokens"] = std::to_string(total_tokens);
    meta["dead"] = std::to_string(dead);
    meta["density_histogram"] = nlohmann::json{{"lo", lo}, {"hi", hi}, {"counts", dh}}.dump();
    meta["shards"] = std::to_string(scans.size());
    if (!domains.names.empty()) {
      meta["domains"] = nlohmann::json(domains.names).dump();
      meta["window_domains"] = domains.encoded;
    }
    for (const auto& [k, v] : meta) putMeta(*db, k, v);
    auto vi = db->prepare("INSERT INTO vocab(id, bytes) VALUES(?, ?)");
    for (std::int32_t id = 0; id < vocab; ++id) {
      const std::string& b = E.tokenizer.tokenBytes(id);
      vi.bind(1, static_cast<std::int64_t>(id)).bindBlob(2, b.data(), b.size());
      vi.step();
      vi.reset();
    }
  }

  // Concept scores of every example against the first explanation: read a chunk of examples,
  // score it on every thread, write it.
  {
    auto sel = db->prepare("SELECT id, tokens, center, feature, window FROM examples");
    auto ins = db->prepare("INSERT INTO scores(example, scorer, score, explanation_version, created) VALUES(?, 'concept', ?, 1, ?)");
    const double now = static_cast<double>(std::time(nullptr));
    // Each vocabulary entry's text lower-cased once; an example's context is their concatenation.
    // Tokens holding part of a character read, in an example, as the window shows them
    // (displayPieces: the character whole on its first token).
    std::vector<std::string> lowered(static_cast<std::size_t>(vocab));
    std::vector<char> partial(static_cast<std::size_t>(vocab));
    for (std::int32_t id = 0; id < vocab; ++id) {
      const std::string bytes = E.tokenizer.tokenBytes(id);
      partial[static_cast<std::size_t>(id)] = findInvalidUtf8(bytes) != std::string::npos;
      appendLowerAscii(lowered[static_cast<std::size_t>(id)], toValidUtf8(bytes));
    }
    struct Example {
      std::int64_t id;
      int center;
      std::int64_t feature;
      std::vector<std::int32_t> tokens;
      int score;
      std::int32_t domain;
    };
    constexpr std::size_t kChunk = 16384;
    std::vector<Example> chunk;
    std::int64_t n = 0;
    bool more = true;
    while (more) {
      chunk.clear();
      while (chunk.size() < kChunk && (more = sel.step())) {
        const std::int64_t f = sel.integer(3);
        if (f < 0 || f >= d_sae) throw Error("example " + std::to_string(sel.integer(0)) + " names feature " + std::to_string(f) + " beyond d_sae");
        chunk.push_back({sel.integer(0), static_cast<int>(sel.integer(2)), f, sel.blobAs<std::int32_t>(1), 0, domains.of(sel.integer(4))});
      }
      at::parallel_for(0, static_cast<std::int64_t>(chunk.size()), 512, [&](std::int64_t b, std::int64_t e) {
        LoweredContext ctx;
        std::vector<std::string> raw, shown;
        for (std::int64_t i = b; i < e; ++i) {
          Example& x = chunk[static_cast<std::size_t>(i)];
          ctx.clear();
          const bool split = std::any_of(x.tokens.begin(), x.tokens.end(),
                                         [&](std::int32_t id) { return id >= 0 && id < vocab && partial[static_cast<std::size_t>(id)]; });
          if (split) {
            raw.clear();
            for (auto id : x.tokens) raw.push_back(id >= 0 && id < vocab ? E.tokenizer.tokenBytes(id) : std::string());
            shown.clear();
            for (const auto& s : displayPieces(raw)) appendLowerAscii(shown.emplace_back(), s);
            for (const auto& s : shown) ctx.add(s);
          } else {
            for (auto id : x.tokens) ctx.add(id >= 0 && id < vocab ? std::string_view(lowered[static_cast<std::size_t>(id)]) : std::string_view());
          }
          const std::string& dom = x.domain >= 0 ? domains.names[static_cast<std::size_t>(x.domain)] : kNoDomain;
          x.score = conceptScore(ctx, x.center, keywords[static_cast<std::size_t>(x.feature)], dom);
        }
      });
      for (const Example& x : chunk) {
        ins.bind(1, x.id).bind(2, x.score).bind(3, now);
        ins.step();
        ins.reset();
      }
      n += static_cast<std::int64_t>(chunk.size());
      report(progress, "concept scores", n, 0);
    }
  }
  report(progress, "write", 0, 1);
  db->exec("PRAGMA threads=" + std::to_string(parts));  // SQLite sorts for the indexes on helper threads
  for (const auto& [name, sql] : indexes) db->exec(sql);
  // The orders and map layers read the finished table through its indexes. They take seconds
  // even for millions of features, so they finish once started.
  buildFeatureLayers(*db, [&](const Progress& p) {
    if (progress) progress(p);
    return true;
  });
  txn.commit();
  db->exec("PRAGMA journal_mode=WAL");
  db.reset();
  syncFile(partial);
  fs::remove(out + "-wal");
  fs::remove(out + "-shm");
  fs::rename(partial, out);
  syncFile(fs::absolute(out).parent_path().string());
  report(progress, "write", 1, 1);
}

}  // namespace monoscope::core
