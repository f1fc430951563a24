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
};

// Reads an activation [batch, pos, d_model]; returns an undefined tensor to leave it unchanged,
// or a replacement of the same shape.
using HookFn = std::function<at::Tensor(const at::Tensor&, const HookContext&)>;

class HookSet {
 public:
  void add(const std::string& name, HookFn fn) { hooks_[name].push_back(std::move(fn)); }
  bool empty() const { return hooks_.empty(); }
  bool has(const std::string& name) const { return hooks_.count(name) != 0; }
  std::vector<std::string> names() const;
  // Runs every hook registered at `name` in order, each seeing the previous one's output.
  at::Tensor run(const std::string& name, at::Tensor x, std::int64_t position_offset) const;

 private:
  std::unordered_map<std::string, std::vector<HookFn>> hooks_;
};

// Every hook name of a model with `n_layers` blocks.
std::vector<std::string> hookNames(std::int64_t n_layers);
// The block a hook belongs to (-1 for hook_embed / hook_pos_embed); throws Error for a name the
// model does not have, listing the valid forms.
std::int64_t hookLayer(const std::string& name, std::int64_t n_layers);

}  // namespace monoscope::core
