#pragma once
// Activations collected once to disk for SAE training over several epochs: random windows of a
// token shard run through the model to a hook, written in chunks (F16 safetensors, tensor
// `activations` [rows, d_model]). Each chunk's windows come from its own seed, so an interrupted
// harvest resumes by skipping the chunks already written, and gives the same files. Each row's
// token id is stored beside it (tensor `tokens`, I32 [rows]); chunks written without it are
// completed in place on the next run by drawing their windows again.
#include <cstdint>
#include <string>
#include <vector>

#include "api/progress.h"

namespace monoscope::core {

struct HarvestOptions {
  std::string model_dir;            // model folder or GGUF file
  std::string hook;                 // e.g. blocks.14.hook_resid_post
  std::string corpus;               // token shard, or corpus folder (its train shard)
  std::string out;                  // folder of chunk-NNNNN.safetensors
  std::int64_t tokens = 0;          // rows to collect in all
  std::int64_t context = 128;       // tokens per window
  bool skip_first = true;           // leave out each window's first position (the attention sink)
  bool skip_end_of_text = true;     // and, with it, the end-of-text tokens (document boundaries)
  std::int64_t chunk_rows = 65536;  // rows per file
  std::int64_t batch = 16;          // windows per forward pass
  std::uint64_t seed = 0;
  std::string device = "auto";
  int threads = 0;

  void validate() const;  // throws Error naming the field
};

JobStatus harvestActivations(const HarvestOptions& options, const ProgressFn& progress);

// The files of activations at `path`: a harvest folder's chunk-*.safetensors in order, or the one
// file `path` names. Throws Error for a folder without chunks or a path that does not exist.
std::vector<std::string> activationFiles(const std::string& path);

}  // namespace monoscope::core
