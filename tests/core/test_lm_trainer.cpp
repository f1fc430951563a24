// LM training: learns a pattern, resumes exactly, schedule shape, and refuses bad data.
#include <ATen/ATen.h>

#include <QTemporaryDir>
#include <QtTest>
#include <filesystem>

#include "io/safetensors.h"
#include "lm/lm_trainer.h"
#include "lm/transformer.h"
#include "test_util.h"
#include "util/error.h"

using namespace monoscope::core;

class TestLmTrainer : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  std::string path(const std::string& n) { return dir_.path().toStdString() + "/" + n; }

  std::string shard(const std::string& name, std::int64_t n) {
    std::vector<std::int32_t> t(n);
    for (std::int64_t i = 0; i < n; ++i) t[i] = static_cast<std::int32_t>((i * 7) % 31);  // a fixed cycle
    SafetensorsWriter w;
    w.add("tokens", DType::I32, {n}, t.data(), t.size() * 4);
    w.write(path(name));
    return path(name);
  }

  static LmTrainConfig tiny() {
    LmTrainConfig c;
    auto& m = c.model;
    m.vocab_size = 64;
    m.d_model = 32;
    m.n_layers = 2;
    m.n_heads = 2;
    m.n_kv_heads = 2;
    m.d_head = 16;
    m.d_mlp = 128;
    m.n_ctx = 32;
    c.batch_size = 8;
    c.seq_len = 16;
    c.total_steps = 80;
    c.warmup_steps = 8;
    c.lr = 3e-3;
    c.eval_every = 40;
    c.eval_batches = 2;
    c.seed = 5;
    return c;
  }

 private Q_SLOTS:
  void learnsAPattern() {
    const auto s = shard("cycle.safetensors", 4000);
    const auto r = trainLm(tiny(), s, s, path("run"));
    QCOMPARE(r.step, std::int64_t(80));
    QVERIFY2(r.valid_loss < 1.0, std::to_string(r.valid_loss).c_str());  // from ln(64) = 4.16
    // The saved folder is a loadable GPT-2 checkpoint with the same loss.
    const double again = evaluateLoss(path("run/model"), s, 2, 8, 16);
    QVERIFY(std::fabs(again - r.valid_loss) < 1e-4);
  }

  void resumesExactly() {
    const auto s = shard("cycle2.safetensors", 4000);
    LmTrainConfig c = tiny();
    c.total_steps = 12;
    c.eval_every = 6;
    trainLm(c, s, s, path("straight"));
    int calls = 0;
    trainLm(c, s, s, path("split"), [&](const Progress&) { return ++calls < 6; });  // stop after 6
    QVERIFY(std::filesystem::exists(path("split/train_state.safetensors")));
    trainLm(c, s, s, path("split"));
    auto a = Transformer::load(path("straight/model"), c10::Device(c10::kCPU));
    auto b = Transformer::load(path("split/model"), c10::Device(c10::kCPU));
    for (std::size_t i = 0; i < a->parameters().size(); ++i)
      QVERIFY(testutil::maxAbsDiff(a->parameters()[i].second, b->parameters()[i].second) < 1e-6);
    // Another architecture cannot resume this state.
    LmTrainConfig other = c;
    other.model.d_model = 64;
    other.model.d_head = 32;
    QVERIFY_EXCEPTION_THROWN(trainLm(other, s, s, path("split")), Error);
  }

  void scheduleWarmsUpThenDecays() {
    LmTrainConfig c = tiny();
    c.total_steps = 100;
    c.warmup_steps = 10;
    QVERIFY(c.learningRate(0) < c.learningRate(9));
    QVERIFY(std::fabs(c.learningRate(10) - c.lr) < 1e-9);
    QVERIFY(c.learningRate(50) < c.lr);
    QVERIFY(std::fabs(c.learningRate(100) - c.lr * c.min_lr_ratio) < 1e-9);
  }

  void badDataIsRefused() {
    const auto small = shard("small.safetensors", 10);
    QVERIFY_EXCEPTION_THROWN(trainLm(tiny(), small, small, path("bad")), Error);
    LmTrainConfig c = tiny();
    c.seq_len = 64;  // longer than the context
    QVERIFY_EXCEPTION_THROWN(c.validate(), Error);
    // Divergence stops with an error and leaves the last checkpoint in place.
    const auto s = shard("cycle3.safetensors", 4000);
    LmTrainConfig d = tiny();
    d.total_steps = 4;
    d.eval_every = 2;
    trainLm(d, s, s, path("diverge"));
    const auto before = std::filesystem::file_size(path("diverge/train_state.safetensors"));
    d.total_steps = 400;
    d.lr = 0.9;
    d.warmup_steps = 0;
    d.grad_clip = 1e9;
    bool threw = false;
    try {
      trainLm(d, s, s, path("diverge"));
    } catch (const Error& e) {
      threw = std::string(e.what()).find("diverged") != std::string::npos;
    }
    if (threw) QCOMPARE(std::filesystem::file_size(path("diverge/train_state.safetensors")), before);
  }
};

QTEST_GUILESS_MAIN(TestLmTrainer)
#include "test_lm_trainer.moc"
