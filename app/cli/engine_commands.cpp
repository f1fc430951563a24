// tokenize, logits, encode, generate: the engine's command-line contract.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "inputs.h"
#include "io/torch_bridge.h"
#include "lm/generator.h"
#include "lm/hooks.h"
#include "lm/transformer.h"
#include "sae/sae.h"
#include "sae/steering.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace fs = std::filesystem;
using monoscope::core::Error;

namespace monoscope::cli {

namespace {

const std::set<std::string> kRuntime = {"device", "threads"};

std::set<std::string> with(std::set<std::string> a) {
  a.insert(kRuntime.begin(), kRuntime.end());
  return a;
}

// Token ids for --ids, or the model's tokenizer applied to --text / --text-file.
std::vector<std::int32_t> modelInput(const Args& args, const core::Transformer& model, const std::string& dir) {
  if (args.has("ids")) {
    if (args.has("text") || args.has("text-file")) throw Error("give either --ids or text, not both");
    return parseIds(args.get("ids"), model.config().vocab_size);
  }
  const std::string text = readTextInput(args);
  const auto tok = core::Tokenizer::fromDirectory(dir);
  auto ids = tok.encodeIds(text);
  for (auto id : ids) {
    if (id >= model.config().vocab_size)
      throw Error("the tokenizer in '" + dir + "' produced id " + std::to_string(id) + " beyond the model's vocabulary");
  }
  return ids;
}

at::Tensor idsTensor(const std::vector<std::int32_t>& ids) {
  std::vector<std::int64_t> v(ids.begin(), ids.end());
  return at::tensor(v, at::kLong).view({1, -1});  // [1, pos]
}

// Registers hooks that copy the activation [pos, d_model] at each name into `out`.
void captureHooks(core::HookSet* hooks, const std::vector<std::string>& names,
                  std::map<std::string, at::Tensor>* out) {
  for (const auto& name : names) {
    hooks->add(name, [out](const at::Tensor& x, const core::HookContext& ctx) {
      (*out)[*ctx.name] = x[0].detach().to(at::kCPU).clone();
      return at::Tensor();
    });
  }
}

// The SAE reads a hook this model has, with the model's width; returns the hook's block.
std::int64_t requireSaeFitsModel(const core::Sae& sae, const core::Transformer& model, const std::string& sae_dir) {
  const std::string& hook = sae.config().hook_name;
  const std::int64_t layer = core::hookLayer(hook, model.config().n_layers);
  if (sae.config().d_in != model.config().d_model) {
    throw Error("SAE '" + sae_dir + "' has d_in " + std::to_string(sae.config().d_in) +
                    " but the model's activations at '" + hook + "' have width " +
                    std::to_string(model.config().d_model),
                "use an SAE trained on this model");
  }
  return layer;
}

}  // namespace

int cmdTokenize(const Args& args) {
  args.allowOnly({"tokenizer", "text", "text-file"});
  const std::string text = readTextInput(args);
  const auto tok = core::Tokenizer::fromDirectory(args.get("tokenizer"));
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& t : tok.encode(text)) {
    nlohmann::ordered_json row;
    row["id"] = t.id;
    row["start"] = t.start;
    row["end"] = t.end;
    out.push_back(row);
  }
  std::cout << out.dump() << "\n";
  return 0;
}

int cmdLogits(const Args& args) {
  args.allowOnly(with({"model", "text", "text-file", "ids", "out", "hook"}));
  const auto device = applyRuntimeOptions(args);
  const std::string dir = args.get("model");
  const std::string out_path = args.get("out");
  auto model = core::Transformer::load(dir, c10::Device(device));
  const auto names = args.all("hook");
  for (const auto& n : names) core::hookLayer(n, model->config().n_layers);
  const auto ids = modelInput(args, *model, dir);
  c10::InferenceMode guard;
  core::HookSet hooks;
  std::map<std::string, at::Tensor> captured;
  captureHooks(&hooks, names, &captured);
  at::Tensor logits = model->forward(idsTensor(ids), &hooks);  // [1, pos, vocab]
  std::vector<std::pair<std::string, at::Tensor>> tensors = {{"logits", logits[0]}};
  for (const auto& [name, t] : captured) tensors.emplace_back(name, t);
  core::saveTensors(out_path, tensors);
  return 0;
}

int cmdEncode(const Args& args) {
  args.allowOnly(with({"model", "sae", "text", "text-file", "ids", "out"}));
  const auto device = applyRuntimeOptions(args);
  const std::string dir = args.get("model");
  const std::string out_path = args.get("out");
  auto model = core::Transformer::load(dir, c10::Device(device));
  auto sae = core::Sae::load(args.get("sae"), c10::Device(device));
  const std::string& hook = sae->config().hook_name;
  const std::int64_t layer = requireSaeFitsModel(*sae, *model, args.get("sae"));
  const auto ids = modelInput(args, *model, dir);
  c10::InferenceMode guard;
  core::HookSet hooks;
  std::map<std::string, at::Tensor> captured;
  captureHooks(&hooks, {hook}, &captured);
  model->forward(idsTensor(ids), &hooks, nullptr, layer < 0 ? 0 : layer);
  at::Tensor acts = sae->encode(captured.at(hook));  // [pos, d_sae]
  core::saveTensors(out_path, {{"feature_acts", acts}});
  return 0;
}

