#include "text/tokenizer.h"

#include <algorithm>
#include <limits>
#include <mutex>
#include <queue>

#include "text/byte_alphabet.h"
#include "text/pretokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

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

}  // namespace

// Inverse of the byte-to-unicode map: token string (mapped alphabet) to raw bytes.
bool unmapByteLevel(const std::string& s, std::string* out) {
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

std::string mapByteLevel(std::string_view bytes) {
  std::string out;
  const auto& fwd = Tokenizer::byteToUnicode();
  for (unsigned char b : bytes) appendUtf8(out, fwd[b]);
  return out;
}

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
  // An id given new text (an added token over a vocabulary entry) no longer encodes the old text:
  // every text maps to an id whose text it is, so a token's bytes always cover what it encoded.
  std::string& old = id_to_bytes_[static_cast<std::size_t>(id)];
  if (!old.empty() && old != bytes) {
    const auto it = bytes_to_id_.find(old);
    if (it != bytes_to_id_.end() && it->second == id) bytes_to_id_.erase(it);
  }
  bytes_to_id_[bytes] = id;
  old = std::move(bytes);
}

void Tokenizer::addMerge(std::int32_t left, std::int32_t right, std::int32_t rank,
                         const std::string& where) {
  const std::string merged = id_to_bytes_[left] + id_to_bytes_[right];
  auto it = bytes_to_id_.find(merged);
  if (it == bytes_to_id_.end()) {
    throw Error(where + ": merge " + std::to_string(rank) + " produces '" + mapByteLevel(merged) +
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
  static const char* const kEndOfText[] = {"<|endoftext|>", "<|end_of_text|>", "<eos>", "</s>"};
  for (const char* name : kEndOfText) {
    for (const auto& [content, id] : specials_)
      if (eot_id_ < 0 && content == name) eot_id_ = id;
  }
  if (eot_id_ < 0 && !specials_.empty()) eot_id_ = specials_.front().second;
  buildSpecialIndex();
  cache_ = std::make_shared<Cache>();
}

void Tokenizer::buildSpecialIndex() {
  trie_edges_.clear();
  trie_terminal_.assign(1, -1);
  special_of_id_.clear();
  std::fill(std::begin(special_first_byte_), std::end(special_first_byte_), false);
  for (std::size_t k = 0; k < specials_.size(); ++k) {
    const std::string& s = specials_[k].first;
    special_of_id_[specials_[k].second] = k;
    if (s.empty()) continue;
    special_first_byte_[static_cast<unsigned char>(s[0])] = true;
    std::int32_t node = 0;
    for (unsigned char c : s) {
      const std::uint64_t key = (static_cast<std::uint64_t>(node) << 8) | c;
      auto it = trie_edges_.find(key);
      if (it == trie_edges_.end()) {
        it = trie_edges_.emplace(key, static_cast<std::int32_t>(trie_terminal_.size())).first;
        trie_terminal_.push_back(-1);
      }
      node = it->second;
    }
    if (trie_terminal_[static_cast<std::size_t>(node)] < 0) trie_terminal_[static_cast<std::size_t>(node)] = static_cast<std::int32_t>(k);
  }
}

std::ptrdiff_t Tokenizer::findSpecial(std::string_view text, std::size_t pos, std::size_t* at) const {
  if (specials_.empty()) return -1;
  for (std::size_t i = pos; i < text.size(); ++i) {
    if (!special_first_byte_[static_cast<unsigned char>(text[i])]) continue;
    std::int32_t node = 0, found = -1;
    for (std::size_t j = i; j < text.size(); ++j) {
      const auto it = trie_edges_.find((static_cast<std::uint64_t>(node) << 8) | static_cast<unsigned char>(text[j]));
      if (it == trie_edges_.end()) break;
      node = it->second;
      if (trie_terminal_[static_cast<std::size_t>(node)] >= 0) found = trie_terminal_[static_cast<std::size_t>(node)];
    }
    if (found >= 0) {  // leftmost, then longest
      *at = i;
      return found;
    }
  }
  return -1;
}

const std::string& Tokenizer::tokenBytes(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= id_to_bytes_.size()) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                    std::to_string(id_to_bytes_.size()) + " tokens",
                "use ids produced by this model's tokenizer");
  }
  return byte_level_ ? id_to_bytes_[id] : id_to_surface_[id];
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  for (auto id : ids) out += tokenBytes(id);
  return out;
}

