// The layers of large dictionaries (store/feature_layers.h): every order and filter read as a
// range equals the database's own ORDER BY; positions invert the orders; the map's tiles and
// cells hold every point once at every level; a schema-3 file gains its layers when opened for
// writing and still browses read-only without them; the search index follows edited
// explanations; damaged layers are refused by name.
#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "api/feature_db.h"
#include "store/feature_layers.h"
#include "store/schema.h"
#include "store/sqlite.h"
#include "util/error.h"

using namespace monoscope::core;

class TestLayers : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  int dbs_ = 0;

  // n features with ties in density and max, 10% dead, map positions in a few clusters (some
  // features without one), explanations from a small vocabulary.
  std::string makeDb(int n, int up_to = kFeatureSchemaVersion, bool layers = true) {
    const std::string p = tmp_.path().toStdString() + "/l" + std::to_string(++dbs_) + ".db";
    Sqlite db(p, Sqlite::Open::Create);
    migrateFeatureSchema(db, up_to);
    std::mt19937 rng(static_cast<unsigned>(n + up_to));
    const char* words[] = {"scripture", "script", "code", "colour", "column", "date", "data"};
    Transaction t(db);
    db.exec("INSERT INTO meta VALUES('d_sae', '" + std::to_string(n) + "'), ('tokens', '1000')");
    auto fi = db.prepare("INSERT INTO features(id, count, density, max_act, mean_act, umap_x, umap_y, top_tokens, explanation) "
                         "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)");
    auto ti = db.prepare("INSERT INTO feature_text(rowid, explanation, top_tokens) VALUES(?, ?, ?)");
    int dead = 0;
    for (int f = 0; f < n; ++f) {
      const bool is_dead = rng() % 10 == 0;
      dead += is_dead;
      const int count = is_dead ? 0 : 1 + static_cast<int>(rng() % 50);  // many ties
      const double mx = is_dead ? 0.0 : 0.5 * (1 + rng() % 20);
      const std::string expl = std::string(words[rng() % 7]) + " " + words[rng() % 7];
      fi.bind(1, f).bind(2, count).bind(3, count / 1000.0).bind(4, mx).bind(5, mx / 2);
      if (f % 13 == 5) {
        fi.bindNull(6).bindNull(7);
      } else {
        const int c = static_cast<int>(rng() % 4);
        fi.bind(6, c * 10.0 + (rng() % 1000) / 300.0).bind(7, (c % 2) * 7.0 + (rng() % 1000) / 250.0);
      }
      fi.bind(8, "tok").bind(9, expl);
      fi.step();
      fi.reset();
      ti.bind(1, f).bind(2, expl).bind(3, "tok");
      ti.step();
      ti.reset();
    }
    db.exec("INSERT INTO meta VALUES('dead', '" + std::to_string(dead) + "')");
    if (layers && up_to >= 4) buildFeatureLayers(db);
    t.commit();
    return p;
  }

 private Q_SLOTS:
  void rangesEqualTheDatabasesOwnOrder() {
    const auto db = FeatureDb::open(makeDb(3000));
    QVERIFY(db->hasLayers());
    int ranged = 0;
    for (const auto sort : {FeatureSort::Id, FeatureSort::Density, FeatureSort::MaxActivation})
      for (const bool desc : {false, true})
        for (const auto filter : {FeatureFilter::All, FeatureFilter::Alive, FeatureFilter::Dead, FeatureFilter::Dense, FeatureFilter::Labelled}) {
          FeatureQuery q;
          q.sort = sort, q.descending = desc, q.filter = filter, q.dense_threshold = 0.03;
          const auto expected = db->featureIds(q);
          // The capped list (through the order tables where it can) is the same list.
          std::int64_t total = 0;
          QCOMPARE(db->featureIds(q, 100000, &total), expected);
          QCOMPARE(total, static_cast<std::int64_t>(expected.size()));
          const auto range = db->orderRange(q);
          if (!range) continue;
          ++ranged;
          auto got = db->idsInOrder(sort, range->first, range->second - range->first);
          if (desc) std::reverse(got.begin(), got.end());
          QCOMPARE(got, expected);
          for (std::size_t i = 0; i < got.size(); i += 37) {
            const auto pos = db->positionInOrder(sort, got[i]);
            QCOMPARE(desc ? range->second - 1 - pos : pos - range->first, static_cast<std::int64_t>(i));
          }
        }
    QCOMPARE(ranged, 2 + 2 * (3 + 3) + 2);  // id: all; density, max: all, alive, dead (+ dense for density)
    QCOMPARE(db->positionInOrder(FeatureSort::Density, 5000), -1);
    QVERIFY(db->idsInOrder(FeatureSort::Density, 2990, 100).size() == 10);
  }

  void searchesStreamLongWordsWhole() {
    const std::string p = makeDb(300);
    const auto db = FeatureDb::open(p, FeatureDb::Mode::ReadWrite);
    db->setExplanation(3, "punctuation marks", "manual");
    db->setExplanation(4, "punctuationless prose", "manual");
    FeatureQuery q;
    q.text = "punctuatio";  // longer than the indexed prefixes: a prefix of two words
    QCOMPARE(db->featureIds(q, 100, nullptr), (std::vector<std::int64_t>{3, 4}));
    q.text = "punctuation";  // the whole word matches once, then the words it begins
    QCOMPARE(db->featureIds(q, 100, nullptr), (std::vector<std::int64_t>{3, 4}));
    std::int64_t total = 0;
    QCOMPARE(db->featureIds(q, 1, &total), std::vector<std::int64_t>{3});
    QCOMPARE(total, std::int64_t{2});
    q.descending = true;  // sorted by id, descending: the last matches first
    QCOMPARE(db->featureIds(q, 1, &total), std::vector<std::int64_t>{4});
    q.text = "punctuation marks";
    QCOMPARE(db->featureIds(q, 100, nullptr), std::vector<std::int64_t>{3});
  }

  void cappedListsSayTheyWereCut() {
    const auto db = FeatureDb::open(makeDb(500));
    FeatureQuery q;
    q.text = "scr";  // scripture, script
    std::int64_t total = 0;
    const auto all = db->featureIds(q);
    const auto first = db->featureIds(q, 10, &total);
    QCOMPARE(first.size(), std::size_t{10});
    QCOMPARE(total, std::int64_t{11});
    QVERIFY(all.size() > 10);
    const auto whole = db->featureIds(q, 100000, &total);
    QCOMPARE(total, static_cast<std::int64_t>(all.size()));
    QCOMPARE(std::set<std::int64_t>(whole.begin(), whole.end()), std::set<std::int64_t>(all.begin(), all.end()));
  }

  void mapLevelsAndCellsHoldEveryPointOnce() {
    const auto db = FeatureDb::open(makeDb(20000));
    const MapLayout& l = db->mapLayout();
    QVERIFY(l.present);
    const auto points = db->mapPoints();
    QCOMPARE(l.points, static_cast<std::int64_t>(points.size()));
    QCOMPARE(l.pointsIn(0, 0, l.cells, l.cells), l.points);
    for (int level = 0; level < l.levels; ++level) {
      std::int64_t sum = 0, alive = 0;
      for (int ty = 0; ty < (1 << level); ++ty)
        for (int tx = 0; tx < (1 << level); ++tx) {
          const MapTile t = db->mapTile(level, tx, ty);
          for (std::size_t b = 0; b < t.count.size(); ++b) sum += t.count[b], alive += t.alive[b];
        }
      QCOMPARE(sum, l.points);
      std::int64_t expected_alive = 0;
      for (const auto& p : points) expected_alive += p.density > 0;
      QCOMPARE(alive, expected_alive);
    }
    QVERIFY(db->mapTile(l.levels, 0, 0).count.empty());  // past the last level: nothing
    QVERIFY(db->mapTile(0, 1, 0).count.empty());
    std::map<std::int64_t, MapPoint> from_cells;
    for (std::int64_t c = 0; c < static_cast<std::int64_t>(l.cells) * l.cells; ++c) {
      const auto cell = db->mapCell(c);
      const int cx = static_cast<int>(c % l.cells), cy = static_cast<int>(c / l.cells);
      QCOMPARE(static_cast<std::int64_t>(cell.size()), l.pointsIn(cx, cy, cx + 1, cy + 1));
      for (const auto& p : cell) QVERIFY(from_cells.emplace(p.id, p).second);
    }
    QCOMPARE(from_cells.size(), points.size());
    for (const auto& p : points) {
      const auto& c = from_cells.at(p.id);
      QCOMPARE(c.x, p.x);
      QCOMPARE(c.y, p.y);
      QVERIFY(std::abs(c.density - p.density) <= 1e-6 * std::max(1e-12, p.density));
      const auto one = db->mapPoint(p.id);
      QVERIFY(one && one->x == p.x);
    }
    QVERIFY(!db->mapPoint(5));  // feature 5 has no map position
  }

  void oldFilesGainLayersWhenOpenedForWriting() {
    const std::string p = makeDb(400, 3);
    {
      const auto ro = FeatureDb::open(p, FeatureDb::Mode::ReadOnly);
      QVERIFY(!ro->hasLayers());
      QVERIFY(!ro->orderRange(FeatureQuery{}));
      QVERIFY(!ro->mapLayout().present);
      FeatureQuery q;
      q.text = "scripture";
      QVERIFY(!ro->featureIds(q, 1000, nullptr).empty());  // the old search index still answers
    }
    const auto rw = FeatureDb::open(p, FeatureDb::Mode::ReadWrite);
    QCOMPARE(rw->info().schema_version, 4);
    QVERIFY(rw->hasLayers());
    QVERIFY(rw->mapLayout().present);
    FeatureQuery q;
    q.sort = FeatureSort::Density;
    const auto range = rw->orderRange(q);
    QVERIFY(range);
    QCOMPARE(rw->idsInOrder(q.sort, 0, range->second), rw->featureIds(q));
    // The rebuilt search index answers as the old one did, for whole words and prefixes.
    q = {};
    q.text = "colo";
    const auto ids = rw->featureIds(q, 100000, nullptr);
    QVERIFY(!ids.empty());
    for (const auto id : ids) QVERIFY(rw->summary(id).explanation.find("colour") != std::string::npos);
  }

  void searchFollowsEditedExplanations() {
    const std::string p = makeDb(200);
    const auto db = FeatureDb::open(p, FeatureDb::Mode::ReadWrite);
    FeatureQuery q;
    q.text = "zebra";
    QVERIFY(db->featureIds(q, 100, nullptr).empty());
    const std::string before = db->summary(7).explanation;
    db->setExplanation(7, "stripes of a zebra", "manual");
    QCOMPARE(db->featureIds(q, 100, nullptr), std::vector<std::int64_t>{7});
    q.text = "z";
    QCOMPARE(db->featureIds(q, 100, nullptr), std::vector<std::int64_t>{7});  // a one-letter prefix
    // The old words no longer find feature 7 (unless another of its words still says them).
    q.text = before.substr(0, before.find(' '));
    const auto hits = db->featureIds(q, 100000, nullptr);
    QVERIFY(std::find(hits.begin(), hits.end(), 7) == hits.end());
    db->setExplanation(7, "stripes", "manual");
    q.text = "zebra";
    QVERIFY(db->featureIds(q, 100, nullptr).empty());
    QCOMPARE(db->searchText("stripes", 5).front().feature, 7);
  }

  void damagedLayersAreRefusedByName() {
    const std::string p = makeDb(300);
    {
      Sqlite db(p, Sqlite::Open::ReadWrite);
      db.exec("UPDATE map_layout SET layout = '{\"levels\": 99}'");
    }
    try {
      FeatureDb::open(p);
      QFAIL("a damaged map layout was accepted");
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains("map layout"), e.what());
      QVERIFY2(QString(e.what()).contains(QString::fromStdString(p)), e.what());
    }
    {
      Sqlite db(p, Sqlite::Open::ReadWrite);
      db.exec("UPDATE meta SET value = '{\"features\": -4}' WHERE key = 'layers'");
    }
    try {
      FeatureDb::open(p);
      QFAIL("damaged layers were accepted");
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains("layers"), e.what());
    }
    // A tile record pointing past its tile is skipped, never written out of bounds.
    const std::string q = makeDb(300);
    {
      Sqlite db(q, Sqlite::Open::ReadWrite);
      const std::uint32_t bad[4] = {0xFFFFFFF0u, 5, 5, 0};
      auto st = db.prepare("UPDATE map_tiles SET bins = ? WHERE key = 0");
      st.bindBlob(1, bad, sizeof bad);
      st.step();
    }
    const auto db = FeatureDb::open(q);
    const MapTile t = db->mapTile(0, 0, 0);
    std::int64_t sum = 0;
    for (const auto c : t.count) sum += c;
    QCOMPARE(sum, std::int64_t{0});
  }

  void emptyAndCancelledBuildsLeaveNoLayers() {
    const std::string p = tmp_.path().toStdString() + "/empty.db";
    {
      Sqlite db(p, Sqlite::Open::Create);
      migrateFeatureSchema(db);
      db.exec("INSERT INTO meta VALUES('d_sae', '0'), ('tokens', '0')");
      QVERIFY(buildFeatureLayers(db));
    }
    QVERIFY(!FeatureDb::open(p)->mapLayout().present);
    const std::string c = makeDb(2000, kFeatureSchemaVersion, false);
    {
      Sqlite db(c, Sqlite::Open::ReadWrite);
      QVERIFY(!buildFeatureLayers(db, [](const Progress& pr) { return pr.detail != "map tiles"; }));
    }
    const auto db = FeatureDb::open(c);
    QVERIFY(!db->hasLayers());
    QVERIFY(!db->mapLayout().present);
  }
};

QTEST_GUILESS_MAIN(TestLayers)
#include "test_layers.moc"