int cmdGenerate(const Args& args) {
  args.allowOnly(with({"model", "prompt", "max-tokens", "seed", "temperature", "top-p", "sae", "clamp",
                       "mode", "positions"}));
  const auto device = applyRuntimeOptions(args);
  const std::string dir = args.get("model");
  core::SamplingOptions opt;
  opt.max_tokens = args.integer("max-tokens", 0, 1000000);
  opt.seed = static_cast<std::uint64_t>(args.integer("seed", 0, 0, INT64_MAX));
  opt.temperature = args.number("temperature", 0.0);
  opt.top_p = args.number("top-p", 1.0);
  opt.validate();
  const std::string prompt = args.get("prompt");
  if (prompt.empty()) throw Error("--prompt is empty", "give some prompt text");
  core::requireUtf8(prompt, "--prompt");

  auto model = core::Transformer::load(dir, c10::Device(device));
  const auto tok = core::Tokenizer::fromDirectory(dir);
  const auto prompt_ids = tok.encodeIds(prompt);
  for (auto id : prompt_ids) {
    if (id >= model->config().vocab_size)
      throw Error("the tokenizer in '" + dir + "' produced id " + std::to_string(id) +
                      " beyond the model's vocabulary of " + std::to_string(model->config().vocab_size),
                  "the tokenizer does not belong to this model");
  }
  opt.stop_token = model->config().eos_token_id >= 0 ? model->config().eos_token_id : tok.endOfTextId();

  const bool steering = args.has("sae") || args.has("clamp");
  std::shared_ptr<core::Sae> sae;
  core::SteeringSpec spec;
  if (steering) {
    if (!args.has("sae")) throw Error("--clamp needs --sae DIR");
    spec.mode = core::parseSteerMode(args.get("mode", "clamp"));
    spec.positions = core::parseSteerPositions(args.get("positions", "all"));
    spec.prompt_length = static_cast<std::int64_t>(prompt_ids.size());
    for (const auto& c : args.all("clamp")) {
      const auto eq = c.find('=');
      core::FeatureEdit e;
      if (eq == std::string::npos) {
        if (spec.mode != core::SteerMode::Ablate) throw Error("--clamp '" + c + "' must be ID=VALUE");
        e.feature = parseInteger(c, "--clamp feature id");
      } else {
        e.feature = parseInteger(c.substr(0, eq), "--clamp feature id");
        e.value = parseNumber(c.substr(eq + 1), "--clamp value of feature " + c.substr(0, eq));
      }
      spec.edits.push_back(e);
    }
    sae = core::Sae::load(args.get("sae"), c10::Device(device));
    requireSaeFitsModel(*sae, *model, args.get("sae"));
    spec.validate(sae->config().d_sae);
  }

  auto run = [&](const core::HookSet* hooks) {
    const auto ids = core::generate(*model, prompt_ids, opt, hooks);
    nlohmann::ordered_json o;
    o["text"] = core::toValidUtf8(tok.decode(ids));
    o["ids"] = ids;
    return o;
  };
  nlohmann::ordered_json out;
  out["default"] = run(nullptr);
  if (steering) {
    core::HookSet hooks;
    hooks.add(sae->config().hook_name, core::makeSteeringHook(sae, spec));
    out["steered"] = run(&hooks);
  }
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace monoscope::cli

namespace monoscope::cli {

int cmdSaeConvert(const Args& args) {
  args.allowOnly({"sae", "out"});
  auto sae = core::Sae::load(args.get("sae"), c10::Device(c10::kCPU));
  sae->save(args.get("out"));
  std::cerr << "saved " << sae->config().architecture << " SAE (" << sae->config().d_sae
            << " features at " << sae->config().hook_name << ") to " << args.get("out") << "\n";
  return 0;
}

}  // namespace monoscope::cli

namespace monoscope::cli {

// The strongest features at one position of an `encode` output.
int cmdTopFeatures(const Args& args) {
  args.allowOnly({"acts", "position", "count", "ids-only"});
  const std::string path = args.get("acts");
  core::SafetensorsFile f(path);
  const auto& view = f.tensor("feature_acts");
  if (view.shape.size() != 2) throw Error("'" + path + "': feature_acts must be [n_tokens, d_sae]");
  const std::int64_t n = view.shape[0], d = view.shape[1];
  std::int64_t pos = args.integer("position", -1, -n, n - 1);
  if (pos < 0) pos += n;
  const std::int64_t count = args.integer("count", 10, 1, d);
  const auto acts = f.toFloat("feature_acts");
  std::vector<std::int64_t> order(static_cast<std::size_t>(d));
  for (std::int64_t i = 0; i < d; ++i) order[i] = i;
  const float* row = acts.data() + pos * d;
  std::partial_sort(order.begin(), order.begin() + count, order.end(),
                    [row](std::int64_t a, std::int64_t b) { return row[a] > row[b]; });
  if (args.get("ids-only", "false") == "true") {
    std::cout << order[0] << "\n";
    return 0;
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (std::int64_t i = 0; i < count; ++i) {
    nlohmann::ordered_json row_json;
    row_json["feature"] = order[i];
    row_json["activation"] = row[order[i]];
    out.push_back(row_json);
  }
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace monoscope::cli
