// circuit-tracer transcoder sets (sae/transcoder_set.h), parsed with yaml-cpp.
#include "sae/transcoder_set.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/hf_cache.h"
#include "lm/hooks.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace monoscope::core {
namespace {

constexpr std::uintmax_t kMaxYamlBytes = 4u << 20;  // a set for 200 layers is a few tens of KB
constexpr std::int64_t kMaxLayers = 1024;

std::string scalar(const YAML::Node& node, const std::string& field, const std::string& where) {
  if (!node || !node.IsScalar())
    throw Error(where + ": '" + field + "' is " + (node ? "not a string" : "missing"),
                "a circuit-tracer set names model_name, feature_input_hook, feature_output_hook and transcoders");
  return node.as<std::string>();
}

// A block hook given relative to its block ("ln2.hook_normalized").
bool isBlockHook(const std::string& hook) {
  return hook.rfind("blocks.", 0) != 0 && blockHookOf("blocks.0." + hook) != kBlockHookCount;
}

std::string blockHookList() {
  std::string s;
  for (int h = 0; h < kBlockHookCount; ++h) s += std::string(h ? ", " : "") + blockHookSuffix(static_cast<BlockHook>(h));
  return s;
}

}  // namespace

bool isTranscoderSetFile(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  return ext == ".yaml" || ext == ".yml";
}

bool parseTranscoderSetSpec(const std::string& spec, std::string* file, std::int64_t* layer) {
  const auto hash = spec.rfind('#');
  if (hash == std::string::npos) return false;
  const std::string f = spec.substr(0, hash), l = spec.substr(hash + 1);
  std::error_code ec;
  if (!isTranscoderSetFile(f) || !fs::is_regular_file(f, ec)) return false;
  if (l.empty() || l.size() > 6 || l.find_first_not_of("0123456789") != std::string::npos)
    throw Error("'" + spec + "': '" + l + "' is not a layer number", "name one layer of the set: '" + f + "#0'");
  *file = f;
  *layer = std::stoll(l);
  return true;
}

