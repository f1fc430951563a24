#pragma once
// The normalizer and pre-tokenizer stages of a Hugging Face tokenizer.json, as a list of steps
// read from the file (tables, not branches on names spread over the tokenizer):
//   normalizers:    Prepend, Replace (a literal pattern), NFC, NFD, NFKC, NFKD, Lowercase
//   pre-tokenizers: Split (a literal or a regex, with its behaviour and invert), Digits,
//                   ByteLevel (with or without GPT-2's pattern, add_prefix_space), Metaspace
// Every byte of the normalized text remembers the span of input bytes it came from, so the
// tokens keep exact offsets into the caller's text whatever the steps changed.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/pretokenizer.h"

namespace monoscope::core {

// Text after normalisation. begin[i], end[i]: the input bytes (absolute offsets) that byte i of
// `s` came from. An unchanged character maps byte for byte; a replaced or inserted one maps all its
// bytes onto the span of the input character(s) it stands for.
struct NormalizedText {
  std::string s;
  std::vector<std::size_t> begin, end;

  static NormalizedText identity(std::string_view text, std::size_t base);
  void append(std::string_view bytes, std::size_t from, std::size_t to);  // every byte aligned to [from, to)
  void appendCopy(const NormalizedText& other, std::size_t b, std::size_t e);  // other's bytes b..e, alignment kept
  std::size_t size() const { return s.size(); }
};

class TextPipeline {
 public:
  // Reads the tokenizer.json "normalizer" and "pre_tokenizer" values (null, one step or a
  // Sequence). An unsupported type or option is refused naming `where` and the field.
  static TextPipeline fromJson(const nlohmann::json& normalizer, const nlohmann::json& pre_tokenizer,
                               const std::string& where);

  // A ByteLevel step is present: tokens are byte strings in GPT-2's byte-to-unicode alphabet.
  bool byteLevel() const { return byte_level_; }
  // Only [Digits?, ByteLevel(GPT-2 pattern, no prefix space)] and no normalizer: the tokenizer's
  // direct path handles it without alignment tables.
  bool gpt2Shape() const { return gpt2_shape_; }
  // The Digits split before the ByteLevel step of a GPT-2-shaped pipeline (0 none, 1 runs, 2 individual).
  int digitSplit() const { return digits_; }
  bool addsPrefixSpace() const;

  // Normalises `text` (one stretch between added tokens, starting at absolute input offset `base`)
  // into *out and appends the byte spans of its pre-tokens (in out->s) to *pieces.
  void run(std::string_view text, std::size_t base, NormalizedText* out, std::vector<Span>* pieces) const;

  const nlohmann::json& normalizerJson() const { return normalizer_json_; }
  const nlohmann::json& preTokenizerJson() const { return pre_tokenizer_json_; }

  // Splits with `pattern` as Hugging Face's Split does: `behavior` one of Removed, Isolated,
  // MergedWithPrevious, MergedWithNext, Contiguous. Exposed for tests.
  enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

  struct Step;  // one normalizer or pre-tokenizer step

 private:
  std::vector<std::shared_ptr<const Step>> normalizers_, pre_tokenizers_;
  nlohmann::json normalizer_json_, pre_tokenizer_json_;
  bool byte_level_ = false;
  bool gpt2_shape_ = false;
  int digits_ = 0;
};

}  // namespace monoscope::core
