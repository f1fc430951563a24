// The feature database's read and write API (public header api/feature_db.h).
#include "api/feature_db.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "store/feature_db_impl.h"
#include "store/schema.h"
#include "store/sqlite.h"
#include "util/error.h"
#include "util/numbers.h"
#include "util/utf8.h"

namespace monoscope::core {

namespace {
constexpr std::int64_t kMaxIntervals = 10000;   // activation intervals per feature
}  // namespace

static_assert(FeatureDb::kSchemaVersion == kFeatureSchemaVersion, "one schema version");

namespace {

// Prefix lengths the search index lists on their own (schema 4): a longer prefix makes FTS5
// merge the lists of every word it starts.
constexpr std::size_t kIndexedPrefix = 8;

}  // namespace


std::string ftsQuery(const std::string& text, bool exact_long_words) {
  std::string out, word;
  bool any_long = false;
  auto flush = [&] {
    if (word.empty()) return;
    if (!out.empty()) out += ' ';
    const bool exact = exact_long_words && word.size() > kIndexedPrefix;
    any_long = any_long || exact;
    out += '"' + word + (exact ? "\"" : "\"*");
    word.clear();
  };
  for (unsigned char c : text) {
    if (std::isalnum(c) || c >= 0x80 || c == '_') {
      word += static_cast<char>(c);
    } else {
      flush();
    }
  }
  flush();
  return exact_long_words && !any_long ? std::string() : out;
}

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Histogram histogramFromBlob(const Statement& st, int col, double lo, double hi) {
  Histogram h;
  h.lo = lo;
  h.hi = hi;
  h.counts = st.blobAs<std::int64_t>(col);
  return h;
}

FeatureSummary readSummary(const Statement& st) {
  FeatureSummary s;
  s.id = st.integer(0);
  s.count = st.integer(1);
  s.density = st.real(2);
  s.max_act = static_cast<float>(st.real(3));
  s.mean_act = static_cast<float>(st.real(4));
  s.explanation = st.text(5);
  s.top_tokens = st.text(6);
  s.labelled = st.integer(7) != 0;
  return s;
}

// An example from columns 0-6 of a query selecting kExampleColumns: token ids as int32 and
// activations as uint16 times `scale`.
const char* kExampleColumns = "id, max_act, center, tokens, acts, scale, window";

Example readExample(const Statement& st, const FeatureDb::Impl& impl) {
  Example e;
  e.id = st.integer(0);
  e.max_act = static_cast<float>(st.real(1));
  e.center = static_cast<int>(st.integer(2));
  e.token_ids = st.blobAs<std::int32_t>(3);
  const auto q = st.blobAs<std::uint16_t>(4);
  const double scale = st.real(5);
  e.acts.reserve(q.size());
  for (auto v : q) e.acts.push_back(static_cast<float>(v * scale));
  e.tokens = impl.windowText(e.token_ids);
  if (e.tokens.empty() || e.center < 0 || e.center >= static_cast<int>(e.tokens.size())) e.center = 0;
  e.window = st.integer(6);
  e.domain = impl.domainOf(e.window);
  return e;
}

const char* kSummaryColumns = "f.id, f.count, f.density, f.max_act, f.mean_act, f.explanation, f.top_tokens, f.labelled";

std::string whereClause(const FeatureQuery& q) {
  switch (q.filter) {
    case FeatureFilter::All: return "1";
    case FeatureFilter::Alive: return "f.count > 0";
    case FeatureFilter::Dead: return "f.count = 0";
    case FeatureFilter::Dense: return "f.density > ?3";
    case FeatureFilter::Labelled: return "f.labelled = 1";
  }
  return "1";
}

}  // namespace

const char* featureSortName(FeatureSort s) {
  switch (s) {
    case FeatureSort::Id: return "id";
    case FeatureSort::Density: return "density";
    case FeatureSort::MaxActivation: return "max_act";
  }
  return "id";
}

FeatureSort parseFeatureSort(const std::string& s) {
  if (s == "id") return FeatureSort::Id;
  if (s == "density") return FeatureSort::Density;
  if (s == "max_act" || s == "max") return FeatureSort::MaxActivation;
  throw Error("unknown sort '" + s + "'", "use id, density or max_act");
}

