// Data-parallel SAE training over c10d (Gloo on the loopback address): N ranks with batch B
// reach the weights one process reaches with batch N*B; a lost rank stops the others with an
// error naming the timeout; the run resumes with another number of ranks.
#include <ATen/ATen.h>

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <unistd.h>

#include "io/safetensors.h"
#include "io/torch_bridge.h"
#include "sae/sae_trainer.h"
#include "test_util.h"

using namespace monoscope::core;

class TestDistributed : public QObject {
  Q_OBJECT

  QTemporaryDir tmp_;
  QString acts_;
  int next_port_ = 20000 + static_cast<int>(getpid() % 20000);

  QString tmp(const QString& name) { return tmp_.path() + "/" + name; }

  QStringList trainArgs(const QString& arch, std::int64_t batch, std::int64_t tokens, const QString& out) {
    return {"train-sae", "--activations", acts_, "--arch", arch, "--k", "4", "--l1", "1", "--d-sae", "64",
            "--tokens", QString::number(tokens), "--batch-size", QString::number(batch), "--seed", "3",
            "--out", out, "--threads", "1"};
  }

  // Starts one rank of a `world`-process group.
  QProcess* startRank(int rank, int world, int port, const QStringList& args) {
    auto* p = new QProcess(this);
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("RANK", QString::number(rank));
    env.insert("LOCAL_RANK", QString::number(rank));
    env.insert("WORLD_SIZE", QString::number(world));
    env.insert("MASTER_ADDR", "127.0.0.1");
    env.insert("MASTER_PORT", QString::number(port));
    p->setProcessEnvironment(env);
    p->start(MONOSCOPE_CLI, args);
    return p;
  }

  static at::Tensor weight(const QString& dir, const char* name) {
    const std::string path = (dir + "/sae_weights.safetensors").toStdString();
    SafetensorsFile f(path);
    return toFloatTensor(f.tensor(name), path);
  }

