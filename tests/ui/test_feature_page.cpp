// The feature page on the demo database: selecting a feature fills it from the database,
// clicking a neighbour opens it, a label click is stored with scorer `manual`, a histogram click
// shows that interval's examples, explanations are versioned, history goes back and forward,
// and plots export.
#include <QAbstractButton>
#include <QButtonGroup>
#include <QFileInfo>
#include <QLineEdit>
#include <QListWidget>
#include <QtTest>
#include <qcustomplot.h>

#include "activation_histogram.h"
#include "example_row.h"
#include "feature_page.h"
#include "plot_export.h"
#include "session.h"
#include "ui_test_util.h"

using namespace monoscope;
using namespace monoscope::ui;

class TestFeaturePage : public QObject {
  Q_OBJECT
  QTemporaryDir dir_;
  QString db_path_;

  // The alive feature with the most interval examples.
  static qint64 richFeature(const core::FeatureDb& db) {
    core::FeatureQuery q;
    q.sort = core::FeatureSort::Density;
    q.descending = true;
    q.limit = 1;
    return db.listFeatures(q).front().id;
  }

 private Q_SLOTS:
  void initTestCase() {
    test::isolateSettings();
    db_path_ = test::writableDbCopy(dir_);
  }

  void selectingFillsPageAndNeighboursOpen() {
    Session session;
    session.openDatabase(db_path_);
    QVERIFY(session.writable());
    FeaturePage page(&session);
    connect(&session, &Session::featureSelected, &page, &FeaturePage::showFeature);
    page.resize(1200, 800);
    page.show();
    const qint64 f = richFeature(*session.db());
    session.selectFeature(f);
    const auto expected = session.db()->page(f);
    QCOMPARE(page.feature(), f);
    QCOMPARE(page.exampleRows().size(), static_cast<int>(expected.top_examples.size()));
    QCOMPARE(page.explanationEdit()->text(), QString::fromStdString(expected.summary.explanation));
    QCOMPARE(page.neighbourList()->count(), static_cast<int>(expected.neighbours.size()));
    QVERIFY(page.neighbourList()->count() > 0);
    // The example rows show the database's tokens.
    const auto* first = page.exampleRows().front();
    QCOMPARE(first->exampleId(), expected.top_examples.front().id);

    // Click the second neighbour.
    auto* list = page.neighbourList();
    const QRect rect = list->visualItemRect(list->item(1));
    QTest::mouseClick(list->viewport(), Qt::LeftButton, {}, rect.center());
    const qint64 neighbour = expected.neighbours[1].first;
    QCOMPARE(session.currentFeature(), neighbour);
    QCOMPARE(page.feature(), neighbour);
    // Back and forward through the history.
    QVERIFY(session.canGoBack());
    session.back();
    QCOMPARE(page.feature(), f);
    session.forward();
    QCOMPARE(page.feature(), neighbour);
  }

  void histogramClickShowsInterval() {
    Session session;
    session.openDatabase(db_path_);
    FeaturePage page(&session);
    page.resize(1200, 800);
    page.show();
    const qint64 f = richFeature(*session.db());
    page.showFeature(f);
    QVERIFY(QTest::qWaitForWindowExposed(&page));
    const auto& p = *page.page();
    QVERIFY(p.intervals.size() >= 3);
    // Click the middle of the third interval.
    auto* plot = page.histogramPlot();
    plot->replot();
    const double x = 0.5 * (p.intervals[2].lo + p.intervals[2].hi);
    const QPoint at(static_cast<int>(plot->xAxis->coordToPixel(x)), static_cast<int>(plot->yAxis->coordToPixel(0) - 5));
    QTest::mouseClick(plot, Qt::LeftButton, {}, at);
    QCOMPARE(page.section(), 3);
    QCOMPARE(page.exampleRows().size(), static_cast<int>(p.intervals[2].examples.size()));
  }

  void labelClickIsStored() {
    Session session;
    session.openDatabase(db_path_);
    FeaturePage page(&session);
    const qint64 f = richFeature(*session.db());
    page.showFeature(f);
    auto* row = page.exampleRows().front();
    const std::int64_t example = row->exampleId();
    row->labelButtons()->button(2)->click();
    QCOMPARE(row->manualLabel(), 2);
    // Read back through a separate connection.
    auto fresh = core::FeatureDb::open(db_path_.toStdString());
    bool found = false;
    for (const auto& e : fresh->page(f).top_examples) {
      if (e.id != example) continue;
      for (const auto& s : e.scores) found |= (s.scorer == "manual" && s.score == 2);
    }
    QVERIFY2(found, "the manual label was not stored");
    core::FeatureQuery labelled;
    labelled.filter = core::FeatureFilter::Labelled;
    QVERIFY(fresh->countFeatures(labelled) >= 1);
    // The histogram's colour mix counts it: the preferred score of that example is now 2.
    bool counted = false;
    for (const auto& e : page.page()->top_examples)
      if (e.id == example) counted = preferredScore(e) == 2;
    QVERIFY(counted);
    // Clicking the same label again removes it.
    row->labelButtons()->button(2)->click();
    QCOMPARE(row->manualLabel(), -1);
  }

  void explanationIsVersioned() {
    Session session;
    session.openDatabase(db_path_);
    FeaturePage page(&session);
    page.showFeature(5);
    const auto before = session.db()->explanationHistory(5).size();
    page.explanationEdit()->setText("test explanation: the word Israel");
    page.saveExplanation();
    const auto history = session.db()->explanationHistory(5);
    QCOMPARE(history.size(), before + 1);
    QCOMPARE(QString::fromStdString(session.db()->summary(5).explanation), QString("test explanation: the word Israel"));
  }

  void plotsExport() {
    Session session;
    session.openDatabase(db_path_);
    FeaturePage page(&session);
    page.resize(1000, 700);
    page.showFeature(richFeature(*session.db()));
    for (const char* suffix : {"png", "svg", "pdf"}) {
      const QString path = dir_.filePath(QStringLiteral("histogram.%1").arg(suffix));
      QCOMPARE(savePlot(page.histogramPlot(), path, 600, 300), QString());
      QVERIFY2(QFileInfo(path).size() > 500, qPrintable(path));
    }
    QVERIFY(savePlot(page.histogramPlot(), dir_.filePath("histogram.bmpx")).contains(".png, .svg or .pdf"));
  }

  void readOnlyDatabaseStillBrowses() {
    const QString ro = dir_.filePath("readonly.db");
    QFile::copy(test::demoDb(), ro);
    QFile(ro).setPermissions(QFile::ReadOwner);
    Session session;
    session.openDatabase(ro);
    FeaturePage page(&session);
    page.showFeature(3);
    QCOMPARE(page.feature(), 3);
    if (!QFileInfo(ro).isWritable()) QVERIFY(!session.writable());  // root can write anyway
  }

  void badDatabaseIsAnError() {
    const QString bad = dir_.filePath("garbage.db");
    QFile file(bad);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(QByteArray(4096, 'x'));
    file.close();
    Session session;
    try {
      session.openDatabase(bad);
      QFAIL("expected an error");
    } catch (const std::exception& e) {
      QVERIFY2(QString(e.what()).contains("garbage.db"), e.what());
    }
    QVERIFY(session.db() == nullptr);
  }
};

QTEST_MAIN(TestFeaturePage)
#include "test_feature_page.moc"
