// The hub cache listing behind api/hub.h: a bounded walk of each repository's snapshot, each
// folder classified by the model layout or the dictionary format table (sae/sae_formats.h).
#include "api/hub.h"

#include <algorithm>
#include <filesystem>

#include "io/hf_cache.h"
#include "sae/sae_formats.h"

namespace fs = std::filesystem;

namespace monoscope::core {
namespace {

constexpr int kMaxDepth = 6;  // release layouts nest 4 deep (site/layer/width/l0)

void walk(const fs::path& root, const fs::path& dir, const std::string& repo, int depth, std::size_t limit,
          std::vector<HubEntry>* out) {
  std::error_code ec;
  const std::string rel = fs::relative(dir, root, ec).generic_string();
  const std::string spec = rel.empty() || rel == "." ? repo : repo + "/" + rel;
  if (fs::is_regular_file(dir / "config.json", ec) &&
      (fs::exists(dir / "model.safetensors", ec) || fs::exists(dir / "model.safetensors.index.json", ec))) {
    out->push_back({"model", spec, dir.string(), "safetensors"});
  }
  for (const DictionaryFormat* f : dictionaryFormats()) {
    if (f->matches(dir)) {
      out->push_back({"dictionary", spec, dir.string(), f->name});
      break;
    }
  }
  if (depth >= kMaxDepth) return;
  std::vector<fs::path> children;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path p = it->path();
    if (fs::is_directory(p, ec)) {
      children.push_back(p);
    } else if (p.extension() == ".gguf") {
      const std::string r = fs::relative(p, root, ec).generic_string();
      out->push_back({"model", repo + "/" + r, p.string(), "gguf"});
    }
  }
  std::sort(children.begin(), children.end());
  for (const auto& c : children) {
    if (out->size() >= limit) return;
    walk(root, c, repo, depth + 1, limit, out);
  }
}

}  // namespace

std::string hubCacheLocation() { return hubCacheDir(); }

std::vector<HubEntry> listHubCache(std::size_t limit) {
  std::vector<HubEntry> out;
  const std::string cache = hubCacheDir();
  std::error_code ec;
  if (cache.empty() || !fs::is_directory(cache, ec)) return out;
  std::vector<fs::path> repos;
  for (fs::directory_iterator it(cache, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().rfind("models--", 0) == 0) repos.push_back(it->path());
  std::sort(repos.begin(), repos.end());
  for (const auto& r : repos) {
    // models--org--name: the repository id is org/name.
    const std::string folder = r.filename().string().substr(8);
    const auto sep = folder.find("--");
    if (sep == std::string::npos) continue;
    const std::string repo = folder.substr(0, sep) + "/" + folder.substr(sep + 2);
    const std::string commit = hubRevisionCommit(r.string(), "main");
    fs::path snapshot = r / "snapshots" / commit;
    if (commit.empty() || !fs::is_directory(snapshot, ec)) {  // no refs/main: the only snapshot, if one
      std::vector<fs::path> snaps;
      for (fs::directory_iterator it(r / "snapshots", ec), end; !ec && it != end; it.increment(ec)) snaps.push_back(it->path());
      if (snaps.size() != 1) continue;
      snapshot = snaps.front();
    }
    walk(snapshot, snapshot, repo, 0, limit, &out);
    if (out.size() >= limit) {
      out.resize(limit);
      break;
    }
  }
  return out;
}

}  // namespace monoscope::core
