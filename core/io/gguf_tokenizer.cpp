#include "io/gguf_tokenizer.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/gguf.h"
#include "util/error.h"

namespace monoscope::core {

namespace {

using json = nlohmann::json;

json byteLevel() {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
}

json digitsThenByteLevel() {
  return json{{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byteLevel()}}};
}

// A Split regex (isolated pieces) before a ByteLevel step that only maps bytes.
json regexThenByteLevel(const char* pattern) {
  return json{{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
}

// The published splitting patterns of these vocabularies (Llama 3's, Qwen 2's, Mistral's Tekken,
// GPT-4o's), as llama.cpp names them in tokenizer.ggml.pre.
constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) of byte-level vocabularies and the
// Hugging Face pre-tokenizer each stands for.
struct PreTokenizerRow {
  const char* name;
  json (*make)();
};

const PreTokenizerRow kPreTokenizers[] = {
    {"default", [] { return byteLevel(); }},
    {"gpt-2", [] { return byteLevel(); }},
    {"gpt2", [] { return byteLevel(); }},
    // GPT-2's pattern after splitting every digit apart (SmolLM, StarCoder, Refact).
    {"smollm", [] { return digitsThenByteLevel(); }},
    {"starcoder", [] { return digitsThenByteLevel(); }},
    {"refact", [] { return digitsThenByteLevel(); }},
    {"llama3", [] { return regexThenByteLevel(kLlama3); }},
    {"llama-v3", [] { return regexThenByteLevel(kLlama3); }},
    {"llama-bpe", [] { return regexThenByteLevel(kLlama3); }},
    {"falcon3", [] { return regexThenByteLevel(kLlama3); }},
    {"dbrx", [] { return regexThenByteLevel(kLlama3); }},
    {"smaug-bpe", [] { return regexThenByteLevel(kLlama3); }},
    {"qwen2", [] { return regexThenByteLevel(kQwen2); }},
    {"deepseek-r1-qwen", [] { return regexThenByteLevel(kQwen2); }},
    {"tekken", [] { return regexThenByteLevel(kTekken); }},
    {"gpt-4o", [] { return regexThenByteLevel(kGpt4o); }},
    {"llama4", [] { return regexThenByteLevel(kGpt4o); }},
};

const char* const kU2581 = "\xE2\x96\x81";

// SentencePiece-style pipelines by architecture (tokenizer.ggml.model 'llama'): Gemma's replaces
// every space and never splits; Phi-3's prepends U+2581 in its normalizer; the rest (Llama 2,
// Mistral, TinyLlama) use Metaspace, prefixing the first piece of the text.
struct SentencePieceRow {
  const char* architecture;
  json normalizer, pre_tokenizer, decoder;
  bool gemma;  // Gemma's files: whitespace tokens respelled, merges in file order, <unk> in the model
};

std::vector<SentencePieceRow> sentencePieceRows() {
  const json replace_space = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kU2581}};
  const json base_decoder = {{"type", "Sequence"},
                             {"decoders",
                              {{{"type", "Replace"}, {"pattern", {{"String", kU2581}}}, {"content", " "}},
                               {{"type", "ByteFallback"}},
                               {{"type", "Fuse"}}}}};
  json llama_decoder = base_decoder;
  llama_decoder["decoders"].push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  const json gemma_split = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "MergedWithPrevious"}, {"invert", false}};
  const json phi3_norm = {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", kU2581}}, replace_space}}};
  const json metaspace = {{"type", "Metaspace"}, {"replacement", kU2581}, {"prepend_scheme", "first"}, {"split", false}};
  return {
      {"gemma", replace_space, gemma_split, base_decoder, true},
      {"gemma2", replace_space, gemma_split, base_decoder, true},
      {"gemma3", replace_space, gemma_split, base_decoder, true},
      {"phi3", phi3_norm, nullptr, llama_decoder, false},
      {"", nullptr, metaspace, llama_decoder, false},  // any other architecture
  };
}

