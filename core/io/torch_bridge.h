#pragma once
// Internal (LibTorch) helpers between safetensors views and tensors. Include only from .cpp files.
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "io/weight_store.h"

namespace monoscope::core {

// A float32 CPU tensor copied from a view (F16/BF16/F64 converted).
at::Tensor toFloatTensor(const TensorView& view, const std::string& file);

// Loads `name` as float32 on `device`, checking its shape; errors name the file and tensor.
at::Tensor loadWeight(const WeightStore& store, const std::string& name,
                      const std::vector<std::int64_t>& expected_shape, const at::Device& device);

// Copies `name` into `dst` (its shape checked, converted to dst's dtype and device) with no
// float32 copy in between, so a BF16 weight kept as BF16 is copied once; errors name the file.
void copyWeightInto(const WeightStore& store, const std::string& name, at::Tensor& dst);

// `name` as a CPU tensor reading the mapped file in place (no copy, no anonymous memory: the
// pages are the page cache's), when it is stored as `dtype` in `shape` at an aligned address;
// else an undefined tensor (copy it instead). Checked for NaN and infinities. The tensor keeps
// `store` (and its mapping) alive; the mapping is read-only, so the tensor must never be written.
at::Tensor mapWeight(const std::shared_ptr<const WeightStore>& store, const std::string& name,
                     const std::vector<std::int64_t>& shape, at::ScalarType dtype);

// Writes float tensors (moved to CPU, made contiguous) as F32, or F16 with `half`, to a
// safetensors file.
void saveTensors(const std::string& path,
                 const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata = {}, bool half = false);

std::string shapeString(const std::vector<std::int64_t>& shape);

}  // namespace monoscope::core
