// Token tables: each frequent token's mean activation (token-means), an SAE trained on what the
// table leaves (the trainer's target), and the measures that add the table back (the splice and
// the held-out rows' token ids).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QTemporaryDir>
#include <QtTest>
#include <filesystem>

#include "api/engine.h"
#include "api/engine_impl.h"
#include "api/training.h"
#include "io/safetensors.h"
#include "lm/hooks.h"
#include "lm/lm_trainer.h"
#include "lm/transformer.h"
#include "sae/activation_store.h"
#include "sae/sae.h"
#include "sae/sae_trainer.h"
#include "sae/steering.h"
#include "sae/token_table.h"
#include "sae_test_util.h"
#include "test_util.h"
#include "util/error.h"

using namespace monoscope::core;
namespace fs = std::filesystem;

class TestTokenTable : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  std::shared_ptr<const Transformer> model_{Transformer::load(testutil::fixture("models/gpt2-tiny"), c10::Device(c10::kCPU))};

  std::string path(const std::string& name) const { return dir_.path().toStdString() + "/" + name; }

  std::shared_ptr<const TokenShard> shard() {
    std::vector<std::int32_t> t(5000);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::int32_t>((i * 2654435761u) % 512);
    SafetensorsWriter w;
    w.add("tokens", DType::I32, {5000}, t.data(), t.size() * 4);
    w.write(path("shard.safetensors"));
    return std::make_shared<const TokenShard>(path("shard.safetensors"));
  }

  // A table file with the given tensors (absent when empty).
  std::string writeTable(const std::string& name, const std::vector<std::int32_t>& ids, const std::vector<float>& means,
                         std::int64_t width) {
    SafetensorsWriter w;
    if (!ids.empty()) w.add("token_ids", DType::I32, {static_cast<std::int64_t>(ids.size())}, ids.data(), ids.size() * 4);
    if (!means.empty()) w.addF32("token_means", {static_cast<std::int64_t>(means.size()) / width, width}, means);
    w.write(path(name));
    return path(name);
  }

  void expectRefused(const std::string& file, std::int64_t d_in, const std::string& needle) {
    try {
      loadTokenTable(file, d_in, 0);
    } catch (const Error& e) {
      const std::string what = e.what();
      QVERIFY2(what.find(fs::path(file).filename().string()) != std::string::npos && what.find(needle) != std::string::npos, e.what());
      return;
    }
    QFAIL(("no error for " + file).c_str());
  }

 private Q_SLOTS:
  // Two chunks: token 3 (5 rows), 9 (5 rows, one of them massive: 4 once it is left out), 1 (3
  // rows), 4 (2 rows), 7 (1 row). The top 2 by count are 3 and 9, each its rows' mean.
  void tokenMeansAreTheFrequentTokensMeans() {
    fs::create_directories(path("harvest"));
    const std::int64_t d = 4;
    std::vector<std::vector<std::int32_t>> ids = {{3, 9, 3, 4, 9, 3, 9, 7}, {3, 9, 4, 3, 9, 1, 1, 1}};
    std::map<int, std::vector<std::vector<float>>> rows;
    for (int c = 0; c < 2; ++c) {
      std::vector<float> v;
      std::vector<std::int32_t> t = ids[c];
      for (std::size_t r = 0; r < t.size(); ++r) {
        std::vector<float> row(d);
        for (std::int64_t j = 0; j < d; ++j) row[j] = static_cast<float>(t[r]) + 0.1f * static_cast<float>(r + 10 * c) + 0.01f * j;
        if (c == 1 && r == 4) row[0] = 1e5f;  // a massive row (token 9)
        else rows[t[r]].push_back(row);
        v.insert(v.end(), row.begin(), row.end());
      }
      SafetensorsWriter w;
      w.addF32("activations", {static_cast<std::int64_t>(t.size()), d}, v);
      w.add("tokens", DType::I32, {static_cast<std::int64_t>(t.size())}, t.data(), t.size() * 4);
      w.write(path("harvest/chunk-0000" + std::to_string(c) + ".safetensors"));
    }
    TokenMeansOptions o;
    o.activations = path("harvest");
    o.out = path("means.safetensors");
    o.top = 2;
    QCOMPARE(computeTokenMeans(o, {}), JobStatus::Done);
    SafetensorsFile f(o.out);
    QCOMPARE(f.tensor("token_ids").shape, (std::vector<std::int64_t>{2}));
    const auto* got_ids = reinterpret_cast<const std::int32_t*>(f.tensor("token_ids").data);
    QCOMPARE(got_ids[0], 3);
    QCOMPARE(got_ids[1], 9);
    const auto* counts = reinterpret_cast<const std::int64_t*>(f.tensor("token_counts").data);
    QCOMPARE(counts[0], std::int64_t(5));
    QCOMPARE(counts[1], std::int64_t(4));
    const at::Tensor table = loadTokenTable(o.out, d, 16);
    QCOMPARE(table.sizes().vec(), (std::vector<std::int64_t>{16, d}));
    for (int tok : {3, 9}) {
      for (std::int64_t j = 0; j < d; ++j) {
        double mean = 0;
        for (const auto& row : rows[tok]) mean += row[j] / static_cast<double>(rows[tok].size());
        QVERIFY2(std::fabs(table[tok][j].item<double>() - mean) < 1e-5, qPrintable(QString("token %1").arg(tok)));
      }
    }
    QCOMPARE(table[4].abs().sum().item<double>(), 0.0);  // not among the top 2: a zero row
    QCOMPARE(table[1].abs().sum().item<double>(), 0.0);
    // With the top 3, token 1 (3 rows) joins, before 4 (2 rows).
    o.top = 3;
    o.out = path("means3.safetensors");
    computeTokenMeans(o, {});
    QVERIFY(loadTokenTable(o.out, d, 0)[1].abs().sum().item<double>() > 0);
    // A chunk without token ids is refused by name.
    SafetensorsWriter bare;
    bare.addF32("activations", {2, d}, std::vector<float>(2 * d, 1.0f));
    bare.write(path("bare.safetensors"));
    o.activations = path("bare.safetensors");
    try {
      computeTokenMeans(o, {});
      QFAIL("a file without token ids gave a table");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("bare.safetensors") != std::string::npos && std::string(e.what()).find("'tokens'") != std::string::npos,
               e.what());
    }
    o.top = 0;
    QVERIFY_EXCEPTION_THROWN(o.validate(), Error);
  }

  // Every malformed table gets one error naming the file and the field.
  void badTablesAreRefused() {
    const std::vector<float> two(2 * 4, 0.5f);
    QVERIFY(loadTokenTable(writeTable("good.safetensors", {5, 2}, two, 4), 4, 0).size(0) == 6);
    expectRefused(writeTable("no_means.safetensors", {5, 2}, {}, 4), 4, "'token_means'");
    expectRefused(writeTable("no_ids.safetensors", {}, two, 4), 4, "'token_ids'");
    expectRefused(writeTable("narrow.safetensors", {5, 2}, two, 4), 8, "'token_means'");
    expectRefused(writeTable("repeat.safetensors", {5, 5}, two, 4), 4, "repeats");
    expectRefused(writeTable("negative.safetensors", {-1, 2}, two, 4), 4, "-1");
    expectRefused(writeTable("absurd.safetensors", {5, 1 << 30}, two, 4), 4, "outside");
    std::vector<float> nan = two;
    nan[3] = std::nanf("");
    expectRefused(writeTable("nan.safetensors", {5, 2}, nan, 4), 4, "NaN");
    std::vector<float> three(3 * 4, 0.5f);
    expectRefused(writeTable("rows.safetensors", {5, 2}, three, 4), 4, "'token_means'");
  }

  // With a target, the decoder learns the target from the batch's code: rows are a large token
  // offset plus a few sparse directions, the target the rows less their offsets. The exported
  // SAE reconstructs the target (not the rows), and with the offsets added back the rows.
  void trainerReconstructsTheTarget() {
    at::manual_seed(3);
    const std::int64_t d = 32, n_tok = 8, n_feat = 48;
    const at::Tensor offsets = at::randn({n_tok, d}) * 3.0;
    const at::Tensor dirs = at::randn({n_feat, d});
    auto sample = [&](std::int64_t n, at::Tensor* tokens) {
      *tokens = at::randint(n_tok, {n}, at::kLong);
      at::Tensor code = at::zeros({n, n_feat});
      code.scatter_(1, at::randint(n_feat, {n, 2}, at::kLong), at::rand({n, 2}) + 0.5);
      return offsets.index_select(0, *tokens) + at::mm(code, dirs);
    };
    SaeTrainConfig c;
    c.architecture = "topk";
    c.d_in = d;
    c.d_sae = 96;
    c.hook_name = "blocks.0.hook_resid_post";
    c.k = 4;
    c.lr = 3e-3;
    c.batch_size = 256;
    c.total_tokens = 256 * 800;
    c.dead_window = 256 * 200;
    c.seed = 1;
    SaeTrainer t(c, c10::Device(c10::kCPU));
    at::Tensor tokens;
    for (std::int64_t s = 0; s < c.totalSteps(); ++s) {
      const at::Tensor x = sample(c.batch_size, &tokens);
      t.step(x, x - offsets.index_select(0, tokens));
    }
    const auto sae = t.exportSae();
    const at::Tensor x = sample(2048, &tokens), added = offsets.index_select(0, tokens);
    const double with_table = sae->metrics(x, added).fraction_variance_explained;
    const double without = sae->metrics(x).fraction_variance_explained;
    qInfo("variance explained: with the table added %.3f, without %.3f", with_table, without);
    QVERIFY2(with_table > 0.9, std::to_string(with_table).c_str());
    QVERIFY2(without < with_table - 0.2, std::to_string(without).c_str());  // the offsets are not in the decoder
    QVERIFY_EXCEPTION_THROWN(t.step(x.narrow(0, 0, 256), x.narrow(0, 0, 128)), Error);
  }

  // sae-threshold's refit fits what the table leaves. Rows are 5 times their token's unit vector
  // plus a little noise, the table holds those offsets, and the SAE (codes relu(x), relu(-x), all
  // kept) can rebuild the rows or the noise; refitted towards the noise, with the table added
  // back it explains the rows. (Refitted towards the rows it would count each offset twice.)
  void refitFitsWhatTheTableLeaves() {
    at::manual_seed(5);
    const std::int64_t d = 8, n = 4096;
    const at::Tensor tokens = at::randint(d, {n}, at::kLong);
    const at::Tensor x = at::one_hot(tokens, d).to(at::kFloat) * 5.0 + at::randn({n, d}) * 0.3;
    std::vector<float> xv(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
    const at::Tensor ids32 = tokens.to(at::kInt).contiguous();
    SafetensorsWriter acts;
    acts.addF32("activations", {n, d}, xv);
    acts.add("tokens", DType::I32, {n}, ids32.data_ptr(), static_cast<std::size_t>(n) * 4);
    acts.write(path("refit-acts.safetensors"));
    fs::create_directories(path("refit-sae"));
    testutil::exactSae(d, at::zeros({d}), "topk")->save(path("refit-sae"));
    std::vector<std::int32_t> table_ids(d);
    std::vector<float> table_means(d * d, 0.0f);
    for (std::int64_t t = 0; t < d; ++t) {
      table_ids[t] = static_cast<std::int32_t>(t);
      table_means[t * d + t] = 5.0f;
    }
    writeTable("refit-sae/token_table.safetensors", table_ids, table_means, d);
    SaeThresholdOptions o;
    o.sae = path("refit-sae");
    o.activations = path("refit-acts.safetensors");
    o.out = path("refit-out");
    o.fraction = 0.0;
    o.refit_lambda = 1.0;
    SaeThresholdResult r;
    QCOMPARE(calibrateSaeThresholds(o, {}, &r), JobStatus::Done);
    qInfo("held-out variance explained: trained decoder %.3f, refitted %.3f", r.fve_thresholded, r.fve_refitted);
    QVERIFY2(r.fve_thresholded < 0.2, std::to_string(r.fve_thresholded).c_str());  // rows rebuilt, then the table again
    QVERIFY2(r.fve_refitted > 0.95, std::to_string(r.fve_refitted).c_str());
    QVERIFY(fs::exists(path("refit-out/token_table.safetensors")));
  }

  // Each streamed row carries its own token id: at hook_embed a row is its token's embedding.
  void streamedRowsCarryTheirTokenIds() {
    ModelActivationSource src(model_, "hook_embed", shard(), 32, 2048, 5);
    const at::Tensor rows = src.next(40), ids = src.lastTokens();
    QCOMPARE(ids.sizes().vec(), (std::vector<std::int64_t>{40}));
    QVERIFY(std::get<0>(at::_unique(ids)).numel() > 10);
    const at::Tensor want = src.activations(ids.view({2, 20}))  // [2, 20, d]: embeddings do not depend on position
                                .reshape({40, -1});
    QCOMPARE(testutil::maxAbsDiff(rows, want), 0.0);
    src.next(7);
    QCOMPARE(src.lastTokens().size(0), std::int64_t(7));
  }

  // The splice adds each position's table row: an exact SAE shifted by -c with a table of c in
  // every row recovers all the loss, and without the table the loss moves.
  void spliceAddsEachPositionsTableRow() {
    at::manual_seed(4);
    const at::Tensor c = at::randn({64}) * 20.0;  // (a constant vector would vanish in the next layer norm)
    const auto owned = testutil::exactSae(64, -c);
    const Sae& shifted = *owned;
    const at::Tensor table = c.unsqueeze(0).expand({512, 64}).contiguous();
    const auto with = evaluateSplice(*model_, shifted, *shard(), 2, 4, 32, 1, -1, table);
    const auto without = evaluateSplice(*model_, shifted, *shard(), 2, 4, 32, 1, -1);
    // A row per token: only the tokens whose row is c are restored, so the loss is in between.
    at::Tensor partial = table.clone();
    partial.narrow(0, 0, 256).zero_();
    const auto half = evaluateSplice(*model_, shifted, *shard(), 2, 4, 32, 1, -1, partial);
    qInfo("clean %.7f, spliced with the table %.7f, half of it %.7f, without %.7f (this model's outputs are nearly flat)",
          with.clean_loss, with.sae_loss, half.sae_loss, without.sae_loss);
    QVERIFY(std::fabs(with.sae_loss - with.clean_loss) < 2e-6);
    QVERIFY(std::fabs(without.sae_loss - without.clean_loss) > 1e-4);
    QVERIFY(std::fabs(half.sae_loss - with.sae_loss) > 2e-5);
    QVERIFY(std::fabs(half.sae_loss - without.sae_loss) > 2e-5);
    // A table too short for the corpus's ids is refused.
    QVERIFY_EXCEPTION_THROWN(evaluateSplice(*model_, shifted, *shard(), 1, 4, 32, 1, -1, table.narrow(0, 0, 100)), Error);
  }

  // With the table on both sides the SAE folder says so, the loaded SAE reads each activation
  // less its token's row, and a folder whose table names other sides is refused by name.
  void bothSidesTableIsReadBeforeEncoding() {
    const std::int64_t d = 8;
    std::vector<std::int32_t> ids = {1, 4};
    std::vector<float> means(2 * d);
    for (std::int64_t j = 0; j < 2 * d; ++j) means[j] = 0.5f * static_cast<float>(j + 1);
    const std::string table = writeTable("sides-table.safetensors", ids, means, d);
    for (const bool both : {false, true}) {
      const std::string dir = path(both ? "sides-both" : "sides-decoder");
      testutil::exactSae(d, at::zeros({d}), "topk")->save(dir);
      writeSaeTokenTable(table, dir, both);
      QCOMPARE(saeTokenTableOnEncoder(dir), both);
      const auto sae = Sae::load(dir, c10::Device(c10::kCPU));
      QCOMPARE(sae->readsTokenTable(), both);
      const at::Tensor x = at::randn({3, d}), tok = at::tensor(std::vector<std::int64_t>{4, 0, 1});
      if (!both) {
        QCOMPARE(testutil::maxAbsDiff(sae->lessTokenRows(x, tok), x), 0.0);
        continue;
      }
      at::Tensor want = x.clone();
      want[0] -= at::tensor(std::vector<float>(means.begin() + d, means.end()));
      want[2] -= at::tensor(std::vector<float>(means.begin(), means.begin() + d));  // token 1 (token 0 has no row: kept)
      QVERIFY(testutil::maxAbsDiff(sae->lessTokenRows(x, tok), want) < 1e-6);
      QVERIFY(testutil::maxAbsDiff(sae->lessTokenRows(x, at::tensor(std::vector<std::int64_t>{4, 0, 99})).narrow(0, 2, 1), x.narrow(0, 2, 1)) == 0.0);
      QVERIFY_EXCEPTION_THROWN(sae->lessTokenRows(x, tok.narrow(0, 0, 2)), Error);  // ids that do not match the rows
      QVERIFY_EXCEPTION_THROWN(sae->lessTokenRows(x, at::Tensor()), Error);
      // A converted copy keeps its sides.
      fs::create_directories(path("sides-copy"));
      QVERIFY(copySaeTokenTable(dir, path("sides-copy"), true));
      QVERIFY(saeTokenTableOnEncoder(path("sides-copy")));
    }
    SafetensorsWriter w;
    w.setMetadata("sides", "encoder");
    w.add("token_ids", DType::I32, {2}, ids.data(), 8);
    w.addF32("token_means", {2, d}, means);
    w.write(path("sides-both/token_table.safetensors"));
    try {
      saeTokenTableOnEncoder(path("sides-both"));
      QFAIL("no error for sides 'encoder'");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("token_table.safetensors") != std::string::npos && std::string(e.what()).find("'sides'") != std::string::npos, e.what());
    }
  }

  // A clamp encodes the current value from the row less its token's row: with the exact SAE,
  // clamping latent j (relu of coordinate j) to v moves coordinate j by v - relu(x_j - T_j).
  void clampReadsWhatTheTableLeaves() {
    const std::int64_t d = 4;
    auto sae = testutil::exactSae(d, at::zeros({d}), "topk");
    at::Tensor table = at::zeros({6, d});
    table[2][1] = 3.0;
    sae->setInputTokenTable(table);
    const at::Tensor x = at::full({1, 2, d}, 2.0), tok = at::tensor(std::vector<std::int64_t>{2, 5}).view({1, 2});
    SteeringSpec s;
    s.mode = SteerMode::Clamp;
    s.edits = {{1, 4.0}};
    const at::Tensor y = applySteering(*sae, x, s, 0, {}, tok);
    QCOMPARE(y[0][0][1].item<double>(), 2.0 + 4.0 - 0.0);  // relu(2 - 3) = 0 at token 2
    QCOMPARE(y[0][1][1].item<double>(), 4.0);               // token 5 has no row: relu(2) = 2
    QCOMPARE(y[0][0][0].item<double>(), 2.0);
    QVERIFY_EXCEPTION_THROWN(applySteering(*sae, x, s, 0), Error);  // no ids: refused, not guessed
    // Through a forward pass the steering hook is given the pass's token ids: what it writes is
    // applySteering with those ids, not with others.
    auto owned = testutil::exactSae(64, at::zeros({64}), "topk");
    owned->setInputTokenTable(at::randn({512, 64}) * 3.0);
    const std::shared_ptr<const Sae> shared(std::move(owned));
    at::Tensor before, after;
    HookSet hooks;
    const std::string hook = shared->config().hook_name;
    hooks.add(hook, [&before](const at::Tensor& h, const HookContext&) { before = h.clone(); return at::Tensor(); });
    addSteeringHooks(shared, s, &hooks);
    hooks.add(hook, [&after](const at::Tensor& h, const HookContext&) { after = h.clone(); return at::Tensor(); });
    c10::InferenceMode guard;
    const at::Tensor pass = at::tensor(std::vector<std::int64_t>{3, 9, 27}).view({1, 3});
    model_->forward(pass, &hooks);
    QVERIFY(testutil::maxAbsDiff(after, applySteering(*shared, before, s, 0, {}, pass)) < 1e-6);
    QVERIFY(testutil::maxAbsDiff(after, applySteering(*shared, before, s, 0, {}, pass.flip(1))) > 1e-3);
  }

  // The splice encodes each row less its token's row: the exact SAE with the table on both
  // sides recovers the clean loss, while the same table on the decoder side alone (added to a
  // reconstruction of the whole row) does not.
  void spliceEncodesWhatTheTableLeaves() {
    at::manual_seed(6);
    const at::Tensor table = at::randn({512, 64}) * 5.0;
    auto both = testutil::exactSae(64, at::zeros({64}));
    both->setInputTokenTable(table);
    const auto decoder_only = testutil::exactSae(64, at::zeros({64}));
    const auto ev_both = evaluateSplice(*model_, *both, *shard(), 2, 4, 32, 1, -1, table);
    const auto ev_dec = evaluateSplice(*model_, *decoder_only, *shard(), 2, 4, 32, 1, -1, table);
    qInfo("clean %.7f, both sides %.7f, decoder side only %.7f", ev_both.clean_loss, ev_both.sae_loss, ev_dec.sae_loss);
    QVERIFY(std::fabs(ev_both.sae_loss - ev_both.clean_loss) < 2e-6);
    QVERIFY(std::fabs(ev_dec.sae_loss - ev_dec.clean_loss) > 1e-4);
  }

  // The engine (inspector, feature values, searches) encodes each token's row less its table
  // row: on the demo model, the exact SAE's latent j is relu(h_j - T[token]_j).
  void engineEncodesWhatTheTableLeaves() {
    const std::string demo = std::string(MONOSCOPE_FIXTURES) + "/../../data/demo";
    if (!fs::exists(demo + "/model/config.json")) QSKIP("data/demo is missing");
    const std::int64_t d = 256, j = 5;
    const std::string dir = path("engine-sae");
    auto sae = testutil::exactSae(d, at::zeros({d}), "topk");
    SaeConfig cfg = sae->config();
    cfg.hook_name = "blocks.2.hook_resid_post";
    Sae(cfg, sae->W_enc(), sae->b_enc(), sae->W_dec(), sae->b_dec()).save(dir);
    at::manual_seed(8);
    std::vector<std::int32_t> ids(8192);
    for (std::int32_t i = 0; i < 8192; ++i) ids[static_cast<std::size_t>(i)] = i;
    const at::Tensor means = (at::randn({8192, d}) * 2.0).contiguous();
    const std::string table =
        writeTable("engine-table.safetensors", ids, std::vector<float>(means.data_ptr<float>(), means.data_ptr<float>() + means.numel()), d);
    writeSaeTokenTable(table, dir, true);
    EngineOptions o;
    o.model_dir = demo + "/model";
    o.sae_dir = dir;
    const std::string text = "The quick brown fox jumps over the lazy dog.";
    const auto with = Engine::open(o);
    const auto tok = with->tokenIds(text);
    const at::Tensor h = with->impl().hookActivations(tok);  // [n, d]
    const std::vector<float> got = with->featureValues(text, j), acts = with->featureMatrix(tok);
    fs::remove(fs::path(dir) / kSaeTokenTableFile);
    const std::vector<float> plain = Engine::open(o)->featureValues(text, j);
    QCOMPARE(got.size(), tok.size());
    double moved = 0;
    for (std::size_t i = 0; i < tok.size(); ++i) {
      const double hj = h[static_cast<std::int64_t>(i)][j].item<double>(), tj = means[tok[i]][j].item<double>();
      QVERIFY(std::fabs(got[i] - std::max(0.0, hj - tj)) < 1e-4);
      QVERIFY(std::fabs(acts[i * 2 * d + j] - got[i]) < 1e-4);
      QVERIFY(std::fabs(plain[i] - std::max(0.0, hj)) < 1e-4);
      moved = std::max(moved, static_cast<double>(std::fabs(plain[i] - got[i])));
    }
    QVERIFY2(moved > 0.1, std::to_string(moved).c_str());
  }
};

QTEST_GUILESS_MAIN(TestTokenTable)
#include "test_token_table.moc"
