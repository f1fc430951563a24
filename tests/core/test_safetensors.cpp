// safetensors: round trips, dtype conversion, and every malformed-header path.
#include <QTemporaryDir>
#include <QtTest>
#include <cstring>
#include <fstream>

#include "io/safetensors.h"
#include "io/weight_store.h"
#include "test_util.h"
#include "util/error.h"

using namespace monoscope::core;

class TestSafetensors : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;

  std::string path(const char* name) { return (dir_.path() + "/" + name).toStdString(); }

  void writeRaw(const std::string& p, std::uint64_t header_len, const std::string& header, const std::string& data) {
    std::ofstream out(p, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((header_len >> (8 * i)) & 0xFF));
    out << header << data;
  }

  // Expects opening `p` to fail with a message containing `needle`.
  void expectError(const std::string& p, const char* needle) {
    try {
      SafetensorsFile f(p);
      QFAIL(qPrintable(QString("no error for ") + needle));
    } catch (const Error& e) {
      const std::string msg = e.what();
      QVERIFY2(msg.find(needle) != std::string::npos, msg.c_str());
      QVERIFY2(msg.find(p) != std::string::npos, "the error must name the file");
    }
  }

 private Q_SLOTS:
  void roundTrip() {
    SafetensorsWriter w;
    w.addF32("a", {2, 3}, {1, 2, 3, 4, 5, 6});
    std::int64_t ints[2] = {7, -8};
    w.add("b", DType::I64, {2}, ints, sizeof(ints));
    w.setMetadata("format", "pt");
    w.write(path("rt.safetensors"));
    SafetensorsFile f(path("rt.safetensors"));
    QCOMPARE(f.names().size(), std::size_t(2));
    QCOMPARE(f.tensor("a").shape, (std::vector<std::int64_t>{2, 3}));
    QCOMPARE(f.toFloat("a")[5], 6.0f);
    QCOMPARE(f.metadata().at("format"), std::string("pt"));
    std::int64_t back[2];
    std::memcpy(back, f.tensor("b").data, sizeof(back));
    QCOMPARE(back[1], std::int64_t(-8));
    // An empty tensor converts to an empty vector (found by fuzzing: no copy from a null pointer).
    SafetensorsWriter e;
    e.addF32("none", {0, 4}, {});
    e.write(path("empty.safetensors"));
    QVERIFY(SafetensorsFile(path("empty.safetensors")).toFloat("none").empty());
  }

  void halfPrecisionConvertsOnLoad() {
    SafetensorsFile f(testutil::fixture("dtypes.safetensors"));
    const auto ref = f.toFloat("x_f32");
    const auto h = f.toFloat("x_f16");
    const auto b = f.toFloat("x_bf16");
    const auto d = f.toFloat("x_f64");
    for (std::size_t i = 0; i < ref.size(); ++i) {
      QVERIFY(std::fabs(ref[i] - h[i]) <= 1e-3f * std::max(1.0f, std::fabs(ref[i])));
      QVERIFY(std::fabs(ref[i] - b[i]) <= 1e-2f * std::max(1.0f, std::fabs(ref[i])));
      QCOMPARE(d[i], ref[i]);
    }
    QCOMPARE(halfToFloat(0x3C00), 1.0f);
    QCOMPARE(halfToFloat(0xC000), -2.0f);
    QCOMPARE(halfToFloat(0x0001), 5.9604645e-08f);  // smallest subnormal
    QVERIFY(std::isinf(halfToFloat(0x7C00)));
  }

  void shardedIndex() {
    WeightStore s(testutil::fixture("models/llama-tiny"));
    QVERIFY(s.has("model.embed_tokens.weight"));
    QVERIFY(s.fileOf("lm_head.weight").find("model-0000") != std::string::npos);
  }

  void truncatedLength() {
    std::ofstream(path("short.safetensors"), std::ios::binary) << "abc";
    expectError(path("short.safetensors"), "shorter than");
  }
  void oversizedHeader() {
    writeRaw(path("big.safetensors"), 1ull << 40, "{}", "");
    expectError(path("big.safetensors"), "limit");
  }
  void headerPastEnd() {
    writeRaw(path("past.safetensors"), 500, "{}", "");
    expectError(path("past.safetensors"), "truncated");
  }
  void malformedJson() {
    const std::string h = "{\"a\": [";
    writeRaw(path("json.safetensors"), h.size(), h, "");
    expectError(path("json.safetensors"), "malformed JSON");
  }
  void unknownDtype() {
    const std::string h = R"({"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})";
    writeRaw(path("dtype.safetensors"), h.size(), h, "x");
    expectError(path("dtype.safetensors"), "unknown dtype");
  }
  void offsetsPastEnd() {
    const std::string h = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
    writeRaw(path("off.safetensors"), h.size(), h, "12345678");
    expectError(path("off.safetensors"), "run past");
  }
  void shapeMismatch() {
    const std::string h = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
    writeRaw(path("shape.safetensors"), h.size(), h, "12345678");
    expectError(path("shape.safetensors"), "do not match shape");
  }
  void negativeDimension() {
    const std::string h = R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})";
    writeRaw(path("neg.safetensors"), h.size(), h, "12345678");
    expectError(path("neg.safetensors"), "negative");
  }
  void overlappingTensors() {
    const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
    writeRaw(path("ovl.safetensors"), h.size(), h, "12345678");
    expectError(path("ovl.safetensors"), "overlap");
  }
  void missingTensorNamesFile() {
    SafetensorsWriter w;
    w.addF32("a", {1}, {1});
    w.write(path("m.safetensors"));
    SafetensorsFile f(path("m.safetensors"));
    try {
      f.tensor("W_enc");
      QFAIL("no error");
    } catch (const Error& e) {
      QVERIFY(std::string(e.what()).find("W_enc") != std::string::npos);
    }
  }
};

QTEST_GUILESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"
