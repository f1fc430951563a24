#include "store/schema.h"

#include <vector>

#include "store/feature_layers.h"
#include "store/sqlite.h"
#include "util/error.h"

namespace monoscope::core {

namespace {

// Migration i takes a file from user_version i to i + 1.
const std::vector<const char*> kMigrations = {
    // 0 -> 1: the feature tables.
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE vocab(id INTEGER PRIMARY KEY, bytes BLOB NOT NULL);
CREATE TABLE features(
  id INTEGER PRIMARY KEY, count INTEGER NOT NULL, density REAL NOT NULL, max_act REAL NOT NULL,
  mean_act REAL NOT NULL, histogram BLOB, umap_x REAL, umap_y REAL,
  top_tokens TEXT NOT NULL DEFAULT '', explanation TEXT NOT NULL DEFAULT '',
  labelled INTEGER NOT NULL DEFAULT 0);
CREATE INDEX features_density ON features(density);
CREATE INDEX features_max ON features(max_act);
CREATE TABLE intervals(
  feature INTEGER NOT NULL, idx INTEGER NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
  count INTEGER NOT NULL, PRIMARY KEY(feature, idx)) WITHOUT ROWID;
CREATE TABLE examples(
  id INTEGER PRIMARY KEY, feature INTEGER NOT NULL, kind INTEGER NOT NULL, interval INTEGER NOT NULL,
  rank INTEGER NOT NULL, max_act REAL NOT NULL, center INTEGER NOT NULL, window INTEGER NOT NULL,
  position INTEGER NOT NULL, tokens BLOB NOT NULL, acts BLOB NOT NULL, scale REAL NOT NULL);
CREATE INDEX examples_feature ON examples(feature, kind, interval, rank);
CREATE TABLE logits(feature INTEGER PRIMARY KEY, top TEXT NOT NULL, bottom TEXT NOT NULL,
  lo REAL NOT NULL, hi REAL NOT NULL, histogram BLOB NOT NULL);
CREATE TABLE neighbours(feature INTEGER PRIMARY KEY, ids BLOB NOT NULL, cosines BLOB NOT NULL);
CREATE TABLE explanations(
  id INTEGER PRIMARY KEY, feature INTEGER NOT NULL, version INTEGER NOT NULL, text TEXT NOT NULL,
  author TEXT NOT NULL, created REAL NOT NULL, UNIQUE(feature, version));
CREATE TABLE scores(
  example INTEGER NOT NULL, scorer TEXT NOT NULL, score INTEGER NOT NULL CHECK(score BETWEEN 0 AND 3),
  explanation_version INTEGER, created REAL NOT NULL, PRIMARY KEY(example, scorer)) WITHOUT ROWID;
CREATE VIRTUAL TABLE feature_text USING fts5(explanation, top_tokens);
)sql",
    // 1 -> 2: steering history and a partial index for the labelled filter.
    R"sql(
CREATE TABLE steering_runs(
  id INTEGER PRIMARY KEY, created REAL NOT NULL, prompt TEXT NOT NULL, request TEXT NOT NULL,
  default_text TEXT NOT NULL, steered_text TEXT NOT NULL);
CREATE INDEX features_labelled ON features(labelled) WHERE labelled;
)sql",
    // 2 -> 3: an index on count, so the alive/dead filters and their counts need no table scan.
    R"sql(
CREATE INDEX features_count ON features(count);
)sql",
    // 3 -> 4: the layers of large dictionaries (store/feature_layers.h): feature orders and the
    // map's tiles and cells; the density index also holds max activations, so that dense features
    // sort by max (or id) from the index alone; the search index reads its text from the features table instead of
    // keeping a copy, and indexes prefixes of 1-8 characters, so that a search typed a letter at
    // a time streams its first matches from one list instead of merging every matching word's.
    R"sql(
CREATE TABLE feature_order(sort INTEGER NOT NULL, rank INTEGER NOT NULL, id INTEGER NOT NULL,
  PRIMARY KEY(sort, rank)) WITHOUT ROWID;
CREATE TABLE feature_position(id INTEGER PRIMARY KEY, density INTEGER NOT NULL, max_act INTEGER NOT NULL);
CREATE TABLE map_tiles(key INTEGER PRIMARY KEY, bins BLOB NOT NULL);
CREATE TABLE map_cells(cell INTEGER PRIMARY KEY, points BLOB NOT NULL);
CREATE TABLE map_layout(id INTEGER PRIMARY KEY CHECK(id = 0), layout TEXT NOT NULL, cell_counts BLOB NOT NULL);
DROP INDEX features_density;
CREATE INDEX features_density ON features(density, max_act);
DROP TABLE feature_text;
CREATE VIRTUAL TABLE feature_text USING fts5(explanation, top_tokens, content='features', content_rowid='id', prefix='1 2 3 4 5 6 7 8');
INSERT INTO feature_text(feature_text) VALUES('rebuild');
)sql",
};

}  // namespace

void configureWriter(Sqlite& db) {
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("PRAGMA synchronous=NORMAL");
}

void migrateFeatureSchema(Sqlite& db, int up_to) {
  static_assert(kFeatureSchemaVersion == 4, "add the migration to kMigrations");
  int v = db.userVersion();
  const int from = v;
  while (v < up_to) {
    Transaction t(db);
    db.exec(kMigrations.at(static_cast<std::size_t>(v)));
    db.setUserVersion(v + 1);
    t.commit();
    ++v;
  }
  // A database written before the layers existed gets them now (a file being created has no
  // features yet; its writer builds them when the table is complete).
  if (from > 0 && from < 4 && v >= 4) {
    auto st = db.prepare("SELECT EXISTS(SELECT 1 FROM features)");
    if (st.step() && st.integer(0) != 0) buildFeatureLayers(db);
  }
}

void createScanSchema(Sqlite& db) {
  Transaction t(db);
  db.exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
          "CREATE TABLE IF NOT EXISTS scan_windows(window INTEGER PRIMARY KEY, data BLOB NOT NULL);");
  t.commit();
}

void putMeta(Sqlite& db, const std::string& key, const std::string& value) {
  auto st = db.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
  st.bind(1, key).bind(2, value);
  st.step();
}

std::string getMeta(Sqlite& db, const std::string& key, const std::string& fallback) {
  auto st = db.prepare("SELECT value FROM meta WHERE key = ?");
  st.bind(1, key);
  return st.step() ? st.text(0) : fallback;
}

}  // namespace monoscope::core
