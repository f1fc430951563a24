#include "text/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <mutex>
#include <queue>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/gguf_import.h"
#include "io/json_file.h"
#include "text/pretokenizer.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/utf8.h"

namespace fs = std::filesystem;

namespace monoscope::core {

struct Tokenizer::Cache {
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<std::int32_t>> words;
  static constexpr std::size_t kMaxWords = 1u << 18;
};

namespace {

std::uint64_t pairKey(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
         static_cast<std::uint32_t>(b);
}

// Inverse of the byte-to-unicode map: token string (mapped alphabet) to raw bytes.
bool unmapToken(const std::string& s, std::string* out) {
  static const std::unordered_map<std::uint32_t, unsigned char> inverse = [] {
    std::unordered_map<std::uint32_t, unsigned char> m;
    const auto& fwd = Tokenizer::byteToUnicode();
    for (int b = 0; b < 256; ++b) m[fwd[b]] = static_cast<unsigned char>(b);
    return m;
  }();
  if (findInvalidUtf8(s) != std::string_view::npos) return false;
  out->clear();
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t len = 0;
    const std::uint32_t cp = decodeUtf8(s, i, &len);
    auto it = inverse.find(cp);
    if (it == inverse.end()) return false;
    out->push_back(static_cast<char>(it->second));
    i += len;
  }
  return true;
}

std::string mapBytes(std::string_view bytes) {
  std::string out;
  const auto& fwd = Tokenizer::byteToUnicode();
  for (unsigned char b : bytes) appendUtf8(out, fwd[b]);
  return out;
}

}  // namespace

const std::vector<std::uint32_t>& Tokenizer::byteToUnicode() {
  static const std::vector<std::uint32_t> table = [] {
    std::vector<std::uint32_t> t(256, 0);
    std::vector<bool> printable(256, false);
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    std::uint32_t next = 256;
    for (int b = 0; b < 256; ++b) t[b] = printable[b] ? static_cast<std::uint32_t>(b) : next++;
    return t;
  }();
  return table;
}

void Tokenizer::addToken(std::int32_t id, std::string bytes) {
  if (id < 0 || id > 10'000'000) throw Error("token id " + std::to_string(id) + " is out of range");
  if (static_cast<std::size_t>(id) >= id_to_bytes_.size()) id_to_bytes_.resize(id + 1);
  bytes_to_id_[bytes] = id;
  id_to_bytes_[id] = std::move(bytes);
}

void Tokenizer::addMerge(std::int32_t left, std::int32_t right, std::int32_t rank,
                         const std::string& where) {
  const std::string merged = id_to_bytes_[left] + id_to_bytes_[right];
  auto it = bytes_to_id_.find(merged);
  if (it == bytes_to_id_.end()) {
    throw Error(where + ": merge " + std::to_string(rank) + " produces '" + mapBytes(merged) +
                    "', which is not in the vocabulary",
                "the vocabulary and merges come from different tokenizers");
  }
  merges_.emplace(pairKey(left, right), Merge{rank, it->second});
  merge_list_.emplace_back(left, right);
}

void Tokenizer::finish() {
  for (int b = 0; b < 256; ++b) {
    auto it = bytes_to_id_.find(std::string(1, static_cast<char>(b)));
    byte_ids_[b] = it == bytes_to_id_.end() ? -1 : it->second;
    missing_bytes_ = missing_bytes_ || it == bytes_to_id_.end();
  }
  for (const auto& [content, id] : specials_) {
    if (content == "<|endoftext|>") eot_id_ = id;
  }
  if (eot_id_ < 0 && !specials_.empty()) eot_id_ = specials_.front().second;
  // Longest special first so that overlapping specials match greedily.
  std::sort(specials_.begin(), specials_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  cache_ = std::make_shared<Cache>();
}

Tokenizer Tokenizer::fromDirectory(const std::string& model) {
  const std::string dir = resolveModelDir(model);
  const fs::path tj = fs::path(dir) / "tokenizer.json";
  if (fs::exists(tj)) return fromTokenizerJson(tj.string());
  const fs::path vj = fs::path(dir) / "vocab.json";
  const fs::path mt = fs::path(dir) / "merges.txt";
  if (fs::exists(vj) && fs::exists(mt)) return fromVocabMerges(vj.string(), mt.string());
  throw Error("no tokenizer in '" + dir + "': neither tokenizer.json nor vocab.json + merges.txt",
              "point --tokenizer at a folder with a byte-level BPE tokenizer");
}

static void loadVocabObject(const nlohmann::json& vocab, const std::string& where,
                            std::vector<std::pair<std::string, std::int32_t>>* out) {
  if (!vocab.is_object()) throw Error(where + ": vocabulary is not a JSON object");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it->is_number_integer())
      throw Error(where + ": id of token '" + it.key() + "' is not an integer");
    out->emplace_back(it.key(), it->get<std::int32_t>());
  }
}

