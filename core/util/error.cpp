#include "util/error.h"

namespace monoscope::core {

namespace {
std::string compose(const std::string& what, const std::string& hint) {
  if (hint.empty()) return what;
  return what + " (hint: " + hint + ")";
}
}  // namespace

Error::Error(const std::string& what, const std::string& hint)
    : std::runtime_error(compose(what, hint)), detail_(what), hint_(hint) {}

Error Error::withContext(const std::string& stage) const {
  return Error(stage + ": " + detail_, hint_);
}

}  // namespace monoscope::core
