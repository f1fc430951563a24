#pragma once
// A minimal OpenAI-compatible chat-completions client over libcurl.
#include <string>

#include "api/scoring.h"

namespace monoscope::core {

// POSTs {model, messages:[system, user], temperature 0, max_tokens} to base_url/chat/completions
// and returns choices[0].message.content. Throws Error naming the endpoint (never the key).
std::string chatCompletion(const LlmEndpoint& endpoint, const std::string& system, const std::string& user,
                           int max_tokens = 16);

// The 0-3 score in an answer ("Score: 2", "2", "I'd say 3."), or -1 when there is none.
int parseScore(const std::string& answer);

}  // namespace monoscope::core
