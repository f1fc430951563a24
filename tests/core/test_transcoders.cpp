// Transcoders: Gemma Scope 1 and 2, SAELens's own, sparsify's, and circuit-tracer's per-layer
// transcoder sets, each against its format's definition, converted to SAELens v6 where it has a
// form there, and malformed ones refused by field.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QDir>
#include <QTemporaryDir>
#include <QtTest>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <tuple>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "sae/sae.h"
#include "sae_test_util.h"
#include "test_util.h"
#include "util/error.h"

using namespace monoscope::core;

class TestTranscoders : public QObject {
  Q_OBJECT

  static void expectRefused(const std::string& dir, const std::string& needle) { testutil::expectSaeRefused(dir, needle); }

 private Q_SLOTS:
  // A Gemma Scope 2 transcoder reads the MLP's input and writes its output: encodings and
  // outputs (with the affine skip connection) as its definition gives them, its hooks from the
  // config; converted to SAELens v6 it is a jumprelu_skip_transcoder with the same outputs; it
  // has no reconstruction metrics (its output is another hook's).
  void gemmaScope2TranscoderMatchesItsDefinition() {
    c10::InferenceMode guard;
    SafetensorsFile expected(testutil::fixture("dictionaries/gemma_scope_2_transcoder_expected.safetensors"));
    const std::string dir = testutil::fixture("dictionaries/gemma-scope-2-270m-pt/transcoder_all/layer_1_width_96_l0_small_affine");
    auto tc = Sae::load(dir, c10::Device(c10::kCPU));
    QVERIFY(tc->config().transcoder());
    QVERIFY(tc->config().skip);
    QCOMPARE(tc->config().hook_name, std::string("blocks.1.mlp.hook_in"));
    QCOMPARE(tc->config().writeHook(), std::string("blocks.1.hook_mlp_out"));
    const at::Tensor x = testutil::loadExpected(expected, "input");
    QVERIFY(testutil::maxAbsDiff(tc->encode(x), testutil::loadExpected(expected, "feature_acts")) < 1e-5);
    QVERIFY(testutil::maxAbsDiff(tc->transcode(x), testutil::loadExpected(expected, "output")) < 1e-5);
    try {
      tc->metrics(x);
      QFAIL("metrics of a transcoder");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("transcoder") != std::string::npos, e.what());
    }
    QTemporaryDir tmp;
    tc->save(tmp.path().toStdString());
    QCOMPARE(readJsonFile(tmp.path().toStdString() + "/cfg.json")["architecture"].get<std::string>(),
             std::string("jumprelu_skip_transcoder"));
    auto again = Sae::load(tmp.path().toStdString(), c10::Device(c10::kCPU));
    QCOMPARE(again->config().hook_name_out, std::string("blocks.1.hook_mlp_out"));
    QVERIFY(testutil::maxAbsDiff(again->transcode(x), testutil::loadExpected(expected, "output")) < 1e-5);
  }

  // Transcoders SAELens wrote (save_model) load with SAELens's own encodings and outputs; a
  // transcoder config without its output hook, or one that subtracts b_dec, is refused by field.
  void saeLensTranscodersMatchSaeLens() {
    c10::InferenceMode guard;
    SafetensorsFile expected(testutil::fixture("dictionaries/saelens_transcoders_expected.safetensors"));
    for (const std::string arch : {"jumprelu_skip_transcoder", "transcoder"}) {
      const std::string dir = testutil::fixture("dictionaries/saelens-transcoders/" + arch);
      auto tc = Sae::load(dir, c10::Device(c10::kCPU));
      QCOMPARE(tc->config().skip, arch == "jumprelu_skip_transcoder");
      QCOMPARE(tc->config().architecture, std::string(arch == "transcoder" ? "standard" : "jumprelu"));
      const at::Tensor x = testutil::loadExpected(expected, arch + ".input");
      QVERIFY(testutil::maxAbsDiff(tc->encode(x), testutil::loadExpected(expected, arch + ".feature_acts")) < 1e-5);
      QVERIFY(testutil::maxAbsDiff(tc->transcode(x), testutil::loadExpected(expected, arch + ".output")) < 1e-5);
    }
    QTemporaryDir tmp;
    const std::string src = testutil::fixture("dictionaries/saelens-transcoders/transcoder");
    auto variant = [&](const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
      const std::string d = tmp.path().toStdString() + "/" + name;
      std::filesystem::create_directories(d);
      std::filesystem::copy_file(src + "/sae_weights.safetensors", d + "/sae_weights.safetensors");
      auto cfg = readJsonFile(src + "/cfg.json");
      edit(cfg);
      std::ofstream(d + "/cfg.json") << cfg.dump();
      return d;
    };
    expectRefused(variant("no-out", [](nlohmann::json& c) { c["metadata"].erase("hook_name_out"); }), "hook_name_out");
    expectRefused(variant("b-dec", [](nlohmann::json& c) { c["apply_b_dec_to_input"] = true; }), "apply_b_dec_to_input");
    expectRefused(variant("d-out", [](nlohmann::json& c) { c["d_out"] = 65; }), "W_dec");
  }

  // A sparsify transcoder (transcode: true) reads its module's input and writes its output: an
  // MLP's (layers.L.mlp: mlp.hook_in to mlp.hook_out) or a whole block's (layers.L); it encodes x
  // itself, adds x W_skip^T, and has no SAELens v6 form (SAELens has no TopK transcoder).
  void sparsifyTranscoderMatchesItsDefinition() {
    c10::InferenceMode guard;
    SafetensorsFile expected(testutil::fixture("dictionaries/sparsify_transcoder_expected.safetensors"));
    const std::string dir = testutil::fixture("dictionaries/sparsify/transcoders/layers.1.mlp");
    auto tc = Sae::load(dir, c10::Device(c10::kCPU));
    QCOMPARE(tc->config().hook_name, std::string("blocks.1.mlp.hook_in"));
    QCOMPARE(tc->config().writeHook(), std::string("blocks.1.mlp.hook_out"));
    QVERIFY(tc->config().skip);
    QVERIFY(!tc->config().apply_b_dec_to_input);
    const at::Tensor x = testutil::loadExpected(expected, "input");
    QVERIFY(testutil::maxAbsDiff(tc->encode(x), testutil::loadExpected(expected, "feature_acts")) < 1e-5);
    QVERIFY(testutil::maxAbsDiff(tc->transcode(x), testutil::loadExpected(expected, "output")) < 1e-5);
    QTemporaryDir tmp;
    try {
      tc->save(tmp.path().toStdString() + "/out");
      QFAIL("a TopK transcoder written as SAELens v6");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("TopK transcoder") != std::string::npos, e.what());
    }
    auto place = [&](const std::string& hookpoint) {
      const std::string d = tmp.path().toStdString() + "/" + hookpoint;
      std::filesystem::create_directories(d);
      for (const char* f : {"cfg.json", "sae.safetensors"}) std::filesystem::copy_file(dir + "/" + f, d + "/" + f);
      return d;
    };
    auto block = Sae::load(place("layers.0"), c10::Device(c10::kCPU));
    QCOMPARE(block->config().hook_name, std::string("blocks.0.hook_resid_pre"));
    QCOMPARE(block->config().writeHook(), std::string("blocks.0.hook_resid_post"));
    expectRefused(place("layers.0.self_attn"), "layers.L.mlp");
  }

  // A Gemma Scope transcoder (params.npz in a gemma-scope-...-transcoders release) reads the
  // normalised MLP input and writes what the MLP adds, as circuit-tracer reads the release.
  void gemmaScopeTranscoderMatchesItsDefinition() {
    c10::InferenceMode guard;
    SafetensorsFile expected(testutil::fixture("dictionaries/gemma_scope_transcoder_expected.safetensors"));
    auto tc = Sae::load(testutil::fixture("dictionaries/gemma-scope-tiny-pt-transcoders/layer_1/width_96/average_l0_9"),
                        c10::Device(c10::kCPU));
    QCOMPARE(tc->config().hook_name, std::string("blocks.1.ln2.hook_normalized"));
    QCOMPARE(tc->config().writeHook(), std::string("blocks.1.hook_mlp_out"));
    QCOMPARE(tc->config().architecture, std::string("jumprelu"));
    QVERIFY(!tc->config().skip);
    const at::Tensor x = testutil::loadExpected(expected, "input");
    const at::Tensor want = testutil::loadExpected(expected, "feature_acts");
    QVERIFY((want > 0).sum().item<std::int64_t>() > 20);
    QVERIFY(testutil::maxAbsDiff(tc->encode(x), want) < 1e-5);
    QVERIFY(testutil::maxAbsDiff(tc->transcode(x), testutil::loadExpected(expected, "output")) < 1e-5);
    QTemporaryDir tmp;
    tc->save(tmp.path().toStdString());
    auto again = Sae::load(tmp.path().toStdString(), c10::Device(c10::kCPU));
    QCOMPARE(again->config().hook_name_out, std::string("blocks.1.hook_mlp_out"));
    QVERIFY(testutil::maxAbsDiff(again->transcode(x), testutil::loadExpected(expected, "output")) < 1e-5);
  }

  // circuit-tracer's transcoder sets: "set.yaml#L" is layer L's transcoder, from a safetensors
  // file in circuit-tracer's layout or a Gemma Scope params.npz, local or in the Hugging Face
  // cache (hf://org/repo/file?revision=...), with the set's hooks; each layer encodes and
  // transcodes as circuit-tracer's definition does. A malformed set is refused by field.
  void circuitTracerSetsMatchTheirDefinition() {
    c10::InferenceMode guard;
    SafetensorsFile expected(testutil::fixture("dictionaries/circuit_tracer_expected.safetensors"));
    const std::string base = testutil::fixture("dictionaries/circuit-tracer");
    for (const auto& [name, layers, in, out] : {std::tuple<std::string, int, std::string, std::string>{"relu", 2, "hook_resid_mid", "mlp.hook_out"},
                                                {"gemmascope", 3, "ln2.hook_normalized", "hook_mlp_out"}}) {
      for (int l = 0; l < layers; ++l) {
        auto tc = Sae::load(base + "/" + name + ".yaml#" + std::to_string(l), c10::Device(c10::kCPU));
        const std::string key = name + "." + std::to_string(l) + ".";
        QCOMPARE(tc->config().hook_name, "blocks." + std::to_string(l) + "." + in);
        QCOMPARE(tc->config().writeHook(), "blocks." + std::to_string(l) + "." + out);
        QCOMPARE(tc->config().skip, name == "relu" && l == 1);
        const at::Tensor x = testutil::loadExpected(expected, key + "input");
        QVERIFY(testutil::maxAbsDiff(tc->encode(x), testutil::loadExpected(expected, key + "feature_acts")) < 1e-5);
        QVERIFY(testutil::maxAbsDiff(tc->transcode(x), testutil::loadExpected(expected, key + "output")) < 1e-5);
      }
    }
    expectRefused(base + "/relu.yaml", "relu.yaml#0");
    expectRefused(base + "/relu.yaml#2", "layers are 0 to 1");
    expectRefused(base + "/relu.yaml#x", "not a layer number");
    QTemporaryDir tmp;
    const std::string t = tmp.path().toStdString();
    // A Hugging Face path: the file comes from the cache, at the revision named.
    const std::string snap = t + "/hub/models--org--tc/snapshots/abc123";
    std::filesystem::create_directories(snap);
    std::filesystem::create_directories(t + "/hub/models--org--tc/refs");
    std::ofstream(t + "/hub/models--org--tc/refs/new-training") << "abc123";
    std::filesystem::copy_file(base + "/relu/layer_1.safetensors", snap + "/layer_1.safetensors");
    auto write = [&](const std::string& name, const std::string& text) {
      std::ofstream(t + "/" + name) << text;
      return t + "/" + name;
    };
    const std::string head = "model_name: m\nfeature_input_hook: hook_resid_mid\nfeature_output_hook: mlp.hook_out\n";
    const std::string hub_set = write("hub.yaml", head + "transcoders:\n  - {id: a, layer: 0, filepath: \"" + base +
                                                      "/relu/layer_0.safetensors\"}\n  - {id: b, layer: 1, filepath: "
                                                      "\"hf://org/tc/layer_1.safetensors?revision=new-training\"}\n");
    const QByteArray old = qgetenv("HF_HUB_CACHE");
    qputenv("HF_HUB_CACHE", QByteArray::fromStdString(t + "/hub"));
    auto from_hub = Sae::load(hub_set + "#1", c10::Device(c10::kCPU));
    QVERIFY(from_hub->config().skip);
    // A folder of the same name where the program runs does not stand in for the cache.
    std::ofstream(t + "/hub/models--org--tc/refs/main") << "abc123";
    std::filesystem::create_directories(t + "/org/tc");
    std::filesystem::copy_file(base + "/relu/layer_0.safetensors", t + "/org/tc/layer_1.safetensors");
    const std::string shadowed = write("shadow.yaml", head + "transcoders:\n  - {id: a, layer: 0, filepath: \"hf://org/tc/layer_1.safetensors\"}\n");
    const QString cwd = QDir::currentPath();
    QDir::setCurrent(QString::fromStdString(t));
    auto not_local = Sae::load(shadowed + "#0", c10::Device(c10::kCPU));
    QDir::setCurrent(cwd);
    QVERIFY(not_local->config().skip);  // the cache's file (the local decoy has no W_skip)
    QVERIFY(testutil::maxAbsDiff(from_hub->encode(testutil::loadExpected(expected, "relu.1.input")),
                                 testutil::loadExpected(expected, "relu.1.feature_acts")) < 1e-5);
    expectRefused(write("nohub.yaml", head + "transcoders:\n  - {id: a, layer: 0, filepath: \"hf://org/other/x.safetensors\"}\n") + "#0",
                  "models--org--other");
    if (old.isEmpty()) qunsetenv("HF_HUB_CACHE");
    else qputenv("HF_HUB_CACHE", old);
    const std::string one = "transcoders:\n  - {id: a, layer: 0, filepath: relu/layer_0.safetensors}\n";
    std::filesystem::create_directories(t + "/relu");
    std::filesystem::copy_file(base + "/relu/layer_0.safetensors", t + "/relu/layer_0.safetensors");
    QVERIFY(Sae::load(write("ok.yaml", head + one) + "#0", c10::Device(c10::kCPU))->config().transcoder());
    expectRefused(write("nohook.yaml", "feature_output_hook: mlp.hook_out\n" + one) + "#0", "feature_input_hook");
    expectRefused(write("badhook.yaml", "feature_input_hook: hook_nowhere\nfeature_output_hook: mlp.hook_out\n" + one) + "#0",
                  "hook_nowhere");
    expectRefused(write("backwards.yaml", "feature_input_hook: mlp.hook_out\nfeature_output_hook: hook_resid_mid\n" + one) + "#0",
                  "does not come after");
    expectRefused(write("gap.yaml", head + "transcoders:\n  - {id: a, layer: 1, filepath: x.safetensors}\n") + "#0",
                  "layer 0 has no transcoder");
    expectRefused(write("twice.yaml", head + one + "  - {id: b, layer: 0, filepath: x.safetensors}\n") + "#0", "listed twice");
    expectRefused(write("notyaml.yaml", "transcoders: [unclosed\n") + "#0", "not valid YAML");
    expectRefused(write("list.yaml", "- 1\n- 2\n") + "#0", "mapping");
    expectRefused(write("missing.yaml", head + "transcoders:\n  - {id: a, layer: 0, filepath: gone.safetensors}\n") + "#0",
                  "gone.safetensors");
    expectRefused(write("pt.yaml", head + "transcoders:\n  - {id: a, layer: 0, filepath: ok.yaml}\n") + "#0",
                  "neither .npz nor .safetensors");
  }
};

QTEST_GUILESS_MAIN(TestTranscoders)
#include "test_transcoders.moc"
