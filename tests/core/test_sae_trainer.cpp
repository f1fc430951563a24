// SAE training: ground-truth recovery on synthetic superposition data, checkpoints, bad input;
// thresholds after the top k and the refitted decoder.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <QTemporaryDir>
#include <QtTest>

#include "api/training.h"
#include "io/torch_bridge.h"
#include "sae/activation_store.h"
#include "sae/sae.h"
#include "sae/sae_trainer.h"
#include "test_util.h"
#include "util/error.h"

using namespace monoscope::core;

class TestSaeTrainer : public QObject {
  Q_OBJECT

  static SaeTrainConfig smallConfig(const std::string& arch) {
    SaeTrainConfig c;
    c.architecture = arch;
    c.d_in = 32;
    c.d_sae = 64;
    c.hook_name = "blocks.0.hook_resid_post";
    c.k = 4;
    c.l1_coefficient = 1.0;
    c.lr = 3e-3;
    c.batch_size = 256;
    c.total_tokens = 256 * 1500;
    c.dead_window = 256 * 200;
    c.seed = 1;
    return c;
  }

  GroundTruthReport train(const SaeTrainConfig& c, SyntheticFeatures& data, std::unique_ptr<Sae>* out = nullptr) {
    SaeTrainer t(c, c10::Device(c10::kCPU));
    for (std::int64_t s = 0; s < c.totalSteps(); ++s) t.step(data.sample(c.batch_size));
    auto sae = t.exportSae();
    auto r = compareWithTruth(sae->W_dec(), data.features());
    qInfo("%s: mmcs learned->true %.3f, true->learned %.3f, recovered %.2f", c.architecture.c_str(),
          r.mmcs_learned_to_true, r.mmcs_true_to_learned, r.recovered_fraction);
    if (out) *out = std::move(sae);
    return r;
  }

 private Q_SLOTS:
  void standardRecoversTrueFeatures() {
    SyntheticFeatures data(32, 64, 3.0, 11);
    std::unique_ptr<Sae> sae;
    const auto r = train(smallConfig("standard"), data, &sae);
    QVERIFY(r.mmcs_true_to_learned > 0.9);
    QVERIFY(r.mmcs_learned_to_true > 0.9);
    // The exported SAE works on raw (unnormalised) activations.
    const auto m = sae->metrics(data.sample(2048));
    QVERIFY2(m.fraction_variance_explained > 0.8, std::to_string(m.fraction_variance_explained).c_str());
  }

  void topkRecoversTrueFeatures() {
    SyntheticFeatures data(32, 64, 3.0, 12);
    std::unique_ptr<Sae> sae;
    const auto r = train(smallConfig("topk"), data, &sae);
    QVERIFY(r.mmcs_true_to_learned > 0.9);
    QVERIFY(r.mmcs_learned_to_true > 0.9);
    QVERIFY(sae->metrics(data.sample(512)).l0 <= 4.0);
  }

  // The encoder's product in bf16: as good a dictionary as f32, and really computed otherwise
  // (the weights part from the f32 run's within a few steps).
  void bf16EncoderTrainsAsWell() {
    SyntheticFeatures data32(32, 64, 3.0, 12), data16(32, 64, 3.0, 12);
    SaeTrainConfig c = smallConfig("topk");
    std::unique_ptr<Sae> sae32, sae16;
    train(c, data32, &sae32);
    c.encoder_precision = "bf16";
    const auto r16 = train(c, data16, &sae16);
    QVERIFY2(r16.mmcs_true_to_learned > 0.9 && r16.mmcs_learned_to_true > 0.9,
             qPrintable(QString::number(r16.mmcs_true_to_learned)));
    SyntheticFeatures eval(32, 64, 3.0, 99);
    const at::Tensor x = eval.sample(4096);
    const double f32 = sae32->metrics(x).fraction_variance_explained, f16 = sae16->metrics(x).fraction_variance_explained;
    QVERIFY2(std::abs(f32 - f16) < 0.02, qPrintable(QString("%1 %2").arg(f32).arg(f16)));
    QVERIFY(testutil::maxAbsDiff(sae32->W_dec(), sae16->W_dec()) > 1e-4);
    c.encoder_precision = "fp8";
    QVERIFY_EXCEPTION_THROWN(c.validate(), Error);
  }

