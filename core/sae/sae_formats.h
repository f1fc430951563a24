#pragma once
// Dictionary formats: one row each in a table (sae_formats.cpp), one file each (format_*.cpp).
// A row recognises its folder layout and loads it as an Sae in Monoscope's (SAELens v6) terms;
// `sae-convert` then writes any of them as SAELens v6. Internal (LibTorch).
#include <filesystem>
#include <memory>
#include <vector>

#include "sae/sae.h"

namespace monoscope::core {

struct DictionaryFormat {
  const char* name;     // shown in errors and `sae-convert`'s report
  const char* layout;   // what a folder of this format holds
  bool (*matches)(const std::filesystem::path& dir);
  std::unique_ptr<Sae> (*load)(const std::filesystem::path& dir, const c10::Device& device);
};

const std::vector<const DictionaryFormat*>& dictionaryFormats();
// The format of a folder; throws Error naming the folder and every layout read.
const DictionaryFormat& dictionaryFormatOf(const std::filesystem::path& dir);

}  // namespace monoscope::core
