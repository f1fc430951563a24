// The item models: each passes QAbstractItemModelTester through resets, sorts, searches and
// edits; the feature list's rows agree with the database's own queries.
#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QtTest>

#include "api/feature_db.h"
#include "feature_list_model.h"
#include "feature_score_model.h"
#include "steering_model.h"
#include "ui_test_util.h"

using namespace monoscope;
using namespace monoscope::ui;

class TestFeatureList : public QObject {
  Q_OBJECT
  std::unique_ptr<core::FeatureDb> db_;

 private Q_SLOTS:
  void initTestCase() {
    test::isolateSettings();
    db_ = core::FeatureDb::open(test::demoDb().toStdString());
  }

  void listModelPassesTesterAndMatchesDatabase() {
    FeatureListModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.setDatabase(db_.get());
    QCOMPARE(model.rowCount(), static_cast<int>(db_->info().d_sae));
    QCOMPARE(model.featureAt(0), 0);

    // Sorting by density (descending) through the view's sort call: a range of the database's
    // precomputed order, no ids held.
    model.sort(FeatureListModel::DensityColumn, Qt::DescendingOrder);
    QVERIFY(model.ranged());
    QVERIFY(!model.truncated());
    {
      QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
      model.refresh();  // every row's summary is read again
      QCOMPARE(changed.count(), 1);
    }
    double previous = 2.0;
    for (int r = 0; r < 200; ++r) {
      const double d = db_->summary(model.featureAt(r)).density;
      QVERIFY2(d <= previous, "densities are not descending");
      previous = d;
    }
    // Every id appears once.
    QSet<qint64> ids;
    for (int r = 0; r < model.rowCount(); ++r) ids.insert(model.featureAt(r));
    QCOMPARE(ids.size(), model.rowCount());
    QCOMPARE(model.rowOf(model.featureAt(17)), 17);

    // Search as you type: every row mentions the word, and the count is the database's.
    core::FeatureQuery q = model.query();
    q.text = "Israel";
    model.setQuery(q);
    QVERIFY(model.rowCount() > 0);
    QCOMPARE(model.rowCount(), static_cast<int>(db_->countFeatures(q)));
    for (int r = 0; r < model.rowCount(); ++r) {
      const auto s = db_->summary(model.featureAt(r));
      QVERIFY2(QString::fromStdString(s.explanation + " " + s.top_tokens).contains("Israel", Qt::CaseInsensitive),
               qPrintable(QString::fromStdString(s.explanation)));
    }
    // Filters.
    q.text.clear();
    q.filter = core::FeatureFilter::Dead;
    model.setQuery(q);
    for (int r = 0; r < model.rowCount(); ++r) QCOMPARE(db_->summary(model.featureAt(r)).count, 0);
    QCOMPARE(model.rowCount(), static_cast<int>(db_->info().dead));
    q.filter = core::FeatureFilter::Alive;
    model.setQuery(q);
    QCOMPARE(model.rowCount(), static_cast<int>(db_->info().d_sae - db_->info().dead));
    // Display: the explanation column shows the database's explanation.
    const qint64 f = model.featureAt(3);
    QCOMPARE(model.data(model.index(3, FeatureListModel::ExplanationColumn)).toString(),
             QString::fromStdString(db_->summary(f).explanation));
    model.setDatabase(nullptr);
    QCOMPARE(model.rowCount(), 0);
  }

  void scoreModelPassesTester() {
    FeatureScoreModel model("Activation");
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.setLabeler([](qint64 f) { return QStringLiteral("label %1").arg(f); });
    model.setScores({{4, 2.5}, {9, 1.0}});
    QCOMPARE(model.rowCount(), 2);
    QCOMPARE(model.featureAt(1), 9);
    QCOMPARE(model.data(model.index(0, FeatureScoreModel::ExplanationColumn)).toString(), QString("label 4"));
    model.setScores({});
    QCOMPARE(model.rowCount(), 0);
  }

  void steeringModelPassesTesterAndEdits() {
    SteeringModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.add({5, "five", 2.0f, 10.0, true});
    model.add({7, "seven", 0.0f, -3.0, false});
    model.add({5, "five", 2.0f, -5.0, true});  // replaces feature 5
    QCOMPARE(model.rowCount(), 2);
    auto edits = model.edits();
    QCOMPARE(edits[0].feature, 5);
    QCOMPARE(edits[0].value, -10.0);  // -5 x max 2
    QCOMPARE(edits[1].value, -3.0);
    QVERIFY(model.setData(model.index(1, SteeringModel::ValueColumn), "4.5"));
    QVERIFY(!model.setData(model.index(1, SteeringModel::ValueColumn), "nan"));
    QVERIFY(!model.setData(model.index(1, SteeringModel::ValueColumn), "1e300"));
    QCOMPARE(model.edits()[1].value, 4.5);
    // A relative value without a known max is refused with the feature named.
    QVERIFY(model.setData(model.index(1, SteeringModel::RelativeColumn), Qt::Checked, Qt::CheckStateRole));
    try {
      model.edits();
      QFAIL("expected an error");
    } catch (const std::exception& e) {
      QVERIFY2(QString(e.what()).contains("feature 7"), e.what());
    }
    model.removeRow(0);
    model.clear();
    QCOMPARE(model.rowCount(), 0);
  }
};

QTEST_MAIN(TestFeatureList)
#include "test_feature_list.moc"
