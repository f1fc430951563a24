// Fuzz: GPT-2's tokenizer on arbitrary bytes. Valid UTF-8 must round-trip (decode(encode(t)) ==
// t); invalid UTF-8 must be refused with core::Error; and the heap merge used for long pieces must
// give the same ids as the slow reference merge (repeated scans for the best-ranked pair).
// Then the same text through the pipeline shapes of tests/fixtures/tokenizers (SentencePiece
// style with byte fallback, Split regexes, NFC/NFKC, Lowercase): every token's span lies in the
// text, spans never go backwards, and a byte-fallback vocabulary loses no byte.
#include <cstdlib>

#include "fuzz_util.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace {
const monoscope::core::Tokenizer& gpt2() {
  static const auto tok = monoscope::core::Tokenizer::fromDirectory(MONOSCOPE_GPT2_VOCAB);
  return tok;
}
const std::vector<monoscope::core::Tokenizer>& shapes() {
  static const auto toks = [] {
    std::vector<monoscope::core::Tokenizer> v;
    for (const char* s : {"llama2", "gemma", "phi3", "metaspace", "llama3", "qwen2", "roberta", "removed"})
      v.push_back(monoscope::core::Tokenizer::fromDirectory(std::string(MONOSCOPE_TOKENIZER_SHAPES) + "/" + s));
    return v;
  }();
  return toks;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace monoscope;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto& tok = gpt2();
  if (size <= 160) {
    // The merge itself, on raw bytes (one pre-token as the BPE sees it); the reference is
    // quadratic, so only short inputs.
    if (tok.mergeWithHeap(text) != tok.mergeByScan(text)) std::abort();
  }
  try {
    const auto ids = tok.encodeIds(text);
    if (tok.decode(ids) != text) std::abort();  // lossless on valid UTF-8
  } catch (const core::Error&) {
    if (core::findInvalidUtf8(text) == std::string::npos) std::abort();  // refused valid text
    return 0;
  }
  for (const auto& t : shapes()) {
    std::size_t last_start = 0;
    for (const auto& token : t.encode(text, true)) {
      if (token.start > token.end || token.end > text.size() || token.start < last_start) std::abort();
      last_start = token.start;
    }
  }
  return 0;
}
