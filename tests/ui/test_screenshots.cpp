// Screenshot smoke test: the main window on the demo with a feature page, the map with a lit
// concept, the map drawn from its layers (tiles, then points), the prompt inspector and a
// finished steering run, written as PNGs into
// <build>/screenshots for a person to look at (MONOSCOPE_SCREENSHOT_MODEL, _SAE, _DB and _CLAMP
// shoot another workspace, e.g. the real demo). Checks that each image has content.
#include <QDir>
#include <QDockWidget>
#include <QImage>
#include <QLineEdit>
#include <QSet>
#include <QSignalSpy>
#include <QtTest>

#include "feature_page.h"
#include "main_window.h"
#include "map_panel.h"
#include "map_view.h"
#include "prompt_inspector.h"
#include "session.h"
#include "steering_panel.h"
#include "feature_score_model.h"
#include "ui_test_util.h"

using namespace monoscope::ui;

class TestScreenshots : public QObject {
  Q_OBJECT
 private:
  QString dir_ = QStringLiteral(MONOSCOPE_SCREENSHOTS);

  // Distinct colours in a coarse sample: an empty or blank panel has a handful.
  static int colours(const QImage& image) {
    QSet<QRgb> seen;
    for (int y = 0; y < image.height(); y += 3)
      for (int x = 0; x < image.width(); x += 3) seen.insert(image.pixel(x, y) & 0xF0F0F0);
    return seen.size();
  }
  void save(QWidget* w, const QString& name, int min_colours) {
    const QImage image = w->grab().toImage();
    const QString path = QDir(dir_).filePath(name);
    QVERIFY2(image.save(path), qPrintable(path));
    QVERIFY2(colours(image) >= min_colours, qPrintable(QStringLiteral("%1 looks empty (%2 colours)").arg(name).arg(colours(image))));
  }

 private Q_SLOTS:
  void initTestCase() {
    test::isolateSettings();
    QDir().mkpath(dir_);
  }

  void mainWindowPanels() {
    MainWindow window;
    window.resize(1600, 1000);
    window.show();
    // Another workspace (the real demo's model, SAE and database) when these are set.
    const QString model = qEnvironmentVariable("MONOSCOPE_SCREENSHOT_MODEL", test::demoModel());
    const QString sae = qEnvironmentVariable("MONOSCOPE_SCREENSHOT_SAE", test::demoSae());
    const QString db = qEnvironmentVariable("MONOSCOPE_SCREENSHOT_DB", test::demoDb());
    bool clamp_ok = false;
    const double clamp = qEnvironmentVariable("MONOSCOPE_SCREENSHOT_CLAMP", "10").toDouble(&clamp_ok);
    QVERIFY2(clamp_ok, "MONOSCOPE_SCREENSHOT_CLAMP: expected a number (times the feature's max activation)");
    QVERIFY(window.openWorkspace({model, sae, db}, true).isEmpty());
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->worker().hasEngine(), 60000);

    // The feature the prompt's last token activates most.
    auto* inspector = window.inspector();
    QSignalSpy inspected(inspector, &PromptInspector::inspected);
    inspector->setPrompt("And God said unto Moses, Speak unto the children of Israel");
    inspector->inspect();
    QTRY_COMPARE_WITH_TIMEOUT(inspected.count(), 1, 30000);
    QVERIFY(inspector->lastTokenModel()->rowCount() > 0);
    const qint64 feature = inspector->lastTokenModel()->featureAt(0);
    window.session()->selectFeature(feature);
    QCOMPARE(window.featurePage()->feature(), feature);
    inspector->showToken(3);
    QTest::qWait(300);  // the highlight values arrive from the worker

    QSignalSpy lit(window.mapPanel(), &MapPanel::lit);
    window.mapPanel()->conceptEdit()->setText("Moses and Aaron");
    window.mapPanel()->lightUp();
    QTRY_COMPARE_WITH_TIMEOUT(lit.count(), 1, 30000);

    QCoreApplication::processEvents();
    save(&window, "main_window.png", 40);
    save(window.featurePage(), "feature_page.png", 30);
    save(window.mapPanel(), "map.png", 20);
    save(window.inspector(), "prompt_inspector.png", 20);

    auto* steering = window.steering();
    window.showPanel(steering);
    steering->addFeature(feature, clamp, true);
    steering->setPrompt("And God said unto Moses,");
    steering->setSampling(0.7, 0.95, 7, 24);
    QSignalSpy finished(steering, &SteeringPanel::finished);
    steering->generate();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
    QCoreApplication::processEvents();
    save(steering, "steering.png", 20);
    save(&window, "main_window_steering.png", 40);
  }

  // The map as a large dictionary draws it (the demo's database through its map layers, with a
  // point budget small enough that the whole map is density tiles): zoomed out, then in to points.
  void layeredMap() {
    Session session;
    session.openDatabase(test::demoDb());
    MapView map;
    map.resize(700, 560);
    map.setLayers(session.db());
    map.setPointBudget(2000);
    map.show();
    QVERIFY(QTest::qWaitForWindowExposed(&map));
    map.resetView();
    for (int i = 0; i < 8; ++i) {  // let budgeted reads fill in
      map.repaint();
      QCoreApplication::processEvents();
    }
    QVERIFY(!map.drewPoints());
    save(&map, "map_tiles.png", 20);
    const auto points = session.db()->mapPoints();
    const auto& p = points[points.size() / 2];
    for (int i = 0; i < 12 && !map.drewPoints(); ++i) {
      map.zoomAt(map.toPixel(p.x, p.y), 1.6);
      map.repaint();
    }
    for (int i = 0; i < 8; ++i) {
      map.repaint();
      QCoreApplication::processEvents();
    }
    QVERIFY(map.drewPoints());
    save(&map, "map_points.png", 10);
  }
};

QTEST_MAIN(TestScreenshots)
#include "test_screenshots.moc"
