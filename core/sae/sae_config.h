#pragma once
// SAELens cfg.json: v6 (hook in metadata.hook_name) and pre-6.0 (top-level hook_name / hook_point).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace monoscope::core {

struct SaeConfig {
  std::string architecture = "standard";  // standard (ReLU) | topk | jumprelu (also for transcoders)
  std::int64_t d_in = 0;                  // width of the activation the SAE reads
  std::int64_t d_sae = 0;                 // number of features
  std::string hook_name;                  // TransformerLens hook where it reads (and an SAE steers)
  // Transcoders (SAELens's transcoder, skip_transcoder, jumprelu_transcoder and
  // jumprelu_skip_transcoder): they read hook_name and reconstruct, and steer, hook_name_out
  // (width d_out); a skip transcoder adds x W_skip^T. Empty for an SAE.
  std::string hook_name_out;
  std::int64_t d_out = 0;                 // transcoders; an SAE writes d_in
  bool skip = false;                      // skip transcoders
  bool transcoder() const { return !hook_name_out.empty(); }
  std::int64_t outWidth() const { return transcoder() ? d_out : d_in; }
  // The hook a feature's decoder direction is written to (and steered at).
  const std::string& writeHook() const { return transcoder() ? hook_name_out : hook_name; }
  bool apply_b_dec_to_input = true;       // subtract b_dec before encoding
  // none | expected_average_only_in (factor folded into the weights) | constant_norm_rescale |
  // layer_norm
  std::string normalize_activations = "none";
  std::int64_t k = 0;                     // topk: active features per token
  bool rescale_acts_by_decoder_norm = false;  // topk: rank pre-activations times ||W_dec[i]||
  // topk: the dictionary in groups [0, e0), [e0, e1), ..., [e_last, d_sae), each giving at most
  // its top group_k[g] (one entry more than group_ends, each at most k, summing to k or more),
  // then the k largest of those, as a Matryoshka SAE trained with --matryoshka-k encodes
  // (metadata.topk_groups {"ends", "k"}). Empty: one top k over the whole dictionary.
  std::vector<std::int64_t> group_ends, group_k;
  struct TopkGroup {
    std::int64_t begin, end, k;
  };
  std::vector<TopkGroup> topkGroups() const;
  std::string model_name;                 // metadata.model_name, informational
  std::int64_t context_size = 0;          // metadata.context_size: positions trained on (0: unknown)
  bool prepend_bos = false;               // metadata.prepend_bos
  std::string dtype = "float32";
  nlohmann::json metadata = nlohmann::json::object();  // v6 metadata, kept for round trips

  static SaeConfig fromJson(const nlohmann::json& j, const std::string& source);
  static SaeConfig fromFile(const std::string& path);
  // The SAELens v6 cfg.json.
  nlohmann::json toJson() const;
};

}  // namespace monoscope::core
