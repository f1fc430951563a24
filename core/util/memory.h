#pragma once
// Memory checks before large allocations: an input that would need more memory than the machine
// has is refused with the field named, instead of failing inside the allocator.
#include <cstdint>
#include <string>

namespace monoscope::core {

// Bytes the system can still give this process (MemAvailable), or 0 when unknown.
std::uint64_t availableMemory();

// Throws Error when `bytes` exceeds the available memory: "`field`: `what` needs X GB, but only
// Y GB are available", with `hint`. Does nothing when the available memory is unknown.
void requireMemory(std::uint64_t bytes, const std::string& field, const std::string& what, const std::string& hint);

// a * b * c ... saturating at UINT64_MAX (sizes from files and options may be absurd).
std::uint64_t saturatingProduct(std::initializer_list<std::uint64_t> factors);

}  // namespace monoscope::core