  void batchtopkRecoversTrueFeatures() {
    SyntheticFeatures data(32, 64, 3.0, 13);
    std::unique_ptr<Sae> sae;
    const auto r = train(smallConfig("batchtopk"), data, &sae);
    QVERIFY(r.mmcs_true_to_learned > 0.9);
    QVERIFY(r.mmcs_learned_to_true > 0.9);
    // It runs as a JumpReLU with one learned threshold, and keeps about k latents per token on
    // average (a batch-level budget, so rows vary).
    QCOMPARE(QString::fromStdString(sae->config().architecture), QString("jumprelu"));
    QCOMPARE(sae->config().metadata.value("trained_as", std::string()), std::string("batchtopk"));
    const double thr = sae->threshold()[0].item<double>();
    QVERIFY2(thr > 0, std::to_string(thr).c_str());
    QVERIFY(testutil::maxAbsDiff(sae->threshold(), at::full({64}, thr)) == 0);
    const auto m = sae->metrics(data.sample(4096));
    QVERIFY2(m.l0 > 2.0 && m.l0 < 6.0, std::to_string(m.l0).c_str());
    QVERIFY2(m.fraction_variance_explained > 0.8, std::to_string(m.fraction_variance_explained).c_str());
    // Rows with more true features active keep more latents.
    at::Tensor x = data.sample(4096);
    at::Tensor on = (sae->encode(x) > 0).sum(1).to(at::kFloat);
    QVERIFY(on.max().item<float>() > on.min().item<float>());
  }

  void checkpointResumesExactly_data() {
    QTest::addColumn<QString>("arch");
    QTest::addColumn<bool>("resample");
    QTest::newRow("topk") << "topk" << false;
    QTest::newRow("batchtopk") << "batchtopk" << false;
    QTest::newRow("topk, re-aiming dead latents") << "topk" << true;
  }

  void checkpointResumesExactly() {
    QFETCH(QString, arch);
    QFETCH(bool, resample);
    SaeTrainConfig c = smallConfig(arch.toStdString());
    c.total_tokens = 256 * 20;
    if (resample) {  // latents dead after two batches, re-aimed every three, on both sides of the checkpoint
      c.d_sae = 512;
      c.dead_window = 256 * 2;
      c.resample_every = 256 * 3;
    }
    SyntheticFeatures d1(32, 64, 3.0, 5), d2(32, 64, 3.0, 5);
    SaeTrainer straight(c, c10::Device(c10::kCPU));
    std::int64_t reaimed = 0;
    for (int s = 0; s < 20; ++s) reaimed += straight.step(d1.sample(256)).resampled;
    QCOMPARE(reaimed > 0, resample);
    QTemporaryDir dir;
    const std::string ck = dir.path().toStdString() + "/ck.safetensors";
    SaeTrainer first(c, c10::Device(c10::kCPU));
    for (int s = 0; s < 10; ++s) first.step(d2.sample(256));
    first.saveCheckpoint(ck);
    SaeTrainer resumed(c, c10::Device(c10::kCPU));
    QVERIFY(resumed.loadCheckpoint(ck));
    QCOMPARE(resumed.stepsDone(), std::int64_t(10));
    for (int s = 0; s < 10; ++s) resumed.step(d2.sample(256));
    QVERIFY(testutil::maxAbsDiff(straight.exportSae()->W_dec(), resumed.exportSae()->W_dec()) < 1e-5);
    QCOMPARE(resumed.threshold(), straight.threshold());
    // A checkpoint of another size is refused.
    SaeTrainConfig other = c;
    other.d_sae = 32;
    SaeTrainer wrong(other, c10::Device(c10::kCPU));
    QVERIFY_EXCEPTION_THROWN(wrong.loadCheckpoint(ck), Error);
  }

