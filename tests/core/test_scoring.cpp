// Specificity scorers: the concept matcher's rubric distances, and the LLM judge against an
// OpenAI-compatible server on the loopback address (good answers, garbage, timeouts, a huge
// answer, a closed connection), storing scores with the scorer's name and never the key.
#include <httplib.h>

#include <QTemporaryDir>
#include <QElapsedTimer>
#include <QtTest>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/feature_db.h"
#include "api/scoring.h"
#include "interp/concept_scorer.h"
#include "interp/explainer.h"
#include "interp/llm_client.h"
#include "store/schema.h"
#include "store/sqlite.h"
#include "util/error.h"
#include "util/utf8.h"

namespace fs = std::filesystem;
using namespace monoscope::core;

class TestScoring : public QObject {
  Q_OBJECT

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::string last_auth_, last_body_;
  QTemporaryDir tmp_;
  int dbs_ = 0;

  std::string url(const std::string& route) const { return "http://127.0.0.1:" + std::to_string(port_) + "/" + route + "/v1"; }

  static std::string answer(const std::string& content) {
    return nlohmann::json{{"choices", {{{"message", {{"role", "assistant"}, {"content", content}}}}}}}.dump();
  }

  // A tiny database with one feature and three examples.
  std::string makeDb() {
    const std::string p = tmp_.path().toStdString() + "/s" + std::to_string(++dbs_) + ".db";
    Sqlite db(p, Sqlite::Open::Create);
    migrateFeatureSchema(db);
    db.exec("INSERT INTO meta VALUES('d_sae', '1')");
    db.exec("INSERT INTO features(id, count, density, max_act, mean_act, explanation) VALUES(0, 3, 0.1, 2, 1, 'Fires on \"king\"')");
    db.exec("INSERT INTO feature_text(rowid, explanation, top_tokens) VALUES(0, 'Fires on \"king\"', 'king')");
    const char* words[] = {"The", " king", " rode", " out"};
    for (int i = 0; i < 4; ++i) {
      auto st = db.prepare("INSERT INTO vocab(id, bytes) VALUES(?, ?)");
      st.bind(1, i).bindBlob(2, words[i], std::strlen(words[i]));
      st.step();
    }
    for (int e = 0; e < 3; ++e) {
      const std::int32_t toks[] = {0, 1, 2, 3};
      const std::uint16_t acts[] = {0, 65535, 100, 0};
      auto st = db.prepare("INSERT INTO examples(feature, kind, interval, rank, max_act, center, window, position, tokens, acts, scale) "
                           "VALUES(0, 0, 0, ?, 2, 1, 0, 1, ?, ?, ?)");
      st.bind(1, e).bindBlob(2, toks, sizeof toks).bindBlob(3, acts, sizeof acts).bind(4, 2.0 / 65535);
      st.step();
    }
    db.setUserVersion(kFeatureSchemaVersion);
    return p;
  }

  Example example() const {
    Example e;
    e.tokens = {"The", " king", " rode", " out"};
    e.center = 1;
    return e;
  }

