#pragma once
// GPT-2's pre-tokenisation, as the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// would split valid UTF-8 text, written as a single forward scan (no regex engine).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace monoscope::core {

enum class CharClass : std::uint8_t { Letter, Number, Space, Other };

// Unicode class of a code point: \p{L}, \p{N}, White_Space, or anything else.
CharClass classify(std::uint32_t cp);

struct Span {
  std::size_t begin;
  std::size_t end;
};

// Appends the pre-token byte spans of `text` (valid UTF-8), offsets relative to `text`.
void pretokenizeGpt2(std::string_view text, std::vector<Span>* out);

// Hugging Face's Digits pre-tokenizer: numeric characters (\p{N}) become pieces of their own,
// one per character (`individual`) or one per run; the text between them forms the other pieces.
// Appends the pieces of `text` (valid UTF-8) in order; together they cover the text.
void splitDigits(std::string_view text, bool individual, std::vector<Span>* out);

}  // namespace monoscope::core
