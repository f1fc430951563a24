#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "io/json_file.h"
#include "util/error.h"

namespace monoscope::core {

namespace {

struct DTypeRow {
  DType dtype;
  const char* name;
  std::size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::Bool, "BOOL", 1},
};

std::uint64_t readLe64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::size_t dtypeSize(DType dtype) {
  for (const auto& row : kDTypes)
    if (row.dtype == dtype) return row.size;
  return 0;
}

const char* dtypeName(DType dtype) {
  for (const auto& row : kDTypes)
    if (row.dtype == dtype) return row.name;
  return "?";
}

bool parseDType(const std::string& name, DType* out) {
  for (const auto& row : kDTypes) {
    if (name == row.name) {
      *out = row.dtype;
      return true;
    }
  }
  return false;
}

std::int64_t TensorView::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const std::string where = "safetensors file '" + path + "'";
  const std::string fix = "the file is damaged or not safetensors; re-export or re-download it";
  if (file_.size() < 8) throw Error(where + " is shorter than its 8-byte header length", fix);
  const std::uint64_t header_len = readLe64(file_.data());
  if (header_len > kMaxHeaderBytes) {
    throw Error(where + " declares a " + std::to_string(header_len) +
                    "-byte header, more than the 100 MB limit",
                fix);
  }
  if (header_len > file_.size() - 8) {
    throw Error(where + " declares a " + std::to_string(header_len) + "-byte header but has only " +
                    std::to_string(file_.size() - 8) + " bytes after the length (truncated?)",
                fix);
  }
  const char* hbegin = reinterpret_cast<const char*>(file_.data() + 8);
  nlohmann::json header;
  try {
    requireJsonDepth(std::string_view(reinterpret_cast<const char*>(hbegin), header_len), "'" + path + "' header");
    header = nlohmann::json::parse(hbegin, hbegin + header_len);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + " has a malformed JSON header: " + e.what(), fix);
  }
  if (!header.is_object()) throw Error(where + ": header is not a JSON object", fix);

  const std::uint8_t* data_start = file_.data() + 8 + header_len;
  const std::uint64_t data_size = file_.size() - 8 - header_len;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) throw Error(where + ": __metadata__ is not an object", fix);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          throw Error(where + ": __metadata__ value '" + m.key() + "' is not a string", fix);
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string field = where + ", tensor '" + name + "'";
    const auto& e = *it;
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets")) {
      throw Error(field + " lacks dtype, shape or data_offsets", fix);
    }
    TensorView view;
    view.name = name;
    if (!e["dtype"].is_string() || !parseDType(e["dtype"].get<std::string>(), &view.dtype)) {
      throw Error(field + " has unknown dtype " + e["dtype"].dump(),
                  "supported dtypes are F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL");
    }
    if (!e["shape"].is_array()) throw Error(field + ": shape is not an array", fix);
    std::uint64_t numel = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned()) throw Error(field + ": shape has a non-integer or negative dimension", fix);
      const std::uint64_t dim = d.get<std::uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<std::uint64_t>::max() / dim / 8)
        throw Error(field + ": shape is absurdly large", fix);
      numel *= dim;
      view.shape.push_back(static_cast<std::int64_t>(dim));
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned()) {
      throw Error(field + ": data_offsets must be two non-negative integers", fix);
    }
    const std::uint64_t begin = off[0].get<std::uint64_t>();
    const std::uint64_t end = off[1].get<std::uint64_t>();
    if (begin > end || end > data_size) {
      throw Error(field + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                      "] run past the " + std::to_string(data_size) + " data bytes (truncated?)",
                  fix);
    }
    if (end - begin != numel * dtypeSize(view.dtype)) {
      throw Error(field + ": " + std::to_string(end - begin) + " bytes do not match shape " +
                      e["shape"].dump() + " of " + dtypeName(view.dtype),
                  fix);
    }
    view.data = data_start + begin;
    view.nbytes = static_cast<std::size_t>(end - begin);
    ranges.emplace_back(begin, end);
    tensors_.emplace(name, std::move(view));
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second)
      throw Error(where + ": two tensors overlap in the data section", fix);
  }
}

const TensorView& SafetensorsFile::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    throw Error("tensor '" + name + "' is missing from '" + path() + "'",
                "check that the file was written for this architecture");
  }
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : tensors_) out.push_back(k);
  return out;
}

float halfToFloat(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3FFu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bfloat16ToFloat(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::vector<float> SafetensorsFile::toFloat(const std::string& name) const {
  const TensorView& v = tensor(name);
  const std::size_t n = static_cast<std::size_t>(v.numel());
  std::vector<float> out(n);
  switch (v.dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(out.data(), v.data, n * 4);  // an empty tensor has no data pointer
      break;
    case DType::F64:
      for (std::size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, v.data + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      break;
    case DType::F16:
    case DType::BF16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, v.data + 2 * i, 2);
        out[i] = v.dtype == DType::F16 ? halfToFloat(h) : bfloat16ToFloat(h);
      }
      break;
    default:
      throw Error("tensor '" + name + "' in '" + path() + "' has integer dtype " +
                      dtypeName(v.dtype) + " where floats are expected",
                  "store weights as F32, F16 or BF16");
  }
  return out;
}

void SafetensorsWriter::add(const std::string& name, DType dtype,
                            const std::vector<std::int64_t>& shape, const void* data,
                            std::size_t nbytes) {
  std::int64_t numel = 1;
  for (auto d : shape) numel *= d;
  if (static_cast<std::size_t>(numel) * dtypeSize(dtype) != nbytes)
    throw Error("tensor '" + name + "': byte count does not match its shape");
  Entry e{dtype, shape, std::string(static_cast<const char*>(data), nbytes)};
  entries_[name] = std::move(e);
}

void SafetensorsWriter::addF32(const std::string& name, const std::vector<std::int64_t>& shape,
                               const std::vector<float>& values) {
  add(name, DType::F32, shape, values.data(), values.size() * sizeof(float));
}

std::string SafetensorsWriter::serialize() const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  std::uint64_t offset = 0;
  for (const auto& [name, e] : entries_) {
    header[name] = {{"dtype", dtypeName(e.dtype)},
                    {"shape", e.shape},
                    {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // align data to 8 bytes
  std::string out;
  out.reserve(8 + h.size() + offset);
  std::uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
  out += h;
  for (const auto& [name, e] : entries_) out += e.bytes;
  return out;
}

void SafetensorsWriter::write(const std::string& path) const { writeFileAtomically(path, serialize()); }

}  // namespace monoscope::core
