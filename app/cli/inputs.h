#pragma once
// Shared input handling of the commands: text or ids, device and threads.
#include <cstdint>
#include <string>
#include <vector>

#include "args.h"

#include "api/engine.h"
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
// --model / --sae (or the given fallbacks, e.g. the paths a feature database records), --device
// and --threads as engine options; `with_sae` false opens the model alone.
core::EngineOptions engineOptions(const Args& args, bool with_sae, const std::string& model_fallback = {},
                                  const std::string& sae_fallback = {});
// ID=VALUE, ID=10x (times the feature's max activation from `db`) or ID (ablate).
core::FeatureEdit parseClamp(const std::string& text, core::SteerMode mode, const core::FeatureDb* db);

}  // namespace monoscope::cli
