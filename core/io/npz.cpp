#include "io/npz.h"

#include <zip.h>

#include <cstring>
#include <limits>
#include <memory>

#include "util/error.h"

namespace monoscope::core {

namespace {

constexpr std::uint64_t kMaxMember = 1ull << 36;  // 64 GiB: beyond any dictionary

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct FileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};
using Zip = std::unique_ptr<zip_t, ZipCloser>;

Zip openZip(const std::string& path) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &err);
  if (z == nullptr) {
    zip_error_t e;
    zip_error_init_with_code(&e, err);
    const std::string msg = zip_error_strerror(&e);
    zip_error_fini(&e);
    throw Error("'" + path + "' is not a readable .npz (zip) archive: " + msg, "re-save it with numpy.savez");
  }
  return Zip(z);
}

// Reads exactly n bytes of an open member.
void readExactly(zip_file_t* f, void* out, std::uint64_t n, const std::string& where) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    const zip_int64_t got = zip_fread(f, p, n);
    if (got <= 0) throw Error(where + " ends early or is damaged (" + std::string(zip_file_strerror(f)) + ")");
    p += got;
    n -= static_cast<std::uint64_t>(got);
  }
}

void skipSpace(const std::string& s, std::size_t* i) {
  while (*i < s.size() && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n')) ++*i;
}

}  // namespace

void parseNpyHeader(const std::string& dict, const std::string& where, std::string* descr, bool* fortran,
                    std::vector<std::int64_t>* shape) {
  // A Python dict literal with three keys; read it with a small parser (never evaluated).
  auto fail = [&](const std::string& what) -> void {
    throw Error(where + ": the .npy header " + what, "the array was not written by numpy.save");
  };
  std::size_t i = 0;
  skipSpace(dict, &i);
  if (i >= dict.size() || dict[i] != '{') fail("is not a dict");
  ++i;
  bool has_descr = false, has_fortran = false, has_shape = false;
  while (true) {
    skipSpace(dict, &i);
    if (i < dict.size() && dict[i] == '}') break;
    if (i >= dict.size() || (dict[i] != '\'' && dict[i] != '"')) fail("has a key that is not a string");
    const char q = dict[i++];
    const std::size_t e = dict.find(q, i);
    if (e == std::string::npos) fail("has an unterminated key");
    const std::string key = dict.substr(i, e - i);
    i = e + 1;
    skipSpace(dict, &i);
    if (i >= dict.size() || dict[i] != ':') fail("lacks ':' after '" + key + "'");
    ++i;
    skipSpace(dict, &i);
    if (key == "descr") {
      if (i >= dict.size() || (dict[i] != '\'' && dict[i] != '"'))
        fail("'descr' is not a string (a structured dtype, which Monoscope does not read)");
      const char dq = dict[i++];
      const std::size_t de = dict.find(dq, i);
      if (de == std::string::npos) fail("has an unterminated 'descr'");
      *descr = dict.substr(i, de - i);
      i = de + 1;
      has_descr = true;
    } else if (key == "fortran_order") {
      if (dict.compare(i, 4, "True") == 0) {
        *fortran = true;
        i += 4;
      } else if (dict.compare(i, 5, "False") == 0) {
        *fortran = false;
        i += 5;
      } else {
        fail("'fortran_order' is neither True nor False");
      }
      has_fortran = true;
    } else if (key == "shape") {
      if (i >= dict.size() || dict[i] != '(') fail("'shape' is not a tuple");
      ++i;
      shape->clear();
      while (true) {
        skipSpace(dict, &i);
        if (i < dict.size() && dict[i] == ')') {
          ++i;
          break;
        }
        std::int64_t v = 0;
        bool digits = false;
        while (i < dict.size() && dict[i] >= '0' && dict[i] <= '9') {
          if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10) fail("'shape' has a dimension too large");
          v = v * 10 + (dict[i++] - '0');
          digits = true;
        }
        if (!digits) fail("'shape' holds something that is not a non-negative integer");
        if (shape->size() >= 8) fail("'shape' has more than 8 dimensions");
        shape->push_back(v);
        skipSpace(dict, &i);
        if (i < dict.size() && dict[i] == ',') ++i;
      }
      has_shape = true;
    } else {
      fail("has an unknown key '" + key + "'");
    }
    skipSpace(dict, &i);
    if (i < dict.size() && dict[i] == ',') ++i;
  }
  if (!has_descr || !has_fortran || !has_shape) fail("lacks one of 'descr', 'fortran_order', 'shape'");
}

