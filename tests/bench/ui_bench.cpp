// Desktop-app timings (offscreen Qt, the real panels):
//   page DB N            click-to-filled-page: select a random feature, lay out and paint the page
//   map N FRAMES         map frame time while panning and zooming N synthetic points
//   map-layers DB PANS   map frame time of a large dictionary drawn from its layers, every zoom
//   first-token MODEL SAE DB RUNS   Generate pressed -> first streamed token on the GUI thread
// Each prints one JSON line with the figures and the target.
#include <QApplication>
#include <QElapsedTimer>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTest>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "api/feature_db.h"
#include "feature_list_model.h"
#include "feature_page.h"
#include "map_view.h"
#include "session.h"
#include "steering_panel.h"

using namespace monoscope;
using namespace monoscope::ui;

namespace {

struct Stats {
  double median, p95, max;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[std::min(v.size() - 1, static_cast<std::size_t>(v.size() * 0.95))], v.back()};
}

void print(const char* bench, const QString& what, const Stats& s, double target, std::size_t n) {
  std::printf(
      "{\"bench\": \"%s\", \"what\": \"%s\", \"n\": %zu, \"median_ms\": %.2f, \"p95_ms\": %.2f, \"max_ms\": %.2f, "
      "\"target_ms\": %.0f, \"max_over_target\": %.3f}\n",
      bench, qPrintable(what), n, s.median, s.p95, s.max, target, s.max / target);
  std::fflush(stdout);
}

int benchPage(const QString& db, int n) {
  Session session;
  session.openDatabase(db);
  FeaturePage page(&session);
  QObject::connect(&session, &Session::featureSelected, &page, &FeaturePage::showFeature);
  page.resize(1200, 800);
  page.show();
  QCoreApplication::processEvents();
  std::mt19937_64 rng(3);
  const auto d_sae = session.db()->info().d_sae;
  // A synthetic database (monoscope-bench synthetic-db) has examples for every stride-th
  // feature only: the pages clicked are those.
  const std::string recorded = session.db()->metaValue("bench_sample_stride");
  const qint64 stride = recorded.empty() ? 1 : std::max<qint64>(1, std::stoll(recorded));
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    const qint64 f = static_cast<qint64>(rng() % static_cast<std::uint64_t>((d_sae + stride - 1) / stride)) * stride;
    QElapsedTimer t;
    t.start();
    session.selectFeature(f);                            // reads the page from SQLite, builds the widgets
    QCoreApplication::sendPostedEvents();                // layout requests
    page.repaint();                                      // paints synchronously
    ms.push_back(t.nsecsElapsed() / 1e6);
  }
  print("ui_page", db.section('/', -1), stats(ms), 50.0, ms.size());
  if (qEnvironmentVariableIsSet("MONOSCOPE_BENCH_DETAIL")) {
    std::vector<double> read, build;
    for (int i = 0; i < 50; ++i) {
      const qint64 f = static_cast<qint64>(rng() % static_cast<std::uint64_t>(d_sae));
      QElapsedTimer t;
      t.start();
      (void)session.db()->page(f);
      read.push_back(t.nsecsElapsed() / 1e6);
      t.restart();
      page.showFeature(f);
      build.push_back(t.nsecsElapsed() / 1e6);
    }
    print("ui_page_read_only", db.section('/', -1), stats(read), 50.0, read.size());
    print("ui_page_show_only", db.section('/', -1), stats(build), 50.0, build.size());
  }
  return 0;
}