FeatureFilter parseFeatureFilter(const std::string& s) {
  if (s == "all") return FeatureFilter::All;
  if (s == "alive") return FeatureFilter::Alive;
  if (s == "dead") return FeatureFilter::Dead;
  if (s == "dense") return FeatureFilter::Dense;
  if (s == "labelled") return FeatureFilter::Labelled;
  throw Error("unknown filter '" + s + "'", "use all, alive, dead, dense or labelled");
}

FeatureDb::FeatureDb(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FeatureDb::~FeatureDb() = default;

std::unique_ptr<FeatureDb> FeatureDb::open(const std::string& path, Mode mode) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) throw Error("feature database '" + path + "' does not exist", "build one with the index command");
  if (!S_ISREG(sb.st_mode)) throw Error("feature database '" + path + "' is not a regular file");
  auto impl = std::make_unique<Impl>();
  impl->writable = mode == Mode::ReadWrite;
  impl->db = std::make_unique<Sqlite>(path, impl->writable ? Sqlite::Open::ReadWrite : Sqlite::Open::ReadOnly);
  Sqlite& db = *impl->db;
  const int version = db.userVersion();  // fails clearly for a file that is not a database
  if (db.hasTable("scan_windows") && !db.hasTable("features"))
    throw Error("'" + path + "' is an unmerged index shard, not a feature database", "combine the shards with merge");
  if (version > kSchemaVersion) {
    throw Error("feature database '" + path + "' has schema version " + std::to_string(version) +
                    ", newer than this Monoscope reads (" + std::to_string(kSchemaVersion) + ")",
                "open it with a newer Monoscope");
  }
  if (version == 0 || !db.hasTable("features"))
    throw Error("'" + path + "' is not a Monoscope feature database (no features table)", "build one with the index command");
  if (impl->writable) {
    configureWriter(db);
    if (version < kSchemaVersion) migrateFeatureSchema(db);
  }
  DatabaseInfo& in = impl->info;
  in.path = path;
  in.schema_version = db.userVersion();
  in.model = getMeta(db, "model");
  in.sae = getMeta(db, "sae");
  in.hook = getMeta(db, "hook");
  in.corpus = getMeta(db, "corpus");
  const std::string where = "'" + path + "': metadata ";
  in.d_sae = parseInt64(getMeta(db, "d_sae", "0"), where + "d_sae");
  in.tokens = parseInt64(getMeta(db, "tokens", "0"), where + "tokens");
  in.dead = parseInt64(getMeta(db, "dead", "0"), where + "dead");
  in.seed = parseUint64(getMeta(db, "seed", "0"), where + "seed");
  if (in.d_sae < 0 || in.tokens < 0 || in.dead < 0 || in.dead > in.d_sae)
    throw Error(where + "d_sae, tokens or dead is out of range", "the file is damaged; rebuild it with the index command");
  const auto domains = nlohmann::json::parse(getMeta(db, "domains", "[]"), nullptr, false);
  if (domains.is_array())
    for (const auto& d : domains) impl->domains.push_back(d.is_string() ? d.get<std::string>() : std::string());
  impl->window_domains = getMeta(db, "window_domains", "");
  const auto dh = nlohmann::json::parse(getMeta(db, "density_histogram", "{}"), nullptr, false);
  try {
    if (dh.is_object() && dh.contains("counts")) {
      in.density_histogram.lo = dh.value("lo", 0.0);
      in.density_histogram.hi = dh.value("hi", 0.0);
      in.density_histogram.counts = dh["counts"].get<std::vector<std::int64_t>>();
    }
  } catch (const nlohmann::json::exception&) {
    throw Error(where + "density_histogram is malformed", "the file is damaged; rebuild it with the index command");
  }
  readLayers(*impl, where);
  impl->tokenText(0);  // every page shows tokens: read the vocabulary now, not on the first click
  return std::unique_ptr<FeatureDb>(new FeatureDb(std::move(impl)));
}

const DatabaseInfo& FeatureDb::info() const { return impl_->info; }

std::string FeatureDb::metaValue(const std::string& key) const { return getMeta(*impl_->db, key); }

