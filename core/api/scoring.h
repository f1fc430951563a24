#pragma once
// Specificity scoring of a feature database's examples on the 0-3 rubric, by a named scorer:
// `concept` (rule-based keyword matcher) or `llm` (an OpenAI-compatible chat-completions
// endpoint). Every score is stored with its scorer's name. Also the `explain` job: an LLM
// reads each feature's examples and writes an explanation, stored as a new version under the
// explainer's name.
#include <cstdint>
#include <string>
#include <vector>

#include "api/feature_db.h"
#include "api/progress.h"

namespace monoscope::core {

struct LlmEndpoint {
  std::string base_url;           // e.g. http://127.0.0.1:8080/v1 (".../chat/completions" is appended)
  std::string model;              // the model name the server expects
  std::string api_key;            // sent as a bearer token; never logged or stored
  double timeout_seconds = 60.0;  // per request
  std::size_t max_response_bytes = 1 << 20;
};

struct ScoreOptions {
  std::string scorer = "concept";      // concept | llm
  std::vector<std::int64_t> features;  // empty: every alive feature
  LlmEndpoint llm;
};

struct ScoreSummary {
  std::int64_t features = 0, examples = 0, failed = 0;  // failed: answers without a usable score
  std::vector<std::int64_t> histogram = std::vector<std::int64_t>(4, 0);  // examples per score 0-3
  std::string scorer;  // the name stored with the scores
};

// The rubric the scorers apply (also the LLM judge's instructions).
const std::string& specificityRubric();

// Scores the examples of the chosen features and stores the scores in `db_path`.
JobStatus scoreFeatures(const std::string& db_path, const ScoreOptions& options, const ProgressFn& progress,
                        ScoreSummary* summary);

// One LLM judgement of an example against an explanation: 0-3. Throws Error naming the
// endpoint for a timeout, a refused connection, an HTTP error or an answer without a score.
int llmScore(const LlmEndpoint& endpoint, const std::string& explanation, const Example& example);

// The explain job. Each feature's top examples, a sample of every activation interval and its
// logit effects go to the endpoint in one request; the answer, cleaned to one line, becomes a
// new version of the feature's explanation with author "llm:<model>/<kExplainerVersion>". The
// automatic explanation and a person's stay in the history. A feature whose current explanation
// already has that author is skipped unless `redo`, so a stopped job resumes where it stopped.
inline constexpr const char* kExplainerVersion = "explain-v1";

struct ExplainOptions {
  std::vector<std::int64_t> features;  // empty: every alive feature, densest first
  LlmEndpoint llm;
  bool redo = false;
  int top_examples = 10;       // strongest examples shown
  int interval_examples = 2;   // examples shown from each activation interval
};

struct ExplainSummary {
  std::int64_t features = 0, explained = 0, skipped = 0, failed = 0;  // failed: unusable answers
  std::string author;
};

// The explainer's instructions (system message) and one feature's request (user message).
const std::string& explainerInstructions();
std::string explainerPrompt(const FeaturePage& page, const ExplainOptions& options);
// One line of plain text from an answer ("Explanation: "the word 'king'"." -> the word 'king'),
// at most 300 bytes; "" when nothing usable is left.
std::string cleanExplanation(const std::string& answer);

JobStatus explainFeatures(const std::string& db_path, const ExplainOptions& options, const ProgressFn& progress,
                          ExplainSummary* summary);

}  // namespace monoscope::core