  void checkpointRefusesOtherRunSettings() {
    // A resume that would read another stream of rows (here: sinks kept instead of left out) is
    // refused with the setting named; the same settings resume.
    SaeTrainConfig c = smallConfig("topk");
    SyntheticFeatures d(32, 64, 3.0, 5);
    QTemporaryDir dir;
    const std::string ck = dir.path().toStdString() + "/ck.safetensors";
    SaeTrainer first(c, c10::Device(c10::kCPU));
    first.setRunSettings({{"seed", "3"}, {"sink_factor", "10"}});
    for (int s = 0; s < 3; ++s) first.step(d.sample(256));
    first.saveCheckpoint(ck);
    SaeTrainer other(c, c10::Device(c10::kCPU));
    other.setRunSettings({{"seed", "3"}, {"sink_factor", "0"}});
    try {
      other.loadCheckpoint(ck);
      QFAIL("a checkpoint written with other run settings was resumed");
    } catch (const Error& e) {
      const std::string what = e.what();
      QVERIFY2(what.find("sink_factor = 10, this run has 0") != std::string::npos, what.c_str());
    }
    SaeTrainer unset(c, c10::Device(c10::kCPU));
    QVERIFY_EXCEPTION_THROWN(unset.loadCheckpoint(ck), Error);
    SaeTrainer same(c, c10::Device(c10::kCPU));
    same.setRunSettings({{"seed", "3"}, {"sink_factor", "10"}});
    QVERIFY(same.loadCheckpoint(ck));
    QCOMPARE(same.stepsDone(), std::int64_t(3));
  }

  void refitSolvesOnlyTheFeaturesThatFire() {
    // The decoder refit solves the system over the features that fire on the calibration rows;
    // the others keep their trained rows exactly, and the rest equals a solve of the full
    // d_sae x d_sae system.
    SaeTrainConfig c = smallConfig("topk");
    SyntheticFeatures d(32, 64, 3.0, 9);
    SaeTrainer t(c, c10::Device(c10::kCPU));
    for (int s = 0; s < 30; ++s) t.step(d.sample(256));
    const auto trained = t.exportSae();
    at::Tensor b_enc = trained->b_enc().clone();
    b_enc.narrow(0, 56, 8).fill_(-1e4);  // features 56..63 never reach the top k
    QTemporaryDir dir;
    const std::string in = dir.path().toStdString() + "/sae", out = dir.path().toStdString() + "/cut",
                      acts = dir.path().toStdString() + "/acts.safetensors";
    Sae(trained->config(), trained->W_enc(), b_enc, trained->W_dec(), trained->b_dec()).save(in);
    saveTensors(acts, {{"activations", d.sample(2000)}});
    SaeThresholdOptions o;
    o.sae = in;
    o.activations = acts;
    o.out = out;
    o.fraction = 0.3;
    o.rows = 2000;
    o.refit_lambda = 10.0;
    o.threads = 1;
    o.device = "cpu";  // the reference below encodes on the CPU too
    SaeThresholdResult r;
    QVERIFY(calibrateSaeThresholds(o, nullptr, &r) == JobStatus::Done);
    QVERIFY(r.refitted && r.never_active >= 8 && r.refit_features <= 56 && r.refit_features > 0);
    const auto cut = Sae::load(out, c10::Device(c10::kCPU));
    const at::Tensor W0 = trained->W_dec().to(at::kDouble), W = cut->W_dec().to(at::kDouble);
    QVERIFY(at::equal(W.narrow(0, 56, 8), W0.narrow(0, 56, 8)));
    // The full system on the same rows: the job's first 90% of the seeded stream.
    const at::Tensor x = FileActivationSource(acts, o.seed).next(2000).narrow(0, 0, 1800);
    const auto top = cut->encodeTop(x, c.k);
    const at::Tensor F = at::zeros({1800, 64}, at::kDouble).scatter_(1, top.second, top.first.to(at::kDouble));
    const at::Tensor G = F.t().mm(F) + 10.0 * at::eye(64, at::kDouble);
    const at::Tensor R = F.t().mm((x - cut->b_dec()).to(at::kDouble)) + 10.0 * W0;
    const at::Tensor full = at::linalg_solve(G, R);
    QVERIFY2((full - W).abs().max().item<double>() < 1e-5, std::to_string((full - W).abs().max().item<double>()).c_str());
    QVERIFY((W - W0).abs().max().item<double>() > 1e-3);  // the refit changed the rows that fire
    // A dictionary none of whose features fires keeps its decoder.
    Sae(trained->config(), trained->W_enc(), at::full({64}, -1e4), trained->W_dec(), trained->b_dec()).save(in);
    QVERIFY(calibrateSaeThresholds(o, nullptr, &r) == JobStatus::Done);
    QCOMPARE(r.refit_features, std::int64_t(0));
    QVERIFY(at::equal(Sae::load(out, c10::Device(c10::kCPU))->W_dec(), trained->W_dec()));
  }

