// Dictionaries the paper's size (1M, 4M, 34M features): a synthetic feature database written the
// way the indexer writes one (summaries, explanations and the search index for every feature;
// examples, intervals, logit effects and neighbours for an evenly spaced sample), the queries the
// app makes against it, and the HNSW build over random unit directions.
#include "scale_bench.h"

#include <ATen/ATen.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "api/feature_db.h"
#include "index/neighbours.h"
#include "store/feature_layers.h"
#include "store/schema.h"
#include "store/sqlite.h"
#include "util/runtime.h"

namespace monoscope::bench {

using namespace monoscope::core;
using Clock = std::chrono::steady_clock;

double peakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

namespace {

double ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }


// A pseudo-word vocabulary with Zipf-like use, so that prefixes typed one letter at a time match
// shrinking sets as in a real dictionary's explanations.
struct Words {
  std::vector<std::string> words;
  std::vector<double> cdf;
  explicit Words(std::size_t n) {
    static const char* syll[] = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "ve", "bi", "da", "fo", "gu", "he", "ji", "pa", "qu",
                                 "re", "si", "tu", "wo", "ya", "zo", "an", "el", "in", "or", "ub", "ex", "ce", "ho"};
    std::mt19937_64 rng(11);
    double total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::string w;
      const int parts = 2 + static_cast<int>(rng() % 3);
      for (int p = 0; p < parts; ++p) w += syll[rng() % 30];
      words.push_back(w);
      total += 1.0 / static_cast<double>(i + 1);
      cdf.push_back(total);
    }
    for (auto& c : cdf) c /= total;
  }
  const std::string& draw(std::mt19937_64& rng) const {
    const double u = static_cast<double>(rng() >> 11) / 9007199254740992.0;
    return words[std::min(words.size() - 1, static_cast<std::size_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin()))];
  }
};

}  // namespace