// The feature list on a database: loading the ids, then "scroll frames" (the data a view asks for
// when 40 new rows come into view), then a search as you type.
int benchList(const QString& db_path) {
  auto db = core::FeatureDb::open(db_path.toStdString());
  FeatureListModel model;
  QElapsedTimer t;
  t.start();
  model.setDatabase(db.get());
  const double load = t.nsecsElapsed() / 1e6;
  const int rows = model.rowCount();
  const bool ranged = model.ranged();
  std::mt19937_64 rng(9);
  std::vector<double> frames;
  for (int i = 0; i < 200; ++i) {
    const int top = static_cast<int>(rng() % static_cast<std::uint64_t>(std::max(1, model.rowCount() - 40)));
    t.restart();
    for (int r = top; r < top + 40; ++r)
      for (int c = 0; c < FeatureListModel::ColumnCount; ++c) (void)model.data(model.index(r, c));
    frames.push_back(t.nsecsElapsed() / 1e6);
  }
  print("ui_list_scroll_frame", db_path.section('/', -1), stats(frames), 16.0, frames.size());
  std::vector<double> sorts;
  for (int col : {FeatureListModel::DensityColumn, FeatureListModel::MaxColumn, FeatureListModel::IdColumn}) {
    t.restart();
    model.sort(col, Qt::DescendingOrder);
    sorts.push_back(t.nsecsElapsed() / 1e6);
  }
  std::vector<double> searches;
  core::FeatureQuery q = model.query();
  for (const char* text : {"t1", "t12", "t123", "t1234"}) {
    q.text = text;
    t.restart();
    model.setQuery(q);
    searches.push_back(t.nsecsElapsed() / 1e6);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("{\"bench\": \"ui_list_load\", \"what\": \"%s\", \"rows\": %d, \"ranged\": %s, \"load_ms\": %.1f, \"sort_max_ms\": %.1f, "
              "\"search_max_ms\": %.1f, \"peak_rss_mb\": %.1f}\n",
              qPrintable(db_path.section('/', -1)), rows, ranged ? "true" : "false", load, stats(sorts).max,
              stats(searches).max, ru.ru_maxrss / 1024.0);
  return 0;
}

int benchMap(int n, int frames) {
  std::vector<core::MapPoint> points(n);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<double> u(-6, -0.5);
  for (int i = 0; i < n; ++i) {
    const float cx = static_cast<float>(i % 40) * 0.7f, cy = static_cast<float>((i / 40) % 25) * 0.5f;
    points[i] = {i, cx + 0.3f * g(rng), cy + 0.3f * g(rng), std::pow(10.0, u(rng))};
  }
  MapView view;
  view.resize(1000, 800);
  view.setPoints(points);
  view.setSelection(17, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  std::vector<std::pair<qint64, float>> lit;
  for (int i = 0; i < 300; ++i) lit.push_back({i * 37, 0.5f});
  view.setLit(lit);
  view.show();
  QCoreApplication::processEvents();
  std::vector<double> ms;
  for (int i = 0; i < frames; ++i) {
    QElapsedTimer t;
    t.start();
    if (i % 3 == 2) view.zoomAt(QPointF(500 + (i % 7) * 20, 400), i % 2 ? 1.25 : 0.8);
    else view.panBy(QPointF(i % 2 ? 9 : -7, 5));
    view.repaint();
    ms.push_back(t.nsecsElapsed() / 1e6);
  }
  print("ui_map_frame", QStringLiteral("%1 points").arg(n), stats(ms), 16.0, ms.size());
  return 0;
}

// The map of a large dictionary drawn from its layers: frames while zooming from the whole map
// into its densest cell until single points are drawn, panning at every zoom, and back out. Every
// frame counts, including those that read tiles or cells and those that fill in what an earlier
// frame left to read.
int benchMapLayers(const QString& path, int pans) {
  auto db = core::FeatureDb::open(path.toStdString());
  if (!db->mapLayout().present) {
    std::fprintf(stderr, "%s has no map layers\n", qPrintable(path));
    return 1;
  }
  MapView view;
  view.resize(1000, 800);
  view.setLayers(db.get());
  view.show();
  QCoreApplication::processEvents();
  const auto& l = db->mapLayout();
  // The densest cell: where points appear last when zooming in.
  int best = 0;
  std::int64_t most = -1;
  for (int c = 0; c < l.cells * l.cells; ++c) {
    const std::int64_t n = l.pointsIn(c % l.cells, c / l.cells, c % l.cells + 1, c / l.cells + 1);
    if (n > most) most = n, best = c;
  }
  const float tx = l.min_x + (best % l.cells + 0.5f) * (l.max_x - l.min_x) / l.cells;
  const float ty = l.min_y + (best / l.cells + 0.5f) * (l.max_y - l.min_y) / l.cells;
  std::vector<double> tiles_ms, points_ms;
  auto frame = [&]() {
    do {
      QElapsedTimer t;
      t.start();
      view.repaint();
      (view.drewPoints() ? points_ms : tiles_ms).push_back(t.nsecsElapsed() / 1e6);
    } while (view.refillPending() && (QCoreApplication::processEvents(), true) && view.refillPending());
    QCoreApplication::processEvents();
  };
  int zooms = 0;
  frame();
  for (int z = 0; z < 60; ++z) {
    view.zoomAt(view.toPixel(tx, ty), 1.25);
    ++zooms;
    frame();
    for (int p = 0; p < pans; ++p) {
      view.panBy(QPointF(p % 2 ? 23 : -19, p % 3 ? 11 : -13));
      frame();
    }
    if (view.drewPoints() && z > 0 && points_ms.size() > static_cast<std::size_t>(6 * (pans + 1))) break;
  }
  for (int z = 0; z < zooms; ++z) {
    view.zoomAt(QPointF(500, 400), 0.8);
    frame();
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const std::size_t n = tiles_ms.size() + points_ms.size();
  std::vector<double> all = tiles_ms;
  all.insert(all.end(), points_ms.begin(), points_ms.end());
  print("ui_map_layers_frame", QStringLiteral("%1 (%2 zoom steps, %3 tile + %4 point frames, %5 tile and %6 cell reads)")
                                   .arg(path.section('/', -1)).arg(zooms).arg(tiles_ms.size()).arg(points_ms.size())
                                   .arg(view.layers().tileReads()).arg(view.layers().cellReads()),
        stats(all), 16.0, n);
  if (!tiles_ms.empty()) print("ui_map_layers_tiles", path.section('/', -1), stats(tiles_ms), 16.0, tiles_ms.size());
  if (!points_ms.empty()) print("ui_map_layers_points", path.section('/', -1), stats(points_ms), 16.0, points_ms.size());
  std::printf("{\"bench\": \"ui_map_layers_rss\", \"what\": \"%s\", \"peak_rss_mb\": %.1f}\n", qPrintable(path.section('/', -1)),
              ru.ru_maxrss / 1024.0);
  return 0;
}

int benchFirstToken(const QString& model, const QString& sae, const QString& db, int runs) {
  Session session;
  session.openDatabase(db);
  session.openEngine(model, sae, "auto", 2);
  if (!QTest::qWaitFor([&]() { return session.worker().hasEngine(); }, 120000)) return 1;
  SteeringPanel panel(&session);
  panel.resize(1200, 700);
  panel.show();
  panel.addFeature(session.db()->listFeatures({"", core::FeatureSort::Density, true}).front().id, 10.0, true);
  panel.setPrompt("And God said unto Moses, Speak unto the children of Israel, and say unto them,");
  panel.setSampling(0.7, 0.95, 7, 16);
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    QElapsedTimer t;
    double first = -1;
    auto c = QObject::connect(&panel, &SteeringPanel::tokenStreamed, [&]() {
      if (first < 0) first = t.nsecsElapsed() / 1e6;
    });
    QSignalSpy finished(&panel, &SteeringPanel::finished);
    t.start();
    panel.generate();
    if (!QTest::qWaitFor([&]() { return finished.count() > 0; }, 60000)) return 1;
    QObject::disconnect(c);
    ms.push_back(first);
  }
  print("ui_first_token", "demo", stats(ms), 200.0, ms.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  qputenv("QT_QPA_PLATFORM", qgetenv("QT_QPA_PLATFORM").isEmpty() ? "offscreen" : qgetenv("QT_QPA_PLATFORM"));
  QApplication app(argc, argv);
  QStandardPaths::setTestModeEnabled(true);
  const QStringList a = app.arguments();
  if (a.size() >= 3 && a[1] == "page") return benchPage(a[2], a.size() > 3 ? a[3].toInt() : 200);
  if (a.size() >= 3 && a[1] == "list") return benchList(a[2]);
  if (a.size() >= 3 && a[1] == "map-layers") return benchMapLayers(a[2], a.size() > 3 ? a[3].toInt() : 4);
  if (a.size() >= 3 && a[1] == "map") return benchMap(a[2].toInt(), a.size() > 3 ? a[3].toInt() : 120);
  if (a.size() >= 5 && a[1] == "first-token") return benchFirstToken(a[2], a[3], a[4], a.size() > 5 ? a[5].toInt() : 5);
  std::fprintf(stderr, "usage: monoscope-ui-bench page DB [N] | list DB | map POINTS [FRAMES] | map-layers DB [PANS] | first-token MODEL SAE DB [RUNS]\n");
  return 2;
}
