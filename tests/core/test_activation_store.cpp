// Activation store: streaming from a model through the mixing buffer, file sources, and the
// CE-loss-recovered evaluation.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <QTemporaryDir>
#include <QtTest>
#include <filesystem>

#include "io/safetensors.h"
#include "lm/hooks.h"
#include "lm/lm_trainer.h"
#include "lm/transformer.h"
#include "sae/activation_store.h"
#include "sae/harvest.h"
#include "util/mapped_file.h"
#include "sae/sae.h"
#include "sae_test_util.h"
#include "test_util.h"
#include "util/error.h"
#include "text/tokenizer.h"

using namespace monoscope::core;

class TestActivationStore : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  std::shared_ptr<const Transformer> model_{Transformer::load(testutil::fixture("models/gpt2-tiny"), c10::Device(c10::kCPU))};

  std::shared_ptr<const TokenShard> shard() {
    std::vector<std::int32_t> t(5000);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::int32_t>((i * 2654435761u) % 512);
    SafetensorsWriter w;
    w.add("tokens", DType::I32, {5000}, t.data(), t.size() * 4);
    const std::string p = dir_.path().toStdString() + "/shard.safetensors";
    w.write(p);
    return std::make_shared<const TokenShard>(p);
  }

 private Q_SLOTS:
  void streamsHookActivations() {
    ModelActivationSource src(model_, "blocks.1.hook_resid_pre", shard(), 32, 2048, 1);
    QCOMPARE(src.width(), std::int64_t(64));
    at::Tensor a = src.next(500), b = src.next(500);
    QCOMPARE(a.sizes().vec(), (std::vector<std::int64_t>{500, 64}));
    QVERIFY(testutil::maxAbsDiff(a, b) > 0.1);
    // Each row is a real activation at that hook: it matches a direct forward pass.
    c10::InferenceMode guard;
    at::Tensor ids = at::arange(32, at::kLong).view({1, -1});
    at::Tensor direct = src.activations(ids)[0];
    HookSet hooks;
    at::Tensor seen;
    hooks.add("blocks.1.hook_resid_pre", [&](const at::Tensor& x, const HookContext&) {
      seen = x[0].clone();
      return at::Tensor();
    });
    model_->forward(ids, &hooks);
    QCOMPARE(testutil::maxAbsDiff(direct, seen), 0.0);
  }

  // A harvest is chunks of F16 rows with each window's first position left out; killed and rerun
  // it continues after the chunks on disk and gives the same files; the file source reads the
  // folder as one set of rows.
  void harvestResumesToTheSameChunks() {
    shard();
    HarvestOptions o;
    o.model_dir = testutil::fixture("models/gpt2-tiny");
    o.hook = "blocks.1.hook_resid_pre";
    o.corpus = dir_.path().toStdString() + "/shard.safetensors";
    o.out = dir_.path().toStdString() + "/harvest";
    o.tokens = 3000;
    o.context = 32;
    o.chunk_rows = 1024;
    o.batch = 4;
    o.device = "cpu";
    QCOMPARE(harvestActivations(o, {}), JobStatus::Done);
    const std::string c1 = o.out + "/chunk-00001.safetensors";
    SafetensorsFile first(o.out + "/chunk-00000.safetensors");
    QCOMPARE(first.tensor("activations").dtype, DType::F16);
    QCOMPARE(first.tensor("activations").shape, (std::vector<std::int64_t>{1024, 64}));
    QCOMPARE(SafetensorsFile(o.out + "/chunk-00002.safetensors").tensor("activations").shape[0], std::int64_t(3000 - 2048));
    const std::string before = readTextFile(c1);
    std::filesystem::remove(c1);  // as if killed while writing chunk 1
    int fresh = 0;
    QCOMPARE(harvestActivations(o, [&](const Progress& p) {
               if (p.stage == "harvest" && p.detail.empty()) ++fresh;
               return true;
             }),
             JobStatus::Done);
    QVERIFY(fresh > 0);
    QVERIFY(readTextFile(c1) == before);
    // Chunk 0 starts with the first batch of windows drawn from its seed, each without its first
    // position: rows 0..30 are positions 1..31 of the first window.
    c10::InferenceMode guard;
    auto gen = at::detail::createCPUGenerator(1);
    const at::Tensor windows = shard()->sample(4, 31, gen);  // [4, 32]
    const at::Tensor acts = ModelActivationSource(model_, o.hook, shard(), 32, 2048, 1).activations(windows);
    const at::Tensor expected = acts.narrow(1, 1, 31).reshape({-1, 64}).to(at::kHalf).to(at::kFloat);  // [124, 64]
    FileActivationSource rows(o.out, 3);
    QCOMPARE(rows.rows(), std::int64_t(3000));
    const at::Tensor stored = toFloatTensor(first.tensor("activations"), first.path()).narrow(0, 0, 124);
    QCOMPARE(testutil::maxAbsDiff(stored, expected), 0.0);
    QVERIFY(testutil::maxAbsDiff(stored.narrow(0, 0, 31), acts[0].narrow(0, 0, 31).to(at::kHalf).to(at::kFloat)) > 0.01);
  }

  // End-of-text rows (massive activations at document boundaries) are left out like first
  // positions, each row's token is stored, and a chunk written without tokens is completed in
  // place: its windows drawn again, the boundary rows dropped, the other rows kept as they were.
  void harvestLeavesOutDocumentBoundaries() {
    shard();
    namespace fs = std::filesystem;
    const fs::path model = dir_.path().toStdString() + "/with-tokenizer";
    fs::create_directories(model);
    for (const char* f : {"config.json", "model.safetensors"})
      fs::copy_file(fs::path(testutil::fixture("models/gpt2-tiny")) / f, model / f, fs::copy_options::overwrite_existing);
    Tokenizer::fromMerges({}, {"<|endoftext|>"}).save(model.string());  // bytes 0..255, then <|endoftext|> = 256
    QCOMPARE(Tokenizer::endOfTextIdOf(model.string()), 256);
    QCOMPARE(Tokenizer::endOfTextIdOf(testutil::fixture("models/gpt2-tiny")), -1);
    HarvestOptions o;
    o.model_dir = testutil::fixture("models/gpt2-tiny");  // no tokenizer: no boundary known
    o.hook = "blocks.1.hook_resid_pre";
    o.corpus = dir_.path().toStdString() + "/shard.safetensors";
    o.out = dir_.path().toStdString() + "/old-harvest";
    o.tokens = 2048;
    o.context = 32;
    o.chunk_rows = 1024;
    o.batch = 4;
    o.device = "cpu";
    QCOMPARE(harvestActivations(o, {}), JobStatus::Done);
    const std::string c0 = o.out + "/chunk-00000.safetensors";
    auto ids = [](const SafetensorsFile& f) {  // I32 [rows]
      const auto& v = f.tensor("tokens");
      return at::from_blob(const_cast<std::uint8_t*>(v.data), v.shape, at::kInt).to(at::kLong);
    };
    at::Tensor old_acts, old_tokens;
    {
      SafetensorsFile f(c0);
      QCOMPARE(f.metadata().at("end_of_text"), std::string("included"));
      old_acts = toFloatTensor(f.tensor("activations"), c0);
      old_tokens = ids(f);
      QVERIFY(old_tokens.eq(256).sum().item<std::int64_t>() > 0);
      SafetensorsWriter w;  // as a harvest before tokens were stored wrote it
      for (const auto& [k, v] : f.metadata()) if (k != "end_of_text") w.setMetadata(k, v);
      const auto& a = f.tensor("activations");
      w.add("activations", DType::F16, a.shape, a.data, a.nbytes);
      w.write(c0 + ".old");
    }
    fs::rename(c0 + ".old", c0);
    o.model_dir = model.string();
    // Another seed would draw other windows: refused before anything is rewritten.
    const std::string before = readTextFile(c0);
    o.seed = 99;
    try {
      harvestActivations(o, {});
      QFAIL("a chunk was upgraded with another seed");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("chunk-00000") != std::string::npos, e.what());
    }
    QVERIFY(readTextFile(c0) == before);
    o.seed = 0;
    QCOMPARE(harvestActivations(o, {}), JobStatus::Done);
    const at::Tensor keep = old_tokens.ne(256).nonzero().squeeze(1);
    for (const std::string& chunk : {c0, o.out + "/chunk-00001.safetensors"}) {
      SafetensorsFile f(chunk);
      QCOMPARE(f.metadata().at("end_of_text"), std::string("excluded"));
      const at::Tensor tokens = ids(f);
      QCOMPARE(tokens.size(0), f.tensor("activations").shape[0]);
      QCOMPARE(tokens.eq(256).sum().item<std::int64_t>(), std::int64_t(0));
      if (chunk == c0) {
        QVERIFY(tokens.equal(old_tokens.index_select(0, keep)));
        QCOMPARE(testutil::maxAbsDiff(toFloatTensor(f.tensor("activations"), chunk), old_acts.index_select(0, keep)), 0.0);
      }
    }
    // Asked to keep them, a harvest does (the rows of the shipped demo SAE's training).
    o.out = dir_.path().toStdString() + "/kept-harvest";
    o.skip_end_of_text = false;
    QCOMPARE(harvestActivations(o, {}), JobStatus::Done);
    SafetensorsFile kept(o.out + "/chunk-00000.safetensors");
    QCOMPARE(kept.metadata().at("end_of_text"), std::string("included"));
    QVERIFY(ids(kept).eq(256).sum().item<std::int64_t>() > 0);
    o.skip_end_of_text = true;
    // A fresh harvest fills each chunk with rows that are not boundaries.
    o.out = dir_.path().toStdString() + "/new-harvest";
    QCOMPARE(harvestActivations(o, {}), JobStatus::Done);
    SafetensorsFile fresh(o.out + "/chunk-00000.safetensors");
    QCOMPARE(fresh.tensor("activations").shape[0], std::int64_t(1024));
    QCOMPARE(ids(fresh).eq(256).sum().item<std::int64_t>(), std::int64_t(0));
    // The streamed source leaves them out too. Its first refill runs two batches of 128 windows
    // drawn from its seed; the boundary positions' activations are found among the rows served
    // without a boundary token and never among those served with one.
    c10::InferenceMode guard;
    auto gen = at::detail::createCPUGenerator(5);
    std::vector<at::Tensor> boundary_rows;
    for (int batch = 0; batch < 2; ++batch) {
      const at::Tensor windows = shard()->sample(128, 31, gen);  // [128, 32]
      const at::Tensor acts = ModelActivationSource(model_, o.hook, shard(), 32, 2048, 1).activations(windows);
      const at::Tensor mask = windows.narrow(1, 1, 31).eq(256);
      boundary_rows.push_back(acts.narrow(1, 1, 31).index({mask}));  // [n, 64]
    }
    const at::Tensor boundary = at::cat(boundary_rows);
    QVERIFY(boundary.size(0) > 5);
    auto hits = [&boundary](const at::Tensor& rows) {
      return std::get<0>(at::cdist(rows, boundary).min(1)).eq(0).sum().item<std::int64_t>();
    };
    ModelActivationSource with(model_, o.hook, shard(), 32, 4096, 5, true, 256), without(model_, o.hook, shard(), 32, 4096, 5);
    QCOMPARE(hits(with.next(2048)), std::int64_t(0));
    QVERIFY(hits(without.next(2048)) > 0);
  }

  // With a sink factor the streamed source also leaves out the rows windowSinkMask marks (here
  // at factor 1: every row over its batch's median norm), and only those.
  void streamedSourceLeavesOutSinkRows() {
    c10::InferenceMode guard;
    const std::string hook = "blocks.1.hook_resid_pre";
    auto gen = at::detail::createCPUGenerator(5);
    std::vector<at::Tensor> sink_rows, kept_rows;
    for (int batch = 0; batch < 3; ++batch) {  // the first refill's windows: three batches of 128
      const at::Tensor windows = shard()->sample(128, 31, gen);  // [128, 32]
      const at::Tensor acts = ModelActivationSource(model_, hook, shard(), 32, 2048, 1).activations(windows);
      const at::Tensor sink = windowSinkMask(rowNorms(acts.reshape({-1, 64})).view({128, 32}), 1.0);
      sink_rows.push_back(acts.narrow(1, 1, 31).index({sink.narrow(1, 1, 31)}));
      kept_rows.push_back(acts.narrow(1, 1, 31).index({sink.narrow(1, 1, 31).logical_not()}));
    }
    auto nearest = [](const at::Tensor& rows, const at::Tensor& among) {  // exact distances (no matrix-product form)
      return std::get<0>(at::cdist(rows, among, 2.0, /*compute_mode=*/2).min(1));
    };
    auto hits = [&nearest](const at::Tensor& rows, const at::Tensor& among) { return nearest(rows, among).eq(0).sum().item<std::int64_t>(); };
    // The shard repeats every 512 tokens, so a row can be a sink in one batch and kept in the other.
    const at::Tensor kept = at::cat(kept_rows), all_sinks = at::cat(sink_rows);
    const at::Tensor sinks = all_sinks.index({nearest(all_sinks, kept).gt(0)});
    QVERIFY(sinks.size(0) > 100 && kept.size(0) > 100);
    ModelActivationSource with(model_, hook, shard(), 32, 4096, 5, true, -1, 1.0), without(model_, hook, shard(), 32, 4096, 5);
    const at::Tensor served = with.next(1024);
    QCOMPARE(hits(served, sinks), std::int64_t(0));
    QCOMPARE(hits(served, kept), std::int64_t(1024));
    QVERIFY(hits(without.next(1024), sinks) > 0);
    QVERIFY_EXCEPTION_THROWN(ModelActivationSource(model_, hook, shard(), 32, 4096, 5, true, -1, 0.5), Error);
  }

  void fileSourceCoversEveryRowPerEpoch() {
    std::vector<float> v(100 * 4);
    for (int i = 0; i < 100; ++i)
      for (int j = 0; j < 4; ++j) v[i * 4 + j] = static_cast<float>(i);
    SafetensorsWriter w;
    w.addF32("activations", {100, 4}, v);
    const std::string p = dir_.path().toStdString() + "/acts.safetensors";
    w.write(p);
    FileActivationSource src(p, 3);
    at::Tensor epoch = src.next(100).select(1, 0);
    QCOMPARE(std::get<0>(epoch.sort()).equal(at::arange(100, at::kFloat)), true);
    FileActivationSource resumed(p, 3);
    resumed.skip(130);
    src.next(30);
    QVERIFY(src.next(10).equal(resumed.next(10)));
  }

  // Training from a harvest leaves out the rows the index leaves out: end-of-text rows (by the
  // stored token ids) and rows whose norm is over the factor times the median.
  void fileSourceLeavesOutBoundaryAndMassiveRows() {
    std::vector<float> v(100 * 4);
    std::vector<std::int32_t> t(100, 1);
    for (int i = 0; i < 100; ++i)
      for (int j = 0; j < 4; ++j) v[i * 4 + j] = (i == 10 || i == 20) ? 1e5f + static_cast<float>(i) : static_cast<float>(i);
    for (int i : {5, 15, 25, 20}) t[i] = 7;  // row 20 is both
    SafetensorsWriter w;
    w.addF32("activations", {100, 4}, v);
    w.add("tokens", DType::I32, {100}, t.data(), t.size() * 4);
    const std::string p = dir_.path().toStdString() + "/marked.safetensors";
    w.write(p);
    FileActivationSource src(p, 3, 7, 10.0);
    QCOMPARE(src.rows(), std::int64_t(95));
    QCOMPARE(src.leftOutBoundary(), std::int64_t(4));
    QCOMPARE(src.leftOutMassive(), std::int64_t(1));
    const at::Tensor served = std::get<0>(src.next(95).select(1, 0).sort());
    std::vector<float> expect;
    for (int i = 0; i < 100; ++i)
      if (i != 5 && i != 10 && i != 15 && i != 20 && i != 25) expect.push_back(static_cast<float>(i));
    QVERIFY(served.equal(at::tensor(expect)));
    QCOMPARE(FileActivationSource(p, 3).rows(), std::int64_t(100));
    QCOMPARE(FileActivationSource(p, 3, -1, 10.0).rows(), std::int64_t(98));
    // Without token ids the boundary rows cannot be found: refused, naming the file and the tensor.
    SafetensorsWriter bare;
    bare.addF32("activations", {100, 4}, v);
    const std::string q = dir_.path().toStdString() + "/bare.safetensors";
    bare.write(q);
    try {
      FileActivationSource(q, 3, 7);
      QFAIL("a file without token ids was read as if its boundary rows were left out");
    } catch (const Error& e) {
      const std::string what = e.what();
      QVERIFY2(what.find("bare.safetensors") != std::string::npos && what.find("'tokens'") != std::string::npos, e.what());
    }
  }

  void perfectSpliceRecoversAllLoss() {
    // relu(x) - relu(-x) = x: an SAE with W_enc = [I, -I], W_dec = [I; -I] reconstructs exactly.
    const auto sae = testutil::exactSae(64, at::zeros({64}));
    const auto ev = evaluateSplice(*model_, *sae, *shard(), 2, 4, 32);
    QVERIFY(std::fabs(ev.sae_loss - ev.clean_loss) < 1e-4);
    QVERIFY(ev.zero_loss > ev.clean_loss);
    QVERIFY(std::fabs(ev.ce_loss_recovered - 1.0) < 1e-3);
  }

  void badInputIsRefused() {
    QVERIFY_EXCEPTION_THROWN(ModelActivationSource(model_, "blocks.7.hook_resid_post", shard(), 32, 2048, 1), Error);
    QVERIFY_EXCEPTION_THROWN(ModelActivationSource(model_, "blocks.0.hook_resid_post", shard(), 999, 2048, 1), Error);
  }
};

QTEST_GUILESS_MAIN(TestActivationStore)
#include "test_activation_store.moc"
