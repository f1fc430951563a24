// The feature index: statistics, intervals, reservoir samples and top examples against a
// brute-force pass; neighbours against brute force; shards + merge and a killed scan against a
// single run; the feature database's queries, labels, explanations and bad files.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <sqlite3.h>

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "api/engine.h"
#include "api/feature_db.h"
#include "api/indexer.h"
#include "index/neighbours.h"
#include "index/token_corpus.h"
#include "index/umap.h"
#include "lm/transformer.h"
#include "sae/sae.h"
#include "store/schema.h"
#include "store/sqlite.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace monoscope::core;

namespace {

const std::string kDemo = std::string(MONOSCOPE_FIXTURES) + "/../../data/demo";

// A dump of a database's content tables, for comparing two builds.
std::string dump(const std::string& path) {
  Sqlite db(path, Sqlite::Open::ReadOnly);
  std::string out;
  for (const char* sql : {"SELECT id, count, density, max_act, mean_act, hex(histogram), umap_x, umap_y, top_tokens, explanation FROM features ORDER BY id",
                          "SELECT feature, idx, lo, hi, count FROM intervals ORDER BY feature, idx",
                          "SELECT feature, kind, interval, rank, max_act, center, window, position, hex(tokens), hex(acts) FROM examples ORDER BY feature, kind, interval, rank",
                          "SELECT feature, hex(ids), hex(cosines) FROM neighbours ORDER BY feature",
                          "SELECT e.feature, e.kind, e.interval, e.rank, s.score FROM scores s JOIN examples e ON e.id = s.example ORDER BY 1, 2, 3, 4"}) {
    auto st = db.prepare(sql);
    while (st.step()) {
      for (int c = 0; c < 10; ++c) out += st.text(c) + "|";
      out += "\n";
    }
  }
  return out;
}

}  // namespace

class TestIndex : public QObject {
  Q_OBJECT

  QTemporaryDir tmp_;
  std::string model_, sae_, corpus_, db_;
  IndexOptions base_;

