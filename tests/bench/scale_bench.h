#pragma once
// Scale benchmarks of monoscope-bench (scale_bench.cpp).
#include <cstdint>
#include <string>

namespace monoscope::bench {

// This process's peak resident memory (getrusage), MB.
double peakRssMb();
// A synthetic feature database of n features, `sample` of them (evenly spaced) with examples.
int writeSyntheticDb(const std::string& path, std::int64_t n, std::int64_t sample, int vocab);
// Page, sort, scroll, search-as-you-type and map-layer timings on a database; peak RSS.
int benchScale(const std::string& path, int queries);
// HNSW neighbour graph of n random d-dimensional directions: build time and peak RSS.
int benchHnsw(std::int64_t n, std::int64_t d, int threads);
// A synthetic TopK SAE of n features at width d (F16, written into `dir` once) opened with
// `model` (d_model = d): open time, every engine query's time, peak RSS.
int benchWideSae(const std::string& model, const std::string& dir, std::int64_t n, std::int64_t d);

}  // namespace monoscope::bench
