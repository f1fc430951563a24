// Golden tests: logits and every hook of a small random checkpoint of every family match
// Hugging Face transformers within 1e-4 (fixtures from tests/fixtures/make_fixtures.py and
// make_family_fixtures.py), and a token-by-token pass with the KV cache equals the full pass.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>

#include <QTemporaryDir>
#include <QtTest>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "lm/attention_kernel.h"
#include "lm/generator.h"
#include "lm/hooks.h"
#include "lm/packed_product.h"
#include "lm/transformer.h"
#include "test_util.h"
#include "util/error.h"
#include "io/safetensors.h"
#include <filesystem>

using namespace monoscope::core;

class TestTransformer : public QObject {
  Q_OBJECT

  void golden(const std::string& name) {
    c10::InferenceMode guard;
    auto model = Transformer::load(testutil::fixture("models/" + name), testutil::device());
    SafetensorsFile expected(testutil::fixture("models/" + name + "-expected.safetensors"));
    at::Tensor ids = testutil::loadExpected(expected, "input_ids").view({1, -1}).to(testutil::device());
    HookSet hooks;
    std::map<std::string, at::Tensor> seen;
    for (const auto& h : hookNames(model->config().n_layers)) {
      if (!expected.has(h)) continue;
      hooks.add(h, [&seen](const at::Tensor& x, const HookContext& ctx) {
        seen[*ctx.name] = x[0].clone();
        return at::Tensor();
      });
    }
    at::Tensor logits = model->forward(ids, &hooks)[0];
    const double dl = testutil::maxAbsDiff(logits, testutil::loadExpected(expected, "logits"));
    QVERIFY2(dl < 1e-4, ("logits differ by " + std::to_string(dl)).c_str());
    // A batch large enough for the packed products (lm/packed_product.h) gives the same logits.
    const at::Tensor batch = model->forward(ids.repeat({8, 1}));
    for (std::int64_t b = 0; b < 8; ++b) {
      const double db = testutil::maxAbsDiff(batch[b], testutil::loadExpected(expected, "logits"));
      QVERIFY2(db < 1e-4, ("batched logits differ by " + std::to_string(db)).c_str());
    }
    QVERIFY(seen.size() >= 11);
    for (const auto& [h, t] : seen) {
      const double d = testutil::maxAbsDiff(t, testutil::loadExpected(expected, h));
      QVERIFY2(d < 1e-4, (h + " differs by " + std::to_string(d)).c_str());
    }
    // KV cache: feeding the tokens one by one gives the same last-position logits.
    KvCache cache;
    at::Tensor last;
    for (std::int64_t i = 0; i < ids.size(1); ++i) last = model->forward(ids.narrow(1, i, 1), nullptr, &cache);
    QVERIFY(testutil::maxAbsDiff(last[0][0], logits[ids.size(1) - 1]) < 1e-4);
  }

 private Q_SLOTS:
  void gpt2MatchesTransformers() { golden("gpt2-tiny"); }
  void llamaShardedGqaMatchesTransformers() { golden("llama-tiny"); }
  void llama3RopeScalingMatchesTransformers() { golden("llama3-tiny"); }
  void mistralSlidingWindowMatchesTransformers() { golden("mistral-tiny"); }
  void qwen2MatchesTransformers() { golden("qwen2-tiny"); }
  void qwen3MatchesTransformers() { golden("qwen3-tiny"); }
  void gemmaMatchesTransformers() { golden("gemma-tiny"); }
  void gemma2MatchesTransformers() { golden("gemma2-tiny"); }
  void gemma3MatchesTransformers() { golden("gemma3-tiny"); }
  void gptNeoxMatchesTransformers() { golden("gpt_neox-tiny"); }

  // Each family writes back a config.json that reads to the same options.
  void familyConfigsRoundTrip() {
    for (const char* name : {"gpt2-tiny", "llama-tiny", "llama3-tiny", "mistral-tiny", "qwen2-tiny", "qwen3-tiny", "gemma-tiny",
                             "gemma2-tiny", "gemma3-tiny", "gpt_neox-tiny"}) {
      const auto a = ModelConfig::fromFile(testutil::fixture(std::string("models/") + name + "/config.json"));
      const auto b = ModelConfig::fromJson(a.toJson(), name);
      QVERIFY2(a.toJson() == b.toJson(), name);
      QCOMPARE(b.window, a.window);
      QCOMPARE(b.rope.scaling, a.rope.scaling);
      QCOMPARE(b.rope_local.theta, a.rope_local.theta);
      QCOMPARE(b.attn_softcap, a.attn_softcap);
      QCOMPARE(b.rotary_fraction, a.rotary_fraction);
      QCOMPARE(b.parameterCount(), a.parameterCount());
    }
    const auto m = ModelConfig::fromFile(testutil::fixture("models/mistral-tiny/config.json"));
    QCOMPARE(m.windowOf(0), std::int64_t{6});
    const auto g = ModelConfig::fromFile(testutil::fixture("models/gemma3-tiny/config.json"));
    QCOMPARE(g.windowOf(2), std::int64_t{0});  // every third layer attends to everything
    QCOMPARE(g.windowOf(1), std::int64_t{6});
  }

