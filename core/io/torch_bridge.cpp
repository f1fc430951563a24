#include "io/torch_bridge.h"

#include "util/error.h"

namespace monoscope::core {

std::string shapeString(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {
// The float type of a stored tensor; an integer one is refused naming the tensor and file.
at::ScalarType floatTypeOf(const TensorView& view, const std::string& name, const std::string& file) {
  switch (view.dtype) {
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::F64: return at::kDouble;
    default:
      throw Error("tensor '" + name + "' in '" + file + "' has integer dtype " + dtypeName(view.dtype) +
                      " where floats are expected",
                  "store weights as F32, F16 or BF16");
  }
}
}  // namespace

at::Tensor toFloatTensor(const TensorView& view, const std::string& file) {
  const at::ScalarType st = floatTypeOf(view, view.name, file);
  // from_blob does not copy; the conversion (or clone) below does, so the map may close later.
  at::Tensor raw = at::from_blob(const_cast<std::uint8_t*>(view.data), view.shape,
                                 at::TensorOptions().dtype(st));
  return st == at::kFloat ? raw.clone() : raw.to(at::kFloat);
}

at::Tensor loadWeight(const WeightStore& store, const std::string& name,
                      const std::vector<std::int64_t>& expected_shape, const at::Device& device) {
  const TensorView& view = store.tensor(name);
  if (view.shape != expected_shape) {
    throw Error("tensor '" + name + "' in '" + store.fileOf(name) + "' has shape " +
                    shapeString(view.shape) + ", expected " + shapeString(expected_shape),
                "config.json does not match the weights; check its sizes");
  }
  at::Tensor t = toFloatTensor(view, store.fileOf(name));
  if (!at::isfinite(t).all().item<bool>()) {
    throw Error("tensor '" + name + "' in '" + store.fileOf(name) + "' holds NaN or infinite values",
                "the weights are corrupt; re-export or re-download them");
  }
  return device.is_cpu() ? t : t.to(device);
}

void copyWeightInto(const WeightStore& store, const std::string& name, at::Tensor& dst) {
  const TensorView& view = store.tensor(name);
  const std::vector<std::int64_t> expected = dst.sizes().vec();
  if (view.shape != expected) {
    throw Error("tensor '" + name + "' in '" + store.fileOf(name) + "' has shape " + shapeString(view.shape) +
                    ", expected " + shapeString(expected),
                "config.json does not match the weights; check its sizes");
  }
  const at::ScalarType st = floatTypeOf(view, name, store.fileOf(name));
  const at::Tensor raw = at::from_blob(const_cast<std::uint8_t*>(view.data), view.shape, at::TensorOptions().dtype(st));
  // Checked a slice at a time, so a large embedding needs no tensor of flags its size.
  const std::int64_t rows = raw.dim() > 0 ? raw.size(0) : 1, step = std::max<std::int64_t>(1, (1 << 22) / std::max<std::int64_t>(1, raw.numel() / rows));
  for (std::int64_t r = 0; r < rows; r += step) {
    const at::Tensor part = raw.dim() > 0 ? raw.narrow(0, r, std::min(step, rows - r)) : raw;
    if (!at::isfinite(part).all().item<bool>()) {
      throw Error("tensor '" + name + "' in '" + store.fileOf(name) + "' holds NaN or infinite values",
                  "the weights are corrupt; re-export or re-download them");
    }
  }
  dst.copy_(raw);
}

void saveTensors(const std::string& path,
                 const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata, bool half) {
  SafetensorsWriter w;
  for (const auto& [k, v] : metadata) w.setMetadata(k, v);
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.detach().to(at::kCPU, half ? at::kHalf : at::kFloat).contiguous();
    std::vector<std::int64_t> shape(c.sizes().begin(), c.sizes().end());
    w.add(name, half ? DType::F16 : DType::F32, shape, c.data_ptr(), static_cast<std::size_t>(c.nbytes()));
  }
  w.write(path);
}

}  // namespace monoscope::core
