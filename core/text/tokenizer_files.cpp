// Reading and writing a tokenizer's files: tokenizer.json (its whole pipeline), GPT-2's
// vocab.json + merges.txt, trained merges; and saving them back.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/gguf_import.h"
#include "io/json_file.h"
#include "text/byte_alphabet.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/utf8.h"

namespace fs = std::filesystem;

namespace monoscope::core {

Tokenizer Tokenizer::fromDirectory(const std::string& model) {
  const std::string dir = resolveModelDir(model);
  const fs::path tj = fs::path(dir) / "tokenizer.json";
  if (fs::exists(tj)) return fromTokenizerJson(tj.string());
  const fs::path vj = fs::path(dir) / "vocab.json";
  const fs::path mt = fs::path(dir) / "merges.txt";
  if (fs::exists(vj) && fs::exists(mt)) return fromVocabMerges(vj.string(), mt.string());
  throw Error("no tokenizer in '" + dir + "': neither tokenizer.json nor vocab.json + merges.txt",
              "copy the model's tokenizer.json (or vocab.json and merges.txt) into that folder; `tokenize` "
              "also takes --tokenizer DIR");
}

std::int32_t Tokenizer::endOfTextIdOf(const std::string& model) {
  const fs::path dir = resolveModelDir(model);
  if (!fs::exists(dir / "tokenizer.json") && !(fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt"))) return -1;
  return fromDirectory(dir.string()).endOfTextId();
}

static void loadVocabObject(const nlohmann::json& vocab, const std::string& where,
                            std::vector<std::pair<std::string, std::int32_t>>* out) {
  if (!vocab.is_object()) throw Error(where + ": vocabulary is not a JSON object");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it->is_number_integer())
      throw Error(where + ": id of token '" + it.key() + "' is not an integer");
    out->emplace_back(it.key(), it->get<std::int32_t>());
  }
}

namespace {

// The post-processor's tokens around a single text: TemplateProcessing's "single" template,
// RobertaProcessing / BertProcessing (cls before, sep after), ByteLevel (none), or a Sequence.
void readPostProcessor(const nlohmann::json& pp, const std::string& where, const std::function<std::int32_t(const nlohmann::json&)>& id_of,
                       std::vector<std::int32_t>* prefix, std::vector<std::int32_t>* suffix) {
  if (pp.is_null()) return;
  if (!pp.is_object() || !pp.contains("type") || !pp["type"].is_string()) throw Error(where + ": 'post_processor' has no 'type'");
  const std::string type = pp["type"].get<std::string>();
  if (type == "Sequence") {
    if (!pp.contains("processors") || !pp["processors"].is_array()) throw Error(where + ": post_processor Sequence has no 'processors' list");
    for (const auto& p : pp["processors"]) readPostProcessor(p, where, id_of, prefix, suffix);
  } else if (type == "ByteLevel") {
  } else if (type == "TemplateProcessing") {
    if (!pp.contains("single") || !pp["single"].is_array()) throw Error(where + ": post_processor TemplateProcessing has no 'single' template");
    const auto& specials = pp.contains("special_tokens") && pp["special_tokens"].is_object() ? pp["special_tokens"] : nlohmann::json::object();
    bool seen_text = false;
    for (const auto& piece : pp["single"]) {
      if (piece.is_object() && piece.contains("Sequence")) {
        seen_text = true;
        continue;
      }
      if (!piece.is_object() || !piece.contains("SpecialToken") || !piece["SpecialToken"].is_object() ||
          !piece["SpecialToken"].contains("id") || !piece["SpecialToken"]["id"].is_string())
        throw Error(where + ": post_processor TemplateProcessing 'single' holds " + piece.dump() + ", which is neither a Sequence nor a SpecialToken");
      const std::string name = piece["SpecialToken"]["id"].get<std::string>();
      if (!specials.contains(name) || !specials[name].is_object() || !specials[name].contains("ids") || !specials[name]["ids"].is_array())
        throw Error(where + ": post_processor TemplateProcessing uses '" + name + "' but its 'special_tokens' do not list its ids");
      for (const auto& id : specials[name]["ids"]) {
        if (!id.is_number_integer()) throw Error(where + ": post_processor TemplateProcessing ids of '" + name + "' are not integers");
        (seen_text ? suffix : prefix)->push_back(id.get<std::int32_t>());
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const char* key : {"cls", "sep"}) {
      if (!pp.contains(key) || !pp[key].is_array() || pp[key].size() != 2) throw Error(where + ": post_processor " + type + " '" + key + "' is not [token, id]");
      (std::string(key) == "cls" ? prefix : suffix)->push_back(id_of(pp[key][1]));
    }
  } else {
    throw Error(where + ": post_processor '" + type + "' is not supported",
                "supported: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, Sequence");
  }
}

// What a SentencePiece-style piece stands for, by the decoder's Replace and Metaspace steps
// (U+2581 -> space); <0xNN> pieces are handled by the caller.
std::vector<std::pair<std::string, std::string>> decoderReplacements(const nlohmann::json& dec) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!dec.is_object()) return out;
  const std::string type = dec.value("type", "");
  if (type == "Sequence" && dec.contains("decoders") && dec["decoders"].is_array()) {
    for (const auto& d : dec["decoders"])
      for (auto& r : decoderReplacements(d)) out.push_back(std::move(r));
  } else if (type == "Replace" && dec.contains("pattern") && dec["pattern"].is_object() && dec["pattern"].contains("String") &&
             dec["pattern"]["String"].is_string() && dec.contains("content") && dec["content"].is_string()) {
    out.emplace_back(dec["pattern"]["String"].get<std::string>(), dec["content"].get<std::string>());
  } else if (type == "Metaspace") {
    out.emplace_back(dec.contains("replacement") && dec["replacement"].is_string() ? dec["replacement"].get<std::string>() : "\xE2\x96\x81", " ");
  }
  return out;
}

std::string replaceAll(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (std::size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size())) s.replace(i, from.size(), to);
  return s;
}

}  // namespace