  std::string path(const std::string& name) const { return tmp_.path().toStdString() + "/" + name; }
  std::string copyOfSae(const std::string& name) const {
    const std::string copy = path(name);
    fs::create_directories(copy);
    for (const auto& e : fs::directory_iterator(sae_)) fs::copy_file(e.path(), copy + "/" + e.path().filename().string());
    return copy;
  }
  // `f` throws an Error whose message holds `needle`.
  template <typename F>
  static void expectErrorFrom(F&& f, const char* needle, const char* accepted) {
    try {
      f();
      QFAIL(accepted);
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
    }
  }
  static void flipLastByte(const std::string& file) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    const char c = static_cast<char>(f.get());
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(c ^ 0x55));
  }

  // Every activation of every feature by brute force: (value, window, position).
  using Events = std::vector<std::vector<std::tuple<float, std::int64_t, int>>>;
  Events events_;
  std::int64_t windows_ = 0;
  const Events& bruteForce() {
    if (!events_.empty()) return events_;
    EngineOptions eo;
    eo.model_dir = model_;
    eo.sae_dir = sae_;
    auto engine = Engine::open(eo);
    const auto tok = Tokenizer::fromDirectory(model_);
    TokenCorpus corpus(corpus_, tok, base_.tokens, 64);
    windows_ = corpus.windows();
    const std::int64_t n_feat = engine->info().d_sae;
    events_.resize(static_cast<std::size_t>(n_feat));
    std::vector<std::int32_t> ids;
    for (std::int64_t w = 0; w < corpus.windows(); ++w) {
      corpus.windowTokens(w, &ids);
      const auto acts = engine->featureMatrix(ids);
      for (std::size_t p = base_.skip_first ? 1 : 0; p < ids.size(); ++p) {  // the first position is skipped,
        if (base_.skip_first && ids[p] == tok.endOfTextId()) continue;       // and so are document boundaries
        for (std::int64_t f = 0; f < n_feat; ++f) {
          const float a = acts[p * static_cast<std::size_t>(n_feat) + static_cast<std::size_t>(f)];
          if (a > 0) events_[static_cast<std::size_t>(f)].emplace_back(a, w, static_cast<int>(p));
        }
      }
    }
    return events_;
  }
  static int intervalOf(float a, float mx) { return std::clamp(static_cast<int>(std::ceil(a * 10.0 / mx)) - 1, 0, 9); }

 private Q_SLOTS:
  void initTestCase() {
    if (!fs::exists(kDemo + "/model/config.json")) QSKIP("data/demo is missing");
    model_ = kDemo + "/model";
    // An SAE on the demo model's block-0 residual stream: 8 planted features that read the
    // embedding of one frequent token each, and 40 random ones with a bias for ~5% density.
    c10::InferenceMode guard;
    auto model = Transformer::load(model_, c10::Device(c10::kCPU));
    const auto tok = Tokenizer::fromDirectory(model_);
    const std::int64_t d = model->config().d_model, n_feat = 48;
    at::manual_seed(3);
    at::Tensor W_enc = at::randn({d, n_feat});
    const at::Tensor wte = model->unembed();  // tied: the token embeddings [vocab, d]
    // Random features fire on about a tenth of the vocabulary.
    at::Tensor b_enc = -std::get<0>(at::matmul(wte, W_enc).kthvalue(static_cast<std::int64_t>(wte.size(0) * 0.9), 0));
    // Planted features read one token's embedding e: e . x / e . e is 1 on that token and at
    // most 0.72 on any other (checked for these tokens), so a bias of -0.8 isolates it.
    const std::vector<std::string> planted = {" the", " and", " of", ",", ".", " to", " in", " is"};
    for (std::size_t i = 0; i < planted.size(); ++i) {
      const auto ids = tok.encodeIds(planted[i]);
      QCOMPARE(ids.size(), std::size_t{1});
      const at::Tensor e = wte[ids[0]];
      W_enc.select(1, static_cast<std::int64_t>(i)).copy_(e / e.dot(e));
      b_enc[static_cast<std::int64_t>(i)] = -0.8f;
    }
    const at::Tensor W_dec = at::randn({n_feat, d}) * 0.1;
    SaeConfig cfg;
    cfg.d_in = d;
    cfg.d_sae = n_feat;
    cfg.hook_name = "hook_embed";
    cfg.context_size = 64;
    Sae sae(cfg, W_enc, b_enc, W_dec, at::zeros({d}));
    sae_ = path("sae");
    sae.save(sae_);
    // The corpus: the project's own documentation.
    corpus_ = path("corpus");
    fs::create_directories(corpus_);
    for (const char* f : {"README.md", "data/README.md"})
      fs::copy_file(std::string(MONOSCOPE_FIXTURES) + "/../../" + f, corpus_ + "/" + fs::path(f).parent_path().string() + "_" + fs::path(f).filename().string());
    base_.model_dir = model_;
    base_.sae_dir = sae_;
    base_.corpus = corpus_;
    base_.tokens = 64 * 60;
    base_.batch = 4;
    base_.threads = 2;
    base_.umap_epochs = 50;
    base_.seed = 7;
    db_ = path("single.db");
    base_.out = db_;
    QCOMPARE(buildIndex(base_), JobStatus::Done);
  }

  // The database records the fingerprint of the SAE it was built from; another file, or one
  // byte changed, gives another fingerprint; a name that is no file gives none.
  void databaseRecordsItsDictionary() {
    const std::string fp = dictionaryFingerprint(sae_);
    QCOMPARE(fp.size(), std::size_t{16});
    QCOMPARE(FeatureDb::open(db_)->metaValue("sae_fingerprint"), fp);
    const std::string copy = copyOfSae("sae-copy");
    QCOMPARE(dictionaryFingerprint(copy), fp);
    // An index written into the folder, and hidden entries, are not part of the dictionary.
    fs::create_directories(copy + "/.git");
    for (const char* extra : {"/features.db", "/features.db.scan", "/features.db-wal", "/.git/index"})
      std::ofstream(copy + extra) << "not weights";
    QCOMPARE(dictionaryFingerprint(copy), fp);
    flipLastByte(copy + "/sae_weights.safetensors");
    QVERIFY(dictionaryFingerprint(copy) != fp);
    QCOMPARE(dictionaryFingerprint("gemma-scope-2b-pt-res:layer_12"), std::string());
  }

  // Counts, maxima, interval counts and top examples equal a brute-force pass over the windows.
  void statisticsMatchBruteForce() {
    Events events = bruteForce();
    const auto n_feat = static_cast<std::int64_t>(events.size());
    auto db = FeatureDb::open(db_);
    QCOMPARE(db->info().tokens, windows_ * 64);
    int alive = 0;
    for (std::int64_t f = 0; f < n_feat; ++f) {
      auto& ev = events[static_cast<std::size_t>(f)];
      const auto page = db->page(f);
      QCOMPARE(page.summary.count, static_cast<std::int64_t>(ev.size()));
      if (ev.empty()) continue;
      ++alive;
      float mx = 0;
      for (const auto& e : ev) mx = std::max(mx, std::get<0>(e));
      QVERIFY(std::abs(page.summary.max_act - mx) <= 1e-4f * mx);
      // Interval counts sum to the active count, and each equals a recount.
      std::int64_t total = 0;
      QCOMPARE(static_cast<int>(page.intervals.size()), base_.intervals);
      for (std::size_t j = 0; j < page.intervals.size(); ++j) {
        const auto& iv = page.intervals[j];
        total += iv.count;
        std::int64_t recount = 0;
        for (const auto& e : ev) {
          recount += intervalOf(std::get<0>(e), mx) == static_cast<int>(j);
        }
        QCOMPARE(iv.count, recount);
        QCOMPARE(static_cast<std::int64_t>(iv.examples.size()), std::min<std::int64_t>(recount, base_.per_interval));
        for (const auto& ex : iv.examples) QVERIFY(ex.max_act > iv.lo - 1e-6 && ex.max_act <= iv.hi + 1e-6);
      }
      QCOMPARE(total, page.summary.count);
      // Top examples are the strongest activations, strongest first; the first reaches max_act.
      std::sort(ev.begin(), ev.end(), [](const auto& a, const auto& b) {
        return std::get<0>(a) != std::get<0>(b) ? std::get<0>(a) > std::get<0>(b) : std::make_pair(std::get<1>(a), std::get<2>(a)) < std::make_pair(std::get<1>(b), std::get<2>(b));
      });
      QCOMPARE(static_cast<std::int64_t>(page.top_examples.size()), std::min<std::int64_t>(static_cast<std::int64_t>(ev.size()), base_.top));
      for (std::size_t r = 0; r < page.top_examples.size(); ++r) {
        const auto& ex = page.top_examples[r];
        QVERIFY(std::abs(ex.max_act - std::get<0>(ev[r])) <= 1e-5f);
        // The stored window shows the activation at the center (quantised to 1/65535 of max).
        QVERIFY(std::abs(ex.acts[static_cast<std::size_t>(ex.center)] - ex.max_act) <= mx / 60000.0f);
      }
      QVERIFY(std::abs(page.top_examples.front().max_act - page.summary.max_act) < 1e-6f);
    }
    QVERIFY(alive >= 20);
  }

  // Planted features fire on their token; the automatic explanation names it and the concept
  // scorer gives the top examples a 3.
  void plantedFeaturesAreExplained() {
    auto db = FeatureDb::open(db_);
    const std::vector<std::string> planted = {"the", "and", "of", ",", ".", "to", "in", "is"};
    for (std::size_t f = 0; f < planted.size(); ++f) {
      const auto page = db->page(static_cast<std::int64_t>(f));
      QVERIFY2(page.summary.count > 0, planted[f].c_str());
      for (const auto& ex : page.top_examples) {
        std::string t = ex.tokens[static_cast<std::size_t>(ex.center)];
        t.erase(0, t.find_first_not_of(' '));
        QCOMPARE(t, planted[f]);
      }
      QVERIFY2(page.summary.explanation.find("\"" + std::string(f < 3 || f >= 5 ? " " : "") + planted[f] + "\"") != std::string::npos,
               page.summary.explanation.c_str());
      QCOMPARE(page.explanation_version, std::int64_t{1});
      const auto& top = page.top_examples.front();
      QVERIFY(!top.scores.empty());
      QCOMPARE(top.scores.front().scorer, std::string("concept"));
      QCOMPARE(top.scores.front().score, 3);
    }
  }

  // Reservoir samples are spread evenly over the corpus: the windows they come from follow the
  // windows of all activations in their interval (chi-square over corpus fifths).
  void reservoirSamplesAreUniform() {
    // For every interval with more activations than samples, the windows the samples come from
    // follow the windows of all its activations: chi-square over fifths of the corpus, observed
    // samples against the expected mix of the population (a biased reservoir, e.g. one that keeps
    // the first or last rows, fails by hundreds).
    const auto& events = bruteForce();
    auto db = FeatureDb::open(db_);
    std::vector<double> observed(5, 0), expected(5, 0);
    Sqlite sql(db_, Sqlite::Open::ReadOnly);
    for (std::size_t f = 0; f < events.size(); ++f) {
      if (events[f].empty()) continue;
      float mx = 0;
      for (const auto& e : events[f]) mx = std::max(mx, std::get<0>(e));
      std::vector<std::vector<double>> pop(10, std::vector<double>(5, 0));
      std::vector<double> n(10, 0);
      for (const auto& e : events[f]) {
        const int iv = intervalOf(std::get<0>(e), mx);
        pop[static_cast<std::size_t>(iv)][static_cast<std::size_t>(std::min<std::int64_t>(4, std::get<1>(e) * 5 / windows_))] += 1;
        n[static_cast<std::size_t>(iv)] += 1;
      }
      auto st = sql.prepare("SELECT interval, window FROM examples WHERE feature = ? AND kind = 1");
      st.bind(1, static_cast<std::int64_t>(f));
      std::vector<double> taken(10, 0);
      while (st.step()) {
        const auto iv = static_cast<std::size_t>(st.integer(0));
        if (n[iv] <= base_.per_interval) continue;
        observed[static_cast<std::size_t>(std::min<std::int64_t>(4, st.integer(1) * 5 / windows_))] += 1;
        taken[iv] += 1;
      }
      for (std::size_t iv = 0; iv < 10; ++iv)
        for (std::size_t q = 0; q < 5; ++q)
          if (n[iv] > base_.per_interval) expected[q] += taken[iv] * pop[iv][q] / n[iv];
    }
    double total = 0, chi2 = 0;
    for (std::size_t q = 0; q < 5; ++q) {
      total += observed[q];
      chi2 += (observed[q] - expected[q]) * (observed[q] - expected[q]) / std::max(expected[q], 1e-9);
    }
    QVERIFY2(total >= 300, qPrintable(QString("only %1 samples").arg(total)));
    // 4 degrees of freedom: p = 0.001 at 18.5.
    QVERIFY2(chi2 < 18.5, qPrintable(QString("chi-square %1: observed %2 %3 %4 %5 %6, expected %7 %8 %9 %10 %11")
                                         .arg(chi2).arg(observed[0]).arg(observed[1]).arg(observed[2]).arg(observed[3]).arg(observed[4])
                                         .arg(expected[0]).arg(expected[1]).arg(expected[2]).arg(expected[3]).arg(expected[4])));
  }

  void neighboursMatchBruteForce() {
    c10::InferenceMode guard;
    at::manual_seed(5);
    const at::Tensor x = at::randn({3000, 32});
    const auto exact = cosineKnn(x, 10, KnnMethod::Exact, 0);
    const auto hnsw = cosineKnn(x, 10, KnnMethod::Hnsw, 0);
    const at::Tensor unit = x / x.norm(2, 1, true);
    const at::Tensor sim = at::matmul(unit, unit.t()).fill_diagonal_(-2.0);
    const at::Tensor brute = std::get<1>(sim.topk(10, 1));
    QVERIFY(at::equal(exact.ids, brute));
    QVERIFY(at::allclose(exact.sims, std::get<0>(sim.topk(10, 1)), 1e-5, 1e-6));
    std::int64_t hits = 0;
    for (std::int64_t i = 0; i < 3000; ++i) {
      const auto a = brute[i], b = hnsw.ids[i];
      for (std::int64_t j = 0; j < 10; ++j) hits += (b == a[j]).any().item<bool>();
    }
    const double recall = static_cast<double>(hits) / 30000.0;
    QVERIFY2(recall >= 0.95, qPrintable(QString("HNSW recall %1").arg(recall)));
    // The database's neighbours are the exact ones, sorted by cosine.
    auto db = FeatureDb::open(db_);
    const auto nb = db->neighbours(0);
    QCOMPARE(static_cast<int>(nb.size()), base_.neighbours);
    for (std::size_t i = 1; i < nb.size(); ++i) QVERIFY(nb[i - 1].second >= nb[i].second);
    const auto map = db->mapPoints();
    QCOMPARE(static_cast<std::int64_t>(map.size()), std::int64_t{48});
  }

  // UMAP keeps clusters apart in 2-D (both optimisers), and a seed gives the same map.
  void umapKeepsClustersApart() {
    c10::InferenceMode guard;
    at::manual_seed(11);
    const std::int64_t per = 120, k = 6, d = 24;
    const at::Tensor centres = at::randn({k, d}) * 3;
    const at::Tensor labels = at::arange(k, at::kLong).repeat_interleave(per);
    const at::Tensor x = centres.index_select(0, labels) + at::randn({k * per, d}) * 0.5;
    for (auto sgd : {UmapSgd::Sequential, UmapSgd::Batched}) {
      UmapOptions o;
      o.sgd = sgd;
      o.n_epochs = 200;
      const at::Tensor y = umapEmbed(x, o);
      QCOMPARE(y.sizes(), (at::IntArrayRef{k * per, 2}));
      QVERIFY(at::isfinite(y).all().item<bool>());
      // Share of each point's 10 nearest points in the map that share its cluster.
      const at::Tensor dist = at::cdist(y, y).fill_diagonal_(1e9);
      const at::Tensor nn = std::get<1>(dist.topk(10, 1, false));
      const double same = (labels.index_select(0, nn.reshape(-1)).view({-1, 10}) == labels.unsqueeze(1)).to(at::kDouble).mean().item<double>();
      QVERIFY2(same > 0.95, qPrintable(QString("neighbours in the same cluster: %1").arg(same)));
      if (sgd == UmapSgd::Sequential) {
        QVERIFY(at::equal(y, umapEmbed(x, o)));
        // The CPU optimiser's parts run on one thread or two: the same map.
        const int threads = at::get_num_threads();
        at::set_num_threads(threads > 1 ? 1 : 2);
        const at::Tensor other = umapEmbed(x, o);
        at::set_num_threads(threads);
        QVERIFY(at::equal(y, other));
      }
    }
  }

  // Two shards merged give the same database as one run.
  void shardsMergeToTheSingleRun() {
    std::vector<std::string> shards;
    for (int i = 0; i < 2; ++i) {
      IndexOptions o = base_;
      o.shard_index = i;
      o.shard_count = 2;
      o.out = path("shard" + std::to_string(i) + ".db");
      QCOMPARE(buildIndex(o), JobStatus::Done);
      shards.push_back(o.out);
    }
    QVERIFY_EXCEPTION_THROWN(mergeIndex({shards[0]}, path("bad.db")), Error);  // a shard is missing
    QCOMPARE(mergeIndex(shards, path("merged.db"), "auto", 2), JobStatus::Done);
    QVERIFY(dump(path("merged.db")) == dump(db_));
    QVERIFY_EXCEPTION_THROWN(FeatureDb::open(shards[0]), Error);  // a shard is not a feature database
  }

  // Shards scanned with one SAE are not merged with another in its place (the merge reads it again).
  void mergeRefusesAChangedDictionary() {
    const std::string copy = copyOfSae("sae-for-shards");
    std::vector<std::string> shards;
    for (int i = 0; i < 2; ++i) {
      IndexOptions o = base_;
      o.sae_dir = copy;
      o.shard_index = i;
      o.shard_count = 2;
      o.out = path("changed-shard" + std::to_string(i) + ".db");
      QCOMPARE(buildIndex(o), JobStatus::Done);
      shards.push_back(o.out);
    }
    flipLastByte(copy + "/sae_weights.safetensors");
    expectErrorFrom([&] { mergeIndex(shards, path("changed-merged.db"), "auto", 2); }, "changed since the scan", "merged with a changed SAE");
    QVERIFY_EXCEPTION_THROWN(FeatureDb::open(path("changed-merged.db")), Error);  // nothing was written
  }

  // A scan records --weights (the merge opens the model so): a shard is not resumed with others.
  void scanRecordsItsWeights() {
    IndexOptions o = base_;
    o.shard_count = 2;
    o.weights = "stored";
    o.out = path("weights-shard0.db");
    QCOMPARE(buildIndex(o), JobStatus::Done);
    o.weights = "float32";
    expectErrorFrom([&] { buildIndex(o); }, "weights is stored, now float32", "resumed a scan with other weights");
    expectErrorFrom([&] { o.weights = "half", buildIndex(o); }, "weights must be auto, float32 or stored, not 'half'", "accepted --weights half");
  }

  // Cancelling keeps the committed blocks; the rerun resumes and ends with the same database.
  void cancelledScanResumes() {
    IndexOptions o = base_;
    o.out = path("resumed.db");
    int calls = 0;
    const auto status = buildIndex(o, [&](const Progress& p) { return !(p.stage == "scan" && ++calls == 3); });
    QCOMPARE(status, JobStatus::Cancelled);
    QVERIFY(!fs::exists(o.out));
    QVERIFY(fs::exists(o.out + ".scan"));
    std::int64_t first_done = -1;
    QCOMPARE(buildIndex(o, [&](const Progress& p) {
               if (p.stage == "scan" && first_done < 0) first_done = p.done;
               return true;
             }),
             JobStatus::Done);
    QCOMPARE(first_done, std::int64_t{8});  // the two blocks committed before cancelling are kept
    QVERIFY(dump(o.out) == dump(db_));
    QVERIFY(!fs::exists(o.out + ".scan"));
  }

  // A scan killed with SIGKILL and rerun gives the same database, which passes integrity_check.
  void killedScanResumes() {
    const QString out = QString::fromStdString(path("killed.db"));
    const QStringList args = {"index", "--model", QString::fromStdString(model_), "--sae", QString::fromStdString(sae_),
                              "--corpus", QString::fromStdString(corpus_), "--tokens", QString::number(base_.tokens),
                              "--out", out, "--batch", "4", "--seed", "7", "--umap-epochs", "50", "--threads", "2"};
    QProcess p;
    p.start(MONOSCOPE_CLI, args);
    QVERIFY(p.waitForStarted());
    // Wait until some blocks are committed, then kill.
    for (int i = 0; i < 600; ++i) {
      QTest::qWait(50);
      if (fs::exists(path("killed.db.scan"))) {
        try {
          Sqlite s(path("killed.db.scan"), Sqlite::Open::ReadOnly);
          auto st = s.prepare("SELECT COUNT(*) FROM scan_windows");
          if (st.step() && st.integer(0) >= 8) break;
        } catch (const Error&) {
        }
      }
    }
    p.kill();
    p.waitForFinished();
    QProcess again;
    again.start(MONOSCOPE_CLI, args);
    QVERIFY(again.waitForFinished(300000));
    QCOMPARE(again.exitCode(), 0);
    QVERIFY(dump(out.toStdString()) == dump(db_));
    Sqlite db(out.toStdString(), Sqlite::Open::ReadOnly);
    auto st = db.prepare("PRAGMA integrity_check");
    QVERIFY(st.step());
    QCOMPARE(st.text(0), std::string("ok"));
  }

  void queriesLabelsAndExplanations() {
    fs::copy_file(db_, path("rw.db"));
    auto db = FeatureDb::open(path("rw.db"), FeatureDb::Mode::ReadWrite);
    FeatureQuery q;
    q.sort = FeatureSort::Density;
    q.descending = true;
    q.limit = 5;
    const auto top = db->listFeatures(q);
    QCOMPARE(top.size(), std::size_t{5});
    for (std::size_t i = 1; i < top.size(); ++i) QVERIFY(top[i - 1].density >= top[i].density);
    const auto ids = db->featureIds(q);  // every feature, in the same order
    QCOMPARE(static_cast<std::int64_t>(ids.size()), db->info().d_sae);
    for (std::size_t i = 0; i < top.size(); ++i) QCOMPARE(ids[i], top[i].id);
    q.filter = FeatureFilter::Dead;
    q.limit = 100;
    QCOMPARE(db->countFeatures(q), db->info().dead);
    // Search finds the planted " and" feature by its explanation.
    const auto found = db->searchText("and", 5);
    QVERIFY(std::any_of(found.begin(), found.end(), [](const FeatureScore& s) { return s.feature == 1; }));
    // A manual label is stored with its scorer and makes the feature "labelled".
    const auto page = db->page(2);
    db->setLabel(page.top_examples[0].id, 1);
    const auto again = db->page(2);
    bool manual = false;
    for (const auto& s : again.top_examples[0].scores) manual = manual || (s.scorer == "manual" && s.score == 1);
    QVERIFY(manual);
    q.filter = FeatureFilter::Labelled;
    QCOMPARE(db->countFeatures(q), std::int64_t{1});
    QVERIFY_EXCEPTION_THROWN(db->setLabel(page.top_examples[0].id, 4), Error);
    // Explanations are versioned.
    QCOMPARE(db->setExplanation(2, "the word \"of\" in phrases", "tester"), std::int64_t{2});
    const auto hist = db->explanationHistory(2);
    QCOMPARE(hist.size(), std::size_t{2});
    QCOMPARE(hist[1].author, std::string("tester"));
    QCOMPARE(db->summary(2).explanation, std::string("the word \"of\" in phrases"));
    QVERIFY(!db->searchText("phrases", 3).empty());
    SteeringRunRecord run;
    run.prompt = "The king";
    run.request_json = "{}";
    run.default_text = "a";
    run.steered_text = "b";
    const auto id = db->saveSteeringRun(run);
    QCOMPARE(db->steeringRuns().front().id, id);
  }

  void badDatabasesAreRefused() {
    auto expectError = [](const std::string& p, const char* needle, FeatureDb::Mode mode = FeatureDb::Mode::ReadOnly) {
      try {
        FeatureDb::open(p, mode);
        QFAIL(("opened " + p).c_str());
      } catch (const Error& e) {
        QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
      }
    };
    expectError(path("missing.db"), "does not exist");
    std::ofstream(path("text.db")) << "this is not a database at all, just some text that is long enough";
    expectError(path("text.db"), "is not a database");
    {
      Sqlite s(path("empty.db"), Sqlite::Open::Create);
      s.exec("CREATE TABLE t(x)");
    }
    expectError(path("empty.db"), "not a Monoscope feature database");
    fs::copy_file(db_, path("newer.db"));
    {
      Sqlite s(path("newer.db"), Sqlite::Open::ReadWrite);
      s.setUserVersion(99);
    }
    expectError(path("newer.db"), "newer than this Monoscope reads");
    // Damaged metadata (found by fuzzing): a named error, not a library exception.
    fs::copy_file(db_, path("meta.db"));
    {
      Sqlite s(path("meta.db"), Sqlite::Open::ReadWrite);
      s.exec("UPDATE meta SET value = 'x12' WHERE key = 'd_sae'");
    }
    expectError(path("meta.db"), "metadata d_sae is not a valid integer");
    fs::copy_file(db_, path("hist.db"));
    {
      Sqlite s(path("hist.db"), Sqlite::Open::ReadWrite);
      s.exec("UPDATE meta SET value = '{\"counts\": [\"a\"]}' WHERE key = 'density_histogram'");
    }
    expectError(path("hist.db"), "density_histogram is malformed");
    fs::copy_file(db_, path("idx.db"));
    {
      Sqlite s(path("idx.db"), Sqlite::Open::ReadWrite);
      s.exec("UPDATE intervals SET idx = 4611686018427387904 WHERE feature = 0 AND idx = 1");
      s.exec("UPDATE vocab SET id = -5 WHERE id = 3");
    }
    expectErrorFrom([&] { FeatureDb::open(path("idx.db"))->page(0); }, "interval index", "a damaged interval index was accepted");
    // A version-1 file is migrated when opened for writing.
    {
      Sqlite s(path("v1.db"), Sqlite::Open::Create);
      migrateFeatureSchema(s, 1);
      s.exec("INSERT INTO features(id, count, density, max_act, mean_act) VALUES(0, 0, 0, 0, 0)");
    }
    auto v1 = FeatureDb::open(path("v1.db"), FeatureDb::Mode::ReadWrite);
    QCOMPARE(v1->info().schema_version, FeatureDb::kSchemaVersion);
    // A read-only file opens for reading and refuses writes with a clear error.
    fs::copy_file(db_, path("ro.db"));
    fs::permissions(path("ro.db"), fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    auto ro = FeatureDb::open(path("ro.db"));
    QVERIFY(ro->summary(0).id == 0);
    QVERIFY_EXCEPTION_THROWN(ro->setLabel(1, 2), Error);
    // A locked file: another connection holds a write lock.
    fs::copy_file(db_, path("locked.db"));
    Sqlite holder(path("locked.db"), Sqlite::Open::ReadWrite);
    holder.exec("PRAGMA journal_mode=WAL");
    holder.exec("BEGIN IMMEDIATE");
    auto w = FeatureDb::open(path("locked.db"), FeatureDb::Mode::ReadWrite);
    expectErrorFrom([&] { w->setExplanation(3, "x", "t"); }, "locked", "wrote to a locked database");
    holder.exec("ROLLBACK");
  }

  void badIndexInputs() {
    IndexOptions o = base_;
    o.out = path("x.db");
    o.corpus = path("nothing-here");
    QVERIFY_EXCEPTION_THROWN(buildIndex(o), Error);
    fs::create_directories(path("emptycorpus"));
    std::ofstream(path("emptycorpus/a.txt")) << "";
    o.corpus = path("emptycorpus");
    expectErrorFrom([&] { buildIndex(o); }, "fewer than one window", "indexed an empty corpus");
    o.corpus = corpus_;
    o.context = 128;  // longer than the SAE's 64 positions
    QVERIFY_EXCEPTION_THROWN(buildIndex(o), Error);
    o.context = 0;
    o.sae_dir = testutil::fixture("sae/standard");  // an SAE of another model (d_in 64)
    expectErrorFrom([&] { buildIndex(o); }, "d_in 64", "accepted an SAE of another model");
  }
};

QTEST_GUILESS_MAIN(TestIndex)
#include "test_index.moc"
