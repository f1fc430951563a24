// The explain job (api/scoring.h): an LLM reads a feature's examples and names what they share.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "api/scoring.h"
#include "interp/llm_client.h"
#include "util/cancel.h"
#include "util/error.h"
#include "util/utf8.h"

namespace monoscope::core {

namespace {

// Tokens as text with whitespace made visible, the activating one marked <<like this>>.
std::string render(const Example& e) {
  const int marked = shownPiece(e.tokens, e.center);
  std::string out;
  for (std::size_t i = 0; i < e.tokens.size(); ++i) {
    std::string t;
    for (char c : e.tokens[i]) {
      if (c == '\n') t += "\\n";
      else if (c == '\t') t += "\\t";
      else if (c == '\r') continue;
      else t += c;
    }
    out += static_cast<int>(i) == marked ? "<<" + t + ">>" : t;
  }
  return out;
}

std::string relative(float act, float max_act) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f", max_act > 0 ? std::clamp(act / max_act, 0.0f, 1.0f) : 0.0f);
  return buf;
}

std::string tokenList(const std::vector<std::pair<std::string, float>>& logits, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < logits.size() && i < n; ++i) {
    std::string t = logits[i].first;
    std::replace(t.begin(), t.end(), '\n', ' ');
    out += (i ? ", \"" : "\"") + t + "\"";
  }
  return out;
}

}  // namespace

const std::string& explainerInstructions() {
  static const std::string text =
      "You explain one feature of a sparse autoencoder trained on a language model's internal activations. "
      "You see text excerpts where the feature is active. In each excerpt the token where it is active is marked "
      "<<like this>>, and the number before the excerpt is its activation relative to the feature's strongest (1.00). "
      "Whitespace is shown as \\n and \\t. The strongest excerpts come first, then samples from weaker activations.\n"
      "Write one short phrase, at most 15 words, saying what the feature responds to: the concept or kind of token "
      "at the marked position, and the context or kind of text when it matters. Describe what the strongest "
      "excerpts share; say so when weak ones differ only if it fits the phrase. Answer with the phrase only.";
  return text;
}

std::string explainerPrompt(const FeaturePage& page, const ExplainOptions& o) {
  const float max_act = page.summary.max_act;
  std::string out = "Strongest activations:\n";
  int n = 0;
  for (const auto& e : page.top_examples) {
    if (n >= o.top_examples) break;
    out += std::to_string(++n) + ". (" + relative(e.max_act, max_act) + ") " + render(e) + "\n";
  }
  std::string weaker;
  for (auto it = page.intervals.rbegin(); it != page.intervals.rend(); ++it) {
    int k = 0;
    for (const auto& e : it->examples) {
      if (k++ >= o.interval_examples) break;
      weaker += std::to_string(++n) + ". (" + relative(e.max_act, max_act) + ") " + render(e) + "\n";
    }
  }
  if (!weaker.empty()) out += "Samples from weaker activations:\n" + weaker;
  if (!page.logits_top.empty())
    out += "Output tokens it makes likelier (often noise in middle layers): " + tokenList(page.logits_top, 8) + "\n";
  out += "What does the feature respond to?";
  return toValidUtf8(out);
}