Tokenizer Tokenizer::fromTokenizerJson(const std::string& path) try {
  const nlohmann::json j = readJsonFile(path);
  const std::string where = "'" + path + "'";
  const JsonFields top(j, where);
  if (!j.contains("model") || !j["model"].is_object()) top.fail("model", "is missing or not an object");
  const JsonFields model(j["model"], where + " model");
  const auto& m = j["model"];
  const std::string type = model.string("type", "BPE");
  if (type != "BPE") {
    model.fail("type", "is '" + type + "'; only BPE tokenizers (byte-level or SentencePiece-style) are supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(key) && !m[key].is_null() && !(m[key].is_string() && m[key].get<std::string>().empty()))
      model.fail(key, "is set; BPE with word-piece affixes is not supported");
  if (m.contains("dropout") && !m["dropout"].is_null() && !(m["dropout"].is_number() && m["dropout"].get<double>() == 0.0))
    model.fail("dropout", "is set; a tokenizer with BPE dropout is random at every call and cannot be used for analysis");
  Tokenizer t;
  const nlohmann::json null_json;
  const nlohmann::json& normalizer = j.contains("normalizer") ? j["normalizer"] : null_json;
  const nlohmann::json& pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : null_json;
  const nlohmann::json& decoder = j.contains("decoder") ? j["decoder"] : null_json;
  t.pipeline_ = std::make_shared<const TextPipeline>(TextPipeline::fromJson(normalizer, pre, where));
  t.byte_level_ = t.pipeline_->byteLevel() || (decoder.is_object() && decoder.value("type", "") == "ByteLevel");
  if (t.pipeline_->gpt2Shape()) t.digits_ = t.pipeline_->digitSplit() == 2 ? DigitSplit::Individual : t.pipeline_->digitSplit() == 1 ? DigitSplit::Runs : DigitSplit::None;
  if (!t.byte_level_ && normalizer.is_null() && pre.is_null() && !decoder.is_object())
    throw Error(where + ": neither a ByteLevel nor a SentencePiece-style pipeline (no normalizer, pre-tokenizer or decoder)",
                "Monoscope reads byte-level and SentencePiece-style BPE tokenizers");
  t.byte_fallback_ = m.contains("byte_fallback") && m["byte_fallback"].is_boolean() && m["byte_fallback"].get<bool>();
  t.fuse_unk_ = m.contains("fuse_unk") && m["fuse_unk"].is_boolean() && m["fuse_unk"].get<bool>();
  t.ignore_merges_ = m.contains("ignore_merges") && m["ignore_merges"].is_boolean() && m["ignore_merges"].get<bool>();
  if (t.byte_level_ && t.byte_fallback_) model.fail("byte_fallback", "is set on a byte-level vocabulary, which needs none");
  t.post_processor_json_ = j.contains("post_processor") ? j["post_processor"].dump() : "null";
  t.decoder_json_ = decoder.dump();
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  if (!m.contains("vocab")) model.fail("vocab", "is missing");
  loadVocabObject(m["vocab"], where, &vocab);
  std::string bytes;
  const auto replacements = decoderReplacements(decoder);
  std::map<std::int32_t, const std::string*> owner;  // two entries with one id would decode wrongly
  for (const auto& [s, id] : vocab) {
    const auto [it, fresh] = owner.emplace(id, &s);
    if (!fresh)
      throw Error(where + ": model.vocab gives id " + std::to_string(id) + " to both '" + *it->second + "' and '" + s + "'",
                  "each vocabulary entry needs its own id");
    if (t.byte_level_) {
      if (!unmapByteLevel(s, &bytes)) {
        throw Error(where + ": token '" + s + "' is outside the byte-level alphabet",
                    "this is not a byte-level BPE vocabulary");
      }
      t.addToken(id, bytes);
    } else {
      if (findInvalidUtf8(s) != std::string::npos) throw Error(where + ": a vocabulary entry is not valid UTF-8");
      t.addToken(id, s);
    }
  }
  if (!t.byte_level_) {
    std::fill(std::begin(t.fallback_ids_), std::end(t.fallback_ids_), -1);
    t.id_to_surface_.resize(t.id_to_bytes_.size());
    for (std::size_t id = 0; id < t.id_to_bytes_.size(); ++id) {
      const std::string& piece = t.id_to_bytes_[id];
      unsigned hex = 0;
      if (t.byte_fallback_ && piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>' &&
          std::sscanf(piece.c_str() + 3, "%2x", &hex) == 1 && std::isxdigit(static_cast<unsigned char>(piece[3])) &&
          std::isxdigit(static_cast<unsigned char>(piece[4]))) {
        t.fallback_ids_[hex] = static_cast<std::int32_t>(id);
        t.id_to_surface_[id] = std::string(1, static_cast<char>(hex));
        continue;
      }
      std::string surface = piece;
      for (const auto& [from, to] : replacements) surface = replaceAll(std::move(surface), from, to);
      t.id_to_surface_[id] = std::move(surface);
    }
  }
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    const auto it = t.bytes_to_id_.find(m["unk_token"].get<std::string>());
    if (it == t.bytes_to_id_.end()) model.fail("unk_token", "'" + m["unk_token"].get<std::string>() + "' is not in the vocabulary");
    t.unk_id_ = it->second;
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content")) continue;
      if (!a["id"].is_number_integer() || !a["content"].is_string())
        throw Error(where + ": an added_tokens entry has a non-integer id or non-string content");
      const auto id = a["id"].get<std::int32_t>();
      const auto content = a["content"].get<std::string>();
      if (content.empty())
        throw Error(where + ": added token " + std::to_string(id) + " has empty content", "remove it or give it text");
      if (findInvalidUtf8(content) != std::string::npos) throw Error(where + ": added token " + std::to_string(id) + " is not valid UTF-8");
      t.addToken(id, content);
      if (!t.byte_level_) {
        if (t.id_to_surface_.size() < t.id_to_bytes_.size()) t.id_to_surface_.resize(t.id_to_bytes_.size());
        std::string surface = content;  // added tokens go through the decoder too
        for (const auto& [from, to] : replacements) surface = replaceAll(std::move(surface), from, to);
        t.id_to_surface_[static_cast<std::size_t>(id)] = std::move(surface);
      }
      t.specials_.emplace_back(content, id);
    }
  }
  const auto id_of = [&](const nlohmann::json& v) -> std::int32_t {
    if (!v.is_number_integer()) throw Error(where + ": a post_processor token id is not an integer");
    return v.get<std::int32_t>();
  };
  readPostProcessor(j.contains("post_processor") ? j["post_processor"] : null_json, where, id_of, &t.prefix_ids_, &t.suffix_ids_);
  for (auto id : t.prefix_ids_)
    if (id < 0 || static_cast<std::size_t>(id) >= t.id_to_bytes_.size()) throw Error(where + ": post_processor token id " + std::to_string(id) + " is outside the vocabulary");
  for (auto id : t.suffix_ids_)
    if (id < 0 || static_cast<std::size_t>(id) >= t.id_to_bytes_.size()) throw Error(where + ": post_processor token id " + std::to_string(id) + " is outside the vocabulary");
  t.finish();  // byte ids first: merges refer to them
  const auto& merges = m.contains("merges") ? m["merges"] : nlohmann::json::array();
  if (!merges.is_array()) model.fail("merges", "is not an array");
  std::int32_t rank = 0;
  std::string a, b;
  for (const auto& mg : merges) {
    std::string left, right;
    if (mg.is_string()) {
      const std::string s = mg.get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos) model.fail("merges", "entry '" + s + "' is not 'left right'");
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      left = mg[0].get<std::string>();
      right = mg[1].get<std::string>();
    } else {
      model.fail("merges", "entry " + mg.dump() + " is malformed");
    }
    if (t.byte_level_) {
      if (!unmapByteLevel(left, &a) || !unmapByteLevel(right, &b)) a.clear(), b.clear();
    } else {
      a = left;
      b = right;
    }
    if (a.empty() || b.empty() || !t.bytes_to_id_.count(a) || !t.bytes_to_id_.count(b)) {
      model.fail("merges", "entry '" + left + " " + right + "' uses tokens not in the vocabulary");
    }
    t.addMerge(t.bytes_to_id_[a], t.bytes_to_id_[b], rank++, where);
  }
  return t;
} catch (const nlohmann::json::exception& e) {
  throw Error("'" + path + "': a value has an unexpected type (" + plainJsonMessage(e) + ")",
              "regenerate the file with Hugging Face tokenizers");
}

