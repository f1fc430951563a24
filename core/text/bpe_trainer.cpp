#include "text/bpe_trainer.h"

#include <queue>
#include <unordered_set>

#include "text/pretokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace monoscope::core {

namespace {
std::uint64_t key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
}
}  // namespace

BpeTrainer::BpeTrainer(BpeTrainOptions options) : options_(std::move(options)) {
  const auto minimum = 256 + static_cast<std::int64_t>(options_.special_tokens.size());
  if (options_.vocab_size < minimum) {
    throw Error("vocabulary size " + std::to_string(options_.vocab_size) + " is too small for the 256 byte tokens" +
                    (options_.special_tokens.empty() ? "" : " and the special tokens"),
                "use vocab_size of at least " + std::to_string(minimum));
  }
  if (options_.vocab_size > 1'000'000) throw Error("vocab_size above 1,000,000 is absurd");
  if (options_.min_frequency < 1) throw Error("min_frequency must be at least 1");
}

void BpeTrainer::addText(std::string_view text) {
  requireUtf8(text, "tokenizer training text");
  std::vector<Span> spans;
  pretokenizeGpt2(text, &spans);
  for (const auto& s : spans) ++words_[std::string(text.substr(s.begin, s.end - s.begin))];
}

std::optional<Tokenizer> BpeTrainer::train(const ProgressFn& progress) {
  if (words_.empty()) throw Error("no text to train the tokenizer on", "give a non-empty corpus");
  struct Word {
    std::vector<std::int32_t> syms;
    std::int64_t count;
  };
  std::vector<Word> words;
  words.reserve(words_.size());
  for (const auto& [w, c] : words_) {
    Word word{{}, c};
    for (unsigned char b : w) word.syms.push_back(b);
    words.push_back(std::move(word));
  }
  std::vector<std::string> bytes_of(256);
  for (int b = 0; b < 256; ++b) bytes_of[b] = std::string(1, static_cast<char>(b));

  std::unordered_map<std::uint64_t, std::int64_t> counts;
  std::unordered_map<std::uint64_t, std::unordered_set<std::int32_t>> where;
  for (std::int32_t wi = 0; wi < static_cast<std::int32_t>(words.size()); ++wi) {
    const auto& s = words[wi].syms;
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      counts[key(s[i], s[i + 1])] += words[wi].count;
      where[key(s[i], s[i + 1])].insert(wi);
    }
  }
  // Max-heap on (count, then the pair's bytes ascending) with lazy invalidation.
  struct Entry {
    std::int64_t count;
    std::uint64_t pair;
  };
  auto less = [&](const Entry& x, const Entry& y) {
    if (x.count != y.count) return x.count < y.count;
    const auto xa = bytes_of[x.pair >> 32] + '\0' + bytes_of[x.pair & 0xFFFFFFFFu];
    const auto ya = bytes_of[y.pair >> 32] + '\0' + bytes_of[y.pair & 0xFFFFFFFFu];
    return xa > ya;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(less)> heap(less);
  for (const auto& [p, c] : counts) heap.push({c, p});

  const std::int64_t wanted = options_.vocab_size - 256 - static_cast<std::int64_t>(options_.special_tokens.size());
  std::vector<std::pair<std::string, std::string>> merges;
  std::unordered_set<std::string> made;
  if (progress && !progress(Progress{"merges", 0, wanted, {}})) return std::nullopt;
  while (static_cast<std::int64_t>(merges.size()) < wanted && !heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    auto cit = counts.find(top.pair);
    if (cit == counts.end() || cit->second != top.count) continue;  // stale
    if (top.count < options_.min_frequency) break;
    const auto a = static_cast<std::int32_t>(top.pair >> 32);
    const auto b = static_cast<std::int32_t>(top.pair & 0xFFFFFFFFu);
    const std::string merged = bytes_of[a] + bytes_of[b];
    if (!made.insert(merged).second) {  // the same byte string reached by another split
      counts.erase(cit);
      continue;
    }
    const auto n = static_cast<std::int32_t>(bytes_of.size());
    bytes_of.push_back(merged);
    merges.emplace_back(bytes_of[a], bytes_of[b]);
    std::unordered_map<std::uint64_t, std::int64_t> delta;
    const auto affected = where[top.pair];
    for (std::int32_t wi : affected) {
      auto& s = words[wi].syms;
      const std::int64_t c = words[wi].count;
      std::vector<std::int32_t> out;
      out.reserve(s.size());
      for (std::size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          if (!out.empty()) {
            delta[key(out.back(), a)] -= c;
            delta[key(out.back(), n)] += c;
          }
          if (i + 2 < s.size()) {
            delta[key(b, s[i + 2])] -= c;
            delta[key(n, s[i + 2])] += c;
          }
          delta[key(a, b)] -= c;
          out.push_back(n);
          ++i;
        } else {
          out.push_back(s[i]);
        }
      }
      s.swap(out);
      for (std::size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] == n || s[i + 1] == n) where[key(s[i], s[i + 1])].insert(wi);
    }
    where.erase(top.pair);
    for (const auto& [p, d] : delta) {
      if (d == 0) continue;
      std::int64_t& c = counts[p];
      c += d;
      if (c <= 0) {
        counts.erase(p);
      } else {
        heap.push({c, p});
      }
    }
    if (progress && merges.size() % 256 == 0 && !progress(Progress{"merges", static_cast<std::int64_t>(merges.size()), wanted, {}})) {
      return std::nullopt;
    }
  }
  return Tokenizer::fromMerges(merges, options_.special_tokens);
}

}  // namespace monoscope::core
