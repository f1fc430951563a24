#pragma once
// The feature database: one SQLite file holding every feature's statistics, examples, logit
// effects, neighbours, map position, explanations, scores and steering runs. Plain types only
// (no SQLite header). One FeatureDb per thread; SQLite's WAL lets readers and a writer coexist.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/types.h"

namespace monoscope::core {

enum class FeatureSort { Id, Density, MaxActivation };
enum class FeatureFilter { All, Alive, Dead, Dense, Labelled };

struct FeatureQuery {
  std::string text;                       // full-text search over explanations and top tokens
  FeatureSort sort = FeatureSort::Id;
  bool descending = false;
  FeatureFilter filter = FeatureFilter::All;
  double dense_threshold = 0.01;          // density above which a feature counts as dense
  std::int64_t offset = 0, limit = 100;   // paging
};

struct FeatureSummary {
  std::int64_t id = 0;
  std::int64_t count = 0;   // activating tokens in the scan
  double density = 0.0;     // count / tokens scanned
  float max_act = 0.0f, mean_act = 0.0f;
  std::string explanation;
  std::string top_tokens;
  bool labelled = false;    // has at least one manual score
};

struct ExampleScore {
  std::string scorer;  // manual | concept | llm:<model>
  int score = 0;       // 0-3 (specificity rubric)
};

struct Example {
  std::int64_t id = 0;
  std::vector<std::int32_t> token_ids;
  std::vector<std::string> tokens;  // token texts (valid UTF-8; a character split over tokens shows whole on the first)
  std::vector<float> acts;          // the feature's activation on each token (dequantised)
  int center = 0;                   // index of the activating token
  float max_act = 0.0f;             // activation at the center (exact)
  std::int64_t window = -1;         // the scanned window it comes from
  std::string domain;               // its source's domain ("" when the corpus records none)
  std::vector<ExampleScore> scores;
};

struct Interval {
  double lo = 0.0, hi = 0.0;  // (lo, hi]
  std::int64_t count = 0;     // activations in the interval over the whole scan
  std::vector<Example> examples;  // uniform sample
};

struct FeaturePage {
  FeatureSummary summary;
  std::int64_t explanation_version = 0;
  Histogram histogram;                  // of non-zero activations over (0, max]
  std::vector<Interval> intervals;
  std::vector<Example> top_examples;    // sorted by activation, strongest first
  std::vector<std::pair<std::string, float>> logits_top, logits_bottom;
  Histogram logits_histogram;
  std::vector<std::pair<std::int64_t, float>> neighbours;  // id, cosine (descending)
  std::optional<std::pair<float, float>> umap;
};

struct MapPoint {
  std::int64_t id = 0;
  float x = 0.0f, y = 0.0f;
  double density = 0.0;
};

// The map's level of detail (schema 4), for dictionaries too large to hold as points: density
// tiles of kMapTileBins x kMapTileBins bins, level l covering the bounds with 2^l x 2^l tiles, and
// every point bucketed into one of cells x cells grid cells.
constexpr int kMapTileBins = 256;

struct MapLayout {
  bool present = false;
  float min_x = 0, max_x = 0, min_y = 0, max_y = 0;
  int levels = 0;                 // tile levels 0 .. levels - 1
  int cells = 0;                  // point cells per side
  double log_lo = 0, log_hi = 0;  // log10 density range of alive features
  std::int64_t points = 0;
  // 2-D prefix sums of points per cell, (cells + 1)^2: points in cells [x0, x1) x [y0, y1) in O(1).
  std::vector<std::int64_t> cell_prefix;
  std::int64_t pointsIn(int x0, int y0, int x1, int y1) const;
};

struct MapTile {
  // kMapTileBins^2 bins each, row-major from the lowest y; empty vectors for a tile with no points.
  std::vector<std::uint32_t> count, alive;
  std::vector<float> mean_log_density;  // over the bin's alive features
};

struct ExplanationVersion {
  std::int64_t version = 0;
  std::string text, author;
  double created = 0.0;  // Unix seconds
};

struct SteeringRunRecord {
  std::int64_t id = 0;            // assigned on save
  double created = 0.0;           // Unix seconds (assigned on save when 0)
  std::string prompt;
  std::string request_json;       // features, mode, positions, sampling settings
  std::string default_text, steered_text;
};

struct DatabaseInfo {
  std::string path;
  int schema_version = 0;
  std::string model, sae, hook, corpus;
  std::int64_t d_sae = 0, tokens = 0, dead = 0;
  std::uint64_t seed = 0;
  Histogram density_histogram;  // log10 density of alive features
};

class FeatureDb {
 public:
  enum class Mode { ReadOnly, ReadWrite };
  static constexpr int kSchemaVersion = 4;

