#pragma once
// Read-only memory map of a whole file (RAII).
#include <cstddef>
#include <cstdint>
#include <string>

namespace monoscope::core {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);  // throws Error naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void release();
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// Throws Error naming the path unless it is an existing regular file (not a directory, FIFO or
// device, which would read as empty or block).
void requireRegularFile(const std::string& path);

// Reads a whole (small) file into a string; throws Error naming the path.
std::string readTextFile(const std::string& path);

// Writes `bytes` to `path` through a temporary file and an atomic rename, so a failed
// write (disk full, interrupted) leaves any previous file intact.
void writeFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace monoscope::core