std::string Tokenizer::tokenString(std::int32_t id) const {
  const auto it = special_of_id_.find(id);
  if (it != special_of_id_.end()) return specials_[it->second].first;
  (void)tokenBytes(id);  // range check
  return byte_level_ ? mapByteLevel(id_to_bytes_[static_cast<std::size_t>(id)]) : id_to_bytes_[static_cast<std::size_t>(id)];
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
  // The same merges in the same order as mergeByScan, in O(n log n) (mergeSymbols); bytes
  // without a token are dropped before merging.
  std::vector<Token> syms;
  syms.reserve(word.size());
  for (std::size_t i = 0; i < word.size(); ++i) {
    const std::int32_t id = byte_ids_[static_cast<unsigned char>(word[i])];
    if (id >= 0) syms.push_back({id, i, i + 1});
  }
  mergeSymbols(&syms);
  std::vector<std::int32_t> parts;
  parts.reserve(syms.size());
  for (const Token& t : syms) parts.push_back(t.id);
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
  const std::string_view src = text;
  const std::size_t shift = 0;
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
  mergeSymbols(&parts);  // each merged token spans the bytes it came from
  out->insert(out->end(), parts.begin(), parts.end());
}

std::vector<Token> Tokenizer::encode(std::string_view text, bool add_special) const {
  requireUtf8(text, "the input text");
  std::vector<Token> out;
  if (add_special)
    for (auto id : prefix_ids_) out.push_back({id, 0, 0});
  std::size_t pos = 0;
  const bool direct = byte_level_ && (!pipeline_ || pipeline_->gpt2Shape());
  while (pos < text.size()) {
    std::size_t at = 0;
    const std::ptrdiff_t k = findSpecial(text, pos, &at);
    const std::size_t stop = k < 0 ? text.size() : at;
    if (stop > pos) {
      if (direct) encodeOrdinary(text.substr(pos, stop - pos), pos, &out);
      else encodeGeneral(text.substr(pos, stop - pos), pos, &out);
    }
    if (k < 0) break;
    const auto& sp = specials_[static_cast<std::size_t>(k)];
    out.push_back({sp.second, at, at + sp.first.size()});
    pos = at + sp.first.size();
  }
  if (add_special)
    for (auto id : suffix_ids_) out.push_back({id, text.size(), text.size()});
  return out;
}

std::vector<std::int32_t> Tokenizer::encodeIds(std::string_view text, bool add_special) const {
  std::vector<std::int32_t> ids;
  for (const auto& t : encode(text, add_special)) ids.push_back(t.id);
  return ids;
}

void Tokenizer::encodeGeneral(std::string_view text, std::size_t base, std::vector<Token>* out) const {
  NormalizedText nt;
  std::vector<Span> pieces;
  pipeline_->run(text, base, &nt, &pieces);
  std::vector<Token> local;
  for (const Span& p : pieces) {
    local.clear();
    const std::string_view word = std::string_view(nt.s).substr(p.begin, p.end - p.begin);
    if (!byte_level_) {
      encodePieceWord(word, p.begin, &local);
    } else {
      bool gaps = false;
      if (missing_bytes_)
        for (unsigned char c : word) gaps = gaps || byte_ids_[c] < 0;
      if (gaps) {
        encodeWithGaps(word, p.begin, &local);
      } else {
        std::vector<std::int32_t> ids;
        bpe(word, &ids);
        std::size_t at = p.begin;
        for (auto id : ids) {
          const std::size_t len = id_to_bytes_[static_cast<std::size_t>(id)].size();
          local.push_back({id, at, at + len});
          at += len;
        }
      }
    }
    // Normalized offsets back to the caller's text.
    for (const Token& t : local) out->push_back({t.id, nt.begin[t.start], nt.end[t.end - 1]});
  }
}

