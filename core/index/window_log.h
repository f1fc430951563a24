#pragma once
// One scanned window in compact form: its token ids and, per position, the active features and
// their activations (features ascending). Stored as one blob per window in a scan database.
#include <cstdint>
#include <string>
#include <vector>

#include "util/sparse_row.h"

namespace monoscope::core {

struct WindowLog {
  std::vector<std::int32_t> tokens;     // [n]
  std::vector<std::uint32_t> offsets;   // [n + 1]: position p's entries are [offsets[p], offsets[p+1])
  std::vector<std::uint32_t> features;  // [nnz]
  std::vector<float> acts;              // [nnz]

  std::size_t size() const { return tokens.size(); }
  // The activation of `feature` at position p (0 when inactive).
  float value(std::size_t p, std::uint32_t feature) const;

  // The record of one window whose positions are rows [first, first + n) of `rows`. Positions
  // before `from` (the first one, an attention sink, when it is skipped), those holding the token
  // `boundary` (the end-of-text token between documents, a sink of its own; -1: none) and those
  // `massive` marks (n flags: rows whose norm is far above the median, secondary sinks such as
  // the second position of a window that starts inside a number; null: none) record no
  // activations; their tokens stay as context.
  static WindowLog fromRows(const SparseRows& rows, std::int64_t first, std::int64_t n, std::vector<std::int32_t> tokens,
                            std::int64_t from, std::int32_t boundary, const bool* massive);

  std::string serialize() const;
  // Throws Error naming `where` for a malformed blob.
  static WindowLog parse(const void* data, std::size_t n, const std::string& where);
};

// Deterministic 64-bit hash for reservoir priorities (splitmix64 over the inputs).
std::uint64_t mixHash(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d);

}  // namespace monoscope::core