Tokenizer Tokenizer::fromTokenizerJson(const std::string& path) try {
  const nlohmann::json j = readJsonFile(path);
  const JsonFields top(j, "'" + path + "'");
  if (!j.contains("model") || !j["model"].is_object()) top.fail("model", "is missing or not an object");
  const JsonFields model(j["model"], "'" + path + "' model");
  const std::string type = model.string("type", "BPE");
  if (type != "BPE") {
    model.fail("type", "is '" + type + "'; only byte-level BPE tokenizers are supported");
  }
  Tokenizer t;
  // Pre-tokeniser: ByteLevel (GPT-2 pattern), possibly with add_prefix_space.
  if (j.contains("pre_tokenizer") && j["pre_tokenizer"].is_object()) {
    const auto& pt = j["pre_tokenizer"];
    std::vector<nlohmann::json> parts;
    if (pt.value("type", "") == "Sequence" && pt.contains("pretokenizers")) {
      for (const auto& p : pt["pretokenizers"]) parts.push_back(p);
    } else {
      parts.push_back(pt);
    }
    bool byte_level = false;
    for (const auto& p : parts) {
      const std::string ptype = p.value("type", "");
      if (ptype == "Digits" && !byte_level) {
        t.digits_ = p.value("individual_digits", false) ? DigitSplit::Individual : DigitSplit::Runs;
      } else if (ptype == "ByteLevel") {
        byte_level = true;
        t.add_prefix_space_ = p.value("add_prefix_space", false);
        if (!p.value("use_regex", true)) {
          throw Error("'" + path + "': ByteLevel pre-tokenizer without the GPT-2 regex is not supported");
        }
      } else {
        throw Error("'" + path + "': pre-tokenizer '" + ptype + "' is not supported",
                    "Monoscope reads GPT-2-style byte-level BPE tokenizers");
      }
    }
    if (!byte_level) throw Error("'" + path + "': the pre-tokenizer is not ByteLevel");
  }
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  if (!j["model"].contains("vocab")) model.fail("vocab", "is missing");
  loadVocabObject(j["model"]["vocab"], "'" + path + "'", &vocab);
  std::string bytes;
  for (const auto& [s, id] : vocab) {
    if (!unmapToken(s, &bytes)) {
      throw Error("'" + path + "': token '" + s + "' is outside the byte-level alphabet",
                  "this is not a byte-level BPE vocabulary");
    }
    t.addToken(id, bytes);
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content")) continue;
      if (!a["id"].is_number_integer() || !a["content"].is_string())
        throw Error("'" + path + "': an added_tokens entry has a non-integer id or non-string content");
      const auto id = a["id"].get<std::int32_t>();
      const auto content = a["content"].get<std::string>();
      if (content.empty())
        throw Error("'" + path + "': added token " + std::to_string(id) + " has empty content", "remove it or give it text");
      t.addToken(id, content);
      t.specials_.emplace_back(content, id);
    }
  }
  t.finish();  // byte ids first: merges refer to them
  const auto& merges = j["model"].contains("merges") ? j["model"]["merges"] : nlohmann::json::array();
  if (!merges.is_array()) model.fail("merges", "is not an array");
  std::int32_t rank = 0;
  std::string a, b;
  for (const auto& m : merges) {
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos) model.fail("merges", "entry '" + s + "' is not 'left right'");
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      model.fail("merges", "entry " + m.dump() + " is malformed");
    }
    if (!unmapToken(left, &a) || !unmapToken(right, &b) || !t.bytes_to_id_.count(a) ||
        !t.bytes_to_id_.count(b)) {
      model.fail("merges", "entry '" + left + " " + right + "' uses tokens not in the vocabulary");
    }
    t.addMerge(t.bytes_to_id_[a], t.bytes_to_id_[b], rank++, "'" + path + "'");
  }
  return t;
} catch (const nlohmann::json::exception& e) {
  throw Error("'" + path + "': a value has an unexpected type (" + plainJsonMessage(e) + ")",
              "regenerate the file with Hugging Face tokenizers");
}

