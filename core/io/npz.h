#pragma once
// NumPy .npz archives (a zip of .npy arrays, as np.savez writes them; Gemma Scope's params.npz).
// The zip is read with libzip; each .npy header (magic, version, the header dict with descr,
// fortran_order and shape) is parsed and checked against the member's size. Arrays of float32,
// float16 or float64 ('<f4', '<f2', '<f8') are read as float32.
// Object arrays are pickles and are refused, never unpickled. No LibTorch here.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace monoscope::core {

struct NpyArray {
  std::vector<std::int64_t> shape;
  std::vector<float> values;  // C order
};

class NpzFile {
 public:
  // Reads every member's header; throws Error naming the file and the member on anything wrong.
  explicit NpzFile(const std::string& path);
  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return members_.count(name) > 0; }
  std::vector<std::string> names() const;
  const std::vector<std::int64_t>& shape(const std::string& name) const;
  // The array `name` (member name.npy) as float32; throws when absent.
  NpyArray read(const std::string& name) const;

 private:
  struct Member {
    std::int64_t index;       // zip entry
    std::string descr;
    bool fortran = false;
    std::vector<std::int64_t> shape;
    std::uint64_t data_offset = 0;  // bytes of header before the data
    std::uint64_t size = 0;         // uncompressed member size
  };
  std::string path_;
  std::map<std::string, Member> members_;
};

// Parses a .npy header dict ("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }").
// Exposed for tests and fuzzing; throws Error naming `where`.
void parseNpyHeader(const std::string& dict, const std::string& where, std::string* descr, bool* fortran,
                    std::vector<std::int64_t>* shape);

}  // namespace monoscope::core
