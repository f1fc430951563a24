#pragma once
// Command-line options: `--name value` pairs after a command word (names may repeat), flags
// (--json, --help) and positional words.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace monoscope::cli {

class Args {
 public:
  // Parses argv[first..]; throws core::Error on a dangling option or a stray word.
  Args(int argc, char** argv, int first);

  // Throws core::Error naming the first option not in `allowed`, or the first word beyond
  // `max_positional` words that are not options.
  void allowOnly(const std::set<std::string>& allowed, std::size_t max_positional = 0) const;
  const std::vector<std::string>& positional() const { return positional_; }

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string get(const std::string& name) const;  // required
  std::string get(const std::string& name, const std::string& fallback) const;
  std::vector<std::string> all(const std::string& name) const;
  std::int64_t integer(const std::string& name, std::int64_t fallback, std::int64_t lo, std::int64_t hi) const;
  std::int64_t integer(const std::string& name, std::int64_t lo, std::int64_t hi) const;  // required
  double number(const std::string& name, double fallback) const;

 private:
  std::multimap<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

std::int64_t parseInteger(const std::string& text, const std::string& what);
double parseNumber(const std::string& text, const std::string& what);

}  // namespace monoscope::cli
