#pragma once
// GPT-2's byte-to-unicode alphabet, in which byte-level vocabularies write their tokens
// (Tokenizer::byteToUnicode is the map). Internal to the tokenizer's files.
#include <string>
#include <string_view>

namespace monoscope::core {

// A token as written in the vocabulary -> its raw bytes; false when it is not valid UTF-8 or
// holds a character outside the alphabet.
bool unmapByteLevel(const std::string& s, std::string* out);
// Raw bytes -> the token as the vocabulary writes it.
std::string mapByteLevel(std::string_view bytes);

}  // namespace monoscope::core