std::int64_t FeatureDb::countFeatures(const FeatureQuery& q) const {
  const std::string fts = ftsQuery(q.text);
  std::string sql = "SELECT COUNT(*) FROM features f";
  if (!fts.empty()) sql += " JOIN feature_text t ON t.rowid = f.id AND feature_text MATCH ?1";
  sql += " WHERE " + whereClause(q);
  auto st = impl_->db->prepare(sql);
  if (!fts.empty()) st.bind(1, fts);
  if (q.filter == FeatureFilter::Dense) st.bind(3, q.dense_threshold);
  st.step();
  return st.integer(0);
}

namespace {

// SELECT <columns> FROM features f [JOIN search] WHERE <filter> ORDER BY <sort>; parameters ?1
// (search text) and ?3 (dense threshold) as the query needs.
std::string selectFeatures(const FeatureQuery& q, const std::string& columns, const std::string& fts) {
  std::string sql = "SELECT " + columns + " FROM features f";
  if (!fts.empty()) sql += " JOIN feature_text t ON t.rowid = f.id AND feature_text MATCH ?1";
  sql += " WHERE " + whereClause(q);
  const std::string dir = q.descending ? " DESC" : " ASC";
  // Dense features are few: found through the density index, which also holds max activations
  // (schema 4), then sorted ("+" keeps SQLite from walking the whole sort column's index
  // instead, testing every feature's density).
  const std::string by = q.filter == FeatureFilter::Dense && q.sort != FeatureSort::Density ? " ORDER BY +" : " ORDER BY ";
  switch (q.sort) {
    case FeatureSort::Id: sql += by + "f.id" + dir; break;
    // Ties by id in the same direction: SQLite then walks the column's index (which ends in the
    // id) forwards or backwards, with no sort (0.13 s instead of 0.74 s for a million features).
    case FeatureSort::Density: sql += " ORDER BY f.density" + dir + ", f.id" + dir; break;
    case FeatureSort::MaxActivation: sql += by + "f.max_act" + dir + ", f.id" + dir; break;
  }
  return sql;
}

}  // namespace

std::vector<FeatureSummary> FeatureDb::listFeatures(const FeatureQuery& q) const {
  const std::string fts = ftsQuery(q.text);
  auto st = impl_->db->prepare(selectFeatures(q, kSummaryColumns, fts) + " LIMIT ?4 OFFSET ?5");
  if (!fts.empty()) st.bind(1, fts);
  if (q.filter == FeatureFilter::Dense) st.bind(3, q.dense_threshold);
  st.bind(4, std::max<std::int64_t>(0, q.limit)).bind(5, std::max<std::int64_t>(0, q.offset));
  std::vector<FeatureSummary> out;
  while (st.step()) out.push_back(readSummary(st));
  return out;
}

std::vector<std::int64_t> FeatureDb::featureIds(const FeatureQuery& q) const {
  return featureIds(q, std::numeric_limits<std::int64_t>::max() - 1, nullptr);
}

std::vector<std::int64_t> FeatureDb::featureIds(const FeatureQuery& q, std::int64_t limit, std::int64_t* total) const {
  const Impl& m = *impl_;
  const std::string fts = ftsQuery(q.text);
  limit = std::max<std::int64_t>(0, limit);
  const std::string dir = q.descending ? " DESC" : " ASC";
  auto run = [&](const std::string& sql, const std::string& match) {
    auto st = m.db->prepare(sql);
    if (!match.empty()) st.bind(1, match);
    if (q.filter == FeatureFilter::Dense) st.bind(3, q.dense_threshold);
    st.bind(4, limit + 1);
    std::vector<std::int64_t> out;
    while (st.step()) out.push_back(st.integer(0));
    return out;
  };
  std::vector<std::int64_t> out;
  if (!fts.empty()) {
    // The first matches by id (in the list's direction when it is sorted by id), then filtered
    // and sorted: a common word in tens of millions of explanations is cut at the limit instead
    // of ranked in full. Sorted by id over every feature, the matches are the list.
    const std::string first = std::string("SELECT rowid AS id FROM feature_text WHERE feature_text MATCH ?1 ORDER BY rowid") +
                              (q.sort == FeatureSort::Id && q.descending ? " DESC" : "") + " LIMIT ?4";
    std::string sql = first;
    if (q.filter != FeatureFilter::All || q.sort != FeatureSort::Id) {
      FeatureQuery plain = q;
      plain.text.clear();
      sql = selectFeatures(plain, "f.id", "");
      sql.replace(sql.find(" FROM features f"), 16, " FROM (" + first + ") m JOIN features f ON f.id = m.id");
    }
    // A word longer than the indexed prefixes is first looked up whole (one list, streamed);
    // only when that leaves room under the limit are the longer words it begins read as well.
    const std::string whole = ftsQuery(q.text, true);
    if (!whole.empty()) out = run(sql, whole);
    if (whole.empty() || static_cast<std::int64_t>(out.size()) <= limit) out = run(sql, fts);
  } else {
    out = run(selectFeatures(q, "f.id", "") + " LIMIT ?4", "");
  }
  if (total) *total = static_cast<std::int64_t>(out.size());
  if (static_cast<std::int64_t>(out.size()) > limit) out.resize(static_cast<std::size_t>(limit));
  return out;
}

