#include "sae/sae_config.h"

#include <map>
#include <utility>

#include "io/json_file.h"
#include "util/error.h"

namespace monoscope::core {

namespace {
const char* const kSaeLensFormatVersion = "6.0.0";  // the cfg.json layout written (SAELens v6)
}  // namespace

SaeConfig SaeConfig::fromJson(const nlohmann::json& j, const std::string& source) {
  const JsonFields f(j, source);
  SaeConfig c;
  c.d_in = f.integer("d_in");
  c.d_sae = f.integer("d_sae");
  if (c.d_in <= 0 || c.d_in > (1 << 20)) f.fail("d_in", "is " + std::to_string(c.d_in) + ", outside 1..1048576");
  if (c.d_sae <= 0 || c.d_sae > (1 << 26)) f.fail("d_sae", "is " + std::to_string(c.d_sae) + ", outside 1..67108864");
  if (j.contains("metadata") && j["metadata"].is_object()) c.metadata = j["metadata"];
  const JsonFields meta(c.metadata, source + " metadata");
  // Hook: v6 metadata.hook_name, else pre-6.0 hook_name / hook_point.
  if (meta.has("hook_name")) {
    c.hook_name = meta.string("hook_name");
  } else if (f.has("hook_name")) {
    c.hook_name = f.string("hook_name");
  } else if (f.has("hook_point")) {
    c.hook_name = f.string("hook_point");
  } else {
    f.fail("metadata.hook_name", "is missing (also no hook_name or hook_point)",
           "add the TransformerLens hook name the SAE was trained on");
  }
  const auto ctx_of = [](const nlohmann::json& o) -> std::int64_t {
    const auto it = o.find("context_size");
    return it != o.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
  };
  c.context_size = ctx_of(c.metadata) > 0 ? ctx_of(c.metadata) : ctx_of(j);
  if (c.context_size < 0 || c.context_size > (1 << 24)) f.fail("metadata.context_size", "is out of range");
  const auto bos = c.metadata.find("prepend_bos");
  if (bos != c.metadata.end() && bos->is_boolean()) {
    c.prepend_bos = bos->get<bool>();
  } else {
    c.prepend_bos = j.contains("prepend_bos") && j["prepend_bos"].is_boolean() && j["prepend_bos"].get<bool>();
  }
  c.model_name = meta.has("model_name") ? meta.string("model_name") : f.string("model_name", "");
  c.architecture = f.string("architecture", "");
  if (c.architecture.empty()) {  // pre-6.0: the activation function names the architecture
    const std::string act = f.string("activation_fn_str", "relu");
    c.architecture = act == "topk" ? "topk" : "standard";
  }
  // SAELens's transcoder architectures: the activation, and whether W_skip is there.
  static const std::map<std::string, std::pair<std::string, bool>> kTranscoders = {
      {"transcoder", {"standard", false}},
      {"skip_transcoder", {"standard", true}},
      {"jumprelu_transcoder", {"jumprelu", false}},
      {"jumprelu_skip_transcoder", {"jumprelu", true}}};
  if (const auto t = kTranscoders.find(c.architecture); t != kTranscoders.end()) {
    c.architecture = t->second.first;
    c.skip = t->second.second;
    c.hook_name_out = meta.has("hook_name_out") ? meta.string("hook_name_out") : f.string("hook_name_out", "");
    if (c.hook_name_out.empty())
      f.fail("metadata.hook_name_out", "is missing for a transcoder", "add the TransformerLens hook the transcoder writes");
    c.d_out = f.integer("d_out");
    if (c.d_out <= 0 || c.d_out > (1 << 20)) f.fail("d_out", "is " + std::to_string(c.d_out) + ", outside 1..1048576");
    if (f.boolean("apply_b_dec_to_input", false))
      f.fail("apply_b_dec_to_input", "is true for a transcoder", "a transcoder's b_dec is in its output space; set it to false");
  }
  if (c.architecture == "topk") {
    if (f.has("k")) {
      c.k = f.integer("k");
    } else if (j.contains("activation_fn_kwargs") && j["activation_fn_kwargs"].is_object()) {
      c.k = JsonFields(j["activation_fn_kwargs"], source + " activation_fn_kwargs").integer("k");
    } else {
      f.fail("k", "is missing for a topk SAE");
    }
    if (c.k <= 0 || c.k > c.d_sae) f.fail("k", "is " + std::to_string(c.k) + ", outside 1..d_sae");
    c.rescale_acts_by_decoder_norm = f.boolean("rescale_acts_by_decoder_norm", false);
    if (c.metadata.contains("topk_groups")) {
      const nlohmann::json& g = c.metadata["topk_groups"];
      auto list = [&](const char* key, std::vector<std::int64_t>& out) {
        if (!g.is_object() || !g.contains(key) || !g[key].is_array() || g[key].size() > 64)
          f.fail(std::string("metadata.topk_groups.") + key, "is not a list of at most 64 integers");
        for (const auto& v : g[key]) {
          if (!v.is_number_integer()) f.fail(std::string("metadata.topk_groups.") + key, "holds a value that is not an integer");
          out.push_back(v.get<std::int64_t>());
        }
      };
      list("ends", c.group_ends);
      list("k", c.group_k);
      if (c.group_k.size() != c.group_ends.size() + 1)
        f.fail("metadata.topk_groups.k", "needs one entry more than metadata.topk_groups.ends");
      std::int64_t sum = 0, begin = 0;
      for (std::size_t i = 0; i < c.group_k.size(); ++i) {
        const std::int64_t end = i < c.group_ends.size() ? c.group_ends[i] : c.d_sae;
        if (end <= begin || end > c.d_sae) f.fail("metadata.topk_groups.ends", "must increase inside 1..d_sae-1");
        if (c.group_k[i] < 1 || c.group_k[i] > std::min(end - begin, c.k))
          f.fail("metadata.topk_groups.k", "entry " + std::to_string(i + 1) + " is outside 1..min(its group's size, k)");
        sum += c.group_k[i];
        begin = end;
      }
      if (sum < c.k) f.fail("metadata.topk_groups.k", "sums to " + std::to_string(sum) + ", under k (" + std::to_string(c.k) + ")");
    }
  } else if (c.architecture != "standard" && c.architecture != "jumprelu") {
    f.fail("architecture", "'" + c.architecture + "' is not supported",
           "Monoscope reads standard, topk and jumprelu SAEs and transcoder, skip_transcoder, jumprelu_transcoder and "
           "jumprelu_skip_transcoder transcoders");
  }
  c.apply_b_dec_to_input = f.boolean("apply_b_dec_to_input", !c.transcoder());
  if (f.has("normalize_activations") && j["normalize_activations"].is_boolean()) {
    c.normalize_activations = j["normalize_activations"].get<bool>() ? "expected_average_only_in" : "none";
  } else {
    c.normalize_activations = f.string("normalize_activations", "none");
  }
  const std::string& n = c.normalize_activations;
  if (c.transcoder() && n != "none")
    f.fail("normalize_activations", "is '" + n + "' for a transcoder",
           "Monoscope reads transcoders without run-time normalisation (none; a folded factor is fine)");
  if (n != "none" && n != "expected_average_only_in" && n != "constant_norm_rescale" && n != "layer_norm") {
    f.fail("normalize_activations", "'" + n + "' is not supported",
           "use none, expected_average_only_in, constant_norm_rescale or layer_norm");
  }
  c.dtype = f.string("dtype", "float32");
  return c;
}

std::vector<SaeConfig::TopkGroup> SaeConfig::topkGroups() const {
  if (group_k.empty()) return {{0, d_sae, k}};
  std::vector<TopkGroup> out;
  for (std::size_t i = 0; i < group_k.size(); ++i)
    out.push_back({i == 0 ? 0 : group_ends[i - 1], i < group_ends.size() ? group_ends[i] : d_sae, group_k[i]});
  return out;
}

SaeConfig SaeConfig::fromFile(const std::string& path) {
  return fromJson(readJsonFile(path), "'" + path + "'");
}

nlohmann::json SaeConfig::toJson() const {
  if (transcoder() && architecture == "topk")
    throw Error("a TopK transcoder (" + hook_name + " to " + hook_name_out + ") has no SAELens v6 architecture",
                "SAELens writes ReLU and JumpReLU transcoders; keep the sparsify folder and open it directly");
  nlohmann::json meta = metadata.is_object() ? metadata : nlohmann::json::object();
  // SAELens reads a cfg.json without metadata.sae_lens_version as pre-6.0 (and then drops the
  // metadata), so write the config-format version it expects.
  if (!meta.contains("sae_lens_version") || !meta["sae_lens_version"].is_string()) meta["sae_lens_version"] = kSaeLensFormatVersion;
  if (!meta.contains("sae_lens_training_version") || !meta["sae_lens_training_version"].is_string())
    meta["sae_lens_training_version"] = kSaeLensFormatVersion;
  meta["hook_name"] = hook_name;
  if (!model_name.empty()) meta["model_name"] = model_name;
  if (!meta.contains("hook_head_index")) meta["hook_head_index"] = nullptr;
  meta["prepend_bos"] = prepend_bos;
  if (context_size > 0) {
    meta["context_size"] = context_size;
  } else if (!meta.contains("context_size")) {
    meta["context_size"] = nullptr;
  }
  if (transcoder()) meta["hook_name_out"] = hook_name_out;
  if (architecture == "topk" && !group_k.empty()) {
    meta["topk_groups"] = {{"ends", group_ends}, {"k", group_k}};
  } else {
    meta.erase("topk_groups");
  }
  const std::string arch =
      transcoder() ? std::string(architecture == "jumprelu" ? "jumprelu_" : "") + (skip ? "skip_transcoder" : "transcoder") : architecture;
  nlohmann::json j = {{"architecture", arch},
                      {"d_in", d_in},
                      {"d_sae", d_sae},
                      {"dtype", "float32"},
                      {"device", "cpu"},
                      {"apply_b_dec_to_input", apply_b_dec_to_input},
                      {"normalize_activations", normalize_activations},
                      // SAELens flattens heads x d_head at hook_z, as Monoscope's hook does.
                      {"reshape_activations", hook_name.size() >= 6 && hook_name.compare(hook_name.size() - 6, 6, "hook_z") == 0 ? "hook_z" : "none"},
                      {"metadata", meta}};
  if (transcoder()) j["d_out"] = d_out;
  if (architecture == "topk") {
    j["k"] = k;
    j["rescale_acts_by_decoder_norm"] = rescale_acts_by_decoder_norm;
  }
  return j;
}

}  // namespace monoscope::core
