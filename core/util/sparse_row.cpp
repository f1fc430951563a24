#include "util/sparse_row.h"

#include <limits>
#include <string>

#include "util/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MONOSCOPE_X86_KERNELS 1
#endif

namespace monoscope::core {

namespace {

void appendPositiveScalar(const float* row, std::int64_t from, std::int64_t n, std::vector<std::uint32_t>* index,
                          std::vector<float>* value) {
  for (std::int64_t f = from; f < n; ++f) {
    if (row[f] > 0.0f) {
      index->push_back(static_cast<std::uint32_t>(f));
      value->push_back(row[f]);
    }
  }
}

#ifdef MONOSCOPE_X86_KERNELS
// Whole blocks of 16 with no positive entry are passed over with one comparison; returns where
// the scalar tail starts.
__attribute__((target("avx512f"))) std::int64_t appendPositiveAvx512(const float* row, std::int64_t n,
                                                                      std::vector<std::uint32_t>* index,
                                                                      std::vector<float>* value) {
  const __m512 zero = _mm512_setzero_ps();
  std::int64_t f = 0;
  for (; f + 16 <= n; f += 16) {
    unsigned mask = _mm512_cmp_ps_mask(_mm512_loadu_ps(row + f), zero, _CMP_GT_OQ);
    while (mask != 0) {
      const int bit = __builtin_ctz(mask);
      index->push_back(static_cast<std::uint32_t>(f + bit));
      value->push_back(row[f + bit]);
      mask &= mask - 1;
    }
  }
  return f;
}
#endif

}  // namespace

void appendPositive(const float* row, std::int64_t n, std::vector<std::uint32_t>* index, std::vector<float>* value) {
  std::int64_t from = 0;
#ifdef MONOSCOPE_X86_KERNELS
  static const bool avx512 = __builtin_cpu_supports("avx512f") != 0;
  if (avx512) from = appendPositiveAvx512(row, n, index, value);
#endif
  appendPositiveScalar(row, from, n, index, value);
}

void appendPositiveRows(const float* a, std::int64_t rows, std::int64_t n, SparseRows* out) {
  for (std::int64_t r = 0; r < rows; ++r) {
    appendPositive(a + r * n, n, &out->features, &out->acts);
    out->offsets.push_back(static_cast<std::uint32_t>(out->features.size()));
  }
}

void appendRows(const SparseRows& part, SparseRows* out) {
  const std::size_t base = out->features.size();
  if (base + part.features.size() > std::numeric_limits<std::uint32_t>::max()) {
    throw Error(std::to_string(out->rows() + part.rows()) + " rows hold " + std::to_string(base + part.features.size()) +
                    " activations, more than 2^32",
                "encode fewer rows at a time (a smaller batch of windows)");
  }
  out->features.insert(out->features.end(), part.features.begin(), part.features.end());
  out->acts.insert(out->acts.end(), part.acts.begin(), part.acts.end());
  for (std::size_t r = 1; r < part.offsets.size(); ++r)
    out->offsets.push_back(static_cast<std::uint32_t>(base + part.offsets[r]));
}

}  // namespace monoscope::core
