#pragma once
// GGUF, llama.cpp's model file: a header, typed metadata key/values, a tensor table, then the
// tensor data (aligned). Reading is memory-mapped; every length, count, offset, type and shape is
// checked against the file before use, so a damaged or hostile file is refused with the field it
// got wrong. Quantised blocks are dequantised to float32 on request (gguf_quants).
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/mapped_file.h"

namespace monoscope::core {

// ggml's tensor types (the numbers stored in the file) that Monoscope can dequantise.
enum class GgmlType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  BF16 = 30,
};

struct GgmlTypeInfo {
  GgmlType type;
  const char* name;
  std::int64_t block_elems;  // values per block
  std::int64_t block_bytes;  // bytes per block
};

// The row for a type number, or nullptr when Monoscope does not know it.
const GgmlTypeInfo* ggmlTypeInfo(std::uint32_t type);
// "Q4_K", or "type 17" for numbers outside the table.
std::string ggmlTypeName(std::uint32_t type);

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<std::int64_t> ne;  // ggml order: ne[0] is the contiguous (innermost) dimension
  const std::uint8_t* data = nullptr;  // into the mapped file
  std::size_t nbytes = 0;
  std::uint64_t offset = 0;  // relative to the data section

  std::int64_t numel() const;
  // Shape in PyTorch order (outermost first): ne reversed.
  std::vector<std::int64_t> shape() const;
};

class GgufFile {
 public:
  // Limits a file may not exceed, so that a hostile header cannot make us allocate without bound.
  static constexpr std::uint64_t kMaxTensors = 1u << 20;
  static constexpr std::uint64_t kMaxMetadata = 1u << 20;
  static constexpr std::uint64_t kMaxArrayElems = 1u << 26;
  static constexpr std::uint64_t kMaxStringBytes = 1u << 26;

  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  std::uint32_t version() const { return version_; }
  // Metadata values as JSON: integers, floats, booleans, strings and arrays of them.
  const nlohmann::json& metadata() const { return metadata_; }
  bool hasKey(const std::string& key) const { return metadata_.contains(key); }

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  bool has(const std::string& name) const { return by_name_.count(name) != 0; }
  const GgufTensor& tensor(const std::string& name) const;  // throws naming the file and tensor

  // Dequantises a tensor to float32 (ggml order, which is PyTorch's row-major order of shape()).
  std::vector<float> toFloat(const GgufTensor& t) const;

 private:
  MappedFile file_;
  std::uint32_t version_ = 0;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::vector<GgufTensor> tensors_;
  std::map<std::string, std::size_t> by_name_;
};

// True when the file at `path` starts with the GGUF magic.
bool looksLikeGguf(const std::string& path);

// Dequantises `n` values (a multiple of the type's block size) of type `type` from `src`.
void dequantize(GgmlType type, const std::uint8_t* src, std::int64_t n, float* dst);

}  // namespace monoscope::core
