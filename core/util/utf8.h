#pragma once
// Small UTF-8 helpers: validation, decoding one code point, lossy display conversion.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace monoscope::core {

// Returns the byte offset of the first invalid sequence, or npos when `s` is valid UTF-8.
std::size_t findInvalidUtf8(std::string_view s);

// Throws Error naming `source` and the byte offset when `s` is not valid UTF-8.
void requireUtf8(std::string_view s, const std::string& source);

// Decodes the code point at s[i] (s must be valid UTF-8); sets *len to its byte length.
inline std::uint32_t decodeUtf8(std::string_view s, std::size_t i, std::size_t* len) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  if (b0 < 0xE0) {
    *len = 2;
    return ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
  }
  if (b0 < 0xF0) {
    *len = 3;
    return ((b0 & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
           (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
  }
  *len = 4;
  return ((b0 & 0x07u) << 18) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 12) |
         ((static_cast<unsigned char>(s[i + 2]) & 0x3Fu) << 6) |
         (static_cast<unsigned char>(s[i + 3]) & 0x3Fu);
}

void appendUtf8(std::string& out, std::uint32_t cp);

// Replaces every invalid sequence (e.g. a token that splits a character) with U+FFFD.
std::string toValidUtf8(std::string_view s);

// Tokens' bytes as text to show side by side: a character whose bytes span several pieces (a
// byte-level vocabulary splits e.g. ' ü' into ' \xC3' and '\xBC') shows whole on the piece where
// it starts, and the pieces holding only its later bytes show nothing of it; bytes that form no
// character show as U+FFFD. Joined, the result is toValidUtf8 of the joined pieces.
std::vector<std::string> displayPieces(const std::vector<std::string>& pieces);
// Of such pieces, the one that shows piece i's character: i, or for a piece left empty, the
// nearest earlier one that is not (i itself when there is none).
int shownPiece(const std::vector<std::string>& shown, int i);

}  // namespace monoscope::core