Tokenizer Tokenizer::fromVocabMerges(const std::string& vocab_path, const std::string& merges_path) try {
  const nlohmann::json vj = readJsonFile(vocab_path);
  std::vector<std::pair<std::string, std::int32_t>> vocab;
  loadVocabObject(vj, "'" + vocab_path + "'", &vocab);
  Tokenizer t;
  std::string bytes;
  for (const auto& [s, id] : vocab) {
    if (s == "<|endoftext|>") {
      t.addToken(id, s);
      t.specials_.emplace_back(s, id);
      continue;
    }
    if (!unmapByteLevel(s, &bytes)) {
      throw Error("'" + vocab_path + "': token '" + s + "' is outside the byte-level alphabet",
                  "this is not a byte-level BPE vocabulary");
    }
    t.addToken(id, bytes);
  }
  t.finish();
  const std::string text = readTextFile(merges_path);
  std::istringstream in(text);
  std::string line;
  std::int32_t rank = 0;
  std::size_t lineno = 0;
  std::string a, b;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
    const auto sp = line.find(' ');
    const std::string where = "'" + merges_path + "' line " + std::to_string(lineno);
    if (sp == std::string::npos) throw Error(where + " is not 'left right'");
    if (!unmapByteLevel(line.substr(0, sp), &a) || !unmapByteLevel(line.substr(sp + 1), &b) ||
        !t.bytes_to_id_.count(a) || !t.bytes_to_id_.count(b)) {
      throw Error(where + " uses tokens not in the vocabulary",
                  "the vocabulary and merges come from different tokenizers");
    }
    t.addMerge(t.bytes_to_id_[a], t.bytes_to_id_[b], rank++, where);
  }
  return t;
} catch (const nlohmann::json::exception& e) {
  throw Error("'" + vocab_path + "': a value has an unexpected type (" + plainJsonMessage(e) + ")",
              "regenerate the file with Hugging Face tokenizers");
}