  // Both ways of computing TopK's auxiliary loss (dense over the dead columns, chunked over the
  // gathered rows) give autograd's gradients of the same loss.
  // Re-aiming dead latents: each takes the residual direction of one of the worst-reconstructed
  // rows (worst first), its encoder row that direction at 0.2 x the alive rows' mean norm, bias
  // 0; the alive latents are untouched; in training it leaves fewer latents dead.
  void resamplingReaimsDeadLatents() {
    SaeTrainConfig c = smallConfig("topk");
    c.d_sae = 128;
    c.dead_window = 256 * 20;
    SyntheticFeatures data(32, 16, 2.0, 21);
    SaeTrainer t(c, c10::Device(c10::kCPU));
    for (int s = 0; s < 80; ++s) t.step(data.sample(c.batch_size));
    const at::Tensor dead = t.deadLatents().clone();
    const std::int64_t n_dead = dead.sum().item<std::int64_t>();
    QVERIFY2(n_dead > 0 && n_dead < c.d_sae, qPrintable(QString::number(n_dead)));
    const auto before = t.exportSae();
    const at::Tensor x = data.sample(c.batch_size);
    // The exported SAE's residuals: the trainer's up to the input scale.
    const at::Tensor pre = at::matmul(x - before->b_dec(), before->W_enc()) + before->b_enc();
    auto top = pre.topk(c.k, 1);
    const at::Tensor codes = at::zeros_like(pre).scatter(1, std::get<1>(top), at::relu(std::get<0>(top)));
    const at::Tensor r = x - (at::matmul(codes, before->W_dec()) + before->b_dec());
    const at::Tensor worst = std::get<1>(r.pow(2).sum(1).topk(std::min<std::int64_t>(n_dead, c.batch_size)));
    QCOMPARE(t.resampleDead(x), n_dead);
    const auto after = t.exportSae();
    const at::Tensor alive = dead.logical_not();
    QCOMPARE(testutil::maxAbsDiff(after->W_dec().index({alive}), before->W_dec().index({alive})), 0.0);
    QCOMPARE(testutil::maxAbsDiff(after->W_enc().index({at::indexing::Slice(), alive}),
                                  before->W_enc().index({at::indexing::Slice(), alive})), 0.0);
    QCOMPARE(testutil::maxAbsDiff(after->b_enc().index({alive}), before->b_enc().index({alive})), 0.0);
    const at::Tensor cols = dead.nonzero().squeeze(1);
    const double alive_norm = before->W_enc().index({at::indexing::Slice(), alive}).norm(2, 0).mean().item<double>();
    for (std::int64_t j = 0; j < n_dead; ++j) {
      const std::int64_t i = cols[j].item<std::int64_t>();
      const at::Tensor u = r[worst[j % worst.size(0)].item<std::int64_t>()];
      const at::Tensor dec = after->W_dec()[i], enc = after->W_enc().select(1, i);
      QVERIFY(at::cosine_similarity(dec, u, 0).item<double>() > 0.9999);
      QVERIFY(at::cosine_similarity(enc, u, 0).item<double>() > 0.9999);
      QVERIFY(std::abs(enc.norm().item<double>() / (0.2 * alive_norm) - 1.0) < 1e-4);
      QCOMPARE(after->b_enc()[i].item<double>(), 0.0);
    }
    // In training, every 40 batches until the learning rate decays, re-aiming the latents silent
    // for 40 batches (the dead window is 100).
    std::int64_t dead_with = 0, dead_without = 0;
    for (std::int64_t every : {std::int64_t{0}, std::int64_t{256 * 40}}) {
      SaeTrainConfig cr = c;
      cr.resample_every = every;
      cr.dead_window = 256 * 100;
      SyntheticFeatures d(32, 16, 2.0, 21);
      SaeTrainer tr(cr, c10::Device(c10::kCPU));
      std::int64_t reaimed = 0;
      for (int s = 0; s < 400; ++s) reaimed += tr.step(d.sample(cr.batch_size)).resampled;
      (every > 0 ? dead_with : dead_without) = tr.deadLatents().sum().item<std::int64_t>();
      QVERIFY(every > 0 ? reaimed > 0 : reaimed == 0);
    }
    qInfo("dead after 400 steps (silent for 100 batches): %lld re-aiming every 40 batches, %lld without", static_cast<long long>(dead_with),
          static_cast<long long>(dead_without));
    QVERIFY(dead_with < dead_without);
    // Re-aiming every 20 batches takes the latents silent for 20 batches, dead or not.
    SaeTrainConfig cs = c;
    cs.dead_window = 256 * 1000;
    cs.resample_every = 256 * 20;
    SaeTrainer ts(cs, c10::Device(c10::kCPU));
    SyntheticFeatures ds(32, 16, 2.0, 21);
    for (int s = 0; s < 70; ++s) ts.step(ds.sample(cs.batch_size));
    QCOMPARE(ts.deadLatents().sum().item<std::int64_t>(), std::int64_t{0});
    QVERIFY(ts.resampleDead(ds.sample(cs.batch_size)) > 0);
    // Not for the standard architecture.
    SaeTrainConfig std_cfg = smallConfig("standard");
    std_cfg.resample_every = 256;
    QVERIFY_EXCEPTION_THROWN(std_cfg.validate(), Error);
  }

