// Fuzz: config.json (model) and cfg.json (SAE) parsing, with the JSON depth limit. The first
// byte chooses which; only core::Error may escape.
#include "fuzz_util.h"
#include "lm/model_config.h"
#include "sae/sae_config.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace monoscope;
  if (size == 0) return 0;
  const bool sae = data[0] & 1;
  const std::string path = fuzz::writeScratch(sae ? "cfg.json" : "config.json", data + 1, size - 1);
  try {
    if (sae) {
      (void)core::SaeConfig::fromFile(path);
    } else {
      // Parses and validates through the family's reader, then writes it back and reads that.
      const auto c = core::ModelConfig::fromFile(path);
      (void)c.parameterCount();
      (void)core::ModelConfig::fromJson(c.toJson(), "round trip");
    }
  } catch (const core::Error&) {
  }
  return 0;
}