Tokenizer Tokenizer::fromVocabMerges(const std::string& vocab_path, const std::string& merges_path) try {
  const nlohmann::json vj = readJsonFile(vocab_path);
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  loadVocabObject(vj, "'" + vocab_path + "'", &vocab);
  Tokenizer t;
  std::string bytes;
  for (const auto& [s, id] : vocab) {
    if (s == "<|endoftext|>") {
      t.addToken(id, s);
      t.specials_.emplace_back(s, id);
      continue;
    }
    if (!unmapToken(s, &bytes)) {
      throw Error("'" + vocab_path + "': token '" + s + "' is outside the byte-level alphabet",
                  "this is not a byte-level BPE vocabulary");
    }
    t.addToken(id, bytes);
  }
  t.finish();
  const std::string text = readTextFile(merges_path);
  std::istringstream in(text);
  std::string line;
  std::int32_t rank = 0;
  std::size_t lineno = 0;
  std::string a, b;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
    const auto sp = line.find(' ');
    const std::string where = "'" + merges_path + "' line " + std::to_string(lineno);
    if (sp == std::string::npos) throw Error(where + " is not 'left right'");
    if (!unmapToken(line.substr(0, sp), &a) || !unmapToken(line.substr(sp + 1), &b) ||
        !t.bytes_to_id_.count(a) || !t.bytes_to_id_.count(b)) {
      throw Error(where + " uses tokens not in the vocabulary",
                  "the vocabulary and merges come from different tokenizers");
    }
    t.addMerge(t.bytes_to_id_[a], t.bytes_to_id_[b], rank++, where);
  }
  return t;
} catch (const nlohmann::json::exception& e) {
  throw Error("'" + vocab_path + "': a value has an unexpected type (" + plainJsonMessage(e) + ")",
              "regenerate the file with Hugging Face tokenizers");
}

Tokenizer Tokenizer::fromMerges(const std::vector<std::pair<std::string, std::string>>& merges,
                                const std::vector<std::string>& special_tokens) {
  Tokenizer t;
  const auto& fwd = byteToUnicode();
  // Byte tokens ordered by their mapped code point, as GPT-2's vocabulary orders them.
  std::vector<int> order(256);
  for (int b = 0; b < 256; ++b) order[b] = b;
  std::sort(order.begin(), order.end(), [&](int x, int y) { return fwd[x] < fwd[y]; });
  std::int32_t next = 0;
  for (int b : order) t.addToken(next++, std::string(1, static_cast<char>(b)));
  for (const auto& [l, r] : merges) {
    if (!t.bytes_to_id_.count(l + r)) t.addToken(next++, l + r);
  }
  for (const auto& s : special_tokens) {
    t.addToken(next, s);
    t.specials_.emplace_back(s, next++);
  }
  t.finish();
  std::int32_t rank = 0;
  for (const auto& [l, r] : merges) {
    auto li = t.bytes_to_id_.find(l);
    auto ri = t.bytes_to_id_.find(r);
    if (li == t.bytes_to_id_.end() || ri == t.bytes_to_id_.end())
      throw Error("merge " + std::to_string(rank) + " uses a token that no earlier merge made");
    t.addMerge(li->second, ri->second, rank++, "trained merges");
  }
  return t;
}

const std::string& Tokenizer::tokenBytes(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= id_to_bytes_.size()) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                    std::to_string(id_to_bytes_.size()) + " tokens",
                "use ids produced by this model's tokenizer");
  }
  return id_to_bytes_[id];
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  for (auto id : ids) out += tokenBytes(id);
  return out;
}

std::string Tokenizer::tokenString(std::int32_t id) const {
  for (const auto& [content, sid] : specials_)
    if (sid == id) return content;
  return mapBytes(tokenBytes(id));
}

std::vector<std::int32_t> Tokenizer::mergeByScan(std::string_view word) const {
  std::vector<std::int32_t> parts;
  parts.reserve(word.size());
  for (unsigned char c : word)
    if (byte_ids_[c] >= 0) parts.push_back(byte_ids_[c]);  // a byte without a token is dropped
  // Repeatedly merge the adjacent pair with the lowest rank (leftmost on ties).
  while (parts.size() > 1) {
    std::int32_t best_rank = std::numeric_limits<std::int32_t>::max();
    std::size_t best = 0;
    std::int32_t best_id = -1;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = merges_.find(pairKey(parts[i], parts[i + 1]));
      if (it != merges_.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        best = i;
        best_id = it->second.merged;
      }
    }
    if (best_id < 0) break;
    parts[best] = best_id;
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  return parts;
}

