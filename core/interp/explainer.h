#pragma once
// The automatic first explanation of a feature: what distinguishes its examples from the corpus.
// Four parts, each kept only when its evidence is strong: the tokens the activation mass falls
// on, the tokens just before them (positions -1 and -2), the domain its examples come from, and
// the tokens it promotes (top logit effects that do follow its activations in the examples: at
// middle layers most decoder directions' top logit effects are noise). Each part is ranked by share times log lift
// against the corpus. The text has a fixed shape that explanationParts() reads back:
//   Fires on "A", "B" (62%, lift 310x), after "x" (45%, lift 40x), in scripture text (88%); promotes "p", "q"
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace monoscope::core {

struct AutoExplanation {
  std::string text;        // as above
  std::string top_tokens;  // the activating tokens, space separated (for search)
};

// What a feature's examples (top and interval samples) show, weighted by activation.
struct FeatureEvidence {
  std::unordered_map<std::int32_t, double> mass;    // activating token id -> activation summed
  std::unordered_map<std::int32_t, double> before;  // token at -1 or -2 -> activation summed
  std::vector<double> domain_mass;                  // per corpus domain (may be empty)
  std::unordered_map<std::int32_t, double> after;   // token at +1 -> activation summed
  std::vector<std::string> promotes;                // strongest logit effects, token texts (best first)
  double total = 0;         // activation summed over the examples
  double window_start = 0;  // the part of it at a window's first two positions
};

// Warnings the indexer puts in front of an automatic explanation ("Rare (N activations): ",
// "Window start (N% on a window's first two tokens): "): returns where the explanation proper
// starts (0 when there is none).
std::size_t explanationWarningsEnd(const std::string& text);

// The scanned corpus the evidence is compared with.
struct CorpusProfile {
  std::vector<std::int64_t> token_counts;  // per token id
  std::int64_t total = 0;                  // tokens scanned
  std::vector<std::string> domains;        // domain names (empty: unknown)
  std::vector<double> domain_share;        // share of scanned windows per domain
};

// A token's text for an explanation: its bytes as text, or, for a token that holds only part of
// a character (a byte-level vocabulary splits e.g. ' ü' into ' \xC3' and '\xBC'), the
// character it starts completed by the token that most often follows it (`after`, as in
// FeatureEvidence), where one does.
std::string tokenTextBefore(const std::string& bytes, const std::unordered_map<std::int32_t, double>& after,
                            const std::function<std::string(std::int32_t)>& bytes_of);

// `activating_text`, when given, names the activating tokens (e.g. by tokenTextBefore) and
// `token_text` the others.
AutoExplanation explainFeature(const FeatureEvidence& evidence, const CorpusProfile& corpus,
                               const std::function<std::string(std::int32_t)>& token_text,
                               const std::function<std::string(std::int32_t)>& activating_text = {});

// The activating-token part alone (`mass`, corpus frequencies): "Fires on "A", "B" (62%, lift 310x)".
AutoExplanation explainByTokenLift(const std::unordered_map<std::int32_t, double>& mass,
                                   const std::vector<std::int64_t>& corpus_counts, std::int64_t corpus_total,
                                   const std::function<std::string(std::int32_t)>& token_text);

// The parts of an explanation, for the concept scorer: the automatic shape above is read part by
// part (after the warnings above: "Rare" for features with fewer than 20 activations, "Window
// start" for those whose examples sit mostly at a window's start); any other text (a person's or an LLM's) gives keywords that
// all count as tokens.
struct ExplanationParts {
  std::vector<std::string> tokens;   // lower-cased, trimmed
  std::vector<std::string> context;  // tokens that come just before the activation
  std::string domain;                // "" when the explanation names none
};
ExplanationParts explanationParts(const std::string& explanation);

}  // namespace monoscope::core
