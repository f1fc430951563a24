#pragma once
// The automatic first explanation of a feature: the tokens its activation mass falls on,
// ranked by mass share times log lift against the corpus frequency of the token.
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace monoscope::core {

struct AutoExplanation {
  std::string text;        // e.g. `Fires on " LORD", " God" (lift 310x)`
  std::string top_tokens;  // the activating tokens, space separated (for search)
};

// `mass`: activation summed per activating token id over the feature's examples;
// `corpus_counts[id]` and `corpus_total`: token frequencies of the scanned corpus.
AutoExplanation explainByTokenLift(const std::unordered_map<std::int32_t, double>& mass,
                                   const std::vector<std::int64_t>& corpus_counts, std::int64_t corpus_total,
                                   const std::function<std::string(std::int32_t)>& token_text);

}  // namespace monoscope::core
