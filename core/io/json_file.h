#pragma once
// Reading JSON configs with errors that name the file and the field.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace monoscope::core {

// Deepest nesting of arrays and objects a config may have (real ones stay under 10).
constexpr int kMaxJsonDepth = 256;

// Throws Error naming `source` when `text` nests arrays/objects deeper than kMaxJsonDepth:
// checked before parsing, since the recursive parser would overflow the stack.
void requireJsonDepth(std::string_view text, const std::string& source);

// nlohmann's message without its "[json.exception...]" prefix, printable ASCII only.
std::string plainJsonMessage(const std::exception& e);

// Parses a JSON file; throws Error naming the file on I/O or syntax errors.
nlohmann::json readJsonFile(const std::string& path);

// Typed access to the fields of one JSON object, remembering where it came from.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string source);

  bool has(const std::string& key) const;
  std::int64_t integer(const std::string& key) const;  // required
  std::int64_t integer(const std::string& key, std::int64_t fallback) const;
  double number(const std::string& key) const;
  double number(const std::string& key, double fallback) const;
  std::string string(const std::string& key) const;
  std::string string(const std::string& key, const std::string& fallback) const;
  bool boolean(const std::string& key, bool fallback) const;
  const nlohmann::json& raw() const { return object_; }
  const std::string& source() const { return source_; }

  // An error about `key` in this object: "<source>: field 'key' <problem>".
  [[noreturn]] void fail(const std::string& key, const std::string& problem,
                         const std::string& hint = {}) const;

 private:
  const nlohmann::json* find(const std::string& key) const;
  const nlohmann::json& object_;
  std::string source_;
};

}  // namespace monoscope::core
