// The public engine API on the bundled demo: tokens with byte spans, encoding in windows of the
// SAE's context, streamed and cancellable generation with steering, searches, attribution
// (checked against finite differences) and logit effects.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QtTest>
#include <filesystem>

#include "api/engine.h"
#include "api/engine_impl.h"
#include "lm/hooks.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace monoscope::core;

class TestEngine : public QObject {
  Q_OBJECT

  const std::string demo_ = std::string(MONOSCOPE_FIXTURES) + "/../../data/demo";
  std::unique_ptr<Engine> engine_;

 private Q_SLOTS:
  void initTestCase() {
    if (!fs::exists(demo_ + "/model/config.json")) QSKIP("data/demo is missing");
    EngineOptions o;
    o.model_dir = demo_ + "/model";
    o.sae_dir = demo_ + "/sae";
    o.threads = 2;
    std::vector<std::string> stages;
    engine_ = Engine::open(o, [&](const Progress& p) {
      stages.push_back(p.stage);
      return true;
    });
    QVERIFY(engine_);
    QCOMPARE(stages.front(), std::string("load model"));
    QCOMPARE(engine_->info().d_sae, std::int64_t{4096});
    QCOMPARE(engine_->info().dtype, std::string("float32"));  // weights as computed with (status bar)
    QCOMPARE(engine_->info().window, std::min(engine_->info().sae_context, engine_->info().n_ctx));
  }

