// buildIndex / mergeIndex: the public entry points of the index job.
#include "api/indexer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "api/engine.h"
#include "index/index_job.h"
#include "index/neighbours.h"
#include "lm/transformer.h"
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
  weightDtypeFromName(weights, "index option weights");
}

namespace {

void removeDb(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix);
}

}  // namespace

std::string dictionaryFingerprint(const std::string& sae_dir) {
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_regular_file(sae_dir, ec)) {
    files.push_back(sae_dir);
  } else if (fs::is_directory(sae_dir, ec)) {
    // Hidden entries (.git, caches) and databases an index writes beside the weights are not the
    // dictionary: leaving them out keeps the fingerprint of a folder that holds its own index.
    auto ignored = [](const std::string& n) {
      auto ends = [&n](const std::string& t) { return n.size() >= t.size() && n.compare(n.size() - t.size(), t.size(), t) == 0; };
      return (!n.empty() && n[0] == '.') || ends(".db") || ends(".scan") || ends(".partial") || ends("-wal") || ends("-shm") ||
             ends("-journal");
    };
    for (auto it = fs::recursive_directory_iterator(sae_dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ignored(it->path().filename().string())) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    if (files.size() > 256) files.resize(256);
  } else {
    return "";
  }
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a, 64 bits
  auto mix = [&h](const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  for (const auto& f : files) {
    const std::string name = fs::relative(f, fs::is_directory(sae_dir, ec) ? fs::path(sae_dir) : f.parent_path(), ec).generic_string();
    mix(name.data(), name.size());
    const std::uint64_t size = fs::file_size(f, ec);
    mix(&size, sizeof size);
    std::ifstream in(f, std::ios::binary);
    char block[4096];
    for (int q = 0; q < 8 && in; ++q) {  // 8 blocks spread over the file, the last at its end
      const std::uint64_t span = size <= sizeof block ? 0 : size - sizeof block;
      const std::uint64_t at = q == 7 ? span : span / 7 * static_cast<std::uint64_t>(q);
      in.seekg(static_cast<std::streamoff>(at));
      in.read(block, sizeof block);
      mix(block, static_cast<std::size_t>(in.gcount()));
      in.clear();
      if (size <= sizeof block) break;
    }
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

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
    eo.weights = o.weights;
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