std::string cleanExplanation(const std::string& answer) {
  std::string s = toValidUtf8(answer);
  // The first non-empty line.
  std::size_t b = 0;
  std::string line;
  while (b < s.size()) {
    std::size_t e = s.find('\n', b);
    if (e == std::string::npos) e = s.size();
    line = s.substr(b, e - b);
    const auto first = line.find_first_not_of(" \t\r");
    if (first != std::string::npos) {
      line = line.substr(first);
      break;
    }
    line.clear();
    b = e + 1;
  }
  const auto trim = [](std::string& t) {
    while (!t.empty() && std::string(" \t\r").find(t.back()) != std::string::npos) t.pop_back();
    while (!t.empty() && std::string(" \t").find(t.front()) != std::string::npos) t.erase(t.begin());
  };
  trim(line);
  // A label the model put in front ("Explanation:", "Feature:", "Answer:", markdown emphasis).
  for (const char* label : {"explanation:", "feature:", "answer:", "phrase:"}) {
    std::string lower = line.substr(0, std::string(label).size());
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower == label) line = line.substr(lower.size());
  }
  trim(line);
  // Quotes or emphasis around the phrase, and a full stop after it (inside or outside them).
  for (bool changed = true; changed;) {
    changed = false;
    if (line.size() > 1 && line.back() == '.' && line[line.size() - 2] != '.') {
      line.pop_back();
      changed = true;
    }
    if (line.size() >= 2 && ((line.front() == '"' && line.back() == '"') || (line.front() == '*' && line.back() == '*') ||
                             (line.front() == '\'' && line.back() == '\''))) {
      line = line.substr(1, line.size() - 2);
      changed = true;
    }
    trim(line);
  }
  if (line.size() > 300) {
    std::size_t cut = line.rfind(' ', 297);
    if (cut == std::string::npos || cut < 150) cut = 297;
    line = toValidUtf8(line.substr(0, cut)) + "...";
  }
  std::string printable;
  for (unsigned char c : line) printable += c < 0x20 ? ' ' : static_cast<char>(c);
  trim(printable);
  return printable;
}

JobStatus explainFeatures(const std::string& db_path, const ExplainOptions& o, const ProgressFn& progress,
                          ExplainSummary* summary) {
  if (o.llm.base_url.empty() || o.llm.model.empty())
    throw Error("the explain job needs an endpoint base URL and a model name", "e.g. --endpoint http://127.0.0.1:8080/v1 --llm-model NAME");
  if (o.top_examples < 1 || o.top_examples > 100 || o.interval_examples < 0 || o.interval_examples > 20)
    throw Error("explain: top examples must be 1-100 and interval examples 0-20");
  auto db = FeatureDb::open(db_path, FeatureDb::Mode::ReadWrite);
  std::vector<std::int64_t> ids = o.features;
  if (ids.empty()) {
    FeatureQuery q;
    q.filter = FeatureFilter::Alive;
    q.sort = FeatureSort::Density;
    q.descending = true;
    ids = db->featureIds(q);
  }
  ExplainSummary sum;
  sum.author = "llm:" + o.llm.model + "/" + kExplainerVersion;
  std::int64_t failed_in_a_row = 0;
  try {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      report(progress, "explain", static_cast<std::int64_t>(i), static_cast<std::int64_t>(ids.size()),
             "feature " + std::to_string(ids[i]));
      ++sum.features;
      const auto history = db->explanationHistory(ids[i]);
      if (!o.redo && !history.empty() && history.back().author == sum.author) {
        ++sum.skipped;
        continue;
      }
      const FeaturePage page = db->page(ids[i]);
      if (page.top_examples.empty()) {
        ++sum.skipped;  // a dead feature has nothing to read
        continue;
      }
      const std::string text =
          cleanExplanation(chatCompletion(o.llm, explainerInstructions(), explainerPrompt(page, o), 80));
      if (text.empty()) {
        ++sum.failed;
        // An endpoint that never answers usably stops the job instead of burning through it.
        if (++failed_in_a_row == 5 && sum.explained == 0)
          throw Error("the LLM endpoint gave no usable explanation for 5 features in a row",
                      "check that the model follows instructions; nothing was stored for them");
        continue;
      }
      failed_in_a_row = 0;
      db->setExplanation(ids[i], text, sum.author);
      ++sum.explained;
    }
    report(progress, "explain", static_cast<std::int64_t>(ids.size()), static_cast<std::int64_t>(ids.size()));
  } catch (const Cancelled&) {
    if (summary) *summary = sum;
    return JobStatus::Cancelled;
  }
  if (summary) *summary = sum;
  return JobStatus::Done;
}

}  // namespace monoscope::core
