#pragma once
// Process-wide compute settings: LibTorch's thread count and the compute device.
#include <string>

namespace monoscope::core {

// Keeps large freed buffers in the heap for reuse instead of returning them to the system:
// tensors of a few MB allocated once per batch otherwise cost a page fault per 4 KB each time.
// Call once from main().
void tuneAllocator();

// Sets LibTorch's intra-op threads (n <= 0: all hardware threads). Returns the count set.
int configureThreads(int n);

// Resolves "auto" | "cpu" | "cuda" | "cuda:N" to a concrete device name; "auto" picks CUDA when
// this LibTorch build has it and a GPU is present. Throws Error for an unusable request.
std::string resolveDeviceName(const std::string& requested);

// True when the environment variable `name` is "0": the switches that turn a fast path off to
// compare it with the plain one (MONOSCOPE_PACKED_PRODUCTS, MONOSCOPE_FUSED_ATTENTION, ...).
bool switchedOff(const char* name);

}  // namespace monoscope::core