 private Q_SLOTS:
  void initTestCase() {
    server_.Post("/good/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      ++requests_;
      last_auth_ = req.get_header_value("Authorization");
      last_body_ = req.body;
      res.set_content(answer("Score: 3"), "application/json");
    });
    server_.Post("/explainer/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      ++requests_;
      last_body_ = req.body;
      res.set_content(answer("\n Explanation: \"the word 'king' in stories\".\nIt fires on king."), "application/json");
    });
    server_.Post("/blank/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(answer(" \n\t\"\" "), "application/json");
    });
    server_.Post("/garbage/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("<html>definitely not json</html>", "text/html");
    });
    server_.Post("/nonsense/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(answer("bananas are yellow"), "application/json");
    });
    server_.Post("/slow/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      res.set_content(answer("2"), "application/json");
    });
    server_.Post("/huge/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(3 << 20, 'x'), "application/json");
    });
    // 100 MB streamed in chunks: the client must stop reading at its cap, not buffer it all.
    server_.Post("/giant/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/json", [](std::size_t offset, httplib::DataSink& sink) {
        static const std::string chunk(1 << 16, 'x');
        if (offset >= (std::size_t{100} << 20)) {
          sink.done();
          return true;
        }
        return sink.write(chunk.data(), chunk.size());
      });
    });
    // The connection closes halfway through the answer.
    server_.Post("/hangup/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
      res.set_content_provider(4096, "application/json", [](std::size_t, std::size_t, httplib::DataSink& sink) {
        sink.write("{\"choices\": [{\"mess", 20);
        return false;  // abort: the server drops the connection
      });
    });
    server_.Post("/error/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content("model not loaded", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    QVERIFY(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  void cleanupTestCase() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  void conceptScorerFollowsTheRubric() {
    const std::vector<std::string> toks = {"In", " the", " beginning", " God", " created", " the", " heaven", " and", " earth"};
    const auto kws = explanationKeywords("Fires on \" God\"");
    QCOMPARE(kws, std::vector<std::string>{"god"});
    QCOMPARE(conceptScore(toks, 3, kws), 3);  // the activating token
    QCOMPARE(conceptScore(toks, 5, kws), 2);  // two tokens away
    QCOMPARE(conceptScore(toks, 8, kws), 1);  // elsewhere in the context
    QCOMPARE(conceptScore(toks, 3, explanationKeywords("ships and the sea")), 0);
    QCOMPARE(explanationKeywords("ships and the sea"), (std::vector<std::string>{"ships", "sea"}));
  }

  // The automatic explanation names the activating tokens, the context before them, the domain
  // and what the feature promotes, each only when its evidence is strong; the parts read back.
  void explanationSaysWhatDistinguishesTheFeature() {
    // A corpus of 10,000 tokens: ids 0-9 common (900 each), id 42 ('(') rare, id 43 ('FOLDOC') rare.
    CorpusProfile corpus;
    corpus.token_counts.assign(50, 0);
    for (int i = 0; i < 10; ++i) corpus.token_counts[static_cast<std::size_t>(i)] = 900;
    corpus.token_counts[42] = 40;
    corpus.token_counts[43] = 20;
    corpus.total = 10000;
    corpus.domains = {"scripture", "computing"};
    corpus.domain_share = {0.8, 0.2};
    auto text = [](std::int32_t id) {
      return id == 42 ? std::string("(") : id == 43 ? std::string(" FOLDOC") : id == 44 ? std::string("1994")
             : id == 45 ? std::string("1995") : " w" + std::to_string(id);
    };
    FeatureEvidence ev;
    ev.mass = {{42, 9.7}, {3, 0.3}};
    ev.before = {{43, 8.0}, {1, 2.0}};
    ev.domain_mass = {1.0, 9.0};
    ev.promotes = {"1994", "1995", " banana"};  // " banana" never follows: left out
    ev.after = {{44, 5.0}, {45, 4.0}, {46, 1.0}};
    const AutoExplanation ex = explainFeature(ev, corpus, text);
    QVERIFY2(ex.text.rfind("Fires on \"(\"", 0) == 0, ex.text.c_str());
    QVERIFY2(ex.text.find(", after \" FOLDOC\"") != std::string::npos, ex.text.c_str());
    QVERIFY2(ex.text.find(", in computing text (90%)") != std::string::npos, ex.text.c_str());
    QVERIFY2(ex.text.find("; promotes \"1994\", \"1995\"") != std::string::npos && ex.text.find("banana") == std::string::npos,
             ex.text.c_str());
    const ExplanationParts parts = explanationParts(ex.text);
    QCOMPARE(parts.tokens, std::vector<std::string>{"("});
    QCOMPARE(parts.context, std::vector<std::string>{"foldoc"});
    QCOMPARE(QString::fromStdString(parts.domain), QString("computing"));
    QCOMPARE(explanationParts("Rare (3 activations): " + ex.text).context, parts.context);
    // Warnings in front, in either order, are skipped; an unterminated one is not a warning.
    const std::string start = "Window start (84% on a window's first two tokens): ";
    QCOMPARE(explanationParts(start + "Rare (3 activations): " + ex.text).context, parts.context);
    QCOMPARE(explanationParts("Rare (3 activations): " + start + ex.text).domain, parts.domain);
    QCOMPARE(explanationWarningsEnd("Rare (3 activations): " + start + ex.text), std::size_t{22} + start.size());
    QCOMPARE(explanationWarningsEnd(ex.text), std::size_t{0});
    QCOMPARE(explanationWarningsEnd("Rare (unterminated"), std::size_t{0});
    // Weak evidence is left out: a common context token, a domain at its corpus share.
    FeatureEvidence weak = ev;
    weak.before = {{1, 5.0}, {2, 5.0}};
    weak.domain_mass = {8.0, 2.0};
    weak.promotes.clear();
    const std::string plain = explainFeature(weak, corpus, text).text;
    QVERIFY2(plain.find("after") == std::string::npos && plain.find(", in ") == std::string::npos &&
                 plain.find("promotes") == std::string::npos, plain.c_str());
    // Whitespace tokens are written so a reader can see them.
    const std::string ws = explainByTokenLift({{7, 1.0}}, corpus.token_counts, corpus.total, [](std::int32_t) {
                             return std::string("\n        ");
                           }).text;
    QVERIFY2(ws.rfind("Fires on \"\\n<8 spaces>\"", 0) == 0, ws.c_str());
    // A person's words: every keyword counts as a token.
    QCOMPARE(explanationParts("ships and the sea").tokens, (std::vector<std::string>{"ships", "sea"}));
  }

  // A token holding the first byte of ' ü' is named by the character it starts, completed by
  // the token that most often follows it in the feature's examples; a whole token as itself.
  void partialTokensAreNamedByTheirCharacter() {
    const std::vector<std::string> bytes = {" \xC3", "\xBC", "\xA4", "x", " a"};
    auto bytes_of = [&](std::int32_t id) { return id >= 0 && id < 5 ? bytes[static_cast<std::size_t>(id)] : std::string(); };
    QCOMPARE(tokenTextBefore(bytes[0], {{1, 5.0}, {2, 2.0}, {3, 9.0}}, bytes_of), std::string(" \xC3\xBC"));  // 'x' completes nothing
    QCOMPARE(tokenTextBefore(bytes[0], {{1, 2.0}, {2, 5.0}}, bytes_of), std::string(" \xC3\xA4"));
    QCOMPARE(tokenTextBefore(bytes[0], {{1, 3.0}, {2, 3.0}}, bytes_of), std::string(" \xC3\xBC"));            // a tie: the smaller id
    QCOMPARE(tokenTextBefore(bytes[0], {{3, 9.0}}, bytes_of), std::string(" \xEF\xBF\xBD"));                 // none completes it
    QCOMPARE(tokenTextBefore(bytes[4], {{1, 9.0}}, bytes_of), std::string(" a"));
    // An activation on the later byte (shown empty) is scored as the piece that shows ' ü'.
    LoweredContext ctx;
    ctx.assign(displayPieces({"Nachdenken", " \xC3", "\xBC", "ber"}));
    QCOMPARE(conceptScore(ctx, 2, {" \xC3\xBC"}), 3);
    QCOMPARE(conceptScore(ctx, 1, {" \xC3\xBC"}), 3);
    QCOMPARE(shownPiece(displayPieces({"a", "\xE2", "\x82", "\xAC"}), 3), 1);
    QCOMPARE(shownPiece({"", "x"}, 0), 0);
  }

  // Scores by parts: context before the activation gives 2, the feature's domain at least 1.
  void conceptScorerUsesContextAndDomain() {
    const ExplanationParts parts = explanationParts("Fires on \"(\" (90%, lift 200x), after \" FOLDOC\" (80%, lift 300x), in computing text (90%)");
    LoweredContext ctx;
    ctx.assign({"See", " FOLDOC", " entry", " (", "1994", ")"});
    QCOMPARE(conceptScore(ctx, 3, parts, "computing"), 3);  // the activating token itself
    ctx.assign({"See", " FOLDOC", " entry", " [", "1994", "]"});
    QCOMPARE(conceptScore(ctx, 3, parts, ""), 2);           // its context just before
    ctx.assign({"A", " list", " of", " [", "1994", "]"});
    QCOMPARE(conceptScore(ctx, 3, parts, "computing"), 1);  // only the domain
    QCOMPARE(conceptScore(ctx, 3, parts, "scripture"), 0);  // nothing
  }

  // A feature of newlines and indentation: its explanation quotes whitespace tokens, which the
  // scorer reads back and matches against whole whitespace tokens only.
  void conceptScorerMatchesWhitespaceTokens() {
    CorpusProfile corpus;
    corpus.token_counts.assign(10, 100);
    corpus.total = 1000;
    const std::vector<std::string> vocab = {"\n  ", "\n\n  ", "\n        ", "a\\nb"};
    auto text = [&](std::int32_t id) { return vocab[static_cast<std::size_t>(id)]; };
    const std::string ex = explainByTokenLift({{0, 5.0}, {1, 3.0}, {2, 2.0}}, corpus.token_counts, corpus.total, text).text;
    QVERIFY2(ex.rfind("Fires on \"\\n  \", \"\\n\\n  \", \"\\n<8 spaces>\"", 0) == 0, ex.c_str());
    const ExplanationParts parts = explanationParts(ex);
    QCOMPARE(parts.tokens, (std::vector<std::string>{"\n  ", "\n\n  ", "\n        "}));
    LoweredContext ctx;
    ctx.assign({"By", "ron", ".", "\n  ", " [", "2", "]"});
    QCOMPARE(conceptScore(ctx, 3, parts, ""), 3);                     // the indented line break itself
    QCOMPARE(conceptScore(ctx, 5, parts, ""), 2);                     // two tokens after it
    ctx.assign({"A", " line", " of", "  ", " text", ".", "\n  "});
    QCOMPARE(conceptScore(ctx, 1, parts, ""), 1);                     // elsewhere in the context
    ctx.assign({"A", " line", " of", " words", " and", " spaces", "\n"});
    QCOMPARE(conceptScore(ctx, 3, parts, ""), 0);  // spaces inside text and a bare newline are not the tokens
    // A newline keyword covers the tokens with a newline; a keyword of spaces only its own token.
    const ExplanationParts newline = explanationParts("Fires on \"\\n\" (90%, lift 20x)");
    QCOMPARE(newline.tokens, std::vector<std::string>{"\n"});
    ctx.assign({"x", "\n\n  ", "y"});
    QCOMPARE(conceptScore(ctx, 1, newline, ""), 3);
    const ExplanationParts spaces = explanationParts("Fires on \"  \" (90%, lift 20x)");
    QCOMPARE(spaces.tokens, std::vector<std::string>{"  "});
    QCOMPARE(conceptScore(ctx, 1, spaces, ""), 0);
    ctx.assign({"x", "  ", "y"});
    QCOMPARE(conceptScore(ctx, 1, spaces, ""), 3);
    // A literal backslash is written \\ and reads back as one, apart from a newline.
    const std::string code = explainByTokenLift({{3, 1.0}}, corpus.token_counts, corpus.total, text).text;
    QVERIFY2(code.rfind("Fires on \"a\\\\nb\"", 0) == 0, code.c_str());
    QCOMPARE(explanationParts(code).tokens, std::vector<std::string>{"a\\nb"});
    QCOMPARE(keywordFromQuoted("\\t<4 spaces>"), std::string("\t    "));
    QCOMPARE(keywordFromQuoted(" <3 spaces> X "), std::string("<3 spaces> x"));  // not the written form
    QCOMPARE(keywordFromQuoted("<99999 spaces>"), std::string("<99999 spaces>"));
  }

  void parsesScoresFromAnswers() {
    QCOMPARE(parseScore("Score: 2"), 2);
    QCOMPARE(parseScore("3"), 3);
    QCOMPARE(parseScore("I would say 1."), 1);
    QCOMPARE(parseScore("7"), -1);
    QCOMPARE(parseScore("no idea"), -1);
  }

  void goodAnswersAreStoredWithTheScorerName() {
    LlmEndpoint ep{url("good"), "judge-model", "sk-secret-key-123", 5.0};
    QCOMPARE(llmScore(ep, "Fires on \"king\"", example()), 3);
    QCOMPARE(last_auth_, std::string("Bearer sk-secret-key-123"));
    QVERIFY(last_body_.find("<< king>>") != std::string::npos);
    QVERIFY(last_body_.find("judge-model") != std::string::npos);
    const std::string db = makeDb();
    ScoreOptions o;
    o.scorer = "llm";
    o.llm = ep;
    ScoreSummary s;
    QCOMPARE(scoreFeatures(db, o, {}, &s), JobStatus::Done);
    QCOMPARE(s.examples, std::int64_t{3});
    QCOMPARE(s.scorer, std::string("llm:judge-model"));
    auto fdb = FeatureDb::open(db);
    const auto page = fdb->page(0);
    QCOMPARE(page.top_examples.size(), std::size_t{3});
    QCOMPARE(page.top_examples[0].scores.front().scorer, std::string("llm:judge-model"));
    QCOMPARE(page.top_examples[0].scores.front().score, 3);
    // The key is nowhere in the database.
    std::ifstream in(db, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    QVERIFY(bytes.find("sk-secret-key-123") == std::string::npos);
  }

  void badEndpointsGiveClearErrors() {
    auto expect = [&](const std::string& route, const char* needle, double timeout = 5.0) {
      LlmEndpoint ep{url(route), "m", "sk-secret-key-123", timeout};
      try {
        llmScore(ep, "x", example());
        QFAIL(("no error from " + route).c_str());
      } catch (const Error& e) {
        const std::string msg = e.what();
        QVERIFY2(msg.find(needle) != std::string::npos, msg.c_str());
        QVERIFY2(msg.find("sk-secret") == std::string::npos, "the key leaked into an error");
        QVERIFY2(msg.find('\n') == std::string::npos, msg.c_str());
      }
    };
    expect("garbage", "not JSON");
    expect("nonsense", "without a 0-3 score");
    expect("slow", "did not answer within 1 s", 1.0);
    expect("huge", "sent more than");
    QElapsedTimer giant;
    giant.start();
    expect("giant", "sent more than", 30.0);
    QVERIFY2(giant.elapsed() < 10000, qPrintable(QString::number(giant.elapsed())));
    expect("hangup", "", 5.0);
    expect("error", "HTTP 500");
    LlmEndpoint closed{"http://127.0.0.1:1/v1", "m", "", 2.0};
    QVERIFY_EXCEPTION_THROWN(llmScore(closed, "x", example()), Error);
    // A job against a nonsense endpoint stops with an error and stores nothing.
    const std::string db = makeDb();
    ScoreOptions o;
    o.scorer = "llm";
    o.llm = {url("nonsense"), "m", "", 5.0};
    QVERIFY_EXCEPTION_THROWN(scoreFeatures(db, o, {}, nullptr), Error);
    QVERIFY(FeatureDb::open(db)->page(0).top_examples[0].scores.empty());
  }

  void cleansExplanations() {
    QCOMPARE(cleanExplanation("Explanation: \"the word 'king'\"."), std::string("the word 'king'"));
    QCOMPARE(cleanExplanation("\n\n**Royal titles** \nmore"), std::string("Royal titles"));
    QCOMPARE(cleanExplanation("Feature: dates in FOLDOC entries"), std::string("dates in FOLDOC entries"));
    QCOMPARE(cleanExplanation("  \n \"\" "), std::string());
    QCOMPARE(cleanExplanation("ends with an ellipsis..."), std::string("ends with an ellipsis..."));
    const std::string long_answer = cleanExplanation(std::string(200, 'a') + " " + std::string(400, 'b'));
    QVERIFY(long_answer.size() <= 303);
    QVERIFY(findInvalidUtf8(cleanExplanation("caf\xc3 \x01 bad bytes")) == std::string::npos);
  }

  void explainJobStoresVersionsAndResumes() {
    const std::string db = makeDb();
    ExplainOptions o;
    o.llm = {url("explainer"), "explainer-model", "", 5.0};
    ExplainSummary s;
    const int before = requests_;
    QCOMPARE(explainFeatures(db, o, {}, &s), JobStatus::Done);
    QCOMPARE(s.explained, std::int64_t{1});
    QCOMPARE(s.author, std::string("llm:explainer-model/explain-v1"));
    QCOMPARE(requests_ - before, 1);
    // The request shows the examples with the activating token marked and the instructions.
    const auto body = nlohmann::json::parse(last_body_);
    QVERIFY(body["messages"][0]["content"].get<std::string>().find("<<like this>>") != std::string::npos);
    const std::string user = body["messages"][1]["content"].get<std::string>();
    QVERIFY2(user.find("(1.00) The<< king>> rode out") != std::string::npos, user.c_str());
    auto fdb = FeatureDb::open(db);
    QCOMPARE(fdb->summary(0).explanation, std::string("the word 'king' in stories"));
    const auto history = fdb->explanationHistory(0);
    QCOMPARE(history.back().author, s.author);
    // Searchable at once.
    QCOMPARE(fdb->searchText("stories", 5).size(), std::size_t{1});
    // A second run skips what this explainer has done; --redo writes a new version.
    QCOMPARE(explainFeatures(db, o, {}, &s), JobStatus::Done);
    QCOMPARE(s.skipped, std::int64_t{1});
    QCOMPARE(requests_ - before, 1);
    o.redo = true;
    QCOMPARE(explainFeatures(db, o, {}, &s), JobStatus::Done);
    QCOMPARE(s.explained, std::int64_t{1});
    QCOMPARE(FeatureDb::open(db)->explanationHistory(0).size(), history.size() + 1);
    // Cancelled before the first request: nothing is asked or stored.
    const std::string db2 = makeDb();
    o.redo = false;
    QCOMPARE(explainFeatures(db2, o, [](const Progress&) { return false; }, &s), JobStatus::Cancelled);
    QCOMPARE(FeatureDb::open(db2)->summary(0).explanation, std::string("Fires on \"king\""));
  }

  void explainJobRefusesBadAnswers() {
    const std::string db = makeDb();
    ExplainOptions o;
    o.llm = {url("blank"), "m", "", 5.0};
    ExplainSummary s;
    QCOMPARE(explainFeatures(db, o, {}, &s), JobStatus::Done);
    QCOMPARE(s.failed, std::int64_t{1});
    QCOMPARE(FeatureDb::open(db)->summary(0).explanation, std::string("Fires on \"king\""));
    o.llm = {url("error"), "m", "", 5.0};
    try {
      explainFeatures(db, o, {}, &s);
      QFAIL("no error");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("HTTP 500") != std::string::npos, e.what());
    }
    o.llm.model.clear();
    QVERIFY_EXCEPTION_THROWN(explainFeatures(db, o, {}, &s), Error);
  }

  void conceptJobScoresEveryExample() {
    const std::string db = makeDb();
    ScoreOptions o;
    ScoreSummary s;
    QCOMPARE(scoreFeatures(db, o, {}, &s), JobStatus::Done);
    QCOMPARE(s.histogram[3], std::int64_t{3});
    QCOMPARE(FeatureDb::open(db)->page(0).top_examples[1].scores.front().scorer, std::string("concept"));
  }
};

QTEST_GUILESS_MAIN(TestScoring)
#include "test_scoring.moc"
