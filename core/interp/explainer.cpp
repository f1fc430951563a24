#include "interp/explainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "interp/concept_scorer.h"
#include "util/utf8.h"

namespace monoscope::core {

namespace {

struct Cand {
  std::int32_t id;
  double share, lift, rank;
};

// Candidates of a mass map ranked by share x log lift against the corpus frequency.
std::vector<Cand> rankByLift(const std::unordered_map<std::int32_t, double>& mass, const std::vector<std::int64_t>& counts,
                             std::int64_t total_tokens, double* total_out) {
  double total = 0;
  for (const auto& [id, m] : mass) total += m;
  *total_out = total;
  std::vector<Cand> c;
  if (total <= 0 || total_tokens <= 0) return c;
  for (const auto& [id, m] : mass) {
    const double freq = (id >= 0 && static_cast<std::size_t>(id) < counts.size() ? counts[static_cast<std::size_t>(id)] : 0) + 1.0;
    const double share = m / total;
    const double lift = share / (freq / static_cast<double>(total_tokens));
    c.push_back({id, share, lift, share * std::log(std::max(lift, 1.0 + 1e-9))});
  }
  std::sort(c.begin(), c.end(), [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.id < b.id; });
  return c;
}

// A token as the explanation shows it: in double quotes (a quote inside becomes '), newlines,
// tabs and backslashes written as \n, \t and \\, and a run of more than three spaces as
// <N spaces>; keywordFromQuoted (interp/concept_scorer.h) reads it back.
std::string quoted(const std::string& t) {
  std::string out = "\"";
  for (std::size_t i = 0; i < t.size(); ++i) {
    const char ch = t[i];
    if (ch == ' ') {
      std::size_t j = i;
      while (j < t.size() && t[j] == ' ') ++j;
      if (j - i > 3) {
        out += "<" + std::to_string(j - i) + " spaces>";
        i = j - 1;
        continue;
      }
      out += ' ';
    } else if (ch == '"') {
      out += '\'';
    } else if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (ch == '\r') {
      out += "\\r";
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// `"A", "B"` with the summed share and share-weighted lift of the chosen candidates.
std::string listOf(const std::vector<Cand>& chosen, const std::function<std::string(std::int32_t)>& token_text,
                   double* share, double* lift) {
  std::string out;
  *share = 0;
  double lift_num = 0;
  for (const auto& x : chosen) {
    out += (out.empty() ? "" : ", ") + quoted(token_text(x.id));
    *share += x.share;
    lift_num += x.lift * x.share;
  }
  *lift = *share > 0 ? lift_num / *share : 0.0;
  return out;
}

std::string tokenPart(const std::vector<Cand>& c, const std::function<std::string(std::int32_t)>& token_text) {
  std::vector<Cand> chosen;
  for (const auto& x : c) {
    if (chosen.size() >= 3) break;
    if (x.share >= 0.05 && x.lift > 1.0) chosen.push_back(x);
  }
  if (chosen.empty() && !c.empty()) chosen.push_back(c.front());
  double share = 0, lift = 0;
  const std::string list = listOf(chosen, token_text, &share, &lift);
  char tail[64];
  std::snprintf(tail, sizeof tail, " (%.0f%%, lift %.0fx)", 100.0 * share, lift);
  return "Fires on " + list + tail;
}

std::string searchTokens(std::vector<Cand> c, const std::function<std::string(std::int32_t)>& token_text) {
  std::sort(c.begin(), c.end(), [](const Cand& a, const Cand& b) { return a.share != b.share ? a.share > b.share : a.id < b.id; });
  std::string out;
  for (std::size_t i = 0; i < c.size() && i < 8; ++i) {
    std::string t = token_text(c[i].id);
    const auto b = t.find_first_not_of(" \t\n");
    if (b == std::string::npos) continue;
    out += (out.empty() ? "" : " ") + t.substr(b);
  }
  return out;
}

std::vector<std::string> quotedStrings(const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = s.find('"', pos)) != std::string::npos) {
    const auto end = s.find('"', pos + 1);
    if (end == std::string::npos) break;
    const std::string k = keywordFromQuoted(std::string_view(s).substr(pos + 1, end - pos - 1));
    if (!k.empty()) out.push_back(k);
    pos = end + 1;
  }
  return out;
}

}  // namespace

AutoExplanation explainByTokenLift(const std::unordered_map<std::int32_t, double>& mass,
                                   const std::vector<std::int64_t>& corpus_counts, std::int64_t corpus_total,
                                   const std::function<std::string(std::int32_t)>& token_text) {
  AutoExplanation out;
  double total = 0;
  const auto c = rankByLift(mass, corpus_counts, corpus_total, &total);
  if (c.empty()) return out;
  out.text = tokenPart(c, token_text);
  out.top_tokens = searchTokens(c, token_text);
  return out;
}

std::string tokenTextBefore(const std::string& bytes, const std::unordered_map<std::int32_t, double>& after,
                            const std::function<std::string(std::int32_t)>& bytes_of) {
  std::string named = toValidUtf8(bytes);
  if (findInvalidUtf8(bytes) == std::string::npos) return named;
  double best = 0;
  std::int32_t best_id = -1;
  for (const auto& [next, m] : after) {
    if (m < best || (m == best && next > best_id && best_id >= 0)) continue;  // ties: the smaller id
    const std::string whole = displayPieces({bytes, bytes_of(next)})[0];
    if (whole.find("\xEF\xBF\xBD") != std::string::npos) continue;  // it does not complete it
    best = m, best_id = next, named = whole;
  }
  return named;
}

AutoExplanation explainFeature(const FeatureEvidence& ev, const CorpusProfile& corpus,
                               const std::function<std::string(std::int32_t)>& token_text,
                               const std::function<std::string(std::int32_t)>& activating_text) {
  AutoExplanation out = explainByTokenLift(ev.mass, corpus.token_counts, corpus.total, activating_text ? activating_text : token_text);
  if (out.text.empty()) return out;
  // Context: tokens just before the activation that are far commoner there than in the corpus.
  double before_total = 0;
  const auto ctx = rankByLift(ev.before, corpus.token_counts, corpus.total, &before_total);
  std::vector<Cand> chosen;
  for (const auto& x : ctx) {
    if (chosen.size() >= 2) break;
    if (x.share >= 0.2 && x.lift >= 10.0) chosen.push_back(x);
  }
  if (!chosen.empty()) {
    double share = 0, lift = 0;
    const std::string list = listOf(chosen, token_text, &share, &lift);
    char tail[64];
    std::snprintf(tail, sizeof tail, " (%.0f%%, lift %.0fx)", 100.0 * share, lift);
    out.text += ", after " + list + tail;
  }
  // Domain: most of the examples from one source domain, well above its share of the corpus.
  double dom_total = 0;
  for (double m : ev.domain_mass) dom_total += m;
  if (dom_total > 0 && corpus.domains.size() == ev.domain_mass.size() && corpus.domain_share.size() == ev.domain_mass.size()) {
    std::size_t best = 0;
    for (std::size_t d = 1; d < ev.domain_mass.size(); ++d)
      if (ev.domain_mass[d] > ev.domain_mass[best]) best = d;
    const double share = ev.domain_mass[best] / dom_total;
    const double prior = std::max(1e-9, corpus.domain_share[best]);
    if (share >= 0.5 && share / prior >= 1.5 && !corpus.domains[best].empty()) {
      char tail[32];
      std::snprintf(tail, sizeof tail, " text (%.0f%%)", 100.0 * share);
      out.text += ", in " + corpus.domains[best] + tail;
    }
  }
  // Promoted tokens that the examples bear out: among the tokens that follow the activation, each
  // with at least 5% of the activation mass.
  double after_total = 0;
  for (const auto& [id, m] : ev.after) after_total += m;
  std::vector<std::string> followed;
  if (after_total > 0) {
    for (const auto& [id, m] : ev.after)
      if (m / after_total >= 0.05) followed.push_back(token_text(id));
  }
  std::string list;
  int listed = 0;
  for (const auto& p : ev.promotes) {
    if (listed >= 3) break;
    if (std::find(followed.begin(), followed.end(), p) == followed.end()) continue;
    list += (list.empty() ? "" : ", ") + quoted(p);
    ++listed;
  }
  if (!list.empty()) out.text += "; promotes " + list;
  return out;
}

std::size_t explanationWarningsEnd(const std::string& text) {
  std::size_t at = 0;
  for (;;) {
    const bool warning = text.compare(at, 6, "Rare (") == 0 || text.compare(at, 14, "Window start (") == 0;
    const auto end = warning ? text.find("): ", at) : std::string::npos;
    if (end == std::string::npos) return at;
    at = end + 3;
  }
}

ExplanationParts explanationParts(const std::string& text) {
  ExplanationParts p;
  // "Rare (N activations): Fires on ..." is the automatic shape with warnings in front.
  const std::size_t start = explanationWarningsEnd(text);
  const std::string explanation = text.substr(start);
  if (explanation.rfind("Fires on ", 0) != 0) {  // a person's or an LLM's words
    p.tokens = explanationKeywords(explanation);
    return p;
  }
  std::string main = explanation.substr(0, explanation.find("; promotes "));
  const auto in = main.rfind(", in ");
  if (in != std::string::npos) {
    const auto text = main.find(" text", in);
    if (text != std::string::npos) p.domain = main.substr(in + 5, text - in - 5);
    main.resize(in);
  }
  const auto after = main.find(", after ");
  if (after != std::string::npos) {
    p.context = quotedStrings(main.substr(after));
    main.resize(after);
  }
  p.tokens = quotedStrings(main);
  return p;
}

}  // namespace monoscope::core
