#pragma once
// The regex of a tokenizer.json Split step, on ICU's engine over UTF-8 text (UText), so match
// positions are byte offsets. Patterns are written for Oniguruma (what tokenizers uses); the one
// difference that matters here, \s, is rewritten (icuPattern). No LibTorch here.
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct URegularExpression;

namespace monoscope::core {

class Regex {
 public:
  // Compiles `pattern`; a pattern that does not compile is refused naming `where`.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-empty matches in `text`, as byte ranges.
  void matches(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>* out) const;

 private:
  URegularExpression* re_ = nullptr;
  mutable std::mutex mutex_;
};

// Oniguruma-compatible rewrite of a tokenizer regex for ICU: \s and \S become the White_Space
// property (Oniguruma's \s with Unicode), everything else is passed through. Exposed for tests.
std::string icuPattern(const std::string& pattern);

}  // namespace monoscope::core
