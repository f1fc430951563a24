#pragma once
// Helpers shared by the core tests.
#include <ATen/ATen.h>

#include <QtTest>
#include <cstdlib>
#include <string>

#include "io/safetensors.h"
#include "io/torch_bridge.h"

namespace testutil {

inline std::string fixture(const std::string& rel) { return std::string(MONOSCOPE_FIXTURES) + "/" + rel; }

// The device of the golden comparisons: MONOSCOPE_TEST_DEVICE (e.g. "cuda"; tests/gpu/run.sh),
// else the CPU.
inline c10::Device device() {
  const char* d = std::getenv("MONOSCOPE_TEST_DEVICE");
  return (d != nullptr && *d != '\0') ? c10::Device(std::string(d)) : c10::Device(c10::kCPU);
}

inline at::Tensor loadExpected(const monoscope::core::SafetensorsFile& f, const std::string& name) {
  const auto& v = f.tensor(name);
  if (v.dtype == monoscope::core::DType::I64) {
    return at::from_blob(const_cast<std::uint8_t*>(v.data), v.shape, at::kLong).clone();
  }
  return monoscope::core::toFloatTensor(v, f.path());
}

inline double maxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kFloat) - b.to(at::kCPU, at::kFloat)).abs().max().item<double>();
}

}  // namespace testutil
