#include "io/weight_store.h"

#include <filesystem>

#include "io/json_file.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace monoscope::core {

WeightStore::WeightStore(const std::string& dir) : where_(dir) {
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(single)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single.string()));
  } else if (fs::exists(index)) {
    const nlohmann::json j = readJsonFile(index.string());
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
      throw Error("'" + index.string() + "': field 'weight_map' is missing or not an object",
                  "regenerate the index with save_pretrained");
    }
    std::map<std::string, const SafetensorsFile*> by_file;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) throw Error("'" + index.string() + "': shard of '" + it.key() + "' is not a string");
      const std::string shard = it->get<std::string>();
      if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos) {
        throw Error("'" + index.string() + "': shard name '" + shard + "' leaves the model folder",
                    "shards must be plain file names next to the index");
      }
      auto found = by_file.find(shard);
      if (found == by_file.end()) {
        files_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / shard).string()));
        found = by_file.emplace(shard, files_.back().get()).first;
      }
      if (!found->second->has(it.key())) {
        throw Error("'" + index.string() + "' places tensor '" + it.key() + "' in '" + shard +
                        "' but that shard does not contain it",
                    "the checkpoint is incomplete; re-download or re-save it");
      }
      index_[it.key()] = found->second;
    }
    return;
  } else {
    throw Error("no weights in '" + dir + "': neither model.safetensors nor model.safetensors.index.json",
                "Monoscope reads safetensors only; convert pickle checkpoints with save_pretrained(safe_serialization=True)");
  }
  for (const auto& name : files_.back()->names()) index_[name] = files_.back().get();
}

WeightStore WeightStore::fromFile(const std::string& path) {
  WeightStore s;
  s.where_ = path;
  s.files_.push_back(std::make_unique<SafetensorsFile>(path));
  for (const auto& name : s.files_.back()->names()) s.index_[name] = s.files_.back().get();
  return s;
}

bool WeightStore::has(const std::string& name) const { return index_.count(name) != 0; }

const TensorView& WeightStore::tensor(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    throw Error("tensor '" + name + "' is missing from the weights in '" + where_ + "'",
                "check that config.json matches the checkpoint (architecture, layer count)");
  }
  return it->second->tensor(name);
}

std::string WeightStore::fileOf(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? where_ : it->second->path();
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : index_) out.push_back(k);
  return out;
}

}  // namespace monoscope::core
