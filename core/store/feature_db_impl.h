#pragma once
// FeatureDb's state, shared by the files that implement it (feature_db.cpp: reads and writes;
// feature_db_layers.cpp: the layers of large dictionaries). Internal.
#include <memory>
#include <string>
#include <vector>

#include "api/feature_db.h"
#include "store/sqlite.h"
#include "util/error.h"
#include "util/utf8.h"

namespace monoscope::core {

constexpr std::int64_t kMaxVocab = 1 << 24;  // token ids a database's vocab table may hold

struct FeatureDb::Impl {
  std::unique_ptr<Sqlite> db;
  DatabaseInfo info;
  bool writable = false;
  std::vector<std::string> domains;        // source domains of the corpus (meta "domains")
  std::string window_domains;              // one character per window (index/scan_set.h)
  std::string domainOf(std::int64_t window) const {
    if (window < 0 || static_cast<std::size_t>(window) >= window_domains.size()) return {};
    const int d = window_domains[static_cast<std::size_t>(window)] - '0';
    return d >= 0 && static_cast<std::size_t>(d) < domains.size() ? domains[static_cast<std::size_t>(d)] : std::string();
  }
  // Layers of large dictionaries (meta "layers" and the map layout), read when the file opens.
  bool layers = false, dense_ids = false;
  std::int64_t layer_features = 0, dead_prefix_density = -1, dead_prefix_max = -1;
  MapLayout map;
  mutable std::vector<std::string> vocab;  // token texts, loaded when the database opens
  mutable std::vector<std::string> vocab_bytes;  // the tokens' bytes (a piece of a character for some)
  mutable bool vocab_loaded = false;

  const std::string& tokenText(std::int32_t id) const {
    if (!vocab_loaded) {
      // Ids are dense (0 .. rows-1) in a database the indexer wrote; an id at or past the row count
      // is a damaged row and shows as unknown, so a stray huge id cannot make the table allocate.
      auto rows = db->prepare("SELECT COUNT(*) FROM vocab");
      rows.step();
      const std::int64_t limit = std::min(rows.integer(0), kMaxVocab);
      auto st = db->prepare("SELECT id, bytes FROM vocab ORDER BY id");
      while (st.step()) {
        const std::int64_t raw = st.integer(0);
        if (raw < 0 || raw >= limit) continue;
        const auto id_row = static_cast<std::size_t>(raw);
        if (id_row >= vocab.size()) vocab.resize(id_row + 1), vocab_bytes.resize(id_row + 1);
        const auto* p = static_cast<const char*>(st.blob(1));
        vocab_bytes[id_row].assign(p ? p : "", st.blobSize(1));
        vocab[id_row] = toValidUtf8(vocab_bytes[id_row]);
      }
      vocab_loaded = true;
    }
    static const std::string unknown = "\xEF\xBF\xBD";
    return id >= 0 && static_cast<std::size_t>(id) < vocab.size() ? vocab[static_cast<std::size_t>(id)] : unknown;
  }
  // A window's tokens as text side by side (displayPieces: a character split over tokens shows
  // whole on the first of them).
  std::vector<std::string> windowText(const std::vector<std::int32_t>& ids) const {
    tokenText(0);  // (loads the vocabulary)
    static const std::string unknown = "\xEF\xBF\xBD";
    std::vector<std::string> raw;
    raw.reserve(ids.size());
    for (auto id : ids) raw.push_back(id >= 0 && static_cast<std::size_t>(id) < vocab_bytes.size() ? vocab_bytes[static_cast<std::size_t>(id)] : unknown);
    return displayPieces(raw);
  }
  void requireWritable(const char* doing) const {
    if (!writable) throw Error("feature database '" + info.path + "' was opened read-only; cannot " + doing);
  }
};


// Turns free text into an FTS5 query: every word must match (as a prefix). With
// `exact_long_words`, a word longer than the indexed prefixes must match whole; returns "" when
// there is no such word.
std::string ftsQuery(const std::string& text, bool exact_long_words = false);

// Reads the meta "layers" record and the map layout of a schema-4 file (no-op without them).
// Throws Error starting with `where` for a damaged record.
void readLayers(FeatureDb::Impl& impl, const std::string& where);

}  // namespace monoscope::core
