#include "io/hf_cache.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "util/error.h"

namespace fs = std::filesystem;

namespace monoscope::core {

std::string hubCacheDir() {
  if (const char* c = std::getenv("HF_HUB_CACHE"); c && *c) return c;
  if (const char* h = std::getenv("HF_HOME"); h && *h) return (fs::path(h) / "hub").string();
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "huggingface" / "hub").string();
  if (const char* home = std::getenv("HOME"); home && *home) return (fs::path(home) / ".cache" / "huggingface" / "hub").string();
  return "";
}

std::string resolveHubPath(const std::string& spec) {
  std::error_code ec;
  if (spec.empty() || fs::exists(spec, ec)) return spec;
  // org/name, optionally @revision, optionally /path: the characters the hub allows in names.
  static const std::regex kRepo(R"(^([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._-]*)(@[A-Za-z0-9._-]+)?(/.*)?$)");
  std::smatch m;
  if (!std::regex_match(spec, m, kRepo)) return spec;
  const std::string cache = hubCacheDir();
  const fs::path repo = fs::path(cache) / ("models--" + m[1].str() + "--" + m[2].str());
  const std::string hint = "Monoscope never downloads: fetch it on a machine with network (huggingface-cli download " +
                           m[1].str() + "/" + m[2].str() + ") and copy the cache, or give a local folder";
  if (cache.empty() || !fs::is_directory(repo, ec))
    throw Error("'" + spec + "' is neither a local path nor in the Hugging Face cache: '" + repo.string() + "' does not exist", hint);
  const std::string rev = m[3].matched ? m[3].str().substr(1) : "main";
  std::string commit = rev;
  if (std::ifstream ref(repo / "refs" / rev); ref) {
    std::getline(ref, commit);
    while (!commit.empty() && (commit.back() == '\n' || commit.back() == '\r' || commit.back() == ' ')) commit.pop_back();
  }
  const fs::path snapshot = repo / "snapshots" / commit;
  if (commit.empty() || commit.find('/') != std::string::npos || commit == ".." || !fs::is_directory(snapshot, ec))
    throw Error("'" + spec + "': revision '" + rev + "' has no snapshot in '" + (repo / "snapshots").string() + "'", hint);
  fs::path out = snapshot;
  if (m[4].matched && m[4].str().size() > 1) {
    const fs::path inner = fs::path(m[4].str().substr(1)).lexically_normal();
    if (inner.is_absolute() || (!inner.empty() && *inner.begin() == ".."))
      throw Error("'" + spec + "': the path inside the repository leaves it");
    out /= inner;
    if (!fs::exists(out, ec)) throw Error("'" + spec + "': '" + out.string() + "' is not in the cached snapshot", hint);
  }
  return out.string();
}

}  // namespace monoscope::core