int writeSyntheticDb(const std::string& path, std::int64_t n, std::int64_t sample, int vocab) {
  std::remove(path.c_str());
  Sqlite db(path, Sqlite::Open::Create);
  db.exec("PRAGMA journal_mode=OFF");
  db.exec("PRAGMA synchronous=OFF");
  db.exec("PRAGMA cache_size=-1048576");  // 1 GiB of page cache for the index sorts
  migrateFeatureSchema(db);
  const auto t0 = Clock::now();
  Transaction t(db);
  std::vector<std::pair<std::string, std::string>> indexes;
  {
    auto st = db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL");
    while (st.step()) indexes.emplace_back(st.text(0), st.text(1));
  }
  for (const auto& [name, sql] : indexes) db.exec("DROP INDEX \"" + name + "\"");
  std::mt19937_64 rng(1);
  auto uni = [&] { return static_cast<double>(rng() >> 11) / 9007199254740992.0; };
  std::normal_distribution<double> gauss(0.0, 1.0);
  const std::int64_t tokens = 100000000;
  const std::int64_t stride = std::max<std::int64_t>(1, n / std::max<std::int64_t>(1, sample));
  putMeta(db, "d_sae", std::to_string(n));
  putMeta(db, "tokens", std::to_string(tokens));
  putMeta(db, "bench_sample_stride", std::to_string(stride));
  {
    auto st = db.prepare("INSERT INTO vocab(id, bytes) VALUES(?, ?)");
    for (int i = 0; i < vocab; ++i) {
      const std::string b = " t" + std::to_string(i);
      st.bind(1, i).bindBlob(2, b.data(), b.size());
      st.step();
      st.reset();
    }
  }
  // The map: features in clusters of very different sizes, as UMAP draws a dictionary.
  const int clusters = 4000;
  std::vector<double> cx(clusters), cy(clusters), spread(clusters), weight(clusters);
  double wsum = 0;
  for (int c = 0; c < clusters; ++c) {
    cx[c] = 100 * uni(), cy[c] = 100 * uni(), spread[c] = 0.1 + 1.5 * uni();
    wsum += (weight[c] = std::pow(uni(), 3.0) + 1e-3);
  }
  std::vector<double> wcdf(clusters);
  for (int c = 0; c < clusters; ++c) wcdf[c] = (c ? wcdf[c - 1] : 0) + weight[c] / wsum;
  const Words words(20000);
  auto fi = db.prepare("INSERT INTO features(id, count, density, max_act, mean_act, histogram, umap_x, umap_y, top_tokens, explanation) VALUES(?,?,?,?,?,?,?,?,?,?)");
  auto ti = db.prepare("INSERT INTO feature_text(rowid, explanation, top_tokens) VALUES(?, ?, ?)");
  auto ii = db.prepare("INSERT INTO intervals(feature, idx, lo, hi, count) VALUES(?,?,?,?,?)");
  auto ei = db.prepare("INSERT INTO examples(feature, kind, interval, rank, max_act, center, window, position, tokens, acts, scale) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
  auto li = db.prepare("INSERT INTO logits(feature, top, bottom, lo, hi, histogram) VALUES(?,?,?,?,?,?)");
  auto ni = db.prepare("INSERT INTO neighbours(feature, ids, cosines) VALUES(?,?,?)");
  std::vector<std::int64_t> hist(50), lh(40);
  std::vector<std::int32_t> toks(32), nids(10);
  std::vector<std::uint16_t> acts(32);
  std::vector<float> cos(10);
  std::string top = "[";
  for (int i = 0; i < 10; ++i) top += std::string(i ? "," : "") + "[\" t" + std::to_string(i) + "\",1.5]";
  top += "]";
  std::int64_t dead = 0;
  for (std::int64_t f = 0; f < n; ++f) {
    // Log10 density roughly normal around -4.5 (the paper's density histograms), 2% dead.
    const bool is_dead = uni() < 0.02;
    const double logd = std::clamp(-4.5 + 0.8 * gauss(rng), -7.9, -0.5);
    const std::int64_t count = is_dead ? 0 : std::max<std::int64_t>(1, static_cast<std::int64_t>(std::pow(10.0, logd) * tokens));
    dead += is_dead;
    const double mx = is_dead ? 0.0 : 1 + 10 * uni();
    const int c = static_cast<int>(std::lower_bound(wcdf.begin(), wcdf.end(), uni()) - wcdf.begin());
    const double x = cx[std::min(c, clusters - 1)] + spread[std::min(c, clusters - 1)] * gauss(rng);
    const double y = cy[std::min(c, clusters - 1)] + spread[std::min(c, clusters - 1)] * gauss(rng);
    const std::string top_tokens = "t" + std::to_string(rng() % static_cast<std::uint64_t>(vocab));
    const std::string expl = is_dead ? std::string()
                                     : words.draw(rng) + " " + words.draw(rng) + " after " + words.draw(rng) + " in " +
                                           words.draw(rng) + " text; promotes " + words.draw(rng);
    const bool sampled = f % stride == 0;
    fi.bind(1, f).bind(2, count).bind(3, static_cast<double>(count) / tokens).bind(4, mx).bind(5, mx / 3);
    if (sampled) {
      for (auto& h : hist) h = static_cast<std::int64_t>(rng() % 1000);
      fi.bindBlob(6, hist.data(), hist.size() * 8);
    } else {
      fi.bindNull(6);
    }
    fi.bind(7, x).bind(8, y).bind(9, top_tokens).bind(10, expl);
    fi.step();
    fi.reset();
    ti.bind(1, f).bind(2, expl).bind(3, top_tokens);
    ti.step();
    ti.reset();
    if (f % (1 << 22) == 0) std::fprintf(stderr, "synthetic db: %lld / %lld features\n", static_cast<long long>(f), static_cast<long long>(n));
    if (!sampled || is_dead) continue;
    for (int j = 0; j < 10; ++j) {
      ii.bind(1, f).bind(2, j).bind(3, mx * j / 10).bind(4, mx * (j + 1) / 10).bind(5, static_cast<std::int64_t>(rng() % 10000));
      ii.step();
      ii.reset();
    }
    for (int e = 0; e < 20 + 10 * 5; ++e) {  // 20 top examples and 5 for each of 10 intervals
      for (auto& v : toks) v = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(vocab));
      for (auto& a : acts) a = static_cast<std::uint16_t>(rng() % 65536);
      ei.bind(1, f).bind(2, e < 20 ? 0 : 1).bind(3, e < 20 ? 0 : (e - 20) / 5).bind(4, e < 20 ? e : (e - 20) % 5).bind(5, mx).bind(6, 16);
      ei.bind(7, static_cast<std::int64_t>(rng() % 100000)).bind(8, 16).bindBlob(9, toks.data(), toks.size() * 4);
      ei.bindBlob(10, acts.data(), acts.size() * 2).bind(11, mx / 65535);
      ei.step();
      ei.reset();
    }
    for (auto& h : lh) h = static_cast<std::int64_t>(rng() % 5000);
    li.bind(1, f).bind(2, top).bind(3, top).bind(4, -3.0).bind(5, 3.0).bindBlob(6, lh.data(), lh.size() * 8);
    li.step();
    li.reset();
    for (int j = 0; j < 10; ++j) nids[j] = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(n)), cos[j] = static_cast<float>(0.9 - 0.05 * j);
    ni.bind(1, f).bindBlob(2, nids.data(), 40).bindBlob(3, cos.data(), 40);
    ni.step();
    ni.reset();
  }
  putMeta(db, "dead", std::to_string(dead));
  const auto t_rows = Clock::now();
  db.exec("PRAGMA threads=2");
  for (const auto& [name, sql] : indexes) db.exec(sql);
  const auto t_indexes = Clock::now();
  buildFeatureLayers(db);
  t.commit();
  db.exec("PRAGMA journal_mode=WAL");
  const auto t_layers = Clock::now();
  std::cout << nlohmann::json{{"bench", "synthetic_db"}, {"features", n}, {"sampled", (n + stride - 1) / stride},
                              {"rows_s", ms(t0, t_rows) / 1e3}, {"indexes_s", ms(t_rows, t_indexes) / 1e3},
                              {"layers_s", ms(t_indexes, t_layers) / 1e3}, {"peak_rss_mb", peakRssMb()}}.dump() << "\n";
  return 0;
}

