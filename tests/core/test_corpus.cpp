// Corpus builder: cleaning, dictd and percent-separated sources, de-duplication, the
// train/validation split, token shards with document boundaries, and bad sources.
#include <zlib.h>

#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <fstream>

#include "corpus/corpus_builder.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "util/error.h"

using namespace monoscope::core;

class TestCorpus : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  std::string path(const std::string& name) { return dir_.path().toStdString() + "/" + name; }

  // A two-entry dictd dictionary (index offsets in dictd's base64).
  void writeDictd(const std::string& base) {
    const std::string a = "alpha\n   The first letter of the Greek alphabet, used in many words.\n";
    const std::string b = "beta\n   The second letter of the Greek alphabet, also a test version.\n";
    gzFile f = gzopen((base + ".dict.dz").c_str(), "wb");
    gzwrite(f, a.data(), static_cast<unsigned>(a.size()));
    gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
    gzclose(f);
    auto b64 = [](std::size_t v) {
      const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      std::string s;
      do {
        s.insert(s.begin(), alphabet[v & 63]);
        v >>= 6;
      } while (v);
      return s;
    };
    std::ofstream(base + ".index") << "00-database-info\tA\tB\nalpha\tA\t" << b64(a.size()) << "\nbeta\t"
                                   << b64(a.size()) << "\t" << b64(b.size()) << "\n";
  }

  CorpusManifest manifest() {
    writeDictd(path("greek"));
    std::ofstream(path("quotes.txt")) << "A stitch in time saves nine, or so they say.\n%\n"
                                      << "Too many cooks spoil the broth, every single time.\n%\n"
                                      << "A stitch in time saves nine, or so they say.\n%\nshort\n";
    CorpusManifest m;
    m.validation_fraction = 0.3;
    CorpusSource d;
    d.name = "greek";
    d.licence = "test";
    d.kind = "dictd";
    d.path = path("greek");
    CorpusSource q;
    q.name = "quotes";
    q.licence = "test";
    q.kind = "files";
    q.paths = {path("quotes.txt")};
    q.split = "percent";
    m.sources = {d, q};
    return m;
  }

 private Q_SLOTS:
  void cleaningFixesCommonDamage() {
    QCOMPARE(cleanText("  Hello\r\nworld  \n\n\n\n\nend \t "), std::string("Hello\nworld\n\nend"));
    QCOMPARE(cleanText("b\bbo\bol\bld"), std::string("bold"));       // overstrike
    QCOMPARE(cleanText("_\bi_\bt"), std::string("it"));               // underline overstrike
    QCOMPARE(cleanText("caf\xc3\xa9\b\xc3\xa9!"), std::string("caf\xc3\xa9!"));  // overstrike of a 2-byte character
    QCOMPARE(cleanText("caf\xe9"), std::string("caf\xc3\xa9"));      // Latin-1 to UTF-8
    QCOMPARE(cleanText("a\x01" "b\x7f"), std::string("ab\x7f"));     // control characters dropped
    QCOMPARE(cleanText(" \n\t "), std::string());
  }

  void buildsDedupsAndSplits() {
    const auto stats = buildCorpusText(manifest(), path("out"));
    QCOMPARE(stats.sources.size(), std::size_t(2));
    QCOMPARE(stats.sources[0].documents, std::int64_t(2));  // the 00-database entry is skipped
    QCOMPARE(stats.sources[1].documents, std::int64_t(2));  // one duplicate, one fragment dropped
    QCOMPARE(stats.sources[1].duplicates, std::int64_t(1));
    QCOMPARE(stats.train_documents + stats.valid_documents, std::int64_t(4));
    auto train = readCorpusSplit(path("out"), "train");
    QVERIFY(!train.empty());
    // The split is by document: rebuilding gives the same assignment.
    buildCorpusText(manifest(), path("out2"));
    QCOMPARE(readCorpusSplit(path("out2"), "train").size(), train.size());
  }

  void cancellingWritesNothing() {
    const auto stats = buildCorpusText(manifest(), path("cancelled"), [](const Progress& p) { return p.done < 1; });
    QVERIFY(stats.cancelled);
    QVERIFY(!std::filesystem::exists(path("cancelled") + "/train.jsonl"));
  }

  void tokenShardKeepsDocumentBoundaries() {
    buildCorpusText(manifest(), path("shard"));
    const auto tok = Tokenizer::fromDirectory(testutil::fixture("tokenizer_small"));
    const auto n = writeTokenShard(path("shard"), "train", tok);
    SafetensorsFile f(path("shard/train.tokens.safetensors"));
    QCOMPARE(f.tensor("tokens").shape.at(0), n);
    const auto& off = f.tensor("doc_offsets");
    const auto docs = readCorpusSplit(path("shard"), "train");
    QCOMPARE(off.shape.at(0), static_cast<std::int64_t>(docs.size() + 1));
    const auto* o = reinterpret_cast<const std::int64_t*>(off.data);
    const auto* t = reinterpret_cast<const std::int32_t*>(f.tensor("tokens").data);
    for (std::size_t i = 1; i < docs.size() + 1; ++i) QCOMPARE(t[o[i] - 1], tok.endOfTextId());
    QCOMPARE(o[docs.size()], n);
    // Each document's source is recorded, with the domain from stats.json.
    const auto& src = f.tensor("doc_sources");
    QCOMPARE(src.shape.at(0), static_cast<std::int64_t>(docs.size()));
    const auto names = nlohmann::json::parse(f.metadata().at("sources"));
    const auto* s = reinterpret_cast<const std::int32_t*>(src.data);
    for (std::size_t i = 0; i < docs.size(); ++i) QCOMPARE(names.at(static_cast<std::size_t>(s[i])).get<std::string>(), docs[i].source);
    QCOMPARE(nlohmann::json::parse(f.metadata().at("source_domains")).size(), names.size());
    // A sample keeps whole documents (each ends with end-of-text) and their sources.
    const std::string sample = path("shard/sample.tokens.safetensors");
    const auto kept = sampleTokenShard(path("shard/train.tokens.safetensors"), n / 2, sample);
    SafetensorsFile g(sample);
    QCOMPARE(g.tensor("tokens").shape.at(0), kept);
    std::int64_t longest = 0;  // a sample holds at least one document
    for (std::size_t i = 0; i < docs.size(); ++i) longest = std::max(longest, o[i + 1] - o[i]);
    QVERIFY2(kept > 0 && kept <= std::max(n / 2, longest), (std::to_string(kept) + " of " + std::to_string(n)).c_str());
    const auto* go = reinterpret_cast<const std::int64_t*>(g.tensor("doc_offsets").data);
    const auto* gt = reinterpret_cast<const std::int32_t*>(g.tensor("tokens").data);
    const std::int64_t gdocs = g.tensor("doc_offsets").shape.at(0) - 1;
    QCOMPARE(g.tensor("doc_sources").shape.at(0), gdocs);
    for (std::int64_t i = 1; i <= gdocs; ++i) QCOMPARE(gt[go[i] - 1], tok.endOfTextId());
    QCOMPARE(g.metadata().at("sources"), f.metadata().at("sources"));
  }

  // A sample spans the whole shard: sources in the order they were written each get their share
  // of tokens, long documents no likelier than short ones (the old walk ran out of budget before
  // the shard's last sources).
  void sampleSpansEverySource() {
    std::vector<std::int32_t> tokens;
    std::vector<std::int64_t> offsets = {0};
    std::vector<std::int32_t> sources;
    const auto addDocs = [&](std::int32_t source, int docs, int length) {
      for (int d = 0; d < docs; ++d) {
        tokens.insert(tokens.end(), static_cast<std::size_t>(length), source + 1);
        offsets.push_back(static_cast<std::int64_t>(tokens.size()));
        sources.push_back(source);
      }
    };
    addDocs(0, 2000, 20);   // 40,000 tokens of short documents
    addDocs(1, 20, 2000);   // 40,000 tokens in long documents
    addDocs(2, 400, 50);    // 20,000 tokens at the end of the shard
    SafetensorsWriter w;
    w.add("tokens", DType::I32, {static_cast<std::int64_t>(tokens.size())}, tokens.data(), tokens.size() * 4);
    w.add("doc_offsets", DType::I64, {static_cast<std::int64_t>(offsets.size())}, offsets.data(), offsets.size() * 8);
    w.add("doc_sources", DType::I32, {static_cast<std::int64_t>(sources.size())}, sources.data(), sources.size() * 4);
    w.write(path("mixed.tokens.safetensors"));
    const auto kept = sampleTokenShard(path("mixed.tokens.safetensors"), 10'000, path("mixed-sample.tokens.safetensors"));
    QVERIFY2(kept <= 10'000 && kept >= 9'000, std::to_string(kept).c_str());
    SafetensorsFile g(path("mixed-sample.tokens.safetensors"));
    const auto* gt = reinterpret_cast<const std::int32_t*>(g.tensor("tokens").data);
    std::vector<double> share(3, 0.0);
    for (std::int64_t i = 0; i < kept; ++i) share[static_cast<std::size_t>(gt[i] - 1)] += 1.0 / static_cast<double>(kept);
    QVERIFY2(std::abs(share[0] - 0.4) < 0.05 && std::abs(share[1] - 0.4) < 0.21 && std::abs(share[2] - 0.2) < 0.05,
             (std::to_string(share[0]) + " " + std::to_string(share[1]) + " " + std::to_string(share[2])).c_str());
  }

  void badSourcesAreNamed() {
    CorpusManifest m = manifest();
    m.sources[1].paths = {path("missing-*.txt")};
    try {
      buildCorpusText(m, path("bad"));
      QFAIL("no error");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("quotes") != std::string::npos, e.what());
    }
    std::ofstream(path("manifest.json")) << R"({"sources": [{"name": "x", "licence": "y", "kind": "files"}]})";
    QVERIFY_EXCEPTION_THROWN(CorpusManifest::fromFile(path("manifest.json")), Error);
    std::ofstream(path("manifest2.json")) << R"({"sources": []})";
    QVERIFY_EXCEPTION_THROWN(CorpusManifest::fromFile(path("manifest2.json")), Error);
  }
};

QTEST_GUILESS_MAIN(TestCorpus)
#include "test_corpus.moc"
