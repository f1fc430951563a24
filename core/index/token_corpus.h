#pragma once
// The tokens an index scans, as numbered windows of equal length. Sources: a token shard from
// build-corpus (`tokens` I32; a corpus folder uses its train shard), a text file, or a folder of
// text files (each file a document, end-of-text between documents).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace monoscope::core {

class Tokenizer;
class SafetensorsFile;

class TokenCorpus {
 public:
  // Prepares `max_tokens` tokens cut into windows of `window` tokens. A shard larger than that
  // is sampled with evenly spaced windows; text is read from the start until enough tokens.
  // Throws Error naming the path for a missing source or one with no text.
  TokenCorpus(const std::string& path, const Tokenizer& tokenizer, std::int64_t max_tokens, std::int64_t window);
  ~TokenCorpus();

  std::int64_t windows() const { return windows_; }
  std::int64_t window() const { return window_; }
  // Token ids of window w (exactly window() of them).
  void windowTokens(std::int64_t w, std::vector<std::int32_t>* out) const;
  const std::string& description() const { return description_; }
  // Domains of the shard's sources (build-corpus records them), empty when unknown; the domain
  // of window w is that of the document holding its middle token (-1 when unknown).
  const std::vector<std::string>& domains() const { return domains_; }
  std::int32_t windowDomain(std::int64_t w) const;

 private:
  std::int64_t window_ = 0, windows_ = 0;
  std::unique_ptr<SafetensorsFile> shard_;
  const std::int32_t* shard_tokens_ = nullptr;
  std::int64_t shard_size_ = 0;
  std::int32_t vocab_size_ = 0;
  double stride_ = 0;                  // shard: distance between window starts
  std::vector<std::int32_t> text_;     // text sources: the tokens read
  std::vector<std::string> domains_;       // distinct domain names
  std::vector<std::int64_t> doc_offsets_;  // shard: document starts (and the end)
  std::vector<std::int32_t> doc_domain_;   // shard: each document's index into domains_
  std::int64_t windowStart(std::int64_t w) const;
  void readDomains();
  std::string description_;
};

}  // namespace monoscope::core
