#pragma once
// Whole-string integer parsing for values read from files (database metadata, shards): a bad
// value is an Error naming what it is, never std::invalid_argument or std::out_of_range.
#include <cstdint>
#include <string>
#include <string_view>

namespace monoscope::core {

// `what` names the value for the message, e.g. "'x.db': metadata d_sae".
std::int64_t parseInt64(std::string_view text, const std::string& what);
std::uint64_t parseUint64(std::string_view text, const std::string& what);

}  // namespace monoscope::core
