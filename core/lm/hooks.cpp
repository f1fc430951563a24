#include "lm/hooks.h"

#include "lm/model_config.h"
#include "util/error.h"

namespace monoscope::core {

namespace {
// mlp.hook_in and mlp.hook_out are the MLP module's own input (after its norm's weights: what
// transcoders read) and output (before a post-norm, as circuit-tracer's mlp.hook_out), where
// ln2.hook_normalized is TransformerLens's normalised stream before those weights and
// hook_mlp_out what the block adds to the residual stream.
const char* const kBlockHooks[] = {"hook_resid_pre", "attn.hook_z",  "hook_attn_out",   "hook_resid_mid",
                                   "hook_mlp_in",    "ln2.hook_normalized", "mlp.hook_in", "mlp.hook_post",
                                   "mlp.hook_out",   "hook_mlp_out",   "hook_resid_post"};
static_assert(sizeof(kBlockHooks) / sizeof(kBlockHooks[0]) == kBlockHookCount, "one name per BlockHook");

// "12" -> 12 for canonical decimal numbers (no sign, no leading zero), else -1.
std::int64_t layerNumber(const std::string& s) {
  if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos || (s.size() > 1 && s[0] == '0'))
    return -1;
  return std::stoll(s);
}
}  // namespace

const char* blockHookSuffix(BlockHook h) { return kBlockHooks[h]; }

BlockHook blockHookOf(const std::string& name) {
  const std::string canonical = canonicalHook(name);
  if (canonical.rfind("blocks.", 0) != 0) return kBlockHookCount;
  const auto dot = canonical.find('.', 7);
  if (dot == std::string::npos) return kBlockHookCount;
  const std::string suffix = canonical.substr(dot + 1);
  for (int h = 0; h < kBlockHookCount; ++h)
    if (suffix == kBlockHooks[h]) return static_cast<BlockHook>(h);
  return kBlockHookCount;
}

std::string canonicalHook(const std::string& name) {
  if (name == "embed_tokens" || name == "model.embed_tokens" || name == "gpt_neox.embed_in" || name == "transformer.wte")
    return "hook_embed";
  // Hugging Face module paths: [model.|gpt_neox.|transformer.](layers|h).L[.mlp|.self_attn|.attention|.attn]
  std::string rest = name;
  for (const char* prefix : {"model.", "gpt_neox.", "transformer."})
    if (rest.rfind(prefix, 0) == 0) rest = rest.substr(std::string(prefix).size());
  std::string tail;
  if (rest.rfind("layers.", 0) == 0) {
    tail = rest.substr(7);
  } else if (rest.rfind("h.", 0) == 0) {
    tail = rest.substr(2);
  } else {
    return name;
  }
  const auto dot = tail.find('.');
  const std::int64_t layer = layerNumber(tail.substr(0, dot));
  if (layer < 0) return name;
  const std::string module = dot == std::string::npos ? "" : tail.substr(dot + 1);
  const std::string block = "blocks." + std::to_string(layer) + ".";
  if (module.empty() || module == "output") return block + "hook_resid_post";
  // The points Gemma Scope 2 records (inputs and outputs of Gemma 3's modules).
  if (module == "self_attn.o_proj.input") return block + "attn.hook_z";
  if (module == "post_attention_layernorm.output") return block + "hook_attn_out";
  if (module == "post_feedforward_layernorm.output") return block + "hook_mlp_out";
  if (module == "pre_feedforward_layernorm.output" || module == "mlp.input") return block + "mlp.hook_in";
  if (module == "mlp" || module == "mlp.output") return block + "mlp.hook_out";
  if (module == "self_attn" || module == "attention" || module == "attn") return block + "hook_attn_out";
  return name;
}

void HookSet::add(const std::string& name, HookFn fn) { hooks_[canonicalHook(name)].push_back(std::move(fn)); }

bool HookSet::has(const std::string& name) const { return hooks_.count(canonicalHook(name)) != 0; }

std::vector<std::string> HookSet::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : hooks_) out.push_back(k);
  return out;
}

at::Tensor HookSet::run(const std::string& name, at::Tensor x, std::int64_t position_offset, const at::Tensor* ids) const {
  auto it = hooks_.find(name);
  if (it == hooks_.end()) return x;
  const HookContext ctx{&name, position_offset, ids};
  for (const auto& fn : it->second) {
    at::Tensor y = fn(x, ctx);
    if (y.defined()) {
      if (!y.sizes().equals(x.sizes())) {
        throw Error("hook at '" + name + "' returned a tensor of the wrong shape");
      }
      x = y;
    }
  }
  return x;
}

std::vector<std::string> hookNames(std::int64_t n_layers) {
  std::vector<std::string> out = {"hook_embed", "hook_pos_embed"};
  for (std::int64_t l = 0; l < n_layers; ++l)
    for (const char* h : kBlockHooks) out.push_back("blocks." + std::to_string(l) + "." + h);
  return out;
}

std::int64_t hookLayer(const std::string& given, std::int64_t n_layers) {
  const auto hint = [n_layers]() {  // built only for an error
    std::string suffixes;
    for (const char* h : kBlockHooks) suffixes += (suffixes.empty() ? "" : ",") + std::string(h);
    return "valid hooks are hook_embed, hook_pos_embed and blocks.{0.." + std::to_string(n_layers - 1) + "}.{" + suffixes +
           "} (or the Hugging Face module names layers.L, layers.L.mlp, layers.L.self_attn)";
  };
  const std::string name = canonicalHook(given);
  if (name == "hook_embed" || name == "hook_pos_embed") return -1;
  if (name.rfind("blocks.", 0) == 0) {
    const auto dot = name.find('.', 7);
    if (dot != std::string::npos && dot > 7 && dot - 7 <= 6) {
      const std::string num = name.substr(7, dot - 7);
      // Canonical numbers only: "blocks.03..." is not a TransformerLens name.
      bool digits = num.find_first_not_of("0123456789") == std::string::npos && (num.size() == 1 || num[0] != '0');
      const std::string suffix = name.substr(dot + 1);
      bool known = false;
      for (const char* h : kBlockHooks) known = known || suffix == h;
      if (digits && known) {
        const std::int64_t layer = std::stoll(num);
        if (layer < n_layers) return layer;
        throw Error("hook '" + given + "' refers to block " + num + " but the model has " +
                        std::to_string(n_layers) + " blocks",
                    hint());
      }
    }
  }
  throw Error("unknown hook name '" + given + "'", hint());
}

std::string aliasMismatch(const std::string& alias, const ModelConfig& c) {
  const std::string canonical = canonicalHook(alias);
  if (canonical == alias) return "";
  const BlockHook h = blockHookOf(canonical);
  if (c.post_norms && h == kAttnOut)
    return "in " + c.model_type + " the module output '" + alias + "' comes before the post-norm, and " + canonical +
           " after it";
  if (canonical == "hook_embed" && c.embed_scale != 1.0)
    return "in " + c.model_type + " the module output '" + alias + "' comes before the embedding scale, and hook_embed after it";
  return "";
}

std::int64_t hookWidth(const std::string& name, const ModelConfig& c) {
  switch (blockHookOf(name)) {
    case kMlpPost:
      return c.d_mlp;
    case kAttnZ:
      return c.n_heads * c.d_head;
    default:
      return c.d_model;
  }
}

}  // namespace monoscope::core
