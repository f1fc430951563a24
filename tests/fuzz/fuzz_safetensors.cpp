// Fuzz: a safetensors file (header length, JSON header, offsets, dtypes, shapes). Any input
// either opens (and every tensor's bytes lie inside the file) or throws core::Error.
#include <cstring>

#include "fuzz_util.h"
#include "io/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace monoscope;
  const std::string path = fuzz::writeScratch("f.safetensors", data, size);
  try {
    core::SafetensorsFile f(path);
    for (const auto& name : f.names()) {
      const auto& t = f.tensor(name);
      volatile std::uint8_t sink = 0;
      const std::uint8_t* bytes = t.data;
      for (std::size_t i = 0; i < t.nbytes; i += 4096) sink = sink + bytes[i];  // touch every page
      if (t.nbytes > 0) sink = sink + bytes[t.nbytes - 1];
      if (t.dtype == core::DType::F32 || t.dtype == core::DType::F16 || t.dtype == core::DType::BF16) {
        if (t.nbytes <= (1u << 20)) (void)f.toFloat(name);
      }
    }
  } catch (const core::Error&) {
  }
  return 0;
}
