// The bundled demo: the Monoscope-trained model gives the logits Hugging Face transformers
// gives, and the Monoscope-trained SAE encodes as SAELens does (tests/fixtures/make_demo_fixtures.py).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QtTest>
#include <filesystem>

#include "lm/hooks.h"
#include "lm/transformer.h"
#include "sae/sae.h"
#include "test_util.h"
#include "text/tokenizer.h"

using namespace monoscope::core;

class TestDemo : public QObject {
  Q_OBJECT

  const std::string demo_ = std::string(MONOSCOPE_FIXTURES) + "/../../data/demo";

 private Q_SLOTS:
  void matchesTransformersAndSaeLens() {
    if (!std::filesystem::exists(demo_ + "/model/config.json")) QSKIP("data/demo is not built");
    c10::InferenceMode guard;
    auto model = Transformer::load(demo_ + "/model", c10::Device(c10::kCPU));
    auto sae = Sae::load(demo_ + "/sae", c10::Device(c10::kCPU));
    const auto tok = Tokenizer::fromDirectory(demo_ + "/model");
    SafetensorsFile expected(testutil::fixture("demo_expected.safetensors"));
    for (int i = 0; expected.has("ids_" + std::to_string(i)); ++i) {
      const std::string n = std::to_string(i);
      at::Tensor ids = testutil::loadExpected(expected, "ids_" + n);
      HookSet hooks;
      at::Tensor acts;
      hooks.add(sae->config().hook_name, [&](const at::Tensor& x, const HookContext&) {
        acts = x[0].clone();
        return at::Tensor();
      });
      at::Tensor logits = model->forward(ids.view({1, -1}), &hooks)[0];
      const double d = testutil::maxAbsDiff(logits, testutil::loadExpected(expected, "logits_" + n));
      QVERIFY2(d < 1e-4, ("logits differ by " + std::to_string(d)).c_str());
      const double f = testutil::maxAbsDiff(sae->encode(acts), testutil::loadExpected(expected, "feature_acts_" + n));
      QVERIFY2(f < 1e-3, ("feature activations differ by " + std::to_string(f)).c_str());
    }
  }

  void tokenizerRoundTripsEveryDomain() {
    if (!std::filesystem::exists(demo_ + "/model/tokenizer.json")) QSKIP("data/demo is not built");
    const auto tok = Tokenizer::fromDirectory(demo_ + "/model");
    for (const std::string text : {"And God said, Let there be light.", "for i in range(10):\n    print(i)",
                                   "Fe: iron, atomic number 26", "naïve 🙂"}) {
      QCOMPARE(tok.decode(tok.encodeIds(text)), text);
    }
  }
};

QTEST_GUILESS_MAIN(TestDemo)
#include "test_demo.moc"
