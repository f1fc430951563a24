// Steering: clamping keeps the SAE error term, exactly as x' = x + sum_i (c_i - f_i(x)) W_dec[i].
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QElapsedTimer>
#include <QtTest>
#include <memory>
#include <tuple>

#include "api/engine_impl.h"
#include "lm/generator.h"
#include "lm/transformer.h"
#include "sae/sae.h"
#include "sae/steering.h"
#include "test_util.h"
#include "util/error.h"

using namespace monoscope::core;

class TestSteering : public QObject {
  Q_OBJECT

  std::shared_ptr<Sae> fixtureSae() {
    return std::shared_ptr<Sae>(Sae::load(testutil::fixture("sae/standard"), c10::Device(c10::kCPU)));
  }
  at::Tensor input() {
    SafetensorsFile f(testutil::fixture("sae/expected.safetensors"));
    return testutil::loadExpected(f, "input").unsqueeze(0);  // [1, pos, d_in]
  }
  static SteeringSpec clamp(std::int64_t feature, double value) {
    SteeringSpec s;
    s.edits = {{feature, value}};
    return s;
  }

 private Q_SLOTS:
  // A million clamps (an absurd request) are refused at once, naming what is wrong.
  void absurdEditListsAreRefusedQuickly() {
    QElapsedTimer t;
    t.start();
    SteeringSpec many;
    for (std::int64_t i = 0; i < 1000000; ++i) many.edits.push_back({i % 4096, 1.0});
    try {
      many.validate(4096);
      QFAIL("expected an error");
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains("1000000 feature edits"), e.what());
    }
    SteeringSpec twice;
    twice.edits = {{7, 1.0}, {3, 2.0}, {7, 5.0}};
    try {
      twice.validate(4096);
      QFAIL("expected an error");
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains("feature 7 is edited twice"), e.what());
    }
    SteeringSpec all;
    for (std::int64_t i = 0; i < 1000000; ++i) all.edits.push_back({i, 0.5});
    all.validate(1000000);  // one edit per feature of a million-feature SAE is accepted
    QVERIFY2(t.elapsed() < 1000, qPrintable(QString::number(t.elapsed())));
  }

  void clampToCurrentValueChangesNothing() {
    c10::InferenceMode guard;
    auto sae = fixtureSae();
    at::Tensor x = input()[0][3].view({1, 1, -1});
    const double current = sae->encode(x)[0][0][5].item<double>();
    at::Tensor y = applySteering(*sae, x, clamp(5, current), 0);
    QVERIFY(testutil::maxAbsDiff(x, y) < 1e-5);
  }

  void clampWritesTheExactFormula() {
    c10::InferenceMode guard;
    auto sae = fixtureSae();
    at::Tensor x = input();
    at::Tensor f = sae->encode(x);
    SteeringSpec s;
    s.edits = {{7, 12.5}, {40, -3.0}};
    at::Tensor y = applySteering(*sae, x, s, 0);
    at::Tensor expected = x + (12.5 - f.select(-1, 7)).unsqueeze(-1) * sae->W_dec()[7] +
                          (-3.0 - f.select(-1, 40)).unsqueeze(-1) * sae->W_dec()[40];
    QVERIFY(testutil::maxAbsDiff(y, expected) < 1e-5);
    // The error term survives: y - decode(f') equals x - decode(f).
    at::Tensor f2 = f.clone();
    f2.select(-1, 7).fill_(12.5);
    f2.select(-1, 40).fill_(-3.0);
    QVERIFY(testutil::maxAbsDiff(y - sae->decode(f2), x - sae->decode(f)) < 1e-4);
  }

  void orthonormalSaeReencodesToTheClamp() {
    c10::InferenceMode guard;
    const std::int64_t d = 16, n = 8;
    at::Tensor q = std::get<0>(at::linalg_qr(at::randn({d, d})));  // orthonormal columns
    at::Tensor W_dec = q.t().narrow(0, 0, n).contiguous();          // [n, d], orthonormal rows
    SaeConfig cfg;
    cfg.d_in = d;
    cfg.d_sae = n;
    cfg.hook_name = "blocks.0.hook_resid_post";
    Sae sae(cfg, W_dec.t().contiguous(), at::zeros({n}), W_dec, at::zeros({d}));
    // Positive coefficients on every row plus an orthogonal remainder (the error term).
    at::Tensor coeff = at::rand({1, 4, n}) + 0.1;
    at::Tensor x = at::matmul(coeff, W_dec) + 0.3 * q.t()[n + 1];
    at::Tensor before = sae.encode(x);
    at::Tensor y = applySteering(sae, x, clamp(3, 9.0), 0);
    at::Tensor after = sae.encode(y);
    QVERIFY(testutil::maxAbsDiff(after.select(-1, 3), at::full({1, 4}, 9.0)) < 1e-4);
    at::Tensor others = at::ones({n}, at::kBool);
    others[3] = false;
    QVERIFY(testutil::maxAbsDiff(after.index({"...", others}), before.index({"...", others})) < 1e-4);
    // Additive steering adds exactly c * W_dec[i].
    SteeringSpec add = clamp(2, 1.5);
    add.mode = SteerMode::Add;
    QVERIFY(testutil::maxAbsDiff(applySteering(sae, x, add, 0), x + 1.5 * W_dec[2]) < 1e-5);
  }

  void ablatingAnInactiveFeatureIsANoOp() {
    c10::InferenceMode guard;
    auto sae = fixtureSae();
    at::Tensor x = input();
    at::Tensor f = sae->encode(x);
    at::Tensor never = (f.amax({0, 1}) == 0).nonzero();
    QVERIFY2(never.numel() > 0, "fixture SAE has no inactive feature");
    SteeringSpec s = clamp(never[0][0].item<std::int64_t>(), 0.0);
    s.mode = SteerMode::Ablate;
    QVERIFY(testutil::maxAbsDiff(applySteering(*sae, x, s, 0), x) == 0.0);
  }

  void positionsSelectPromptOrGenerated() {
    c10::InferenceMode guard;
    auto sae = fixtureSae();
    at::Tensor x = input();  // 16 positions
    SteeringSpec s = clamp(1, 50.0);
    s.prompt_length = 10;
    s.positions = SteerPositions::Prompt;
    at::Tensor p = applySteering(*sae, x, s, 0);
    QVERIFY(testutil::maxAbsDiff(p.narrow(1, 10, 6), x.narrow(1, 10, 6)) == 0.0);
    QVERIFY(testutil::maxAbsDiff(p.narrow(1, 0, 10), x.narrow(1, 0, 10)) > 1.0);
    s.positions = SteerPositions::Generated;
    at::Tensor g = applySteering(*sae, x, s, 0);
    QVERIFY(testutil::maxAbsDiff(g.narrow(1, 0, 10), x.narrow(1, 0, 10)) == 0.0);
    QVERIFY(testutil::maxAbsDiff(g.narrow(1, 10, 6), x.narrow(1, 10, 6)) > 1.0);
    // A decode step at absolute position 12 is "generated".
    QVERIFY(!applySteering(*sae, x.narrow(1, 0, 1), s, 0).defined());
    QVERIFY(applySteering(*sae, x.narrow(1, 0, 1), s, 12).defined());
  }

  void strongClampChangesGeneration() {
    auto model = Transformer::load(testutil::fixture("models/gpt2-tiny"), c10::Device(c10::kCPU));
    std::shared_ptr<const Sae> sae = fixtureSae();
    SamplingOptions opt;
    opt.max_tokens = 10;
    opt.seed = 3;
    opt.temperature = 0.8;
    const std::vector<std::int32_t> prompt = {5, 6, 7, 8};
    const auto a = generate(*model, prompt, opt);
    HookSet hooks;
    SteeringSpec s = clamp(11, 200.0);
    s.prompt_length = 4;
    hooks.add(sae->config().hook_name, makeSteeringHook(sae, s));
    const auto b = generate(*model, prompt, opt, &hooks);
    QVERIFY(a != b);
    // The default run is reproducible: the difference comes from the clamp alone.
    QCOMPARE(generate(*model, prompt, opt), a);
  }

  // A transcoder steers its output hook: the MLP output of the block becomes its own value plus
  // (c - f(x_in)) W_dec[i], with f encoded from the MLP's input in the same forward pass; the
  // input hook itself is left as it was.
  void transcoderSteersItsOutputHook() {
    c10::InferenceMode guard;
    auto model = Transformer::load(testutil::fixture("models/llama-tiny"), c10::Device(c10::kCPU));
    std::shared_ptr<Sae> tc(Sae::load(testutil::fixture("dictionaries/saelens-transcoders/jumprelu_skip_transcoder"),
                                      c10::Device(c10::kCPU)));
    const at::Tensor ids = at::arange(3, 15, at::kLong).view({1, -1});
    auto capture = [&](HookSet* hooks, at::Tensor* in, at::Tensor* out) {
      hooks->add("blocks.1.mlp.hook_in", [in](const at::Tensor& x, const HookContext&) {
        *in = x.clone();
        return at::Tensor();
      });
      hooks->add("blocks.1.hook_mlp_out", [out](const at::Tensor& x, const HookContext&) {
        *out = x.clone();
        return at::Tensor();
      });
    };
    at::Tensor in0, out0, in1, out1;
    HookSet plain, steered;
    capture(&plain, &in0, &out0);
    model->forward(ids, &plain);
    const double value = 3.5;
    addSteeringHooks(tc, clamp(17, value), &steered);  // registered first: the capture sees its result
    capture(&steered, &in1, &out1);
    model->forward(ids, &steered);
    QCOMPARE(testutil::maxAbsDiff(in1, in0), 0.0);
    const at::Tensor f = tc->encode(in0)[0].select(-1, 17);                            // [pos]
    const at::Tensor expected = out0[0] + (value - f).unsqueeze(1) * tc->W_dec()[17];  // [pos, d_model]
    QVERIFY(testutil::maxAbsDiff(out1[0], expected) < 1e-5);
    QVERIFY(testutil::maxAbsDiff(out1, out0) > 0.1);
  }

  // One layer of a circuit-tracer set fits its model and steers the hook the set writes: Llama's
  // reads hook_resid_mid and writes mlp.hook_out (then hook_mlp_out carries the same change),
  // Gemma 2's reads ln2.hook_normalized and writes hook_mlp_out, after the post-norm.
  void circuitTracerSetSteersItsOutputHook() {
    c10::InferenceMode guard;
    const std::string sets = testutil::fixture("dictionaries/circuit-tracer");
    for (const auto& [model_name, spec, in_hook, out_hook] :
         {std::tuple<std::string, std::string, std::string, std::string>{"llama-tiny", "relu.yaml#1", "blocks.1.hook_resid_mid", "blocks.1.mlp.hook_out"},
          {"gemma2-tiny", "gemmascope.yaml#2", "blocks.2.ln2.hook_normalized", "blocks.2.hook_mlp_out"}}) {
      auto model = Transformer::load(testutil::fixture("models/" + model_name), c10::Device(c10::kCPU));
      std::shared_ptr<Sae> tc(Sae::load(sets + "/" + spec, c10::Device(c10::kCPU)));
      QCOMPARE(checkSaeFitsModel(*tc, *model, spec), std::int64_t(spec.back() - '0'));
      const at::Tensor ids = at::arange(3, 15, at::kLong).view({1, -1});
      at::Tensor in0, out0, mlp0, in1, out1, mlp1;
      auto capture = [&](HookSet* hooks, at::Tensor* in, at::Tensor* out, at::Tensor* mlp_out) {
        for (const auto& [name, dst] : {std::pair<std::string, at::Tensor*>{in_hook, in}, {out_hook, out},
                                        {"blocks." + std::string(1, spec.back()) + ".hook_mlp_out", mlp_out}})
          hooks->add(name, [dst](const at::Tensor& x, const HookContext&) {
            *dst = x.clone();
            return at::Tensor();
          });
      };
      HookSet plain, steered;
      capture(&plain, &in0, &out0, &mlp0);
      model->forward(ids, &plain);
      const double value = 4.0;
      addSteeringHooks(tc, clamp(5, value), &steered);
      capture(&steered, &in1, &out1, &mlp1);
      model->forward(ids, &steered);
      QCOMPARE(testutil::maxAbsDiff(in1, in0), 0.0);
      const at::Tensor f = tc->encode(in0)[0].select(-1, 5);
      const at::Tensor expected = out0[0] + (value - f).unsqueeze(1) * tc->W_dec()[5];
      QVERIFY2(testutil::maxAbsDiff(out1[0], expected) < 1e-5, spec.c_str());
      if (model_name == "llama-tiny") QVERIFY(testutil::maxAbsDiff(mlp1 - mlp0, out1 - out0) < 1e-5);  // no post-norm
    }
  }

  // A transcoder fits a model when both its hooks exist, it writes after it reads, and the
  // widths match; otherwise the error names the hook.
  void transcoderHooksAreChecked() {
    auto model = Transformer::load(testutil::fixture("models/llama-tiny"), c10::Device(c10::kCPU));
    const std::string dir = testutil::fixture("dictionaries/saelens-transcoders/transcoder");
    auto tc = Sae::load(dir, c10::Device(c10::kCPU));
    QCOMPARE(checkSaeFitsModel(*tc, *model, dir), std::int64_t(1));
    auto refused = [&](const std::string& in, const std::string& out, const char* needle) {
      SaeConfig c = tc->config();
      c.hook_name = in;
      c.hook_name_out = out;
      const Sae moved(c, tc->W_enc(), tc->b_enc(), tc->W_dec(), tc->b_dec(), tc->threshold(), tc->W_skip());
      try {
        checkSaeFitsModel(moved, *model, dir);
        QFAIL(("accepted " + in + " -> " + out).c_str());
      } catch (const Error& e) {
        QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
      }
    };
    refused("blocks.1.mlp.hook_in", "blocks.0.hook_mlp_out", "comes before");
    refused("blocks.1.mlp.hook_in", "blocks.9.hook_mlp_out", "does not have");
    refused("blocks.1.mlp.hook_in", "blocks.1.mlp.hook_post", "d_out");
  }

  void invalidSpecsAreRejected() {
    auto sae = fixtureSae();
    QVERIFY_EXCEPTION_THROWN(clamp(128, 1.0).validate(128), Error);
    QVERIFY_EXCEPTION_THROWN(clamp(-1, 1.0).validate(128), Error);
    QVERIFY_EXCEPTION_THROWN(clamp(0, std::nan("")).validate(128), Error);
    QVERIFY_EXCEPTION_THROWN(clamp(0, INFINITY).validate(128), Error);
    QVERIFY_EXCEPTION_THROWN(SteeringSpec().validate(128), Error);
    QVERIFY_EXCEPTION_THROWN(parseSteerMode("boost"), Error);
  }
};

QTEST_GUILESS_MAIN(TestSteering)
#include "test_steering.moc"
