#include "index/window_log.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"

namespace monoscope::core {

WindowLog WindowLog::fromRows(const SparseRows& rows, std::int64_t first, std::int64_t n, std::vector<std::int32_t> tokens,
                              std::int64_t from, std::int32_t boundary, const bool* massive) {
  if (static_cast<std::int64_t>(tokens.size()) != n || first < 0 || first + n > rows.rows())
    throw Error("window record: " + std::to_string(n) + " positions from row " + std::to_string(first) + " of " +
                std::to_string(rows.rows()) + " with " + std::to_string(tokens.size()) + " tokens");
  WindowLog log;
  log.tokens = std::move(tokens);
  const auto at = [&](std::int64_t r) { return rows.offsets[static_cast<std::size_t>(first + r)]; };
  log.offsets.reserve(static_cast<std::size_t>(n + 1));
  log.offsets.push_back(0);
  for (std::int64_t p = 0; p < n; ++p) {
    const bool kept = p >= from && log.tokens[static_cast<std::size_t>(p)] != boundary && (massive == nullptr || !massive[p]);
    if (kept) {
      log.features.insert(log.features.end(), rows.features.begin() + at(p), rows.features.begin() + at(p + 1));
      log.acts.insert(log.acts.end(), rows.acts.begin() + at(p), rows.acts.begin() + at(p + 1));
    }
    log.offsets.push_back(static_cast<std::uint32_t>(log.features.size()));
  }
  return log;
}

float WindowLog::value(std::size_t p, std::uint32_t feature) const {
  const auto b = features.begin() + offsets[p], e = features.begin() + offsets[p + 1];
  const auto it = std::lower_bound(b, e, feature);
  return it != e && *it == feature ? acts[static_cast<std::size_t>(it - features.begin())] : 0.0f;
}

namespace {
template <typename T>
void put(std::string& out, const std::vector<T>& v) {
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}
}  // namespace

std::string WindowLog::serialize() const {
  std::string out;
  const std::uint32_t n = static_cast<std::uint32_t>(tokens.size()), nnz = static_cast<std::uint32_t>(features.size());
  out.append(reinterpret_cast<const char*>(&n), 4);
  out.append(reinterpret_cast<const char*>(&nnz), 4);
  put(out, tokens);
  put(out, offsets);
  put(out, features);
  put(out, acts);
  return out;
}

WindowLog WindowLog::parse(const void* data, std::size_t size, const std::string& where) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  auto bad = [&](const char* what) -> WindowLog { throw Error(where + ": malformed window record (" + what + ")", "rerun the scan"); };
  if (size < 8) return bad("too short");
  std::uint32_t n = 0, nnz = 0;
  std::memcpy(&n, p, 4);
  std::memcpy(&nnz, p + 4, 4);
  const std::uint64_t need = 8 + 4ull * n + 4ull * (n + 1ull) + 8ull * nnz;
  if (need != size) return bad("size mismatch");
  WindowLog w;
  w.tokens.resize(n);
  w.offsets.resize(n + 1ull);
  w.features.resize(nnz);
  w.acts.resize(nnz);
  const std::uint8_t* q = p + 8;
  std::memcpy(w.tokens.data(), q, 4ull * n);
  q += 4ull * n;
  std::memcpy(w.offsets.data(), q, 4ull * (n + 1ull));
  q += 4ull * (n + 1ull);
  std::memcpy(w.features.data(), q, 4ull * nnz);
  q += 4ull * nnz;
  std::memcpy(w.acts.data(), q, 4ull * nnz);
  if (w.offsets[0] != 0 || w.offsets[n] != nnz) return bad("offsets");
  for (std::uint32_t i = 0; i < n; ++i)
    if (w.offsets[i] > w.offsets[i + 1]) return bad("offsets");
  return w;
}

std::uint64_t mixHash(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) {
  auto mix = [](std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(mix(a) ^ b) ^ c) ^ d);
}

}  // namespace monoscope::core