std::size_t codePoints(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Merges a SentencePiece vocabulary implies, as Hugging Face rebuilds them from a vocabulary
// and a score per token: every split of a token into two tokens, best score first, then longer
// left and right parts; within one token, by the parts' ids; ties keep file order.
json impliedMerges(const std::vector<std::string>& tokens, const std::vector<double>& scores) {
  std::unordered_map<std::string, std::size_t> index;  // the last id of each spelling
  for (std::size_t i = 0; i < tokens.size(); ++i) index[tokens[i]] = i;
  struct Merge {
    std::size_t left, right;  // ids (last id of the spelling)
    double score;
    std::size_t left_len, right_len;
  };
  std::vector<Merge> merges;
  std::unordered_map<std::string, bool> done;  // spellings already visited (dict order: first occurrence)
  std::vector<Merge> local;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (!done.emplace(t, true).second) continue;
    const double score = scores[index[t]];
    local.clear();
    for (std::size_t cut = 1; cut < t.size(); ++cut) {
      if ((static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) continue;  // cut between characters
      const auto l = index.find(t.substr(0, cut));
      if (l == index.end()) continue;
      const auto r = index.find(t.substr(cut));
      if (r == index.end()) continue;
      local.push_back({l->second, r->second, score, codePoints(l->first), codePoints(r->first)});
    }
    std::stable_sort(local.begin(), local.end(),
                     [](const Merge& a, const Merge& b) { return a.left != b.left ? a.left < b.left : a.right < b.right; });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_len != b.left_len) return a.left_len > b.left_len;
    return a.right_len > b.right_len;
  });
  json out = json::array();
  for (const auto& m : merges) out.push_back({tokens[m.left], tokens[m.right]});
  return out;
}

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
  auto flag = [&](const char* key, bool dflt) {
    return md.contains(key) && md[key].is_boolean() ? md[key].get<bool>() : dflt;
  };
  const json& kind_json = field("tokenizer.ggml.model");
  if (!kind_json.is_string()) throw Error(where + ": metadata 'tokenizer.ggml.model' is not a string");
  const std::string kind = kind_json.get<std::string>();
  if (kind != "gpt2" && kind != "llama") {
    throw Error(where + ": metadata 'tokenizer.ggml.model' is '" + kind + "', a tokenizer kind Monoscope does not import",
                "supported: gpt2 (byte-level BPE) and llama (SentencePiece BPE); give the model's own tokenizer.json folder");
  }
  const bool byte_level = kind == "gpt2";
  const std::string arch = md.contains("general.architecture") && md["general.architecture"].is_string()
                               ? md["general.architecture"].get<std::string>() : "";
  json normalizer, pre_tokenizer, decoder, post_processor;
  bool gemma = false;
  if (byte_level) {
    const std::string pre = md.contains("tokenizer.ggml.pre") && md["tokenizer.ggml.pre"].is_string()
                                ? md["tokenizer.ggml.pre"].get<std::string>() : "default";
    for (const auto& row : kPreTokenizers)
      if (pre == row.name) pre_tokenizer = row.make();
    if (pre_tokenizer.is_null()) {
      std::string known;
      for (const auto& row : kPreTokenizers) known += std::string(known.empty() ? "" : ", ") + row.name;
      throw Error(where + ": metadata 'tokenizer.ggml.pre' is '" + pre + "', a pre-tokenizer Monoscope does not know",
                  "known: " + known + "; give the model's own tokenizer.json folder");
    }
    decoder = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  } else {
    for (const auto& row : sentencePieceRows()) {
      if (row.architecture != arch && *row.architecture != '\0') continue;
      normalizer = row.normalizer;
      pre_tokenizer = row.pre_tokenizer;
      decoder = row.decoder;
      gemma = row.gemma;
      break;
    }
  }
  const json& tokens_json = field("tokenizer.ggml.tokens");
  if (!tokens_json.is_array() || tokens_json.empty()) throw Error(where + ": metadata 'tokenizer.ggml.tokens' is not a list of strings");
  json types = md.contains("tokenizer.ggml.token_type") ? md["tokenizer.ggml.token_type"] : json::array();
  if (!types.is_array() || (!types.empty() && types.size() != tokens_json.size()))
    throw Error(where + ": metadata 'tokenizer.ggml.token_type' does not have one entry per token");
  std::vector<std::string> tokens;
  tokens.reserve(tokens_json.size());
  for (std::size_t id = 0; id < tokens_json.size(); ++id) {
    if (!tokens_json[id].is_string()) throw Error(where + ": metadata 'tokenizer.ggml.tokens' entry " + std::to_string(id) + " is not a string");
    std::string s = tokens_json[id].get<std::string>();
    if (s.empty()) throw Error(where + ": metadata 'tokenizer.ggml.tokens' entry " + std::to_string(id) + " is empty");
    // Gemma's files store a token of spaces as spaces; its tokenizer spells them U+2581.
    if (gemma && s.find(' ') != std::string::npos && s.find_first_not_of(" \t\n\r\f\v") == std::string::npos) {
      const std::size_t n = codePoints(s);
      s.clear();
      for (std::size_t k = 0; k < n; ++k) s += kU2581;
    }
    tokens.push_back(std::move(s));
  }
  json vocab = json::object();
  json added = json::array();
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    const std::string& s = tokens[id];
    const int type = types.empty() ? kNormal : (types[id].is_number_integer() ? types[id].get<int>() : -1);
    if (type < kNormal || type > kByte)
      throw Error(where + ": metadata 'tokenizer.ggml.token_type' entry " + std::to_string(id) + " is not a token type (1-6)");
    if (vocab.contains(s)) throw Error(where + ": metadata 'tokenizer.ggml.tokens' holds '" + s + "' twice");
    vocab[s] = id;
    if (type == kControl || type == kUserDefined) {
      added.push_back({{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", type == kControl}});
    }
  }
  json merges = md.contains("tokenizer.ggml.merges") ? md["tokenizer.ggml.merges"] : json();
  if (!merges.is_null()) {
    if (!merges.is_array()) throw Error(where + ": metadata 'tokenizer.ggml.merges' is not a list of strings");
    for (const auto& m : merges)
      if (!m.is_string()) throw Error(where + ": metadata 'tokenizer.ggml.merges' holds a value that is not a string");
  } else if (byte_level) {
    merges = json::array();
  } else {
    // No merges in the file: the ones the vocabulary implies, ordered by score (Gemma: by file order).
    std::vector<double> scores(tokens.size());
    if (gemma) {
      for (std::size_t i = 0; i < tokens.size(); ++i) scores[i] = -static_cast<double>(i);
    } else {
      const json& sc = field("tokenizer.ggml.scores");
      if (!sc.is_array() || sc.size() != tokens.size())
        throw Error(where + ": metadata 'tokenizer.ggml.scores' does not have one number per token");
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        if (!sc[i].is_number()) throw Error(where + ": metadata 'tokenizer.ggml.scores' entry " + std::to_string(i) + " is not a number");
        scores[i] = sc[i].get<double>();
      }
    }
    merges = impliedMerges(tokens, scores);
  }
  // BOS / EOS the model expects around a text (tokenizer.ggml.add_bos_token, add_eos_token).
  auto token_id = [&](const char* key) -> std::int64_t {
    if (!md.contains(key) || !md[key].is_number_integer()) return -1;
    const auto id = md[key].get<std::int64_t>();
    if (id < 0 || id >= static_cast<std::int64_t>(tokens.size()))
      throw Error(where + ": metadata '" + std::string(key) + "' is " + std::to_string(id) + ", outside the vocabulary of " + std::to_string(tokens.size()));
    return id;
  };
  const std::int64_t bos = token_id("tokenizer.ggml.bos_token_id"), eos = token_id("tokenizer.ggml.eos_token_id");
  const bool add_bos = flag("tokenizer.ggml.add_bos_token", !byte_level) && bos >= 0;
  const bool add_eos = flag("tokenizer.ggml.add_eos_token", false) && eos >= 0;
  if (add_bos || add_eos) {
    json single = json::array(), special_tokens = json::object();
    auto special = [&](std::int64_t id) {
      const std::string& name = tokens[static_cast<std::size_t>(id)];
      single.push_back({{"SpecialToken", {{"id", name}, {"type_id", 0}}}});
      special_tokens[name] = {{"id", name}, {"ids", {id}}, {"tokens", {name}}};
    };
    if (add_bos) special(bos);
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    if (add_eos) special(eos);
    post_processor = {{"type", "TemplateProcessing"}, {"single", single}, {"pair", single}, {"special_tokens", special_tokens}};
  } else if (byte_level) {
    post_processor = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  }
  json unk = nullptr;
  if (gemma) {
    const std::int64_t u = token_id("tokenizer.ggml.unknown_token_id");
    if (u >= 0) unk = tokens[static_cast<std::size_t>(u)];
  }
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", normalizer},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", post_processor},
      {"decoder", decoder},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", unk}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", !byte_level}, {"byte_fallback", !byte_level}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merges}}},
  };
}

}  // namespace monoscope::core
