#pragma once
// A ReLU (or JumpReLU) SAE encoder that finds each row's positive activations without the full
// fp32 product: a bf16 product on the CPU's matrix tiles (AMX) screens every (row, feature) pair
// with a proven error bound, and only the pairs that could be positive are recomputed in fp32.
// The activations equal relu(x . W_enc[:, j] + b_enc[j]) with that fp32 dot, for every feature:
// a pair is passed over only when its bf16 estimate plus the bound is below zero, so no positive
// activation is missed. Deterministic: the result does not depend on threads or row grouping.
// Plain types only; the callers (Sae) own the LibTorch side.
#include <cstdint>
#include <memory>
#include <vector>

#include "util/sparse_row.h"

namespace monoscope::core {

class ScreenedEncoder {
 public:
  // True when the CPU has AMX-BF16, the kernel granted the process its tile state, and
  // MONOSCOPE_SCREENED_ENCODER is not 0.
  static bool supported();
  // Turns the encoder on or off for the process (tests compare both paths); returns the old state.
  static bool setEnabled(bool on);

  // W_enc [d_in, d_sae] row-major, b_enc [d_sae], threshold [d_sae] (JumpReLU) or nullptr (ReLU);
  // all finite. Copies what it needs (bf16 tiles, W_enc transposed, column norms).
  ScreenedEncoder(const float* W_enc, const float* b_enc, const float* threshold, std::int64_t d_in,
                  std::int64_t d_sae);
  ~ScreenedEncoder();
  ScreenedEncoder(const ScreenedEncoder&) = delete;
  ScreenedEncoder& operator=(const ScreenedEncoder&) = delete;

  // x [n, d_in] row-major (the encoder's input: normalised, less b_dec when the SAE says so).
  // Appends each row's positive activations to `out`. One thread; call from several on
  // different rows at once freely.
  void encode(const float* x, std::int64_t n, SparseRows* out) const;
  // The same written densely: out [n, d_sae], zeros where a feature is inactive.
  void encodeDense(const float* x, std::int64_t n, float* out) const;

  std::int64_t d_in() const;
  std::int64_t d_sae() const;

  struct Weights;  // the kernel's copy of the weights (opaque)

 private:
  template <class Sink>
  void run(const float* x, std::int64_t n, Sink& sink) const;
  std::unique_ptr<Weights> w_;
};

}  // namespace monoscope::core
