#pragma once
// A thin RAII layer over SQLite: connection, prepared statement, transaction. <sqlite3.h> stays
// in sqlite.cpp; errors name the database file and say what to do.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace monoscope::core {

class Sqlite;

class Statement {
 public:
  Statement(Sqlite& db, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& o) noexcept;

  Statement& bind(int index, std::int64_t v);
  Statement& bind(int index, int v) { return bind(index, static_cast<std::int64_t>(v)); }
  Statement& bind(int index, double v);
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Statement& bindBlob(int index, const void* data, std::size_t n);
  Statement& bindNull(int index);
  // Runs one step: true when a row is available.
  bool step();
  void reset();  // ready to bind and run again

  std::int64_t integer(int col) const;
  double real(int col) const;
  std::string text(int col) const;
  bool isNull(int col) const;
  const void* blob(int col) const;
  std::size_t blobSize(int col) const;
  template <typename T>
  std::vector<T> blobAs(int col) const {
    const auto n = blobSize(col) / sizeof(T);
    const T* p = static_cast<const T*>(blob(col));
    return p ? std::vector<T>(p, p + n) : std::vector<T>();
  }

 private:
  Sqlite* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class Sqlite {
 public:
  enum class Open { ReadOnly, ReadWrite, Create };
  Sqlite(const std::string& path, Open mode);
  ~Sqlite();
  Sqlite(const Sqlite&) = delete;
  Sqlite& operator=(const Sqlite&) = delete;

  void exec(const std::string& sql);
  Statement prepare(const std::string& sql) { return Statement(*this, sql); }
  std::int64_t lastInsertId() const;
  int userVersion();
  void setUserVersion(int v);
  bool hasTable(const std::string& name);
  const std::string& path() const { return path_; }
  sqlite3* raw() { return db_; }
  // Throws Error for result code `rc` with SQLite's message, naming the file.
  [[noreturn]] void fail(int rc, const std::string& doing) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back unless commit() was called.
class Transaction {
 public:
  explicit Transaction(Sqlite& db);
  ~Transaction();
  void commit();

 private:
  Sqlite& db_;
  bool done_ = false;
};

}  // namespace monoscope::core