  void auxiliaryLossMatchesAutograd() {
    const std::int64_t B = 24, S = 40, d = 12;
    const double coef = 0.25;
    at::manual_seed(3);
    // On MONOSCOPE_TEST_DEVICE where one is set (tests/gpu/run.sh), else on the CPU.
    const auto dev = testutil::device();
    at::Tensor W_dec = at::randn({S, d}).to(dev), W_encT = at::randn({S, d}).to(dev), b_enc = (at::randn({S}) * 0.1).to(dev),
               b_dec = (at::randn({d}) * 0.1).to(dev), x = at::randn({B, d}).to(dev), e = at::randn({B, d}).to(dev);
    at::Tensor dead = (at::rand({S}) < 0.4).to(dev);
    dead[0] = true;
    const std::int64_t n_dead = dead.sum().item<std::int64_t>();
    QVERIFY(n_dead > 5);
    // Fewer than the dead latents, all of them, and more than there are (then all of them).
    for (const std::int64_t ka : {std::int64_t{5}, n_dead, n_dead + 3}) {
      // Reference: the same loss through autograd, the selection of the top dead latents fixed.
      std::vector<at::Tensor> params = {W_dec.clone(), W_encT.clone(), b_enc.clone(), b_dec.clone()};
      for (auto& p : params) p.set_requires_grad(true);
      at::Tensor pre_r = at::matmul(x - params[3], params[1].t()) + params[2];
      const std::int64_t kr = std::min(ka, n_dead);
      auto top = pre_r.detach().masked_fill(dead.logical_not().unsqueeze(0), -INFINITY).topk(kr, 1);
      at::Tensor A = at::zeros({B, S}, x.options()).scatter(1, std::get<1>(top), at::relu(pre_r.gather(1, std::get<1>(top))));
      at::Tensor loss_r = (at::matmul(A, params[0]) + e).pow(2).sum() / B;
      auto grads = torch::autograd::grad({loss_r * coef}, params);
      for (std::int64_t limit : {std::int64_t{0}, std::int64_t{1} << 30}) {
        c10::InferenceMode guard;
        at::Tensor xc = x - b_dec, pre = at::matmul(xc, W_encT.t()) + b_enc;
        at::Tensor gW_dec = at::zeros_like(W_dec), gW_encT = at::zeros_like(W_encT), gb_enc = at::zeros({S}, x.options()),
                   gb_dec = at::zeros({d}, x.options());
        const double loss = addTopkAuxiliaryLoss(pre, dead, e, xc, W_dec, W_encT, ka, coef, gW_dec, gW_encT, gb_enc,
                                                 gb_dec, limit);
        QVERIFY2(std::abs(loss - loss_r.item<double>()) < 1e-4 * loss,
                 qPrintable(QString("ka %1, limit %2").arg(ka).arg(limit)));
        const at::Tensor got[4] = {gW_dec, gW_encT, gb_enc, gb_dec};
        for (int i = 0; i < 4; ++i) {
          const double err = (got[i] - grads[i]).abs().max().item<double>();
          QVERIFY2(err < 1e-4 * (1 + grads[i].abs().max().item<double>()),
                   qPrintable(QString("ka %1, limit %2, gradient %3 off by %4").arg(ka).arg(limit).arg(i).arg(err)));
        }
        // Live latents receive no gradient through the decoder.
        QCOMPARE(gW_dec.index_select(0, dead.logical_not().nonzero().squeeze(1)).abs().max().item<double>(), 0.0);
      }
    }
  }

