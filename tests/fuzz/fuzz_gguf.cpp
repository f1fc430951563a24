// Fuzz: a GGUF file (header, typed metadata, tensor table, offsets, quantisation types) and its
// import. Any input either opens (every tensor's bytes inside the file, dequantisation within
// its bounds, the tokenizer metadata mapped or refused) or throws core::Error.
#include <cstring>

#include "fuzz_util.h"
#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace monoscope;
  const std::string path = fuzz::writeScratch("f.gguf", data, size);
  try {
    core::GgufFile f(path);
    for (const auto& t : f.tensors()) {
      volatile std::uint8_t sink = 0;
      for (std::size_t i = 0; i < t.nbytes; i += 4096) sink = sink + t.data[i];
      if (t.nbytes > 0) sink = sink + t.data[t.nbytes - 1];
      if (t.numel() <= (1 << 16)) (void)f.toFloat(t);
    }
    (void)f.metadata().dump();
    try {
      (void)core::ggufTokenizerJson(f);
    } catch (const core::Error&) {
    }
  } catch (const core::Error&) {
  }
  return 0;
}
