#include "inputs.h"

#include <algorithm>
#include <iostream>
#include <thread>

#include "api/feature_db.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/runtime.h"
#include "util/utf8.h"

using monoscope::core::Error;

namespace monoscope::cli {

std::string readTextInput(const Args& args) {
  if (args.has("text") && args.has("text-file")) throw Error("give either --text or --text-file, not both");
  std::string text;
  std::string source;
  if (args.has("text")) {
    text = args.get("text");
    source = "--text";
  } else if (args.has("text-file")) {
    source = "'" + args.get("text-file") + "'";
    text = core::readTextFile(args.get("text-file"));
  } else {
    throw Error("no input", "give --text T or --text-file F");
  }
  if (text.empty()) throw Error("the input text from " + source + " is empty", "give some text");
  core::requireUtf8(text, "the input text from " + source);
  return text;
}

std::vector<std::int32_t> parseIds(const std::string& list, std::int64_t vocab_size) {
  std::vector<std::int32_t> ids;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    const auto comma = list.find(',', pos);
    const std::string item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    const std::int64_t v = parseInteger(item, "token id");
    if (v < 0 || v >= vocab_size) {
      throw Error("token id " + std::to_string(v) + " is outside the vocabulary of " +
                      std::to_string(vocab_size),
                  "use ids in 0.." + std::to_string(vocab_size - 1));
    }
    ids.push_back(static_cast<std::int32_t>(v));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (ids.empty()) throw Error("--ids is empty", "give ids such as --ids 1,2,3");
  return ids;
}

int threadsOption(const Args& args) {
  const auto asked = args.integer("threads", 0, 0, 1 << 20);
  const auto cores = static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  if (asked > cores) {
    std::cerr << "note: --threads " << asked << " is more than the " << cores << " cores here; using " << cores << "\n";
    return static_cast<int>(cores);
  }
  return static_cast<int>(asked);
}

std::string applyRuntimeOptions(const Args& args) {
  core::configureThreads(threadsOption(args));
  return core::resolveDeviceName(args.get("device", "auto"));
}

core::EngineOptions engineOptions(const Args& args, bool with_sae, const std::string& model_fallback,
                                  const std::string& sae_fallback) {
  core::EngineOptions o;
  o.model_dir = model_fallback.empty() ? args.get("model") : args.get("model", model_fallback);
  if (with_sae) o.sae_dir = sae_fallback.empty() ? args.get("sae") : args.get("sae", sae_fallback);
  o.device = args.get("device", "auto");
  o.threads = threadsOption(args);
  o.weights = args.get("weights", "auto");
  return o;
}

core::FeatureEdit parseClamp(const std::string& c, core::SteerMode mode, const core::FeatureDb* db) {
  const auto eq = c.find('=');
  core::FeatureEdit e;
  if (eq == std::string::npos) {
    if (mode != core::SteerMode::Ablate) throw Error("--clamp '" + c + "' must be ID=VALUE or ID=10x");
    e.feature = parseInteger(c, "--clamp feature id");
    return e;
  }
  e.feature = parseInteger(c.substr(0, eq), "--clamp feature id");
  std::string v = c.substr(eq + 1);
  if (!v.empty() && (v.back() == 'x' || v.back() == 'X')) {
    if (!db) throw Error("--clamp " + c + " is a multiple of the feature's max activation", "give --features FILE.db");
    const double times = parseNumber(v.substr(0, v.size() - 1), "--clamp multiple of feature " + c.substr(0, eq));
    const auto s = db->summary(e.feature);
    if (s.count == 0) throw Error("feature " + std::to_string(e.feature) + " never fired in the scan; its max activation is 0", "give an absolute value");
    e.value = times * s.max_act;
    return e;
  }
  e.value = parseNumber(v, "--clamp value of feature " + c.substr(0, eq));
  return e;
}

}  // namespace monoscope::cli
