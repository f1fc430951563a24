// The command-line contract: outputs of each command, and a one-line error for bad input.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>

#include "io/safetensors.h"
#include "test_util.h"

using namespace monoscope::core;

class TestCli : public QObject {
  Q_OBJECT

  QTemporaryDir tmp_;
  struct Result {
    int code;
    QByteArray out, err;
  };

  Result run(const QStringList& args) {
    QProcess p;
    p.start(MONOSCOPE_CLI, args);
    p.waitForFinished(120000);
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(),
            p.readAllStandardError()};
  }
  QString fx(const char* rel) { return QString::fromStdString(testutil::fixture(rel)); }
  QString tmp(const char* name) { return tmp_.path() + "/" + name; }

  // The command fails cleanly: exit 1, one line on stderr containing `needle`.
  void expectError(const QStringList& args, const char* needle) {
    const Result r = run(args);
    QVERIFY2(r.code == 1, qPrintable("exit code " + QString::number(r.code) + " for " + args.join(' ')));
    const QString err = QString::fromUtf8(r.err).trimmed();
    QVERIFY2(!err.contains('\n'), qPrintable("multi-line error: " + err));
    QVERIFY2(err.contains(needle), qPrintable("'" + err + "' lacks '" + needle + "'"));
  }

  // A model folder = the tiny GPT-2 fixture plus the small tokenizer.
  QString modelWithTokenizer() {
    const QString d = tmp("model");
    QDir().mkpath(d);
    for (const char* f : {"config.json", "model.safetensors"})
      QFile::copy(fx("models/gpt2-tiny/") + f, d + "/" + f);
    QFile::copy(fx("tokenizer_small/tokenizer.json"), d + "/tokenizer.json");
    return d;
  }

 private Q_SLOTS:
  // hub-list: the models and dictionaries of a Hugging Face cache, with the spec --model/--sae
  // take; a repository without refs/main uses its only snapshot, a damaged one is skipped.
  void hubListFindsModelsAndDictionaries() {
    namespace fs = std::filesystem;
    const std::string hub = tmp("hub").toStdString();
    const fs::path model = fs::path(hub) / "models--org--tiny" / "snapshots" / "abc";
    fs::create_directories(model);
    fs::create_directories(fs::path(hub) / "models--org--tiny" / "refs");
    std::ofstream(fs::path(hub) / "models--org--tiny" / "refs" / "main") << "abc\n";
    for (const char* f : {"config.json", "model.safetensors"})
      fs::copy_file(fx("models/gpt2-tiny/").toStdString() + f, model / f);
    const fs::path saes = fs::path(hub) / "models--google--gemma-scope-2-270m-pt" / "snapshots" / "def" / "resid_post";
    fs::create_directories(saes);
    fs::copy(fx("dictionaries/gemma-scope-2-270m-pt/resid_post/layer_1_width_96_l0_small").toStdString(),
             saes / "layer_1_width_96_l0_small");
    fs::create_directories(fs::path(hub) / "models--broken--repo" / "refs");
    qputenv("HF_HUB_CACHE", QByteArray::fromStdString(hub));
    const Result r = run({"hub-list"});
    qunsetenv("HF_HUB_CACHE");
    QCOMPARE(r.code, 0);
    const auto arr = QJsonDocument::fromJson(r.out).array();
    QCOMPARE(arr.size(), 2);
    QCOMPARE(arr[0].toObject()["spec"].toString(), QString("google/gemma-scope-2-270m-pt/resid_post/layer_1_width_96_l0_small"));
    QCOMPARE(arr[0].toObject()["kind"].toString(), QString("dictionary"));
    QCOMPARE(arr[0].toObject()["format"].toString(), QString("Gemma Scope 2"));
    QCOMPARE(arr[1].toObject()["spec"].toString(), QString("org/tiny"));
    QCOMPARE(arr[1].toObject()["kind"].toString(), QString("model"));
  }

  void tokenizePrintsIdsAndByteOffsets() {
    const Result r = run({"tokenize", "--tokenizer", fx("tokenizer_small"), "--text", "héllo world"});
    QCOMPARE(r.code, 0);
    const auto arr = QJsonDocument::fromJson(r.out).array();
    QVERIFY(arr.size() >= 2);
    QCOMPARE(arr.first().toObject().value("start").toInt(), 0);
    QCOMPARE(arr.last().toObject().value("end").toInt(), 12);  // bytes, not characters
    QVERIFY(r.out.startsWith("[{\"id\":"));
  }

  void logitsWritesLogitsAndHooks() {
    const Result r = run({"logits", "--model", fx("models/gpt2-tiny"), "--ids", "1,2,3,4", "--out",
                          tmp("l.safetensors"), "--hook", "blocks.1.hook_resid_post", "--hook", "hook_embed",
                          "--threads", "1", "--device", "cpu"});
    QVERIFY2(r.code == 0, r.err.constData());
    SafetensorsFile f(tmp("l.safetensors").toStdString());
    QCOMPARE(f.tensor("logits").shape, (std::vector<std::int64_t>{4, 512}));
    QCOMPARE(f.tensor("blocks.1.hook_resid_post").shape, (std::vector<std::int64_t>{4, 64}));
    QCOMPARE(f.tensor("hook_embed").dtype, DType::F32);
  }

  void encodeWritesFeatureActs() {
    const QString model = modelWithTokenizer();
    const Result r = run({"encode", "--model", model, "--sae", fx("sae/topk"), "--text", "one two three",
                          "--out", tmp("e.safetensors")});
    QVERIFY2(r.code == 0, r.err.constData());
    SafetensorsFile f(tmp("e.safetensors").toStdString());
    QCOMPARE(f.tensor("feature_acts").shape.at(1), std::int64_t(128));
    const auto acts = f.toFloat("feature_acts");
    int active = 0;
    for (std::size_t i = 0; i < 128; ++i) active += acts[i] > 0;
    QVERIFY(active <= 8);
  }

  void generatePrintsDefaultAndSteered() {
    const QString model = modelWithTokenizer();
    const Result plain = run({"generate", "--model", model, "--prompt", "hello", "--max-tokens", "5", "--seed", "1"});
    QVERIFY2(plain.code == 0, plain.err.constData());
    const auto p = QJsonDocument::fromJson(plain.out).object();
    QVERIFY(p.contains("default") && !p.contains("steered"));
    const Result r = run({"generate", "--model", model, "--prompt", "hello", "--max-tokens", "6", "--seed", "1",
                          "--temperature", "0.7", "--top-p", "0.9", "--sae", fx("sae/standard"), "--clamp",
                          "3=80", "--clamp", "9=-20", "--mode", "clamp", "--positions", "all"});
    QVERIFY2(r.code == 0, r.err.constData());
    const auto o = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(o["default"].toObject()["ids"].toArray().size(), 6);
    QVERIFY(o["default"].toObject()["ids"] != o["steered"].toObject()["ids"]);
    QVERIFY(o["steered"].toObject().contains("text"));
  }

  void trainSaeFromActivationsResumes() {
    std::vector<float> acts(2048 * 16);
    for (std::size_t i = 0; i < acts.size(); ++i) acts[i] = static_cast<float>((i * 7919 % 101) / 50.0 - 1.0) * ((i / 16) % 3 == 0 ? 1.f : 0.f);
    SafetensorsWriter w;
    w.addF32("activations", {2048, 16}, acts);
    w.write(tmp("acts.safetensors").toStdString());
    const QStringList args = {"train-sae", "--activations", tmp("acts.safetensors"), "--arch", "topk", "--k", "4",
                              "--d-sae", "32", "--tokens", "40960", "--batch-size", "512", "--seed", "3", "--out",
                              tmp("trained")};
    const Result r = run(args);
    QVERIFY2(r.code == 0, r.err.constData());
    const auto o = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(o["steps"].toInt(), 80);
    QVERIFY(o["l0"].toDouble() <= 4.0);
    QVERIFY(QFile::exists(tmp("trained") + "/cfg.json") && QFile::exists(tmp("trained") + "/sae_weights.safetensors"));
    const Result again = run(args);  // same --out: resumes at the end, nothing more to do
    QVERIFY(again.err.contains("resuming from step 80"));
    QCOMPARE(QJsonDocument::fromJson(again.out).object()["steps"].toInt(), 80);
    expectError({"train-sae", "--activations", tmp("acts.safetensors"), "--arch", "topk", "--k", "4", "--d-sae", "32",
                 "--tokens", "4096", "--batch-size", "4096", "--seed", "1", "--out", tmp("t2")}, "fewer than one batch");
  }

  // Rows over 10x the median norm (secondary sinks) are left out of training from a file, and
  // counted in training.json; --skip-sinks false keeps them.
  void trainSaeLeavesOutSinkRows() {
    std::vector<float> acts(1024 * 16);
    for (std::size_t i = 0; i < acts.size(); ++i) acts[i] = static_cast<float>((i * 7919 % 101) / 50.0 - 1.0) * ((i / 16) % 257 == 5 ? 300.f : 1.f);
    SafetensorsWriter w;
    w.addF32("activations", {1024, 16}, acts);
    w.write(tmp("sinky.safetensors").toStdString());
    auto train = [&](const QString& out, const QString& skip) {
      const Result r = run({"train-sae", "--activations", tmp("sinky.safetensors"), "--arch", "topk", "--k", "4", "--d-sae", "32",
                            "--tokens", "5120", "--batch-size", "512", "--seed", "3", "--out", out, "--skip-sinks", skip});
      if (r.code != 0) qWarning() << r.err;
      return QJsonDocument::fromJson(r.out).object();
    };
    const auto left = train(tmp("no-sinks"), "true"), kept = train(tmp("with-sinks"), "false");
    QCOMPARE(left["activation_rows"].toInt(), 1020);  // rows 5, 262, 519, 776
    QCOMPARE(left["rows_left_out"].toObject()["massive"].toInt(), 4);
    QVERIFY(left.contains("secondary_sinks"));
    QCOMPARE(kept["activation_rows"].toInt(), 1024);
    QCOMPARE(kept["rows_left_out"].toObject()["massive"].toInt(), 0);
    QVERIFY(!kept.contains("secondary_sinks"));
    // Resuming the first run's folder with the sinks kept would read another stream: refused.
    const Result again = run({"train-sae", "--activations", tmp("sinky.safetensors"), "--arch", "topk", "--k", "4", "--d-sae", "32",
                              "--tokens", "5120", "--batch-size", "512", "--seed", "3", "--out", tmp("no-sinks"), "--skip-sinks", "false"});
    QVERIFY(again.code != 0);
    QVERIFY2(again.err.contains("sink_factor = 10, this run has 0"), again.err.constData());
  }

  // token-means, then train-sae --token-table: the table travels with the SAE (training.json
  // names it), sae-convert --dtype f16 keeps it as F16, sae-threshold with its refit keeps it; a
  // run that could not know its rows' tokens (a file without ids) is refused by name, and a
  // resumed run with another table is refused.
  void trainSaeWithATokenTable() {
    std::vector<float> acts(2048 * 16);
    std::vector<std::int32_t> ids(2048);
    for (std::size_t r = 0; r < 2048; ++r) {
      ids[r] = static_cast<std::int32_t>(r * 7 % 13);
      for (std::size_t j = 0; j < 16; ++j)
        acts[r * 16 + j] = static_cast<float>(ids[r]) * (j % 3 == 0 ? 1.f : -0.5f) + static_cast<float>((r * 16 + j) * 7919 % 101) / 100.f;
    }
    SafetensorsWriter w;
    w.addF32("activations", {2048, 16}, acts);
    w.add("tokens", DType::I32, {2048}, ids.data(), ids.size() * 4);
    w.write(tmp("tok-acts.safetensors").toStdString());
    const Result means = run({"token-means", "--activations", tmp("tok-acts.safetensors"), "--out", tmp("table.safetensors"), "--top", "16"});
    QVERIFY2(means.code == 0, means.err.constData());
    QCOMPARE(SafetensorsFile(tmp("table.safetensors").toStdString()).tensor("token_ids").shape[0], std::int64_t(13));  // every id
    auto train = [&](const QString& acts_file, const QString& table, const QString& out) {
      // (the decoder starts as the encoder's transpose, reconstructing whole rows: it takes some
      // hundreds of steps to leave the tokens' part to the table)
      return run({"train-sae", "--activations", acts_file, "--arch", "topk", "--k", "4", "--d-sae", "32", "--tokens", "307200",
                  "--lr", "3e-3", "--batch-size", "512", "--seed", "3", "--out", out, "--token-table", table});
    };
    const Result r = train(tmp("tok-acts.safetensors"), tmp("table.safetensors"), tmp("tokenized"));
    QVERIFY2(r.code == 0, r.err.constData());
    const auto o = QJsonDocument::fromJson(r.out).object();
    QVERIFY(o["token_table"].toObject()["table"].toString().startsWith("13 tokens"));
    QVERIFY(QFile::exists(tmp("tokenized") + "/token_table.safetensors"));
    const Result half = run({"sae-convert", "--sae", tmp("tokenized"), "--out", tmp("tokenized-f16"), "--dtype", "f16"});
    QVERIFY2(half.code == 0, half.err.constData());
    QCOMPARE(SafetensorsFile((tmp("tokenized-f16") + "/token_table.safetensors").toStdString()).tensor("token_means").dtype, DType::F16);
    const Result thr = run({"sae-threshold", "--sae", tmp("tokenized-f16"), "--activations", tmp("tok-acts.safetensors"), "--fraction",
                            "0.3", "--rows", "1024", "--out", tmp("tokenized-thr")});
    QVERIFY2(thr.code == 0, thr.err.constData());
    QVERIFY(QFile::exists(tmp("tokenized-thr") + "/token_table.safetensors"));
    // The rows are their token's offset and a little noise: with the table added back the
    // reconstructions explain most of them (training.json and thresholds.json both measure so).
    QVERIFY2(o["fraction_variance_explained"].toDouble() > 0.9, r.out.constData());
    const auto t = QJsonDocument::fromJson(thr.out).object();
    QVERIFY2(t["fve_held_out_refitted"].toDouble() > 0.9, thr.out.constData());
    SafetensorsWriter bare;
    bare.addF32("activations", {2048, 16}, acts);
    bare.write(tmp("tok-bare.safetensors").toStdString());
    expectError({"train-sae", "--activations", tmp("tok-bare.safetensors"), "--arch", "topk", "--k", "4", "--d-sae", "32", "--tokens",
                 "20480", "--batch-size", "512", "--seed", "3", "--out", tmp("tok-bare"), "--token-table", tmp("table.safetensors")},
                "tok-bare.safetensors");
    run({"token-means", "--activations", tmp("tok-acts.safetensors"), "--out", tmp("table4.safetensors"), "--top", "4"});
    const Result other = run({"train-sae", "--activations", tmp("tok-acts.safetensors"), "--arch", "topk", "--k", "4", "--d-sae", "32",
                              "--tokens", "409600", "--lr", "3e-3", "--batch-size", "512", "--seed", "3", "--out", tmp("tokenized"), "--token-table",
                              tmp("table4.safetensors")});
    QVERIFY(other.code != 0);
    QVERIFY2(other.err.contains("token_table"), other.err.constData());
    // On both sides the encoder reads what the table leaves too, and the SAE folder says so.
    QStringList both_args = {"train-sae", "--activations", tmp("tok-acts.safetensors"), "--arch", "topk", "--k", "4", "--d-sae", "32", "--tokens",
                             "51200", "--batch-size", "512", "--seed", "3", "--out", tmp("tok-both"), "--token-table", tmp("table.safetensors"), "--token-table-side"};
    const Result both = run(both_args + QStringList{"both"});
    const auto bo = QJsonDocument::fromJson(both.out).object();  // (training.json: the run's settings too)
    QVERIFY2(both.code == 0 && bo["token_table"].toObject().contains("encoder") && bo["run"].toObject()["token_table"].toString().endsWith("both sides"),
             both.out.constData());
    QCOMPARE(SafetensorsFile((tmp("tok-both") + "/token_table.safetensors").toStdString()).metadata().at("sides"), std::string("both"));
    expectError(both_args + QStringList{"encoder"}, "--token-table-side");
  }

  // A finished run trained further with a larger --tokens and no --batch-size keeps the batch
  // its checkpoint was trained with (the default for the new length is larger).
  void trainSaeFurtherKeepsItsBatch() {
    std::vector<float> acts(2048 * 16);
    for (std::size_t i = 0; i < acts.size(); ++i) acts[i] = static_cast<float>((i * 7919 % 103) / 51.0 - 1.0);
    SafetensorsWriter w;
    w.addF32("activations", {2048, 16}, acts);
    w.write(tmp("further.safetensors").toStdString());
    auto train = [&](const char* tokens) {
      return run({"train-sae", "--activations", tmp("further.safetensors"), "--arch", "topk", "--k", "4", "--d-sae", "32",
                  "--tokens", tokens, "--seed", "3", "--out", tmp("further")});
    };
    const Result first = train("1024000");
    QVERIFY2(first.code == 0, first.err.constData());
    QCOMPARE(QJsonDocument::fromJson(first.out).object()["batch_size"].toInt(), 512);
    const Result more = train("2048000");
    QVERIFY2(more.code == 0, more.err.constData());
    QVERIFY2(more.err.contains("resuming from step 2000"), more.err.constData());
    QCOMPARE(QJsonDocument::fromJson(more.out).object()["batch_size"].toInt(), 512);
    QCOMPARE(QJsonDocument::fromJson(more.out).object()["steps"].toInt(), 4000);
  }

  // sae-threshold cuts a TopK SAE's weak activations (fewer per row, the file loads), and
  // evaluate-sae measures both on held-out tokens; a fraction outside [0, 1) is refused by name.
  void saeThresholdAndEvaluate() {
    std::vector<float> acts(4096 * 64);
    for (std::size_t i = 0; i < acts.size(); ++i) acts[i] = static_cast<float>(((i * 7919) % 997) / 498.0 - 1.0);
    SafetensorsWriter w;
    w.addF32("activations", {4096, 64}, acts);
    w.write(tmp("calib.safetensors").toStdString());
    const Result r = run({"sae-threshold", "--sae", fx("sae/topk"), "--activations", tmp("calib.safetensors"), "--fraction", "0.5",
                          "--out", tmp("topk-cut"), "--dtype", "f16"});
    QVERIFY2(r.code == 0, r.err.constData());
    const auto o = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(o["calibration_rows"].toInt(), 4096);
    QCOMPARE(o["l0_before"].toDouble(), 8.0);
    QVERIFY(o["l0_after"].toDouble() > 0.5 && o["l0_after"].toDouble() < 8.0);
    // The decoder refitted to the codes that remain reconstructs held-out rows better than the
    // trained decoder does with those codes.
    QVERIFY(o["fve_held_out_refitted"].toDouble() > o["fve_held_out_thresholded"].toDouble());
    QVERIFY(o["decoder_refit_features"].toInt() > 0);
    std::vector<std::int32_t> tokens(4096);
    for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>((i * 37) % 500);
    SafetensorsWriter t;
    t.add("tokens", DType::I32, {4096}, tokens.data(), tokens.size() * sizeof(std::int32_t));
    t.write(tmp("held.tokens.safetensors").toStdString());
    double l0[2] = {0, 0};
    int n = 0;
    for (const QString& sae : {fx("sae/topk"), tmp("topk-cut")}) {
      const Result e = run({"evaluate-sae", "--model", modelWithTokenizer(), "--sae", sae, "--corpus", tmp("held.tokens.safetensors"),
                            "--context", "32", "--rows", "256", "--splice-batches", "2", "--skip-end-of-text", "false"});
      QVERIFY2(e.code == 0, e.err.constData());
      const auto m = QJsonDocument::fromJson(e.out).object();
      QVERIFY(m["clean_loss"].toDouble() > 0 && m["zero_ablation_loss"].toDouble() > 0);
      QVERIFY(std::isfinite(m["ce_loss_recovered"].toDouble()));
      // The median row is ordinary, so at most half of the 256 rows are massive.
      const int massive = m["massive_rows"].toInt(-1);
      QVERIFY(massive >= 0 && massive <= 128);
      QCOMPARE(m["massive_row_norm_above_median_times"].toDouble(), 10.0);
      const double ordinary = m["fraction_variance_explained_ordinary_rows"].toDouble(2.0);
      QVERIFY(std::isfinite(ordinary) && ordinary <= 1.0);
      if (massive == 0) QCOMPARE(ordinary, m["fraction_variance_explained"].toDouble());
      l0[n++] = m["l0"].toDouble();
    }
    QCOMPARE(l0[0], 8.0);
    QVERIFY(l0[1] < l0[0]);
    expectError({"sae-threshold", "--sae", fx("sae/topk"), "--activations", tmp("calib.safetensors"), "--fraction", "0.2",
                 "--refit-lambda", "-1", "--out", tmp("bad")}, "refit-lambda");
    expectError({"sae-threshold", "--sae", fx("sae/topk"), "--activations", tmp("calib.safetensors"), "--fraction", "1.5", "--out",
                 tmp("bad")}, "fraction");
    expectError({"sae-threshold", "--sae", fx("sae/standard"), "--activations", tmp("calib.safetensors"), "--fraction", "0.2",
                 "--out", tmp("bad")}, "TopK");
  }

  // index -> feature / search / score / generate --clamp ID=10x, and each command's --help.
  void indexAndFeatureDatabaseCommands() {
    const QString model = modelWithTokenizer();
    QDir().mkpath(tmp("corpus"));
    {
      std::ofstream f(tmp("corpus/a.txt").toStdString());
      for (int i = 0; i < 200; ++i) f << "one two three four five six seven eight nine ten " << i << "\n";
    }
    const QString db = tmp("f.db");
    Result r = run({"index", "--model", model, "--sae", fx("sae/standard"), "--corpus", tmp("corpus"), "--tokens", "2048",
                    "--out", db, "--umap-epochs", "20", "--threads", "2"});
    QVERIFY2(r.code == 0, r.err.constData());
    QVERIFY(r.err.contains("scan"));  // progress on stderr
    QCOMPARE(QJsonDocument::fromJson(r.out).object().value("features").toInt(), 128);
    // The first alive feature's page, in the contract's shape.
    r = run({"search", db, "--text", "Fires", "--top", "1", "--json"});
    QVERIFY2(r.code == 0, r.err.constData());
    const int id = QJsonDocument::fromJson(r.out).array().first().toObject().value("id").toInt();
    r = run({"feature", db, QString::number(id), "--json"});
    QVERIFY2(r.code == 0, r.err.constData());
    const QJsonObject page = QJsonDocument::fromJson(r.out).object();
    for (const char* key : {"id", "explanation", "density", "max_act", "mean_act", "histogram", "intervals", "top_examples", "logits",
                            "neighbours", "umap"})
      QVERIFY2(page.contains(key), key);
    const double max_act = page.value("max_act").toDouble();
    const QJsonArray top = page.value("top_examples").toArray();
    QVERIFY(!top.isEmpty());
    double first_max = 0;
    for (const auto& a : top.first().toObject().value("acts").toArray()) first_max = std::max(first_max, a.toDouble());
    QVERIFY(std::abs(first_max - max_act) < 1e-3 * max_act);
    QCOMPARE(top.first().toObject().value("tokens").toArray().size(), top.first().toObject().value("acts").toArray().size());
    const QJsonArray iv = page.value("intervals").toArray();
    QCOMPARE(iv.size(), 10);
    QVERIFY(iv.first().toObject().contains("examples"));
    const QJsonArray nb = page.value("neighbours").toArray();
    QCOMPARE(nb.size(), 10);
    QVERIFY(nb[0].toArray()[1].toDouble() >= nb[9].toArray()[1].toDouble());
    QCOMPARE(page.value("logits").toObject().value("top").toArray().size(), 10);
    // Prompt search runs the model named in the database.
    r = run({"search", db, "--prompt", "one two three", "--top", "5", "--json"});
    QVERIFY2(r.code == 0, r.err.constData());
    QVERIFY(!QJsonDocument::fromJson(r.out).array().isEmpty());
    r = run({"search", db, "--prompt", "one two three", "--negative", "seven eight", "--top", "5", "--json"});
    QVERIFY2(r.code == 0, r.err.constData());
    r = run({"score", db, "--scorer", "concept", "--features", QString::number(id)});
    QVERIFY2(r.code == 0, r.err.constData());
    QCOMPARE(QJsonDocument::fromJson(r.out).object().value("features").toInt(), 1);
    // Clamping to 10x the feature's max activation from the database.
    r = run({"generate", "--model", model, "--prompt", "one two", "--max-tokens", "4", "--sae", fx("sae/standard"), "--features", db,
             "--clamp", QString::number(id) + "=10x"});
    QVERIFY2(r.code == 0, r.err.constData());
    QVERIFY(QJsonDocument::fromJson(r.out).object().contains("steered"));
    expectError({"generate", "--model", model, "--prompt", "one", "--max-tokens", "2", "--sae", fx("sae/standard"), "--clamp", "3=10x"},
                "--features");
    expectError({"feature", db, "99999", "--json"}, "feature 99999");
    expectError({"feature", tmp("corpus/a.txt"), "1", "--json"}, "not a database");
    expectError({"merge", "--out", tmp("m.db"), db}, "not an index shard");
    expectError({"index", "--model", model, "--sae", fx("sae/standard"), "--corpus", tmp("nothing"), "--tokens", "100", "--out", tmp("n.db")},
                "does not exist");
    // --help prints the command's usage; tokenize prints each token's text.
    r = run({"index", "--help"});
    QCOMPARE(r.code, 0);
    QVERIFY(r.out.contains("--corpus PATH"));
    r = run({"tokenize", "--tokenizer", fx("tokenizer_small"), "--text", "one two", "--threads", "1"});
    QCOMPARE(r.code, 0);
    QString joined;
    for (const auto& t : QJsonDocument::fromJson(r.out).array()) joined += t.toObject().value("text").toString();
    QCOMPARE(joined, QString("one two"));
  }

  // Arrays nested a few hundred thousand levels deep once overflowed the parser's stack; every
  // JSON input is now refused with "nested too deeply".
  void deeplyNestedJsonIsRefused() {
    const std::string deep = std::string(300000, '[') + std::string(300000, ']');
    const QString model = modelWithTokenizer();
    // tokenizer.json whose merges are nested
    QDir().mkpath(tmp("deep_tok"));
    std::ofstream(tmp("deep_tok/tokenizer.json").toStdString()) << "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":" << deep << "}}";
    expectError({"tokenize", "--tokenizer", tmp("deep_tok"), "--text", "hi"}, "nested too deeply");
    // config.json with a nested n_layer
    QDir().mkpath(tmp("deep_model"));
    QFile::copy(fx("models/gpt2-tiny/model.safetensors"), tmp("deep_model/model.safetensors"));
    std::ofstream(tmp("deep_model/config.json").toStdString()) << "{\"model_type\":\"gpt2\",\"n_layer\":" << deep << "}";
    expectError({"logits", "--model", tmp("deep_model"), "--ids", "1", "--out", tmp("x.safetensors")}, "nested too deeply");
    // cfg.json with a nested architecture
    QDir().mkpath(tmp("deep_sae"));
    QFile::copy(fx("sae/standard/sae_weights.safetensors"), tmp("deep_sae/sae_weights.safetensors"));
    std::ofstream(tmp("deep_sae/cfg.json").toStdString()) << "{\"architecture\":" << deep << "}";
    expectError({"sae-convert", "--sae", tmp("deep_sae"), "--out", tmp("deep_out")}, "nested too deeply");
    // a safetensors header with a nested dtype
    const std::string header = "{\"x\":{\"dtype\":" + deep + ",\"shape\":[1],\"data_offsets\":[0,4]}}";
    std::ofstream st(tmp("deep.safetensors").toStdString(), std::ios::binary);
    const std::uint64_t n = header.size();
    st.write(reinterpret_cast<const char*>(&n), 8);
    st << header << std::string(4, '\0');
    st.close();
    expectError({"top-features", "--acts", tmp("deep.safetensors")}, "nested too deeply");
  }

  // Hostile files found by trying the engine as an attacker would (each once crashed, hung or
  // exited 0).
  void hostileFilesGetOneLineErrors() {
    // top-features on empty or narrow activations
    for (const auto& shape : std::vector<std::vector<std::int64_t>>{{3, 0}, {0, 4096}}) {
      SafetensorsWriter w;
      w.addF32("feature_acts", shape, {});
      w.write(tmp("narrow.safetensors").toStdString());
      expectError({"top-features", "--acts", tmp("narrow.safetensors")}, "both sizes positive");
    }
    SafetensorsWriter w;
    w.addF32("feature_acts", {1, 5}, {1, 2, 3, 4, 5});
    w.write(tmp("five.safetensors").toStdString());
    expectError({"top-features", "--acts", tmp("five.safetensors"), "--count", "9"}, "--count");
    // an added token with empty content
    QDir().mkpath(tmp("empty_added"));
    {
      QFile in(fx("tokenizer_small/tokenizer.json"));
      QVERIFY(in.open(QIODevice::ReadOnly));
      QJsonObject j = QJsonDocument::fromJson(in.readAll()).object();
      QJsonArray added = j["added_tokens"].toArray();
      QJsonObject e = added[0].toObject();
      e["content"] = "";
      added[0] = e;
      j["added_tokens"] = added;
      QFile out(tmp("empty_added/tokenizer.json"));
      QVERIFY(out.open(QIODevice::WriteOnly));
      out.write(QJsonDocument(j).toJson());
    }
    expectError({"tokenize", "--tokenizer", tmp("empty_added"), "--text", "hi"}, "empty content");
    // vocab.json with a byte-order mark; merges.txt that is a directory
    QDir().mkpath(tmp("bom"));
    {
      QFile in(QString(MONOSCOPE_GPT2_VOCAB) + "/vocab.json");
      QVERIFY(in.open(QIODevice::ReadOnly));
      QFile out(tmp("bom/vocab.json"));
      QVERIFY(out.open(QIODevice::WriteOnly));
      out.write("\xEF\xBB\xBF" + in.readAll());
    }
    QFile::copy(QString(MONOSCOPE_GPT2_VOCAB) + "/merges.txt", tmp("bom/merges.txt"));
    expectError({"tokenize", "--tokenizer", tmp("bom"), "--text", "hi"}, "byte-order mark");
    QDir().mkpath(tmp("dirmerges/merges.txt"));
    QFile::copy(QString(MONOSCOPE_GPT2_VOCAB) + "/vocab.json", tmp("dirmerges/vocab.json"));
    expectError({"tokenize", "--tokenizer", tmp("dirmerges"), "--text", "hi"}, "not a regular file");
    // a FIFO as the text file is refused, not waited on
    const QString fifo = tmp("fifo");
    QVERIFY(::mkfifo(fifo.toLocal8Bit().constData(), 0600) == 0);
    expectError({"tokenize", "--tokenizer", fx("tokenizer_small"), "--text-file", fifo}, "a pipe");
    // non-finite weights are refused, naming the tensor; so is a non-positive RoPE base
    {
      QDir().mkpath(tmp("nan_model"));
      QFile::copy(fx("models/gpt2-tiny/config.json"), tmp("nan_model/config.json"));
      SafetensorsFile src(fx("models/gpt2-tiny/model.safetensors").toStdString());
      SafetensorsWriter out;
      for (const auto& name : src.names()) {
        auto v = src.toFloat(name);
        if (name.find("ln_f.weight") != std::string::npos) v[3] = std::nanf("");
        out.addF32(name, src.tensor(name).shape, v);
      }
      out.write(tmp("nan_model/model.safetensors").toStdString());
      expectError({"logits", "--model", tmp("nan_model"), "--ids", "1", "--out", tmp("x.safetensors")}, "ln_f.weight");
      QDir().mkpath(tmp("rope0"));
      QFile in(fx("models/llama-tiny/config.json"));
      QVERIFY(in.open(QIODevice::ReadOnly));
      QJsonObject c = QJsonDocument::fromJson(in.readAll()).object();
      c["rope_theta"] = 0;
      if (c.contains("rope_parameters")) {
        QJsonObject rp = c["rope_parameters"].toObject();
        rp["rope_theta"] = 0;
        c["rope_parameters"] = rp;
      }
      QFile cfg(tmp("rope0/config.json"));
      QVERIFY(cfg.open(QIODevice::WriteOnly));
      cfg.write(QJsonDocument(c).toJson());
      cfg.close();
      for (const auto& f : QDir(fx("models/llama-tiny")).entryList({"*.safetensors*"}))
        QFile::copy(fx("models/llama-tiny/") + f, tmp("rope0/") + f);
      expectError({"logits", "--model", tmp("rope0"), "--ids", "1", "--out", tmp("x.safetensors")}, "rope_theta");
    }
    // a run that could never finish is refused before it starts
    expectError({"train-sae", "--activations", tmp("five.safetensors"), "--arch", "standard", "--d-sae", "8", "--tokens",
                 "4611686018427387903", "--batch-size", "1", "--seed", "0", "--out", tmp("never")},
                "more than 100,000,000");
    // a wrong type in tokenizer.json and binary garbage in vocab.json: plain words, printable ASCII
    {
      QDir().mkpath(tmp("badtype"));
      QFile in(fx("tokenizer_small/tokenizer.json"));
      QVERIFY(in.open(QIODevice::ReadOnly));
      QJsonObject j = QJsonDocument::fromJson(in.readAll()).object();
      QJsonObject pre = j["pre_tokenizer"].toObject();
      pre["type"] = 42;
      pre["add_prefix_space"] = 7;
      j["pre_tokenizer"] = pre;
      QFile out(tmp("badtype/tokenizer.json"));
      QVERIFY(out.open(QIODevice::WriteOnly));
      out.write(QJsonDocument(j).toJson());
    }
    Result r = run({"tokenize", "--tokenizer", tmp("badtype"), "--text", "hi"});
    QCOMPARE(r.code, 1);
    QVERIFY2(!r.err.contains("json.exception") && r.err.contains("badtype"), r.err.constData());
    QDir().mkpath(tmp("garbage"));
    std::ofstream(tmp("garbage/vocab.json").toStdString(), std::ios::binary) << "{\"a\": \x01\xfe\xff\x80 }";
    QFile::copy(QString(MONOSCOPE_GPT2_VOCAB) + "/merges.txt", tmp("garbage/merges.txt"));
    r = run({"tokenize", "--tokenizer", tmp("garbage"), "--text", "hi"});
    QCOMPARE(r.code, 1);
    for (unsigned char c : r.err.trimmed()) QVERIFY2(c >= 0x20 && c < 0x7f, r.err.constData());
    // hook names with leading zeros are not TransformerLens names
    expectError({"logits", "--model", fx("models/gpt2-tiny"), "--ids", "1", "--out", tmp("x.safetensors"), "--hook",
                 "blocks.01.hook_resid_post"},
                "unknown hook name");
  }

  void badInputGetsOneLineErrors() {
    const QString model = modelWithTokenizer();
    std::ofstream(tmp("bad.txt").toStdString(), std::ios::binary) << "abc\xff\xfe";
    std::ofstream(tmp("empty.txt").toStdString(), std::ios::binary) << "";
    std::ofstream(tmp("long.txt").toStdString()) << std::string(4000, 'a') + " b c d e f g h i j k l m n o p q r s t u v w x y z";
    expectError({"tokenize", "--tokenizer", fx("tokenizer_small"), "--text-file", tmp("bad.txt")}, "not valid UTF-8");
    expectError({"tokenize", "--tokenizer", fx("tokenizer_small"), "--text-file", tmp("empty.txt")}, "empty");
    expectError({"tokenize", "--tokenizer", fx("tokenizer_small"), "--text-file", tmp("nope.txt")}, "nope.txt");
    expectError({"logits", "--model", model, "--ids", "1,2", "--out", tmp("x.safetensors"), "--hook", "blocks.9.hook_resid_post"}, "blocks.9");
    expectError({"logits", "--model", model, "--ids", "1,99999", "--out", tmp("x.safetensors")}, "99999");
    expectError({"logits", "--model", model, "--ids", "1,x", "--out", tmp("x.safetensors")}, "not an integer");
    expectError({"logits", "--model", model, "--text-file", tmp("long.txt"), "--out", tmp("x.safetensors")}, "context");
    expectError({"logits", "--model", fx("sae"), "--ids", "1", "--out", tmp("x.safetensors")}, "config.json");
    expectError({"generate", "--model", model, "--prompt", "hi", "--max-tokens", "5", "--sae", fx("sae/standard"), "--clamp", "3=nan"}, "finite");
    expectError({"generate", "--model", model, "--prompt", "hi", "--max-tokens", "5", "--sae", fx("sae/standard"), "--clamp", "3=inf"}, "finite");
    expectError({"generate", "--model", model, "--prompt", "hi", "--max-tokens", "5", "--sae", fx("sae/standard"), "--clamp", "500=1"}, "feature 500");
    expectError({"generate", "--model", model, "--prompt", "hi", "--max-tokens", "-3"}, "max-tokens");
    expectError({"generate", "--model", model, "--prompt", "hi", "--max-tokens", "5", "--top-p", "1.5"}, "top-p");
    expectError({"generate", "--model", model, "--prompt", "hi", "--max-tokens", "5", "--device", "tpu"}, "unknown device");
    expectError({"generate", "--model", model, "--prompt", "hi", "--max-tokens", "5", "--frobnicate", "1"}, "--frobnicate");
    expectError({"generate", "--model", model, "--prompt", "hi", "--max-tokens", "5", "--weights", "half"},
                "--weights must be auto, float32 or stored, not 'half'");

    // An SAE whose d_in does not match the model at its hook.
    const QString wide = tmp("wide_sae");
    QDir().mkpath(wide);
    QFile::copy(fx("sae/standard/sae_weights.safetensors"), wide + "/sae_weights.safetensors");
    QFile cfg(fx("sae/standard/cfg.json"));
    QVERIFY(cfg.open(QIODevice::ReadOnly));
    QJsonObject c = QJsonDocument::fromJson(cfg.readAll()).object();
    c["d_in"] = 32;
    QFile out(wide + "/cfg.json");
    QVERIFY(out.open(QIODevice::WriteOnly));
    out.write(QJsonDocument(c).toJson());
    out.close();
    expectError({"encode", "--model", model, "--sae", wide, "--ids", "1,2", "--out", tmp("x.safetensors")}, "W_enc");

    // A truncated weights file.
    const QString trunc = tmp("trunc");
    QDir().mkpath(trunc);
    QFile::copy(fx("models/gpt2-tiny/config.json"), trunc + "/config.json");
    QFile src(fx("models/gpt2-tiny/model.safetensors"));
    QVERIFY(src.open(QIODevice::ReadOnly));
    QFile dst(trunc + "/model.safetensors");
    QVERIFY(dst.open(QIODevice::WriteOnly));
    dst.write(src.read(src.size() / 2));
    dst.close();
    expectError({"logits", "--model", trunc, "--ids", "1", "--out", tmp("x.safetensors")}, "truncated");
  }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
