// Fuzz: tokenizer.json loading (model type, vocab, merges, added tokens, pre-tokenizer), then a
// short encode and decode with whatever loaded. Only core::Error may escape.
#include "fuzz_util.h"
#include "text/tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace monoscope;
  const std::string path = fuzz::writeScratch("tokenizer.json", data, size);
  try {
    const auto tok = core::Tokenizer::fromTokenizerJson(path);
    const auto ids = tok.encodeIds("Hello, world! 123 \xc3\xa9t\xc3\xa9 <|endoftext|>");
    (void)tok.decode(ids);
  } catch (const core::Error&) {
  }
  return 0;
}