  void compareRuns(const QString& arch) {
    const QString one = tmp("one-" + arch), two = tmp("two-" + arch);
    QProcess single;
    // 40 steps: float rounding (the ranks' two partial sums against one) grows over training,
    // fastest where Adam divides a near-zero gradient by its near-zero second moment or a rounding
    // difference flips a TopK choice (with PyPI's LibTorch: 2e-7 after 5 steps, 1e-3 after 100).
    single.start(MONOSCOPE_CLI, trainArgs(arch, 512, 512 * 40, one));
    QVERIFY(single.waitForFinished(120000));
    const QByteArray es = single.readAllStandardError();
    QVERIFY2(single.exitCode() == 0, es.constData());
    const int port = next_port_++;
    QProcess* r1 = startRank(1, 2, port, trainArgs(arch, 256, 512 * 40, two));
    QProcess* r0 = startRank(0, 2, port, trainArgs(arch, 256, 512 * 40, two));
    QVERIFY(r0->waitForFinished(120000) && r1->waitForFinished(120000));
    const QByteArray e0 = r0->readAllStandardError(), e1 = r1->readAllStandardError();
    QVERIFY2(r0->exitCode() == 0, e0.constData());
    QVERIFY2(r1->exitCode() == 0, e1.constData());
    QVERIFY2(e1.contains("rank 1 of 2: done"), e1.constData());
    for (const char* name : {"W_enc", "b_enc", "W_dec", "b_dec"}) {
      const at::Tensor a = weight(one, name), b = weight(two, name);
      const double diff = testutil::maxAbsDiff(a, b), scale = a.abs().max().item<double>();
      qInfo("%s %s: max |1 process - 2 ranks| %.2e (max |w| %.3f)", qPrintable(arch), name, diff, scale);
      QVERIFY2(diff <= 2e-5 * std::max(1.0, scale), name);
    }
  }

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(tmp_.isValid());
    SyntheticFeatures data(32, 128, 3.0, 7);
    acts_ = tmp("acts.safetensors");
    saveTensors(acts_.toStdString(), {{"activations", data.sample(20000).contiguous()}}, {});
  }

  void twoRanksEqualOneProcess_data() {
    QTest::addColumn<QString>("arch");
    QTest::newRow("topk") << "topk";
    QTest::newRow("standard") << "standard";
  }
  void twoRanksEqualOneProcess() {
    QFETCH(QString, arch);
    compareRuns(arch);
  }

  void lmTrainingTwoRanksEqualOneProcess() {
    // A token corpus (a fixed cycle) and the small tokenizer.
    const QString corpus = tmp("lm-corpus");
    QDir().mkpath(corpus);
    std::vector<std::int32_t> t(20000);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::int32_t>((i * 7) % 31);
    for (const char* name : {"/train.tokens.safetensors", "/valid.tokens.safetensors"}) {
      SafetensorsWriter w;
      w.add("tokens", DType::I32, {static_cast<std::int64_t>(t.size())}, t.data(), t.size() * 4);
      w.write((corpus + name).toStdString());
    }
    auto args = [&](int batch, const QString& out) {
      return QStringList{"train-lm", "--corpus", corpus, "--tokenizer",
                         QString::fromStdString(testutil::fixture("tokenizer_small")), "--out", out, "--d-model", "32",
                         "--layers", "2", "--heads", "2", "--context", "32", "--batch-size", QString::number(batch),
                         "--seq-len", "16", "--steps", "30", "--warmup", "3", "--eval-every", "30", "--seed", "4",
                         "--threads", "1"};
    };
    QProcess single;
    single.start(MONOSCOPE_CLI, args(8, tmp("lm-one")));
    QVERIFY(single.waitForFinished(120000));
    const QByteArray es = single.readAllStandardError();
    QVERIFY2(single.exitCode() == 0, es.constData());
    const int port = next_port_++;
    QProcess* r1 = startRank(1, 2, port, args(4, tmp("lm-two")));
    QProcess* r0 = startRank(0, 2, port, args(4, tmp("lm-two")));
    QVERIFY(r0->waitForFinished(120000) && r1->waitForFinished(120000));
    const QByteArray e0 = r0->readAllStandardError(), e1 = r1->readAllStandardError();
    QVERIFY2(r0->exitCode() == 0, e0.constData());
    QVERIFY2(r1->exitCode() == 0 && e1.contains("rank 1 of 2: done"), e1.constData());
    const std::string a_path = (tmp("lm-one") + "/model/model.safetensors").toStdString();
    const std::string b_path = (tmp("lm-two") + "/model/model.safetensors").toStdString();
    SafetensorsFile a(a_path), b(b_path);
    double worst = 0;
    for (const auto& name : a.names()) {
      const at::Tensor x = toFloatTensor(a.tensor(name), a_path), y = toFloatTensor(b.tensor(name), b_path);
      worst = std::max(worst, testutil::maxAbsDiff(x, y) / std::max(1.0, x.abs().max().item<double>()));
    }
    qInfo("LM: max relative |1 process - 2 ranks| over %zu tensors: %.2e", a.names().size(), worst);
    QVERIFY2(worst < 1e-4, std::to_string(worst).c_str());
  }

  void lostRankStopsTheOthersAndTheRunResumes() {
    const QString out = tmp("killed");
    QStringList args = trainArgs("topk", 256, 256LL * 2 * 1000000, out);
    args << "--checkpoint-every" << "20" << "--dist-timeout" << "30";
    const int port = next_port_++;
    QProcess* r1 = startRank(1, 2, port, args);
    QProcess* r0 = startRank(0, 2, port, args);
    // Wait for the first checkpoint, then kill rank 1 outright.
    QElapsedTimer t;
    t.start();
    while (!QFile::exists(out + "/checkpoint.safetensors") && t.elapsed() < 60000) QTest::qWait(50);
    QVERIFY(QFile::exists(out + "/checkpoint.safetensors"));
    r1->kill();
    t.restart();
    QVERIFY(r0->waitForFinished(60000));
    qInfo("rank 0 stopped %lld ms after rank 1 was killed", static_cast<long long>(t.elapsed()));
    QCOMPARE(r0->exitCode(), 1);
    const QString err = QString::fromUtf8(r0->readAllStandardError());
    QVERIFY2(err.contains("rank 0 of 2") && err.contains("30 s timeout") && err.contains("resumes"), qPrintable(err));
    r1->waitForFinished(10000);
    // One process picks the run up where the two left it.
    QProcess resume;
    resume.start(MONOSCOPE_CLI, trainArgs("topk", 512, 512 * 100, out));
    QVERIFY(resume.waitForFinished(120000));
    const QByteArray rerr = resume.readAllStandardError();
    QVERIFY2(resume.exitCode() == 0, rerr.constData());
    QVERIFY2(rerr.contains("resuming from step"), rerr.constData());
    QVERIFY(QFile::exists(out + "/sae_weights.safetensors"));
  }

  void aMissingRankTimesOut() {
    QStringList args = trainArgs("topk", 256, 512 * 10, tmp("alone"));
    args << "--dist-timeout" << "2";
    QProcess* r0 = startRank(0, 2, next_port_++, args);
    QVERIFY(r0->waitForFinished(60000));
    QCOMPARE(r0->exitCode(), 1);
    const QString err = QString::fromUtf8(r0->readAllStandardError()).trimmed();
    QVERIFY2(err.contains("could not join the process group") && err.contains("within 2 s") && !err.contains('\n'),
             qPrintable(err));
  }

  void badEnvironmentIsRefused() {
    QProcess* p = startRank(2, 2, next_port_++, trainArgs("topk", 256, 512, tmp("bad")));
    QVERIFY(p->waitForFinished(30000));
    QCOMPARE(p->exitCode(), 1);
    QVERIFY(p->readAllStandardError().contains("RANK=2 is not below WORLD_SIZE=2"));
  }
};

QTEST_GUILESS_MAIN(TestDistributed)
#include "test_distributed.moc"
