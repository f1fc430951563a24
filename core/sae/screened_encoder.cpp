#include "sae/screened_encoder.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "util/runtime.h"

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports the deliberately undefined lanes inside its own AVX-512 reductions.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define MONOSCOPE_AMX_KERNELS 1
#define MONOSCOPE_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,fma")))
#endif

namespace monoscope::core {

namespace {

constexpr std::int64_t kTileK = 32;   // bf16 values in a tile row (64 bytes)
constexpr std::int64_t kPanel = 32;   // rows and features of a 2 x 2 block of 16 x 16 tiles
constexpr std::int64_t kChunk = 256;  // rows converted to bf16 at a time

std::int64_t roundUp(std::int64_t v, std::int64_t m) { return (v + m - 1) / m * m; }

std::atomic<bool>& enabledFlag() {
  static std::atomic<bool> on{!switchedOff("MONOSCOPE_SCREENED_ENCODER")};
  return on;
}

// AMX-BF16 and AMX-TILE in CPUID, and the kernel's permission to use the tile data (Linux asks
// each process to request it: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)).
bool amxUsable() {
#ifdef MONOSCOPE_AMX_KERNELS
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid_max(0, nullptr) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
    if (!amx_bf16 || !amx_tile || __builtin_cpu_supports("avx512bw") == 0) return false;
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
#else
  return false;
#endif
}

// bf16 by rounding to nearest even (inputs are finite).
std::uint16_t toBf16(float f) {
  std::uint32_t u = 0;
  std::memcpy(&u, &f, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

}  // namespace

// Everything the kernel reads, padded: features to a multiple of 32 (padded ones can never pass
// the screen), d_in to a multiple of 32 (zeros).
struct ScreenedEncoder::Weights {
  std::int64_t d_in = 0, d_sae = 0, kpad = 0, fpad = 0;
  std::vector<std::uint16_t> tiles;  // [fpad / 16][kpad / 2][16][2]: B tiles in the pairs layout
  std::vector<float> wt;             // [d_sae][d_in]: W_enc transposed, for the exact dots
  std::vector<float> bias, gate;     // b_enc; the pre-activation a feature must exceed
  std::vector<float> base, wnorm;    // per feature: gate - b_enc - slack, ||W_enc[:, j]||
  float c = 0;                       // the screen's relative bound (see the constructor)
  float slack_x = 0;                 // per unit of a row's largest |x|
};

bool ScreenedEncoder::supported() { return enabledFlag().load() && amxUsable(); }

bool ScreenedEncoder::setEnabled(bool on) { return enabledFlag().exchange(on); }

ScreenedEncoder::ScreenedEncoder(const float* W_enc, const float* b_enc, const float* threshold, std::int64_t d_in,
                                 std::int64_t d_sae)
    : w_(std::make_unique<Weights>()) {
  Weights& w = *w_;
  w.d_in = d_in;
  w.d_sae = d_sae;
  w.kpad = roundUp(d_in, kTileK);
  w.fpad = roundUp(d_sae, kPanel);
  w.tiles.assign(static_cast<std::size_t>(w.fpad * w.kpad), 0);
  w.wt.resize(static_cast<std::size_t>(d_sae * d_in));
  w.bias.assign(static_cast<std::size_t>(w.fpad), 0.0f);
  w.gate.assign(static_cast<std::size_t>(w.fpad), 0.0f);
  w.base.assign(static_cast<std::size_t>(w.fpad), INFINITY);
  w.wnorm.assign(static_cast<std::size_t>(w.fpad), 0.0f);
  // The bound. With u = 2^-8 (bf16's unit roundoff), |x.w - bf16(x).bf16(w)| <= (2u + u^2) sum|x_i w_i|
  // <= (2u + u^2) ||x|| ||w|| (Cauchy-Schwarz); the tile product's fp32 sums, the exact fp32 dot and
  // the fp32 norms each add at most ~d_in 2^-24 relative; 25% on top. Values flushed as denormals
  // (below 2^-126) add at most d_in 2^-126 (max|x| + max|w| + 1), covered by the slack terms.
  const double u = std::ldexp(1.0, -8), g = static_cast<double>(d_in) * std::ldexp(1.0, -24);
  w.c = static_cast<float>(1.25 * (2 * u + u * u + 4 * g));
  const double slack_unit = static_cast<double>(d_in) * std::ldexp(1.0, -120);
  w.slack_x = static_cast<float>(slack_unit);
  for (std::int64_t j = 0; j < d_sae; ++j) {
    double sq = 0, mx = 0;
    for (std::int64_t k = 0; k < d_in; ++k) {
      const float v = W_enc[k * d_sae + j];
      w.wt[static_cast<std::size_t>(j * d_in + k)] = v;
      sq += static_cast<double>(v) * v;
      mx = std::max(mx, static_cast<double>(std::fabs(v)));
      w.tiles[static_cast<std::size_t>(((j / 16) * (w.kpad / 2) + k / 2) * 32 + (j % 16) * 2 + (k % 2))] = toBf16(v);
    }
    const auto js = static_cast<std::size_t>(j);
    w.bias[js] = b_enc[j];
    w.gate[js] = threshold != nullptr ? std::max(0.0f, threshold[j]) : 0.0f;
    w.wnorm[js] = static_cast<float>(std::sqrt(sq) * (1 + 1e-6));
    w.base[js] = static_cast<float>(static_cast<double>(w.gate[js]) - b_enc[j] - slack_unit * (mx + 1));
  }
}

ScreenedEncoder::~ScreenedEncoder() = default;

std::int64_t ScreenedEncoder::d_in() const { return w_->d_in; }
std::int64_t ScreenedEncoder::d_sae() const { return w_->d_sae; }

#ifdef MONOSCOPE_AMX_KERNELS
namespace {

struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

// The fp32 dot product every activation comes from: fixed order (four 16-lane sums, tail masked).
MONOSCOPE_AMX inline float exactDot(const float* a, const float* b, std::int64_t k) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= k; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < k) {
    const __mmask16 m = static_cast<__mmask16>((1u << (k - i)) - 1u);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

// One chunk's rows to bf16 (rows past `rows` and columns past d_in zero), with each row's norm
// and largest magnitude.
MONOSCOPE_AMX void convertRows(const float* x, std::int64_t rows, std::int64_t rpad, std::int64_t d_in,
                               std::int64_t kpad, std::uint16_t* xb, float* norm, float* maxabs) {
  const __m512i round = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
  for (std::int64_t r = 0; r < rpad; ++r) {
    std::uint16_t* dst = xb + r * kpad;
    if (r >= rows) {
      std::memset(dst, 0, static_cast<std::size_t>(kpad) * 2);
      norm[r] = 0;
      maxabs[r] = 0;
      continue;
    }
    const float* src = x + r * d_in;
    __m512 sq = _mm512_setzero_ps(), mx = _mm512_setzero_ps();
    for (std::int64_t k = 0; k < kpad; k += 16) {
      const std::int64_t left = std::min<std::int64_t>(16, std::max<std::int64_t>(0, d_in - k));
      const __mmask16 m = static_cast<__mmask16>(left >= 16 ? 0xffffu : (1u << left) - 1u);
      const __m512 v = _mm512_maskz_loadu_ps(m, src + k);
      sq = _mm512_fmadd_ps(v, v, sq);
      mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
      __m512i bits = _mm512_castps_si512(v);
      bits = _mm512_add_epi32(bits, _mm512_add_epi32(round, _mm512_and_si512(_mm512_srli_epi32(bits, 16), one)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k), _mm512_cvtepi32_epi16(_mm512_srli_epi32(bits, 16)));
    }
    norm[r] = std::sqrt(_mm512_reduce_add_ps(sq));
    maxabs[r] = _mm512_reduce_max_ps(mx);
  }
}

}  // namespace
#endif

#ifdef MONOSCOPE_AMX_KERNELS
namespace {

// The screen of one stored 32 x 32 block (rows rp.., features jp..), then the exact dot for each
// pair that passes it. Blocks are screened in order, so each row's features arrive ascending.
template <class Sink>
MONOSCOPE_AMX void screenBlock(const ScreenedEncoder::Weights& w, const float (*t)[16][16], std::int64_t jp,
                               std::int64_t rp, std::int64_t rows, std::int64_t c0, const float* xc,
                               const float* scaled, const float* slack, Sink& sink) {
  for (int half = 0; half < 2; ++half) {
    for (int i = 0; i < 16; ++i) {
      const std::int64_t r = rp + half * 16 + i;
      if (r >= rows) return;
      const __m512 sr = _mm512_set1_ps(scaled[r]);
      const __m512 sl = _mm512_set1_ps(slack[r]);
      for (int ct = 0; ct < 2; ++ct) {
        const std::int64_t j0 = jp + ct * 16;
        const __m512 lim = _mm512_sub_ps(
            _mm512_fnmadd_ps(sr, _mm512_loadu_ps(w.wnorm.data() + j0), _mm512_loadu_ps(w.base.data() + j0)), sl);
        unsigned mask = _mm512_cmp_ps_mask(_mm512_load_ps(t[half * 2 + ct][i]), lim, _CMP_GE_OQ);
        while (mask != 0) {
          const std::int64_t j = j0 + __builtin_ctz(mask);
          mask &= mask - 1;
          const auto js = static_cast<std::size_t>(j);
          const float pre = exactDot(xc + r * w.d_in, w.wt.data() + j * w.d_in, w.d_in) + w.bias[js];
          if (pre > w.gate[js]) sink.put(c0 + r, r, static_cast<std::uint32_t>(j), pre);
        }
      }
    }
  }
}

template <class Sink>
MONOSCOPE_AMX void runAmx(const ScreenedEncoder::Weights& w, const float* x, std::int64_t n, Sink& sink) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  std::vector<std::uint16_t> xb(static_cast<std::size_t>(kChunk * w.kpad));
  std::vector<float> norm(kChunk), maxabs(kChunk), scaled(kChunk), slack(kChunk);
  // Two result buffers: a block's tiles are stored while the previous block is screened, so the
  // screen and the exact dots run beside the tile products instead of after them.
  alignas(64) float c[2][4][16][16];
  const std::int64_t ksteps = w.kpad / kTileK, pairs = w.kpad / 2;
  for (std::int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const std::int64_t rows = std::min(kChunk, n - c0), rpad = roundUp(rows, kPanel);
    const float* xc = x + c0 * w.d_in;
    convertRows(xc, rows, rpad, w.d_in, w.kpad, xb.data(), norm.data(), maxabs.data());
    for (std::int64_t r = 0; r < rows; ++r) {
      scaled[static_cast<std::size_t>(r)] = w.c * norm[static_cast<std::size_t>(r)];
      slack[static_cast<std::size_t>(r)] = w.slack_x * maxabs[static_cast<std::size_t>(r)];
    }
    sink.begin(c0, rows);
    std::int64_t prev_jp = -1, prev_rp = 0;
    int buf = 0;
    for (std::int64_t jp = 0; jp < w.fpad; jp += kPanel) {
      const std::uint16_t* b0 = w.tiles.data() + (jp / 16) * pairs * 32;
      const std::uint16_t* b1 = b0 + pairs * 32;
      for (std::int64_t rp = 0; rp < rpad; rp += kPanel) {
        const std::uint16_t* a0 = xb.data() + rp * w.kpad;
        const std::uint16_t* a1 = a0 + 16 * w.kpad;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (std::int64_t s = 0; s < ksteps; ++s) {
          _tile_loadd(4, a0 + s * kTileK, w.kpad * 2);
          _tile_loadd(5, a1 + s * kTileK, w.kpad * 2);
          _tile_loadd(6, b0 + s * 16 * 32, 64);
          _tile_loadd(7, b1 + s * 16 * 32, 64);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
        if (prev_jp >= 0) screenBlock(w, c[buf ^ 1], prev_jp, prev_rp, rows, c0, xc, scaled.data(), slack.data(), sink);
        _tile_stored(0, c[buf][0], 64);
        _tile_stored(1, c[buf][1], 64);
        _tile_stored(2, c[buf][2], 64);
        _tile_stored(3, c[buf][3], 64);
        prev_jp = jp;
        prev_rp = rp;
        buf ^= 1;
      }
    }
    if (prev_jp >= 0) screenBlock(w, c[buf ^ 1], prev_jp, prev_rp, rows, c0, xc, scaled.data(), slack.data(), sink);
    sink.end(rows);
  }
  _tile_release();
}

}  // namespace
#endif

template <class Sink>
void ScreenedEncoder::run(const float* x, std::int64_t n, Sink& sink) const {
#ifdef MONOSCOPE_AMX_KERNELS
  if (amxUsable()) {
    runAmx(*w_, x, n, sink);
    return;
  }
#endif
  (void)x;
  (void)n;
  (void)sink;
  throw std::logic_error("the screened SAE encoder needs AMX-BF16 (callers check ScreenedEncoder::supported)");
}

namespace {

// Rows of one chunk collected in feature order, then appended in row order.
struct SparseSink {
  SparseRows* out;
  std::vector<std::vector<std::pair<std::uint32_t, float>>> rows{static_cast<std::size_t>(kChunk)};
  void begin(std::int64_t, std::int64_t n) {
    for (std::int64_t r = 0; r < n; ++r) rows[static_cast<std::size_t>(r)].clear();
  }
  void put(std::int64_t, std::int64_t r, std::uint32_t j, float v) { rows[static_cast<std::size_t>(r)].emplace_back(j, v); }
  void end(std::int64_t n) {
    for (std::int64_t r = 0; r < n; ++r) {
      for (const auto& [j, v] : rows[static_cast<std::size_t>(r)]) {
        out->features.push_back(j);
        out->acts.push_back(v);
      }
      out->offsets.push_back(static_cast<std::uint32_t>(out->features.size()));
    }
  }
};

struct DenseSink {
  float* out;
  std::int64_t d_sae;
  void begin(std::int64_t, std::int64_t) {}
  void put(std::int64_t row, std::int64_t, std::uint32_t j, float v) { out[row * d_sae + j] = v; }
  void end(std::int64_t) {}
};

}  // namespace

void ScreenedEncoder::encode(const float* x, std::int64_t n, SparseRows* out) const {
  SparseSink sink{out};
  run(x, n, sink);
}

void ScreenedEncoder::encodeDense(const float* x, std::int64_t n, float* out) const {
  std::fill(out, out + n * w_->d_sae, 0.0f);
  DenseSink sink{out, w_->d_sae};
  run(x, n, sink);
}

}  // namespace monoscope::core
