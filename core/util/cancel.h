#pragma once
// Internal: unwinding a cancelled job. Long jobs call report(); it throws Cancelled when the
// progress callback returns false, and the public API turns that into JobStatus::Cancelled.
#include <cstdint>
#include <string>

#include "api/progress.h"

namespace monoscope::core {

struct Cancelled {};

inline void report(const ProgressFn& fn, const std::string& stage, std::int64_t done, std::int64_t total,
                   const std::string& detail = {}) {
  if (fn && !fn(Progress{stage, done, total, detail})) throw Cancelled{};
}

}  // namespace monoscope::core