  // An unknown family, an unsupported RoPE type or layer type: one line naming the field.
  void badConfigsNameTheField() {
    auto expect = [](nlohmann::json j, const char* needle) {
      try {
        ModelConfig::fromJson(j, "'cfg'");
        QFAIL(("no error for " + j.dump()).c_str());
      } catch (const Error& e) {
        QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
      }
    };
    nlohmann::json base = {{"model_type", "llama"}, {"vocab_size", 10}, {"hidden_size", 8}, {"num_hidden_layers", 1},
                           {"num_attention_heads", 2}, {"intermediate_size", 16}};
    ModelConfig::fromJson(base, "'cfg'");
    auto j = base;
    j["model_type"] = "mamba";
    expect(j, "'mamba' is not supported");
    j = base;
    j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
    expect(j, "'yarn' is not supported");
    j = base;
    j["model_type"] = "mistral";
    j["layer_types"] = {"chunked_attention"};
    expect(j, "layer_types");
    j = base;
    j["model_type"] = "gemma2";
    j["layer_types"] = {"full_attention", "full_attention"};
    expect(j, "one type per layer");
    j = base;
    j["model_type"] = "gpt_neox";
    j["rotary_pct"] = 1.5;
    expect(j, "rotary_pct");
    j["rotary_pct"] = 0.5;
    j["rotary_emb_base"] = 0;
    expect(j, "rotary_emb_base");
    j = base;
    j["num_hidden_layers"] = 1000000000;  // refused before anything is sized by it
    expect(j, "num_hidden_layers");
    j = base;
    j["model_type"] = "qwen2";
    j["use_sliding_window"] = true;
    j["sliding_window"] = 4;
    j["max_window_layers"] = -1000000000000000000;  // clamped, not looped over
    QCOMPARE(ModelConfig::fromJson(j, "'cfg'").windowOf(0), std::int64_t{4});
    // transformers' defaults where a key is absent; null turns a soft-cap off.
    j = base;
    j["model_type"] = "gemma2";
    auto g = ModelConfig::fromJson(j, "'cfg'");
    QCOMPARE(g.attn_softcap, 50.0);
    QCOMPARE(g.final_softcap, 30.0);
    j["attn_logit_softcapping"] = nullptr;
    QCOMPARE(ModelConfig::fromJson(j, "'cfg'").attn_softcap, 0.0);
    j = base;
    j["model_type"] = "mistral";
    QCOMPARE(ModelConfig::fromJson(j, "'cfg'").windowOf(0), std::int64_t{4096});
    j["sliding_window"] = nullptr;
    QCOMPARE(ModelConfig::fromJson(j, "'cfg'").windowOf(0), std::int64_t{0});
    // A module alias whose output is not the hook's value in this family is named.
    j = base;
    j["model_type"] = "gemma2";
    g = ModelConfig::fromJson(j, "'cfg'");
    QVERIFY(aliasMismatch("layers.0.self_attn", g).find("post-norm") != std::string::npos);
    QVERIFY(aliasMismatch("layers.0.mlp", g).empty());  // the module's own output: mlp.hook_out
    QVERIFY(aliasMismatch("embed_tokens", g).find("embedding scale") != std::string::npos);
    QVERIFY(aliasMismatch("layers.0", g).empty());
    QVERIFY(aliasMismatch("blocks.0.hook_mlp_out", g).empty());
    QVERIFY(aliasMismatch("layers.0.mlp", ModelConfig::fromJson(base, "'cfg'")).empty());
  }

