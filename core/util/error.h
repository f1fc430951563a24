#pragma once
// The one exception type core throws: what failed, and what the user can do about it.
#include <stdexcept>
#include <string>

namespace monoscope::core {

class Error : public std::runtime_error {
 public:
  // `what` names the file or field and the failure; `hint` says what to do (may be empty).
  Error(const std::string& what, const std::string& hint = {});

  const std::string& detail() const { return detail_; }
  const std::string& hint() const { return hint_; }

  // Returns a copy whose message is prefixed by a stage ("loading model: ...").
  Error withContext(const std::string& stage) const;

 private:
  std::string detail_;
  std::string hint_;
};

}  // namespace monoscope::core
