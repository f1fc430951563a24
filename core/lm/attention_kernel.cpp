#include "lm/attention_kernel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "util/runtime.h"

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports the deliberately undefined lanes inside its own AVX-512 reductions.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MONOSCOPE_X86_KERNELS 1
#define MONOSCOPE_AVX512 __attribute__((target("avx512f,fma")))
#endif

namespace monoscope::core {

namespace {

std::atomic<bool>& enabledFlag() {
  static std::atomic<bool> on{!switchedOff("MONOSCOPE_FUSED_ATTENTION")};
  return on;
}

bool cpuHasAvx512() {
#ifdef MONOSCOPE_X86_KERNELS
  static const bool has = __builtin_cpu_supports("avx512f") != 0;
  return has;
#else
  return false;
#endif
}

#ifdef MONOSCOPE_X86_KERNELS

// e^x, about 1 ulp: x = n ln 2 + r with |r| <= ln 2 / 2, a degree-6 polynomial for e^r (the
// Cephes expf coefficients), and 2^n applied exactly by scalef. Inputs below -87 give ~0.
MONOSCOPE_AVX512 inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

constexpr int kRows = 8;  // query rows per register block

// Register blocks: every loop over rows and vectors has a constant bound, so the compiler unrolls
// it and keeps the accumulators in registers (8 x 2 of the 32).

// Scaled scores of kRows query rows against W chunks of 16 keys at kc (transposed keys: dimension
// d of the chunk's 16 keys at kc + d * ks, the next chunk cs further), written to out (row stride
// os).
template <int W>
MONOSCOPE_AVX512 inline void scoreKeys(const float* const* qr, const float* kc, std::int64_t ks, std::int64_t cs, std::int64_t dh,
                                       __m512 scale, float* out, std::int64_t os) {
  __m512 s[kRows][W];
  for (int r = 0; r < kRows; ++r)
    for (int w = 0; w < W; ++w) s[r][w] = _mm512_setzero_ps();
  for (std::int64_t d = 0; d < dh; ++d) {
    __m512 kv[W];
    for (int w = 0; w < W; ++w) kv[w] = _mm512_loadu_ps(kc + d * ks + cs * w);
    for (int r = 0; r < kRows; ++r) {
      const __m512 q = _mm512_set1_ps(qr[r][d]);
      for (int w = 0; w < W; ++w) s[r][w] = _mm512_fmadd_ps(q, kv[w], s[r][w]);
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int w = 0; w < W; ++w) _mm512_storeu_ps(out + r * os + 16 * w, _mm512_mul_ps(s[r][w], scale));
}

// out[r][0 .. 16 W) = inv[r] * sum over keys j < keys of p[r][j] * v[j][0 .. 16 W) (v's row stride
// vs, p's ps), for the first `rows` of the kRows query rows.
template <int W>
MONOSCOPE_AVX512 inline void weightedValues(const float* p, std::int64_t ps, const float* v, std::int64_t vs, std::int64_t keys,
                                            float* const* out, const float* inv, int rows) {
  __m512 acc[kRows][W];
  for (int r = 0; r < kRows; ++r)
    for (int w = 0; w < W; ++w) acc[r][w] = _mm512_setzero_ps();
  for (std::int64_t j = 0; j < keys; ++j) {
    __m512 vv[W];
    for (int w = 0; w < W; ++w) vv[w] = _mm512_loadu_ps(v + j * vs + 16 * w);
    for (int r = 0; r < kRows; ++r) {
      const __m512 pr = _mm512_set1_ps(p[r * ps + j]);
      for (int w = 0; w < W; ++w) acc[r][w] = _mm512_fmadd_ps(pr, vv[w], acc[r][w]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows) continue;
    for (int w = 0; w < W; ++w) _mm512_storeu_ps(out[r] + 16 * w, _mm512_mul_ps(acc[r][w], _mm512_set1_ps(inv[r])));
  }
}

MONOSCOPE_AVX512 void headsAvx512(const AttentionArgs& a, std::int64_t bh0, std::int64_t bh1) {
  const std::int64_t T = a.T, S = a.S, dh = a.dh, group = a.H / a.Hkv;
  // Scratch rows one cache line longer than the keys need: with a row length that is a multiple
  // of 1 KiB, the rows read together would share a few cache sets.
  const std::int64_t Sp = (S + 15) / 16 * 16 + 16;
  std::vector<float> kt(static_cast<std::size_t>(dh * Sp), 0.0f), sc(static_cast<std::size_t>(kRows * Sp), 0.0f);
  std::vector<float> vc(static_cast<std::size_t>(S * dh));
  const __m512 scale = _mm512_set1_ps(a.scale);
  for (std::int64_t bh = bh0; bh < bh1; ++bh) {
    const std::int64_t b = bh / a.H, h = bh % a.H, g = h / group;
    const float* Q = a.q + b * a.q_b + h * a.q_h;
    const float* K = a.k + b * a.k_b + g * a.k_h;
    const float* V = a.v + b * a.v_b + g * a.v_h;
    float* O = a.out + b * a.o_b + h * a.o_h;
    // Keys transposed a chunk of 16 at a time ([Sp / 16][dh][16], zero past S, each chunk's 2 KiB
    // read in order) so 16 keys' scores accumulate in one register;
    // values copied together (GPT-2's rows lie 3 KiB apart, which defeats the prefetcher and
    // maps them to a few cache sets).
    for (std::int64_t j = 0; j < S; ++j) {
      if (j + 8 < S) {
        for (std::int64_t d = 0; d < dh; d += 16) {
          _mm_prefetch(reinterpret_cast<const char*>(K + (j + 8) * a.k_t + d), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(V + (j + 8) * a.v_t + d), _MM_HINT_T0);
        }
      }
      const float* kr = K + j * a.k_t;
      float* kj = kt.data() + (j / 16) * 16 * dh + j % 16;
      for (std::int64_t d = 0; d < dh; ++d) kj[d * 16] = kr[d];
      std::memcpy(vc.data() + j * dh, V + j * a.v_t, static_cast<std::size_t>(dh) * sizeof(float));
    }
    for (std::int64_t i0 = 0; i0 < T; i0 += kRows) {
      const int rows = static_cast<int>(std::min<std::int64_t>(kRows, T - i0));
      const std::int64_t last_keys = S - T + i0 + rows;  // what the block's last row sees
      const std::int64_t chunks = (last_keys + 15) / 16;
      const float* qr[kRows];
      for (int r = 0; r < kRows; ++r) qr[r] = Q + std::min<std::int64_t>(i0 + r, T - 1) * a.q_t;
      std::int64_t c = 0;
      for (; c + 2 <= chunks; c += 2) scoreKeys<2>(qr, kt.data() + c * 16 * dh, 16, 16 * dh, dh, scale, sc.data() + c * 16, Sp);
      if (c < chunks) scoreKeys<1>(qr, kt.data() + c * 16 * dh, 16, 16 * dh, dh, scale, sc.data() + c * 16, Sp);
      // Softmax of each row over the keys it sees; the weights of keys it does not see are 0.
      float inv[kRows] = {};
      for (int r = 0; r < kRows; ++r) {
        float* row = sc.data() + r * Sp;
        if (r >= rows) {
          std::fill(row, row + last_keys, 0.0f);
          continue;
        }
        const std::int64_t n = S - T + i0 + r + 1, full = n / 16;
        const auto tail = static_cast<__mmask16>((1u << (n % 16)) - 1u);
        __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
        for (std::int64_t k = 0; k < full; ++k) m = _mm512_max_ps(m, _mm512_loadu_ps(row + 16 * k));
        if (tail != 0) m = _mm512_mask_max_ps(m, tail, m, _mm512_loadu_ps(row + 16 * full));
        const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(m));
        __m512 sum = _mm512_setzero_ps();
        for (std::int64_t k = 0; k < full; ++k) {
          const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(row + 16 * k), mx));
          _mm512_storeu_ps(row + 16 * k, e);
          sum = _mm512_add_ps(sum, e);
        }
        if (tail != 0) {
          const __m512 e = _mm512_maskz_mov_ps(tail, exp512(_mm512_sub_ps(_mm512_loadu_ps(row + 16 * full), mx)));
          _mm512_storeu_ps(row + 16 * full, e);
          sum = _mm512_add_ps(sum, e);
        }
        for (std::int64_t j = n; j < last_keys; ++j) row[j] = 0.0f;
        inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
      }
      float* out[kRows];
      for (std::int64_t dg = 0; dg < dh; dg += 32) {
        for (int r = 0; r < kRows; ++r) out[r] = O + (i0 + std::min(r, rows - 1)) * a.o_t + dg;
        if (dh - dg >= 32) {
          weightedValues<2>(sc.data(), Sp, vc.data() + dg, dh, last_keys, out, inv, rows);
        } else {
          weightedValues<1>(sc.data(), Sp, vc.data() + dg, dh, last_keys, out, inv, rows);
        }
      }
    }
  }
}

#endif  // MONOSCOPE_X86_KERNELS

}  // namespace