std::vector<std::int32_t> Tokenizer::mergeWithHeap(std::string_view word) const {
  // The same merges in the same order as mergeByScan (lowest rank first, leftmost on ties; a
  // merge only creates pairs of higher rank), in O(n log n): symbols in a linked list,
  // candidate pairs in a min-heap keyed by (rank, position), stale candidates skipped.
  if (missing_bytes_) {  // bytes without a token are dropped before merging
    std::string kept;
    for (char c : word)
      if (byte_ids_[static_cast<unsigned char>(c)] >= 0) kept.push_back(c);
    if (kept.size() != word.size()) return mergeWithHeap(kept);
  }
  const auto n = static_cast<std::int32_t>(word.size());
  if (n == 0) return {};
  std::vector<std::int32_t> id(static_cast<std::size_t>(n)), next(static_cast<std::size_t>(n)), prev(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) {
    id[i] = byte_ids_[static_cast<unsigned char>(word[static_cast<std::size_t>(i)])];
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Cand {
    std::int32_t rank, left, right, left_id, right_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto consider = [&](std::int32_t l) {
    if (l < 0 || next[l] < 0) return;
    const auto it = merges_.find(pairKey(id[l], id[next[l]]));
    if (it != merges_.end()) heap.push({it->second.rank, l, next[l], id[l], id[next[l]]});
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (id[c.left] != c.left_id || next[c.left] != c.right || id[c.right] != c.right_id) continue;  // stale
    id[c.left] = merges_.at(pairKey(c.left_id, c.right_id)).merged;
    id[c.right] = -1;
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  std::vector<std::int32_t> parts;
  for (std::int32_t i = 0; i >= 0; i = next[i]) parts.push_back(id[i]);
  return parts;
}

void Tokenizer::bpe(std::string_view word, std::vector<std::int32_t>* out) const {
  if (word.size() == 1) {
    out->push_back(byte_ids_[static_cast<unsigned char>(word[0])]);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    auto it = cache_->words.find(std::string(word));
    if (it != cache_->words.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::int32_t> parts = word.size() > kHeapMergeBytes ? mergeWithHeap(word) : mergeByScan(word);
  out->insert(out->end(), parts.begin(), parts.end());
  if (word.size() > kHeapMergeBytes) return;  // long pieces (minified code, base64) are not worth caching
  std::lock_guard<std::mutex> lock(cache_->mutex);
  if (cache_->words.size() >= Cache::kMaxWords) cache_->words.clear();
  cache_->words.emplace(std::string(word), std::move(parts));
}

void Tokenizer::encodeOrdinary(std::string_view text, std::size_t base,
                               std::vector<Token>* out) const {
  std::vector<Span> spans;
  std::string prefixed;
  std::string_view src = text;
  std::size_t shift = 0;
  if (add_prefix_space_ && base == 0 && !text.empty() && text[0] != ' ') {
    prefixed = " " + std::string(text);
    src = prefixed;
    shift = 1;
  }
  if (digits_ == DigitSplit::None) {
    pretokenizeGpt2(src, &spans);
  } else {
    std::vector<Span> pieces, inner;
    splitDigits(src, digits_ == DigitSplit::Individual, &pieces);
    for (const Span& p : pieces) {
      inner.clear();
      pretokenizeGpt2(src.substr(p.begin, p.end - p.begin), &inner);
      for (const Span& sp : inner) spans.push_back({p.begin + sp.begin, p.begin + sp.end});
    }
  }
  for (const Span& sp : spans) encodePiece(src, sp, shift, base, out);
}

void Tokenizer::encodePiece(std::string_view src, Span sp, std::size_t shift, std::size_t base,
                            std::vector<Token>* out) const {
  const std::string_view word = src.substr(sp.begin, sp.end - sp.begin);
  if (missing_bytes_) {
    for (unsigned char c : word) {
      if (byte_ids_[c] >= 0) continue;
      std::vector<Token> tokens;
      encodeWithGaps(word, sp.begin, &tokens);
      for (Token t : tokens) {
        t.start = t.start < shift ? 0 : t.start - shift;
        t.end = t.end < shift ? 0 : t.end - shift;
        out->push_back({t.id, base + t.start, base + t.end});
      }
      return;
    }
  }
  std::vector<std::int32_t> ids;
  bpe(word, &ids);
  std::size_t pos = sp.begin;
  for (auto id : ids) {
    const std::size_t len = id_to_bytes_[id].size();
    // The added prefix space belongs to no input byte: clamp its span to the text.
    const std::size_t s = pos < shift ? 0 : pos - shift;
    const std::size_t e = pos + len < shift ? 0 : pos + len - shift;
    out->push_back({id, base + s, base + e});
    pos += len;
  }
}

void Tokenizer::encodeWithGaps(std::string_view word, std::size_t begin, std::vector<Token>* out) const {
  std::vector<Token> parts;
  for (std::size_t i = 0; i < word.size(); ++i) {
    const std::int32_t id = byte_ids_[static_cast<unsigned char>(word[i])];
    if (id >= 0) parts.push_back({id, begin + i, begin + i + 1});
  }
  // The lowest-ranked adjacent pair first, leftmost on ties (as mergeByScan).
  while (parts.size() > 1) {
    std::int32_t best_rank = std::numeric_limits<std::int32_t>::max(), best_id = -1;
    std::size_t best = 0;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = merges_.find(pairKey(parts[i].id, parts[i + 1].id));
      if (it != merges_.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        best = i;
        best_id = it->second.merged;
      }
    }
    if (best_id < 0) break;
    parts[best] = {best_id, parts[best].start, parts[best + 1].end};
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  out->insert(out->end(), parts.begin(), parts.end());
}

std::vector<Token> Tokenizer::encode(std::string_view text) const {
  requireUtf8(text, "the input text");
  std::vector<Token> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    // Find the next special token occurrence.
    std::size_t best = std::string_view::npos;
    const std::pair<std::string, std::int32_t>* which = nullptr;
    for (const auto& sp : specials_) {
      const std::size_t f = text.find(sp.first, pos);
      if (f != std::string_view::npos && (f < best)) {
        best = f;
        which = &sp;
      }
    }
    const std::size_t stop = best == std::string_view::npos ? text.size() : best;
    if (stop > pos) encodeOrdinary(text.substr(pos, stop - pos), pos, &out);
    if (which == nullptr) break;
    out.push_back({which->second, best, best + which->first.size()});
    pos = best + which->first.size();
  }
  return out;
}

std::vector<std::int32_t> Tokenizer::encodeIds(std::string_view text) const {
  std::vector<std::int32_t> ids;
  for (const auto& t : encode(text)) ids.push_back(t.id);
  return ids;
}

void Tokenizer::save(const std::string& dir) const {
  fs::create_directories(dir);
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (std::size_t id = 0; id < id_to_bytes_.size(); ++id) {
    bool special = false;
    for (const auto& sp : specials_) special = special || sp.second == static_cast<std::int32_t>(id);
    if (!special) vocab[mapBytes(id_to_bytes_[id])] = id;
  }
  nlohmann::ordered_json merges = nlohmann::ordered_json::array();
  std::string merges_txt = "#version: 0.2\n";
  for (const auto& [l, r] : merge_list_) {
    const std::string line = mapBytes(id_to_bytes_[l]) + " " + mapBytes(id_to_bytes_[r]);
    merges.push_back(line);
    merges_txt += line + "\n";
  }
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  nlohmann::ordered_json vocab_with_specials = vocab;
  auto specials = specials_;
  std::sort(specials.begin(), specials.end(), [](auto& a, auto& b) { return a.second < b.second; });
  for (const auto& [content, id] : specials) {
    added.push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", true}, {"special", true}});
    vocab_with_specials[content] = id;
  }
  nlohmann::ordered_json pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space_},
                                           {"trim_offsets", true}, {"use_regex", true}};
  if (digits_ != DigitSplit::None) {
    nlohmann::ordered_json digits = {{"type", "Digits"}, {"individual_digits", digits_ == DigitSplit::Individual}};
    pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", {digits, pre_tokenizer}}};
  }
  nlohmann::ordered_json tj = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false},
        {"use_regex", true}}},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""}, {"fuse_unk", false},
        {"byte_fallback", false}, {"vocab", vocab}, {"merges", merges}}}};
  writeFileAtomically((fs::path(dir) / "tokenizer.json").string(), tj.dump(2));
  writeFileAtomically((fs::path(dir) / "vocab.json").string(), vocab_with_specials.dump());
  writeFileAtomically((fs::path(dir) / "merges.txt").string(), merges_txt);
}

}  // namespace monoscope::core