  // The gradients through a sparse code (the helper of the TopK and BatchTopK steps and of the
  // auxiliary loss), against autograd: rows with several latents, rows with none at the start, in
  // the middle and at the end (BatchTopK's budget is per batch), a zero value.
  void sparseCodeGradientsMatchAutograd() {
    const std::int64_t B = 7, S = 10, d = 5;
    at::manual_seed(5);
    const auto dev = testutil::device();  // as above
    at::Tensor W_dec = at::randn({S, d}).to(dev), W_encT = at::randn({S, d}).to(dev), b_enc = (at::randn({S}) * 0.1).to(dev),
               b_dec = (at::randn({d}) * 0.1).to(dev), x = at::randn({B, d}).to(dev);
    const at::Tensor rows = at::tensor({1, 1, 1, 3, 3, 4, 5, 5, 5}, at::kLong).to(dev);  // rows 0, 2 and 6 keep nothing
    const at::Tensor latents = at::tensor({1, 4, 7, 0, 9, 4, 2, 3, 8}, at::kLong).to(dev);
    std::vector<at::Tensor> params = {W_dec.clone(), W_encT.clone(), b_enc.clone(), b_dec.clone()};
    for (auto& p : params) p.set_requires_grad(true);
    const at::Tensor keep = at::ones({rows.size(0)}, x.options()).index_fill(0, at::tensor({4}, at::kLong).to(dev), 0.0);  // one zeroed value
    at::Tensor pre = at::matmul(x - params[3], params[1].t()) + params[2];
    at::Tensor code = at::zeros({B, S}, x.options()).index_put_({rows, latents}, at::relu(pre.index({rows, latents})) * keep);
    at::Tensor loss = (at::matmul(code, params[0]) + params[3] - x).pow(2).sum() / B;
    auto grads = torch::autograd::grad({loss}, params);
    c10::InferenceMode guard;
    at::Tensor xc = x - b_dec;
    const at::Tensor values = at::relu((at::matmul(xc, W_encT.t()) + b_enc).index({rows, latents})) * keep;
    const SparseCodeGradients g = sparseCodeGradients(x, xc, W_dec, b_dec, W_encT, rows, latents, values);
    QVERIFY((g.error - (at::matmul(code.detach(), W_dec) + b_dec - x)).abs().max().item<double>() < 1e-5);
    QVERIFY(g.g_values[4].item<double>() == 0.0);
    const at::Tensor got[4] = {g.gW_dec, g.gW_encT, g.gb_enc, g.gb_dec};
    for (int i = 0; i < 4; ++i) {
      const double err = (got[i] - grads[i]).abs().max().item<double>();
      QVERIFY2(err < 1e-5 * (1 + grads[i].abs().max().item<double>()),
               qPrintable(QString("gradient %1 off by %2").arg(i).arg(err)));
    }
  }

