// Scoring a database's examples: the concept matcher and the LLM judge (api/scoring.h).
#include <algorithm>

#include "api/scoring.h"
#include "interp/concept_scorer.h"
#include "interp/explainer.h"
#include "interp/llm_client.h"
#include "util/cancel.h"
#include "util/error.h"
#include "util/utf8.h"

namespace monoscope::core {

const std::string& specificityRubric() {
  static const std::string rubric =
      "You rate how specifically a text example matches a feature's explanation, on a scale 0-3. "
      "The example's activating token is marked <<like this>>.\n"
      "0: the explanation's concept is irrelevant throughout the context.\n"
      "1: the concept is related to the context but not near the marked token, or only vaguely.\n"
      "2: the concept is loosely related to the marked token, or related to the context near it.\n"
      "3: the concept cleanly identifies the marked token.\n"
      "Answer with the digit only.";
  return rubric;
}

int llmScore(const LlmEndpoint& ep, const std::string& explanation, const Example& e) {
  std::string text;
  const int marked = shownPiece(e.tokens, e.center);  // (a split character's later bytes show on its first token)
  for (std::size_t i = 0; i < e.tokens.size(); ++i)
    text += static_cast<int>(i) == marked ? "<<" + e.tokens[i] + ">>" : e.tokens[i];
  const std::string answer = chatCompletion(ep, specificityRubric(), "Explanation: " + explanation + "\nExample: " + text + "\nScore (0-3):");
  const int s = parseScore(answer);
  if (s < 0) {
    std::string shown;
    for (unsigned char c : answer.substr(0, 60)) shown += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    throw Error("the LLM answered '" + shown + "' without a 0-3 score");
  }
  return s;
}

JobStatus scoreFeatures(const std::string& db_path, const ScoreOptions& o, const ProgressFn& progress, ScoreSummary* summary) {
  if (o.scorer != "concept" && o.scorer != "llm") throw Error("unknown scorer '" + o.scorer + "'", "use concept or llm");
  if (o.scorer == "llm" && (o.llm.base_url.empty() || o.llm.model.empty()))
    throw Error("the llm scorer needs an endpoint base URL and a model name");
  auto db = FeatureDb::open(db_path, FeatureDb::Mode::ReadWrite);
  std::vector<std::int64_t> ids = o.features;
  if (ids.empty()) {
    FeatureQuery q;
    q.filter = FeatureFilter::Alive;
    q.limit = db->info().d_sae;
    for (const auto& s : db->listFeatures(q)) ids.push_back(s.id);
  }
  ScoreSummary sum;
  sum.scorer = o.scorer == "concept" ? "concept" : "llm:" + o.llm.model;
  try {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const auto summary_row = db->summary(ids[i]);
      const auto examples = db->examplesForScoring(ids[i]);
      std::vector<std::pair<std::int64_t, int>> scores;
      const ExplanationParts parts = explanationParts(summary_row.explanation);
      std::int64_t failed_here = 0;
      for (const auto& e : examples) {
        int s = -1;
        if (o.scorer == "concept") {
          LoweredContext ctx;
          ctx.assign(e.tokens);
          s = conceptScore(ctx, e.center, parts, e.domain);
        } else {
          try {
            // The judge reads the explanation proper, without the indexer's warnings.
            s = llmScore(o.llm, summary_row.explanation.substr(explanationWarningsEnd(summary_row.explanation)), e);
          } catch (const Error& err) {
            // A nonsense answer is skipped; a dead or slow endpoint stops the job.
            if (std::string(err.what()).rfind("the LLM answered", 0) != 0) throw;
            ++failed_here;
          }
          report(progress, "score", static_cast<std::int64_t>(i), static_cast<std::int64_t>(ids.size()),
                 "feature " + std::to_string(ids[i]));
        }
        if (s >= 0) {
          scores.emplace_back(e.id, s);
          ++sum.histogram[static_cast<std::size_t>(s)];
        }
      }
      if (!examples.empty() && failed_here == static_cast<std::int64_t>(examples.size()))
        throw Error("the LLM endpoint answered without a 0-3 score for every example of feature " + std::to_string(ids[i]),
                    "check that the model follows instructions; nothing was stored for this feature");
      sum.failed += failed_here;
      sum.examples += static_cast<std::int64_t>(scores.size());
      db->setScores(scores, sum.scorer);
      ++sum.features;
      report(progress, "score", static_cast<std::int64_t>(i + 1), static_cast<std::int64_t>(ids.size()));
    }
  } catch (const Cancelled&) {
    if (summary) *summary = sum;
    return JobStatus::Cancelled;
  }
  if (summary) *summary = sum;
  return JobStatus::Done;
}

}  // namespace monoscope::core
