#include <filesystem>

#include <nlohmann/json.hpp>

#include "sae/sae_releases.h"
#include "util/error.h"

namespace monoscope::core {

std::string resolveSaeRelease(const std::string& spec) {
  std::error_code ec;
  if (std::filesystem::exists(spec, ec)) return spec;  // a local folder whose name holds ':'
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon == 0 || spec.find('/') < colon) return spec;
  static const nlohmann::json table = nlohmann::json::parse(saeReleasesJson())["releases"];
  const std::string release = spec.substr(0, colon), id = spec.substr(colon + 1);
  if (!table.contains(release)) {
    throw Error("'" + release + "' is not a SAELens release Monoscope knows",
                "known releases are those of data/sae_releases.json (SAELens layouts, Gemma Scope 1 and 2, Llama Scope); "
                "or give the repository path, org/repo/path/in/it");
  }
  const auto& r = table[release];
  if (!r["saes"].contains(id)) {
    std::string some;
    int n = 0;
    for (auto it = r["saes"].begin(); it != r["saes"].end() && n < 3; ++it, ++n) some += std::string(n ? ", " : "") + it.key();
    throw Error("release '" + release + "' has no SAE '" + id + "' (" + std::to_string(r["saes"].size()) + " SAEs, e.g. " + some + ")");
  }
  return r["repo"].get<std::string>() + "/" + r["saes"][id].get<std::string>();
}

}  // namespace monoscope::core
