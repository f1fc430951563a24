// SAEs: SAELens interop (standard, topk, jumprelu, pre-6.0 cfg; Monoscope-saved SAEs load in
// SAELens), metrics and bad configs.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>
#include <fstream>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "sae/sae.h"
#include "test_util.h"
#include "util/error.h"
#include "util/mapped_file.h"

using namespace monoscope::core;

class TestSae : public QObject {
  Q_OBJECT

  SafetensorsFile expected_{testutil::fixture("sae/expected.safetensors")};

  void matchesSaeLens(const std::string& dir, const std::string& key) {
    c10::InferenceMode guard;
    auto sae = Sae::load(testutil::fixture("sae/" + dir), c10::Device(c10::kCPU));
    at::Tensor x = testutil::loadExpected(expected_, "input");
    const double d = testutil::maxAbsDiff(sae->encode(x), testutil::loadExpected(expected_, key + "_feature_acts"));
    QVERIFY2(d < 1e-4, (dir + " encodes differently by " + std::to_string(d)).c_str());
    if (expected_.has(key + "_reconstruction")) {
      SaeNorm norm;
      at::Tensor f = sae->encode(x, &norm);
      QVERIFY(testutil::maxAbsDiff(sae->decode(f, &norm), testutil::loadExpected(expected_, key + "_reconstruction")) < 1e-4);
    }
  }

 private Q_SLOTS:
  void standardMatchesSaeLens() { matchesSaeLens("standard", "standard"); }
  void topkMatchesSaeLens() {
    matchesSaeLens("topk", "topk");
    c10::InferenceMode guard;
    auto sae = Sae::load(testutil::fixture("sae/topk"), c10::Device(c10::kCPU));
    at::Tensor f = sae->encode(testutil::loadExpected(expected_, "input"));
    QVERIFY((f > 0).sum(-1).max().item<std::int64_t>() <= 8);
  }
  void jumpreluMatchesSaeLens() { matchesSaeLens("jumprelu", "jumprelu"); }
  void pre6ConfigLoads() {
    matchesSaeLens("standard_pre6", "standard");
    auto sae = Sae::load(testutil::fixture("sae/standard_pre6"), c10::Device(c10::kCPU));
    QCOMPARE(sae->config().hook_name, std::string("blocks.0.hook_resid_post"));
  }

  // The committed monoscope_saved/ SAE was written by `monoscope-cli sae-convert` and then
  // loaded by SAELens to record its encodings; saving again must give identical files.
  void savedSaeLoadsInSaeLens() {
    matchesSaeLens("monoscope_saved", "monoscope_saved");
    auto sae = Sae::load(testutil::fixture("sae/standard_pre6"), c10::Device(c10::kCPU));
    QTemporaryDir dir;
    sae->save(dir.path().toStdString());
    for (const char* f : {"cfg.json", "sae_weights.safetensors"}) {
      QVERIFY2(readTextFile(dir.path().toStdString() + "/" + f) ==
                   readTextFile(testutil::fixture(std::string("sae/monoscope_saved/") + f)),
               f);
    }
    // SAELens reloaded the metadata intact (recorded by make_fixtures.py --only-saved-sae).
    const auto seen = nlohmann::json::parse(readTextFile(testutil::fixture("sae/monoscope_saved_metadata.json")));
    const auto cfg = SaeConfig::fromFile(testutil::fixture("sae/monoscope_saved/cfg.json"));
    QCOMPARE(seen["hook_name"].get<std::string>(), cfg.hook_name);
    QCOMPARE(seen["context_size"].get<std::int64_t>(), std::int64_t{64});
    QCOMPARE(cfg.context_size, std::int64_t{64});
    QCOMPARE(seen["model_name"].get<std::string>(), std::string("gpt2-tiny"));
    QCOMPARE(seen["prepend_bos"].get<bool>(), false);
  }

  void metricsOnPerfectReconstruction() {
    c10::InferenceMode guard;
    // W_dec = identity rows, W_enc = W_dec^T: inputs with non-negative coordinates reconstruct exactly.
    SaeConfig cfg;
    cfg.d_in = 8;
    cfg.d_sae = 8;
    cfg.hook_name = "blocks.0.hook_resid_post";
    Sae sae(cfg, at::eye(8), at::zeros({8}), at::eye(8), at::zeros({8}));
    at::Tensor x = at::rand({32, 8});
    x.masked_fill_(x < 0.5, 0.0);
    const auto m = sae.metrics(x);
    QVERIFY(m.fraction_variance_explained > 0.999999);
    QVERIFY(m.mse < 1e-12);
    QVERIFY(std::fabs(m.l0 - (x > 0).sum().item<double>() / 32.0) < 1e-9);
  }

  void badConfigsNameTheField() {
    QTemporaryDir dir;
    const std::string d = dir.path().toStdString();
    auto sae = Sae::load(testutil::fixture("sae/standard"), c10::Device(c10::kCPU));
    sae->save(d);
    auto cfg = readJsonFile(d + "/cfg.json");
    auto expectFail = [&](const nlohmann::json& c, const char* needle) {
      std::ofstream(d + "/cfg.json") << c.dump();
      try {
        Sae::load(d, c10::Device(c10::kCPU));
        QFAIL(needle);
      } catch (const Error& e) {
        QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
      }
    };
    auto c = cfg;
    c["d_in"] = 65;
    expectFail(c, "W_enc");
    c = cfg;
    c["architecture"] = "gated";
    expectFail(c, "architecture");
    c = cfg;
    c.erase("d_sae");
    expectFail(c, "d_sae");
    c = cfg;
    c["metadata"].erase("hook_name");
    expectFail(c, "hook_name");
    c = cfg;
    c["normalize_activations"] = "whitening";
    expectFail(c, "normalize_activations");
  }
};

QTEST_GUILESS_MAIN(TestSae)
#include "test_sae.moc"
