#pragma once
// Whole-string integer parsing for values read from files (database metadata, shards): a bad
// value is an Error naming what it is, never std::invalid_argument or std::out_of_range. And
// doubles written to such metadata without losing a bit.
#include <cstdint>
#include <string>
#include <string_view>

namespace monoscope::core {

// `what` names the value for the message, e.g. "'x.db': metadata d_sae".
std::int64_t parseInt64(std::string_view text, const std::string& what);
std::uint64_t parseUint64(std::string_view text, const std::string& what);

// `v` in decimal with every digit a double needs (%.17g), so that reading it back gives `v`.
std::string roundTripDecimal(double v);

}  // namespace monoscope::core
