#include "store/sqlite.h"

#include <cerrno>
#include <cstring>

#include <sqlite3.h>

#include "util/error.h"

namespace monoscope::core {

Sqlite::Sqlite(const std::string& path, Open mode) : path_(path) {
  int flags = SQLITE_OPEN_NOMUTEX;
  if (mode == Open::ReadOnly) flags |= SQLITE_OPEN_READONLY;
  if (mode == Open::ReadWrite) flags |= SQLITE_OPEN_READWRITE;
  if (mode == Open::Create) flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    if (mode != Open::Create && (rc == SQLITE_CANTOPEN))
      throw Error("feature database '" + path + "' cannot be opened (" + msg + ")", "check that the file exists and is readable");
    throw Error("feature database '" + path + "' cannot be opened: " + msg);
  }
  sqlite3_busy_timeout(db_, 2000);
  sqlite3_extended_result_codes(db_, 1);
}

Sqlite::~Sqlite() { sqlite3_close_v2(db_); }

void Sqlite::fail(int rc, const std::string& doing) const {
  const int primary = rc & 0xff;
  const std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  const std::string where = "feature database '" + path_ + "'";
  if (primary == SQLITE_NOTADB) throw Error(where + " is not a database", "open a .db file written by monoscope-cli index or merge");
  if (primary == SQLITE_CORRUPT) throw Error(where + " is corrupt (" + msg + ")", "rebuild it with monoscope-cli index");
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
    throw Error(where + " is locked by another process while " + doing, "close the other program using it and try again");
  if (primary == SQLITE_READONLY)
    throw Error(where + " is read-only; cannot save while " + doing, "copy it somewhere writable or fix its permissions");
  const int sys = db_ ? sqlite3_system_errno(db_) : 0;
  if (primary == SQLITE_FULL || (primary == SQLITE_IOERR && (sys == ENOSPC || sys == EFBIG)))
    throw Error(where + ": the disk is full (or the file-size limit is reached) while " + doing,
                "free some space and run again: an interrupted index resumes, and a database being replaced is untouched");
  if (primary == SQLITE_IOERR)
    throw Error(where + ": input/output error while " + doing + " (" + msg + (sys ? std::string("; ") + std::strerror(sys) : "") + ")",
                "check the disk's free space (a full disk can show as an I/O error), then run again: an interrupted "
                "index resumes, and a database being replaced is untouched");
  throw Error(where + ": " + msg + " while " + doing);
}

void Sqlite::exec(const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (err) sqlite3_free(err);
  if (rc != SQLITE_OK) fail(rc, "running '" + sql.substr(0, 40) + "'");
}

std::int64_t Sqlite::lastInsertId() const { return sqlite3_last_insert_rowid(db_); }

int Sqlite::userVersion() {
  auto st = prepare("PRAGMA user_version");
  st.step();
  return static_cast<int>(st.integer(0));
}

void Sqlite::setUserVersion(int v) { exec("PRAGMA user_version = " + std::to_string(v)); }

bool Sqlite::hasTable(const std::string& name) {
  auto st = prepare("SELECT 1 FROM sqlite_master WHERE type IN ('table','view') AND name = ?");
  st.bind(1, name);
  return st.step();
}

Statement::Statement(Sqlite& db, const std::string& sql) : db_(&db) {
  const int rc = sqlite3_prepare_v2(db.raw(), sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) db.fail(rc, "reading");
}

Statement::~Statement() { sqlite3_finalize(stmt_); }
Statement::Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }

Statement& Statement::bind(int i, std::int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
Statement& Statement::bind(int i, double v) {
  sqlite3_bind_double(stmt_, i, v);
  return *this;
}
Statement& Statement::bind(int i, std::string_view t) {
  sqlite3_bind_text(stmt_, i, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::bindBlob(int i, const void* data, std::size_t n) {
  sqlite3_bind_blob64(stmt_, i, n ? data : "", n, SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::bindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_->fail(rc, "reading or writing");
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::int64_t Statement::integer(int c) const { return sqlite3_column_int64(stmt_, c); }
double Statement::real(int c) const { return sqlite3_column_double(stmt_, c); }
bool Statement::isNull(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
std::string Statement::text(int c) const {
  const auto* p = sqlite3_column_text(stmt_, c);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, c))) : std::string();
}
const void* Statement::blob(int c) const { return sqlite3_column_blob(stmt_, c); }
std::size_t Statement::blobSize(int c) const { return static_cast<std::size_t>(sqlite3_column_bytes(stmt_, c)); }

Transaction::Transaction(Sqlite& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
Transaction::~Transaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
    }
  }
}
void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace monoscope::core
