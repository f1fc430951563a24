#pragma once
// The positive entries of a dense row, found 16 at a time with AVX-512 where the CPU has it (an
// SAE's activations are mostly zero: a few dozen of thousands of features per token).
#include <cstdint>
#include <vector>

namespace monoscope::core {

// Positive activations of consecutive rows: row r's features (ascending) and values are
// features[offsets[r] .. offsets[r + 1]).
struct SparseRows {
  std::vector<std::uint32_t> offsets{0};
  std::vector<std::uint32_t> features;
  std::vector<float> acts;
  std::int64_t rows() const { return static_cast<std::int64_t>(offsets.size()) - 1; }
};

// Appends (index, value) of every entry of row[0 .. n) greater than 0, indices ascending.
void appendPositive(const float* row, std::int64_t n, std::vector<std::uint32_t>* index, std::vector<float>* value);
// The same for each row of a [rows, n] row-major matrix, appended to `out` as rows.
void appendPositiveRows(const float* a, std::int64_t rows, std::int64_t n, SparseRows* out);
// Appends the rows of `part` to `out`. Throws Error when `out` would pass 2^32 entries.
void appendRows(const SparseRows& part, SparseRows* out);

}  // namespace monoscope::core
