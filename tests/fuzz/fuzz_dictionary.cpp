// Fuzz: the dictionary formats behind the format table, each opened the way Sae::load opens
// it. The first byte chooses: a Gemma Scope params.npz (the zip and every .npy header, in a
// folder that names a layer), an EleutherAI sparsify cfg.json beside a valid sae.safetensors, or
// a circuit-tracer transcoder set (YAML) beside valid layer files, opened as "set.yaml#0".
// Only core::Error may escape.
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
  static const std::string sets = root + "/circuit-tracer";
  static const bool ready = [] {
    const std::string fixtures = std::string(MONOSCOPE_FIXTURES) + "/dictionaries/";
    fs::create_directories(gemma);
    fs::create_directories(sparsify);
    fs::create_directories(sets + "/relu");
    fs::create_directories(sets + "/gemmascope/layer_0");
    fs::copy_file(fixtures + "sparsify/layers.1/sae.safetensors", sparsify + "/sae.safetensors", fs::copy_options::overwrite_existing);
    for (const char* f : {"relu/layer_0.safetensors", "relu/layer_1.safetensors", "gemmascope/layer_0/params.npz"})
      fs::copy_file(fixtures + "circuit-tracer/" + f, sets + "/" + f, fs::copy_options::overwrite_existing);
    return true;
  }();
  (void)ready;
  const int kind = data[0] % 3;
  const std::string dir = kind == 0 ? gemma : kind == 1 ? sparsify : sets;
  const std::string file = kind == 0 ? "params.npz" : kind == 1 ? "cfg.json" : "set.yaml";
  const std::string written = fuzz::writeScratch("input", data + 1, size - 1);
  fs::rename(written, dir + "/" + file);
  try {
    auto sae = core::Sae::load(kind == 2 ? dir + "/set.yaml#" + std::to_string(data[0] / 3 % 3) : dir, c10::Device(c10::kCPU));
    (void)sae->config().d_sae;
  } catch (const core::Error&) {
  }
  return 0;
}
