#pragma once
// One scanned window in compact form: its token ids and, per position, the active features and
// their activations (features ascending). Stored as one blob per window in a scan database.
#include <cstdint>
#include <string>
#include <vector>

namespace monoscope::core {

struct WindowLog {
  std::vector<std::int32_t> tokens;     // [n]
  std::vector<std::uint32_t> offsets;   // [n + 1]: position p's entries are [offsets[p], offsets[p+1])
  std::vector<std::uint32_t> features;  // [nnz]
  std::vector<float> acts;              // [nnz]

  std::size_t size() const { return tokens.size(); }
  // The activation of `feature` at position p (0 when inactive).
  float value(std::size_t p, std::uint32_t feature) const;

  std::string serialize() const;
  // Throws Error naming `where` for a malformed blob.
  static WindowLog parse(const void* data, std::size_t n, const std::string& where);
};

// Deterministic 64-bit hash for reservoir priorities (splitmix64 over the inputs).
std::uint64_t mixHash(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d);

}  // namespace monoscope::core
