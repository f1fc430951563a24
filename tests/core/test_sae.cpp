// SAEs: SAELens interop (standard, topk, jumprelu, pre-6.0 cfg; Monoscope-saved SAEs load in
// SAELens), metrics and bad configs.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QTemporaryDir>
#include <QtTest>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <fstream>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "sae/sae.h"
#include "sae/sae_releases.h"
#include "sae/screened_encoder.h"
#include "sae_test_util.h"
#include "test_util.h"
#include "util/error.h"
#include "util/mapped_file.h"

using namespace monoscope::core;

class TestSae : public QObject {
  Q_OBJECT

  SafetensorsFile expected_{testutil::fixture("sae/expected.safetensors")};

  static void expectRefused(const std::string& dir, const std::string& needle) { testutil::expectSaeRefused(dir, needle); }

  void matchesSaeLens(const std::string& dir, const std::string& key) {
    c10::InferenceMode guard;
    auto sae = Sae::load(testutil::fixture("sae/" + dir), testutil::device());
    at::Tensor x = testutil::loadExpected(expected_, "input").to(testutil::device());
    const double d = testutil::maxAbsDiff(sae->encode(x), testutil::loadExpected(expected_, key + "_feature_acts"));
    QVERIFY2(d < 1e-4, (dir + " encodes differently by " + std::to_string(d)).c_str());
    if (sae->config().architecture == "topk" || !x.device().is_cpu()) testutil::expectSparseEncoding(*sae, x);
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

  // A TopK SAE with thresholds keeps, of its top k, only the activations above each feature's
  // threshold; the thresholds survive a save and load, and one of the wrong shape is refused.
  void topkThresholdsCutAfterTheTopK() {
    c10::InferenceMode guard;
    auto sae = Sae::load(testutil::fixture("sae/topk"), c10::Device(c10::kCPU));
    at::manual_seed(5);
    const at::Tensor x = at::randn({512, 64}) * testutil::loadExpected(expected_, "input").std();
    const at::Tensor plain = sae->encode(x);
    const at::Tensor threshold = std::get<0>(plain.max(0)) * 0.5;  // half of each feature's max here
    Sae cut(sae->config(), sae->W_enc(), sae->b_enc(), sae->W_dec(), sae->b_dec(), threshold);
    const at::Tensor f = cut.encode(x);
    QVERIFY(at::equal(f, plain * (plain > threshold)));
    testutil::expectSparseEncoding(*sae, x);  // straight to the k best per row, thresholds too
    testutil::expectSparseEncoding(cut, x);
    QVERIFY((f > 0).sum().item<std::int64_t>() < (plain > 0).sum().item<std::int64_t>());
    QVERIFY((f > 0).sum().item<std::int64_t>() > 0);
    QTemporaryDir dir;
    cut.save(dir.path().toStdString());
    auto back = Sae::load(dir.path().toStdString(), c10::Device(c10::kCPU));
    QCOMPARE(back->config().architecture, std::string("topk"));
    QVERIFY(back->threshold().defined());
    QVERIFY(at::equal(back->encode(x), f));
    bool refused = false;
    try {
      Sae(sae->config(), sae->W_enc(), sae->b_enc(), sae->W_dec(), sae->b_dec(), threshold.narrow(0, 0, 3));
    } catch (const Error& e) {
      refused = std::string(e.what()).find("threshold") != std::string::npos;
    }
    QVERIFY(refused);
  }

  // One unit of a feature's activation adds its write row to the output, and attribution is each
  // feature's share of <grad, output>: with rescale_acts_by_decoder_norm the rows are the decoder's
  // divided by their norms, as SAELens decodes.
  void writeRowsAreWhatAUnitOfActivationAdds() {
    c10::InferenceMode guard;
    auto plain = Sae::load(testutil::fixture("sae/topk"), c10::Device(c10::kCPU));
    at::manual_seed(11);
    at::Tensor W = plain->W_dec() * (at::rand({plain->config().d_sae, 1}) * 3.0 + 0.5);  // rows of other norms
    W[50].zero_();  // a zero row writes nothing (no division by zero)
    SaeConfig cfg = plain->config();
    cfg.rescale_acts_by_decoder_norm = true;
    const Sae rescaled(cfg, plain->W_enc(), plain->b_enc(), W, plain->b_dec(), at::Tensor());
    const at::Tensor x = at::randn({6, cfg.d_in}) * testutil::loadExpected(expected_, "input").std();
    const at::Tensor g = at::randn({6, cfg.outWidth()});
    for (const Sae* sae : std::initializer_list<const Sae*>{plain.get(), &rescaled}) {
      const at::Tensor zero = sae->decode(at::zeros({1, cfg.d_sae}));
      const at::Tensor idx = at::tensor({3, 17, 40}, at::kLong);
      const at::Tensor rows = sae->writeRows(idx);
      for (std::int64_t j = 0; j < idx.size(0); ++j) {
        at::Tensor f = at::zeros({1, cfg.d_sae});
        f[0][idx[j].item<std::int64_t>()] = 2.5;
        QVERIFY(at::allclose(sae->decode(f) - zero, 2.5 * rows[j].unsqueeze(0), 1e-4, 1e-5));
      }
      QVERIFY(at::allclose(sae->writeBlock(3, 4), rows[0].unsqueeze(0)));
      if (sae == &rescaled) QVERIFY(sae->writeBlock(50, 51).eq(0).all().item<bool>());
      testutil::expectSparseEncoding(*sae, x);
      QVERIFY(sae->attributionScores(x, g).isfinite().all().item<bool>());
      QVERIFY(sae->decode(sae->encode(x)).isfinite().all().item<bool>());
      const at::Tensor f = sae->encode(x);
      const at::Tensor scores = sae->attributionScores(x, g);
      int checked = 0;
      for (std::int64_t i = 0; i < cfg.d_sae && checked < 5; ++i) {
        if (!(f.select(1, i) > 0).any().item<bool>()) continue;
        at::Tensor without = f.clone();
        without.select(1, i).zero_();
        const double share = ((sae->decode(f) - sae->decode(without)) * g).sum().item<double>();
        QVERIFY2(std::fabs(scores[i].item<double>() - share) <= 1e-3 * (1.0 + std::fabs(share)),
                 qPrintable(QString("feature %1: %2 vs %3").arg(i).arg(scores[i].item<double>()).arg(share)));
        ++checked;
      }
      QCOMPARE(checked, 5);
    }
  }

  // Rows far above the median norm are told apart from the ordinary ones, and metrics over the
  // ordinary rows equal metrics over the same rows cut out by hand.
  void ordinaryRowsLeaveOutTheMassiveOnes() {
    c10::InferenceMode guard;
    auto sae = Sae::load(testutil::fixture("sae/topk"), c10::Device(c10::kCPU));
    at::manual_seed(7);
    at::Tensor x = at::randn({256, 64});
    at::Tensor all = ordinaryRows(x, 10.0);
    QCOMPARE(all.size(0), std::int64_t{256});
    x[17].mul_(100.0);
    x[200].mul_(30.0);
    const at::Tensor kept = ordinaryRows(x, 10.0);
    QCOMPARE(kept.size(0), std::int64_t{254});
    QVERIFY(!(kept == 17).any().item<bool>() && !(kept == 200).any().item<bool>());
    const at::Tensor by_hand = at::cat({x.narrow(0, 0, 17), x.narrow(0, 18, 182), x.narrow(0, 201, 55)});
    QCOMPARE(sae->metrics(x.index_select(0, kept)).fraction_variance_explained, sae->metrics(by_hand).fraction_variance_explained);
    QVERIFY(sae->metrics(by_hand).fraction_variance_explained != sae->metrics(x).fraction_variance_explained);
    QCOMPARE(ordinaryRows(at::zeros({8, 4}), 10.0).size(0), std::int64_t{8});  // median 0: nothing is massive
    QCOMPARE(ordinaryRows(at::zeros({0, 4}), 10.0).size(0), std::int64_t{0});
    // The mask marks exactly the rows left out, and a row with a non-finite norm among them.
    const at::Tensor mask = massiveRowMask(x, 10.0);
    QCOMPARE(mask.scalar_type(), at::kBool);
    QCOMPARE(mask.sum().item<std::int64_t>(), std::int64_t{2});
    QVERIFY(mask[17].item<bool>() && mask[200].item<bool>() && !mask[18].item<bool>());
    x[5].fill_(std::numeric_limits<float>::quiet_NaN());
    QVERIFY(massiveRowMask(x, 10.0)[5].item<bool>());
    QCOMPARE(ordinaryRows(x, 10.0).size(0), std::int64_t{253});
  }

  // An EleutherAI sparsify coder (folder named after its hookpoint) encodes and reconstructs as
  // its definition does, maps its hookpoint to the TransformerLens hook, and converts to SAELens
  // v6 with the same encodings. A skip connection on an autoencoder and an unknown layout are
  // refused by name.
  void sparsifyCoderMatchesItsDefinition() {
    c10::InferenceMode guard;
    SafetensorsFile expected(testutil::fixture("dictionaries/sparsify_expected.safetensors"));
    const std::string dir = testutil::fixture("dictionaries/sparsify/layers.1");
    auto sae = Sae::load(dir, c10::Device(c10::kCPU));
    QCOMPARE(sae->config().hook_name, std::string("blocks.1.hook_resid_post"));
    QCOMPARE(sae->config().architecture, std::string("topk"));
    QCOMPARE(sae->config().k, std::int64_t{4});
    const at::Tensor x = testutil::loadExpected(expected, "input");
    const at::Tensor f = sae->encode(x);
    QVERIFY(testutil::maxAbsDiff(f, testutil::loadExpected(expected, "feature_acts")) < 1e-5);
    QVERIFY(testutil::maxAbsDiff(sae->decode(f), testutil::loadExpected(expected, "reconstruction")) < 1e-5);
    QTemporaryDir tmp;
    const std::string out = tmp.path().toStdString() + "/saelens";
    sae->save(out);
    auto again = Sae::load(out, c10::Device(c10::kCPU));
    QVERIFY(testutil::maxAbsDiff(again->encode(x), f) < 1e-6);
    QCOMPARE(again->config().hook_name, std::string("blocks.1.hook_resid_post"));
    auto refused = [&](const std::string& key, const char* needle) {
      const std::string bad = tmp.path().toStdString() + "/" + key + "/layers.1";
      std::filesystem::create_directories(bad);
      std::filesystem::copy_file(dir + "/sae.safetensors", bad + "/sae.safetensors");
      auto cfg = readJsonFile(dir + "/cfg.json");
      if (!key.empty() && key != "none") cfg[key] = true;
      std::ofstream(bad + "/cfg.json") << cfg.dump();
      if (key == "none") std::filesystem::remove(bad + "/cfg.json");
      expectRefused(bad, needle);
    };
    refused("skip_connection", "W_skip");
    refused("none", "sae_weights.safetensors");
  }
  // A Gemma Scope 2 SAE (params.safetensors + config.json) encodes and reconstructs as its
  // definition does, takes its hook from the config's Hugging Face point or, without a config,
  // from the release's site folder; transcoders and other architectures are refused by name.
  void gemmaScope2MatchesItsDefinition() {
    c10::InferenceMode guard;
    SafetensorsFile expected(testutil::fixture("dictionaries/gemma_scope_2_expected.safetensors"));
    const std::string dir = testutil::fixture("dictionaries/gemma-scope-2-270m-pt/resid_post/layer_1_width_96_l0_small");
    auto sae = Sae::load(dir, c10::Device(c10::kCPU));
    QCOMPARE(sae->config().architecture, std::string("jumprelu"));
    QCOMPARE(sae->config().hook_name, std::string("blocks.1.hook_resid_post"));
    const at::Tensor x = testutil::loadExpected(expected, "input");
    const at::Tensor f = sae->encode(x);
    QVERIFY(testutil::maxAbsDiff(f, testutil::loadExpected(expected, "feature_acts")) < 1e-5);
    QVERIFY(testutil::maxAbsDiff(sae->decode(f), testutil::loadExpected(expected, "reconstruction")) < 1e-5);
    QTemporaryDir tmp;
    // Variants: no config.json (the site folder names the hook), a transcoder, another architecture.
    auto place = [&](const std::string& site, const std::string& name, const nlohmann::json* cfg) {
      const std::string d = tmp.path().toStdString() + "/" + site + "/" + name;
      std::filesystem::create_directories(d);
      std::filesystem::copy_file(dir + "/params.safetensors", d + "/params.safetensors");
      if (cfg != nullptr) std::ofstream(d + "/config.json") << cfg->dump();
      return d;
    };
    QCOMPARE(Sae::load(place("mlp_out", "layer_3_width_96_l0_small", nullptr), c10::Device(c10::kCPU))->config().hook_name,
             std::string("blocks.3.hook_mlp_out"));
    const nlohmann::json tc = {{"architecture", "jump_relu"}, {"hf_hook_point_in", "model.layers.1.pre_feedforward_layernorm.output"},
                               {"hf_hook_point_out", "model.layers.1.post_feedforward_layernorm.output"}};
    // A config naming an output point makes it a transcoder (no skip connection without
    // affine_connection); a cross-layer transcoder is refused by name.
    auto as_transcoder = Sae::load(place("transcoder", "layer_1_width_96_l0_small", &tc), c10::Device(c10::kCPU));
    QCOMPARE(as_transcoder->config().hook_name, std::string("blocks.1.mlp.hook_in"));
    QCOMPARE(as_transcoder->config().hook_name_out, std::string("blocks.1.hook_mlp_out"));
    QVERIFY(!as_transcoder->config().skip);
    expectRefused(place("clt", "layer_1_width_96_l0_small", &tc), "cross-layer transcoder");
    const nlohmann::json other = {{"architecture", "topk"}};
    expectRefused(place("resid_post", "layer_2_width_96_l0_small", &other), "architecture");
    expectRefused(place("elsewhere", "no_layer_here", nullptr), "names no site and layer");
  }

  // A Llama Scope SAE (hyperparams.json + checkpoints/final.safetensors, stored in its training
  // space with decoder columns of any norm) encodes and reconstructs as lm_saes's folded
  // definition does, converts to SAELens v6 with the same encodings, reads a transcoder, and
  // refuses a transcoder writing back into another block and another activation by name.
  void llamaScopeMatchesItsDefinition() {
    c10::InferenceMode guard;
    SafetensorsFile expected(testutil::fixture("dictionaries/llama_scope_expected.safetensors"));
    const std::string dir = testutil::fixture("dictionaries/llama-scope/Llama3_1-8B-Base-L1R-8x");
    auto sae = Sae::load(dir, c10::Device(c10::kCPU));
    QCOMPARE(sae->config().architecture, std::string("jumprelu"));
    QCOMPARE(sae->config().hook_name, std::string("blocks.1.hook_resid_post"));
    QVERIFY(!sae->config().apply_b_dec_to_input);
    const at::Tensor x = testutil::loadExpected(expected, "input");
    const at::Tensor want = testutil::loadExpected(expected, "feature_acts");
    const at::Tensor f = sae->encode(x);
    QVERIFY((want > 0).any().item<bool>() && (want == 0).any().item<bool>());  // the threshold bites
    QVERIFY2(testutil::maxAbsDiff(f, want) < 1e-4, std::to_string(testutil::maxAbsDiff(f, want)).c_str());
    QVERIFY(testutil::maxAbsDiff(sae->decode(f), testutil::loadExpected(expected, "reconstruction")) < 1e-4);
    QTemporaryDir tmp;
    sae->save(tmp.path().toStdString() + "/saelens");
    QVERIFY(testutil::maxAbsDiff(Sae::load(tmp.path().toStdString() + "/saelens", c10::Device(c10::kCPU))->encode(x), f) < 1e-6);
    auto refused = [&](const char* key, const nlohmann::json& value, const char* needle) {
      const std::string bad = tmp.path().toStdString() + "/" + key;
      std::filesystem::create_directories(bad + "/checkpoints");
      std::filesystem::copy_file(dir + "/checkpoints/final.safetensors", bad + "/checkpoints/final.safetensors");
      auto cfg = readJsonFile(dir + "/hyperparams.json");
      cfg[key] = value;
      std::ofstream(bad + "/hyperparams.json") << cfg.dump();
      expectRefused(bad, needle);
    };
    refused("hook_point_out", "blocks.0.hook_mlp_out", "later hook of the block");
    refused("act_fn", "topk", "act_fn");
    // A transcoder (LXTC: hook_point_in the MLP's input, hook_point_out its output) folds the
    // same way; its output at hook_point_out is the SAE's reconstruction formula.
    const std::string tc_dir = tmp.path().toStdString() + "/L1TC";
    std::filesystem::create_directories(tc_dir + "/checkpoints");
    std::filesystem::copy_file(dir + "/checkpoints/final.safetensors", tc_dir + "/checkpoints/final.safetensors");
    auto tc_cfg = readJsonFile(dir + "/hyperparams.json");
    tc_cfg["hook_point_in"] = "blocks.1.ln2.hook_normalized";
    tc_cfg["hook_point_out"] = "blocks.1.hook_mlp_out";
    std::ofstream(tc_dir + "/hyperparams.json") << tc_cfg.dump();
    auto tc = Sae::load(tc_dir, c10::Device(c10::kCPU));
    QCOMPARE(tc->config().hook_name, std::string("blocks.1.ln2.hook_normalized"));
    QCOMPARE(tc->config().writeHook(), std::string("blocks.1.hook_mlp_out"));
    QVERIFY(testutil::maxAbsDiff(tc->encode(x), want) < 1e-4);
    QVERIFY(testutil::maxAbsDiff(tc->transcode(x), testutil::loadExpected(expected, "reconstruction")) < 1e-4);
    refused("jump_relu_threshold", -1.0, "jump_relu_threshold");
  }

  // dictionary_learning checkpoints: ae.pt is a pickle and refused with the converting command;
  // what packaging/convert-dictionary-learning.py writes encodes as each class's own rule does.
  void dictionaryLearningConvertsAndIsRefusedRaw() {
    c10::InferenceMode guard;
    SafetensorsFile expected(testutil::fixture("dictionaries/dictionary_learning_expected.safetensors"));
    const at::Tensor x = testutil::loadExpected(expected, "input");
    const std::pair<const char*, const char*> classes[] = {{"AutoEncoder", "standard"},
                                                           {"AutoEncoderTopK", "topk"},
                                                           {"BatchTopKSAE", "jumprelu"},
                                                           {"JumpReluAutoEncoder", "jumprelu"}};
    for (const auto& [cls, arch] : classes) {
      const std::string base = testutil::fixture("dictionaries/dictionary-learning/") + cls;
      auto sae = Sae::load(base + "-converted", c10::Device(c10::kCPU));
      QCOMPARE(sae->config().architecture, std::string(arch));
      QCOMPARE(sae->config().hook_name, std::string("blocks.1.hook_resid_post"));
      const double diff = testutil::maxAbsDiff(sae->encode(x), testutil::loadExpected(expected, std::string(cls) + ".feature_acts"));
      QVERIFY2(diff < 1e-5, (std::string(cls) + ": " + std::to_string(diff)).c_str());
      try {
        Sae::load(base, c10::Device(c10::kCPU));
        QFAIL((std::string("ae.pt of ") + cls + " was not refused").c_str());
      } catch (const Error& e) {
        const std::string msg = e.what();
        QVERIFY2(msg.find("pickle") != std::string::npos && msg.find("convert-dictionary-learning.py") != std::string::npos,
                 e.what());
      }
    }
  }

  // A Gemma Scope params.npz (JumpReLU, b_dec not subtracted first) encodes and reconstructs as
  // its definition does, takes its hook from the release's folder names, and converts to SAELens
  // v6 with the same encodings. A column-major array is transposed; an object array (a pickle),
  // a truncated archive, a member shorter than its shape, a path that names no layer and a
  // transcoder release are refused by name.
  void gemmaScopeMatchesItsDefinition() {
    c10::InferenceMode guard;
    SafetensorsFile expected(testutil::fixture("dictionaries/gemma_scope_expected.safetensors"));
    const std::string dir = testutil::fixture("dictionaries/gemma-scope-tiny-pt-res/layer_1/width_96/average_l0_9");
    auto sae = Sae::load(dir, c10::Device(c10::kCPU));
    QCOMPARE(sae->config().hook_name, std::string("blocks.1.hook_resid_post"));
    QCOMPARE(sae->config().architecture, std::string("jumprelu"));
    QCOMPARE(sae->config().apply_b_dec_to_input, false);
    const at::Tensor x = testutil::loadExpected(expected, "input");
    const at::Tensor f = sae->encode(x);
    const at::Tensor want = testutil::loadExpected(expected, "feature_acts");
    QVERIFY((want > 0).sum().item<std::int64_t>() > 20);
    QVERIFY(testutil::maxAbsDiff(f, want) < 1e-5);
    QVERIFY(testutil::maxAbsDiff(sae->decode(f), testutil::loadExpected(expected, "reconstruction")) < 1e-5);
    QTemporaryDir tmp;
    const std::string out = tmp.path().toStdString() + "/saelens";
    sae->save(out);
    auto again = Sae::load(out, c10::Device(c10::kCPU));
    QVERIFY(testutil::maxAbsDiff(again->encode(x), f) < 1e-6);
    QCOMPARE(again->config().hook_name, std::string("blocks.1.hook_resid_post"));
    auto place = [&](const std::string& release, const std::string& file) {
      const std::string d = tmp.path().toStdString() + "/" + release + "/layer_2/width_96/average_l0_9";
      std::filesystem::create_directories(d);
      std::filesystem::copy_file(testutil::fixture("dictionaries/" + file), d + "/params.npz",
                                 std::filesystem::copy_options::overwrite_existing);
      return d;
    };
    auto fortran = Sae::load(place("gemma-scope-9b-it-mlp", "gemma-scope-bad/fortran.npz"), c10::Device(c10::kCPU));
    QCOMPARE(fortran->config().hook_name, std::string("blocks.2.hook_mlp_out"));
    QVERIFY(testutil::maxAbsDiff(fortran->encode(x), f) < 1e-6);
    expectRefused(place("gemma-scope-2b-pt-att", "gemma-scope-bad/object.npz"), "pickle");
    expectRefused(place("gemma-scope-2b-pt-res-canonical", "gemma-scope-bad/truncated.npz"), "params.npz");
    expectRefused(place("gemma-scope-2b-pt-res", "gemma-scope-bad/short.npz"), "truncated or damaged");
    const std::string loose = tmp.path().toStdString() + "/loose";
    std::filesystem::create_directories(loose);
    std::filesystem::copy_file(dir + "/params.npz", loose + "/params.npz");
    expectRefused(loose, "does not name the layer");
  }

  // SAELens release names resolve through the compiled-in table to the repository and path, then
  // through the Hugging Face cache, offline; an unknown release or id is named with examples.
  void saeLensReleaseNamesResolve() {
    c10::InferenceMode guard;
    QTemporaryDir hub;
    const std::string snap = hub.path().toStdString() + "/models--google--gemma-scope-2b-pt-res/snapshots/c0ffee";
    std::filesystem::create_directories(snap + "/layer_1/width_16k/average_l0_102");
    std::filesystem::create_directories(hub.path().toStdString() + "/models--google--gemma-scope-2b-pt-res/refs");
    std::ofstream(hub.path().toStdString() + "/models--google--gemma-scope-2b-pt-res/refs/main") << "c0ffee";
    std::filesystem::copy_file(testutil::fixture("dictionaries/gemma-scope-tiny-pt-res/layer_1/width_96/average_l0_9/params.npz"),
                               snap + "/layer_1/width_16k/average_l0_102/params.npz");
    const QByteArray old = qgetenv("HF_HUB_CACHE");
    qputenv("HF_HUB_CACHE", hub.path().toUtf8());
    QCOMPARE(resolveSaeRelease("gemma-scope-2b-pt-res-canonical:layer_1/width_16k/canonical"),
             std::string("google/gemma-scope-2b-pt-res/layer_1/width_16k/average_l0_102"));
    QCOMPARE(resolveSaeRelease("some/local/path"), std::string("some/local/path"));
    auto sae = Sae::load("gemma-scope-2b-pt-res-canonical:layer_1/width_16k/canonical", c10::Device(c10::kCPU));
    QCOMPARE(sae->config().hook_name, std::string("blocks.1.hook_resid_post"));
    QCOMPARE(sae->config().architecture, std::string("jumprelu"));
    for (const auto& [spec, needle] : {std::pair<std::string, std::string>{"gemma-scope-2b-pt-res-canonical:layer_99/x", "has no SAE 'layer_99/x'"},
                                       {"no-such-release:x", "not a SAELens release"}}) {
      expectRefused(spec, needle);
    }
    if (old.isEmpty()) qunsetenv("HF_HUB_CACHE");
    else qputenv("HF_HUB_CACHE", old);
  }

  // The screened encoder (bf16 tile screen, exact fp32 dots) finds every activation a float64
  // product finds, including pairs planted a hair above and below zero, for odd shapes, JumpReLU
  // gates, row counts across its chunks; sparse and dense outputs agree bit for bit, and so do
  // rows encoded in one call or two.
  void screenedEncoderIsExact() {
    if (!ScreenedEncoder::supported()) QSKIP("this CPU has no AMX-BF16: the screened encoder does not run here");
    c10::InferenceMode guard;
    at::manual_seed(7);
    struct Shape {
      std::int64_t d_in, d_sae, n;
      bool jump;
    };
    for (const Shape sh : {Shape{80, 200, 300, false}, Shape{256, 96, 33, true}, Shape{32, 32, 1, false},
                           Shape{300, 64, 530, true}}) {
      const at::Tensor W = at::randn({sh.d_in, sh.d_sae}) / std::sqrt(static_cast<double>(sh.d_in));
      const at::Tensor x = at::randn({sh.n, sh.d_in}) * 3;
      at::Tensor b = at::randn({sh.d_sae}) * 0.5;
      // Feature j's bias puts row (j % n) within a few 1e-6 of its gate, on either side.
      const at::Tensor dots = at::matmul(x.to(at::kDouble), W.to(at::kDouble));
      at::Tensor thr = sh.jump ? at::rand({sh.d_sae}) * 0.5 : at::Tensor();
      for (std::int64_t j = 0; j < sh.d_sae; j += 3) {
        const double gate = sh.jump ? thr[j].item<double>() : 0.0;
        const double eps = (j % 2 ? 1 : -1) * 4e-6 * (1 + j % 5);
        b[j] = static_cast<float>(gate - dots[j % sh.n][j].item<double>() + eps);
      }
      const at::Tensor pre = dots + b.to(at::kDouble);                     // [n, d_sae]
      const at::Tensor gate = sh.jump ? thr.to(at::kDouble).clamp_min(0) : at::zeros({sh.d_sae}, at::kDouble);
      // fp32's own error for these dots: pairs closer than that to the gate may go either way.
      const at::Tensor tol = 1e-5 * at::outer(x.to(at::kDouble).norm(2, 1), W.to(at::kDouble).norm(2, 0));
      ScreenedEncoder enc(W.contiguous().data_ptr<float>(), b.contiguous().data_ptr<float>(),
                          sh.jump ? thr.contiguous().data_ptr<float>() : nullptr, sh.d_in, sh.d_sae);
      at::Tensor dense = at::empty({sh.n, sh.d_sae});
      enc.encodeDense(x.data_ptr<float>(), sh.n, dense.data_ptr<float>());
      const at::Tensor on = pre > gate + tol, off = pre <= gate - tol;
      QVERIFY2((dense.gt(0) | ~on).all().item<bool>(), "an activation above the gate was missed");
      QVERIFY2((dense.eq(0) | ~off).all().item<bool>(), "an activation below the gate was kept");
      const at::Tensor err = (dense.to(at::kDouble) - pre).abs() * dense.gt(0);
      QVERIFY((err <= tol).all().item<bool>());
      QVERIFY((at::where(on, 1, 0) + at::where(off, 1, 0)).sum().item<std::int64_t>() > 0);
      // Sparse = dense, and one call = two calls.
      SparseRows one, two;
      enc.encode(x.data_ptr<float>(), sh.n, &one);
      const std::int64_t half = sh.n / 2;
      enc.encode(x.data_ptr<float>(), half, &two);
      SparseRows rest;
      enc.encode(x.data_ptr<float>() + half * sh.d_in, sh.n - half, &rest);
      for (std::size_t r = 1; r < rest.offsets.size(); ++r) two.offsets.push_back(two.offsets.back() + rest.offsets[r] - rest.offsets[r - 1]);
      two.features.insert(two.features.end(), rest.features.begin(), rest.features.end());
      two.acts.insert(two.acts.end(), rest.acts.begin(), rest.acts.end());
      QCOMPARE(one.rows(), sh.n);
      QVERIFY(one.offsets == two.offsets && one.features == two.features && one.acts == two.acts);
      std::size_t k = 0;
      for (std::int64_t r = 0; r < sh.n; ++r) {
        for (std::int64_t j = 0; j < sh.d_sae; ++j) {
          const float v = dense[r][j].item<float>();
          if (v == 0) continue;
          QVERIFY(k < one.features.size() && one.features[k] == static_cast<std::uint32_t>(j) && one.acts[k] == v);
          ++k;
        }
        QCOMPARE(static_cast<std::size_t>(one.offsets[static_cast<std::size_t>(r + 1)]), k);
      }
    }
  }

  // Through Sae: encode() with the screened encoder on and off agrees to fp32 rounding on the
  // SAELens fixtures, and encodeSparse() gives encode()'s values.
  void saeScreenedAgreesWithProduct() {
    if (!ScreenedEncoder::supported()) QSKIP("this CPU has no AMX-BF16: the screened encoder does not run here");
    c10::InferenceMode guard;
    for (const char* dir : {"standard", "jumprelu"}) {
      auto sae = Sae::load(testutil::fixture(std::string("sae/") + dir), c10::Device(c10::kCPU));
      const at::Tensor x = testutil::loadExpected(expected_, "input").reshape({-1, sae->config().d_in});
      const at::Tensor screened = sae->encode(x);
      const bool was = ScreenedEncoder::setEnabled(false);
      const at::Tensor product = sae->encode(x);
      SparseRows none;
      QVERIFY(!sae->encodeSparse(x, &none));
      ScreenedEncoder::setEnabled(was);
      QVERIFY(testutil::maxAbsDiff(screened, product) < 1e-5);
      SparseRows rows;
      QVERIFY(sae->encodeSparse(x, &rows));
      QCOMPARE(rows.rows(), x.size(0));
      QCOMPARE(static_cast<std::int64_t>(rows.features.size()), screened.gt(0).sum().item<std::int64_t>());
      for (std::int64_t r = 0; r < rows.rows(); ++r)
        for (std::uint32_t i = rows.offsets[static_cast<std::size_t>(r)]; i < rows.offsets[static_cast<std::size_t>(r + 1)]; ++i)
          QCOMPARE(rows.acts[i], screened[r][rows.features[i]].item<float>());
    }
  }

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

  // A dictionary read in place from its F16 file, a block of features at a time, answers as the
  // same file copied into float32: dense and top encodings, maxima, columns, decoding and
  // attribution, for every architecture (TopK with thresholds too), over several blocks.
  void mappedDictionaryMatchesTheCopiedOne() {
    c10::InferenceMode guard;
    at::manual_seed(11);
    const at::Tensor x = at::randn({40, 64}) * testutil::loadExpected(expected_, "input").std();
    const at::Tensor grad = at::randn({40, 64});
    for (const std::string name : {"standard", "topk", "jumprelu", "topk-threshold"}) {
      auto base = Sae::load(testutil::fixture("sae/" + (name == "topk-threshold" ? std::string("topk") : name)), c10::Device(c10::kCPU));
      QTemporaryDir dir;
      const std::string d = dir.path().toStdString();
      if (name == "topk-threshold") {
        const at::Tensor t = std::get<0>(base->encode(x).max(0)) * 0.4;
        Sae(base->config(), base->W_enc(), base->b_enc(), base->W_dec(), base->b_dec(), t).save(d, true);
      } else {
        base->save(d, true);
      }
      const auto copied = Sae::load(d, c10::Device(c10::kCPU));
      qputenv("MONOSCOPE_SAE_MAP_ABOVE", "0");
      qputenv("MONOSCOPE_SAE_BLOCK_FEATURES", "48");  // 128 features: blocks of 48, 48 and 32
      const auto mapped = Sae::load(d, c10::Device(c10::kCPU));
      qunsetenv("MONOSCOPE_SAE_MAP_ABOVE");
      QVERIFY2(mapped->mapped() && !copied->mapped(), name.c_str());
      QCOMPARE(mapped->W_enc().scalar_type(), at::kHalf);
      const at::Tensor want = copied->encode(x);
      QVERIFY2(testutil::maxAbsDiff(mapped->encode(x), want) < 1e-4, name.c_str());
      QVERIFY(testutil::maxAbsDiff(mapped->decode(want), copied->decode(want)) < 1e-4);
      QVERIFY(testutil::maxAbsDiff(mapped->maxOverRows(x), std::get<0>(want.max(0))) < 1e-4);
      const auto top = mapped->encodeTop(x, 5);
      const auto ref = want.topk(5, 1);
      QVERIFY(testutil::maxAbsDiff(top.first, std::get<0>(ref)) < 1e-4);
      QVERIFY(at::equal(want.gather(1, top.second) > 0, std::get<0>(ref) > 0));
      const at::Tensor idx = at::tensor({3L, 47L, 48L, 127L}, at::kLong);
      QVERIFY(testutil::maxAbsDiff(mapped->encodeColumns(x, idx), want.index_select(1, idx)) < 1e-4);
      QVERIFY(testutil::maxAbsDiff(mapped->attributionScores(x, grad), copied->attributionScores(x, grad)) < 1e-3);
      QVERIFY(testutil::maxAbsDiff(mapped->decoderBlock(40, 60), copied->W_dec().slice(0, 40, 60)) == 0);
      qunsetenv("MONOSCOPE_SAE_BLOCK_FEATURES");
    }
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
