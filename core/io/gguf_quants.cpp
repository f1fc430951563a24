// Dequantisation of ggml's block formats to float32 (the layouts of ggml-common.h; the `gguf`
// PyPI package's quants.py is the reference the tests compare with). Each value is computed
// with the same float operations in the same order as the reference, so results are exact.
#include <cstring>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace monoscope::core {

namespace {

constexpr int kQK = 32;    // values in a simple block
constexpr int kQKK = 256;  // values in a k-quant super-block

float f16(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return halfToFloat(h);
}

void q4_0(const std::uint8_t* b, float* y) {
  const float d = f16(b);
  const std::uint8_t* qs = b + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
    y[j + kQK / 2] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

void q4_1(const std::uint8_t* b, float* y) {
  const float d = f16(b);
  const float m = f16(b + 2);
  const std::uint8_t* qs = b + 4;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
    y[j + kQK / 2] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

// The 5-bit formats keep the fifth bits of the block's 32 values in one 32-bit word.
void q5(const std::uint8_t* qh_bytes, const std::uint8_t* qs, float d, float m, bool has_min, float* y) {
  std::uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  for (int j = 0; j < kQK / 2; ++j) {
    const int hi0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int hi1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    const int x0 = (qs[j] & 0x0F) | hi0;
    const int x1 = (qs[j] >> 4) | hi1;
    if (has_min) {
      y[j] = d * static_cast<float>(x0) + m;
      y[j + kQK / 2] = d * static_cast<float>(x1) + m;
    } else {
      y[j] = d * static_cast<float>(x0 - 16);
      y[j + kQK / 2] = d * static_cast<float>(x1 - 16);
    }
  }
}

void q8_0(const std::uint8_t* b, float* y) {
  const float d = f16(b);
  const auto* qs = reinterpret_cast<const std::int8_t*>(b + 2);
  for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(qs[j]);
}

// The 6-bit scale and min of sub-block j of a Q4_K / Q5_K super-block (12 packed bytes).
void scaleMinK4(int j, const std::uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void q4_k(const std::uint8_t* b, float* y) {
  const float d = f16(b);
  const float dmin = f16(b + 2);
  const std::uint8_t* scales = b + 4;
  const std::uint8_t* q = b + 16;
  for (int j = 0, is = 0; j < kQKK; j += 64, is += 2, q += 32) {
    int sc, m;
    scaleMinK4(is, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scaleMinK4(is + 1, scales, &sc, &m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) y[j + l] = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) y[j + 32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}

void q5_k(const std::uint8_t* b, float* y) {
  const float d = f16(b);
  const float dmin = f16(b + 2);
  const std::uint8_t* scales = b + 4;
  const std::uint8_t* qh = b + 16;
  const std::uint8_t* ql = b + 48;
  unsigned u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < kQKK; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
    int sc, m;
    scaleMinK4(is, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scaleMinK4(is + 1, scales, &sc, &m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l)
      y[j + l] = d1 * static_cast<float>((ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      y[j + 32 + l] = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
  }
}

void q6_k(const std::uint8_t* b, float* y) {
  const std::uint8_t* ql = b;
  const std::uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
  const float d = f16(b + 208);
  for (int n = 0; n < kQKK; n += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[n + l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
      y[n + l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[n + l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[n + l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

}  // namespace

void dequantize(GgmlType type, const std::uint8_t* src, std::int64_t n, float* dst) {
  const GgmlTypeInfo* info = ggmlTypeInfo(static_cast<std::uint32_t>(type));
  if (info == nullptr) throw Error("cannot dequantise " + ggmlTypeName(static_cast<std::uint32_t>(type)));
  if (n % info->block_elems != 0) {
    throw Error(std::to_string(n) + " values are not whole " + info->name + " blocks");
  }
  const std::int64_t blocks = n / info->block_elems;
  const std::int64_t bs = info->block_bytes;
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<std::size_t>(n) * 4); return;
    case GgmlType::F16:
      for (std::int64_t i = 0; i < n; ++i) dst[i] = f16(src + 2 * i);
      return;
    case GgmlType::BF16:
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bfloat16ToFloat(h);
      }
      return;
    default: break;
  }
  for (std::int64_t i = 0; i < blocks; ++i) {
    const std::uint8_t* b = src + i * bs;
    float* y = dst + i * info->block_elems;
    switch (type) {
      case GgmlType::Q4_0: q4_0(b, y); break;
      case GgmlType::Q4_1: q4_1(b, y); break;
      case GgmlType::Q5_0: q5(b + 2, b + 6, f16(b), 0.0f, false, y); break;
      case GgmlType::Q5_1: q5(b + 4, b + 8, f16(b), f16(b + 2), true, y); break;
      case GgmlType::Q8_0: q8_0(b, y); break;
      case GgmlType::Q4_K: q4_k(b, y); break;
      case GgmlType::Q5_K: q5_k(b, y); break;
      case GgmlType::Q6_K: q6_k(b, y); break;
      default: break;
    }
  }
}

}  // namespace monoscope::core
