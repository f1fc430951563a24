#include "interp/concept_scorer.h"

#include <algorithm>
#include <set>

namespace monoscope::core {

namespace {

std::string normalise(const std::string& s) {
  std::string out;
  for (unsigned char c : s) out += static_cast<char>(c < 0x80 ? std::tolower(c) : c);
  const auto b = out.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return {};
  const auto e = out.find_last_not_of(" \t\n\r");
  return out.substr(b, e - b + 1);
}

const std::set<std::string> kStopWords = {"the", "and", "for", "with", "that", "this", "from", "fires", "on", "token",
                                          "tokens", "word", "words", "text", "about", "into", "its", "are", "was", "when"};

// Concatenated lower-case text of tokens [b, e) and the character span of token `c` in it.
std::string joined(const std::vector<std::string>& tokens, int b, int e, int c, std::size_t* cs, std::size_t* ce) {
  std::string out;
  for (int i = b; i < e; ++i) {
    std::string t;
    for (unsigned char ch : tokens[static_cast<std::size_t>(i)]) t += static_cast<char>(ch < 0x80 ? std::tolower(ch) : ch);
    if (i == c) *cs = out.size();
    out += t;
    if (i == c) *ce = out.size();
  }
  return out;
}

bool occursOverlapping(const std::string& text, const std::string& kw, std::size_t cs, std::size_t ce) {
  for (std::size_t pos = text.find(kw); pos != std::string::npos; pos = text.find(kw, pos + 1))
    if (pos < ce && pos + kw.size() > cs) return true;
  return false;
}

}  // namespace

std::vector<std::string> explanationKeywords(const std::string& explanation) {
  std::vector<std::string> out;
  for (char q : {'"', '\''}) {
    std::size_t pos = 0;
    while ((pos = explanation.find(q, pos)) != std::string::npos) {
      const auto end = explanation.find(q, pos + 1);
      if (end == std::string::npos) break;
      const std::string k = normalise(explanation.substr(pos + 1, end - pos - 1));
      if (!k.empty()) out.push_back(k);
      pos = end + 1;
    }
    if (!out.empty()) return out;
  }
  std::string word;
  auto flush = [&] {
    const std::string w = normalise(word);
    if (w.size() >= 3 && !kStopWords.count(w)) out.push_back(w);
    word.clear();
  };
  for (unsigned char c : explanation) {
    if (std::isalnum(c) || c >= 0x80) {
      word += static_cast<char>(c);
    } else {
      flush();
    }
  }
  flush();
  return out;
}

int conceptScore(const std::vector<std::string>& tokens, int center, const std::vector<std::string>& keywords, int near) {
  const int n = static_cast<int>(tokens.size());
  if (keywords.empty() || n == 0 || center < 0 || center >= n) return 0;
  const std::string ctr = normalise(tokens[static_cast<std::size_t>(center)]);
  std::size_t cs = 0, ce = 0;
  const std::string local = joined(tokens, std::max(0, center - near), std::min(n, center + near + 1), center, &cs, &ce);
  std::size_t as = 0, ae = 0;
  const std::string all = joined(tokens, 0, n, center, &as, &ae);
  int best = 0;
  for (const auto& kw : keywords) {
    if (!ctr.empty() && (ctr == kw || (kw.size() >= 3 && ctr.find(kw) != std::string::npos) || occursOverlapping(local, kw, cs, ce))) return 3;
    if (local.find(kw) != std::string::npos) best = std::max(best, 2);
    if (all.find(kw) != std::string::npos) best = std::max(best, 1);
  }
  return best;
}

}  // namespace monoscope::core
