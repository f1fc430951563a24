// The steering panel on the demo: a strong clamp changes the completion while the default is the
// same across runs with one seed; cancel stops within one token; runs are kept in the database's
// history and export as Markdown and JSON; the divergence is attributed to features.
#include <QJsonDocument>
#include <QJsonObject>
#include <QSignalSpy>
#include <QtTest>

#include "api/feature_db.h"
#include "feature_score_model.h"
#include "session.h"
#include "steering_export.h"
#include "steering_panel.h"
#include "ui_test_util.h"

using namespace monoscope;
using namespace monoscope::ui;

class TestSteeringPanel : public QObject {
  Q_OBJECT
  QTemporaryDir dir_;
  Session* session_ = nullptr;

  qint64 strongFeature() const {
    core::FeatureQuery q;
    q.sort = core::FeatureSort::Density;
    q.descending = true;
    q.filter = core::FeatureFilter::Alive;
    q.limit = 1;
    return session_->db()->listFeatures(q).front().id;
  }

  void run(SteeringPanel& panel) {
    QSignalSpy finished(&panel, &SteeringPanel::finished);
    panel.generate();
    QVERIFY(panel.running());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
  }

 private Q_SLOTS:
  void initTestCase() {
    test::isolateSettings();
    session_ = new Session(this);
    session_->openDatabase(test::writableDbCopy(dir_));
    session_->openEngine(test::demoModel(), test::demoSae());
    QTRY_VERIFY_WITH_TIMEOUT(session_->worker().hasEngine(), 60000);
  }

  void strongClampDiffersAndDefaultRepeats() {
    SteeringPanel panel(session_);
    panel.addFeature(strongFeature(), 10.0, true);
    panel.setPrompt("And God said unto Moses,");
    panel.setSampling(0.8, 0.95, 11, 20);
    run(panel);
    const auto first = panel.currentRun();
    QVERIFY(!first.default_text.empty());
    QVERIFY2(first.steered_text != first.default_text, first.steered_text.c_str());
    QVERIFY(panel.divergence() >= 0);
    run(panel);
    QCOMPARE(panel.currentRun().default_text, first.default_text);
    QCOMPARE(panel.currentRun().steered_text, first.steered_text);
    // Both runs are in the history, newest first.
    const auto runs = session_->db()->steeringRuns(10);
    QVERIFY(runs.size() >= 2);
    QCOMPARE(runs.front().steered_text, first.steered_text);

    // Export.
    const QString md = dir_.filePath("run.md"), js = dir_.filePath("run.json");
    panel.exportRun(md);
    panel.exportRun(js);
    QFile m(md), j(js);
    QVERIFY(m.open(QIODevice::ReadOnly) && j.open(QIODevice::ReadOnly));
    const QString markdown = QString::fromUtf8(m.readAll());
    QVERIFY(markdown.contains("And God said unto Moses,"));
    QVERIFY(markdown.contains(QString::fromStdString(first.default_text).left(10)));
    const auto json = QJsonDocument::fromJson(j.readAll()).object();
    QCOMPARE(json["steered"].toString(), QString::fromStdString(first.steered_text));
    QCOMPARE(json["request"].toObject()["seed"].toInt(), 11);
    QVERIFY(exportSteeringRun(panel.currentRun(), dir_.filePath("run.txt")).contains(".md or .json"));

    // Attribution of the divergence in one click.
    QSignalSpy attributed(&panel, &SteeringPanel::attributed);
    QSignalSpy failed(&panel, &SteeringPanel::failed);
    panel.attributeDivergence();
    QTRY_VERIFY_WITH_TIMEOUT(attributed.count() + failed.count() == 1, 30000);
    QCOMPARE(attributed.count(), 1);
    QVERIFY(panel.attributionModel()->rowCount() > 0);
  }

  void cancelStopsWithinOneToken() {
    SteeringPanel panel(session_);
    panel.addFeature(strongFeature(), 8.0, true);
    panel.setPrompt("In the beginning");
    panel.setSampling(0.0, 1.0, 1, 200);
    int after_cancel = -1;
    connect(&panel, &SteeringPanel::tokenStreamed, this, [&]() {
      if (after_cancel < 0) {
        panel.cancel();
        after_cancel = 0;
      } else {
        ++after_cancel;
      }
    });
    QSignalSpy finished(&panel, &SteeringPanel::finished);
    QSignalSpy failed(&panel, &SteeringPanel::failed);
    panel.generate();
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() + failed.count() == 1, 60000);
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.front().front().toString()));
    QCOMPARE(finished.front().front().toBool(), true);  // cancelled
    // Tokens already queued when Cancel was pressed still arrive; the model itself stops
    // within one token of the cancel.
    QVERIFY(after_cancel >= 0);
    QVERIFY2(panel.tokensAfterCancel() <= 1, qPrintable(QString::number(panel.tokensAfterCancel())));
    QVERIFY(panel.pieces(0).size() < 200);
    QVERIFY(panel.pieces(1).empty());  // the steered run never starts after a cancel
  }

  void relativeValueWithoutMaxIsRefused() {
    Session bare;
    SteeringPanel panel(&bare);
    panel.addFeature(3, 10.0, true);  // no database: no max, so the value becomes absolute
    panel.setPrompt("x");
    QSignalSpy failed(&panel, &SteeringPanel::failed);
    panel.generate();  // no model open: a readable error, no crash
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 5000);
    QVERIFY(failed.front().front().toString().contains("No model is open"));
  }
};

QTEST_MAIN(TestSteeringPanel)
#include "test_steering_panel.moc"
