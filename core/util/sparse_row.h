#pragma once
// The positive entries of a dense row, found 16 at a time with AVX-512 where the CPU has it (an
// SAE's activations are mostly zero: a few dozen of thousands of features per token).
#include <cstdint>
#include <vector>

namespace monoscope::core {

// Appends (index, value) of every entry of row[0 .. n) greater than 0, indices ascending.
void appendPositive(const float* row, std::int64_t n, std::vector<std::uint32_t>* index, std::vector<float>* value);

}  // namespace monoscope::core
