// Fuzz: vocab.json + merges.txt loading. The input is split at its first NUL byte into the two
// files (no NUL: all vocab, empty merges).
#include <cstring>

#include "fuzz_util.h"
#include "text/tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace monoscope;
  const auto* nul = static_cast<const std::uint8_t*>(std::memchr(data, 0, size));
  const std::size_t split = nul ? static_cast<std::size_t>(nul - data) : size;
  const std::string vocab = fuzz::writeScratch("vocab.json", data, split);
  const std::string merges = fuzz::writeScratch("merges.txt", nul ? nul + 1 : data + size, nul ? size - split - 1 : 0);
  try {
    const auto tok = core::Tokenizer::fromVocabMerges(vocab, merges);
    (void)tok.decode(tok.encodeIds("the quick brown fox \xe6\x97\xa5\xe6\x9c\xac"));
  } catch (const core::Error&) {
  }
  return 0;
}
