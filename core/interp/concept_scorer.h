#pragma once
// The `concept` scorer: a rule-based matcher that scores an example 0-3 on the specificity
// rubric by where the explanation's keywords occur relative to the activating token.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace monoscope::core {

// Keywords of an explanation: its quoted strings ("..." or '...'), else its words of three or
// more letters that are not common function words. Each as keywordFromQuoted makes it.
std::vector<std::string> explanationKeywords(const std::string& explanation);

// A keyword from a token as an explanation quotes it (interp/explainer.cpp): `\n`, `\t`, `\r` and
// `\\` read back as the characters they stand for, `<N spaces>` as N spaces, ASCII lower-cased,
// surrounding whitespace removed unless there is nothing else (a newline or indentation token is
// its own keyword). Empty when the text is empty.
std::string keywordFromQuoted(std::string_view shown);

// 3: a keyword is the activating token (or spans it); 2: a keyword occurs within `near` tokens
// of it; 1: a keyword occurs elsewhere in the context; 0: no keyword occurs. A keyword of only
// whitespace matches whitespace tokens only, never the spaces inside text: with a line break, the
// tokens that contain it; of spaces and tabs, the same token.
int conceptScore(const std::vector<std::string>& tokens, int center, const std::vector<std::string>& keywords, int near = 3);

// A context's tokens lower-cased (ASCII letters) into one text, and where each token starts
// (the last token ends at the text's end): built once per example, or from a vocabulary
// lower-cased once, as the indexer does for every example it scores.
struct LoweredContext {
  std::string text;
  std::vector<std::size_t> starts;
  void clear() { text.clear(), starts.clear(); }
  void add(std::string_view lowered_token) { starts.push_back(text.size()), text += lowered_token; }
  void assign(const std::vector<std::string>& tokens);
};
void appendLowerAscii(std::string& out, std::string_view s);
int conceptScore(const LoweredContext& context, int center, const std::vector<std::string>& keywords, int near = 3);

// The score by an explanation's parts (interp/explainer.h): its tokens as above; its context
// tokens within `near` tokens before the activation score 2; an example from the domain it
// names scores at least 1 (2 with a context token anywhere in it), so that a context feature's
// in-domain examples are not scored as unrelated. `example_domain` may be empty (unknown).
struct ExplanationParts;
int conceptScore(const LoweredContext& context, int center, const ExplanationParts& parts,
                 const std::string& example_domain, int near = 3);

}  // namespace monoscope::core
