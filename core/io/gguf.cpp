#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include "io/safetensors.h"
#include "util/error.h"
#include "util/utf8.h"

namespace monoscope::core {

namespace {

constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::F32, "F32", 1, 4},      {GgmlType::F16, "F16", 1, 2},
    {GgmlType::BF16, "BF16", 1, 2},    {GgmlType::Q4_0, "Q4_0", 32, 18},
    {GgmlType::Q4_1, "Q4_1", 32, 20},  {GgmlType::Q5_0, "Q5_0", 32, 22},
    {GgmlType::Q5_1, "Q5_1", 32, 24},  {GgmlType::Q8_0, "Q8_0", 32, 34},
    {GgmlType::Q4_K, "Q4_K", 256, 144}, {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210},
};

// GGUF metadata value types.
enum ValueType : std::uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

constexpr std::uint32_t kMagic = 0x46554747u;  // "GGUF" read as little-endian
constexpr std::uint64_t kDefaultAlignment = 32;
constexpr std::uint32_t kMaxDims = 4;

// A bounds-checked little-endian reader over the mapped header.
class Cursor {
 public:
  Cursor(const std::uint8_t* data, std::size_t size, std::string where)
      : data_(data), size_(size), where_(std::move(where)) {}

  std::size_t pos() const { return pos_; }
  const std::string& where() const { return where_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": " + what,
                "the file is damaged, truncated or not GGUF; re-download or re-convert it");
  }

  template <typename T>
  T read(const char* what) {
    if (size_ - pos_ < sizeof(T)) {
      fail(std::string(what) + " at byte " + std::to_string(pos_) + " runs past the end of the " +
           std::to_string(size_) + "-byte file (truncated?)");
    }
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string string(const std::string& what) {
    const auto len = read<std::uint64_t>(what.c_str());
    if (len > GgufFile::kMaxStringBytes || len > size_ - pos_) {
      fail(what + " declares " + std::to_string(len) + " bytes but " +
           std::to_string(size_ - pos_) + " remain in the file");
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<std::size_t>(len));
    pos_ += static_cast<std::size_t>(len);
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::string where_;
};

nlohmann::json readScalar(Cursor& c, std::uint32_t type, const std::string& what) {
  switch (type) {
    case kU8: return c.read<std::uint8_t>(what.c_str());
    case kI8: return c.read<std::int8_t>(what.c_str());
    case kU16: return c.read<std::uint16_t>(what.c_str());
    case kI16: return c.read<std::int16_t>(what.c_str());
    case kU32: return c.read<std::uint32_t>(what.c_str());
    case kI32: return c.read<std::int32_t>(what.c_str());
    case kU64: return c.read<std::uint64_t>(what.c_str());
    case kI64: return c.read<std::int64_t>(what.c_str());
    case kF32: return c.read<float>(what.c_str());
    case kF64: return c.read<double>(what.c_str());
    case kBool: {
      const auto b = c.read<std::uint8_t>(what.c_str());
      if (b > 1) c.fail(what + " is a boolean with value " + std::to_string(b));
      return b == 1;
    }
    case kString: return c.string(what);
    default: c.fail(what + " has unknown value type " + std::to_string(type));
  }
}

nlohmann::json readValue(Cursor& c, std::uint32_t type, const std::string& what) {
  if (type != kArray) return readScalar(c, type, what);
  const auto elem = c.read<std::uint32_t>((what + "'s element type").c_str());
  if (elem == kArray) c.fail(what + " is an array of arrays, which GGUF metadata never uses");
  const auto n = c.read<std::uint64_t>((what + "'s length").c_str());
  if (n > GgufFile::kMaxArrayElems) {
    c.fail(what + " declares " + std::to_string(n) + " elements, more than the limit of " +
           std::to_string(GgufFile::kMaxArrayElems));
  }
  nlohmann::json arr = nlohmann::json::array();
  arr.get_ref<nlohmann::json::array_t&>().reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n, 1u << 20)));
  for (std::uint64_t i = 0; i < n; ++i) arr.push_back(readScalar(c, elem, what));
  return arr;
}

// Strings in the metadata become JSON strings; invalid UTF-8 would make nlohmann throw when the
// metadata is dumped, so it is refused here with the key.
bool validUtf8(const std::string& s) { return findInvalidUtf8(s) == std::string::npos; }

void requireUtf8Strings(const nlohmann::json& v, const std::string& key, const Cursor& c) {
  if (v.is_string()) {
    if (!validUtf8(v.get_ref<const std::string&>())) c.fail("metadata '" + key + "' holds a string that is not UTF-8");
  } else if (v.is_array()) {
    for (const auto& e : v) requireUtf8Strings(e, key, c);
  }
}

}  // namespace

const GgmlTypeInfo* ggmlTypeInfo(std::uint32_t type) {
  for (const auto& row : kTypes)
    if (static_cast<std::uint32_t>(row.type) == type) return &row;
  return nullptr;
}

std::string ggmlTypeName(std::uint32_t type) {
  const auto* info = ggmlTypeInfo(type);
  return info ? std::string(info->name) : "type " + std::to_string(type);
}

std::int64_t GgufTensor::numel() const {
  std::int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

std::vector<std::int64_t> GgufTensor::shape() const { return {ne.rbegin(), ne.rend()}; }

bool looksLikeGguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (!in.read(magic, 4)) return false;
  return std::memcmp(magic, "GGUF", 4) == 0;
}

