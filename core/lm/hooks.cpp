#include "lm/hooks.h"

#include "util/error.h"

namespace monoscope::core {

namespace {
const char* const kBlockHooks[] = {"hook_resid_pre", "hook_resid_mid", "hook_resid_post",
                                   "hook_attn_out", "hook_mlp_out"};
}

std::vector<std::string> HookSet::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : hooks_) out.push_back(k);
  return out;
}

at::Tensor HookSet::run(const std::string& name, at::Tensor x, std::int64_t position_offset) const {
  auto it = hooks_.find(name);
  if (it == hooks_.end()) return x;
  const HookContext ctx{&name, position_offset};
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

std::int64_t hookLayer(const std::string& name, std::int64_t n_layers) {
  const std::string hint = "valid hooks are hook_embed, hook_pos_embed and blocks.{0.." +
                           std::to_string(n_layers - 1) +
                           "}.{hook_resid_pre,hook_resid_mid,hook_resid_post,hook_attn_out,hook_mlp_out}";
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
        throw Error("hook '" + name + "' refers to block " + num + " but the model has " +
                        std::to_string(n_layers) + " blocks",
                    hint);
      }
    }
  }
  throw Error("unknown hook name '" + name + "'", hint);
}

}  // namespace monoscope::core
