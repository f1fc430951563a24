// The dictionary format table (sae/sae_formats.h).
#include "sae/sae_formats.h"

#include "util/error.h"

namespace monoscope::core {

extern const DictionaryFormat kSaeLensFormat, kSparsifyFormat, kGemmaScopeFormat, kGemmaScope2Format, kLlamaScopeFormat;

const std::vector<const DictionaryFormat*>& dictionaryFormats() {
  static const std::vector<const DictionaryFormat*> table = {&kSaeLensFormat, &kSparsifyFormat, &kGemmaScopeFormat,
                                                                &kGemmaScope2Format, &kLlamaScopeFormat};
  return table;
}

const DictionaryFormat& dictionaryFormatOf(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw Error("SAE folder '" + dir.string() + "' does not exist or is not a folder");
  // dictionary_learning saves `ae.pt` (a Python pickle, never read here) beside its config.json.
  if (std::filesystem::exists(dir / "ae.pt", ec)) {
    throw Error("'" + (dir / "ae.pt").string() + "' is a dictionary_learning checkpoint, a Python pickle, which Monoscope never reads",
                "convert it once: python3 packaging/convert-dictionary-learning.py '" + dir.string() +
                    "' --out DIR (needs torch), then open DIR");
  }
  std::string known;
  for (const DictionaryFormat* f : dictionaryFormats()) {
    if (f->matches(dir)) return *f;
    known += std::string(known.empty() ? "" : "; ") + f->name + ": " + f->layout;
  }
  throw Error("'" + dir.string() + "' holds no dictionary Monoscope reads",
              std::string("expected ") + known + " (pickle .pt files are never read)");
}

}  // namespace monoscope::core
