#pragma once
// Dictionary test helpers shared by test_sae and test_transcoders.
#include <QtTest>
#include <c10/core/Device.h>

#include <string>

#include "sae/sae.h"
#include "util/error.h"

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

}  // namespace testutil