FeatureSummary FeatureDb::summary(std::int64_t feature) const {
  auto st = impl_->db->prepare(std::string("SELECT ") + kSummaryColumns + " FROM features f WHERE f.id = ?");
  st.bind(1, feature);
  if (!st.step()) {
    throw Error("feature " + std::to_string(feature) + " is not in '" + impl_->info.path + "'",
                "use an id in 0.." + std::to_string(impl_->info.d_sae - 1));
  }
  return readSummary(st);
}

FeaturePage FeatureDb::page(std::int64_t feature) const {
  Sqlite& db = *impl_->db;
  FeaturePage p;
  p.summary = summary(feature);
  {
    auto st = db.prepare("SELECT histogram, umap_x, umap_y FROM features WHERE id = ?");
    st.bind(1, feature);
    st.step();
    p.histogram = histogramFromBlob(st, 0, 0.0, p.summary.max_act);
    if (!st.isNull(1)) p.umap = std::make_pair(static_cast<float>(st.real(1)), static_cast<float>(st.real(2)));
  }
  {
    auto st = db.prepare("SELECT COALESCE(MAX(version), 0) FROM explanations WHERE feature = ?");
    st.bind(1, feature);
    st.step();
    p.explanation_version = st.integer(0);
  }
  {
    auto st = db.prepare("SELECT idx, lo, hi, count FROM intervals WHERE feature = ? ORDER BY idx");
    st.bind(1, feature);
    while (st.step()) {
      Interval iv;
      iv.lo = st.real(1);
      iv.hi = st.real(2);
      iv.count = st.integer(3);
      const std::int64_t raw = st.integer(0);
      if (raw < 0 || raw >= kMaxIntervals)
        throw Error("'" + impl_->info.path + "': feature " + std::to_string(feature) + " has an interval index (" +
                        std::to_string(raw) + ") out of range",
                    "the file is damaged; rebuild it with the index command");
      const auto idx = static_cast<std::size_t>(raw);
      if (idx >= p.intervals.size()) p.intervals.resize(idx + 1);
      p.intervals[idx] = std::move(iv);
    }
  }
  std::map<std::int64_t, std::vector<ExampleScore>> scores;
  {
    auto st = db.prepare("SELECT s.example, s.scorer, s.score FROM scores s JOIN examples e ON e.id = s.example WHERE e.feature = ?");
    st.bind(1, feature);
    while (st.step()) scores[st.integer(0)].push_back({st.text(1), static_cast<int>(st.integer(2))});
  }
  {
    auto st = db.prepare(std::string("SELECT ") + kExampleColumns + ", kind, interval FROM examples WHERE feature = ? ORDER BY kind, interval, rank");
    st.bind(1, feature);
    while (st.step()) {
      Example e = readExample(st, *impl_);
      auto it = scores.find(e.id);
      if (it != scores.end()) e.scores = it->second;
      const auto interval = static_cast<std::size_t>(st.integer(8));
      if (st.integer(7) == 0) {
        p.top_examples.push_back(std::move(e));
      } else if (interval < p.intervals.size()) {
        p.intervals[interval].examples.push_back(std::move(e));
      }
    }
  }
  {
    auto st = db.prepare("SELECT top, bottom, lo, hi, histogram FROM logits WHERE feature = ?");
    st.bind(1, feature);
    if (st.step()) {
      auto parse = [](const std::string& s) {
        std::vector<std::pair<std::string, float>> out;
        const auto j = nlohmann::json::parse(s, nullptr, false);
        if (!j.is_array()) return out;
        for (const auto& r : j)
          if (r.is_array() && r.size() == 2 && r[0].is_string() && r[1].is_number())
            out.emplace_back(r[0].get<std::string>(), r[1].get<float>());
        return out;
      };
      p.logits_top = parse(st.text(0));
      p.logits_bottom = parse(st.text(1));
      p.logits_histogram = histogramFromBlob(st, 4, st.real(2), st.real(3));
    }
  }
  p.neighbours = neighbours(feature);
  return p;
}

