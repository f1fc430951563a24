#include "io/torch_bridge.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <cstdint>
#include <cstring>

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

namespace {
// Whether a stored float tensor holds no NaN or infinity: its exponent bits are not all ones.
// Read straight from the mapped bytes in parallel blocks (memory speed: a model's weights are
// checked while they are read the first time).
template <typename Bits>
bool noExponentAllOnes(const std::uint8_t* data, std::int64_t n, Bits mask) {
  std::atomic<bool> ok{true};
  at::parallel_for(0, n, 1 << 20, [&](std::int64_t b, std::int64_t e) {
    Bits any = 0;
    for (std::int64_t i = b; i < e; ++i) {
      Bits v;
      std::memcpy(&v, data + i * static_cast<std::int64_t>(sizeof(Bits)), sizeof(Bits));
      any |= static_cast<Bits>((v & mask) == mask);
    }
    if (any) ok = false;
  });
  return ok;
}

bool allFinite(const TensorView& view) {
  const std::int64_t n = view.numel();
  switch (view.dtype) {
    case DType::BF16: return noExponentAllOnes<std::uint16_t>(view.data, n, 0x7F80u);
    case DType::F16: return noExponentAllOnes<std::uint16_t>(view.data, n, 0x7C00u);
    case DType::F32: return noExponentAllOnes<std::uint32_t>(view.data, n, 0x7F800000u);
    case DType::F64: return noExponentAllOnes<std::uint64_t>(view.data, n, 0x7FF0000000000000ull);
    default: return true;
  }
}

// The stored tensor `name` viewed in place (its shape checked) and checked for NaN and infinities.
at::Tensor checkedView(const WeightStore& store, const std::string& name, const std::vector<std::int64_t>& expected) {
  const TensorView& view = store.tensor(name);
  if (view.shape != expected) {
    throw Error("tensor '" + name + "' in '" + store.fileOf(name) + "' has shape " + shapeString(view.shape) +
                    ", expected " + shapeString(expected),
                "config.json does not match the weights; check its sizes");
  }
  const at::ScalarType st = floatTypeOf(view, name, store.fileOf(name));
  const at::Tensor raw = at::from_blob(const_cast<std::uint8_t*>(view.data), view.shape, at::TensorOptions().dtype(st));
  if (!allFinite(view)) {
    throw Error("tensor '" + name + "' in '" + store.fileOf(name) + "' holds NaN or infinite values",
                "the weights are corrupt; re-export or re-download them");
  }
  return raw;
}
}  // namespace

void copyWeightInto(const WeightStore& store, const std::string& name, at::Tensor& dst) {
  dst.copy_(checkedView(store, name, dst.sizes().vec()));
}

at::Tensor mapWeight(const std::shared_ptr<const WeightStore>& store, const std::string& name,
                     const std::vector<std::int64_t>& shape, at::ScalarType dtype) {
  const TensorView& view = store->tensor(name);
  if (view.shape != shape || floatTypeOf(view, name, store->fileOf(name)) != dtype) return at::Tensor();
  if (reinterpret_cast<std::uintptr_t>(view.data) % static_cast<std::uintptr_t>(c10::elementSize(dtype)) != 0) return at::Tensor();
  const at::Tensor raw = checkedView(*store, name, shape);
  // The deleter holds the store: the mapping lives as long as any tensor reading it.
  return at::from_blob(const_cast<std::uint8_t*>(view.data), shape, [keep = store](void*) { (void)keep; },
                       at::TensorOptions().dtype(dtype));
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
