#include "sae/harvest.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "io/safetensors.h"
#include "io/torch_bridge.h"
#include "lm/hooks.h"
#include "sae/activation_store.h"
#include "lm/lm_trainer.h"
#include "lm/transformer.h"
#include "util/cancel.h"
#include "util/device.h"
#include "util/error.h"
#include "util/runtime.h"
#include "text/tokenizer.h"

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

namespace {

// A chunk on disk is brought up to date in place: one written before each row's token was
// stored has its windows drawn again from the chunk's generator (no model run) for them, and one
// that kept its end-of-text rows loses them now that they are left out.
// Before anything is rewritten, the first redrawn window is run through the model and must give
// the chunk's first stored rows: drawn with another seed, batch or corpus, the token ids would
// be wrong, and the chunk is refused instead.
template <class RowTokens, class Rows, class Write>
void upgradeChunk(const fs::path& path, const HarvestOptions& o, const TokenShard& shard, at::Generator gen,
                  const RowTokens& rowTokens, const Rows& rowsOf, std::int64_t d, std::int32_t boundary,
                  const Write& write) {
  at::Tensor acts, tokens;
  {
    SafetensorsFile f(path.string());
    const auto meta = f.metadata();
    auto field = [&](const char* key) { auto it = meta.find(key); return it == meta.end() ? std::string() : it->second; };
    if (f.has("tokens") && (boundary < 0 || field("end_of_text") == "excluded")) return;
    if (field("hook") != o.hook || field("context") != std::to_string(o.context) ||
        field("skip_first") != (o.skip_first ? "true" : "false"))
      throw Error("'" + path.string() + "' was harvested with other options (hook " + field("hook") + ", context " +
                      field("context") + ")",
                  "harvest into an empty folder, or give the options it was harvested with");
    const auto& view = f.tensor("activations");
    if (view.dtype != DType::F16 || view.shape.size() != 2 || view.shape[1] != d)
      throw Error("tensor 'activations' in '" + path.string() + "' is " + shapeString(view.shape) + " " + dtypeName(view.dtype) +
                      ", not F16 [rows, " + std::to_string(d) + "] as " + o.hook + " gives",
                  "harvest into an empty folder");
    acts = at::from_blob(const_cast<std::uint8_t*>(view.data), view.shape, at::kHalf).clone();
    if (f.has("tokens")) {
      const auto& t = f.tensor("tokens");
      if (t.dtype != DType::I32 || t.shape != std::vector<std::int64_t>{view.shape[0]})
        throw Error("tensor 'tokens' in '" + path.string() + "' is not I32 [rows]", "harvest into an empty folder");
      tokens = at::from_blob(const_cast<std::uint8_t*>(t.data), t.shape, at::kInt).to(at::kLong);
    }
  }
  if (!tokens.defined()) {
    std::vector<at::Tensor> parts;
    std::int64_t have = 0;
    while (have < acts.size(0)) {
      const at::Tensor windows = shard.sample(o.batch, o.context - 1, gen);
      if (parts.empty()) {  // the check above: the first windows' rows as the model gives them
        const at::Tensor again = rowsOf(windows);
        const std::int64_t n = std::min(again.size(0), acts.size(0));
        const double diff = (again.narrow(0, 0, n).to(at::kFloat) - acts.narrow(0, 0, n).to(at::kFloat)).abs().max().item<double>();
        const double scale = acts.narrow(0, 0, n).to(at::kFloat).abs().max().item<double>();
        if (!(diff <= 1e-2 * std::max(1.0, scale)))
          throw Error("'" + path.string() + "' does not hold the activations of the windows its seed draws now (they differ by " +
                          std::to_string(diff) + ")",
                      "give harvest the model, corpus, seed and batch it was harvested with, or harvest into an empty folder");
      }
      parts.push_back(rowTokens(windows));
      have += parts.back().size(0);
    }
    tokens = at::cat(parts).narrow(0, 0, acts.size(0));
  }
  if (boundary >= 0) {
    const at::Tensor keep = tokens.ne(boundary).nonzero().squeeze(1);
    acts = acts.index_select(0, keep);
    tokens = tokens.index_select(0, keep);
  }
  write(path, acts, tokens);
}

}  // namespace

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
  // Document boundaries carry massive activations like the first position (over 50 times the
  // median norm in SmolLM2), so with skip_first they are left out too, as the index leaves them.
  std::int32_t boundary = -1;
  try {
    if (o.skip_first && o.skip_end_of_text) boundary = Tokenizer::endOfTextIdOf(o.model_dir);
  } catch (const Error& e) {
    throw e.withContext("reading the end-of-text id that skip_first leaves out");
  }
  const std::int64_t chunks = (o.tokens + o.chunk_rows - 1) / o.chunk_rows;
  const std::int64_t d = hookWidth(o.hook, model->config());
  // Each chunk's windows: [batch, context] token ids from the chunk's own generator.
  auto chunkGenerator = [&o](std::int64_t c) { return at::detail::createCPUGenerator(o.seed * 1000003u + static_cast<std::uint64_t>(c) + 1); };
  auto rowTokens = [&](const at::Tensor& windows) { return windows.narrow(1, first, per_window).reshape(-1); };
  // The rows a batch of windows gives, before boundary rows are dropped: [batch * per_window, d] F16.
  auto rowsOf = [&](const at::Tensor& windows) {
    const at::Tensor captured = hookActivations(*model, o.hook, windows.to(device));  // [batch, context, d_model]
    return captured.narrow(1, first, per_window).reshape({-1, d}).to(at::kCPU, at::kHalf);
  };
  auto write = [&](const fs::path& path, const at::Tensor& acts, const at::Tensor& tokens) {
    SafetensorsWriter w;
    w.setMetadata("hook", o.hook);
    w.setMetadata("context", std::to_string(o.context));
    w.setMetadata("skip_first", o.skip_first ? "true" : "false");
    w.setMetadata("end_of_text", boundary >= 0 ? "excluded" : "included");
    w.setMetadata("seed", std::to_string(o.seed));
    w.setMetadata("batch", std::to_string(o.batch));
    w.setMetadata("corpus", o.corpus);
    const at::Tensor ids = tokens.to(at::kInt).contiguous();
    w.add("activations", DType::F16, {acts.size(0), d}, acts.data_ptr(), static_cast<std::size_t>(acts.nbytes()));
    w.add("tokens", DType::I32, {ids.size(0)}, ids.data_ptr(), static_cast<std::size_t>(ids.nbytes()));
    w.write(path.string());
  };
  c10::InferenceMode guard;
  try {
  for (std::int64_t c = 0; c < chunks; ++c) {
    char name[64];
    std::snprintf(name, sizeof name, "chunk-%05lld.safetensors", static_cast<long long>(c));
    const fs::path path = fs::path(o.out) / name;
    if (fs::exists(path)) {
      upgradeChunk(path, o, shard, chunkGenerator(c), rowTokens, rowsOf, d, boundary, write);
      report(progress, "harvest", (c + 1) * o.chunk_rows, chunks * o.chunk_rows, "chunk on disk");
      continue;
    }
    const std::int64_t rows = std::min(o.chunk_rows, o.tokens - c * o.chunk_rows);
    auto gen = chunkGenerator(c);
    at::Tensor out = at::empty({rows, d}, at::kHalf);  // [rows, d_model]
    at::Tensor out_tokens = at::empty({rows}, at::kLong);
    std::int64_t have = 0;
    while (have < rows) {
      const at::Tensor windows = shard.sample(o.batch, o.context - 1, gen);  // [batch, context]
      at::Tensor acts = rowsOf(windows);                                      // boundaries dropped below
      at::Tensor tokens = rowTokens(windows);
      if (boundary >= 0) {
        const at::Tensor keep = tokens.ne(boundary).nonzero().squeeze(1);
        acts = acts.index_select(0, keep);
        tokens = tokens.index_select(0, keep);
      }
      const std::int64_t take = std::min(rows - have, acts.size(0));
      out.narrow(0, have, take).copy_(acts.narrow(0, 0, take));
      out_tokens.narrow(0, have, take).copy_(tokens.narrow(0, 0, take));
      have += take;
      report(progress, "harvest", c * o.chunk_rows + have, chunks * o.chunk_rows);
    }
    if (!at::isfinite(out).all().item<bool>())
      throw Error("the activations at " + o.hook + " overflow F16 in chunk " + std::to_string(c), "harvest an earlier hook");
    write(path, out, out_tokens);
  }
  } catch (const Cancelled&) {
    return JobStatus::Cancelled;  // the chunks written so far stay; a rerun continues after them
  }
  return JobStatus::Done;
}

std::vector<std::string> activationFiles(const std::string& path) {
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("chunk-", 0) == 0 && e.path().extension() == ".safetensors") files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error("'" + path + "' holds no chunk-*.safetensors files", "run monoscope-cli harvest first");
  } else {
    if (!fs::exists(path, ec)) throw Error("'" + path + "' does not exist", "give a harvest folder or an activations file");
    files.push_back(path);
  }
  return files;
}

}  // namespace monoscope::core
