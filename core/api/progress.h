#pragma once
// The one progress-and-cancel contract of every long job (load, corpus, training, index, UMAP,
// scoring): the job calls a ProgressFn now and then; returning false cancels it. Cancelling is
// not an error: the job returns JobStatus::Cancelled and leaves what it finished resumable.
#include <cstdint>
#include <functional>
#include <string>

namespace monoscope::core {

struct Progress {
  std::string stage;       // what is running: "scan", "intervals", "umap", "train", ...
  std::int64_t done = 0;   // units finished in this stage
  std::int64_t total = 0;  // units in this stage (0 when unknown)
  std::string detail;      // optional one-line status, e.g. "L0 42.1  fve 0.87"
};

// Called on the job's own thread; return false to cancel.
using ProgressFn = std::function<bool(const Progress&)>;

enum class JobStatus { Done, Cancelled };

}  // namespace monoscope::core
