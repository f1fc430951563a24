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
// A Gemma Scope params.npz (format_gemmascope.cpp) as a JumpReLU SAE, or a transcoder when `c`
// names an output hook; `c` brings the hooks and metadata, the file the rest.
std::unique_ptr<Sae> loadGemmaScopeParams(const std::string& npz_path, SaeConfig c, const c10::Device& device);
// One layer of a circuit-tracer transcoder set (sae/transcoder_set.h; format_circuit_tracer.cpp).
std::unique_ptr<Sae> loadTranscoderSetLayer(const std::string& yaml_path, std::int64_t layer, const c10::Device& device);
// The format of a folder; throws Error naming the folder and every layout read.
const DictionaryFormat& dictionaryFormatOf(const std::filesystem::path& dir);

}  // namespace monoscope::core
