#pragma once
// Building a feature database: a streaming scan of a corpus through model + SAE, then the
// statistics, examples, logit effects, neighbours, map and first explanations. A scan can be
// split into shards (run anywhere, e.g. as a batch array job) that merge into the same result.
#include <cstdint>
#include <string>
#include <vector>

#include "api/progress.h"

namespace monoscope::core {

struct IndexOptions {
  std::string model_dir;                 // Hugging Face model folder
  std::string sae_dir;                   // SAELens SAE folder
  std::string corpus;                    // token shard, build-corpus folder, text file or text folder
  std::string out;                       // the feature database (or the shard's scan database)
  std::int64_t tokens = 1'000'000;       // tokens to scan (rounded down to whole windows)
  int shard_index = 0, shard_count = 1;  // this run scans shard shard_index of shard_count
  std::uint64_t seed = 0;                // reservoir sampling and map seed
  std::int64_t context = 0;              // tokens per scanned window; 0: the SAE's context (<= n_ctx)
  std::int64_t batch = 8;                // windows per forward pass and per committed block
  bool skip_first = true;                // each window's first position records no activations (it
                                         // is an attention sink in most trained LMs), nor do the
                                         // end-of-text token at document boundaries and rows with a
                                         // massive norm (windowSinkMask, sae/sae.h: other sinks);
                                         // their tokens stay in the examples' context
  int intervals = 10;                    // equal-width activation intervals over (0, max]
  int per_interval = 10;                 // uniform sample size per interval
  int top = 20;                          // top examples per feature
  int left = 20, right = 8;              // example context: tokens before and after the activation
  int histogram_bins = 50;               // activation histogram bins over (0, max]
  int neighbours = 10;                   // decoder-space neighbours kept per feature
  std::string neighbour_method = "auto"; // auto | exact | hnsw
  bool umap = true;                      // compute the 2-D map of the decoder rows
  std::int64_t umap_epochs = 0;          // 0: umap-learn's default for the size
  std::string device = "auto";
  int threads = 0;
  std::string weights = "auto";          // the model's matrices: auto | float32 | stored (EngineOptions)

  // Throws Error naming the field.
  void validate() const;
};

// Runs a whole index (scan, then finalise into `out`), or with shard_count > 1 only this shard's
// scan into `out` (to be merged). An interrupted scan resumes from the blocks it committed; the
// database appears atomically when complete. Cancelling keeps the scan for resuming.
JobStatus buildIndex(const IndexOptions& options, const ProgressFn& progress = {});

// A fingerprint of the dictionary at `sae_dir` (a folder or a file): its files' names and sizes
// and sampled blocks of their bytes, so reading it costs the same for 20 MB or 20 GB. The index
// records it (meta `sae_fingerprint`), so a database built from other weights can be told apart.
// Empty when `sae_dir` is neither a file nor a folder (a release name, a transcoder layer spec).
std::string dictionaryFingerprint(const std::string& sae_dir);

// Combines shard scans (all shards of one index) into the feature database `out`.
JobStatus mergeIndex(const std::vector<std::string>& shards, const std::string& out, const std::string& device = "auto",
                     int threads = 0, const ProgressFn& progress = {});

}  // namespace monoscope::core
