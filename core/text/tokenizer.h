#pragma once
// BPE tokenizers as Hugging Face tokenizers runs a tokenizer.json: added tokens cut out first, then
// the normalizer and pre-tokenizer steps (text/pipeline.h), then BPE with merges applied by rank,
// then the post-processor's special tokens. Two kinds of vocabulary:
//  - byte-level (GPT-2, Llama 3, Qwen, SmolLM): tokens are byte strings written in GPT-2's
//    byte-to-unicode alphabet; a byte that has no token of its own is dropped (the tokens around
//    it keep their exact byte spans). The plain GPT-2 shape (optionally after a Digits split) runs
//    a direct path without alignment tables.
//  - SentencePiece-style (Llama 2, Mistral, Gemma): tokens are text pieces with U+2581 for a
//    space, characters missing from the vocabulary fall back to <0xNN> byte tokens (byte_fallback)
//    or to the unknown token.
// Also loads vocab.json + merges.txt (GPT-2's files).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/pipeline.h"
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
  // The end-of-text id of a model's tokenizer (see endOfTextId), -1 when the model has none.
  static std::int32_t endOfTextIdOf(const std::string& model);
  static Tokenizer fromTokenizerJson(const std::string& path);
  static Tokenizer fromVocabMerges(const std::string& vocab_path, const std::string& merges_path);

  // Tokenises valid UTF-8 text (throws Error on invalid UTF-8). Added tokens that appear
  // literally in the text ("<|endoftext|>", "<start_of_turn>") become their ids. With
  // `add_special`, the post-processor's tokens (a BOS, say) are added as a model expects its
  // input; they span no text (start == end).
  std::vector<Token> encode(std::string_view text, bool add_special = false) const;
  std::vector<std::int32_t> encodeIds(std::string_view text, bool add_special = false) const;
  // The tokens the post-processor puts before and after a text (TemplateProcessing's single
  // template, RobertaProcessing, BertProcessing); empty when it adds none.
  const std::vector<std::int32_t>& prefixIds() const { return prefix_ids_; }
  const std::vector<std::int32_t>& suffixIds() const { return suffix_ids_; }
  bool byteLevel() const { return byte_level_; }

  // Raw bytes of a token / a sequence (may split a UTF-8 character; see toValidUtf8).
  const std::string& tokenBytes(std::int32_t id) const;
  std::string decode(const std::vector<std::int32_t>& ids) const;

  std::int32_t vocabSize() const { return static_cast<std::int32_t>(id_to_bytes_.size()); }
  // Id of the end-of-text token (<|endoftext|>, <eos>, </s>, <|end_of_text|>, else the first
  // special token), -1 when there is none.
  std::int32_t endOfTextId() const { return eot_id_; }
  // Token as written in the vocabulary (byte-level: in the byte-to-unicode alphabet).
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
  // One stretch between added tokens through the whole pipeline, offsets through its alignment.
  void encodeGeneral(std::string_view text, std::size_t base, std::vector<Token>* out) const;
  // SentencePiece-style BPE of one pre-token (characters, byte fallback, unknown token); spans
  // are byte offsets into `word` plus `begin`.
  void encodePieceWord(std::string_view word, std::size_t begin, std::vector<Token>* out) const;
  // Merges adjacent symbols by rank (lowest first, leftmost on ties) in O(n log n).
  void mergeSymbols(std::vector<Token>* symbols) const;
  void buildSpecialIndex();
  // Leftmost-longest added token at or after `pos`: its index in specials_, or -1.
  std::ptrdiff_t findSpecial(std::string_view text, std::size_t pos, std::size_t* at) const;

  std::vector<std::string> id_to_bytes_;
  std::unordered_map<std::string, std::int32_t> bytes_to_id_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  std::vector<std::pair<std::int32_t, std::int32_t>> merge_list_;  // rank order, for saving
  std::vector<std::pair<std::string, std::int32_t>> specials_;      // content, id
  // Added tokens as a trie over their bytes (edge key: node << 8 | byte), for one pass over the text.
  std::unordered_map<std::uint64_t, std::int32_t> trie_edges_;
  std::vector<std::int32_t> trie_terminal_;  // per node: index into specials_ or -1
  bool special_first_byte_[256] = {};
  std::unordered_map<std::int32_t, std::size_t> special_of_id_;  // id -> index into specials_
  // The tokenizer.json pipeline; null or GPT-2-shaped runs the direct byte-level path.
  std::shared_ptr<const TextPipeline> pipeline_;
  bool byte_level_ = true;
  // SentencePiece-style vocabularies: id_to_bytes_ holds the piece as written, id_to_surface_ the
  // bytes it stands for (U+2581 read as a space, <0xNN> as its byte).
  std::vector<std::string> id_to_surface_;
  bool byte_fallback_ = false;
  std::int32_t fallback_ids_[256] = {};  // <0xNN> tokens, -1 when absent
  std::int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::vector<std::int32_t> prefix_ids_, suffix_ids_;
  std::string post_processor_json_, decoder_json_;  // as read, written back by save()
  std::int32_t byte_ids_[256] = {};  // -1: the vocabulary has no token for this byte
  bool missing_bytes_ = false;
  std::int32_t eot_id_ = -1;
  enum class DigitSplit { None, Individual, Runs };
  DigitSplit digits_ = DigitSplit::None;  // a Digits pre-tokenizer before the byte-level one
  // Per-word cache shared by copies; guarded by a mutex inside.
  struct Cache;
  std::shared_ptr<Cache> cache_;
};

}  // namespace monoscope::core
