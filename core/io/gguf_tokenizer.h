#pragma once
// The tokenizer a GGUF file carries (tokenizer.ggml.*) as a Hugging Face tokenizer.json.
#include <nlohmann/json.hpp>

namespace monoscope::core {

class GgufFile;

// Byte-level BPE ('gpt2' kind): tokens, merges, and the pre-tokenizer llama.cpp names in
// tokenizer.ggml.pre (GPT-2's pattern, digits apart, or a published Split regex: Llama 3, Qwen 2,
// Tekken, GPT-4o). SentencePiece BPE ('llama' kind): the pipeline of its architecture (Gemma's,
// Phi-3's, else Llama 2's Metaspace), byte fallback, and the merges the vocabulary and scores
// imply when the file lists none. Both: token types (control tokens become special added tokens,
// user-defined ones plain added tokens) and the BOS/EOS a TemplateProcessing adds. Other kinds
// and pre-tokenizers are refused naming the field.
nlohmann::json ggufTokenizerJson(const GgufFile& file);

}  // namespace monoscope::core
