// The prompt inspector (per-token features, last-token probe, contrastive search) and the map
// (points from the database, hit-testing, click to open, zoom about the cursor, concept light-up).
#include <QCheckBox>
#include <QLineEdit>
#include <QSignalSpy>
#include <QtTest>
#include <cmath>
#include <set>

#include "feature_score_model.h"
#include "map_panel.h"
#include "map_view.h"
#include "prompt_inspector.h"
#include "session.h"
#include "token_text_view.h"
#include "ui_test_util.h"

using namespace monoscope;
using namespace monoscope::ui;

class TestInspectorMap : public QObject {
  Q_OBJECT
  Session* session_ = nullptr;

 private Q_SLOTS:
  void initTestCase() {
    test::isolateSettings();
    session_ = new Session(this);
    session_->openDatabase(test::demoDb());
    session_->openEngine(test::demoModel(), test::demoSae());
    QTRY_VERIFY_WITH_TIMEOUT(session_->worker().hasEngine(), 60000);
  }

  void inspectorShowsTokenAndLastTokenFeatures() {
    PromptInspector inspector(session_);
    QSignalSpy inspected(&inspector, &PromptInspector::inspected);
    inspector.setPrompt("And Moses went up unto the LORD");
    inspector.inspect();
    QTRY_COMPARE_WITH_TIMEOUT(inspected.count(), 1, 30000);
    const auto& encoded = inspector.encoded();
    QVERIFY(encoded.tokens.size() >= 6);
    // Last token: the strongest active features, strongest first, dense ones after the others;
    // unticking "Dense features last" gives the order by activation alone. The demo has no dense
    // feature, so the strongest is made dense here.
    const auto& last = encoded.active.back();
    QVERIFY(last.size() >= 2);
    QCOMPARE(inspector.lastTokenModel()->rowCount(), static_cast<int>(std::min<std::size_t>(20, last.size())));
    QCOMPARE(inspector.lastTokenModel()->featureAt(0), last.front().feature);
    const qint64 strongest = last.front().feature;
    inspector.lastTokenModel()->setDensity([&](qint64 f) { return f == strongest ? 0.5 : session_->featureDensity(f); });
    QCOMPARE(inspector.lastTokenModel()->featureAt(0), last[1].feature);
    QVERIFY(inspector.lastTokenModel()->isDense(inspector.lastTokenModel()->rowCount() - 1) || last.size() > 20);
    inspector.denseLastBox()->setChecked(false);
    QCOMPARE(inspector.lastTokenModel()->featureAt(0), strongest);
    QVERIFY(inspector.lastTokenModel()->isDense(0));
    inspector.denseLastBox()->setChecked(true);
    QCOMPARE(inspector.lastTokenModel()->featureAt(0), last[1].feature);
    // Each window's first token is flagged as an attention sink, as the engine marks it.
    QCOMPARE(encoded.sink.size(), encoded.tokens.size());
    QCOMPARE(inspector.tokens()->tokens().front().sink, std::uint8_t{1});
    for (std::size_t i = 1; i < encoded.sink.size(); ++i)
      QCOMPARE(inspector.tokens()->tokens()[static_cast<int>(i)].sink, static_cast<std::uint8_t>(encoded.sink[i]));
    // Clicking a token lists that token's features.
    auto* view = inspector.tokens();
    view->resize(600, 100);
    QTest::mouseClick(view, Qt::LeftButton, {}, view->tokenRect(2).center());
    QCOMPARE(inspector.tokenModel()->rowCount(), static_cast<int>(encoded.active[2].size()));
    if (!encoded.active[2].empty()) {  // the strongest that is not dense
      qint64 first = encoded.active[2].front().feature;
      for (const auto& a : encoded.active[2])
        if (!(session_->featureDensity(a.feature) > FeatureScoreModel::kDense)) {
          first = a.feature;
          break;
        }
      QCOMPARE(inspector.tokenModel()->featureAt(0), first);
    }
    // Selecting a feature highlights its activations on the tokens.
    const qint64 f = last.front().feature;
    session_->selectFeature(f);
    QTRY_VERIFY_WITH_TIMEOUT(view->tokens().back().value > 0.0f, 20000);
    QCOMPARE(view->tokens().back().value, last.front().value);
  }

