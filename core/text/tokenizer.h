#pragma once
// Byte-level BPE exactly as GPT-2 defines it: GPT-2 pre-tokenisation, the byte-to-unicode map,
// merges applied by rank. Loads tokenizer.json (BPE model) or vocab.json + merges.txt.
// As Hugging Face tokenizers does, a Digits pre-tokenizer may split numbers before GPT-2's
// pattern runs, and a byte that has no token of its own is dropped (the tokens around it keep
// their exact byte spans).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/pretokenizer.h"

namespace monoscope::core {

struct Token {
  std::int32_t id;
  std::size_t start;  // byte offset into the UTF-8 input
  std::size_t end;    // one past the last byte
};

class Tokenizer {
 public:
  // Loads from a model or tokenizer folder: tokenizer.json, else vocab.json + merges.txt. A GGUF
  // model file is imported first (io/gguf_import.h) and its tokenizer read.
  static Tokenizer fromDirectory(const std::string& dir);
  static Tokenizer fromTokenizerJson(const std::string& path);
  static Tokenizer fromVocabMerges(const std::string& vocab_path, const std::string& merges_path);

  // Tokenises valid UTF-8 text (throws Error on invalid UTF-8). Special tokens that appear
  // literally in the text ("<|endoftext|>") become their ids.
  std::vector<Token> encode(std::string_view text) const;
  std::vector<std::int32_t> encodeIds(std::string_view text) const;

  // Raw bytes of a token / a sequence (may split a UTF-8 character; see toValidUtf8).
  const std::string& tokenBytes(std::int32_t id) const;
  std::string decode(const std::vector<std::int32_t>& ids) const;

  std::int32_t vocabSize() const { return static_cast<std::int32_t>(id_to_bytes_.size()); }
  // Id of <|endoftext|> (or the first special token), -1 when there is none.
  std::int32_t endOfTextId() const { return eot_id_; }
  // Token string in the byte-to-unicode alphabet (as written in vocab.json).
  std::string tokenString(std::int32_t id) const;

  // Writes tokenizer.json (Hugging Face layout) and vocab.json + merges.txt into `dir`.
  void save(const std::string& dir) const;

  // Builds a tokenizer from merges given as byte strings in rank order; ids are the 256 bytes
  // (in byte-to-unicode order), then one per merge, then the special tokens.
  static Tokenizer fromMerges(const std::vector<std::pair<std::string, std::string>>& merges,
                              const std::vector<std::string>& special_tokens);

  // BPE of one pre-token: pieces longer than kHeapMergeBytes merge through a heap (O(n log n)),
  // shorter ones by repeated scans (fast for short words); both give the same ids.
  static constexpr std::size_t kHeapMergeBytes = 48;
  std::vector<std::int32_t> mergeByScan(std::string_view word) const;
  std::vector<std::int32_t> mergeWithHeap(std::string_view word) const;

  // The GPT-2 byte-to-unicode map: code point for each byte.
  static const std::vector<std::uint32_t>& byteToUnicode();

 private:
  struct Merge {
    std::int32_t rank;
    std::int32_t merged;
  };
  void addToken(std::int32_t id, std::string bytes);
  void addMerge(std::int32_t left, std::int32_t right, std::int32_t rank, const std::string& where);
  void finish();
  void bpe(std::string_view word, std::vector<std::int32_t>* out) const;
  void encodeOrdinary(std::string_view text, std::size_t base, std::vector<Token>* out) const;
  void encodePiece(std::string_view src, Span sp, std::size_t shift, std::size_t base,
                   std::vector<Token>* out) const;
  // BPE of a pre-token that holds bytes without a token: those bytes are dropped and the rest
  // merge as if adjacent (Hugging Face's behaviour); each token spans the bytes it came from.
  void encodeWithGaps(std::string_view word, std::size_t begin, std::vector<Token>* out) const;

  std::vector<std::string> id_to_bytes_;
  std::unordered_map<std::string, std::int32_t> bytes_to_id_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  std::vector<std::pair<std::int32_t, std::int32_t>> merge_list_;  // rank order, for saving
  std::vector<std::pair<std::string, std::int32_t>> specials_;      // content, id
  std::int32_t byte_ids_[256] = {};  // -1: the vocabulary has no token for this byte
  bool missing_bytes_ = false;
  std::int32_t eot_id_ = -1;
  bool add_prefix_space_ = false;
  enum class DigitSplit { None, Individual, Runs };
  DigitSplit digits_ = DigitSplit::None;  // a Digits pre-tokenizer before the byte-level one
  // Per-word cache shared by copies; guarded by a mutex inside.
  struct Cache;
  std::shared_ptr<Cache> cache_;
};

}  // namespace monoscope::core
