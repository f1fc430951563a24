#include "text/pretokenizer.h"

#include <unicode/uchar.h>

#include <array>

#include "util/utf8.h"

namespace monoscope::core {

namespace {

bool isWhiteSpace(std::uint32_t cp) {
  // Unicode White_Space property (what \s matches in Unicode-aware engines).
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

CharClass classifySlow(std::uint32_t cp) {
  if (isWhiteSpace(cp)) return CharClass::Space;
  const auto mask = U_GET_GC_MASK(static_cast<UChar32>(cp));
  if (mask & U_GC_L_MASK) return CharClass::Letter;
  if (mask & U_GC_N_MASK) return CharClass::Number;
  return CharClass::Other;
}

const std::array<CharClass, 128>& asciiTable() {
  static const std::array<CharClass, 128> table = [] {
    std::array<CharClass, 128> t{};
    for (std::uint32_t c = 0; c < 128; ++c) t[c] = classifySlow(c);
    return t;
  }();
  return table;
}

struct Cursor {
  std::string_view s;
  const std::array<CharClass, 128>& ascii;
  // Class and byte length of the code point at i.
  CharClass at(std::size_t i, std::size_t* len) const {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      *len = 1;
      return ascii[b];
    }
    return classify(decodeUtf8(s, i, len));
  }
  // End of the run of class `c` starting at i.
  std::size_t runEnd(std::size_t i, CharClass c) const {
    std::size_t len = 0;
    while (i < s.size() && at(i, &len) == c) i += len;
    return i;
  }
};

// Length of a contraction ('s 't 're 've 'm 'll 'd) at i, or 0.
std::size_t contraction(std::string_view s, std::size_t i) {
  if (s[i] != '\'' || i + 1 >= s.size()) return 0;
  const char a = s[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < s.size()) {
    const char b = s[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

}  // namespace

CharClass classify(std::uint32_t cp) {
  if (cp < 128) return asciiTable()[cp];
  return classifySlow(cp);
}

void pretokenizeGpt2(std::string_view text, std::vector<Span>* out) {
  const Cursor cur{text, asciiTable()};
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    if (std::size_t c = contraction(text, i)) {
      out->push_back({i, i + c});
      i += c;
      continue;
    }
    std::size_t len = 0;
    CharClass cls = cur.at(i, &len);
    std::size_t start = i;
    if (text[i] == ' ' && i + 1 < n) {  // " ?X+" where X is the class of the next character
      std::size_t len2 = 0;
      CharClass next = cur.at(i + 1, &len2);
      if (next != CharClass::Space) {
        std::size_t end = cur.runEnd(i + 1, next);
        out->push_back({start, end});
        i = end;
        continue;
      }
    }
    if (cls != CharClass::Space) {
      std::size_t end = cur.runEnd(i, cls);
      out->push_back({start, end});
      i = end;
      continue;
    }
    // Whitespace: \s+(?!\S) leaves the last space for the following word; \s+ otherwise.
    std::size_t end = i;
    std::size_t last = i;
    while (end < n) {
      std::size_t l = 0;
      if (cur.at(end, &l) != CharClass::Space) break;
      last = end;
      end += l;
    }
    if (end < n && last > start) end = last;
    out->push_back({start, end});
    i = end;
  }
}

void splitDigits(std::string_view text, bool individual, std::vector<Span>* out) {
  const Cursor cur{text, asciiTable()};
  std::size_t i = 0, piece = 0;
  while (i < text.size()) {
    std::size_t len = 0;
    if (cur.at(i, &len) != CharClass::Number) {
      i += len;
      continue;
    }
    if (i > piece) out->push_back({piece, i});
    const std::size_t end = individual ? i + len : cur.runEnd(i, CharClass::Number);
    out->push_back({i, end});
    i = piece = end;
  }
  if (text.size() > piece) out->push_back({piece, text.size()});
}

}  // namespace monoscope::core
