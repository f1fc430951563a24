// Tokenizer: exact GPT-2 tokenisation (ids from Hugging Face `tokenizers`), byte offsets,
// both file layouts, save/reload, bad input.
#include <QTemporaryDir>
#include <QtTest>
#include <random>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "util/error.h"

using namespace monoscope::core;

class TestTokenizer : public QObject {
  Q_OBJECT

  void checkAgainst(const Tokenizer& tok, const std::string& expected_file) {
    const auto cases = readJsonFile(testutil::fixture(expected_file));
    QVERIFY(cases.size() >= 20);
    for (const auto& c : cases) {
      const std::string text = c["text"].get<std::string>();
      const auto expected = c["ids"].get<std::vector<std::int32_t>>();
      const auto tokens = tok.encode(text);
      std::vector<std::int32_t> ids;
      for (const auto& t : tokens) ids.push_back(t.id);
      QVERIFY2(ids == expected, ("ids differ on: " + text).c_str());
      // Offsets tile the input and each span holds exactly the token's bytes.
      std::size_t pos = 0;
      for (const auto& t : tokens) {
        QCOMPARE(t.start, pos);
        QCOMPARE(text.substr(t.start, t.end - t.start), tok.tokenBytes(t.id));
        pos = t.end;
      }
      QCOMPARE(pos, text.size());
      QCOMPARE(tok.decode(ids), text);
    }
  }

 private Q_SLOTS:
  // Long pieces (minified code, base64, runs of one character) merge through a heap; it gives
  // the ids of the scan-based merge, and 2 MB of one letter, of digits or of spaces tokenise
  // (they once took minutes) and decode back.
  void longPiecesMergeLikeShortOnes() {
    const auto tok = Tokenizer::fromVocabMerges(std::string(MONOSCOPE_GPT2_VOCAB) + "/vocab.json",
                                                std::string(MONOSCOPE_GPT2_VOCAB) + "/merges.txt");
    QVERIFY(tok.mergeWithHeap("").empty());  // found by fuzzing
    QVERIFY(tok.mergeByScan("").empty());
    std::mt19937 rng(4);
    const std::string alphabets[] = {"ab", "abcdefghijklmnopqrstuvwxyz", "0123456789", "aA0+/=", "\xc3\xa9" "e"};
    for (const auto& alpha : alphabets) {
      for (int len : {1, 2, 5, 49, 200, 1000}) {
        std::string w;
        for (int i = 0; i < len; ++i) w += alpha[rng() % alpha.size()];
        QCOMPARE(tok.mergeWithHeap(w), tok.mergeByScan(w));
      }
    }
    for (const std::string unit : {"a", "7", " ", "ab", "\xe2\x80\x94"}) {
      std::string big;
      while (big.size() < (2u << 20)) big += unit;
      const auto ids = tok.encodeIds(big);
      QCOMPARE(tok.decode(ids), big);
    }
  }

  void gpt2VocabularyMatchesHuggingFace() {
    const std::string dir = MONOSCOPE_GPT2_VOCAB;
    if (!std::ifstream(dir + "/vocab.json")) QSKIP("GPT-2 vocabulary not available");
    const auto tok = Tokenizer::fromDirectory(dir);
    QCOMPARE(tok.vocabSize(), 50257);
    QCOMPARE(tok.endOfTextId(), 50256);
    checkAgainst(tok, "tokenizer_gpt2_expected.json");
  }

  void tokenizerJsonMatchesHuggingFace() {
    const auto tok = Tokenizer::fromDirectory(testutil::fixture("tokenizer_small"));
    checkAgainst(tok, "tokenizer_small_expected.json");
  }

  void saveAndReloadKeepsTokenisation() {
    const auto tok = Tokenizer::fromDirectory(testutil::fixture("tokenizer_small"));
    QTemporaryDir dir;
    tok.save(dir.path().toStdString());
    const auto from_json = Tokenizer::fromTokenizerJson(dir.path().toStdString() + "/tokenizer.json");
    const auto from_files = Tokenizer::fromVocabMerges(dir.path().toStdString() + "/vocab.json",
                                                       dir.path().toStdString() + "/merges.txt");
    const std::string text = "def f(x):\n    return x's value  ünï 🙂<|endoftext|>";
    QCOMPARE(from_json.encodeIds(text), tok.encodeIds(text));
    QCOMPARE(from_files.encodeIds(text), tok.encodeIds(text));
  }

  void splitCharacterStillDecodes() {
    const auto tok = Tokenizer::fromDirectory(testutil::fixture("tokenizer_small"));
    const std::string text = "🙂";  // 4 bytes, not merged in a small vocabulary
    const auto tokens = tok.encode(text);
    QVERIFY(tokens.size() > 1);
    QCOMPARE(tok.decode(tok.encodeIds(text)), text);
  }

  void invalidUtf8IsRejected() {
    const auto tok = Tokenizer::fromDirectory(testutil::fixture("tokenizer_small"));
    try {
      tok.encode(std::string("ok \xff\xfe bad"));
      QFAIL("no error");
    } catch (const Error& e) {
      QVERIFY(std::string(e.what()).find("UTF-8") != std::string::npos);
      QVERIFY(std::string(e.what()).find("offset 3") != std::string::npos);
    }
  }

  void malformedTokenizerJsonNamesFile() {
    QTemporaryDir dir;
    const std::string p = dir.path().toStdString() + "/tokenizer.json";
    std::ofstream(p) << R"({"model": {"type": "Unigram", "vocab": []}})";
    try {
      Tokenizer::fromTokenizerJson(p);
      QFAIL("no error");
    } catch (const Error& e) {
      QVERIFY(std::string(e.what()).find(p) != std::string::npos);
      QVERIFY(std::string(e.what()).find("Unigram") != std::string::npos);
    }
  }

  void mismatchedMergesAreRejected() {
    QTemporaryDir dir;
    const std::string d = dir.path().toStdString();
    nlohmann::json vocab;
    const auto& map = Tokenizer::byteToUnicode();
    for (int b = 0; b < 256; ++b) {
      std::string s;
      const std::uint32_t cp = map[b];
      if (cp < 0x80) s.push_back(static_cast<char>(cp));
      else { s.push_back(static_cast<char>(0xC0 | (cp >> 6))); s.push_back(static_cast<char>(0x80 | (cp & 0x3F))); }
      vocab[s] = b;
    }
    std::ofstream(d + "/vocab.json") << vocab.dump();
    std::ofstream(d + "/merges.txt") << "#version: 0.2\nh e\n";
    try {
      Tokenizer::fromDirectory(d);
      QFAIL("no error");
    } catch (const Error& e) {
      QVERIFY(std::string(e.what()).find("merges.txt' line 2") != std::string::npos);
    }
  }
};

QTEST_GUILESS_MAIN(TestTokenizer)
#include "test_tokenizer.moc"
