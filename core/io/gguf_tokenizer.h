#pragma once
// The tokenizer a GGUF file carries (tokenizer.ggml.*) as a Hugging Face tokenizer.json.
#include <nlohmann/json.hpp>

namespace monoscope::core {

class GgufFile;

// Byte-level BPE ('gpt2' kind): tokens, merges, token types (control tokens become special added
// tokens, user-defined ones plain added tokens) and the pre-tokenizer llama.cpp names in
// tokenizer.ggml.pre. Other kinds and pre-tokenizers are refused naming the field.
nlohmann::json ggufTokenizerJson(const GgufFile& file);

}  // namespace monoscope::core