  // The model's matrices as stored (the demo's are F16) or widened; another word is refused.
  void weightsAreKeptAsAsked() {
    EngineOptions o;
    o.model_dir = demo_ + "/model";
    o.weights = "stored";
    const auto stored = Engine::open(o);
    QCOMPARE(stored->info().dtype, std::string("float16"));
    QCOMPARE(stored->info().compute_dtype, std::string("float32"));  // F16 is widened for each product
    o.weights = "float32";
    const auto widened = Engine::open(o);
    QCOMPARE(widened->info().dtype, std::string("float32"));
    c10::InferenceMode guard;
    const at::Tensor ids = at::tensor(std::vector<std::int64_t>{5, 9, 2, 7}).view({1, -1});
    const double d = testutil::maxAbsDiff(stored->impl().model->forward(ids), widened->impl().model->forward(ids));
    QVERIFY2(d < 1e-4, std::to_string(d).c_str());
    o.weights = "half";
    try {
      Engine::open(o);
      QFAIL("weights 'half' was accepted");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("weights must be auto, float32 or stored, not 'half'") != std::string::npos, e.what());
    }
  }

  void openingCanBeCancelled() {
    EngineOptions o;
    o.model_dir = demo_ + "/model";
    o.sae_dir = demo_ + "/sae";
    QVERIFY(Engine::open(o, [](const Progress&) { return false; }) == nullptr);
  }

  void tokensCarryTheirBytes() {
    const std::string text = "In the beginning, caf\xC3\xA9 \xE2\x80\x94 def f(x):\n    return x";
    const auto toks = engine_->tokenize(text);
    std::size_t at = 0;
    for (const auto& t : toks) {
      QCOMPARE(t.start, at);
      QVERIFY(t.end > t.start);
      at = t.end;
    }
    QCOMPARE(at, text.size());
    QCOMPARE(toks[1].text, std::string(" the"));
    QVERIFY_EXCEPTION_THROWN(engine_->tokenize("bad \xFF byte"), Error);
    // The demo's vocabulary splits 'ü' and '€' into bytes: each shows whole on its first token,
    // so the tokens' texts spell the input without a replacement character.
    const std::string split = "Gr\xC3\xBC\xC3\x9F" "e aus M\xC3\xBCnchen, 5\xE2\x82\xAC";
    const auto parts = engine_->tokenize(split);
    std::string spelled;
    int empty = 0;
    for (const auto& t : parts) spelled += t.text, empty += t.text.empty();
    QCOMPARE(spelled, split);
    QVERIFY(empty >= 3);  // the later bytes' tokens
  }

  // Text longer than the SAE's context is encoded window by window.
  void encodesInWindows() {
    std::string text;
    for (int i = 0; i < 80; ++i) text += "And the LORD spake unto Moses, saying. ";
    const auto ids = engine_->tokenIds(text);
    const auto w = static_cast<std::size_t>(engine_->info().window);
    QVERIFY(ids.size() > w);
    const auto all = engine_->featureMatrix(ids);
    const std::vector<std::int32_t> second(ids.begin() + static_cast<std::ptrdiff_t>(w),
                                           ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), 2 * w)));
    const auto alone = engine_->featureMatrix(second);
    const auto d = static_cast<std::size_t>(engine_->info().d_sae);
    double diff = 0;
    for (std::size_t i = 0; i < alone.size(); ++i) diff = std::max(diff, static_cast<double>(std::abs(alone[i] - all[w * d + i])));
    QVERIFY2(diff < 1e-4, qPrintable(QString::number(diff)));
    const auto enc = engine_->encode(text, 16);
    QCOMPARE(enc.tokens.size(), ids.size());
    for (const auto& row : enc.active) {
      QVERIFY(row.size() <= 16);
      for (std::size_t j = 1; j < row.size(); ++j) QVERIFY(row[j - 1].value >= row[j].value);
    }
    const auto f = enc.active[5].front();
    const auto values = engine_->featureValues(text, f.feature);
    QVERIFY(std::abs(values[5] - f.value) < 1e-5);
  }

  // A million-token prompt and a long text are refused or handled in under a second, memory
  // bounded by one window.
  void hugeInputsAreQuick() {
    std::string huge;
    while (huge.size() < 4'000'000) huge += " And the LORD spake unto Moses, saying,";
    QElapsedTimer t;
    t.start();
    GenerateRequest req;
    req.prompt = huge;
    req.max_tokens = 4;
    try {
      engine_->generate(req);
      QFAIL("expected an error");
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains("cannot fit the model's context"), e.what());
    }
    QVERIFY2(t.elapsed() < 1000, qPrintable(QString::number(t.elapsed())));
    // Sparse encoding of a long text works window by window.
    const std::string longer = huge.substr(0, 40'000);
    const auto encoded = engine_->encode(longer, 8);
    QCOMPARE(encoded.active.size(), encoded.tokens.size());
    QVERIFY(encoded.tokens.size() > 2 * static_cast<std::size_t>(engine_->info().window));
    const auto values = engine_->featureValues(longer, encoded.active.back().front().feature);
    QCOMPARE(values.size(), encoded.tokens.size());
    QCOMPARE(values.back(), encoded.active.back().front().value);
  }

  void generatesStreamsAndSteers() {
    GenerateRequest req;
    req.prompt = "And it came to pass";
    req.max_tokens = 12;
    req.temperature = 0.8;
    req.seed = 3;
    std::vector<std::int32_t> streamed;
    const auto a = engine_->generate(req, [&](int run, std::int32_t id, const std::string&) {
      if (run == 0) streamed.push_back(id);
      return true;
    });
    QCOMPARE(streamed, a.default_run.ids);
    QVERIFY(!a.default_run.text.empty());
    const auto b = engine_->generate(req);
    QCOMPARE(b.default_run.ids, a.default_run.ids);  // same seed, same completion
    // A strong clamp on the feature most active on the prompt's last token changes the text.
    const auto top = engine_->topFeaturesLastToken("The king of Israel", 1);
    QCOMPARE(top.size(), std::size_t{1});
    req.edits = {{top[0].feature == 0 ? 1 : (top[0].feature + 7) % 4096, 200.0}};
    const auto s = engine_->generate(req);
    QCOMPARE(s.default_run.ids, a.default_run.ids);
    QVERIFY(s.steered_run.ids != s.default_run.ids);
    // Cancelling stops within one token.
    int seen = 0;
    const auto c = engine_->generate(req, [&](int, std::int32_t, const std::string&) { return ++seen < 3; });
    QVERIFY(c.default_run.cancelled);
    QCOMPARE(c.default_run.ids.size(), std::size_t{3});
    QVERIFY(c.steered_run.ids.empty());
    // Steering past the SAE's context is allowed, with a warning.
    req.max_tokens = engine_->info().sae_context + 4 - 5;
    req.prompt = "And it came to pass";
    if (engine_->info().sae_context > 0 && engine_->info().sae_context < engine_->info().n_ctx) {
      const auto far = engine_->generate(req, [](int, std::int32_t, const std::string&) { return false; });
      QVERIFY(!far.warnings.empty());
    }
  }

  void contrastiveFindsFeaturesOnlyOnThePrompt() {
    const auto found = engine_->contrastive("def parse(self, path):", "And the LORD said unto Moses", 10);
    QVERIFY(!found.empty());
    const auto neg = engine_->encode("And the LORD said unto Moses", 64);
    for (const auto& f : found) {
      for (const auto& row : neg.active)
        for (const auto& a : row) QVERIFY(a.feature != f.feature);
    }
  }

  // attribution_i = sum_pos f_i(pos) W_dec[i] . grad: the directional derivative of the logit
  // difference along f_i W_dec[i], checked by central finite differences.
  void attributionMatchesFiniteDifferences() {
    const std::string prompt = "And the LORD said unto";
    const auto attr = engine_->attribute(prompt, " Moses", " the", 3);
    QCOMPARE(attr.size(), std::size_t{3});
    const auto& impl = engine_->impl();
    const auto ids = engine_->tokenIds(prompt);
    const std::int64_t a = engine_->tokenIds(" Moses")[0], b = engine_->tokenIds(" the")[0];
    std::vector<std::int64_t> v(ids.begin(), ids.end());
    const at::Tensor input = at::tensor(v, at::kLong).view({1, -1});
    for (const auto& fs : attr) {
      c10::InferenceMode guard;
      auto diffWith = [&](double eps) {
        HookSet hooks;
        hooks.add(impl.info.hook_name, [&](const at::Tensor& x, const HookContext&) {
          const at::Tensor f = impl.sae->encode(x).select(2, fs.feature).unsqueeze(2);  // [1, pos, 1]
          return x + eps * f * impl.sae->W_dec()[fs.feature];
        });
        const at::Tensor logits = impl.model->forward(input, &hooks)[0];
        const at::Tensor last = logits[logits.size(0) - 1].to(at::kDouble);
        return (last[a] - last[b]).item<double>();
      };
      const double eps = 1e-2;
      const double fd = (diffWith(eps) - diffWith(-eps)) / (2 * eps);
      QVERIFY2(std::abs(fd - fs.score) <= 0.05 * std::abs(fs.score) + 1e-3,
               qPrintable(QString("feature %1: attribution %2, finite difference %3").arg(fs.feature).arg(fs.score).arg(fd)));
    }
  }

  void logitEffectsRankTheVocabulary() {
    const auto e = engine_->logitEffects(10, 5);
    QCOMPARE(e.top.size(), std::size_t{5});
    for (std::size_t i = 1; i < 5; ++i) QVERIFY(e.top[i - 1].second >= e.top[i].second);
    QVERIFY(e.bottom.front().second <= e.top.back().second);
    std::int64_t total = 0;
    for (auto c : e.histogram.counts) total += c;
    QCOMPARE(total, engine_->info().vocab_size);
  }

  // The demo's SAE saved in F16 and read in place (as a dictionary too wide to copy would be),
  // a block of 1,000 features at a time, answers every engine query as the same file copied
  // into float32: encodings, values, searches, attribution, logit effects and steering.
  void aMappedDictionaryAnswersAsACopiedOne() {
    QTemporaryDir dir;
    const std::string d = dir.path().toStdString();
    engine_->impl().sae->save(d, true);
    EngineOptions o;
    o.model_dir = demo_ + "/model";
    o.sae_dir = d;
    o.threads = 2;
    const auto copied = Engine::open(o);
    qputenv("MONOSCOPE_SAE_MAP_ABOVE", "0");
    qputenv("MONOSCOPE_SAE_BLOCK_FEATURES", "1000");
    const auto mapped = Engine::open(o);
    qunsetenv("MONOSCOPE_SAE_MAP_ABOVE");
    QVERIFY(mapped->impl().sae->mapped() && !copied->impl().sae->mapped());
    const std::string text = "And the LORD said unto Moses, def parse(self, path):";
    const auto a = copied->encode(text, 16), b = mapped->encode(text, 16);
    QCOMPARE(a.active.size(), b.active.size());
    for (std::size_t t = 0; t < a.active.size(); ++t) {
      QCOMPARE(a.active[t].size(), b.active[t].size());
      for (std::size_t j = 0; j < a.active[t].size(); ++j) QVERIFY(std::abs(a.active[t][j].value - b.active[t][j].value) < 1e-4);
    }
    const auto va = copied->featureValues(text, 1234), vb = mapped->featureValues(text, 1234);
    for (std::size_t t = 0; t < va.size(); ++t) QVERIFY(std::abs(va[t] - vb[t]) < 1e-4);
    auto sameScores = [](const std::vector<FeatureScore>& x, const std::vector<FeatureScore>& y, double tol) {
      QCOMPARE(x.size(), y.size());
      for (std::size_t i = 0; i < x.size(); ++i) QVERIFY(std::abs(x[i].score - y[i].score) <= tol * (1 + std::abs(x[i].score)));
    };
    sameScores(copied->contrastive("def parse(self, path):", "And the LORD said", 8), mapped->contrastive("def parse(self, path):", "And the LORD said", 8), 1e-4);
    sameScores(copied->topFeaturesLastToken(text, 8), mapped->topFeaturesLastToken(text, 8), 1e-4);
    sameScores(copied->attribute("And the LORD said unto", " Moses", " the", 5), mapped->attribute("And the LORD said unto", " Moses", " the", 5), 1e-3);
    QCOMPARE(copied->logitEffects(2500, 5).top, mapped->logitEffects(2500, 5).top);
    GenerateRequest req;
    req.prompt = "And it came to pass";
    req.max_tokens = 8;
    req.edits = {{2500, 40.0}};
    QCOMPARE(copied->generate(req).steered_run.ids, mapped->generate(req).steered_run.ids);
    qunsetenv("MONOSCOPE_SAE_BLOCK_FEATURES");
  }

  void badRequestsAreRefused() {
    QVERIFY_EXCEPTION_THROWN(engine_->featureValues("x", 5000), Error);
    QVERIFY_EXCEPTION_THROWN(engine_->tokenIds(""), Error);
    QVERIFY_EXCEPTION_THROWN(engine_->attribute("the", " Moses and", " the", 3), Error);
    GenerateRequest req;
    req.prompt = "x";
    req.edits = {{99999, 1.0}};
    QVERIFY_EXCEPTION_THROWN(engine_->generate(req), Error);
    EngineOptions o;
    o.model_dir = demo_ + "/model";
    o.sae_dir = testutil::fixture("sae/standard");  // d_in 64, another model's SAE
    try {
      Engine::open(o);
      QFAIL("opened an SAE of another model");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("d_in 64") != std::string::npos, e.what());
    }
  }
};

QTEST_GUILESS_MAIN(TestEngine)
#include "test_engine.moc"
