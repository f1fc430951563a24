// tokenize, logits, encode, generate, sae-convert, top-features: the engine's command-line
// contract, on core's public API (logits keeps the internal hook reader for any hook).
#include <ATen/ATen.h>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <c10/core/InferenceMode.h>

#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "api/engine.h"
#include "api/feature_db.h"
#include "api/ranking.h"
#include "commands.h"
#include "inputs.h"
#include "io/gguf_import.h"
#include "io/safetensors.h"
#include "io/torch_bridge.h"
#include "lm/hooks.h"
#include "lm/transformer.h"
#include "sae/sae.h"
#include "sae/token_table.h"
#include "sae/transcoder_set.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

using monoscope::core::Error;

namespace monoscope::cli {

namespace {

const std::set<std::string> kRuntime = {"device", "threads", "weights"};

std::set<std::string> with(std::set<std::string> a) {
  a.insert(kRuntime.begin(), kRuntime.end());
  return a;
}

std::unique_ptr<core::Engine> openEngine(const Args& args, bool with_sae) {
  return core::Engine::open(engineOptions(args, with_sae));
}

// Token ids for --ids, or the model's tokenizer applied to --text / --text-file.
std::vector<std::int32_t> inputIds(const Args& args, const core::Engine& engine) {
  if (args.has("ids")) {
    if (args.has("text") || args.has("text-file")) throw Error("give either --ids or text, not both");
    return parseIds(args.get("ids"), engine.info().vocab_size);
  }
  return engine.tokenIds(readTextInput(args));
}

}  // namespace

int cmdTokenize(const Args& args) {
  args.allowOnly({"tokenizer", "text", "text-file", "device", "threads"});  // no model: no --weights
  applyRuntimeOptions(args);
  const std::string text = readTextInput(args);
  const auto tok = core::Tokenizer::fromDirectory(args.get("tokenizer"));
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  const auto tokens = tok.encode(text);
  std::vector<std::string> pieces;
  for (const auto& t : tokens) pieces.push_back(text.substr(t.start, t.end - t.start));
  const auto shown = core::displayPieces(pieces);  // a split character whole on its first token
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    nlohmann::ordered_json row;
    row["id"] = tokens[i].id;
    row["start"] = tokens[i].start;
    row["end"] = tokens[i].end;
    row["text"] = shown[i];
    out.push_back(row);
  }
  std::cout << out.dump() << "\n";
  return 0;
}

int cmdLogits(const Args& args) {
  args.allowOnly(with({"model", "text", "text-file", "ids", "out", "hook", "weights"}));
  const auto device = applyRuntimeOptions(args);
  const std::string dir = args.get("model");
  const std::string out_path = args.get("out");
  const auto weights = core::weightDtypeFromName(args.get("weights", "auto"), "--weights");
  auto model = core::Transformer::load(dir, c10::Device(device), weights);
  const auto names = args.all("hook");
  for (const auto& n : names) core::hookLayer(n, model->config().n_layers);
  std::vector<std::int32_t> ids;
  if (args.has("ids")) {
    if (args.has("text") || args.has("text-file")) throw Error("give either --ids or text, not both");
    ids = parseIds(args.get("ids"), model->config().vocab_size);
  } else {
    const std::string text = readTextInput(args);
    ids = core::Tokenizer::fromDirectory(dir).encodeIds(text);
    for (auto id : ids)
      if (id >= model->config().vocab_size)
        throw Error("the tokenizer in '" + dir + "' produced id " + std::to_string(id) + " beyond the model's vocabulary");
  }
  c10::InferenceMode guard;
  core::HookSet hooks;
  std::map<std::string, at::Tensor> captured;
  for (const auto& name : names) {
    hooks.add(name, [&captured](const at::Tensor& x, const core::HookContext& ctx) {
      captured[*ctx.name] = x[0].detach().to(at::kCPU).clone();
      return at::Tensor();
    });
  }
  std::vector<std::int64_t> v(ids.begin(), ids.end());
  at::Tensor logits = model->forward(at::tensor(v, at::kLong).view({1, -1}), &hooks);  // [1, pos, vocab]
  std::vector<std::pair<std::string, at::Tensor>> tensors = {{"logits", logits[0]}};
  for (const auto& [name, t] : captured) tensors.emplace_back(name, t);
  core::saveTensors(out_path, tensors);
  return 0;
}

int cmdEncode(const Args& args) {
  args.allowOnly(with({"model", "sae", "text", "text-file", "ids", "out"}));
  const std::string out_path = args.get("out");
  auto engine = openEngine(args, true);
  const auto ids = inputIds(args, *engine);
  const auto acts = engine->featureMatrix(ids);
  const auto& info = engine->info();
  core::SafetensorsWriter w;
  w.addF32("feature_acts", {static_cast<std::int64_t>(ids.size()), info.d_sae}, acts);
  w.setMetadata("window", std::to_string(info.window));
  w.write(out_path);
  if (static_cast<std::int64_t>(ids.size()) > info.window)
    std::cerr << "note: " << ids.size() << " tokens were encoded in windows of " << info.window
              << " (the SAE's context)\n";
  return 0;
}