int benchScale(const std::string& path, int queries) {
  const auto t_open = Clock::now();
  auto db = FeatureDb::open(path);
  const double open_ms = ms(t_open, Clock::now());
  const std::int64_t n = db->info().d_sae;
  if (!db->hasLayers()) {
    std::cerr << path << ": no feature layers (open it once for writing to build them)\n";
    return 1;
  }
  const std::string recorded = db->metaValue("bench_sample_stride");
  const std::int64_t stride = recorded.empty() ? 1 : std::max<std::int64_t>(1, std::stoll(recorded));
  std::mt19937_64 rng(7);
  auto stats = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return nlohmann::json{{"median_ms", v[v.size() / 2]}, {"p95_ms", v[v.size() * 95 / 100]}, {"max_ms", v.back()}};
  };
  // Feature pages of sampled features (the ones with examples).
  std::vector<double> page;
  for (int q = 0; q < queries; ++q) {
    const std::int64_t id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>((n + stride - 1) / stride)) * stride;
    const auto t0 = Clock::now();
    const auto p = db->page(id);
    page.push_back(ms(t0, Clock::now()));
    if (p.summary.id != id || (p.summary.count > 0 && p.top_examples.empty())) return 1;
  }
  // Sorting the list: the range of a sort and filter, and the first screen of rows.
  std::vector<double> sort;
  for (const auto s : {FeatureSort::Density, FeatureSort::MaxActivation, FeatureSort::Id})
    for (const auto filter : {FeatureFilter::All, FeatureFilter::Alive, FeatureFilter::Dead, FeatureFilter::Dense}) {
      FeatureQuery q;
      q.sort = s, q.filter = filter, q.descending = true;
      const auto t0 = Clock::now();
      std::int64_t rows = 0;
      if (const auto range = db->orderRange(q)) {
        rows = range->second - range->first;
        const std::int64_t first = std::max(range->first, range->second - 40);
        for (const auto id : db->idsInOrder(s, first, range->second - first)) (void)db->summary(id);
      } else {
        // As the list model does: the ids (at most its limit), then the first screen's summaries.
        std::int64_t total = 0;
        const auto ids = db->featureIds(q, 100000, &total);
        rows = static_cast<std::int64_t>(ids.size());
        for (std::size_t i = 0; i < std::min<std::size_t>(ids.size(), 40); ++i) (void)db->summary(ids[i]);
      }
      sort.push_back(ms(t0, Clock::now()));
      if (std::getenv("MONOSCOPE_BENCH_DETAIL"))
        std::fprintf(stderr, "sort %s filter %d: %lld rows, %.1f ms\n", featureSortName(s), static_cast<int>(filter),
                     static_cast<long long>(rows), sort.back());
    }
  // Scrolling: a screen of rows at a random position of the density order, with their summaries.
  std::vector<double> scroll;
  for (int q = 0; q < queries; ++q) {
    const std::int64_t first = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(std::max<std::int64_t>(1, n - 40)));
    const auto t0 = Clock::now();
    for (const auto id : db->idsInOrder(FeatureSort::Density, first, 40)) (void)db->summary(id);
    scroll.push_back(ms(t0, Clock::now()));
  }
  // Search as you type: a word of a middle frequency typed a letter at a time.
  std::vector<double> search;
  std::vector<std::int64_t> matches;
  Words words(20000);
  for (const std::string& w : {words.words[3], words.words[150], words.words[4000]}) {
    for (std::size_t len = 1; len <= w.size(); ++len) {
      FeatureQuery q;
      q.text = w.substr(0, len);
      std::int64_t total = 0;
      const auto t0 = Clock::now();
      (void)db->featureIds(q, 20000, &total);  // the list's search limit (ui/feature_list_model.h)
      search.push_back(ms(t0, Clock::now()));
      matches.push_back(total);
      if (std::getenv("MONOSCOPE_BENCH_DETAIL"))
        std::fprintf(stderr, "search '%s': %lld matches, %.1f ms\n", q.text.c_str(), static_cast<long long>(total), search.back());
    }
  }
  // The map: the corner tile of every level.
  const auto t_map = Clock::now();
  const MapLayout& layout = db->mapLayout();
  for (int l = 0; l < layout.levels; ++l) (void)db->mapTile(l, 0, 0);
  const double map_ms = ms(t_map, Clock::now());
  std::cout << nlohmann::json{{"bench", "scale"}, {"features", n}, {"open_ms", open_ms}, {"page", stats(page)},
                              {"sort_first_screen", stats(sort)}, {"scroll_40_rows", stats(scroll)}, {"search_as_you_type", stats(search)},
                              {"search_matches_max", *std::max_element(matches.begin(), matches.end())},
                              {"map_levels", layout.levels}, {"map_cells", layout.cells}, {"map_corner_tiles_ms", map_ms},
                              {"peak_rss_mb", peakRssMb()}}.dump() << "\n";
  return 0;
}

int benchHnsw(std::int64_t n, std::int64_t d, int threads) {
  configureThreads(threads);
  at::manual_seed(0);
  const at::Tensor rows = at::randn({n, d});
  const double before = peakRssMb();
  const auto t0 = Clock::now();
  const auto knn = cosineKnn(rows, 10, KnnMethod::Hnsw, 0);
  const double s = ms(t0, Clock::now()) / 1e3;
  std::cout << nlohmann::json{{"bench", "hnsw"}, {"n", n}, {"d", d}, {"k", 10}, {"seconds", s},
                              {"vectors_mb", n * d * 4 / 1048576.0}, {"peak_rss_mb", peakRssMb()}, {"rss_before_mb", before},
                              {"ok", knn.ids.defined()}}.dump() << "\n";
  return 0;
}

}  // namespace monoscope::bench
