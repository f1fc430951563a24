// Jobs started from the app: progress reaches the GUI, Cancel stops a job (not an error), an
// error arrives as a readable message, and a real index job of the demo runs on its own thread
// while the GUI keeps handling events, then opens the database it built.
#include <QElapsedTimer>
#include <QSettings>
#include <QSignalSpy>
#include <QTimer>
#include <QtTest>
#include <thread>

#include <QDialogButtonBox>
#include <QListWidget>
#include <QMenu>
#include <QMessageBox>
#include <QFile>
#include <QFileInfo>
#include <QPushButton>
#include <QTemporaryDir>
#include <filesystem>

#include "demo_paths.h"
#include "hub_dialog.h"
#include "inference_worker.h"
#include "jobs_panel.h"
#include "main_window.h"
#include "session.h"
#include "ui_test_util.h"
#include "util/error.h"

using namespace monoscope;
using namespace monoscope::ui;

Q_DECLARE_METATYPE(monoscope::ui::JobsPanel::Outcome)

class TestJobs : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() {
    test::isolateSettings();
    qRegisterMetaType<JobsPanel::Outcome>();
  }

  // File > Open from Hugging Face Cache lists the cache's models and dictionaries and returns
  // the chosen paths; with nothing in the cache, Open is disabled.
  // A demo's database counts as built only when it was built from the SAE now in sae/ (the
  // fingerprint the index records): replacing the SAE's weights makes the app build it again.
  void demoDatabaseFollowsItsSae() {
    QTemporaryDir dir;
    const QDir root(dir.path());
    root.mkpath("demo/sae");
    for (const char* f : {"cfg.json", "sae_weights.safetensors", "training.json"})
      QVERIFY(QFile::copy(test::demoSae() + "/" + f, root.filePath("demo/sae/") + f));
    QVERIFY(QFile::link(test::demoModel(), root.filePath("demo/model")));
    QVERIFY(QFile::copy(test::demoDb(), root.filePath("demo/features.db")));
    qputenv("MONOSCOPE_DEMO", root.filePath("demo").toUtf8());
    const DemoPaths d = findDemo({}, true);
    QCOMPARE(d.root, root.filePath("demo"));
    QVERIFY(d.databaseExists());
    {
      QFile w(root.filePath("demo/sae/sae_weights.safetensors"));
      QVERIFY(w.open(QIODevice::ReadWrite));
      w.seek(w.size() - 2);
      const QByteArray last = w.read(2);
      w.seek(w.size() - 2);
      w.write(QByteArray(2, last[0] == 'x' ? 'y' : 'x'));
    }
    QVERIFY(!d.databaseExists());
    qunsetenv("MONOSCOPE_DEMO");
  }

  void hubDialogListsTheCache() {
    namespace fs = std::filesystem;
    QTemporaryDir tmp;
    const fs::path hub = tmp.path().toStdString();
    const fs::path model = hub / "models--org--demo" / "snapshots" / "abc";
    fs::create_directories(model);
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"})
      fs::copy_file(fs::path(MONOSCOPE_DEMO_DIR) / "model" / f, model / f);
    const fs::path sae = hub / "models--org--saes" / "snapshots" / "def" / "resid_post" / "layer_1_width_96_l0_small";
    fs::create_directories(sae.parent_path());
    fs::copy(fs::path(MONOSCOPE_DEMO_DIR) / ".." / ".." / "tests" / "fixtures" / "dictionaries" / "gemma-scope-2-270m-pt" /
                 "resid_post" / "layer_1_width_96_l0_small",
             sae);
    qputenv("HF_HUB_CACHE", QByteArray::fromStdString(hub.string()));
    {
      HubDialog dialog;
      QCOMPARE(dialog.models()->count(), 1);
      QCOMPARE(dialog.dictionaries()->count(), 1);
      QVERIFY(dialog.models()->item(0)->text().startsWith("org/demo"));
      QCOMPARE(dialog.modelPath(), QString::fromStdString(model.string()));
      QVERIFY(dialog.dictionaryPath().isEmpty());  // a dictionary is optional
      dialog.dictionaries()->setCurrentRow(0);
      QCOMPARE(dialog.dictionaryPath(), QString::fromStdString(sae.string()));
      QVERIFY(dialog.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Open)->isEnabled());
    }
    qputenv("HF_HUB_CACHE", QByteArray::fromStdString((hub / "empty").string()));
    {
      HubDialog dialog;
      QCOMPARE(dialog.models()->count(), 0);
      QVERIFY(!dialog.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Open)->isEnabled());
    }
    qunsetenv("HF_HUB_CACHE");
  }

  void progressCancelAndErrors() {
    JobsPanel panel;
    QSignalSpy progressed(&panel, &JobsPanel::progressed);
    QSignalSpy finished(&panel, &JobsPanel::finished);
    const int done = panel.start("count", [](const core::ProgressFn& p) {
      for (int i = 0; i <= 20; ++i) {
        if (!p({"count", i, 20, ""})) return core::JobStatus::Cancelled;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return core::JobStatus::Done;
    });
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 10000);
    QCOMPARE(finished[0][0].toInt(), done);
    QCOMPARE(finished[0][1].value<JobsPanel::Outcome>(), JobsPanel::Outcome::Done);
    QVERIFY(progressed.count() >= 2);

    const int endless = panel.start("endless", [](const core::ProgressFn& p) {
      for (int i = 0;; ++i) {
        if (!p({"spin", i, 0, ""})) return core::JobStatus::Cancelled;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    QTest::qWait(100);
    QCOMPARE(panel.running(), 1);
    panel.cancel(endless);
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 2, 10000);
    QCOMPARE(finished[1][1].value<JobsPanel::Outcome>(), JobsPanel::Outcome::Cancelled);

    panel.start("broken", [](const core::ProgressFn&) -> core::JobStatus {
      throw core::Error("corpus 'missing.safetensors' does not exist", "give an existing token shard");
    });
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 3, 10000);
    QCOMPARE(finished[2][1].value<JobsPanel::Outcome>(), JobsPanel::Outcome::Failed);
    QVERIFY(finished[2][2].toString().contains("missing.safetensors"));
    QCOMPARE(panel.running(), 0);
  }

  // One model with several dictionaries is one workspace: opening another dictionary, or
  // choosing one from the Dictionary menu, switches the SAE without loading the model again; a
  // dictionary that fails to load leaves the open one in place.
  void dictionariesSwitchWithoutReloadingTheModel() {
    QTemporaryDir dir;
    const QString second = dir.filePath("second-sae");
    std::filesystem::create_directories(second.toStdString());
    for (const char* f : {"cfg.json", "sae_weights.safetensors"})
      std::filesystem::copy_file((test::demoSae() + "/" + f).toStdString(), (second + "/" + f).toStdString());
    QSettings().clear();  // no workspace left from an earlier run
    MainWindow window;
    auto& worker = window.session()->worker();
    QSignalSpy opened(&worker, &InferenceWorker::opened), failed(&worker, &InferenceWorker::openFailed);
    QSignalSpy progress(&worker, &InferenceWorker::loadProgress);
    auto model_loads = [&]() {
      int n = 0;
      for (const auto& p : progress) n += p[0].toString() == "load model";
      return n;
    };
    window.openWorkspace({test::demoModel(), test::demoSae(), test::demoDb()});
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 1, 60000);
    // The spy records in the worker's thread; the window hears of it through its event queue.
    QTRY_COMPARE_WITH_TIMEOUT(window.dictionaries().size(), 1, 10000);
    QCOMPARE(model_loads(), 1);
    window.openWorkspace({test::demoModel(), second, {}});
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 2, 60000);
    QCOMPARE(model_loads(), 1);
    QCOMPARE(QString::fromStdString(worker.info().sae_dir), second);
    QTRY_COMPARE_WITH_TIMEOUT(window.dictionaries().size(), 2, 10000);
    QList<QAction*> entries;
    for (QAction* a : window.dictionaryMenu()->actions())
      if (a->isCheckable()) entries << a;
    QCOMPARE(entries.size(), 2);
    QVERIFY(!entries[0]->isChecked() && entries[1]->isChecked());
    QVERIFY2(entries[0]->text().contains(QFileInfo(test::demoDb()).fileName()), qPrintable(entries[0]->text() + " / " + entries[1]->text()));  // the first one's database
    entries[0]->trigger();
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 3, 60000);
    QCOMPARE(QString::fromStdString(worker.info().sae_dir), test::demoSae());
    QCOMPARE(window.session()->databasePath(), test::demoDb());
    QTRY_VERIFY_WITH_TIMEOUT(window.dictionaryMenu()->actions().value(0) && window.dictionaryMenu()->actions()[0]->isChecked(), 10000);
    QCOMPARE(model_loads(), 1);
    window.openWorkspace({test::demoModel(), dir.filePath("missing-sae"), {}});
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 60000);
    QVERIFY(failed[0][0].toString().contains("missing-sae"));
    // The window says so without blocking its event loop (the test goes on while it shows).
    QTRY_VERIFY_WITH_TIMEOUT(window.findChild<QMessageBox*>() != nullptr, 10000);
    QVERIFY(window.findChild<QMessageBox*>()->text().contains("missing-sae"));
    QCOMPARE(QString::fromStdString(worker.info().sae_dir), test::demoSae());
    QCOMPARE(model_loads(), 1);
  }

  // A circuit-tracer transcoder set opened with its model puts every layer in the Dictionary
  // menu and opens the first; choosing another layer switches without reloading the model.
  void transcoderSetJoinsTheWorkspace() {
    QTemporaryDir dir;
    const QString model = dir.filePath("llama-tiny");
    std::filesystem::copy(MONOSCOPE_FIXTURES "/models/llama-tiny", model.toStdString());
    std::filesystem::copy_file(MONOSCOPE_FIXTURES "/tokenizer_small/tokenizer.json", (model + "/tokenizer.json").toStdString());
    const QString set = QStringLiteral(MONOSCOPE_FIXTURES "/dictionaries/circuit-tracer/relu.yaml");
    QSettings().clear();
    MainWindow window;
    auto& worker = window.session()->worker();
    QSignalSpy opened(&worker, &InferenceWorker::opened), progress(&worker, &InferenceWorker::loadProgress);
    window.openWorkspace({model, set, {}});
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 1, 60000);
    QCOMPARE(opened[0][1].toString(), QFileInfo(set).absoluteFilePath() + "#0");
    QVERIFY2(opened[0][0].toString().contains("transcoder"), qPrintable(opened[0][0].toString()));
    QTRY_COMPARE_WITH_TIMEOUT(window.dictionaries().size(), 2, 10000);
    auto entries = [&]() {
      QList<QAction*> out;
      for (QAction* a : window.dictionaryMenu()->actions())
        if (a->isCheckable()) out << a;
      return out;
    };
    QCOMPARE(entries().size(), 2);
    // The window hears of the open through its event queue.
    QTRY_VERIFY_WITH_TIMEOUT(entries()[0]->isChecked() && !entries()[1]->isChecked(), 10000);
    QVERIFY(entries()[1]->text().contains("relu.yaml#1"));
    entries()[1]->trigger();
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 2, 60000);
    QCOMPARE(opened[1][1].toString(), QFileInfo(set).absoluteFilePath() + "#1");
    QCOMPARE(QString::fromStdString(worker.info().hook_name_out), QStringLiteral("blocks.1.mlp.hook_out"));
    int model_loads = 0;
    for (const auto& p : progress) model_loads += p[0].toString() == "load model";
    QCOMPARE(model_loads, 1);
    QTRY_VERIFY_WITH_TIMEOUT(!entries()[0]->isChecked() && entries()[1]->isChecked(), 10000);
    // A set that does not parse is refused before anything is opened.
    const QString broken = dir.filePath("broken.yaml");
    QFile f(broken);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("transcoders: [unclosed\n");
    f.close();
    QVERIFY(window.openWorkspace({model, broken, {}}, true).contains("not valid YAML"));
    QCOMPARE(window.dictionaries().size(), 2);
  }

  void indexJobFromTheAppKeepsGuiResponsive() {
    QTemporaryDir dir;
    const QString out = dir.filePath("built.db");
    MainWindow window;
    window.show();
    QSignalSpy finished(window.jobs(), &JobsPanel::finished);
    // Event-loop gaps while the job runs: the GUI thread must keep turning.
    QElapsedTimer clock;
    clock.start();
    qint64 last = 0, worst = 0;
    QTimer tick;
    connect(&tick, &QTimer::timeout, this, [&]() {
      const qint64 now = clock.elapsed();
      worst = std::max(worst, now - last);
      last = now;
    });
    tick.start(10);
    window.buildDatabase(test::demoModel(), test::demoSae(),
                         QStringLiteral(MONOSCOPE_DEMO_DIR "/corpus/sample.tokens.safetensors"), out, 8192);
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 180000);
    tick.stop();
    QCOMPARE(finished[0][1].value<JobsPanel::Outcome>(), JobsPanel::Outcome::Done);
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->db() != nullptr, 5000);
    QCOMPARE(window.session()->databasePath(), out);
    QCOMPARE(window.session()->db()->info().tokens, 8192);
    QVERIFY2(worst < 500, qPrintable(QStringLiteral("the GUI thread stalled for %1 ms").arg(worst)));
  }
};

QTEST_MAIN(TestJobs)
#include "test_jobs.moc"
