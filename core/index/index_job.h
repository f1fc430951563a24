#pragma once
// Internal: the two halves of an index job. A scan writes one compact record per window into a
// scan database (resumable, one transaction per block); finalising reads one or more scans
// (the shards of one index) and writes the feature database atomically.
#include <map>
#include <string>
#include <vector>

#include "api/indexer.h"

namespace monoscope::core {

class Engine;

// Scans this shard's blocks into `scan_path`; throws Cancelled when cancelled.
void scanCorpus(const IndexOptions& options, const Engine& engine, const std::string& scan_path, const ProgressFn& progress);

// Writes the feature database `out` from complete scans; throws Cancelled when cancelled. With
// `engine` (the scan's own, same model and SAE) nothing is loaded again, so a model that fills
// memory is not held twice; else the model and SAE the scans name are opened.
void finalizeIndex(const std::vector<std::string>& scans, const std::string& out, const std::string& device,
                   int threads, const ProgressFn& progress, const Engine* engine = nullptr);

// The settings a scan records (and that must agree between shards and on resume).
std::map<std::string, std::string> scanSettings(const IndexOptions& options, const Engine& engine, std::int64_t windows,
                                                std::int64_t context);

}  // namespace monoscope::core