  // The Matryoshka objective: the mean squared error of the whole code and of its restrictions to
  // each prefix's latents, against autograd; a prefix that keeps no triple (no latent below 1)
  // still counts its error.
  void matryoshkaGradientsMatchAutograd() {
    const std::int64_t B = 7, S = 10, d = 5;
    at::manual_seed(6);
    const auto dev = testutil::device();
    at::Tensor W_dec = at::randn({S, d}).to(dev), W_encT = at::randn({S, d}).to(dev), b_enc = (at::randn({S}) * 0.1).to(dev),
               b_dec = (at::randn({d}) * 0.1).to(dev), x = at::randn({B, d}).to(dev);
    const at::Tensor rows = at::tensor({1, 1, 1, 3, 3, 4, 5, 5, 5}, at::kLong).to(dev);
    const at::Tensor latents = at::tensor({1, 4, 7, 6, 9, 4, 2, 3, 8}, at::kLong).to(dev);
    const std::vector<std::int64_t> prefixes = {1, 3, 5};
    std::vector<at::Tensor> params = {W_dec.clone(), W_encT.clone(), b_enc.clone(), b_dec.clone()};
    for (auto& p : params) p.set_requires_grad(true);
    at::Tensor pre = at::matmul(x - params[3], params[1].t()) + params[2];
    at::Tensor code = at::zeros({B, S}, x.options()).index_put_({rows, latents}, at::relu(pre.index({rows, latents})));
    at::Tensor loss = (at::matmul(code, params[0]) + params[3] - x).pow(2).sum() / B;
    for (const std::int64_t m : prefixes) {
      const at::Tensor head = code.narrow(1, 0, m);
      loss = loss + (at::matmul(head, params[0].narrow(0, 0, m)) + params[3] - x).pow(2).sum() / B;
    }
    loss = loss / static_cast<double>(prefixes.size() + 1);
    auto grads = torch::autograd::grad({loss}, params);
    c10::InferenceMode guard;
    at::Tensor xc = x - b_dec;
    const at::Tensor values = at::relu((at::matmul(xc, W_encT.t()) + b_enc).index({rows, latents}));
    double sq = 0;
    const SparseCodeGradients g =
        matryoshkaCodeGradients(x, xc, W_dec, b_dec, W_encT, rows, latents, values, prefixes, sq);
    QVERIFY(std::abs(sq / B - loss.item<double>()) < 1e-5 * (1 + loss.item<double>()));
    QVERIFY((g.error - (at::matmul(code.detach(), W_dec) + b_dec - x)).abs().max().item<double>() < 1e-5);
    const at::Tensor got[4] = {g.gW_dec, g.gW_encT, g.gb_enc, g.gb_dec};
    for (int i = 0; i < 4; ++i) {
      const double err = (got[i] - grads[i]).abs().max().item<double>();
      QVERIFY2(err < 1e-5 * (1 + grads[i].abs().max().item<double>()),
               qPrintable(QString("gradient %1 off by %2").arg(i).arg(err)));
    }
    // Prefixes: topk only, increasing, inside the dictionary.
    SaeTrainConfig c = smallConfig("topk");
    c.matryoshka = {4, 16};
    c.validate();
    for (const std::vector<std::int64_t>& bad : std::vector<std::vector<std::int64_t>>{{16, 4}, {4, 4}, {0}, {c.d_sae}}) {
      c.matryoshka = bad;
      QVERIFY_EXCEPTION_THROWN(c.validate(), Error);
    }
    SaeTrainConfig standard = smallConfig("standard");
    standard.matryoshka = {4};
    QVERIFY_EXCEPTION_THROWN(standard.validate(), Error);
    // A Matryoshka run trains: its whole-code error falls.
    c.matryoshka = {c.d_sae / 4, c.d_sae / 2};
    SaeTrainer t(c, c10::Device(c10::kCPU));
    at::manual_seed(7);
    const at::Tensor dirs = at::randn({8, c.d_in});
    double first = -1, last = 0;
    for (int i = 0; i < 60; ++i) {
      const at::Tensor batch = at::matmul(at::relu(at::randn({256, 8})), dirs);
      const SaeTrainStats s = t.step(batch);
      if (first < 0) first = s.mse;
      last = s.mse;
      QVERIFY(std::isfinite(s.loss));
    }
    QVERIFY2(last < 0.5 * first, qPrintable(QString("mse %1 -> %2").arg(first).arg(last)));
  }

