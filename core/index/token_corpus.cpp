#include "index/token_corpus.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/utf8.h"

namespace fs = std::filesystem;

namespace monoscope::core {

TokenCorpus::~TokenCorpus() = default;

namespace {

bool isShard(const fs::path& p) { return p.extension() == ".safetensors"; }

// Reads text files until `need` tokens are collected; end-of-text between documents.
void readText(const std::vector<fs::path>& files, const Tokenizer& tok, std::int64_t need, std::vector<std::int32_t>* out) {
  const std::int32_t eot = tok.endOfTextId();
  for (const auto& f : files) {
    if (static_cast<std::int64_t>(out->size()) >= need) break;
    std::string text = readTextFile(f.string());
    if (findInvalidUtf8(text) != std::string::npos) text = toValidUtf8(text);
    // Tokenise in pieces cut at line ends, so a huge file does not need one huge token list;
    // the document starts with the tokens the model's post-processor puts first (a BOS).
    out->insert(out->end(), tok.prefixIds().begin(), tok.prefixIds().end());
    std::size_t pos = 0;
    while (pos < text.size() && static_cast<std::int64_t>(out->size()) < need) {
      std::size_t end = std::min(text.size(), pos + (1u << 20));
      if (end < text.size()) {
        const auto nl = text.rfind('\n', end);
        if (nl != std::string::npos && nl > pos) end = nl + 1;
      }
      const auto ids = tok.encodeIds(std::string_view(text).substr(pos, end - pos));
      out->insert(out->end(), ids.begin(), ids.end());
      pos = end;
    }
    if (eot >= 0 && !text.empty()) out->push_back(eot);
  }
}

}  // namespace

TokenCorpus::TokenCorpus(const std::string& path, const Tokenizer& tok, std::int64_t max_tokens, std::int64_t window)
    : window_(window) {
  if (window < 1) throw Error("window length " + std::to_string(window) + " must be positive");
  if (max_tokens < window)
    throw Error("tokens " + std::to_string(max_tokens) + " is fewer than one window of " + std::to_string(window),
                "scan at least one window of tokens");
  fs::path p(path);
  std::error_code ec;
  if (!fs::exists(p, ec)) throw Error("corpus '" + path + "' does not exist", "give a token shard, a text file or a folder of text files");
  if (fs::is_directory(p) && fs::exists(p / "train.tokens.safetensors")) p = p / "train.tokens.safetensors";
  if (fs::is_regular_file(p) && isShard(p)) {
    shard_ = std::make_unique<SafetensorsFile>(p.string());
    const auto& v = shard_->tensor("tokens");
    if (v.dtype != DType::I32 || v.shape.size() != 1)
      throw Error("corpus '" + p.string() + "': tensor 'tokens' must be I32 [n]", "write shards with build-corpus");
    shard_tokens_ = reinterpret_cast<const std::int32_t*>(v.data);
    shard_size_ = v.shape[0];
    vocab_size_ = tok.vocabSize();  // ids are checked per window as they are read
    const std::int64_t available = shard_size_ / window;
    windows_ = std::min(available, max_tokens / window);
    if (windows_ == 0) throw Error("corpus '" + p.string() + "' holds " + std::to_string(shard_size_) + " tokens, fewer than one window");
    stride_ = static_cast<double>(shard_size_ - window) / static_cast<double>(std::max<std::int64_t>(1, windows_ - 1));
    if (windows_ == 1) stride_ = 0;
    description_ = p.string();
    readDomains();
    return;
  }
  std::vector<fs::path> files;
  if (fs::is_directory(p)) {
    for (const auto& e : fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied))
      if (e.is_regular_file() && !isShard(e.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
  } else if (fs::is_regular_file(p)) {
    files.push_back(p);
  } else {
    throw Error("corpus '" + path + "' is neither a file nor a folder");
  }
  readText(files, tok, max_tokens, &text_);
  windows_ = static_cast<std::int64_t>(text_.size()) / window;
  if (windows_ == 0) {
    throw Error("corpus '" + path + "' has " + std::to_string(text_.size()) + " tokens of text, fewer than one window of " +
                    std::to_string(window),
                "give more text");
  }
  text_.resize(static_cast<std::size_t>(windows_ * window));
  description_ = p.string();
}

std::int64_t TokenCorpus::windowStart(std::int64_t w) const {
  return std::min(static_cast<std::int64_t>(static_cast<double>(w) * stride_), shard_size_ - window_);
}

void TokenCorpus::readDomains() {
  // Optional: shards written before sources were recorded have none.
  if (!shard_->has("doc_offsets") || !shard_->has("doc_sources") || !shard_->metadata().count("source_domains")) return;
  const auto names = nlohmann::json::parse(shard_->metadata().at("source_domains"), nullptr, false);
  const auto& off = shard_->tensor("doc_offsets");
  const auto& src = shard_->tensor("doc_sources");
  if (!names.is_array() || off.dtype != DType::I64 || src.dtype != DType::I32 || off.shape.size() != 1 ||
      src.shape.size() != 1 || off.shape[0] != src.shape[0] + 1)
    throw Error("corpus '" + description_ + "': doc_offsets / doc_sources / source_domains do not fit together",
                "rebuild the corpus with monoscope-cli build-corpus");
  std::map<std::string, std::int32_t> ids;
  std::vector<std::int32_t> domain_of_source;
  for (const auto& n : names) {
    const std::string name = n.is_string() ? n.get<std::string>() : std::string("?");
    auto it = ids.emplace(name, static_cast<std::int32_t>(domains_.size())).first;
    if (it->second == static_cast<std::int32_t>(domains_.size())) domains_.push_back(name);
    domain_of_source.push_back(it->second);
  }
  const auto* o = reinterpret_cast<const std::int64_t*>(off.data);
  const auto* s = reinterpret_cast<const std::int32_t*>(src.data);
  doc_offsets_.assign(o, o + off.shape[0]);
  doc_domain_.resize(static_cast<std::size_t>(src.shape[0]));
  for (std::int64_t i = 0; i < src.shape[0]; ++i) {
    if (s[i] < 0 || static_cast<std::size_t>(s[i]) >= domain_of_source.size() || o[i] > o[i + 1])
      throw Error("corpus '" + description_ + "': document " + std::to_string(i) + " has a bad source or offset",
                  "rebuild the corpus with monoscope-cli build-corpus");
    doc_domain_[static_cast<std::size_t>(i)] = domain_of_source[static_cast<std::size_t>(s[i])];
  }
}

std::int32_t TokenCorpus::windowDomain(std::int64_t w) const {
  if (doc_domain_.empty() || w < 0 || w >= windows_) return -1;
  const std::int64_t mid = windowStart(w) + window_ / 2;
  const auto it = std::upper_bound(doc_offsets_.begin(), doc_offsets_.end(), mid);
  const auto doc = static_cast<std::size_t>(std::max<std::ptrdiff_t>(0, it - doc_offsets_.begin() - 1));
  return doc < doc_domain_.size() ? doc_domain_[doc] : -1;
}

void TokenCorpus::windowTokens(std::int64_t w, std::vector<std::int32_t>* out) const {
  if (w < 0 || w >= windows_) throw Error("window " + std::to_string(w) + " is outside the corpus");
  const std::int32_t* src = nullptr;
  if (shard_) {
    src = shard_tokens_ + windowStart(w);
  } else {
    src = text_.data() + w * window_;
  }
  out->assign(src, src + window_);
  if (shard_) {
    for (std::int64_t i = 0; i < window_; ++i) {
      const std::int32_t id = (*out)[static_cast<std::size_t>(i)];
      if (id < 0 || id >= vocab_size_)
        throw Error("corpus '" + description_ + "': token " + std::to_string(src - shard_tokens_ + i) + " has id " +
                        std::to_string(id) + " outside the tokenizer's vocabulary of " + std::to_string(vocab_size_),
                    "the shard was written with another tokenizer");
    }
  }
}

}  // namespace monoscope::core
