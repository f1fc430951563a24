#pragma once
// Causal attention for inference in one pass per query block: scores, softmax and the weighted
// sum of values are computed together in registers and a small scratch buffer, so the masked
// half of the score matrix is never formed and no score tensor is written out. AVX-512 (fp32);
// where the CPU lacks it the caller uses LibTorch's products instead.
//
// Plain pointers and strides (in floats); each of q, k, v and out has its last dimension
// contiguous. Query i of T sees keys 0 .. S - T + i (the cache's keys first).
#include <cstdint>

namespace monoscope::core {

struct AttentionArgs {
  const float* q = nullptr;  // [B, H, T, dh]
  std::int64_t q_b = 0, q_h = 0, q_t = 0;
  const float* k = nullptr;  // [B, Hkv, S, dh]
  std::int64_t k_b = 0, k_h = 0, k_t = 0;
  const float* v = nullptr;  // [B, Hkv, S, dh]
  std::int64_t v_b = 0, v_h = 0, v_t = 0;
  float* out = nullptr;  // [B, H, T, dh]
  std::int64_t o_b = 0, o_h = 0, o_t = 0;
  std::int64_t B = 0, H = 0, Hkv = 0, T = 0, S = 0, dh = 0;
  float scale = 1.0f;  // applied to q . k
};

// True when this CPU runs the kernel (AVX-512F) and head sizes are multiples of 16.
bool fusedAttentionSupported(std::int64_t d_head);
// Turns the kernel on or off process-wide (on by default where supported; the environment
// variable MONOSCOPE_FUSED_ATTENTION=0 starts with it off); returns the previous setting.
bool setFusedAttention(bool on);
bool fusedAttentionEnabled();

// Computes the heads [bh0, bh1) of the flattened batch x heads; several threads may run
// disjoint ranges at once.
void fusedCausalAttention(const AttentionArgs& a, std::int64_t bh0, std::int64_t bh1);

}  // namespace monoscope::core
