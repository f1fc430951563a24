#include "util/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>

#include "util/device.h"
#include "util/error.h"

namespace monoscope::core {

void tuneAllocator() {
  // Blocks up to 1 GiB come from the heap and stay there when freed, so the large temporaries a
  // training step or a scan block makes every iteration (a topk SAE step's [batch, k, d_in]
  // gathers are 600 MB at batch 4,096) are reused instead of being mapped, zeroed page by page
  // and unmapped again.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
}


int configureThreads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (n > 1024) throw Error("threads " + std::to_string(n) + " is absurd", "use at most the number of cores");
  at::set_num_threads(n);
  return n;
}

std::string resolveDeviceName(const std::string& requested) {
  const bool has_cuda = at::hasCUDA();
  if (requested == "auto") return has_cuda ? "cuda" : "cpu";
  if (requested == "cpu") return "cpu";
  if (requested == "cuda" || requested.rfind("cuda:", 0) == 0) {
    if (!has_cuda) {
      throw Error("device '" + requested + "' requested but no CUDA GPU is available to this build",
                  "use device cpu or auto");
    }
    return requested;
  }
  throw Error("unknown device '" + requested + "'", "use auto, cpu, cuda or cuda:N");
}

c10::Device resolveDevice(const std::string& requested) {
  return c10::Device(resolveDeviceName(requested));
}

bool switchedOff(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, "0") == 0;
}

}  // namespace monoscope::core
