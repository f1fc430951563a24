#pragma once
// The weights of a model directory: one model.safetensors or shards listed in
// model.safetensors.index.json. Only safetensors are read, never pickle.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace monoscope::core {

class WeightStore {
 public:
  // Opens `dir`/model.safetensors, or the shards named by `dir`/model.safetensors.index.json.
  explicit WeightStore(const std::string& dir);
  // Opens a single safetensors file.
  static WeightStore fromFile(const std::string& path);

  bool has(const std::string& name) const;
  const TensorView& tensor(const std::string& name) const;  // throws naming the file(s)
  std::string fileOf(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  WeightStore() = default;
  std::string where_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> index_;
};

}  // namespace monoscope::core
