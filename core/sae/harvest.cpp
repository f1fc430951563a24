#include "sae/harvest.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <filesystem>

#include "io/safetensors.h"
#include "lm/hooks.h"
#include "sae/activation_store.h"
#include "lm/lm_trainer.h"
#include "lm/transformer.h"
#include "util/cancel.h"
#include "util/device.h"
#include "util/error.h"
#include "util/runtime.h"

namespace fs = std::filesystem;

namespace monoscope::core {

void HarvestOptions::validate() const {
  auto bad = [](const std::string& f, const std::string& why) { throw Error("harvest option " + f + " " + why); };
  if (model_dir.empty()) bad("model", "is empty");
  if (hook.empty()) bad("hook", "is empty");
  if (corpus.empty()) bad("corpus", "is empty");
  if (out.empty()) bad("out", "is empty");
  if (tokens <= 0 || tokens > (1ll << 34)) bad("tokens", "must be in 1..17179869184");
  if (context < 2 || context > (1 << 20)) bad("context", "must be at least 2");
  if (chunk_rows < 1024 || chunk_rows > (1 << 22)) bad("chunk_rows", "must be in 1024..4194304");
  if (batch < 1 || batch > 4096) bad("batch", "must be in 1..4096");
}

JobStatus harvestActivations(const HarvestOptions& o, const ProgressFn& progress) {
  o.validate();
  configureThreads(o.threads);
  const c10::Device device = resolveDevice(o.device);
  report(progress, "load", 0, 1);
  const auto model = Transformer::load(o.model_dir, device);
  if (o.context > model->config().n_ctx)
    throw Error("harvest option context " + std::to_string(o.context) + " exceeds the model's " + std::to_string(model->config().n_ctx) + " positions");
  (void)hookLayer(o.hook, model->config().n_layers);  // an unknown hook fails before any work
  const fs::path corpus = o.corpus;
  const TokenShard shard((fs::is_directory(corpus) ? corpus / "train.tokens.safetensors" : corpus).string());
  fs::create_directories(o.out);
  const std::int64_t first = o.skip_first ? 1 : 0;
  const std::int64_t per_window = o.context - first;
  const std::int64_t chunks = (o.tokens + o.chunk_rows - 1) / o.chunk_rows;
  const std::int64_t d = hookWidth(o.hook, model->config());
  c10::InferenceMode guard;
  try {
  for (std::int64_t c = 0; c < chunks; ++c) {
    char name[64];
    std::snprintf(name, sizeof name, "chunk-%05lld.safetensors", static_cast<long long>(c));
    const fs::path path = fs::path(o.out) / name;
    if (fs::exists(path)) {
      report(progress, "harvest", (c + 1) * o.chunk_rows, chunks * o.chunk_rows, "chunk on disk");
      continue;
    }
    const std::int64_t rows = std::min(o.chunk_rows, o.tokens - c * o.chunk_rows);
    auto gen = at::detail::createCPUGenerator(o.seed * 1000003u + static_cast<std::uint64_t>(c) + 1);
    at::Tensor out = at::empty({rows, d}, at::kHalf);  // [rows, d_model]
    std::int64_t have = 0;
    while (have < rows) {
      const at::Tensor windows = shard.sample(o.batch, o.context - 1, gen).to(device);  // [batch, context]
      const at::Tensor captured = hookActivations(*model, o.hook, windows);          // [batch, context, d_model]
      // [batch, context - first, d_model] -> rows
      const at::Tensor acts = captured.narrow(1, first, per_window).reshape({-1, d}).to(at::kCPU, at::kHalf);
      const std::int64_t take = std::min(rows - have, acts.size(0));
      out.narrow(0, have, take).copy_(acts.narrow(0, 0, take));
      have += take;
      report(progress, "harvest", c * o.chunk_rows + have, chunks * o.chunk_rows);
    }
    if (!at::isfinite(out).all().item<bool>())
      throw Error("the activations at " + o.hook + " overflow F16 in chunk " + std::to_string(c), "harvest an earlier hook");
    SafetensorsWriter w;
    w.setMetadata("hook", o.hook);
    w.setMetadata("context", std::to_string(o.context));
    w.setMetadata("skip_first", o.skip_first ? "true" : "false");
    w.add("activations", DType::F16, {rows, d}, out.data_ptr(), static_cast<std::size_t>(out.nbytes()));
    w.write(path.string());
  }
  } catch (const Cancelled&) {
    return JobStatus::Cancelled;  // the chunks written so far stay; a rerun continues after them
  }
  return JobStatus::Done;
}

}  // namespace monoscope::core