Tokenizer Tokenizer::fromMerges(const std::vector<std::pair<std::string, std::string>>& merges,
                                const std::vector<std::string>& special_tokens) {
  Tokenizer t;
  const auto& fwd = byteToUnicode();
  // Byte tokens ordered by their mapped code point, as GPT-2's vocabulary orders them.
  std::vector<int> order(256);
  for (int b = 0; b < 256; ++b) order[b] = b;
  std::sort(order.begin(), order.end(), [&](int x, int y) { return fwd[x] < fwd[y]; });
  std::int32_t next = 0;
  for (int b : order) t.addToken(next++, std::string(1, static_cast<char>(b)));
  for (const auto& [l, r] : merges) {
    if (!t.bytes_to_id_.count(l + r)) t.addToken(next++, l + r);
  }
  for (const auto& s : special_tokens) {
    t.addToken(next, s);
    t.specials_.emplace_back(s, next++);
  }
  t.finish();
  std::int32_t rank = 0;
  for (const auto& [l, r] : merges) {
    auto li = t.bytes_to_id_.find(l);
    auto ri = t.bytes_to_id_.find(r);
    if (li == t.bytes_to_id_.end() || ri == t.bytes_to_id_.end())
      throw Error("merge " + std::to_string(rank) + " uses a token that no earlier merge made");
    t.addMerge(li->second, ri->second, rank++, "trained merges");
  }
  return t;
}

