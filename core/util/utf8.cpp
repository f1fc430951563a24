#include "util/utf8.h"

#include "util/error.h"

namespace monoscope::core {

namespace {
// Length of the valid sequence starting at s[i], or 0 when it is invalid.
std::size_t validSequenceLength(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  const std::size_t n = s.size();
  auto cont = [&](std::size_t k) {
    return k < n && (static_cast<unsigned char>(s[k]) & 0xC0u) == 0x80u;
  };
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    const auto b1 = static_cast<unsigned char>(s[i + 1]);
    if (b0 == 0xE0 && b1 < 0xA0) return 0;   // overlong
    if (b0 == 0xED && b1 >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    const auto b1 = static_cast<unsigned char>(s[i + 1]);
    if (b0 == 0xF0 && b1 < 0x90) return 0;
    if (b0 == 0xF4 && b1 >= 0x90) return 0;
    return 4;
  }
  return 0;
}
}  // namespace

std::size_t findInvalidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t len = validSequenceLength(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

void requireUtf8(std::string_view s, const std::string& source) {
  const std::size_t bad = findInvalidUtf8(s);
  if (bad != std::string_view::npos) {
    throw Error(source + " is not valid UTF-8 (first bad byte at offset " + std::to_string(bad) + ")",
                "convert the text to UTF-8, e.g. with iconv");
  }
}

void appendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::vector<std::string> displayPieces(const std::vector<std::string>& pieces) {
  std::string all;
  std::vector<std::size_t> piece_of;  // the piece each byte of `all` came from
  for (std::size_t p = 0; p < pieces.size(); ++p) {
    all += pieces[p];
    piece_of.insert(piece_of.end(), pieces[p].size(), p);
  }
  std::vector<std::string> out(pieces.size());
  std::size_t i = 0;
  while (i < all.size()) {
    const std::size_t len = validSequenceLength(all, i);
    if (len == 0) {
      appendUtf8(out[piece_of[i]], 0xFFFD);
      ++i;
    } else {
      out[piece_of[i]].append(all, i, len);
      i += len;
    }
  }
  return out;
}

int shownPiece(const std::vector<std::string>& shown, int i) {
  if (i < 0 || i >= static_cast<int>(shown.size())) return i;
  int j = i;
  while (j > 0 && shown[static_cast<std::size_t>(j)].empty()) --j;
  return shown[static_cast<std::size_t>(j)].empty() ? i : j;
}

std::string toValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t len = validSequenceLength(s, i);
    if (len == 0) {
      appendUtf8(out, 0xFFFD);
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

}  // namespace monoscope::core
