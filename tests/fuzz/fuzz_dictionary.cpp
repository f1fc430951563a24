// Fuzz: the dictionary formats behind the format table, each opened the way Sae::load opens
// it. The first byte chooses: a Gemma Scope params.npz (the zip and every .npy header, in a
// folder that names a layer), or an EleutherAI sparsify cfg.json beside a valid
// sae.safetensors. Only core::Error may escape.
#include <c10/core/Device.h>

#include <filesystem>

#include "fuzz_util.h"
#include "sae/sae.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace monoscope;
  namespace fs = std::filesystem;
  if (size == 0) return 0;
  static const std::string root = fuzz::scratchDir();
  static const std::string gemma = root + "/gemma-scope-2b-pt-res/layer_1/width_16k/average_l0_9";
  static const std::string sparsify = root + "/sparsify/layers.1";
  static const bool ready = [] {
    fs::create_directories(gemma);
    fs::create_directories(sparsify);
    fs::copy_file(std::string(MONOSCOPE_FIXTURES) + "/dictionaries/sparsify/layers.1/sae.safetensors",
                  sparsify + "/sae.safetensors", fs::copy_options::overwrite_existing);
    return true;
  }();
  (void)ready;
  const bool npz = (data[0] & 1) == 0;
  const std::string dir = npz ? gemma : sparsify;
  const std::string file = npz ? "params.npz" : "cfg.json";
  const std::string written = fuzz::writeScratch("input", data + 1, size - 1);
  fs::rename(written, dir + "/" + file);
  try {
    auto sae = core::Sae::load(dir, c10::Device(c10::kCPU));
    (void)sae->config().d_sae;
  } catch (const core::Error&) {
  }
  return 0;
}
