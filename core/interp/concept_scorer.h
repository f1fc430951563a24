#pragma once
// The `concept` scorer: a rule-based matcher that scores an example 0-3 on the specificity
// rubric by where the explanation's keywords occur relative to the activating token.
#include <string>
#include <vector>

namespace monoscope::core {

// Keywords of an explanation: its quoted strings ("..." or '...'), else its words of three or
// more letters that are not common function words. Lower-cased, surrounding spaces removed.
std::vector<std::string> explanationKeywords(const std::string& explanation);

// 3: a keyword is the activating token (or spans it); 2: a keyword occurs within `near` tokens
// of it; 1: a keyword occurs elsewhere in the context; 0: no keyword occurs.
int conceptScore(const std::vector<std::string>& tokens, int center, const std::vector<std::string>& keywords, int near = 3);

}  // namespace monoscope::core
