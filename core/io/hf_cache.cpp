#include "io/hf_cache.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

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

std::string hubRevisionCommit(const std::string& repo_dir, const std::string& rev) {
  std::string commit = rev;
  if (std::ifstream ref(fs::path(repo_dir) / "refs" / rev); ref) {
    std::getline(ref, commit);
    while (!commit.empty() && (commit.back() == '\n' || commit.back() == '\r' || commit.back() == ' ')) commit.pop_back();
  }
  return commit;
}

std::string resolveHubPath(const std::string& spec, bool cache_only) {
  std::error_code ec;
  if (spec.empty() || (!cache_only && fs::exists(spec, ec))) return spec;
  // org/name, optionally @revision, optionally /path: the characters the hub allows in names.
  // (Parsed by hand: std::regex trips GCC 12's maybe-uninitialized warning under the sanitizers.)
  auto name_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  };
  auto take_name = [&](std::size_t* i, std::string* out) {
    const std::size_t b = *i;
    while (*i < spec.size() && name_char(spec[*i])) ++*i;
    *out = spec.substr(b, *i - b);
    return !out->empty() && out->front() != '.' && out->front() != '-';
  };
  std::size_t i = 0;
  std::string org, name, rev_part, inner_part;
  if (!take_name(&i, &org) || i >= spec.size() || spec[i] != '/') return spec;
  ++i;
  if (!take_name(&i, &name)) return spec;
  if (i < spec.size() && spec[i] == '@') {
    ++i;
    if (!take_name(&i, &rev_part)) return spec;
  }
  if (i < spec.size() && spec[i] != '/') return spec;
  if (i < spec.size()) inner_part = spec.substr(i);
  const std::string cache = hubCacheDir();
  const fs::path repo = fs::path(cache) / ("models--" + org + "--" + name);
  const std::string hint = "Monoscope never downloads: fetch it on a machine with network (huggingface-cli download " +
                           org + "/" + name + ") and copy the cache, or give a local folder";
  if (cache.empty() || !fs::is_directory(repo, ec))
    throw Error("'" + spec + "' is neither a local path nor in the Hugging Face cache: '" + repo.string() + "' does not exist", hint);
  const std::string rev = rev_part.empty() ? "main" : rev_part;
  const std::string commit = hubRevisionCommit(repo.string(), rev);
  const fs::path snapshot = repo / "snapshots" / commit;
  if (commit.empty() || commit.find('/') != std::string::npos || commit == ".." || !fs::is_directory(snapshot, ec))
    throw Error("'" + spec + "': revision '" + rev + "' has no snapshot in '" + (repo / "snapshots").string() + "'", hint);
  fs::path out = snapshot;
  if (inner_part.size() > 1) {
    const fs::path inner = fs::path(inner_part.substr(1)).lexically_normal();
    if (inner.is_absolute() || (!inner.empty() && *inner.begin() == ".."))
      throw Error("'" + spec + "': the path inside the repository leaves it");
    out /= inner;
    if (!fs::exists(out, ec)) throw Error("'" + spec + "': '" + out.string() + "' is not in the cached snapshot", hint);
  }
  return out.string();
}

}  // namespace monoscope::core