bool fusedAttentionSupported(std::int64_t d_head) { return cpuHasAvx512() && d_head > 0 && d_head % 16 == 0; }

bool setFusedAttention(bool on) { return enabledFlag().exchange(on); }

bool fusedAttentionEnabled() { return enabledFlag().load(); }

void fusedCausalAttention(const AttentionArgs& a, std::int64_t bh0, std::int64_t bh1) {
#ifdef MONOSCOPE_X86_KERNELS
  if (fusedAttentionSupported(a.dh) && a.S >= a.T && a.Hkv > 0 && a.H % a.Hkv == 0) {
    // Denormals flushed to zero meanwhile: a peaked softmax leaves weights near 1e-38, whose
    // products with the values would otherwise take the slow path (results differ below 1e-38).
    struct FlushDenormals {
      unsigned saved = _mm_getcsr();
      FlushDenormals() { _mm_setcsr(saved | 0x8040u); }  // FTZ | DAZ
      ~FlushDenormals() { _mm_setcsr(saved); }
    } flush;
    headsAvx512(a, bh0, bh1);
    return;
  }
#endif
  (void)bh0;
  (void)bh1;
  throw std::logic_error("fused attention is not supported for heads of " + std::to_string(a.dh) +
                         " on this CPU (callers check fusedAttentionSupported)");
}

}  // namespace monoscope::core
