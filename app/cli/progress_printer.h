#pragma once
// Progress of long jobs on stderr: one line per stage change, updates at most twice a second.
#include <chrono>
#include <cstdio>
#include <string>

#include "api/progress.h"

namespace monoscope::cli {

inline core::ProgressFn stderrProgress() {
  struct State {
    std::string stage;
    std::chrono::steady_clock::time_point last{};
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  };
  auto st = std::make_shared<State>();
  return [st](const core::Progress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool new_stage = p.stage != st->stage;
    const bool finished = p.total > 0 && p.done >= p.total;
    if (!new_stage && !finished && now - st->last < std::chrono::milliseconds(500)) return true;
    st->stage = p.stage;
    st->last = now;
    const double secs = std::chrono::duration<double>(now - st->start).count();
    if (p.total > 0) {
      std::fprintf(stderr, "%-14s %lld/%lld (%.0f%%)  %s  [%.0f s]\n", p.stage.c_str(), static_cast<long long>(p.done),
                   static_cast<long long>(p.total), 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total),
                   p.detail.c_str(), secs);
    } else {
      std::fprintf(stderr, "%-14s %s  [%.0f s]\n", p.stage.c_str(), p.detail.c_str(), secs);
    }
    return true;
  };
}

}  // namespace monoscope::cli
