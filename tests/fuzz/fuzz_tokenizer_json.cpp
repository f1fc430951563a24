// Fuzz: tokenizer.json loading (model type, vocab, merges, added tokens, normalizer and
// pre-tokenizer steps, post-processor), then short encodes and decodes with whatever loaded. Only core::Error may escape.
#include "fuzz_util.h"
#include "text/tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace monoscope;
  const std::string path = fuzz::writeScratch("tokenizer.json", data, size);
  try {
    const auto tok = core::Tokenizer::fromTokenizerJson(path);
    for (const char* text : {"Hello, world! 123 \xc3\xa9t\xc3\xa9 <|endoftext|>", "  \xe2\x96\x81<0x41> e\xcc\x81 \xc4\xb0 \xf0\x9f\xa7\xac\n\t"}) {
      const auto ids = tok.encodeIds(text, true);
      (void)tok.decode(ids);
    }
  } catch (const core::Error&) {
  }
  return 0;
}
