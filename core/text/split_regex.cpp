#include "text/split_regex.h"

#include <unicode/uregex.h>
#include <unicode/utext.h>

#include "util/error.h"

namespace monoscope::core {

Regex::Regex(const std::string& pattern, const std::string& where) {
  UErrorCode status = U_ZERO_ERROR;
  UParseError pe{};
  const std::string icu = icuPattern(pattern);
  UText* ut = utext_openUTF8(nullptr, icu.data(), static_cast<std::int64_t>(icu.size()), &status);
  re_ = uregex_openUText(ut, 0, &pe, &status);
  utext_close(ut);
  if (U_FAILURE(status)) {
    throw Error(where + ": the Split regex '" + pattern + "' does not compile (" + u_errorName(status) + " at offset " +
                    std::to_string(pe.offset) + ")",
                "fix the pattern");
  }
}

Regex::~Regex() {
  if (re_) uregex_close(re_);
}

void Regex::matches(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>* out) const {
  UErrorCode status = U_ZERO_ERROR;
  URegularExpression* re;
  {
    std::lock_guard<std::mutex> lock(mutex_);  // a compiled expression is cloned per use: its matcher is not shareable
    re = uregex_clone(re_, &status);
  }
  UText* ut = utext_openUTF8(nullptr, text.data(), static_cast<std::int64_t>(text.size()), &status);
  uregex_setUText(re, ut, &status);
  while (U_SUCCESS(status) && uregex_findNext(re, &status)) {
    const auto b = static_cast<std::size_t>(uregex_start64(re, 0, &status));
    const auto e = static_cast<std::size_t>(uregex_end64(re, 0, &status));
    if (e > b) out->emplace_back(b, e);
  }
  uregex_close(re);
  utext_close(ut);
  if (U_FAILURE(status)) throw Error(std::string("the tokenizer's Split regex failed on the text (") + u_errorName(status) + ")");
}

std::string icuPattern(const std::string& p) {
  std::string out;
  bool in_class = false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      if (n == 's') out += in_class ? "\\p{White_Space}" : "[\\p{White_Space}]";
      else if (n == 'S') out += in_class ? "\\P{White_Space}" : "[\\P{White_Space}]";
      else out.append(p, i, 2);
      ++i;
      continue;
    }
    if (c == '[' && !in_class) in_class = true;
    else if (c == ']' && in_class) in_class = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace monoscope::core
