#include "interp/concept_scorer.h"

#include "interp/explainer.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <string_view>

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
                                          "tokens", "word", "words", "text", "about", "into", "its", "are", "was", "when",
                                          "after", "promotes", "lift"};

bool occursOverlapping(std::string_view text, const std::string& kw, std::size_t cs, std::size_t ce) {
  for (std::size_t pos = text.find(kw); pos != std::string::npos; pos = text.find(kw, pos + 1))
    if (pos < ce && pos + kw.size() > cs) return true;
  return false;
}

std::string_view trimmed(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\n\r");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\n\r") - b + 1);
}

bool blank(std::string_view s) { return !s.empty() && s.find_first_not_of(" \t\n\r") == std::string_view::npos; }

// Whether a whitespace token among tokens [lo, hi) of the context matches the blank keyword.
bool blankTokenIn(const LoweredContext& ctx, int lo, int hi, const std::string& kw) {
  const int n = static_cast<int>(ctx.starts.size());
  const std::string_view all(ctx.text);
  for (int i = std::max(0, lo); i < std::min(n, hi); ++i) {
    const std::size_t b = ctx.starts[static_cast<std::size_t>(i)];
    const std::size_t e = i + 1 < n ? ctx.starts[static_cast<std::size_t>(i) + 1] : ctx.text.size();
    const std::string_view t = all.substr(b, e - b);
    // A keyword with a line break matches the whitespace tokens that contain it (a newline
    // feature's "\n" covers "\n\n" and "\n  "); one of spaces and tabs only the same token.
    if (blank(t) && (kw.find('\n') != std::string::npos ? t.find(kw) != std::string_view::npos : t == kw)) return true;
  }
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
      const std::string k = keywordFromQuoted(std::string_view(explanation).substr(pos + 1, end - pos - 1));
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

std::string keywordFromQuoted(std::string_view shown) {
  std::string out;
  for (std::size_t i = 0; i < shown.size(); ++i) {
    const char c = shown[i];
    if (c == '\\' && i + 1 < shown.size()) {
      const char e = shown[i + 1];
      const char r = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == '\\' ? '\\' : '\0';
      if (r != '\0') {
        out += r;
        ++i;
        continue;
      }
    }
    if (c == '<') {  // "<N spaces>", N from 4 to 4096
      std::size_t j = i + 1, n = 0;
      while (j < shown.size() && j - i <= 4 && std::isdigit(static_cast<unsigned char>(shown[j]))) n = n * 10 + static_cast<std::size_t>(shown[j++] - '0');
      if (j > i + 1 && n >= 4 && n <= 4096 && shown.compare(j, 8, " spaces>") == 0) {
        out.append(n, ' ');
        i = j + 7;
        continue;
      }
    }
    out += static_cast<char>(static_cast<unsigned char>(c) < 0x80 ? std::tolower(static_cast<unsigned char>(c)) : c);
  }
  if (blank(out)) return out;
  return std::string(trimmed(out));
}

void appendLowerAscii(std::string& out, std::string_view s) {
  for (unsigned char c : s) out += static_cast<char>(c < 0x80 ? std::tolower(c) : c);
}

void LoweredContext::assign(const std::vector<std::string>& tokens) {
  clear();
  for (const auto& t : tokens) {
    starts.push_back(text.size());
    appendLowerAscii(text, t);
  }
}

int conceptScore(const LoweredContext& ctx, int center, const std::vector<std::string>& keywords, int near) {
  const int n = static_cast<int>(ctx.starts.size());
  if (keywords.empty() || n == 0 || center < 0 || center >= n) return 0;
  const std::string_view all(ctx.text);
  auto at = [&](int i) { return i < n ? ctx.starts[static_cast<std::size_t>(i)] : ctx.text.size(); };
  // A token holding only the later bytes of a character shows nothing (displayPieces): it reads
  // as the piece that shows the character.
  while (center > 0 && at(center) == at(center + 1)) --center;
  const std::string_view ctr = trimmed(all.substr(at(center), at(center + 1) - at(center)));
  const std::size_t lb = at(std::max(0, center - near)), le = at(std::min(n, center + near + 1));
  const std::string_view local = all.substr(lb, le - lb);
  const std::size_t cs = at(center) - lb, ce = at(center + 1) - lb;
  int best = 0;
  for (const auto& kw : keywords) {
    if (blank(kw)) {
      if (blankTokenIn(ctx, center, center + 1, kw)) return 3;
      if (blankTokenIn(ctx, center - near, center + near + 1, kw)) best = std::max(best, 2);
      if (blankTokenIn(ctx, 0, n, kw)) best = std::max(best, 1);
      continue;
    }
    if (!ctr.empty() && (ctr == kw || (kw.size() >= 3 && ctr.find(kw) != std::string_view::npos) || occursOverlapping(local, kw, cs, ce))) return 3;
    if (local.find(kw) != std::string_view::npos) best = std::max(best, 2);
    if (all.find(kw) != std::string_view::npos) best = std::max(best, 1);
  }
  return best;
}

int conceptScore(const LoweredContext& ctx, int center, const ExplanationParts& parts, const std::string& example_domain,
                 int near) {
  int best = conceptScore(ctx, center, parts.tokens, near);
  const int n = static_cast<int>(ctx.starts.size());
  if (best == 3 || n == 0 || center < 0 || center >= n) return best;
  auto at = [&](int i) { return i < n ? ctx.starts[static_cast<std::size_t>(i)] : ctx.text.size(); };
  const std::string_view all(ctx.text);
  const std::string_view before = all.substr(at(std::max(0, center - near)), at(center) - at(std::max(0, center - near)));
  bool context_anywhere = false;
  for (const auto& kw : parts.context) {
    if (blank(kw)) {
      if (blankTokenIn(ctx, center - near, center, kw)) best = std::max(best, 2);
      context_anywhere = context_anywhere || blankTokenIn(ctx, 0, n, kw);
      continue;
    }
    if (before.find(kw) != std::string_view::npos) best = std::max(best, 2);
    context_anywhere = context_anywhere || all.find(kw) != std::string_view::npos;
  }
  if (!parts.domain.empty() && parts.domain == example_domain) best = std::max(best, context_anywhere ? 2 : 1);
  return best;
}

int conceptScore(const std::vector<std::string>& tokens, int center, const std::vector<std::string>& keywords, int near) {
  LoweredContext ctx;
  ctx.assign(tokens);
  return conceptScore(ctx, center, keywords, near);
}

}  // namespace monoscope::core
