#pragma once
// Dictionary test helpers shared by test_sae and test_transcoders.
#include <QtTest>
#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "sae/sae.h"
#include "util/error.h"
#include "util/sparse_row.h"

namespace testutil {

// Sae::load(dir) must throw an Error whose message holds `needle`.
inline void expectSaeRefused(const std::string& dir, const std::string& needle) {
  try {
    monoscope::core::Sae::load(dir, c10::Device(c10::kCPU));
  } catch (const monoscope::core::Error& e) {
    QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
    return;
  }
  QFAIL(("no error for " + dir).c_str());
}

// encodeSparse(x) gives, bit for bit, the positive entries of encode(x) in feature order.
inline void expectSparseEncoding(const monoscope::core::Sae& sae, const at::Tensor& x) {
  monoscope::core::SparseRows got, want;
  QVERIFY(sae.encodeSparse(x, &got));
  const at::Tensor dense = sae.encode(x).to(at::kCPU, at::kFloat).contiguous();
  monoscope::core::appendPositiveRows(dense.data_ptr<float>(), dense.size(0), dense.size(1), &want);
  QVERIFY(got.offsets == want.offsets);
  QVERIFY(got.features == want.features);
  QVERIFY(got.acts == want.acts);
}

// An SAE that reconstructs its input exactly: relu(x) - relu(-x) = x with W_enc = [I, -I] and
// W_dec = [I; -I] (d_sae = 2 d), the input read without b_dec, so b_dec shifts the output; a
// topk one keeps all 2 d latents. At blocks.0.hook_resid_post.
inline std::unique_ptr<monoscope::core::Sae> exactSae(std::int64_t d, const at::Tensor& b_dec,
                                                      const std::string& architecture = "standard") {
  monoscope::core::SaeConfig cfg;
  cfg.architecture = architecture;
  cfg.d_in = d;
  cfg.d_sae = 2 * d;
  if (architecture == "topk") cfg.k = 2 * d;
  cfg.hook_name = "blocks.0.hook_resid_post";
  cfg.apply_b_dec_to_input = false;
  const at::Tensor I = at::eye(d);
  return std::make_unique<monoscope::core::Sae>(cfg, at::cat({I, -I}, 1), at::zeros({2 * d}), at::cat({I, -I}, 0), b_dec);
}

}  // namespace testutil
