// Activation store: streaming from a model through the mixing buffer, file sources, and the
// CE-loss-recovered evaluation.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QTemporaryDir>
#include <QtTest>

#include "io/safetensors.h"
#include "lm/hooks.h"
#include "lm/lm_trainer.h"
#include "lm/transformer.h"
#include "sae/activation_store.h"
#include "sae/sae.h"
#include "test_util.h"
#include "util/error.h"

using namespace monoscope::core;

class TestActivationStore : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  std::shared_ptr<const Transformer> model_{Transformer::load(testutil::fixture("models/gpt2-tiny"), c10::Device(c10::kCPU))};

  std::shared_ptr<const TokenShard> shard() {
    std::vector<std::int32_t> t(5000);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::int32_t>((i * 2654435761u) % 512);
    SafetensorsWriter w;
    w.add("tokens", DType::I32, {5000}, t.data(), t.size() * 4);
    const std::string p = dir_.path().toStdString() + "/shard.safetensors";
    w.write(p);
    return std::make_shared<const TokenShard>(p);
  }

 private Q_SLOTS:
  void streamsHookActivations() {
    ModelActivationSource src(model_, "blocks.1.hook_resid_pre", shard(), 32, 2048, 1);
    QCOMPARE(src.width(), std::int64_t(64));
    at::Tensor a = src.next(500), b = src.next(500);
    QCOMPARE(a.sizes().vec(), (std::vector<std::int64_t>{500, 64}));
    QVERIFY(testutil::maxAbsDiff(a, b) > 0.1);
    // Each row is a real activation at that hook: it matches a direct forward pass.
    c10::InferenceMode guard;
    at::Tensor ids = at::arange(32, at::kLong).view({1, -1});
    at::Tensor direct = src.activations(ids)[0];
    HookSet hooks;
    at::Tensor seen;
    hooks.add("blocks.1.hook_resid_pre", [&](const at::Tensor& x, const HookContext&) {
      seen = x[0].clone();
      return at::Tensor();
    });
    model_->forward(ids, &hooks);
    QCOMPARE(testutil::maxAbsDiff(direct, seen), 0.0);
  }

  void fileSourceCoversEveryRowPerEpoch() {
    std::vector<float> v(100 * 4);
    for (int i = 0; i < 100; ++i)
      for (int j = 0; j < 4; ++j) v[i * 4 + j] = static_cast<float>(i);
    SafetensorsWriter w;
    w.addF32("activations", {100, 4}, v);
    const std::string p = dir_.path().toStdString() + "/acts.safetensors";
    w.write(p);
    FileActivationSource src(p, 3);
    at::Tensor epoch = src.next(100).select(1, 0);
    QCOMPARE(std::get<0>(epoch.sort()).equal(at::arange(100, at::kFloat)), true);
    FileActivationSource resumed(p, 3);
    resumed.skip(130);
    src.next(30);
    QVERIFY(src.next(10).equal(resumed.next(10)));
  }

  void perfectSpliceRecoversAllLoss() {
    // relu(x) - relu(-x) = x: an SAE with W_enc = [I, -I], W_dec = [I; -I] reconstructs exactly.
    SaeConfig cfg;
    cfg.d_in = 64;
    cfg.d_sae = 128;
    cfg.hook_name = "blocks.0.hook_resid_post";
    cfg.apply_b_dec_to_input = false;
    at::Tensor I = at::eye(64);
    Sae sae(cfg, at::cat({I, -I}, 1), at::zeros({128}), at::cat({I, -I}, 0), at::zeros({64}));
    const auto ev = evaluateSplice(*model_, sae, *shard(), 2, 4, 32);
    QVERIFY(std::fabs(ev.sae_loss - ev.clean_loss) < 1e-4);
    QVERIFY(ev.zero_loss > ev.clean_loss);
    QVERIFY(std::fabs(ev.ce_loss_recovered - 1.0) < 1e-3);
  }

  void badInputIsRefused() {
    QVERIFY_EXCEPTION_THROWN(ModelActivationSource(model_, "blocks.7.hook_resid_post", shard(), 32, 2048, 1), Error);
    QVERIFY_EXCEPTION_THROWN(ModelActivationSource(model_, "blocks.0.hook_resid_post", shard(), 999, 2048, 1), Error);
  }
};

QTEST_GUILESS_MAIN(TestActivationStore)
#include "test_activation_store.moc"