GgufFile::GgufFile(const std::string& path) : file_(path) {
  Cursor c(file_.data(), file_.size(), "GGUF file '" + path + "'");
  const auto magic = c.read<std::uint32_t>("the magic number");
  if (magic != kMagic) c.fail("does not start with 'GGUF'");
  version_ = c.read<std::uint32_t>("the version");
  if (version_ < 2 || version_ > 3) {
    throw Error("GGUF file '" + path + "' has version " + std::to_string(version_) +
                    "; Monoscope reads versions 2 and 3",
                "re-convert it with a current llama.cpp (convert_hf_to_gguf.py)");
  }
  const auto n_tensors = c.read<std::uint64_t>("the tensor count");
  const auto n_kv = c.read<std::uint64_t>("the metadata count");
  if (n_tensors > kMaxTensors) c.fail("declares " + std::to_string(n_tensors) + " tensors, more than the limit");
  if (n_kv > kMaxMetadata) c.fail("declares " + std::to_string(n_kv) + " metadata entries, more than the limit");

  for (std::uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.string("the key of metadata entry " + std::to_string(i));
    if (!validUtf8(key)) c.fail("metadata entry " + std::to_string(i) + " has a key that is not UTF-8");
    const auto type = c.read<std::uint32_t>(("the type of metadata '" + key + "'").c_str());
    nlohmann::json value = readValue(c, type, "metadata '" + key + "'");
    requireUtf8Strings(value, key, c);
    if (metadata_.contains(key)) c.fail("metadata '" + key + "' appears twice");
    metadata_[key] = std::move(value);
  }

  std::uint64_t alignment = kDefaultAlignment;
  if (metadata_.contains("general.alignment")) {
    const auto& a = metadata_["general.alignment"];
    if (!a.is_number_unsigned() || a.get<std::uint64_t>() == 0 || a.get<std::uint64_t>() > 65536 ||
        (a.get<std::uint64_t>() & (a.get<std::uint64_t>() - 1)) != 0) {
      c.fail("metadata 'general.alignment' is " + a.dump() + ", not a power of two up to 65536");
    }
    alignment = a.get<std::uint64_t>();
  }

  struct Pending {
    GgufTensor t;
    std::uint64_t bytes;
  };
  std::vector<Pending> pending;
  pending.reserve(static_cast<std::size_t>(n_tensors));
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.string("the name of tensor " + std::to_string(i));
    const std::string what = "tensor '" + t.name + "'";
    if (!validUtf8(t.name)) c.fail("tensor " + std::to_string(i) + " has a name that is not UTF-8");
    const auto n_dims = c.read<std::uint32_t>((what + "'s dimension count").c_str());
    if (n_dims == 0 || n_dims > kMaxDims) c.fail(what + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    std::uint64_t numel = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto dim = c.read<std::uint64_t>((what + "'s shape").c_str());
      if (dim == 0 || dim > (1ull << 40) || numel > (1ull << 40) / dim) c.fail(what + " has an absurd shape");
      numel *= dim;
      t.ne.push_back(static_cast<std::int64_t>(dim));
    }
    const auto type = c.read<std::uint32_t>((what + "'s type").c_str());
    const GgmlTypeInfo* info = ggmlTypeInfo(type);
    if (info == nullptr) {
      throw Error("GGUF file '" + path + "': " + what + " has quantisation type " + ggmlTypeName(type) +
                      ", which Monoscope cannot dequantise",
                  "supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; "
                  "re-quantise the model to one of them");
    }
    t.type = info->type;
    if (t.ne[0] % info->block_elems != 0) {
      c.fail(what + "'s rows of " + std::to_string(t.ne[0]) + " values are not whole " + info->name +
             " blocks of " + std::to_string(info->block_elems));
    }
    t.offset = c.read<std::uint64_t>((what + "'s offset").c_str());
    if (t.offset % alignment != 0) c.fail(what + "'s offset " + std::to_string(t.offset) + " is not aligned to " + std::to_string(alignment));
    if (by_name_.count(t.name)) c.fail(what + " appears twice");
    by_name_[t.name] = pending.size();
    pending.push_back({std::move(t), numel / static_cast<std::uint64_t>(info->block_elems) *
                                         static_cast<std::uint64_t>(info->block_bytes)});
  }

  const std::uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  if (data_start > file_.size() && n_tensors > 0) c.fail("ends before its tensor data begins (truncated?)");
  const std::uint64_t data_size = file_.size() > data_start ? file_.size() - data_start : 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (auto& p : pending) {
    if (p.t.offset > data_size || p.bytes > data_size - p.t.offset) {
      c.fail("tensor '" + p.t.name + "' (" + std::to_string(p.bytes) + " bytes at data offset " +
             std::to_string(p.t.offset) + ") runs past the end of the file's " +
             std::to_string(data_size) + " data bytes (truncated?)");
    }
    p.t.data = file_.data() + data_start + p.t.offset;
    p.t.nbytes = static_cast<std::size_t>(p.bytes);
    ranges.emplace_back(p.t.offset, p.t.offset + p.bytes);
    tensors_.push_back(std::move(p.t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) c.fail("two tensors overlap in the data section");
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    throw Error("tensor '" + name + "' is missing from GGUF file '" + path() + "'",
                "the file was converted for another architecture or is incomplete");
  }
  return tensors_[it->second];
}

std::vector<float> GgufFile::toFloat(const GgufTensor& t) const {
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  dequantize(t.type, t.data, t.numel(), out.data());
  return out;
}

}  // namespace monoscope::core
