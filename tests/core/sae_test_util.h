#pragma once
// Dictionary test helpers shared by test_sae and test_transcoders.
#include <QtTest>
#include <c10/core/Device.h>

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

}  // namespace testutil