void Tokenizer::save(const std::string& dir) const {
  fs::create_directories(dir);
  // A vocabulary entry as the file spells it: byte-level tokens in the byte-to-unicode alphabet,
  // SentencePiece-style ones as their piece.
  auto spell = [&](std::int32_t id) {
    return byte_level_ ? mapByteLevel(id_to_bytes_[static_cast<std::size_t>(id)]) : id_to_bytes_[static_cast<std::size_t>(id)];
  };
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (std::size_t id = 0; id < id_to_bytes_.size(); ++id) {
    const bool special = special_of_id_.count(static_cast<std::int32_t>(id)) > 0;
    if (!special || !byte_level_) vocab[spell(static_cast<std::int32_t>(id))] = id;
  }
  nlohmann::ordered_json merges = nlohmann::ordered_json::array();
  std::string merges_txt = "#version: 0.2\n";
  for (const auto& [l, r] : merge_list_) {
    if (byte_level_) {
      const std::string line = spell(l) + " " + spell(r);
      merges.push_back(line);
      merges_txt += line + "\n";
    } else {
      merges.push_back({spell(l), spell(r)});  // pairs: pieces may hold spaces
    }
  }
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  nlohmann::ordered_json vocab_with_specials = vocab;
  auto specials = specials_;
  std::sort(specials.begin(), specials.end(), [](auto& a, auto& b) { return a.second < b.second; });
  for (const auto& [content, id] : specials) {
    added.push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
    vocab_with_specials[content] = id;
  }
  nlohmann::ordered_json pre_tokenizer, normalizer;
  if (pipeline_) {
    pre_tokenizer = pipeline_->preTokenizerJson();
    normalizer = pipeline_->normalizerJson();
  } else {
    pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    if (digits_ != DigitSplit::None) {
      nlohmann::ordered_json digits = {{"type", "Digits"}, {"individual_digits", digits_ == DigitSplit::Individual}};
      pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", {digits, pre_tokenizer}}};
    }
  }
  const nlohmann::ordered_json byte_level_step = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  const nlohmann::ordered_json post = post_processor_json_.empty() ? byte_level_step : nlohmann::ordered_json::parse(post_processor_json_);
  const nlohmann::ordered_json decoder = decoder_json_.empty() ? byte_level_step : nlohmann::ordered_json::parse(decoder_json_);
  nlohmann::ordered_json unk = nullptr;
  if (unk_id_ >= 0) unk = spell(unk_id_);
  nlohmann::ordered_json tj = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", normalizer},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", post},
      {"decoder", decoder},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", unk},
        {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""}, {"fuse_unk", fuse_unk_},
        {"byte_fallback", byte_fallback_}, {"ignore_merges", ignore_merges_}, {"vocab", vocab}, {"merges", merges}}}};
  writeFileAtomically((fs::path(dir) / "tokenizer.json").string(), tj.dump(2));
  if (!byte_level_) return;  // vocab.json + merges.txt are GPT-2's byte-level files
  writeFileAtomically((fs::path(dir) / "vocab.json").string(), vocab_with_specials.dump());
  writeFileAtomically((fs::path(dir) / "merges.txt").string(), merges_txt);
}

}  // namespace monoscope::core