NpzFile::NpzFile(const std::string& path) : path_(path) {
  Zip z = openZip(path);
  const zip_int64_t n = zip_get_num_entries(z.get(), 0);
  for (zip_int64_t k = 0; k < n; ++k) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z.get(), static_cast<zip_uint64_t>(k), 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) ||
        !(st.valid & ZIP_STAT_SIZE))
      throw Error("'" + path + "': zip entry " + std::to_string(k) + " cannot be read");
    std::string name = st.name;
    const std::string where = "'" + path + "' member '" + name + "'";
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0)
      throw Error(where + " is not a .npy array", "a .npz holds only .npy members");
    if (st.size > kMaxMember) throw Error(where + " is " + std::to_string(st.size) + " bytes, more than any dictionary");
    std::unique_ptr<zip_file_t, FileCloser> f(zip_fopen_index(z.get(), static_cast<zip_uint64_t>(k), 0));
    if (!f) throw Error(where + " cannot be opened (" + std::string(zip_strerror(z.get())) + ")");
    unsigned char magic[8];
    if (st.size < 10) throw Error(where + " is too short for a .npy header");
    readExactly(f.get(), magic, 8, where);
    if (std::memcmp(magic, "\x93NUMPY", 6) != 0) throw Error(where + " does not start with the .npy magic");
    const int major = magic[6];
    if (major < 1 || major > 3) throw Error(where + " is .npy version " + std::to_string(major) + ", not 1-3");
    std::uint64_t header_len = 0, prefix = 0;
    if (major == 1) {
      unsigned char l[2];
      readExactly(f.get(), l, 2, where);
      header_len = l[0] | (static_cast<std::uint64_t>(l[1]) << 8);
      prefix = 10;
    } else {
      unsigned char l[4];
      readExactly(f.get(), l, 4, where);
      header_len = l[0] | (static_cast<std::uint64_t>(l[1]) << 8) | (static_cast<std::uint64_t>(l[2]) << 16) |
                   (static_cast<std::uint64_t>(l[3]) << 24);
      prefix = 12;
    }
    if (prefix + header_len > st.size || header_len > (1u << 20))
      throw Error(where + ": the .npy header length " + std::to_string(header_len) + " runs past the member");
    std::string dict(header_len, '\0');
    readExactly(f.get(), dict.data(), header_len, where);
    Member m;
    m.index = k;
    parseNpyHeader(dict, where, &m.descr, &m.fortran, &m.shape);
    if (m.descr.find('O') != std::string::npos)
      throw Error(where + " holds Python objects (a pickle), which Monoscope never reads", "save the arrays as float32");
    m.data_offset = prefix + header_len;
    m.size = st.size;
    name.resize(name.size() - 4);
    members_[name] = std::move(m);
  }
}

std::vector<std::string> NpzFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, m] : members_) out.push_back(name);
  return out;
}

const std::vector<std::int64_t>& NpzFile::shape(const std::string& name) const {
  const auto it = members_.find(name);
  if (it == members_.end()) throw Error("'" + path_ + "' has no array '" + name + "'", "expected the arrays of the format");
  return it->second.shape;
}

NpyArray NpzFile::read(const std::string& name) const {
  const auto it = members_.find(name);
  if (it == members_.end()) throw Error("'" + path_ + "' has no array '" + name + "'", "expected the arrays of the format");
  const Member& m = it->second;
  const std::string where = "'" + path_ + "' array '" + name + "'";
  if (m.descr.find('O') != std::string::npos)
    throw Error(where + " holds Python objects (a pickle), which Monoscope never reads", "save the arrays as float32");
  std::size_t item = 0;
  if (m.descr == "<f4" || m.descr == "=f4") item = 4;
  else if (m.descr == "<f2" || m.descr == "=f2") item = 2;
  else if (m.descr == "<f8" || m.descr == "=f8") item = 8;
  else throw Error(where + " has dtype '" + m.descr + "'", "Monoscope reads little-endian float32, float16 or float64 arrays");
  std::uint64_t count = 1;
  for (auto d : m.shape) {
    if (d != 0 && count > kMaxMember / static_cast<std::uint64_t>(d)) throw Error(where + " has a shape too large");
    count *= static_cast<std::uint64_t>(d);
  }
  if (m.data_offset + count * item != m.size)
    throw Error(where + ": the shape needs " + std::to_string(count * item) + " bytes of data but the member holds " +
                    std::to_string(m.size - m.data_offset),
                "the archive is truncated or damaged");
  Zip z = openZip(path_);
  std::unique_ptr<zip_file_t, FileCloser> f(zip_fopen_index(z.get(), static_cast<zip_uint64_t>(m.index), 0));
  if (!f) throw Error(where + " cannot be opened");
  std::vector<char> skip(m.data_offset);
  readExactly(f.get(), skip.data(), m.data_offset, where);
  std::vector<char> raw(count * item);
  readExactly(f.get(), raw.data(), raw.size(), where);
  NpyArray out;
  out.shape = m.shape;
  out.values.resize(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    if (item == 4) {
      std::memcpy(&out.values[i], raw.data() + i * 4, 4);
    } else if (item == 8) {
      double d;
      std::memcpy(&d, raw.data() + i * 8, 8);
      out.values[i] = static_cast<float>(d);
    } else {
      std::uint16_t h;
      std::memcpy(&h, raw.data() + i * 2, 2);
      // IEEE half to float
      const std::uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
      std::uint32_t bits;
      if (exp == 0) {
        if (mant == 0) bits = sign;
        else {
          int e = -1;
          std::uint32_t mm = mant;
          do { ++e; mm <<= 1; } while (!(mm & 0x400));
          bits = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23) | ((mm & 0x3FF) << 13);
        }
      } else if (exp == 31) {
        bits = sign | 0x7F800000u | (mant << 13);
      } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
      }
      std::memcpy(&out.values[i], &bits, 4);
    }
  }
  if (m.fortran && m.shape.size() >= 2) {  // column-major on disk: transpose into C order
    std::vector<float> c(count);
    const std::size_t dims = m.shape.size();
    std::vector<std::uint64_t> idx(dims, 0);
    for (std::uint64_t i = 0; i < count; ++i) {  // i walks Fortran order (first index fastest)
      std::uint64_t off = 0;
      for (std::size_t d = 0; d < dims; ++d) off = off * static_cast<std::uint64_t>(m.shape[d]) + idx[d];
      c[off] = out.values[i];
      for (std::size_t d = 0; d < dims; ++d) {
        if (++idx[d] < static_cast<std::uint64_t>(m.shape[d])) break;
        idx[d] = 0;
      }
    }
    out.values = std::move(c);
  }
  return out;
}

}  // namespace monoscope::core