void Tokenizer::encodePieceWord(std::string_view word, std::size_t begin, std::vector<Token>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const auto it = bytes_to_id_.find(std::string(word));
    if (it != bytes_to_id_.end()) {
      out->push_back({it->second, begin, begin + word.size()});
      return;
    }
  }
  // Initial symbols as Hugging Face's BPE builds them: a character's token, else its <0xNN> byte
  // tokens (byte_fallback), else the unknown token (consecutive ones fused with fuse_unk).
  std::vector<Token> syms;
  syms.reserve(word.size());
  bool unk_pending = false;
  Token unk{unk_id_, 0, 0};
  std::string ch;
  for (std::size_t i = 0; i < word.size();) {
    std::size_t len = 0;
    (void)decodeUtf8(word, i, &len);
    ch.assign(word.substr(i, len));
    const auto it = bytes_to_id_.find(ch);
    if (it != bytes_to_id_.end()) {
      if (unk_pending) syms.push_back(unk);
      unk_pending = false;
      syms.push_back({it->second, begin + i, begin + i + len});
    } else {
      bool fell_back = false;
      if (byte_fallback_) {
        fell_back = true;
        for (std::size_t b = 0; b < len; ++b) fell_back = fell_back && fallback_ids_[static_cast<unsigned char>(ch[b])] >= 0;
        if (fell_back)
          for (std::size_t b = 0; b < len; ++b) syms.push_back({fallback_ids_[static_cast<unsigned char>(ch[b])], begin + i + b, begin + i + b + 1});
      }
      if (!fell_back && unk_id_ >= 0) {
        if (unk_pending && fuse_unk_) {
          unk.end = begin + i + len;
        } else {
          if (unk_pending) syms.push_back(unk);
          unk = {unk_id_, begin + i, begin + i + len};
          unk_pending = true;
        }
      }
      // neither: the character is dropped, as Hugging Face's BPE drops it
    }
    i += len;
  }
  if (unk_pending) syms.push_back(unk);
  mergeSymbols(&syms);
  out->insert(out->end(), syms.begin(), syms.end());
}

void Tokenizer::mergeSymbols(std::vector<Token>* symbols) const {
  auto& sym = *symbols;
  const auto n = static_cast<std::int32_t>(sym.size());
  if (n < 2 || merges_.empty()) return;
  std::vector<std::int32_t> next(static_cast<std::size_t>(n)), prev(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) {
    next[static_cast<std::size_t>(i)] = i + 1 < n ? i + 1 : -1;
    prev[static_cast<std::size_t>(i)] = i - 1;
  }
  struct Cand {
    std::int32_t rank, left, right, left_id, right_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto id = [&](std::int32_t i) { return sym[static_cast<std::size_t>(i)].id; };
  auto consider = [&](std::int32_t l) {
    if (l < 0 || next[static_cast<std::size_t>(l)] < 0) return;
    const std::int32_t r = next[static_cast<std::size_t>(l)];
    const auto it = merges_.find(pairKey(id(l), id(r)));
    if (it != merges_.end()) heap.push({it->second.rank, l, r, id(l), id(r)});
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (id(c.left) != c.left_id || next[static_cast<std::size_t>(c.left)] != c.right || id(c.right) != c.right_id) continue;  // stale
    Token& l = sym[static_cast<std::size_t>(c.left)];
    l.id = merges_.at(pairKey(c.left_id, c.right_id)).merged;
    l.end = sym[static_cast<std::size_t>(c.right)].end;
    sym[static_cast<std::size_t>(c.right)].id = -1;
    next[static_cast<std::size_t>(c.left)] = next[static_cast<std::size_t>(c.right)];
    if (next[static_cast<std::size_t>(c.left)] >= 0) prev[static_cast<std::size_t>(next[static_cast<std::size_t>(c.left)])] = c.left;
    consider(prev[static_cast<std::size_t>(c.left)]);
    consider(c.left);
  }
  std::vector<Token> merged;
  for (std::int32_t i = 0; i >= 0; i = next[static_cast<std::size_t>(i)]) merged.push_back(sym[static_cast<std::size_t>(i)]);
  sym = std::move(merged);
}

}  // namespace monoscope::core
