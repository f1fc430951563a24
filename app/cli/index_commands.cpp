// index, merge, feature, search: building and reading feature databases.
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/engine.h"
#include "api/feature_db.h"
#include "api/indexer.h"
#include "commands.h"
#include "inputs.h"
#include "progress_printer.h"
#include "util/error.h"

using monoscope::core::Error;

namespace monoscope::cli {

namespace {

void parseShard(const std::string& s, core::IndexOptions* o) {
  const auto slash = s.find('/');
  if (slash == std::string::npos) throw Error("--shard '" + s + "' must be i/n, e.g. 0/4");
  o->shard_index = static_cast<int>(parseInteger(s.substr(0, slash), "--shard index"));
  o->shard_count = static_cast<int>(parseInteger(s.substr(slash + 1), "--shard count"));
  if (o->shard_count < 1 || o->shard_index < 0 || o->shard_index >= o->shard_count)
    throw Error("--shard " + s + " is out of range", "use i/n with 0 <= i < n");
}

nlohmann::ordered_json exampleJson(const core::Example& e) {
  nlohmann::ordered_json j;
  j["id"] = e.id;
  j["tokens"] = e.tokens;
  j["acts"] = e.acts;
  j["center"] = e.center;
  if (!e.domain.empty()) j["domain"] = e.domain;
  // The score shown: a person's label first, then an LLM judge's, then the concept matcher's.
  const core::ExampleScore* best = nullptr;
  auto rank = [](const std::string& s) { return s == "manual" ? 0 : s.rfind("llm", 0) == 0 ? 1 : 2; };
  for (const auto& s : e.scores)
    if (!best || rank(s.scorer) < rank(best->scorer)) best = &s;
  j["score"] = best ? nlohmann::ordered_json(best->score) : nlohmann::ordered_json();
  j["scorer"] = best ? nlohmann::ordered_json(best->scorer) : nlohmann::ordered_json();
  return j;
}

nlohmann::ordered_json histogramJson(const core::Histogram& h) {
  return {{"lo", h.lo}, {"hi", h.hi}, {"counts", h.counts}};
}

std::unique_ptr<core::Engine> engineForDb(const Args& args, const core::FeatureDb& db) {
  return core::Engine::open(engineOptions(args, true, db.info().model, db.info().sae));
}

}  // namespace

int cmdIndex(const Args& args) {
  args.allowOnly({"model", "sae", "corpus", "tokens", "out", "shard", "seed", "context", "batch", "intervals", "per-interval",
                  "top", "left", "right", "neighbours", "neighbour-method", "umap", "umap-epochs", "skip-first", "device", "threads", "weights"});
  core::IndexOptions o;
  o.model_dir = args.get("model");
  o.sae_dir = args.get("sae");
  o.corpus = args.get("corpus");
  o.out = args.get("out");
  o.tokens = args.integer("tokens", 1, std::int64_t{1} << 40);
  if (args.has("shard")) parseShard(args.get("shard"), &o);
  o.seed = static_cast<std::uint64_t>(args.integer("seed", 0, 0, INT64_MAX));
  o.context = args.integer("context", 0, 0, 1 << 20);
  o.batch = args.integer("batch", o.batch, 1, 4096);
  o.intervals = static_cast<int>(args.integer("intervals", o.intervals, 1, 1000));
  o.per_interval = static_cast<int>(args.integer("per-interval", o.per_interval, 0, 1000));
  o.top = static_cast<int>(args.integer("top", o.top, 0, 10000));
  o.left = static_cast<int>(args.integer("left", o.left, 0, 4096));
  o.right = static_cast<int>(args.integer("right", o.right, 0, 4096));
  o.neighbours = static_cast<int>(args.integer("neighbours", o.neighbours, 0, 1000));
  o.neighbour_method = args.get("neighbour-method", o.neighbour_method);
  o.skip_first = args.get("skip-first", "true") != "false";
  o.umap = args.get("umap", "true") != "false";
  o.umap_epochs = args.integer("umap-epochs", 0, 0, 100000);
  o.device = args.get("device", "auto");
  o.threads = threadsOption(args);
  o.weights = args.get("weights", "auto");
  const auto status = core::buildIndex(o, stderrProgress());
  nlohmann::ordered_json j;
  j["out"] = o.out;
  j["status"] = status == core::JobStatus::Done ? "done" : "cancelled";
  if (o.shard_count > 1) j["shard"] = std::to_string(o.shard_index) + "/" + std::to_string(o.shard_count);
  if (o.shard_count == 1 && status == core::JobStatus::Done) {
    const auto db = core::FeatureDb::open(o.out);
    j["features"] = db->info().d_sae;
    j["dead"] = db->info().dead;
    j["tokens"] = db->info().tokens;
  }
  std::cout << j.dump() << "\n";
  return 0;
}

int cmdMerge(const Args& args) {
  args.allowOnly({"out", "device", "threads"}, 100000);
  if (args.positional().empty()) throw Error("no shards given", "usage: merge --out FILE.db SHARD.db...");
  const auto status = core::mergeIndex(args.positional(), args.get("out"), args.get("device", "auto"), threadsOption(args),
                                       stderrProgress());
  const auto db = core::FeatureDb::open(args.get("out"));
  std::cout << nlohmann::json{{"out", args.get("out")}, {"status", status == core::JobStatus::Done ? "done" : "cancelled"},
                              {"shards", args.positional().size()}, {"tokens", db->info().tokens}}
                   .dump()
            << "\n";
  return 0;
}

int cmdFeature(const Args& args) {
  args.allowOnly({"json"}, 2);
  if (args.positional().size() != 2) throw Error("usage: feature FILE.db ID --json");
  const auto db = core::FeatureDb::open(args.positional()[0]);
  const auto id = parseInteger(args.positional()[1], "feature id");
  const auto p = db->page(id);
  nlohmann::ordered_json j;
  j["id"] = p.summary.id;
  j["explanation"] = p.summary.explanation;
  j["explanation_version"] = p.explanation_version;
  j["density"] = p.summary.density;
  j["count"] = p.summary.count;
  j["max_act"] = p.summary.max_act;
  j["mean_act"] = p.summary.mean_act;
  j["histogram"] = histogramJson(p.histogram);
  j["intervals"] = nlohmann::ordered_json::array();
  for (const auto& iv : p.intervals) {
    nlohmann::ordered_json o;
    o["lo"] = iv.lo;
    o["hi"] = iv.hi;
    o["count"] = iv.count;
    o["examples"] = nlohmann::ordered_json::array();
    for (const auto& e : iv.examples) o["examples"].push_back(exampleJson(e));
    j["intervals"].push_back(o);
  }
  j["top_examples"] = nlohmann::ordered_json::array();
  for (const auto& e : p.top_examples) j["top_examples"].push_back(exampleJson(e));
  j["logits"] = {{"top", p.logits_top}, {"bottom", p.logits_bottom}, {"histogram", histogramJson(p.logits_histogram)}};
  j["neighbours"] = p.neighbours;
  j["umap"] = p.umap ? nlohmann::ordered_json{p.umap->first, p.umap->second} : nlohmann::ordered_json();
  std::cout << j.dump() << "\n";
  return 0;
}

int cmdSearch(const Args& args) {
  args.allowOnly({"prompt", "negative", "text", "attribute", "target", "versus", "top", "json", "model", "sae", "device", "threads", "weights"}, 1);
  if (args.positional().size() != 1) throw Error("usage: search FILE.db (--prompt T [--negative T] | --text Q | --attribute T --target A --versus B) --top K --json");
  const auto db = core::FeatureDb::open(args.positional()[0]);
  const auto k = static_cast<std::size_t>(args.integer("top", 10, 1, 100000));
  const int modes = args.has("prompt") + args.has("text") + args.has("attribute");
  if (modes != 1) throw Error("give exactly one of --prompt, --text or --attribute");
  std::vector<core::FeatureScore> found;
  if (args.has("text")) {
    found = db->searchText(args.get("text"), k);
  } else {
    const auto engine = engineForDb(args, *db);
    if (args.has("prompt")) {
      found = args.has("negative") ? engine->contrastive(args.get("prompt"), args.get("negative"), k)
                                   : engine->topFeaturesLastToken(args.get("prompt"), k);
    } else {
      found = engine->attribute(args.get("attribute"), args.get("target"), args.get("versus"), k);
    }
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& f : found) {
    std::string expl;
    if (f.feature < db->info().d_sae) expl = db->summary(f.feature).explanation;
    out.push_back({{"id", f.feature}, {"score", f.score}, {"explanation", expl}});
  }
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace monoscope::cli

#include "api/scoring.h"

namespace monoscope::cli {

namespace {

core::LlmEndpoint endpointOf(const Args& args) {
  core::LlmEndpoint ep;
  ep.base_url = args.get("endpoint");
  ep.model = args.get("llm-model");
  // The key comes from the environment, never from the command line (it would show in ps).
  const char* key = std::getenv(args.get("api-key-env", "MONOSCOPE_LLM_API_KEY").c_str());
  if (key) ep.api_key = key;
  ep.timeout_seconds = args.number("timeout", 60.0);
  if (!(ep.timeout_seconds > 0 && ep.timeout_seconds <= 3600)) throw Error("--timeout must be in (0, 3600] seconds");
  return ep;
}

}  // namespace

int cmdScore(const Args& args) {
  args.allowOnly({"scorer", "features", "endpoint", "llm-model", "api-key-env", "timeout"}, 1);
  if (args.positional().size() != 1) throw Error("usage: score FILE.db --scorer concept|llm [--features IDS] [--endpoint URL --llm-model NAME]");
  core::ScoreOptions o;
  o.scorer = args.get("scorer");
  if (args.has("features")) {
    for (auto id : parseIds(args.get("features"), INT32_MAX)) o.features.push_back(id);
  }
  if (o.scorer == "llm") o.llm = endpointOf(args);
  core::ScoreSummary s;
  const auto status = core::scoreFeatures(args.positional()[0], o, stderrProgress(), &s);
  std::cout << nlohmann::json{{"scorer", s.scorer}, {"status", status == core::JobStatus::Done ? "done" : "cancelled"},
                              {"features", s.features}, {"examples", s.examples}, {"failed", s.failed}, {"histogram", s.histogram}}
                   .dump()
            << "\n";
  return 0;
}

int cmdExplain(const Args& args) {
  args.allowOnly({"features", "endpoint", "llm-model", "api-key-env", "timeout", "redo", "top", "per-interval"}, 1);
  if (args.positional().size() != 1) throw Error("usage: explain FILE.db --endpoint URL --llm-model NAME [--features IDS] [--redo]");
  core::ExplainOptions o;
  if (args.has("features")) {
    for (auto id : parseIds(args.get("features"), INT32_MAX)) o.features.push_back(id);
  }
  o.llm = endpointOf(args);
  o.redo = args.has("redo");
  o.top_examples = static_cast<int>(args.integer("top", o.top_examples, 1, 100));
  o.interval_examples = static_cast<int>(args.integer("per-interval", o.interval_examples, 0, 20));
  core::ExplainSummary s;
  const auto status = core::explainFeatures(args.positional()[0], o, stderrProgress(), &s);
  std::cout << nlohmann::json{{"author", s.author}, {"status", status == core::JobStatus::Done ? "done" : "cancelled"},
                              {"features", s.features}, {"explained", s.explained}, {"skipped", s.skipped}, {"failed", s.failed}}
                   .dump()
            << "\n";
  return 0;
}

}  // namespace monoscope::cli
