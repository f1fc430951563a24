#include "util/numbers.h"

#include <charconv>
#include <cstdio>

#include "util/error.h"

namespace monoscope::core {

namespace {
template <typename T>
T parseWhole(std::string_view text, const std::string& what) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    std::string shown(text.substr(0, 40));
    for (auto& c : shown)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    throw Error(what + " is not a valid integer ('" + shown + "')", "the file is damaged or was not written by Monoscope");
  }
  return value;
}
}  // namespace

std::int64_t parseInt64(std::string_view text, const std::string& what) { return parseWhole<std::int64_t>(text, what); }
std::uint64_t parseUint64(std::string_view text, const std::string& what) { return parseWhole<std::uint64_t>(text, what); }

std::string roundTripDecimal(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

}  // namespace monoscope::core
