#pragma once
// Steering a model with SAE features at the SAE's own hook. Internal (LibTorch).
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "api/types.h"
#include "lm/hooks.h"
#include "sae/sae.h"

namespace monoscope::core {


struct SteeringSpec {
  std::vector<FeatureEdit> edits;
  SteerMode mode = SteerMode::Clamp;
  SteerPositions positions = SteerPositions::All;
  std::int64_t prompt_length = 0;  // rows with absolute position < prompt_length are the prompt

  // Throws Error for out-of-range features or non-finite values.
  void validate(std::int64_t d_sae) const;
};


// Applies `spec` to activations x [batch, pos, d_out] whose first row is at `position_offset`:
// x plus (target - current) times each edited feature's decoder row, where `current` is encoded
// from `read` [batch, pos, d_in] (the activations at the dictionary's input hook: x itself for
// an SAE). What the dictionary does not reconstruct stays as it was (SAELens's error term).
// `token_ids` [batch, pos]: the rows' token ids, which an SAE with its token table on both sides needs
// (Sae::readsTokenTable) to encode `current`.
at::Tensor applySteering(const Sae& sae, const at::Tensor& x, const SteeringSpec& spec,
                         std::int64_t position_offset, const at::Tensor& read = {}, const at::Tensor& token_ids = {});

// A hook that steers at an SAE's hook point.
HookFn makeSteeringHook(std::shared_ptr<const Sae> sae, SteeringSpec spec);
// Adds the hooks that steer with `sae`: one at an SAE's hook; for a transcoder, one that keeps
// the activations at its input hook and one that edits its output hook.
void addSteeringHooks(std::shared_ptr<const Sae> sae, SteeringSpec spec, HookSet* hooks);

}  // namespace monoscope::core
