#pragma once
// safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.
// Reading is memory-mapped; every offset, shape and dtype is validated against the file.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/mapped_file.h"

namespace monoscope::core {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

std::size_t dtypeSize(DType dtype);
const char* dtypeName(DType dtype);
// Parses a safetensors dtype string ("F32", ...); returns false when unknown.
bool parseDType(const std::string& name, DType* out);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  const std::uint8_t* data = nullptr;  // points into the mapped file
  std::size_t nbytes = 0;

  std::int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Limits a header may not exceed (a malicious file cannot make us allocate more).
  static constexpr std::uint64_t kMaxHeaderBytes = 100u * 1024u * 1024u;

  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws Error naming the file and the tensor when it is absent.
  const TensorView& tensor(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Copies a floating tensor to float32, converting F16/BF16/F64.
  std::vector<float> toFloat(const std::string& name) const;

 private:
  MappedFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Builds a safetensors file in memory and writes it atomically.
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, const std::vector<std::int64_t>& shape,
           const void* data, std::size_t nbytes);
  void addF32(const std::string& name, const std::vector<std::int64_t>& shape,
              const std::vector<float>& values);
  void setMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  std::string serialize() const;
  void write(const std::string& path) const;

 private:
  struct Entry {
    DType dtype;
    std::vector<std::int64_t> shape;
    std::string bytes;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Float conversions used when loading half-precision checkpoints.
float halfToFloat(std::uint16_t h);
float bfloat16ToFloat(std::uint16_t b);

}  // namespace monoscope::core
