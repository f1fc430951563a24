#include "util/memory.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "util/error.h"

namespace monoscope::core {

std::uint64_t availableMemory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  const long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(size) : 0;
}

std::uint64_t saturatingProduct(std::initializer_list<std::uint64_t> factors) {
  std::uint64_t p = 1;
  for (const auto f : factors) {
    if (f != 0 && p > std::numeric_limits<std::uint64_t>::max() / f) return std::numeric_limits<std::uint64_t>::max();
    p *= f;
  }
  return p;
}

namespace {
std::string gigabytes(std::uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}
}  // namespace

void requireMemory(std::uint64_t bytes, const std::string& field, const std::string& what, const std::string& hint) {
  const std::uint64_t available = availableMemory();
  if (available == 0 || bytes <= available) return;
  throw Error(field + ": " + what + " needs " + gigabytes(bytes) + ", but only " + gigabytes(available) + " are available",
              hint);
}

}  // namespace monoscope::core