std::vector<Example> FeatureDb::examplesForScoring(std::int64_t feature) const {
  auto st = impl_->db->prepare(std::string("SELECT ") + kExampleColumns + " FROM examples WHERE feature = ? ORDER BY kind, interval, rank");
  st.bind(1, feature);
  std::vector<Example> out;
  while (st.step()) out.push_back(readExample(st, *impl_));
  return out;
}

std::vector<MapPoint> FeatureDb::mapPoints() const {
  auto st = impl_->db->prepare("SELECT id, umap_x, umap_y, density FROM features WHERE umap_x IS NOT NULL ORDER BY id");
  std::vector<MapPoint> out;
  while (st.step()) out.push_back({st.integer(0), static_cast<float>(st.real(1)), static_cast<float>(st.real(2)), st.real(3)});
  return out;
}

std::vector<std::pair<std::int64_t, float>> FeatureDb::neighbours(std::int64_t feature) const {
  auto st = impl_->db->prepare("SELECT ids, cosines FROM neighbours WHERE feature = ?");
  st.bind(1, feature);
  std::vector<std::pair<std::int64_t, float>> out;
  if (!st.step()) return out;
  const auto ids = st.blobAs<std::int32_t>(0);
  const auto cos = st.blobAs<float>(1);
  for (std::size_t i = 0; i < std::min(ids.size(), cos.size()); ++i) out.emplace_back(ids[i], cos[i]);
  return out;
}

std::vector<FeatureScore> FeatureDb::searchText(const std::string& query, std::size_t k) const {
  const std::string fts = ftsQuery(query);
  std::vector<FeatureScore> out;
  if (fts.empty()) return out;
  auto st = impl_->db->prepare("SELECT rowid, bm25(feature_text) FROM feature_text WHERE feature_text MATCH ? ORDER BY rank LIMIT ?");
  st.bind(1, fts).bind(2, static_cast<std::int64_t>(k));
  while (st.step()) out.push_back({st.integer(0), -st.real(1)});
  return out;
}

void FeatureDb::setScore(std::int64_t example, const std::string& scorer, int score) {
  setScores({{example, score}}, scorer);
}

void FeatureDb::setScores(const std::vector<std::pair<std::int64_t, int>>& example_scores, const std::string& scorer) {
  impl_->requireWritable("save scores");
  Sqlite& db = *impl_->db;
  Transaction t(db);
  auto ins = db.prepare("INSERT OR REPLACE INTO scores(example, scorer, score, explanation_version, created) "
                        "SELECT ?1, ?2, ?3, (SELECT MAX(version) FROM explanations x WHERE x.feature = e.feature), ?4 "
                        "FROM examples e WHERE e.id = ?1");
  auto del = db.prepare("DELETE FROM scores WHERE example = ? AND scorer = ?");
  auto chk = db.prepare("SELECT 1 FROM examples WHERE id = ?");
  const double ts = now();
  for (const auto& [example, score] : example_scores) {
    if (score < -1 || score > 3) throw Error("score " + std::to_string(score) + " is outside 0..3", "use the rubric's 0-3 (or -1 to remove)");
    chk.bind(1, example);
    const bool known = chk.step();
    chk.reset();
    if (!known) throw Error("example " + std::to_string(example) + " is not in '" + impl_->info.path + "'");
    if (score < 0) {
      del.bind(1, example).bind(2, scorer);
      del.step();
      del.reset();
    } else {
      ins.bind(1, example).bind(2, scorer).bind(3, score).bind(4, ts);
      ins.step();
      ins.reset();
    }
  }
  if (scorer == "manual") {
    db.exec("UPDATE features SET labelled = EXISTS(SELECT 1 FROM scores s JOIN examples e ON e.id = s.example "
            "WHERE e.feature = features.id AND s.scorer = 'manual') WHERE id IN (SELECT feature FROM examples WHERE id IN (" +
            [&] {
              std::string ids;
              for (const auto& es : example_scores) ids += (ids.empty() ? "" : ",") + std::to_string(es.first);
              return ids;
            }() + "))");
  }
  t.commit();
}