TranscoderSet TranscoderSet::read(const std::string& yaml_path) {
  std::error_code ec;
  if (!fs::is_regular_file(yaml_path, ec)) throw Error("transcoder set '" + yaml_path + "' does not exist or is not a file");
  const auto size = fs::file_size(yaml_path, ec);
  if (ec || size > kMaxYamlBytes)
    throw Error("transcoder set '" + yaml_path + "' is " + (ec ? "unreadable" : std::to_string(size) + " bytes, over 4 MiB"),
                "a circuit-tracer set is a short YAML file");
  std::ifstream in(yaml_path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string where = "transcoder set '" + yaml_path + "'";
  YAML::Node root;
  try {
    root = YAML::Load(buf.str());
  } catch (const YAML::Exception& e) {
    throw Error(where + " is not valid YAML: " + e.what(), "fix the file; circuit-tracer's own configs show the layout");
  }
  if (!root.IsMap()) throw Error(where + " is not a YAML mapping", "expected model_name, feature_input_hook, feature_output_hook, transcoders");
  TranscoderSet set;
  set.path = yaml_path;
  try {
    set.model_name = root["model_name"] ? scalar(root["model_name"], "model_name", where) : std::string();
    set.input_hook = scalar(root["feature_input_hook"], "feature_input_hook", where);
    set.output_hook = scalar(root["feature_output_hook"], "feature_output_hook", where);
    for (const auto& [field, hook] : {std::pair<const char*, const std::string&>{"feature_input_hook", set.input_hook},
                                      {"feature_output_hook", set.output_hook}})
      if (!isBlockHook(hook))
        throw Error(where + ": " + field + " '" + hook + "' is not a hook of a block",
                    "name it relative to the block, one of: " + blockHookList());
    if (blockHookOf("blocks.0." + set.output_hook) <= blockHookOf("blocks.0." + set.input_hook))
      throw Error(where + ": feature_output_hook '" + set.output_hook + "' does not come after feature_input_hook '" + set.input_hook + "'",
                  "a transcoder writes a hook later in the block than the one it reads");
    const YAML::Node list = root["transcoders"];
    if (!list || !list.IsSequence() || list.size() == 0)
      throw Error(where + ": 'transcoders' is " + (list ? "not a non-empty list" : "missing"), "list one {id, layer, filepath} per layer");
    if (list.size() > static_cast<std::size_t>(kMaxLayers))
      throw Error(where + ": 'transcoders' lists " + std::to_string(list.size()) + " entries, over " + std::to_string(kMaxLayers));
    for (std::size_t i = 0; i < list.size(); ++i) {
      const YAML::Node t = list[i];
      const std::string item = where + " transcoders[" + std::to_string(i) + "]";
      if (!t.IsMap()) throw Error(item + " is not a mapping", "give id, layer and filepath");
      TranscoderSetEntry e;
      e.id = t["id"] ? scalar(t["id"], "id", item) : std::string();
      const std::string layer = scalar(t["layer"], "layer", item);
      if (layer.empty() || layer.size() > 6 || layer.find_first_not_of("0123456789") != std::string::npos)
        throw Error(item + ": 'layer' is '" + layer + "', not a layer number");
      e.layer = std::stoll(layer);
      e.filepath = scalar(t["filepath"], "filepath", item);
      if (e.filepath.empty()) throw Error(item + ": 'filepath' is empty");
      set.transcoders.push_back(std::move(e));
    }
  } catch (const YAML::Exception& e) {
    throw Error(where + ": " + e.what());
  }
  std::sort(set.transcoders.begin(), set.transcoders.end(), [](const auto& a, const auto& b) { return a.layer < b.layer; });
  for (std::size_t i = 0; i < set.transcoders.size(); ++i) {
    if (set.transcoders[i].layer != static_cast<std::int64_t>(i))
      throw Error(where + ": " + (set.transcoders[i].layer < static_cast<std::int64_t>(i)
                                      ? "layer " + std::to_string(set.transcoders[i].layer) + " is listed twice"
                                      : "layer " + std::to_string(i) + " has no transcoder"),
                  "a set has one transcoder for each layer from 0 to its last");
  }
  return set;
}

const TranscoderSetEntry& TranscoderSet::entry(std::int64_t layer) const {
  if (layer < 0 || layer >= static_cast<std::int64_t>(transcoders.size()))
    throw Error("transcoder set '" + path + "' has no layer " + std::to_string(layer),
                "its layers are 0 to " + std::to_string(transcoders.size() - 1));
  return transcoders[static_cast<std::size_t>(layer)];
}

std::string TranscoderSet::inputHook(std::int64_t layer) const { return "blocks." + std::to_string(layer) + "." + input_hook; }
std::string TranscoderSet::outputHook(std::int64_t layer) const { return "blocks." + std::to_string(layer) + "." + output_hook; }

std::string TranscoderSet::localFile(std::int64_t layer) const {
  const std::string& f = entry(layer).filepath;
  const std::string hf = "hf://";
  if (f.rfind(hf, 0) == 0) {
    // hf://org/repo/path/in/it?revision=rev -> the cache's org/repo@rev/path/in/it
    std::string rest = f.substr(hf.size()), rev;
    const auto q = rest.find('?');
    if (q != std::string::npos) {
      const std::string query = rest.substr(q + 1);
      rest.resize(q);
      const std::string key = "revision=";
      if (query.rfind(key, 0) != 0 || query.size() == key.size() || query.find('&') != std::string::npos)
        throw Error("transcoder set '" + path + "' layer " + std::to_string(layer) + ": '" + f + "' has a query other than ?revision=REV");
      rev = query.substr(key.size());
    }
    const auto a = rest.find('/'), b = a == std::string::npos ? a : rest.find('/', a + 1);
    if (b == std::string::npos || b + 1 >= rest.size())
      throw Error("transcoder set '" + path + "' layer " + std::to_string(layer) + ": '" + f + "' does not name org/repo/file");
    const std::string spec = rest.substr(0, b) + (rev.empty() ? "" : "@" + rev) + rest.substr(b);
    const std::string local = resolveHubPath(spec, /*cache_only=*/true);
    if (local == spec)
      throw Error("transcoder set '" + path + "' layer " + std::to_string(layer) + ": '" + f + "' is not a Hugging Face path Monoscope can look up");
    return local;
  }
  const fs::path p(f);
  const fs::path local = p.is_absolute() ? p : fs::path(path).parent_path() / p;
  std::error_code ec;
  if (!fs::is_regular_file(local, ec))
    throw Error("transcoder set '" + path + "' layer " + std::to_string(layer) + ": '" + local.string() + "' does not exist",
                "filepath is relative to the YAML file, or hf://org/repo/file from the Hugging Face cache");
  return local.string();
}

std::vector<std::string> TranscoderSet::specs() const {
  std::vector<std::string> out;
  for (const auto& t : transcoders) out.push_back(path + "#" + std::to_string(t.layer));
  return out;
}

}  // namespace monoscope::core
