#pragma once
// circuit-tracer's transcoder sets: one YAML file for a whole model,
//   model_name: "google/gemma-2-2b"
//   feature_input_hook: "ln2.hook_normalized"    (a block hook, the same in every layer)
//   feature_output_hook: "hook_mlp_out"
//   transcoders:
//     - {id: "...", layer: 0, filepath: "hf://org/repo/layer_0/.../params.npz?revision=main"}
// with one transcoder per layer, layers 0..n-1 each once. A file is a Gemma Scope params.npz
// (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_out], b_dec, threshold: JumpReLU) or a
// safetensors file in circuit-tracer's own layout (W_enc [d_sae, d_in], b_enc, W_dec
// [d_sae, d_out] or, as first released, [d_out, d_sae], b_dec, optional W_skip [d_out, d_in]:
// ReLU, as load_relu_transcoder reads it).
// Local paths are relative to the YAML file; hf:// paths resolve through the Hugging Face cache,
// offline. One layer's transcoder is named "<set.yaml>#<layer>" wherever a dictionary is.
// No LibTorch here.
#include <cstdint>
#include <string>
#include <vector>

namespace monoscope::core {

struct TranscoderSetEntry {
  std::string id;
  std::int64_t layer = 0;
  std::string filepath;  // as the file gives it
};

struct TranscoderSet {
  std::string path;         // the YAML file
  std::string model_name;   // informational
  std::string input_hook;   // relative to a block: "ln2.hook_normalized", "hook_resid_mid", ...
  std::string output_hook;  // "hook_mlp_out", "mlp.hook_out", ...
  std::vector<TranscoderSetEntry> transcoders;  // by layer, 0..n-1

  // Reads and checks the file; throws Error naming the file and field.
  static TranscoderSet read(const std::string& yaml_path);
  // The TransformerLens hooks of one layer's transcoder.
  std::string inputHook(std::int64_t layer) const;
  std::string outputHook(std::int64_t layer) const;
  const TranscoderSetEntry& entry(std::int64_t layer) const;  // throws naming the layers there are
  // The local file of a layer: relative to the YAML file, or in the Hugging Face cache.
  std::string localFile(std::int64_t layer) const;
  // "<path>#<layer>" for each layer.
  std::vector<std::string> specs() const;
};

// Whether `path` looks like a transcoder set file (.yaml / .yml).
bool isTranscoderSetFile(const std::string& path);
// "set.yaml#12": true with the file and the layer when the part before the last '#' is a
// transcoder set file that exists; a malformed layer throws Error.
bool parseTranscoderSetSpec(const std::string& spec, std::string* file, std::int64_t* layer);

}  // namespace monoscope::core
