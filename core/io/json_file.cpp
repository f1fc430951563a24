#include "io/json_file.h"

#include <cmath>

#include "util/error.h"
#include "util/mapped_file.h"

namespace monoscope::core {

void requireJsonDepth(std::string_view text, const std::string& source) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw Error(source + ": JSON nested too deeply (more than " + std::to_string(kMaxJsonDepth) + " levels)",
                    "the file is malformed or hostile; regenerate it");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

std::string plainJsonMessage(const std::exception& e) {
  std::string w = e.what();
  const auto p = w.find("] ");
  if (w.rfind("[json.exception", 0) == 0 && p != std::string::npos) w = w.substr(p + 2);
  std::string out;
  for (unsigned char c : w.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  return out;
}

nlohmann::json readJsonFile(const std::string& path) {
  const std::string text = readTextFile(path);
  if (text.rfind("\xEF\xBB\xBF", 0) == 0)
    throw Error("'" + path + "' starts with a UTF-8 byte-order mark", "save it as UTF-8 without a BOM");
  requireJsonDepth(text, "'" + path + "'");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("malformed JSON in '" + path + "': " + plainJsonMessage(e),
                "fix the syntax or regenerate the file");
  }
}

JsonFields::JsonFields(const nlohmann::json& object, std::string source)
    : object_(object), source_(std::move(source)) {
  if (!object_.is_object()) throw Error(source_ + ": expected a JSON object at the top level");
}

const nlohmann::json* JsonFields::find(const std::string& key) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonFields::has(const std::string& key) const { return find(key) != nullptr; }

void JsonFields::fail(const std::string& key, const std::string& problem,
                      const std::string& hint) const {
  throw Error(source_ + ": field '" + key + "' " + problem, hint);
}

std::int64_t JsonFields::integer(const std::string& key) const {
  const auto* v = find(key);
  if (v == nullptr) fail(key, "is missing", "add it to the config");
  if (v->is_number_integer()) return v->get<std::int64_t>();
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
      return static_cast<std::int64_t>(d);
  }
  fail(key, "must be an integer, got " + v->dump());
}

std::int64_t JsonFields::integer(const std::string& key, std::int64_t fallback) const {
  return has(key) ? integer(key) : fallback;
}

double JsonFields::number(const std::string& key) const {
  const auto* v = find(key);
  if (v == nullptr) fail(key, "is missing", "add it to the config");
  if (!v->is_number()) fail(key, "must be a number, got " + v->dump());
  double d = v->get<double>();
  if (!std::isfinite(d)) fail(key, "must be finite");
  return d;
}

double JsonFields::number(const std::string& key, double fallback) const {
  return has(key) ? number(key) : fallback;
}

std::string JsonFields::string(const std::string& key) const {
  const auto* v = find(key);
  if (v == nullptr) fail(key, "is missing", "add it to the config");
  if (!v->is_string()) fail(key, "must be a string, got " + v->dump());
  return v->get<std::string>();
}

std::string JsonFields::string(const std::string& key, const std::string& fallback) const {
  return has(key) ? string(key) : fallback;
}

bool JsonFields::boolean(const std::string& key, bool fallback) const {
  const auto* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) fail(key, "must be true or false, got " + v->dump());
  return v->get<bool>();
}

}  // namespace monoscope::core
