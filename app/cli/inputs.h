#pragma once
// Shared input handling of the commands: text or ids, device and threads.
#include <cstdint>
#include <string>
#include <vector>

#include "args.h"

#include "api/types.h"

namespace monoscope::core {
class Tokenizer;
class FeatureDb;
}

namespace monoscope::cli {

// The text of --text or --text-file (validated UTF-8, non-empty).
std::string readTextInput(const Args& args);
// Comma-separated ids of --ids, each in [0, vocab_size).
std::vector<std::int32_t> parseIds(const std::string& list, std::int64_t vocab_size);
// Applies --threads; returns the device name chosen by --device.
std::string applyRuntimeOptions(const Args& args);
// --threads (0 when absent), capped at the machine's cores with a note on stderr.
int threadsOption(const Args& args);
// ID=VALUE, ID=10x (times the feature's max activation from `db`) or ID (ablate).
core::FeatureEdit parseClamp(const std::string& text, core::SteerMode mode, const core::FeatureDb* db);

}  // namespace monoscope::cli
