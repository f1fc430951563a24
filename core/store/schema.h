#pragma once
// The feature database's schema: versioned by PRAGMA user_version, upgraded by migrations.
#include <string>

namespace monoscope::core {

class Sqlite;

constexpr int kFeatureSchemaVersion = 4;
constexpr int kScanSchemaVersion = 1;

// Applies every migration from the file's user_version up to kFeatureSchemaVersion, each in
// its own transaction. `up_to` < kFeatureSchemaVersion stops early (tests build old files).
void migrateFeatureSchema(Sqlite& db, int up_to = kFeatureSchemaVersion);

// The tables of a scan (an unmerged index shard): meta and one row per scanned window.
void createScanSchema(Sqlite& db);

// Sets WAL and the pragmas used for every connection that writes.
void configureWriter(Sqlite& db);

// meta table helpers (key/value text).
void putMeta(Sqlite& db, const std::string& key, const std::string& value);
std::string getMeta(Sqlite& db, const std::string& key, const std::string& fallback = {});

}  // namespace monoscope::core
