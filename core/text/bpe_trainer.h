#pragma once
// Byte-level BPE training with GPT-2 pre-tokenisation: count pre-token words, then repeatedly
// merge the most frequent adjacent pair (incremental pair counts, lazy max-heap).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "api/progress.h"
#include "text/tokenizer.h"

namespace monoscope::core {

struct BpeTrainOptions {
  std::int64_t vocab_size = 8192;   // bytes + merges + special tokens
  std::int64_t min_frequency = 2;   // pairs seen fewer times are never merged
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
};

class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainOptions options);
  // Adds text (valid UTF-8) to the word counts.
  void addText(std::string_view text);
  // Learns the merges, reporting {"merges", done, wanted}; empty when cancelled.
  std::optional<Tokenizer> train(const ProgressFn& progress = {});
  std::size_t distinctWords() const { return words_.size(); }

 private:
  BpeTrainOptions options_;
  std::unordered_map<std::string, std::int64_t> words_;
};

}  // namespace monoscope::core
