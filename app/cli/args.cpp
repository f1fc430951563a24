#include "args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "util/error.h"

using monoscope::core::Error;

namespace monoscope::cli {

Args::Args(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || a.size() == 2) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    if (name == "json" || name == "help" || name == "redo") {  // flags without a value
      values_.emplace(name, "true");
      continue;
    }
    const auto eq = name.find('=');
    if (eq != std::string::npos) {
      values_.emplace(name.substr(0, eq), name.substr(eq + 1));
      continue;
    }
    if (i + 1 >= argc) throw Error("option --" + name + " needs a value");
    values_.emplace(name, argv[++i]);
  }
}

void Args::allowOnly(const std::set<std::string>& allowed, std::size_t max_positional) const {
  if (positional_.size() > max_positional) {
    throw Error("unexpected argument '" + positional_[max_positional] + "'", "options are written --name value");
  }
  for (const auto& [k, v] : values_) {
    if (!allowed.count(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "--" : ", --") + a;
      throw Error("unknown option --" + k, "this command takes " + list);
    }
  }
}

std::string Args::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw Error("missing required option --" + name);
  return it->second;
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::vector<std::string> Args::all(const std::string& name) const {
  std::vector<std::string> out;
  auto range = values_.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
  return out;
}

std::int64_t parseInteger(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || end == nullptr || *end != '\0' || errno == ERANGE) {
    throw Error(what + " '" + text + "' is not an integer");
  }
  return v;
}

double parseNumber(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end == nullptr || *end != '\0' || errno == ERANGE || !std::isfinite(v)) {
    throw Error(what + " '" + text + "' is not a finite number");
  }
  return v;
}

std::int64_t Args::integer(const std::string& name, std::int64_t lo, std::int64_t hi) const {
  const std::int64_t v = parseInteger(get(name), "--" + name);
  if (v < lo || v > hi) {
    throw Error("--" + name + " " + std::to_string(v) + " is out of range",
                "use a value in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return v;
}

std::int64_t Args::integer(const std::string& name, std::int64_t fallback, std::int64_t lo,
                           std::int64_t hi) const {
  return has(name) ? integer(name, lo, hi) : fallback;
}

double Args::number(const std::string& name, double fallback) const {
  return has(name) ? parseNumber(get(name), "--" + name) : fallback;
}

}  // namespace monoscope::cli