void FeatureDb::setLabel(std::int64_t example, int score) { setScores({{example, score}}, "manual"); }

std::int64_t FeatureDb::setExplanation(std::int64_t feature, const std::string& text, const std::string& author) {
  impl_->requireWritable("save an explanation");
  requireUtf8(text, "the explanation");
  summary(feature);  // throws for an unknown feature
  Sqlite& db = *impl_->db;
  Transaction t(db);
  std::int64_t version = 1;
  {
    auto st = db.prepare("SELECT COALESCE(MAX(version), 0) + 1 FROM explanations WHERE feature = ?");
    st.bind(1, feature);
    st.step();
    version = st.integer(0);
  }
  auto ins = db.prepare("INSERT INTO explanations(feature, version, text, author, created) VALUES(?, ?, ?, ?, ?)");
  ins.bind(1, feature).bind(2, version).bind(3, text).bind(4, author).bind(5, now());
  ins.step();
  // The search index reads its text from the features table (external content): the old text's
  // entries are removed before the row changes, the new text's added after.
  auto del = db.prepare("INSERT INTO feature_text(feature_text, rowid, explanation, top_tokens) "
                        "SELECT 'delete', id, explanation, top_tokens FROM features WHERE id = ?");
  del.bind(1, feature);
  del.step();
  auto up = db.prepare("UPDATE features SET explanation = ? WHERE id = ?");
  up.bind(1, text).bind(2, feature);
  up.step();
  auto fts = db.prepare("INSERT INTO feature_text(rowid, explanation, top_tokens) SELECT id, explanation, top_tokens FROM features WHERE id = ?");
  fts.bind(1, feature);
  fts.step();
  t.commit();
  return version;
}

std::vector<ExplanationVersion> FeatureDb::explanationHistory(std::int64_t feature) const {
  auto st = impl_->db->prepare("SELECT version, text, author, created FROM explanations WHERE feature = ? ORDER BY version");
  st.bind(1, feature);
  std::vector<ExplanationVersion> out;
  while (st.step()) out.push_back({st.integer(0), st.text(1), st.text(2), st.real(3)});
  return out;
}

std::int64_t FeatureDb::saveSteeringRun(SteeringRunRecord run) {
  impl_->requireWritable("save a steering run");
  if (run.created == 0) run.created = now();
  auto st = impl_->db->prepare("INSERT INTO steering_runs(created, prompt, request, default_text, steered_text) VALUES(?, ?, ?, ?, ?)");
  st.bind(1, run.created).bind(2, run.prompt).bind(3, run.request_json).bind(4, run.default_text).bind(5, run.steered_text);
  st.step();
  return impl_->db->lastInsertId();
}

std::vector<SteeringRunRecord> FeatureDb::steeringRuns(std::size_t limit) const {
  std::vector<SteeringRunRecord> out;
  if (!impl_->db->hasTable("steering_runs")) return out;
  auto st = impl_->db->prepare("SELECT id, created, prompt, request, default_text, steered_text FROM steering_runs ORDER BY id DESC LIMIT ?");
  st.bind(1, static_cast<std::int64_t>(limit));
  while (st.step()) out.push_back({st.integer(0), st.real(1), st.text(2), st.text(3), st.text(4), st.text(5)});
  return out;
}

}  // namespace monoscope::core
