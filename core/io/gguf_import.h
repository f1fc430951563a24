#pragma once
// GGUF to a Hugging Face model folder: config.json from the metadata, model.safetensors with the
// tensors renamed and dequantised (llama.cpp's row permutation of Llama's q/k weights undone),
// tokenizer.json from the tokenizer metadata. One table row per architecture (gguf_families.cpp).
#include <functional>
#include <string>

namespace monoscope::core {

struct GgufImportOptions {
  bool bf16 = false;  // write BF16 weights instead of F32 (half the size; rounds every weight)
};

// Writes config.json, model.safetensors and tokenizer.json into `out_dir` (created; files are
// replaced atomically). Throws Error naming the file and the field it cannot map.
void importGguf(const std::string& gguf_path, const std::string& out_dir,
                const GgufImportOptions& options = {});

// A model given as a GGUF file becomes a folder in Monoscope's cache (imported on first use,
// F32, keyed by the file's path, size and modification time); a folder is returned unchanged.
// The cache is $MONOSCOPE_CACHE, else $XDG_CACHE_HOME/monoscope, else ~/.cache/monoscope.
std::string resolveModelDir(const std::string& model);

// True when `path` names a GGUF file (by its magic number).
bool isGgufModel(const std::string& path);

}  // namespace monoscope::core