  // Each group between prefixes gives its own share of k (entries summing to k): where the first group's
  // pre-activations are all larger, one top k would take every place there.
  void matryoshkaGroupsKeepTheirShareOfK() {
    at::manual_seed(8);
    const std::vector<std::int64_t> prefixes = {4, 12}, ks = {1, 2, 3};
    at::Tensor pre = at::randn({5, 30});
    pre.narrow(1, 0, 4).add_(100.0);
    auto [latents, values] = groupTopk(pre, prefixes, ks, 6);
    auto sorted = [](const at::Tensor& t) { return std::get<0>(t.sort(0)); };
    QCOMPARE(latents.sizes().vec(), (std::vector<std::int64_t>{5, 6}));
    for (std::int64_t r = 0; r < 5; ++r) {
      const std::int64_t lo[3] = {0, 4, 12}, hi[3] = {4, 12, 30};
      std::int64_t col = 0;
      for (int g = 0; g < 3; ++g) {
        const at::Tensor want = sorted(std::get<1>(pre[r].narrow(0, lo[g], hi[g] - lo[g]).topk(ks[g])).add(lo[g]));
        const at::Tensor got = sorted(latents[r].narrow(0, col, ks[g]));
        QVERIFY2(at::equal(want, got), qPrintable(QString("row %1 group %2").arg(r).arg(g)));
        QVERIFY(at::allclose(sorted(values[r].narrow(0, col, ks[g])), sorted(pre[r].index_select(0, got))));
        col += ks[g];
      }
    }
    // Shares: topk with prefixes, one more entry than prefixes, each within its group and k, summing to k or more.
    SaeTrainConfig c = smallConfig("topk");
    c.matryoshka = {c.d_sae / 4, c.d_sae / 2};
    c.matryoshka_k = {1, 1, c.k - 2};
    c.validate();
    for (const std::vector<std::int64_t>& bad :
         std::vector<std::vector<std::int64_t>>{{1, c.k - 1}, {1, 1, c.k - 3}, {0, 2, c.k - 2}, {1, 1, c.k + 1}}) {
      c.matryoshka_k = bad;
      QVERIFY_EXCEPTION_THROWN(c.validate(), Error);
    }
    SaeTrainConfig batch = smallConfig("batchtopk");
    batch.matryoshka = {4};
    batch.matryoshka_k = {1, batch.k - 1};
    QVERIFY_EXCEPTION_THROWN(batch.validate(), Error);
    // Caps: at most 2 from the first group, then the 3 largest; a run with caps trains.
    {
      const at::Tensor capped = groupTopk(pre, prefixes, {2, 8, 8}, 3).first;
      QCOMPARE(capped.size(1), std::int64_t{3});
      QVERIFY(((capped < 4).sum(1) == 2).all().item<bool>());  // the head's +100 wins both of its places
      QVERIFY(((capped >= 4).sum(1) == 1).all().item<bool>());
    }
    c.matryoshka_k = {1, 4, 4};
    c.validate();
    SaeTrainer t(c, c10::Device(c10::kCPU));
    at::manual_seed(9);
    const at::Tensor dirs = at::randn({8, c.d_in});
    double first = -1, last = 0;
    for (int i = 0; i < 60; ++i) {
      const SaeTrainStats s = t.step(at::matmul(at::relu(at::randn({256, 8})), dirs));
      if (first < 0) first = s.mse;
      last = s.mse;
      QVERIFY(s.l0 <= static_cast<double>(c.k));
    }
    QVERIFY2(last < 0.5 * first, qPrintable(QString("mse %1 -> %2").arg(first).arg(last)));
  }

  void badInputIsRejected() {
    SaeTrainConfig c = smallConfig("standard");
    c.architecture = "gated";
    QVERIFY_EXCEPTION_THROWN(c.validate(), Error);
    SaeTrainer t(smallConfig("standard"), c10::Device(c10::kCPU));
    QVERIFY_EXCEPTION_THROWN(t.step(at::zeros({8, 31})), Error);
    QVERIFY_EXCEPTION_THROWN(t.step(at::zeros({8, 32})), Error);  // zero norm: no scale
    at::Tensor nan = at::full({8, 32}, 1.0);
    t.step(nan);
    nan[0][0] = NAN;
    QVERIFY_EXCEPTION_THROWN(t.step(nan), Error);
  }
};

QTEST_GUILESS_MAIN(TestSaeTrainer)
#include "test_sae_trainer.moc"