int cmdGenerate(const Args& args) {
  args.allowOnly(with({"model", "prompt", "max-tokens", "seed", "temperature", "top-p", "sae", "clamp", "mode", "positions",
                       "features"}));
  core::GenerateRequest req;
  req.max_tokens = args.integer("max-tokens", 0, 1000000);
  req.seed = static_cast<std::uint64_t>(args.integer("seed", 0, 0, INT64_MAX));
  req.temperature = args.number("temperature", 0.0);
  req.top_p = args.number("top-p", 1.0);
  req.prompt = args.get("prompt");
  if (req.prompt.empty()) throw Error("--prompt is empty", "give some prompt text");
  core::requireUtf8(req.prompt, "--prompt");
  const bool steering = args.has("sae") || args.has("clamp");
  if (steering && !args.has("sae")) throw Error("--clamp needs --sae DIR");
  std::unique_ptr<core::FeatureDb> db;
  if (args.has("features")) db = core::FeatureDb::open(args.get("features"));
  if (steering) {
    req.mode = core::parseSteerMode(args.get("mode", "clamp"));
    req.positions = core::parseSteerPositions(args.get("positions", "all"));
    for (const auto& c : args.all("clamp")) req.edits.push_back(parseClamp(c, req.mode, db.get()));
  }
  auto engine = openEngine(args, steering);
  const auto result = engine->generate(req);
  for (const auto& w : result.warnings) std::cerr << "warning: " << w << "\n";
  auto json = [](const core::Completion& c) {
    nlohmann::ordered_json o;
    o["text"] = c.text;
    o["ids"] = c.ids;
    return o;
  };
  nlohmann::ordered_json out;
  out["default"] = json(result.default_run);
  if (steering) out["steered"] = json(result.steered_run);
  std::cout << out.dump() << "\n";
  return 0;
}

int cmdSaeConvert(const Args& args) {
  args.allowOnly({"sae", "out", "dtype"});
  const std::string dtype = args.get("dtype", "f32");
  if (dtype != "f32" && dtype != "f16") throw core::Error("--dtype is '" + dtype + "'", "use f32 or f16");
  auto convert = [&](const std::string& spec, const std::string& out) {
    auto sae = core::Sae::load(spec, c10::Device(c10::kCPU));
    sae->save(out, dtype == "f16");
    if (core::copySaeTokenTable(spec, out, dtype == "f16")) std::cerr << "with its token table\n";
    const auto& c = sae->config();
    if (c.transcoder())
      std::cerr << "saved " << c.architecture << (c.skip ? " skip" : "") << " transcoder (" << c.d_sae << " features from "
                << c.hook_name << " to " << c.hook_name_out << ") to " << out << "\n";
    else
      std::cerr << "saved " << c.architecture << " SAE (" << c.d_sae << " features at " << c.hook_name << ") to " << out << "\n";
  };
  const std::string spec = args.get("sae");
  std::error_code ec;
  if (core::isTranscoderSetFile(spec) && std::filesystem::is_regular_file(spec, ec)) {
    // A whole circuit-tracer set: one SAELens folder per layer, OUT/layer_<L>.
    const auto set = core::TranscoderSet::read(spec);
    for (const auto& t : set.transcoders)
      convert(spec + "#" + std::to_string(t.layer), (std::filesystem::path(args.get("out")) / ("layer_" + std::to_string(t.layer))).string());
    return 0;
  }
  convert(spec, args.get("out"));
  return 0;
}

int cmdImportGguf(const Args& args) {
  args.allowOnly({"gguf", "out", "dtype"});
  const std::string dtype = args.get("dtype", "f32");
  if (dtype != "f32" && dtype != "bf16") throw core::Error("--dtype is '" + dtype + "'", "use f32 or bf16");
  core::GgufImportOptions options;
  options.bf16 = dtype == "bf16";
  const auto start = std::chrono::steady_clock::now();
  core::importGguf(args.get("gguf"), args.get("out"), options);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "imported " << args.get("gguf") << " into " << args.get("out") << " (" << dtype << ", "
            << std::fixed << std::setprecision(1) << s << " s)\n";
  return 0;
}

// The strongest features at one position of an `encode` output.
int cmdTopFeatures(const Args& args) {
  args.allowOnly({"acts", "position", "count", "ids-only"});
  const std::string path = args.get("acts");
  core::SafetensorsFile f(path);
  const auto& view = f.tensor("feature_acts");
  if (view.shape.size() != 2 || view.shape[0] < 1 || view.shape[1] < 1)
    throw Error("'" + path + "': feature_acts must be [n_tokens, d_sae] with both sizes positive");
  const std::int64_t n = view.shape[0], d = view.shape[1];
  std::int64_t pos = args.integer("position", -1, -n, n - 1);
  if (pos < 0) pos += n;
  const std::int64_t count = args.integer("count", std::min<std::int64_t>(10, d), 1, d);
  const auto acts = f.toFloat("feature_acts");
  const auto top = core::topFeatures(acts.data() + pos * d, static_cast<std::size_t>(d), static_cast<std::size_t>(count));
  if (args.get("ids-only", "false") == "true") {
    std::cout << top[0].feature << "\n";
    return 0;
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& t : top) out.push_back({{"feature", t.feature}, {"activation", t.score}});
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace monoscope::cli
