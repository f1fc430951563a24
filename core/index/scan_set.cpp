#include "index/scan_set.h"

#include <filesystem>
#include <stdexcept>

#include "index/token_corpus.h"

namespace fs = std::filesystem;

namespace monoscope::core {

namespace {

constexpr std::int64_t kMaxShards = 1'000'000;

std::map<std::string, std::string> readMeta(Sqlite& db) {
  std::map<std::string, std::string> m;
  auto st = db.prepare("SELECT key, value FROM meta");
  while (st.step()) m[st.text(0)] = st.text(1);
  return m;
}

}  // namespace

ScanSet openScans(const std::vector<std::string>& paths) {
  if (paths.empty()) throw Error("no scans to merge", "give the shard databases written by index --shard");
  ScanSet set;
  std::vector<bool> seen;
  for (const auto& p : paths) {
    if (!fs::is_regular_file(p)) throw Error("shard '" + p + "' does not exist or is not a file");
    auto db = std::make_unique<Sqlite>(p, Sqlite::Open::ReadOnly);
    db->userVersion();
    if (!db->hasTable("scan_windows") || !db->hasTable("meta"))
      throw Error("'" + p + "' is not an index shard (no scan_windows table)", "give the databases written by index --shard i/n");
    auto m = readMeta(*db);
    if (m["complete"] != "1") throw Error("shard '" + p + "' is incomplete", "rerun its index command; it resumes where it stopped");
    const std::int64_t index = parseInt64(m["shard_index"], "'" + p + "': shard_index");
    m.erase("shard_index");
    m.erase("complete");
    if (set.dbs.empty()) {
      set.meta = m;
      const std::int64_t count = parseInt64(m["shard_count"], "'" + p + "': shard_count");
      if (count < 1 || count > kMaxShards)
        throw Error("'" + p + "': shard_count " + std::to_string(count) + " is out of range (1.." + std::to_string(kMaxShards) + ")");
      seen.assign(static_cast<std::size_t>(count), false);
    } else {
      for (const auto& [k, v] : set.meta) {
        if (m[k] != v)
          throw Error("shard '" + p + "' belongs to another index (" + k + " is " + m[k] + ", not " + v + ")",
                      "merge only the shards of one index run");
      }
    }
    if (index < 0 || static_cast<std::size_t>(index) >= seen.size() || seen[static_cast<std::size_t>(index)])
      throw Error("shard '" + p + "' has index " + std::to_string(index) + ", which is out of range or given twice");
    seen[static_cast<std::size_t>(index)] = true;
    set.dbs.push_back(std::move(db));
  }
  for (std::size_t i = 0; i < seen.size(); ++i)
    if (!seen[i]) throw Error("shard " + std::to_string(i) + "/" + std::to_string(seen.size()) + " is missing", "give every shard of the index");
  set.windows = set.integer("windows");
  set.d_sae = set.integer("d_sae");
  return set;
}

WindowDomains windowDomains(const ScanSet& set, const Tokenizer& tokenizer) {
  WindowDomains out;
  std::unique_ptr<TokenCorpus> corpus;
  try {  // the same windows the scan read; without the corpus (moved, or plain text) no domains
    corpus = std::make_unique<TokenCorpus>(set.meta.at("corpus"), tokenizer, set.integer("tokens_requested"),
                                           set.integer("context"));
  } catch (const Error&) {
    return out;
  } catch (const std::out_of_range&) {
    return out;
  }
  if (corpus->domains().empty() || corpus->windows() != set.windows || corpus->domains().size() > kMaxDomains) return out;
  out.names = corpus->domains();
  out.share.assign(out.names.size(), 0.0);
  out.per_window.resize(static_cast<std::size_t>(set.windows));
  out.encoded.resize(static_cast<std::size_t>(set.windows));
  for (std::int64_t w = 0; w < set.windows; ++w) {
    const std::int32_t d = corpus->windowDomain(w);
    out.per_window[static_cast<std::size_t>(w)] = d;
    out.encoded[static_cast<std::size_t>(w)] = d < 0 ? '.' : static_cast<char>('0' + d);
    if (d >= 0) out.share[static_cast<std::size_t>(d)] += 1.0 / static_cast<double>(set.windows);
  }
  return out;
}

}  // namespace monoscope::core