  // Dense features (over 10% of the database's tokens) go after the others, marked, in their
  // order; the limit applies after that; with the option off the given order stands.
  void denseFeaturesListedLast() {
    FeatureScoreModel m(QStringLiteral("Activation"));
    m.setLabeler([](qint64 f) { return QStringLiteral("feature %1").arg(f); });
    m.setDensity([](qint64 f) { return f == 1 ? 0.74 : f == 3 ? 0.2 : f == 5 ? -1.0 : 0.01; });
    m.setScores({{1, 9.0}, {2, 8.0}, {3, 7.0}, {4, 6.0}, {5, 5.0}});
    std::vector<qint64> order;
    for (int r = 0; r < m.rowCount(); ++r) order.push_back(m.featureAt(r));
    QCOMPARE(order, (std::vector<qint64>{2, 4, 5, 1, 3}));
    QVERIFY(m.isDense(3) && m.isDense(4) && !m.isDense(0) && !m.isDense(2));
    QCOMPARE(m.data(m.index(3, FeatureScoreModel::ExplanationColumn)).toString(), QStringLiteral("Dense (74% of tokens): feature 1"));
    QCOMPARE(m.data(m.index(0, FeatureScoreModel::ExplanationColumn)).toString(), QStringLiteral("feature 2"));
    QVERIFY(m.data(m.index(3, 0), Qt::ForegroundRole).isValid() && !m.data(m.index(0, 0), Qt::ForegroundRole).isValid());
    m.setLimit(3);
    QCOMPARE(m.rowCount(), 3);
    QCOMPARE(m.featureAt(2), qint64{5});
    m.setDenseLast(false);
    QCOMPARE(m.featureAt(0), qint64{1});
    QCOMPARE(m.featureAt(2), qint64{3});
    m.setLimit(0);
    QCOMPARE(m.rowCount(), 5);
  }

