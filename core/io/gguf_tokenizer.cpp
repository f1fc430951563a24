#include "io/gguf_tokenizer.h"

#include <string>

#include "io/gguf.h"
#include "util/error.h"

namespace monoscope::core {

namespace {

using json = nlohmann::json;

json byteLevel() {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
}

// llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) and the Hugging Face pre-tokenizer each
// stands for.
struct PreTokenizerRow {
  const char* name;
  json (*make)();
};

const PreTokenizerRow kPreTokenizers[] = {
    {"default", [] { return byteLevel(); }},
    {"gpt-2", [] { return byteLevel(); }},
    {"gpt2", [] { return byteLevel(); }},
    // GPT-2's pattern after splitting every digit apart (SmolLM, StarCoder, Refact).
    {"smollm", [] { return json{{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byteLevel()}}}; }},
    {"starcoder", [] { return json{{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byteLevel()}}}; }},
    {"refact", [] { return json{{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byteLevel()}}}; }},
};

// llama_token_type in the file.
enum TokenType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

}  // namespace

json ggufTokenizerJson(const GgufFile& file) {
  const std::string where = "GGUF file '" + file.path() + "'";
  const auto& md = file.metadata();
  auto field = [&](const char* key) -> const json& {
    if (!md.contains(key)) throw Error(where + ": metadata '" + std::string(key) + "' is missing", "the file carries no tokenizer; give the model's tokenizer.json folder");
    return md[key];
  };
  const json& kind = field("tokenizer.ggml.model");
  if (!kind.is_string()) throw Error(where + ": metadata 'tokenizer.ggml.model' is not a string");
  if (kind.get<std::string>() != "gpt2") {
    throw Error(where + ": metadata 'tokenizer.ggml.model' is '" + kind.get<std::string>() +
                    "'; only byte-level BPE ('gpt2') tokenizers are imported so far",
                "SentencePiece-style ('llama', 'gemma') tokenizers are not supported yet; "
                "use a model with a byte-level BPE tokenizer");
  }
  const std::string pre = md.contains("tokenizer.ggml.pre") && md["tokenizer.ggml.pre"].is_string()
                              ? md["tokenizer.ggml.pre"].get<std::string>() : "default";
  json pre_tokenizer;
  for (const auto& row : kPreTokenizers)
    if (pre == row.name) pre_tokenizer = row.make();
  if (pre_tokenizer.is_null()) {
    throw Error(where + ": metadata 'tokenizer.ggml.pre' is '" + pre + "', a pre-tokenizer Monoscope does not know",
                "known: default, gpt-2, smollm, starcoder, refact; give the model's own tokenizer.json folder");
  }
  const json& tokens = field("tokenizer.ggml.tokens");
  if (!tokens.is_array() || tokens.empty()) throw Error(where + ": metadata 'tokenizer.ggml.tokens' is not a list of strings");
  json types = md.contains("tokenizer.ggml.token_type") ? md["tokenizer.ggml.token_type"] : json::array();
  if (!types.is_array() || (!types.empty() && types.size() != tokens.size()))
    throw Error(where + ": metadata 'tokenizer.ggml.token_type' does not have one entry per token");
  json vocab = json::object();
  json added = json::array();
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    if (!tokens[id].is_string()) throw Error(where + ": metadata 'tokenizer.ggml.tokens' entry " + std::to_string(id) + " is not a string");
    const std::string& s = tokens[id].get_ref<const std::string&>();
    if (s.empty()) throw Error(where + ": metadata 'tokenizer.ggml.tokens' entry " + std::to_string(id) + " is empty");
    const int type = types.empty() ? kNormal : (types[id].is_number_integer() ? types[id].get<int>() : -1);
    if (type < kNormal || type > kByte)
      throw Error(where + ": metadata 'tokenizer.ggml.token_type' entry " + std::to_string(id) + " is not a token type (1-6)");
    if (vocab.contains(s)) throw Error(where + ": metadata 'tokenizer.ggml.tokens' holds '" + s + "' twice");
    vocab[s] = id;
    if (type == kControl || type == kUserDefined) {
      added.push_back({{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", type == kUserDefined}, {"special", type == kControl}});
    }
  }
  const json merges = md.contains("tokenizer.ggml.merges") ? md["tokenizer.ggml.merges"] : json::array();
  if (!merges.is_array()) throw Error(where + ": metadata 'tokenizer.ggml.merges' is not a list of strings");
  for (const auto& m : merges)
    if (!m.is_string()) throw Error(where + ": metadata 'tokenizer.ggml.merges' holds a value that is not a string");
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merges}}},
  };
}

}  // namespace monoscope::core
