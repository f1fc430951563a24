#pragma once
// Hook points with TransformerLens names. Internal (LibTorch): include only from .cpp files.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace monoscope::core {

struct HookContext {
  const std::string* name;            // hook name, e.g. "blocks.3.hook_resid_post"
  std::int64_t position_offset;       // absolute position of the first row in the activation
  const at::Tensor* ids = nullptr;    // the pass's input token ids [batch, pos], where known
};

// Reads an activation [batch, pos, width] (d_model; d_mlp at mlp.hook_post; heads x d_head at
// attn.hook_z); returns an undefined tensor to leave it unchanged, or a replacement of the same
// shape.
using HookFn = std::function<at::Tensor(const at::Tensor&, const HookContext&)>;

class HookSet {
 public:
  // `name` may be an alias (canonicalHook); the hook runs at the canonical point.
  void add(const std::string& name, HookFn fn);
  bool empty() const { return hooks_.empty(); }
  bool has(const std::string& name) const;
  std::vector<std::string> names() const;
  // Runs every hook registered at `name` in order, each seeing the previous one's output.
  at::Tensor run(const std::string& name, at::Tensor x, std::int64_t position_offset, const at::Tensor* ids = nullptr) const;

 private:
  std::unordered_map<std::string, std::vector<HookFn>> hooks_;
};

// The hook points of a block, TransformerLens names after "blocks.L.", in the order the forward
// pass reaches them (lm/transformer.cpp indexes this list).
enum BlockHook {
  kResidPre = 0, kAttnZ, kAttnOut, kResidMid, kMlpIn, kMlpNormalized, kMlpModuleIn, kMlpPost, kMlpModuleOut, kMlpOut, kResidPost,
  kBlockHookCount
};
const char* blockHookSuffix(BlockHook h);
// Which block hook a name (or alias) is; kBlockHookCount for hook_embed, hook_pos_embed and
// names that are not hooks.
BlockHook blockHookOf(const std::string& name);

// The TransformerLens name of a hook given by an alias: the Hugging Face module names that
// sparsify and Gemma Scope 2 record ("layers.5", "model.layers.5.mlp", "layers.5.self_attn",
// "embed_tokens") map to hook_resid_post, mlp.hook_out (the MLP module's own output, before any
// post-norm), hook_attn_out and hook_embed, and Gemma's
// "model.layers.5.pre_feedforward_layernorm.output" to mlp.hook_in; a TransformerLens name is
// returned as it is.
std::string canonicalHook(const std::string& name);
// Every hook name of a model with `n_layers` blocks.
std::vector<std::string> hookNames(std::int64_t n_layers);
// The block a hook belongs to (-1 for hook_embed / hook_pos_embed); throws Error for a name the
// model does not have, listing the valid forms. Aliases are accepted.
std::int64_t hookLayer(const std::string& name, std::int64_t n_layers);
// The width of the activation at a hook: d_mlp at mlp.hook_post, n_heads x d_head at
// attn.hook_z, d_model elsewhere.
struct ModelConfig;
std::int64_t hookWidth(const std::string& name, const ModelConfig& config);
// Where an alias names a module whose output is not the hook's value in this family (Gemma 2/3's
// attention module ends before its post-norm; Gemma's embedding module before the
// sqrt(d_model) scale): the reason, else "".
std::string aliasMismatch(const std::string& alias, const ModelConfig& config);

}  // namespace monoscope::core
