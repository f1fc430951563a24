#pragma once
// Internal: the complete scans (shards) of one index opened together, and passes over their
// window records, in order or split between threads.
#include <atomic>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/progress.h"
#include "index/window_log.h"
#include "store/sqlite.h"
#include "util/cancel.h"
#include "util/error.h"
#include "util/numbers.h"

namespace monoscope::core {

struct ScanSet {
  std::vector<std::unique_ptr<Sqlite>> dbs;
  std::map<std::string, std::string> meta;
  std::int64_t windows = 0, d_sae = 0;
  std::int64_t integer(const std::string& k) const {
    const auto it = meta.find(k);
    if (it == meta.end()) throw Error("the scan's metadata lacks '" + k + "'", "the shard is damaged; rerun its index command");
    return parseInt64(it->second, "the scan's metadata " + k);
  }
};

// The source domain of every scanned window (from the corpus's shard, when it records sources),
// and each domain's share of the windows. `encoded` is one character per window for the
// database's metadata ('.' unknown, else '0' + the domain's index; see store's reader).
constexpr std::size_t kMaxDomains = 64;  // '0' + 63 is still printable
struct WindowDomains {
  std::vector<std::string> names;
  std::vector<double> share;
  std::vector<std::int32_t> per_window;
  std::string encoded;
  std::int32_t of(std::int64_t w) const {
    return w >= 0 && static_cast<std::size_t>(w) < per_window.size() ? per_window[static_cast<std::size_t>(w)] : -1;
  }
};
class Tokenizer;
WindowDomains windowDomains(const ScanSet& set, const Tokenizer& tokenizer);

// Opens complete scans that belong to one index (every shard once); throws Error naming the file.
ScanSet openScans(const std::vector<std::string>& paths);

template <typename Fn>
void forEachWindow(ScanSet& set, const std::string& stage, const ProgressFn& progress, Fn&& fn) {
  std::int64_t done = 0;
  for (auto& db : set.dbs) {
    auto st = db->prepare("SELECT window, data FROM scan_windows ORDER BY window");
    while (st.step()) {
      const auto w = WindowLog::parse(st.blob(1), st.blobSize(1), "'" + db->path() + "' window " + std::to_string(st.integer(0)));
      fn(st.integer(0), w);
      if (++done % 64 == 0) report(progress, stage, done, set.windows);
    }
  }
  if (done != set.windows)
    throw Error("the shards hold " + std::to_string(done) + " windows, not " + std::to_string(set.windows), "rerun the shards' index commands");
  report(progress, stage, done, set.windows);
}

// The same over `parts` contiguous ranges of windows at once, each on its own thread with its
// own read-only connections: fn(part, window, log). The calling thread runs part 0 and reports
// progress; the first exception of any part (a malformed window, a cancellation) stops the others
// and is rethrown.
template <typename Fn>
void forEachWindowInParts(ScanSet& set, int parts, const std::string& stage, const ProgressFn& progress, Fn&& fn) {
  std::atomic<std::int64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(parts));
  auto work = [&](int part) {
    try {
      const std::int64_t lo = set.windows * part / parts, hi = set.windows * (part + 1) / parts;
      for (const auto& scan : set.dbs) {
        Sqlite db(scan->path(), Sqlite::Open::ReadOnly);
        auto st = db.prepare("SELECT window, data FROM scan_windows WHERE window >= ? AND window < ? ORDER BY window");
        st.bind(1, lo).bind(2, hi);
        while (st.step()) {
          if (stop.load(std::memory_order_relaxed)) return;
          const auto w = WindowLog::parse(st.blob(1), st.blobSize(1), "'" + db.path() + "' window " + std::to_string(st.integer(0)));
          fn(part, st.integer(0), w);
          const std::int64_t d = ++done;
          if (part == 0 && d % 64 == 0) report(progress, stage, d, set.windows);
        }
      }
    } catch (...) {
      errors[static_cast<std::size_t>(part)] = std::current_exception();
      stop = true;
    }
  };
  std::vector<std::thread> threads;
  for (int p = 1; p < parts; ++p) threads.emplace_back(work, p);
  work(0);
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  if (done != set.windows)
    throw Error("the shards hold " + std::to_string(done.load()) + " windows in 0.." + std::to_string(set.windows - 1) + ", not " +
                    std::to_string(set.windows),
                "rerun the shards' index commands");
  report(progress, stage, done, set.windows);
}

}  // namespace monoscope::core
