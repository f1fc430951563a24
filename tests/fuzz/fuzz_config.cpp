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
      (void)core::ModelConfig::fromFile(path);  // parses and validates
    }
  } catch (const core::Error&) {
  }
  return 0;
}
