#include "interp/llm_client.h"

#include <curl/curl.h>

#include <cctype>
#include <mutex>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace monoscope::core {

namespace {

struct Body {
  std::string data;
  std::size_t limit = 0;
  bool too_big = false;
};

std::size_t onData(char* ptr, std::size_t size, std::size_t n, void* user) {
  auto* b = static_cast<Body*>(user);
  const std::size_t bytes = size * n;
  if (b->data.size() + bytes > b->limit) {
    b->too_big = true;
    return 0;  // aborts the transfer
  }
  b->data.append(ptr, bytes);
  return bytes;
}

std::string printable(const std::string& s, std::size_t max) {
  std::string out;
  for (unsigned char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  return out;
}

}  // namespace

int parseScore(const std::string& answer) {
  // Prefer a digit after "score"; else the first stand-alone digit 0-3.
  std::string lower;
  for (unsigned char c : answer) lower += static_cast<char>(std::tolower(c));
  auto digitAfter = [&](std::size_t from) -> int {
    for (std::size_t i = from; i < lower.size() && i < from + 12; ++i)
      if (std::isdigit(static_cast<unsigned char>(lower[i]))) return lower[i] <= '3' ? lower[i] - '0' : -1;
    return -1;
  };
  const auto at = lower.find("score");
  if (at != std::string::npos) {
    const int s = digitAfter(at + 5);
    if (s >= 0) return s;
  }
  for (std::size_t i = 0; i < lower.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(lower[i]))) continue;
    const bool alone = (i == 0 || !std::isalnum(static_cast<unsigned char>(lower[i - 1]))) &&
                       (i + 1 >= lower.size() || !std::isalnum(static_cast<unsigned char>(lower[i + 1])));
    if (alone && lower[i] <= '3') return lower[i] - '0';
    if (alone) return -1;
  }
  return -1;
}

std::string chatCompletion(const LlmEndpoint& ep, const std::string& system, const std::string& user, int max_tokens) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (ep.base_url.empty()) throw Error("the LLM endpoint has no base URL", "set it, e.g. http://127.0.0.1:8080/v1");
  std::string url = ep.base_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/chat/completions";
  const std::string where = "LLM endpoint '" + printable(url, 200) + "'";
  const nlohmann::json req = {{"model", ep.model},
                              {"temperature", 0},
                              {"max_tokens", max_tokens},
                              {"messages", {{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", user}}}}};
  const std::string payload = req.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  CURL* curl = curl_easy_init();
  if (!curl) throw Error("cannot start an HTTP client for the " + where);
  Body body;
  body.limit = ep.max_response_bytes;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  const std::string auth = "Authorization: Bearer " + ep.api_key;
  if (!ep.api_key.empty()) headers = curl_slist_append(headers, auth.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(ep.timeout_seconds * 1000));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(ep.timeout_seconds, 10.0) * 1000));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (body.too_big) throw Error(where + " sent more than " + std::to_string(ep.max_response_bytes) + " bytes", "check the endpoint");
  if (rc == CURLE_OPERATION_TIMEDOUT)
    throw Error(where + " did not answer within " + std::to_string(static_cast<int>(ep.timeout_seconds)) + " s",
                "check that the server is running, or raise the timeout");
  if (rc != CURLE_OK) throw Error(where + " failed: " + curl_easy_strerror(rc), "check the URL and that the server is running");
  if (status != 200) throw Error(where + " answered HTTP " + std::to_string(status) + ": " + printable(body.data, 160));
  const auto j = nlohmann::json::parse(body.data, nullptr, false);
  if (j.is_discarded()) throw Error(where + " answered something that is not JSON: " + printable(body.data, 80));
  try {
    return j.at("choices").at(0).at("message").at("content").get<std::string>();
  } catch (const nlohmann::json::exception&) {
    throw Error(where + " answered JSON without choices[0].message.content", "use an OpenAI-compatible chat-completions server");
  }
}

}  // namespace monoscope::core