  void contrastiveSearch() {
    PromptInspector inspector(session_);
    QSignalSpy done(&inspector, &PromptInspector::contrasted);
    inspector.setPrompt("the children of Israel in the wilderness");
    auto* negative = inspector.findChild<QLineEdit*>();
    QVERIFY(negative);
    negative->setText("def main(argv): return 0");
    inspector.contrast();
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 30000);
    QVERIFY(inspector.contrastModel()->rowCount() > 0);
    for (const auto& s : inspector.contrastModel()->scores()) QVERIFY(s.score > 0);
  }

  void mapPointsHitTestClickAndZoom() {
    MapPanel panel(session_);
    panel.resize(700, 600);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    auto* map = panel.view();
    QCOMPARE(map->points().size(), session_->db()->mapPoints().size());
    QVERIFY(map->points().size() > 1000);
    map->resetView();
    // Hit-testing finds a point at most the radius away from every sampled point's pixel.
    for (std::size_t i = 0; i < map->points().size(); i += 97) {
      const auto& p = map->points()[i];
      const QPointF px = map->toPixel(p.x, p.y);
      const qint64 found = map->featureAt(px);
      QVERIFY(found >= 0);
    }
    // Clicking opens the feature under the cursor.
    const auto& p = map->points()[123];
    const QPoint at = map->toPixel(p.x, p.y).toPoint();
    const qint64 expected = map->featureAt(at);
    QTest::mouseClick(map, Qt::LeftButton, {}, at);
    QCOMPARE(session_->currentFeature(), expected);
    // Zooming keeps the point under the cursor in place.
    const QPointF before = map->toPixel(p.x, p.y);
    map->zoomAt(before, 4.0);
    const QPointF after = map->toPixel(p.x, p.y);
    QVERIFY(std::abs(after.x() - before.x()) < 0.5 && std::abs(after.y() - before.y()) < 0.5);
    map->panBy(QPointF(30, -20));
    QVERIFY(std::abs(map->toPixel(p.x, p.y).x() - before.x() - 30) < 0.5);
  }

  // The map of a large dictionary, drawn from the database's layers: density tiles zoomed out,
  // single points (clickable) zoomed in, coarser tiles standing in while finer ones are read.
  void layeredMapDrawsTilesThenPoints() {
    const core::FeatureDb* db = session_->db();
    QVERIFY(db->mapLayout().present);
    MapView map;
    map.resize(640, 480);
    map.setLayers(db);
    map.setPointBudget(500);  // the demo's tens of thousands of points count as "too many"
    map.show();
    QVERIFY(QTest::qWaitForWindowExposed(&map));
    QVERIFY(map.layered());
    QVERIFY(map.points().empty());
    map.resetView();
    map.repaint();
    QVERIFY(!map.drewPoints());
    QVERIFY(map.layers().tileReads() > 0);
    QCOMPARE(map.featureAt(QPointF(320, 240)), qint64(-1));  // a bin is many features
    auto coloured = [](const QImage& img) {
      int n = 0;
      const QRgb base = img.pixel(0, 0);
      for (int y = 0; y < img.height(); y += 4)
        for (int x = 0; x < img.width(); x += 4) n += img.pixel(x, y) != base;
      return n;
    };
    QVERIFY(coloured(map.grab().toImage()) > 200);
    // Zoomed onto one feature's position, the view holds few points: they are drawn and picked.
    const auto points = db->mapPoints();
    const auto& target = points[points.size() / 3];
    for (int i = 0; i < 12 && !map.drewPoints(); ++i) {
      map.zoomAt(map.toPixel(target.x, target.y), 2.0);
      map.repaint();
    }
    QVERIFY(map.drewPoints());
    QTRY_VERIFY_WITH_TIMEOUT(map.layers().cellReads() > 0, 2000);
    QCoreApplication::processEvents();
    const qint64 found = map.featureAt(map.toPixel(target.x, target.y));
    QVERIFY(found >= 0);
    const auto at = db->mapPoint(found);
    QVERIFY(at);
    const QPointF d = map.toPixel(at->x, at->y) - map.toPixel(target.x, target.y);
    QVERIFY(std::hypot(d.x(), d.y()) <= 6.0);
    QVERIFY(coloured(map.grab().toImage()) > 0);
    // The selection is marked from the database's position of the feature.
    map.setSelection(target.id, {});
    map.repaint();
    QVERIFY(std::abs(map.toPixel(target.x, target.y).x() - 320) < 400);
  }

  void conceptLightsUpFeatures() {
    MapPanel panel(session_);
    QSignalSpy lit(&panel, &MapPanel::lit);
    panel.conceptEdit()->setText("the LORD said unto Moses");
    panel.lightUp();
    QTRY_COMPARE_WITH_TIMEOUT(lit.count(), 1, 30000);
    QVERIFY(lit.front().front().toInt() > 0);
    // Exactly the features of the concept's tokens read after a line break, which is the
    // window's first token (an attention sink) and lights nothing of its own.
    core::EncodedText encoded;
    bool encoded_done = false;
    session_->worker().post<core::EncodedText>(
        this, [](const core::Engine& engine) { return engine.encode("\nthe LORD said unto Moses", 32); },
        [&](core::EncodedText e) { encoded = std::move(e), encoded_done = true; }, [](QString) {});
    QTRY_VERIFY_WITH_TIMEOUT(encoded_done, 30000);
    std::set<qint64> expected;
    for (std::size_t t = 0; t < encoded.active.size(); ++t)
      if (encoded.sink[t] == core::EncodedText::kNoSink)
        for (const auto& a : encoded.active[t]) expected.insert(a.feature);
    std::set<qint64> shown;
    for (const auto& [id, strength] : panel.view()->lit()) shown.insert(id);
    QCOMPARE(shown, expected);
    QCOMPARE(encoded.sink.front(), core::EncodedText::kFirstPosition);
    bool first_only = false;  // some feature fires on the line break and nowhere else
    for (const auto& a : encoded.active.front()) first_only = first_only || !expected.count(a.feature);
    QVERIFY(first_only);
    // A one-word concept lights its word's features.
    panel.conceptEdit()->setText("Moses");
    panel.lightUp();
    QTRY_COMPARE_WITH_TIMEOUT(lit.count(), 2, 30000);
    QVERIFY(lit.back().front().toInt() > 0);
  }
};

QTEST_MAIN(TestInspectorMap)
#include "test_inspector_map.moc"
