// buildIndex / mergeIndex: the public entry points of the index job.
#include "api/indexer.h"

#include <filesystem>

#include "api/engine.h"
#include "index/index_job.h"
#include "index/neighbours.h"
#include "util/cancel.h"
#include "sae/transcoder_set.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace monoscope::core {

void IndexOptions::validate() const {
  auto bad = [](const std::string& field, const std::string& problem) {
    throw Error("index option " + field + " " + problem);
  };
  if (model_dir.empty()) bad("model_dir", "is empty");
  if (sae_dir.empty()) bad("sae_dir", "is empty");
  if (corpus.empty()) bad("corpus", "is empty");
  if (out.empty()) bad("out", "is empty");
  if (tokens < 1 || tokens > (std::int64_t{1} << 40)) bad("tokens", "must be in 1..2^40");
  if (shard_count < 1 || shard_count > 100000) bad("shard_count", "must be in 1..100000");
  if (shard_index < 0 || shard_index >= shard_count) bad("shard_index", "must be in 0..shard_count-1");
  if (context < 0 || context > (1 << 20)) bad("context", "must be in 0..1048576 (0: the SAE's context)");
  if (batch < 1 || batch > 4096) bad("batch", "must be in 1..4096");
  if (intervals < 1 || intervals > 1000) bad("intervals", "must be in 1..1000");
  if (per_interval < 0 || per_interval > 1000) bad("per_interval", "must be in 0..1000");
  if (top < 0 || top > 10000) bad("top", "must be in 0..10000");
  if (left < 0 || left > 4096 || right < 0 || right > 4096) bad("left/right", "must be in 0..4096");
  if (histogram_bins < 1 || histogram_bins > 10000) bad("histogram_bins", "must be in 1..10000");
  if (neighbours < 0 || neighbours > 1000) bad("neighbours", "must be in 0..1000");
  if (umap_epochs < 0 || umap_epochs > 100000) bad("umap_epochs", "must be in 0..100000");
  parseKnnMethod(neighbour_method);
}

namespace {

void removeDb(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix);
}

}  // namespace

JobStatus buildIndex(const IndexOptions& o, const ProgressFn& progress) {
  o.validate();
  // Fail before loading anything when an input is missing.
  std::string set_file;
  std::int64_t set_layer = 0;
  const bool set_layer_named = parseTranscoderSetSpec(o.sae_dir, &set_file, &set_layer);  // "set.yaml#L"
  for (const auto& [what, p] : {std::pair<const char*, const std::string&>{"model folder", o.model_dir},
                                {"SAE folder", set_layer_named ? set_file : o.sae_dir}, {"corpus", o.corpus}})
    if (!fs::exists(p)) throw Error(std::string(what) + " '" + p + "' does not exist");
  try {
    EngineOptions eo;
    eo.model_dir = o.model_dir;
    eo.sae_dir = o.sae_dir;
    eo.device = o.device;
    eo.threads = o.threads;
    auto engine = Engine::open(eo, progress);
    if (!engine) return JobStatus::Cancelled;
    if (o.shard_count > 1) {
      scanCorpus(o, *engine, o.out, progress);
      return JobStatus::Done;
    }
    const std::string scan = o.out + ".scan";
    scanCorpus(o, *engine, scan, progress);
    finalizeIndex({scan}, o.out, o.device, o.threads, progress, engine.get());  // the same model and SAE
    removeDb(scan);
    return JobStatus::Done;
  } catch (const Cancelled&) {
    fs::remove(o.out + ".partial");
    return JobStatus::Cancelled;
  }
}

JobStatus mergeIndex(const std::vector<std::string>& shards, const std::string& out, const std::string& device,
                     int threads, const ProgressFn& progress) {
  for (const auto& s : shards)
    if (fs::exists(out) && fs::equivalent(s, out)) throw Error("the merged database '" + out + "' would overwrite shard '" + s + "'");
  try {
    finalizeIndex(shards, out, device, threads, progress);
    return JobStatus::Done;
  } catch (const Cancelled&) {
    fs::remove(out + ".partial");
    return JobStatus::Cancelled;
  }
}

}  // namespace monoscope::core