  // The fused attention kernel equals softmax(q k^T / sqrt(dh) + causal mask) v computed in
  // float64, for head sizes with a half-register tail, a key cache longer than the queries,
  // grouped keys and values, query counts that do not fill a register block, and strided views.
  void fusedAttentionMatchesReference() {
    if (!fusedAttentionSupported(16)) QSKIP("this CPU has no AVX-512");
    QVERIFY(!fusedAttentionSupported(24));
    at::manual_seed(5);
    struct Case { std::int64_t B, H, Hkv, T, S, dh; };
    for (const Case c : {Case{2, 4, 4, 1, 1, 16}, Case{1, 3, 3, 7, 7, 48}, Case{2, 4, 2, 5, 37, 32},
                         Case{1, 2, 1, 64, 64, 64}, Case{3, 2, 2, 33, 40, 128}, Case{1, 8, 8, 256, 256, 32}}) {
      // q, k, v as views with gaps between heads (as GPT-2's slices of one qkv product), values large
      // enough that the softmax is far from uniform.
      const at::Tensor qkv = at::randn({c.B, c.S, 3, c.H, c.dh}) * 3.0;
      const at::Tensor q = qkv.slice(1, c.S - c.T, c.S).select(2, 0).transpose(1, 2);  // [B, H, T, dh]
      const at::Tensor k = qkv.select(2, 1).slice(2, 0, c.Hkv).transpose(1, 2);         // [B, Hkv, S, dh]
      const at::Tensor v = qkv.select(2, 2).slice(2, 0, c.Hkv).transpose(1, 2);
      at::Tensor out = at::full({c.B, c.T, c.H * c.dh}, std::numeric_limits<float>::quiet_NaN());
      AttentionArgs a;
      a.q = q.data_ptr<float>(), a.q_b = q.stride(0), a.q_h = q.stride(1), a.q_t = q.stride(2);
      a.k = k.data_ptr<float>(), a.k_b = k.stride(0), a.k_h = k.stride(1), a.k_t = k.stride(2);
      a.v = v.data_ptr<float>(), a.v_b = v.stride(0), a.v_h = v.stride(1), a.v_t = v.stride(2);
      a.out = out.data_ptr<float>(), a.o_b = c.T * c.H * c.dh, a.o_h = c.dh, a.o_t = c.H * c.dh;
      a.B = c.B, a.H = c.H, a.Hkv = c.Hkv, a.T = c.T, a.S = c.S, a.dh = c.dh;
      a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.dh)));
      // Two ranges of heads, as two threads would run them.
      fusedCausalAttention(a, 0, c.B * c.H / 2);
      fusedCausalAttention(a, c.B * c.H / 2, c.B * c.H);
      const at::Tensor kd = k.to(at::kDouble).repeat_interleave(c.H / c.Hkv, 1), vd = v.to(at::kDouble).repeat_interleave(c.H / c.Hkv, 1);
      at::Tensor scores = at::matmul(q.to(at::kDouble), kd.transpose(2, 3)) / std::sqrt(static_cast<double>(c.dh));
      const at::Tensor later = at::ones({c.T, c.S}, at::kBool).triu(c.S - c.T + 1);
      scores.masked_fill_(later, -std::numeric_limits<double>::infinity());
      const at::Tensor ref = at::matmul(at::softmax(scores, -1), vd).transpose(1, 2).reshape({c.B, c.T, c.H * c.dh});
      // fp32 rounding: within 1e-5 of the largest output (values here reach ~10).
      const double d = testutil::maxAbsDiff(out.to(at::kDouble), ref), tol = 1e-5 * ref.abs().max().item<double>();
      QVERIFY2(d < tol, ("fused attention differs by " + std::to_string(d) + " for T " + std::to_string(c.T) + ", S " +
                          std::to_string(c.S) + ", dh " + std::to_string(c.dh)).c_str());
    }
    // The model gives the same logits with the kernel switched off.
    c10::InferenceMode guard;
    auto model = Transformer::load(testutil::fixture("models/llama-tiny"), c10::Device(c10::kCPU));
    const at::Tensor ids = at::randint(0, model->config().vocab_size, {3, 19}, at::kLong);
    const at::Tensor fused = model->forward(ids);
    const bool was = setFusedAttention(false);
    const at::Tensor plain = model->forward(ids);
    setFusedAttention(was);
    QVERIFY(testutil::maxAbsDiff(fused, plain) < 1e-4);
  }

  // torch's scaled_dot_product_attention, the accelerators' path, run on the CPU: the golden
  // logits and hooks of fused qkv, grouped queries and qk-norm, and the KV cache's single queries.
  void torchAttentionMatchesTransformers() {
    if (!torchAttentionAvailable()) QSKIP("LibTorch before 2.1 has no scaled_dot_product_attention");
    struct Switches {  // set for this test, as they were afterwards
      bool torch = setTorchAttentionOnCpu(true), fused = setFusedAttention(false);
      ~Switches() { setFusedAttention(fused), setTorchAttentionOnCpu(torch); }
    } switches;
    for (const char* name : {"gpt2-tiny", "llama-tiny", "qwen3-tiny", "gpt_neox-tiny"}) golden(name);
  }

  // Packed products equal LibTorch's to fp32 rounding for every shape, layout and activation, follow
  // a weight changed in place, and leave autograd to LibTorch.
  void packedProductsMatchBlas() {
    if (!packedProductsAvailable()) QSKIP("this build has no oneDNN");
    // fp32 rounding relative to the values' size (some OpenBLAS kernels, e.g. with
    // OPENBLAS_CORETYPE=Haswell, sum in another order than oneDNN): |diff| <= 1e-6 * (1 + max |ref|).
    const auto close = [](const at::Tensor& a, const at::Tensor& ref) {
      return testutil::maxAbsDiff(a, ref) <= 1e-6 * (1.0 + ref.abs().max().item<double>());
    };
    at::manual_seed(3);
    const at::Tensor w = at::randn({48, 80}), wt = at::randn({80, 48}), b = at::randn({80});
    for (const std::int64_t M : {64, 1000, 1024, 2500}) {
      const at::Tensor x = at::randn({M, 48});
      PackedProduct p, pt, pa;
      c10::InferenceMode guard;
      QVERIFY(close(p.addmm(b, x, w), at::addmm(b, x, w)));
      QVERIFY(close(pt.addmm(at::Tensor(), x, wt.t()), at::mm(x, wt.t())));  // transposed view
      QVERIFY(close(pa.addmm(b, x, w, Activation::GeluTanh), at::gelu(at::addmm(b, x, w), "tanh")));
      QVERIFY(close(pa.addmm(b, x, w, Activation::GeluErf), at::gelu(at::addmm(b, x, w))));
      QVERIFY(close(pa.addmm(b, x, w, Activation::Relu), at::relu(at::addmm(b, x, w))));
      QVERIFY(close(p.linear(x.view({2, M / 2, 48}), w, b), at::addmm(b, x, w).view({2, M / 2, 80})));
    }
    // A weight updated in place (an optimiser step) is packed again.
    at::Tensor live = at::randn({48, 80});
    const at::Tensor x = at::randn({256, 48});
    PackedProduct p;
    const at::Tensor before = p.addmm(b, x, live);
    {
      at::NoGradGuard no_grad;
      live.add_(1.0);
    }
    QVERIFY(close(p.addmm(b, x, live), at::addmm(b, x, live)));
    QVERIFY(testutil::maxAbsDiff(before, at::addmm(b, x, live)) > 1.0);
    // Switched off: LibTorch's product exactly.
    const bool was = setPackedProducts(false);
    QVERIFY(at::equal(p.addmm(b, x, live), at::addmm(b, x, live)));
    setPackedProducts(was);
    // With autograd the product is LibTorch's, and gradients flow.
    const at::Tensor wg = at::randn({48, 80}).requires_grad_(true);
    p.addmm(b, x, wg).sum().backward();
    QVERIFY(wg.grad().defined());
    QVERIFY(testutil::maxAbsDiff(wg.grad(), x.sum(0).unsqueeze(1).expand({48, 80})) < 1e-3);
  }

  void hookReplacesActivation() {
    c10::InferenceMode guard;
    auto model = Transformer::load(testutil::fixture("models/gpt2-tiny"), c10::Device(c10::kCPU));
    at::Tensor ids = at::arange(5, at::kLong).view({1, -1});
    at::Tensor base = model->forward(ids);
    HookSet hooks;
    hooks.add("blocks.1.hook_resid_post", [](const at::Tensor& x, const HookContext&) { return x * 0; });
    at::Tensor zeroed = model->forward(ids, &hooks);
    QVERIFY(testutil::maxAbsDiff(base, zeroed) > 1e-3);
    // Zero residual -> final LayerNorm outputs its bias: every position has the same logits.
    QVERIFY(testutil::maxAbsDiff(zeroed[0][0], zeroed[0][4]) < 1e-5);
  }

  void saveReloadRoundTrip() {
    c10::InferenceMode guard;
    auto model = Transformer::load(testutil::fixture("models/llama-tiny"), c10::Device(c10::kCPU));
    QTemporaryDir dir;
    model->save(dir.path().toStdString());
    auto again = Transformer::load(dir.path().toStdString(), c10::Device(c10::kCPU));
    at::Tensor ids = at::arange(7, at::kLong).view({1, -1});
    QCOMPARE(testutil::maxAbsDiff(model->forward(ids), again->forward(ids)), 0.0);
  }

  // A BF16 or F16 checkpoint kept in its own dtype (half the memory) computes what the same
  // weights widened to float32 at load compute: exactly, through the same (unpacked) products,
  // and within 1e-4 when the float32 model takes the packed path. Auto keeps a small model in
  // float32.
  void halfPrecisionWeightsComputeAsFloat32() {
    c10::InferenceMode guard;
    for (const std::string name : {"gpt2-tiny", "gemma2-tiny", "llama-tiny"}) {
      auto model = Transformer::load(testutil::fixture("models/" + name), c10::Device(c10::kCPU));
      QTemporaryDir dir;
      const std::string d = dir.path().toStdString();
      SafetensorsWriter w;
      for (const auto& [pname, t] : model->parameters()) {
        const at::Tensor b = t.to(at::kBFloat16).contiguous();
        w.add(pname, DType::BF16, b.sizes().vec(), b.data_ptr(), static_cast<std::size_t>(b.nbytes()));
      }
      w.write(d + "/model.safetensors");
      std::filesystem::copy_file(testutil::fixture("models/" + name) + "/config.json", d + "/config.json");
      auto widened = Transformer::load(d, c10::Device(c10::kCPU), WeightDtype::Float32);
      auto kept = Transformer::load(d, c10::Device(c10::kCPU), WeightDtype::Stored);
      QCOMPARE(widened->weightDtype(), at::kFloat);
      QCOMPARE(kept->weightDtype(), at::kBFloat16);
      QCOMPARE(Transformer::load(d, c10::Device(c10::kCPU))->weightDtype(), at::kFloat);
      QVERIFY(kept->unembed().scalar_type() == at::kBFloat16);
      const at::Tensor ids = at::arange(1, 13, at::kLong).view({1, -1}).repeat({8, 1});
      const at::Tensor reference = widened->forward(ids);
      if (bf16ProductsAvailable()) {
        // BF16 products (activations rounded to BF16, fp32 sums) stay close to the fp32 ones.
        const at::Tensor fast = kept->forward(ids);
        const double rel = testutil::maxAbsDiff(fast, reference) / reference.abs().max().item<double>();
        QVERIFY2(rel < 3e-2, (name + " BF16 products differ by " + std::to_string(rel) + " of the largest logit").c_str());
      }
      const bool bf16 = setBf16Products(false);  // the exact path: each weight widened to fp32
      QVERIFY2(testutil::maxAbsDiff(kept->forward(ids), reference) < 1e-4, name.c_str());
      const bool packed = setPackedProducts(false);
      QCOMPARE(testutil::maxAbsDiff(kept->forward(ids), widened->forward(ids)), 0.0);
      setPackedProducts(packed);
      // Token by token with the KV cache, and the directions of logit effects.
      KvCache cache;
      at::Tensor last;
      for (std::int64_t i = 0; i < 12; ++i) last = kept->forward(ids.narrow(0, 0, 1).narrow(1, i, 1), nullptr, &cache);
      QVERIFY(testutil::maxAbsDiff(last[0][0], reference[0][11]) < 1e-4);
      const at::Tensor dirs = at::randn({3, kept->config().d_mlp});
      const std::string hook = "blocks.1.mlp.hook_post";
      QCOMPARE(testutil::maxAbsDiff(kept->toResidual(hook, dirs), widened->toResidual(hook, dirs)), 0.0);
      setBf16Products(bf16);
    }
    // Transformer::save's F16 is kept as F16.
    auto model = Transformer::load(testutil::fixture("models/llama-tiny"), c10::Device(c10::kCPU));
    QTemporaryDir dir;
    model->save(dir.path().toStdString(), /*half=*/true);
    QCOMPARE(Transformer::load(dir.path().toStdString(), c10::Device(c10::kCPU), WeightDtype::Stored)->weightDtype(), at::kHalf);
    // A float32 checkpoint has nothing to keep in half precision.
    QCOMPARE(Transformer::load(testutil::fixture("models/llama-tiny"), c10::Device(c10::kCPU), WeightDtype::Stored)->weightDtype(),
             at::kFloat);
  }

  // BF16 products (where the CPU has BF16 instructions): b + x W for BF16 weights read in place
  // equal the fp32 product of x rounded to BF16 and the weights (the products of two BF16
  // numbers are exact in fp32; only the order of the sums differs), with a fused activation,
  // for one row and for many, and do not depend on the thread count.
  void bf16ProductsMatchTheirDefinition() {
    if (!bf16ProductsAvailable()) QSKIP("this CPU has no BF16 instructions (avx512_bf16 or AMX)");
    c10::InferenceMode guard;
    at::manual_seed(5);
    const at::Tensor stored = at::randn({1100, 320}).to(at::kBFloat16);  // [N, K] as a checkpoint holds it
    const at::Tensor w = stored.t();                                       // [K, N], read in place
    const at::Tensor b = at::randn({1100});
    PackedProduct p;
    for (const std::int64_t rows : {1, 5, 300}) {
      const at::Tensor x = at::randn({rows, 320});
      const at::Tensor want = at::addmm(b, x.to(at::kBFloat16).to(at::kFloat), w.to(at::kFloat));
      const at::Tensor got = p.addmm(b, x, w);
      QCOMPARE(got.scalar_type(), at::kFloat);
      QVERIFY2(testutil::maxAbsDiff(got, want) < 1e-4, std::to_string(testutil::maxAbsDiff(got, want)).c_str());
      QVERIFY(testutil::maxAbsDiff(p.addmm(b, x, w, Activation::Relu), at::relu(want)) < 1e-4);
      const int threads = at::get_num_threads();
      at::set_num_threads(1);
      const at::Tensor one = p.addmm(b, x, w);
      at::set_num_threads(threads);
      QCOMPARE(testutil::maxAbsDiff(one, got), 0.0);
    }
    // Switched off, the weight is widened: the exact fp32 product of x.
    const bool was = setBf16Products(false);
    const at::Tensor x = at::randn({3, 320});
    QCOMPARE(testutil::maxAbsDiff(p.addmm(b, x, w), at::addmm(b, x, w.to(at::kFloat))), 0.0);
    setBf16Products(was);
  }

  // On an accelerator BF16 weights multiply in BF16 under the same switch (halfPrecisionProduct):
  // x rounded to BF16 times the weights, the result rounded to BF16 and widened back to fp32.
  // Checked here on the CPU, where LibTorch has the same BF16 product.
  void deviceBf16ProductsMatchTheirDefinition() {
    c10::InferenceMode guard;
    at::manual_seed(6);
    const at::Tensor w = at::randn({1100, 320}).to(at::kBFloat16).t();
    const at::Tensor b = at::randn({1100});
    const at::Tensor x = at::randn({7, 320});
    const at::Tensor want = at::addmm(b.to(at::kBFloat16).to(at::kDouble), x.to(at::kBFloat16).to(at::kDouble), w.to(at::kDouble));
    const at::Tensor got = halfPrecisionProduct(b, x, w);
    QCOMPARE(got.scalar_type(), at::kFloat);
    // BF16 keeps 8 significant bits: each result within 2^-8 of the largest.
    const double scale = want.abs().max().item<double>();
    QVERIFY2(testutil::maxAbsDiff(got, want) <= scale / 256, std::to_string(testutil::maxAbsDiff(got, want)).c_str());
    // Not the fp32 product: x and the result were rounded.
    QVERIFY(testutil::maxAbsDiff(got, at::addmm(b, x, w.to(at::kFloat))) > 0);
    // On a GPU, a layer's product takes that path (and, switched off, widens the weight).
    const bool was = setBf16Products(true);
    if (at::hasCUDA()) {
      const c10::Device gpu(c10::kCUDA, 0);
      const at::Tensor xg = x.to(gpu), wg = w.to(gpu), bg = b.to(gpu);
      PackedProduct p;
      QCOMPARE(testutil::maxAbsDiff(p.addmm(bg, xg, wg), halfPrecisionProduct(bg, xg, wg)), 0.0);
      setBf16Products(false);
      QVERIFY(testutil::maxAbsDiff(p.addmm(bg, xg, wg), at::addmm(bg, xg, wg.to(at::kFloat))) < 1e-4);
      setBf16Products(true);
    }
    // The switch: MONOSCOPE_BF16_PRODUCTS=0 or setBf16Products(false) widens on every device.
    const c10::Device cuda(c10::kCUDA, 0);
    QVERIFY(bf16ProductsOn(cuda));
    QCOMPARE(bf16ProductsOn(c10::Device(c10::kCPU)), bf16ProductsEnabled());
    setBf16Products(false);
    QVERIFY(!bf16ProductsOn(cuda));
    QVERIFY(!bf16ProductsOn(c10::Device(c10::kCPU)));
    setBf16Products(was);
  }

  // A model that cannot fit is refused before any weight is read, with the figures.
  void modelLargerThanMemoryIsRefused() {
    QTemporaryDir dir;
    const std::string d = dir.path().toStdString();
    auto config = nlohmann::json::parse(std::ifstream(testutil::fixture("models/llama-tiny") + "/config.json"));
    config["hidden_size"] = 65536;
    config["intermediate_size"] = 1048576;  // 800 GB of float32 weights
    std::ofstream(d + "/config.json") << config.dump();
    for (const auto& e : std::filesystem::directory_iterator(testutil::fixture("models/llama-tiny")))
      if (e.path().extension() != ".json" || e.path().filename() == "model.safetensors.index.json")
        std::filesystem::copy_file(e.path(), d + "/" + e.path().filename().string());
    try {
      Transformer::load(d, c10::Device(c10::kCPU));
      QFAIL("an 800 GB model was loaded");
    } catch (const Error& e) {
      const std::string what = e.what();
      QVERIFY2(what.find("needs") != std::string::npos && what.find("GB") != std::string::npos &&
                   what.find("available") != std::string::npos && what.find("float32") != std::string::npos,
               what.c_str());
    }
  }

  void generationIsSeededAndStops() {
    auto model = Transformer::load(testutil::fixture("models/gpt2-tiny"), c10::Device(c10::kCPU));
    SamplingOptions opt;
    opt.max_tokens = 12;
    opt.temperature = 1.0;
    opt.top_p = 0.9;
    opt.seed = 42;
    const auto a = generate(*model, {1, 2, 3}, opt);
    const auto b = generate(*model, {1, 2, 3}, opt);
    QCOMPARE(a, b);
    QCOMPARE(a.size(), std::size_t(12));
    opt.seed = 43;
    QVERIFY(generate(*model, {1, 2, 3}, opt) != a);
    // Greedy equals the argmax of a full forward pass, step by step.
    opt.temperature = 0;
    const auto g = generate(*model, {1, 2, 3}, opt);
    std::vector<std::int64_t> seq = {1, 2, 3};
    c10::InferenceMode guard;
    for (auto id : g) {
      at::Tensor logits = model->forward(at::tensor(seq, at::kLong).view({1, -1}));
      QCOMPARE(logits[0][seq.size() - 1].argmax().item<std::int64_t>(), std::int64_t(id));
      seq.push_back(id);
    }
    // Stop token ends generation.
    opt.stop_token = g[2];
    const auto first = static_cast<std::size_t>(std::find(g.begin(), g.end(), g[2]) - g.begin());
    const auto stopped = generate(*model, {1, 2, 3}, opt);
    QCOMPARE(stopped.size(), first + 1);
    QCOMPARE(stopped.back(), g[2]);
  }

  void contextOverflowIsAnError() {
    auto model = Transformer::load(testutil::fixture("models/gpt2-tiny"), c10::Device(c10::kCPU));
    SamplingOptions opt;
    opt.max_tokens = 60;
    QVERIFY_EXCEPTION_THROWN(generate(*model, std::vector<std::int32_t>(10, 1), opt), Error);
    c10::InferenceMode guard;
    QVERIFY_EXCEPTION_THROWN(model->forward(at::zeros({1, 65}, at::kLong)), Error);
  }

  void unknownHookNames() {
    QCOMPARE(hookLayer("blocks.1.hook_resid_post", 2), std::int64_t(1));
    QCOMPARE(hookLayer("hook_embed", 2), std::int64_t(-1));
    QVERIFY_EXCEPTION_THROWN(hookLayer("blocks.2.hook_resid_post", 2), Error);
    QVERIFY_EXCEPTION_THROWN(hookLayer("blocks.0.hook_resid", 2), Error);
    QVERIFY_EXCEPTION_THROWN(hookLayer("blocks.x.hook_mlp_out", 2), Error);
  }

  // The module names sparsify and Gemma Scope 2 record map onto TransformerLens hooks, and a
  // hook registered by alias runs where the canonical one does. MLP neurons and per-head outputs
  // have their own widths.
  void hookAliasesAndWidths() {
    QCOMPARE(canonicalHook("layers.5"), std::string("blocks.5.hook_resid_post"));
    QCOMPARE(canonicalHook("model.layers.12.mlp"), std::string("blocks.12.mlp.hook_out"));
    QCOMPARE(canonicalHook("gpt_neox.layers.2.attention"), std::string("blocks.2.hook_attn_out"));
    QCOMPARE(canonicalHook("layers.3.self_attn"), std::string("blocks.3.hook_attn_out"));
    QCOMPARE(canonicalHook("model.layers.4.output"), std::string("blocks.4.hook_resid_post"));  // Gemma Scope 2 points
    QCOMPARE(canonicalHook("model.layers.4.self_attn.o_proj.input"), std::string("blocks.4.attn.hook_z"));
    QCOMPARE(canonicalHook("model.layers.4.post_feedforward_layernorm.output"), std::string("blocks.4.hook_mlp_out"));
    QCOMPARE(canonicalHook("model.layers.4.pre_feedforward_layernorm.output"), std::string("blocks.4.mlp.hook_in"));
    QCOMPARE(canonicalHook("embed_tokens"), std::string("hook_embed"));
    QCOMPARE(canonicalHook("blocks.1.ln2.hook_normalized"), std::string("blocks.1.ln2.hook_normalized"));
    QCOMPARE(canonicalHook("layers.05"), std::string("layers.05"));  // not a canonical number
    QCOMPARE(hookLayer("layers.1.mlp", 2), std::int64_t(1));
    try {
      hookLayer("layers.7", 2);
      QFAIL("no error");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("'layers.7'") != std::string::npos, e.what());
    }
    c10::InferenceMode guard;
    auto model = Transformer::load(testutil::fixture("models/llama-tiny"), c10::Device(c10::kCPU));
    const auto& c = model->config();
    QCOMPARE(hookWidth("blocks.0.mlp.hook_post", c), c.d_mlp);
    // mlp.hook_in is the MLP's own input: the normalised stream times the norm's weights, where
    // ln2.hook_normalized is before them.
    {
      at::Tensor normalized, module_in;
      HookSet hooks;
      hooks.add("blocks.1.ln2.hook_normalized", [&](const at::Tensor& x, const HookContext&) {
        normalized = x.clone();
        return at::Tensor();
      });
      hooks.add("blocks.1.mlp.hook_in", [&](const at::Tensor& x, const HookContext&) {
        module_in = x.clone();
        return at::Tensor();
      });
      model->forward(at::arange(6, at::kLong).view({1, -1}), &hooks);
      at::Tensor weight;
      for (const auto& [name, t] : model->parameters())
        if (name == "model.layers.1.post_attention_layernorm.weight") weight = t;
      QVERIFY(weight.defined());
      QVERIFY(testutil::maxAbsDiff(module_in, normalized * weight) < 1e-6);
      QVERIFY(testutil::maxAbsDiff(module_in, normalized) > 1e-3);
    }
    QCOMPARE(hookWidth("blocks.0.attn.hook_z", c), c.n_heads * c.d_head);
    QCOMPARE(hookWidth("layers.0", c), c.d_model);
    const at::Tensor ids = at::arange(0, 9, at::kLong).view({1, -1});
    std::map<std::string, at::Tensor> seen;
    HookSet hooks;
    for (const char* name : {"layers.1", "blocks.1.hook_resid_post", "blocks.0.mlp.hook_post", "blocks.0.attn.hook_z"})
      hooks.add(name, [&seen, name](const at::Tensor& x, const HookContext&) {
        seen[name] = x.clone();
        return at::Tensor();
      });
    model->forward(ids, &hooks);
    QCOMPARE(seen.size(), std::size_t{4});
    QVERIFY(at::equal(seen["layers.1"], seen["blocks.1.hook_resid_post"]));
    QCOMPARE(seen["blocks.0.mlp.hook_post"].size(2), c.d_mlp);
    QCOMPARE(seen["blocks.0.attn.hook_z"].size(2), c.n_heads * c.d_head);
    // A direction in the MLP's neuron space reaches the residual stream through the down projection.
    const at::Tensor neuron = at::zeros({1, c.d_mlp});
    neuron[0][3] = 1.0;
    const at::Tensor r = model->toResidual("blocks.0.mlp.hook_post", neuron);
    QCOMPARE(r.size(1), c.d_model);
    QVERIFY(r.abs().sum().item<double>() > 0);
  }

  void misShapedCheckpointIsAnError() {
    QTemporaryDir dir;
    const std::string d = dir.path().toStdString();
    auto model = Transformer::load(testutil::fixture("models/gpt2-tiny"), c10::Device(c10::kCPU));
    model->save(d);
    // Claim a wider model than the weights hold.
    auto cfg = model->config().toJson();
    cfg["n_embd"] = 128;
    std::ofstream(d + "/config.json") << cfg.dump();
    try {
      Transformer::load(d, c10::Device(c10::kCPU));
      QFAIL("no error");
    } catch (const Error& e) {
      const std::string msg = e.what();
      QVERIFY2(msg.find("wte.weight") != std::string::npos && msg.find("expected") != std::string::npos, msg.c_str());
    }
    std::ofstream(d + "/config.json") << "{\"model_type\": \"gpt2\", \"n_embd\": ";
    QVERIFY_EXCEPTION_THROWN(Transformer::load(d, c10::Device(c10::kCPU)), Error);
  }
};

QTEST_GUILESS_MAIN(TestTransformer)
#include "test_transformer.moc"