  // Opens an existing feature database, migrating an older schema in ReadWrite mode. Throws
  // Error naming the file for a missing file, a file that is not a database, a newer schema,
  // a shard that has not been merged, or a locked or read-only file.
  static std::unique_ptr<FeatureDb> open(const std::string& path, Mode mode = Mode::ReadOnly);
  ~FeatureDb();
  FeatureDb(const FeatureDb&) = delete;
  FeatureDb& operator=(const FeatureDb&) = delete;

  const DatabaseInfo& info() const;
  // A value of the meta table ("" when absent), e.g. what a benchmark's writer recorded.
  std::string metaValue(const std::string& key) const;

  std::int64_t countFeatures(const FeatureQuery& query) const;
  std::vector<FeatureSummary> listFeatures(const FeatureQuery& query) const;
  // Every matching id in the query's order (offset and limit ignored): a list view keeps this
  // (8 bytes a feature) and fetches rows by id as they scroll into view.
  std::vector<std::int64_t> featureIds(const FeatureQuery& query) const;
  FeatureSummary summary(std::int64_t feature) const;
  FeaturePage page(std::int64_t feature) const;
  std::vector<MapPoint> mapPoints() const;

  // Dictionaries of millions of features (schema 4, built by the index merge or the migration):
  // whether the feature orders and map layers exist.
  bool hasLayers() const;
  // Ascending positions [begin, end) of the query's matches in its sort order (ties by id), when
  // they form one range of it: no search text, and a filter that is a prefix or suffix of that
  // order (all; dead and alive for density and max; dense for density). nullopt otherwise.
  std::optional<std::pair<std::int64_t, std::int64_t>> orderRange(const FeatureQuery& query) const;
  // The ids at ascending positions [first, first + count) of `sort`, and a feature's position.
  std::vector<std::int64_t> idsInOrder(FeatureSort sort, std::int64_t first, std::int64_t count) const;
  std::int64_t positionInOrder(FeatureSort sort, std::int64_t feature) const;  // -1 when unknown
  // At most `limit` matching ids in the query's order; `total` (when given) receives the number of
  // matches counted up to limit + 1, so a count above `limit` means the list was cut.
  std::vector<std::int64_t> featureIds(const FeatureQuery& query, std::int64_t limit, std::int64_t* total) const;
  const MapLayout& mapLayout() const;
  MapTile mapTile(int level, int tx, int ty) const;
  std::vector<MapPoint> mapCell(std::int64_t cell) const;
  std::optional<MapPoint> mapPoint(std::int64_t feature) const;
  std::vector<std::pair<std::int64_t, float>> neighbours(std::int64_t feature) const;
  // Full-text search over explanations and top tokens, best match first.
  std::vector<FeatureScore> searchText(const std::string& query, std::size_t k) const;

  // A person's 0-3 label of an example (scorer "manual"); -1 removes it.
  void setLabel(std::int64_t example, int score);
  // A scorer's 0-3 score of an example, replacing that scorer's previous score.
  void setScore(std::int64_t example, const std::string& scorer, int score);
  // Writes many scores in one transaction.
  void setScores(const std::vector<std::pair<std::int64_t, int>>& example_scores, const std::string& scorer);
  // Saves a new version of a feature's explanation; returns its version number.
  std::int64_t setExplanation(std::int64_t feature, const std::string& text, const std::string& author);
  std::vector<ExplanationVersion> explanationHistory(std::int64_t feature) const;

  std::int64_t saveSteeringRun(SteeringRunRecord run);
  std::vector<SteeringRunRecord> steeringRuns(std::size_t limit = 100) const;

  // Ids of the examples of a feature (top first, then intervals) with their center token text
  // and context, for scorers.
  std::vector<Example> examplesForScoring(std::int64_t feature) const;

  struct Impl;

 private:
  explicit FeatureDb(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

const char* featureSortName(FeatureSort s);
FeatureSort parseFeatureSort(const std::string& s);
FeatureFilter parseFeatureFilter(const std::string& s);

}  // namespace monoscope::core
