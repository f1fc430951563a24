#include "sae/steering.h"

#include <cmath>
#include <vector>

#include "util/error.h"

namespace monoscope::core {

void SteeringSpec::validate(std::int64_t d_sae) const {
  if (edits.empty()) throw Error("no features to steer", "give at least one feature edit");
  if (static_cast<std::int64_t>(edits.size()) > d_sae)
    throw Error(std::to_string(edits.size()) + " feature edits for an SAE of " + std::to_string(d_sae) + " features",
                "edit each feature at most once");
  std::vector<bool> seen(static_cast<std::size_t>(d_sae), false);
  for (const auto& e : edits) {
    if (e.feature < 0 || e.feature >= d_sae) {
      throw Error("feature " + std::to_string(e.feature) + " does not exist; the SAE has " +
                      std::to_string(d_sae) + " features",
                  "use an id in 0.." + std::to_string(d_sae - 1));
    }
    if (!std::isfinite(e.value) || std::fabs(e.value) > 1e6) {
      throw Error("steering value for feature " + std::to_string(e.feature) + " is not a finite number of sensible size",
                  "use a finite value such as 10 x the feature's max activation");
    }
    if (seen[static_cast<std::size_t>(e.feature)])
      throw Error("feature " + std::to_string(e.feature) + " is edited twice", "give one value per feature");
    seen[static_cast<std::size_t>(e.feature)] = true;
  }
  if (prompt_length < 0) throw Error("prompt length is negative");
}

SteerMode parseSteerMode(const std::string& s) {
  if (s == "clamp") return SteerMode::Clamp;
  if (s == "add") return SteerMode::Add;
  if (s == "ablate") return SteerMode::Ablate;
  throw Error("unknown steering mode '" + s + "'", "use clamp, add or ablate");
}

const char* steerModeName(SteerMode m) {
  switch (m) {
    case SteerMode::Clamp: return "clamp";
    case SteerMode::Add: return "add";
    case SteerMode::Ablate: return "ablate";
  }
  return "clamp";
}

const char* steerPositionsName(SteerPositions p) {
  switch (p) {
    case SteerPositions::All: return "all";
    case SteerPositions::Prompt: return "prompt";
    case SteerPositions::Generated: return "generated";
  }
  return "all";
}

SteerPositions parseSteerPositions(const std::string& s) {
  if (s == "all") return SteerPositions::All;
  if (s == "prompt") return SteerPositions::Prompt;
  if (s == "generated") return SteerPositions::Generated;
  throw Error("unknown positions '" + s + "'", "use all, prompt or generated");
}

at::Tensor applySteering(const Sae& sae, const at::Tensor& x, const SteeringSpec& spec,
                         std::int64_t position_offset, const at::Tensor& read, const at::Tensor& token_ids) {
  const std::int64_t T = x.size(-2);
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(x.device());
  // Rows this edit applies to: mask [pos, 1].
  at::Tensor pos = at::arange(position_offset, position_offset + T, opts);
  at::Tensor mask;
  switch (spec.positions) {
    case SteerPositions::All: mask = at::ones({T}, opts); break;
    case SteerPositions::Prompt: mask = (pos < static_cast<double>(spec.prompt_length)).to(at::kFloat); break;
    case SteerPositions::Generated: mask = (pos >= static_cast<double>(spec.prompt_length)).to(at::kFloat); break;
  }
  if (mask.sum().item<double>() == 0.0) return at::Tensor();  // nothing to change here
  mask = mask.unsqueeze(-1);  // [pos, 1]

  std::vector<std::int64_t> ids;
  std::vector<float> values;
  for (const auto& e : spec.edits) {
    ids.push_back(e.feature);
    values.push_back(spec.mode == SteerMode::Ablate ? 0.0f : static_cast<float>(e.value));
  }
  at::Tensor idx = at::tensor(ids, at::kLong).to(sae.device());
  at::Tensor target = at::tensor(values, at::kFloat).to(x.device());  // [n]
  at::Tensor rows = sae.writeRows(idx).to(x.device());                 // [n, d_out]
  at::Tensor coeff;                                                    // [..., pos, n]
  at::Tensor out_scale;
  if (spec.mode == SteerMode::Add) {
    coeff = target.expand({T, target.size(0)}) * mask;
  } else {
    SaeNorm norm;
    const at::Tensor in = sae.lessTokenRows(read.defined() ? read : x, token_ids);
    at::Tensor current = sae.encodeColumns(in, idx, &norm).to(x.device());  // [..., pos, n]
    coeff = (target - current) * mask;
    if (!sae.config().transcoder()) out_scale = norm.scale;  // a transcoder's output is not rescaled
  }
  at::Tensor delta = at::matmul(coeff, rows);  // [..., pos, d_out]
  if (out_scale.defined()) delta = delta * out_scale.to(x.device());
  return x + delta.to(x.scalar_type());
}

HookFn makeSteeringHook(std::shared_ptr<const Sae> sae, SteeringSpec spec) {
  spec.validate(sae->config().d_sae);
  return [sae, spec](const at::Tensor& x, const HookContext& ctx) -> at::Tensor {
    return applySteering(*sae, x, spec, ctx.position_offset, {}, ctx.ids != nullptr ? *ctx.ids : at::Tensor());
  };
}

void addSteeringHooks(std::shared_ptr<const Sae> sae, SteeringSpec spec, HookSet* hooks) {
  if (!sae->config().transcoder()) {
    const std::string hook = sae->config().hook_name;  // read before the pointer is moved from
    hooks->add(hook, makeSteeringHook(std::move(sae), std::move(spec)));
    return;
  }
  spec.validate(sae->config().d_sae);
  // The input hook runs first in the same forward pass (checkSaeFitsModel), so the output hook
  // always sees this pass's input.
  auto read = std::make_shared<at::Tensor>();
  hooks->add(sae->config().hook_name, [read](const at::Tensor& x, const HookContext&) {
    *read = x;
    return at::Tensor();
  });
  hooks->add(sae->config().hook_name_out, [sae, spec, read](const at::Tensor& x, const HookContext& ctx) -> at::Tensor {
    return applySteering(*sae, x, spec, ctx.position_offset, *read);
  });
}

}  // namespace monoscope::core
