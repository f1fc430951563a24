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


// Applies `spec` to activations x [batch, pos, d_in] whose first row is at `position_offset`.
at::Tensor applySteering(const Sae& sae, const at::Tensor& x, const SteeringSpec& spec,
                         std::int64_t position_offset);

// A hook that steers at the SAE's hook point.
HookFn makeSteeringHook(std::shared_ptr<const Sae> sae, SteeringSpec spec);

}  // namespace monoscope::core
