// The public engine: model + tokenizer + SAE behind plain types.
#include "api/engine.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>

#include "api/engine_impl.h"
#include "api/training.h"
#include "lm/generator.h"
#include "lm/hooks.h"
#include "lm/packed_product.h"
#include "sae/steering.h"
#include "util/error.h"
#include "util/memory.h"
#include "util/runtime.h"
#include "util/utf8.h"

namespace monoscope::core {

std::vector<std::pair<std::size_t, std::size_t>> windowSpans(std::size_t n, std::size_t window) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  if (window == 0) window = n == 0 ? 1 : n;
  for (std::size_t s = 0; s < n; s += window) out.emplace_back(s, std::min(n, s + window));
  return out;
}

std::int64_t checkSaeFitsModel(const Sae& sae, const Transformer& model, const std::string& sae_dir) {
  const std::string& hook = sae.config().hook_name;
  // The block of a hook the dictionary reads or writes, refused when this model has no such hook.
  const auto layerOf = [&](const std::string& name, const std::string& what, const char* verb) {
    try {
      return hookLayer(name, model.config().n_layers);
    } catch (const Error& e) {
      throw Error("the " + what + " in '" + sae_dir + "' " + verb + " hook '" + name + "', which this model does not have",
                  "use " + (what == "SAE" ? "an" : std::string("a")) + " " + what + " trained on this model; " + e.hint());
    }
  };
  const std::int64_t layer = layerOf(hook, "SAE", "reads");
  const auto& meta = sae.config().metadata;
  const std::string recorded = meta.is_object() && meta.contains("sparsify_hookpoint") && meta["sparsify_hookpoint"].is_string()
                                   ? meta["sparsify_hookpoint"].get<std::string>()
                                   : hook;
  if (const std::string why = aliasMismatch(recorded, model.config()); !why.empty())
    throw Error("the SAE in '" + sae_dir + "' reads '" + recorded + "': " + why,
                "Monoscope does not read dictionaries trained on that point of this family yet");
  const std::int64_t width = hookWidth(hook, model.config());
  if (sae.config().d_in != width) {
    throw Error("the SAE in '" + sae_dir + "' has d_in " + std::to_string(sae.config().d_in) +
                    " but the model's activations at '" + hook + "' have width " + std::to_string(width),
                "use an SAE trained on this model");
  }
  if (sae.config().transcoder()) {  // it also writes a hook: one this model has, as wide as d_out
    const std::string& out = sae.config().hook_name_out;
    const std::int64_t out_layer = layerOf(out, "transcoder", "writes");
    if (out_layer < layer || (out_layer == layer && blockHookOf(out) <= blockHookOf(hook)))
      throw Error("the transcoder in '" + sae_dir + "' writes '" + out + "', which comes before the hook it reads ('" + hook + "')",
                  "check metadata.hook_name and metadata.hook_name_out in its config");
    if (const std::string why = aliasMismatch(out, model.config()); !why.empty())
      throw Error("the transcoder in '" + sae_dir + "' writes '" + out + "': " + why,
                  "Monoscope does not read dictionaries trained on that point of this family yet");
    if (sae.config().d_out != hookWidth(out, model.config()))
      throw Error("the transcoder in '" + sae_dir + "' has d_out " + std::to_string(sae.config().d_out) +
                      " but the model's activations at '" + out + "' have width " + std::to_string(hookWidth(out, model.config())),
                  "use a transcoder trained on this model");
  }
  return layer;
}

namespace {

at::Tensor idsTensor(const std::vector<std::int32_t>& ids, std::size_t begin, std::size_t end) {
  std::vector<std::int64_t> v(ids.begin() + static_cast<std::ptrdiff_t>(begin), ids.begin() + static_cast<std::ptrdiff_t>(end));
  return at::tensor(v, at::kLong).view({1, -1});  // [1, pos]
}

std::vector<FeatureScore> topScores(const at::Tensor& scores, std::size_t k, bool positive_only) {
  // scores [d_sae] float CPU
  const auto n = scores.numel();
  const auto kk = std::min<std::int64_t>(static_cast<std::int64_t>(k), n);
  std::vector<FeatureScore> out;
  if (kk <= 0) return out;
  auto top = scores.topk(kk);
  const at::Tensor v = std::get<0>(top).to(at::kDouble).contiguous(), i = std::get<1>(top).contiguous();
  for (std::int64_t j = 0; j < kk; ++j) {
    const double s = v.data_ptr<double>()[j];
    if (positive_only && !(s > 0)) break;
    out.push_back({i.data_ptr<std::int64_t>()[j], s});
  }
  return out;
}

}  // namespace

at::Tensor Engine::Impl::hookActivationsBatch(const at::Tensor& ids) const {
  const std::string& hook = info.hook_name;
  at::Tensor captured;
  HookSet hooks;
  hooks.add(hook, [&captured](const at::Tensor& x, const HookContext&) {
    captured = x;
    return at::Tensor();
  });
  model->forward(ids.to(model->device()), &hooks, nullptr, layer < 0 ? 0 : layer);
  return captured;  // [batch, pos, d_model]
}

at::Tensor Engine::Impl::hookActivations(const std::vector<std::int32_t>& ids, std::int64_t batch) const {
  std::vector<at::Tensor> parts;
  const auto spans = windowSpans(ids.size(), static_cast<std::size_t>(info.window));
  std::size_t i = 0;
  while (i < spans.size()) {
    // Batch consecutive windows of the same length.
    const std::size_t len = spans[i].second - spans[i].first;
    std::size_t j = i;
    while (j < spans.size() && j - i < static_cast<std::size_t>(batch) && spans[j].second - spans[j].first == len) ++j;
    std::vector<at::Tensor> rows;
    for (std::size_t w = i; w < j; ++w) rows.push_back(idsTensor(ids, spans[w].first, spans[w].second));
    const at::Tensor acts = hookActivationsBatch(at::cat(rows, 0));  // [b, len, d_model]
    parts.push_back(acts.reshape({-1, acts.size(2)}));
    i = j;
  }
  if (parts.empty()) return at::zeros({0, sae ? sae->config().d_in : info.d_model});
  return parts.size() == 1 ? parts[0] : at::cat(parts, 0);
}

std::vector<std::int32_t> Engine::Impl::lastWindow(std::vector<std::int32_t> ids) const {
  const auto w = static_cast<std::size_t>(info.window);
  if (ids.size() > w) ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(w));
  return ids;
}

const Sae& Engine::Impl::requireSae() const {
  if (!sae) throw Error("no SAE is open", "open an SAE folder beside the model");
  return *sae;
}

at::Tensor Engine::Impl::featureActs(const std::vector<std::int32_t>& ids) const {
  const Sae& s = requireSae();
  c10::InferenceMode guard;
  return s.encode(saeInput(hookActivations(ids), ids)).to(at::kCPU, at::kFloat);  // [n, d_sae]
}

at::Tensor Engine::Impl::saeInput(const at::Tensor& h, const std::vector<std::int32_t>& ids) const {
  const Sae& s = requireSae();
  if (!s.readsTokenTable()) return h;
  return s.lessTokenRows(h, at::tensor(std::vector<std::int64_t>(ids.begin(), ids.end()), at::kLong));
}

void Engine::Impl::forEachWindow(const std::vector<std::int32_t>& ids,
                                 const std::function<void(std::size_t, const at::Tensor&, const at::Tensor&)>& fn) const {
  requireSae();
  for (const auto& [start, end] : windowSpans(ids.size(), static_cast<std::size_t>(std::max<std::int64_t>(1, info.window)))) {
    const std::vector<std::int32_t> part(ids.begin() + static_cast<std::ptrdiff_t>(start), ids.begin() + static_cast<std::ptrdiff_t>(end));
    c10::InferenceMode guard;
    const at::Tensor h = hookActivations(part);  // [w, d_in]
    fn(start, h, saeInput(h, part));
  }
}

at::Tensor Engine::Impl::sinkRows(const at::Tensor& h) const {
  c10::InferenceMode guard;
  const at::Tensor norms = rowNorms(h).view({1, -1});  // [1, w]
  const double reference = norms.size(1) - 1 >= kSinkMedianRows ? 0.0 : referenceNorm();
  at::Tensor sink = windowSinkMask(norms, kMassiveRowFactor, reference).view({-1});  // [w]
  if (sink.size(0) > 0) sink[0] = true;
  return sink;
}

double Engine::Impl::referenceNorm() const {
  std::lock_guard<std::mutex> lock(reference_mu);
  const auto known = reference_norms.find(info.hook_name);
  if (known != reference_norms.end()) return known->second;
  static const char* const kText =
      "The committee met on Tuesday to discuss the budget for the new library and the repairs to the old bridge. "
      "Several members asked for more time to read the report, while others wanted a vote that evening. In the end "
      "the chair agreed to publish the figures on Monday and to hold the vote a week later.";
  c10::InferenceMode guard;
  const at::Tensor norms = rowNorms(hookActivations(tokenIds(kText, "the reference text")));  // [n]
  const double median = norms.size(0) > 1 ? norms.narrow(0, 1, norms.size(0) - 1).nanmedian().item<double>() : 0.0;
  reference_norms[info.hook_name] = median;
  return median;
}

at::Tensor Engine::Impl::maxActs(const std::vector<std::int32_t>& ids) const {
  at::Tensor best;
  forEachWindow(ids, [&](std::size_t, const at::Tensor& h, const at::Tensor& in) {
    // A window's first position (an attention sink in most trained LMs) and rows with a massive
    // norm (secondary sinks) are left out unless nothing else is left, so that no search is led
    // by their artifacts.
    const at::Tensor keep = sinkRows(h).logical_not().nonzero().squeeze(1);
    const at::Tensor rows = keep.size(0) > 0 ? in.index_select(0, keep.to(in.device())) : in;  // [w, d_in]
    const at::Tensor m = sae->maxOverRows(rows);  // [d_sae]
    best = best.defined() ? at::maximum(best, m) : m;
  });
  return best;
}

std::vector<std::int32_t> Engine::Impl::tokenIds(std::string_view text, const char* what) const {
  requireUtf8(text, what);
  if (text.empty()) throw Error(std::string(what) + " is empty", "give some text");
  auto ids = tokenizer.encodeIds(text, true);  // with the BOS a model's post-processor adds (Gemma, Llama)
  for (auto id : ids) {
    if (id >= info.vocab_size) {
      throw Error("the tokenizer in '" + info.model_dir + "' produced id " + std::to_string(id) +
                      " beyond the model's vocabulary of " + std::to_string(info.vocab_size),
                  "the tokenizer does not belong to this model");
    }
  }
  return ids;
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::open(const EngineOptions& options, const ProgressFn& progress) {
  auto step = [&](const char* stage, std::int64_t done) {
    return !progress || progress(Progress{stage, done, 3, {}});
  };
  configureThreads(options.threads);
  const std::string device_name = resolveDeviceName(options.device);
  const c10::Device device(device_name);
  const WeightDtype weights = weightDtypeFromName(options.weights, "weights");
  auto impl = std::make_unique<Impl>();
  if (!step("load model", 0)) return nullptr;
  try {
    impl->model = Transformer::load(options.model_dir, device, weights);
  } catch (const Error& e) {
    throw e.withContext("loading model");
  }
  if (!step("load tokenizer", 1)) return nullptr;
  try {
    impl->tokenizer = Tokenizer::fromDirectory(options.model_dir);
  } catch (const Error& e) {
    throw e.withContext("loading tokenizer");
  }
  for (std::int32_t id = 0; id < impl->tokenizer.vocabSize(); ++id)
    impl->max_token_bytes = std::max(impl->max_token_bytes, impl->tokenizer.tokenBytes(id).size());
  EngineInfo& in = impl->info;
  const auto& mc = impl->model->config();
  in.model_dir = options.model_dir;
  in.device = device_name;
  in.model_type = mc.model_type;
  switch (impl->model->unembed().scalar_type()) {  // the names safetensors and torch use
    case at::kFloat: in.dtype = "float32"; break;
    case at::kBFloat16: in.dtype = "bfloat16"; break;
    case at::kHalf: in.dtype = "float16"; break;
    default: in.dtype = c10::toString(impl->model->unembed().scalar_type()); break;
  }
  in.compute_dtype = impl->model->unembed().scalar_type() == at::kBFloat16 && bf16ProductsOn(impl->model->device())
                         ? "bfloat16"
                         : "float32";
  in.n_layers = mc.n_layers;
  in.d_model = mc.d_model;
  in.n_ctx = mc.n_ctx;
  in.vocab_size = mc.vocab_size;
  in.window = mc.n_ctx;
  if (!options.sae_dir.empty()) {
    if (!step("load SAE", 2)) return nullptr;
    impl->attachDictionary(options.sae_dir);
  }
  step("ready", 3);
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

void Engine::Impl::attachDictionary(const std::string& sae_dir) {
  EngineInfo& in = info;
  const auto& mc = model->config();
  std::shared_ptr<Sae> loaded;
  std::int64_t hook_layer = 0;
  if (!sae_dir.empty()) {
    try {
      loaded = Sae::load(sae_dir, model->device());
    } catch (const Error& e) {
      throw e.withContext("loading SAE");
    }
    hook_layer = checkSaeFitsModel(*loaded, *model, sae_dir);
  }
  // Only a dictionary that loaded and fits replaces the one open.
  sae = loaded;
  layer = hook_layer;
  in.sae_dir = sae_dir;
  in.hook_name = loaded ? loaded->config().hook_name : "";
  in.architecture = loaded ? loaded->config().architecture : "";
  in.hook_name_out = loaded ? loaded->config().hook_name_out : "";
  in.d_sae = loaded ? loaded->config().d_sae : 0;
  in.sae_context = loaded ? loaded->config().context_size : 0;
  in.window = in.sae_context > 0 ? std::min(in.sae_context, mc.n_ctx) : mc.n_ctx;
}

void Engine::setDictionary(const std::string& sae_dir) { impl_->attachDictionary(sae_dir); }

const EngineInfo& Engine::info() const { return impl_->info; }

std::string Engine::tokenText(std::int32_t id) const {
  if (id < 0 || id >= impl_->tokenizer.vocabSize()) return {};
  return toValidUtf8(impl_->tokenizer.tokenBytes(id));
}

std::vector<TokenInfo> Engine::tokenize(std::string_view text) const {
  requireUtf8(text, "the text");
  std::vector<TokenInfo> out;
  std::vector<std::string> pieces;
  for (const auto& t : impl_->tokenizer.encode(text, true)) {
    // A token the post-processor adds (a BOS) spans no text: it shows as itself.
    pieces.push_back(t.start == t.end ? impl_->tokenizer.tokenString(t.id) : std::string(text.substr(t.start, t.end - t.start)));
    out.push_back({t.id, t.start, t.end, {}});
  }
  // A character split over several tokens shows whole on the first of them.
  auto shown = displayPieces(pieces);
  for (std::size_t i = 0; i < out.size(); ++i) out[i].text = std::move(shown[i]);
  return out;
}

EncodedText Engine::encode(std::string_view text, std::size_t max_per_token) const {
  EncodedText out;
  out.tokens = tokenize(text);
  out.window = impl_->info.window;
  if (out.tokens.empty()) return out;
  std::vector<std::int32_t> ids;
  for (const auto& t : out.tokens) ids.push_back(t.id);
  out.active.resize(ids.size());
  out.sink.assign(ids.size(), EncodedText::kNoSink);
  // Window by window, and in blocks of features for a dictionary too wide for [window, d_sae].
  impl_->forEachWindow(ids, [&](std::size_t start, const at::Tensor& h, const at::Tensor& in) {
    const at::Tensor sink = impl_->sinkRows(h).contiguous();  // the rule contrastive search uses
    for (std::int64_t r = 1; r < sink.size(0); ++r)
      if (sink.data_ptr<bool>()[r]) out.sink[start + static_cast<std::size_t>(r)] = EncodedText::kMassiveRow;
    out.sink[start] = EncodedText::kFirstPosition;
    const std::int64_t k = std::min<std::int64_t>(static_cast<std::int64_t>(max_per_token), impl_->sae->config().d_sae);
    if (k <= 0) return;
    const auto top = impl_->sae->encodeTop(in, k);
    const at::Tensor v = top.first.contiguous(), ix = top.second.contiguous();
    for (std::int64_t r = 0; r < v.size(0); ++r) {
      const float* vr = v.data_ptr<float>() + r * k;
      const std::int64_t* ir = ix.data_ptr<std::int64_t>() + r * k;
      for (std::int64_t j = 0; j < k && vr[j] > 0; ++j) out.active[start + static_cast<std::size_t>(r)].push_back({ir[j], vr[j]});
    }
  });
  return out;
}

std::vector<std::int32_t> Engine::tokenIds(std::string_view text) const { return impl_->tokenIds(text, "the text"); }

std::vector<float> Engine::featureMatrix(const std::vector<std::int32_t>& ids) const {
  requireMemory(saturatingProduct({3, 4, ids.size(), static_cast<std::uint64_t>(std::max<std::int64_t>(1, impl_->info.d_sae))}),
                "ids", std::to_string(ids.size()) + " tokens x " + std::to_string(impl_->info.d_sae) + " dense feature activations",
                "encode a shorter text, or use encode() for sparse activations");
  for (auto id : ids)
    if (id < 0 || id >= impl_->info.vocab_size)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(impl_->info.vocab_size));
  if (ids.empty()) throw Error("no tokens to encode");
  const at::Tensor acts = impl_->featureActs(ids).contiguous();
  return std::vector<float>(acts.data_ptr<float>(), acts.data_ptr<float>() + acts.numel());
}

std::vector<float> Engine::featureValues(std::string_view text, std::int64_t feature) const {
  const Sae& s = impl_->requireSae();
  if (feature < 0 || feature >= s.config().d_sae)
    throw Error("feature " + std::to_string(feature) + " does not exist; the SAE has " + std::to_string(s.config().d_sae) + " features");
  const auto ids = impl_->tokenIds(text, "the text");
  std::vector<float> out;
  out.reserve(ids.size());
  const at::Tensor which = at::tensor({feature}, at::kLong);
  impl_->forEachWindow(ids, [&](std::size_t, const at::Tensor&, const at::Tensor& in) {
    const at::Tensor col = s.encodeColumns(in, which).to(at::kCPU, at::kFloat).reshape({-1}).contiguous();  // [w]
    out.insert(out.end(), col.data_ptr<float>(), col.data_ptr<float>() + col.numel());
  });
  return out;
}

std::vector<FeatureScore> Engine::topFeaturesLastToken(std::string_view text, std::size_t k) const {
  // Only the last window matters for the last token.
  const auto ids = impl_->lastWindow(impl_->tokenIds(text, "the prompt"));
  const Sae& s = impl_->requireSae();
  c10::InferenceMode guard;
  const at::Tensor h = impl_->saeInput(impl_->hookActivations(ids), ids);
  return topScores(s.maxOverRows(h.narrow(0, h.size(0) - 1, 1)), k, true);
}

std::vector<FeatureScore> Engine::contrastive(std::string_view prompt, std::string_view negative, std::size_t k) const {
  const at::Tensor p = impl_->maxActs(impl_->tokenIds(prompt, "the prompt"));  // [d_sae]
  const at::Tensor n = impl_->maxActs(impl_->tokenIds(negative, "the negative prompt"));
  return topScores(at::where(n > 0, at::zeros_like(p), p), k, true);
}

std::vector<FeatureScore> Engine::attribute(std::string_view prompt, const std::string& target, const std::string& versus,
                                            std::size_t k) const {
  const Sae& s = impl_->requireSae();
  auto single = [&](const std::string& t, const char* what) {
    const auto ids = impl_->tokenIds(t, what);
    if (ids.size() != 1)
      throw Error(std::string(what) + " '" + t + "' is " + std::to_string(ids.size()) + " tokens, not one",
                  "give the text of a single token, e.g. with its leading space");
    return static_cast<std::int64_t>(ids[0]);
  };
  const std::int64_t a = single(target, "the target token"), b = single(versus, "the versus token");
  const auto ids = impl_->lastWindow(impl_->tokenIds(prompt, "the prompt"));
  // The gradient is taken where the features write (a transcoder's output hook), and the
  // features encoded where they read.
  at::Tensor leaf, read;
  HookSet hooks;
  const bool transcoder = s.config().transcoder();
  if (transcoder) {
    hooks.add(s.config().hook_name, [&read](const at::Tensor& x, const HookContext&) {
      read = x.detach().clone();
      return at::Tensor();
    });
  }
  hooks.add(s.config().writeHook(), [&leaf](const at::Tensor& x, const HookContext&) {
    leaf = x.detach().clone().requires_grad_(true);
    return leaf;
  });
  const at::Tensor logits = impl_->model->forward(idsTensor(ids, 0, ids.size()).to(impl_->model->device()), &hooks);
  const at::Tensor last = logits[0][logits.size(1) - 1];
  const at::Tensor diff = last[a] - last[b];
  diff.backward();
  at::Tensor grad = leaf.grad()[0];  // [pos, d_model]
  at::Tensor scores;
  {
    c10::InferenceMode guard;
    scores = s.attributionScores(transcoder ? read[0] : impl_->saeInput(leaf.detach()[0], ids), grad);  // [d_sae]
  }
  // Strongest by magnitude, keeping the sign.
  const auto order = topScores(scores.abs(), k, true);
  std::vector<FeatureScore> out;
  for (const auto& o : order) out.push_back({o.feature, scores[o.feature].item<double>()});
  return out;
}

GenerateResult Engine::generate(const GenerateRequest& request, const TokenCallback& on_token) const {
  const Impl& m = *impl_;
  GenerateResult result;
  // Refused before tokenising when the prompt's bytes alone rule out fitting the context.
  if (request.prompt.size() > static_cast<std::size_t>(m.info.n_ctx) * m.max_token_bytes)
    throw Error("the prompt (" + std::to_string(request.prompt.size()) + " bytes) cannot fit the model's context of " +
                    std::to_string(m.info.n_ctx) + " tokens",
                "shorten the prompt");
  const auto prompt_ids = m.tokenIds(request.prompt, "the prompt");
  result.prompt_tokens = static_cast<std::int64_t>(prompt_ids.size());
  SamplingOptions opt;
  opt.max_tokens = request.max_tokens;
  opt.temperature = request.temperature;
  opt.top_p = request.top_p;
  opt.seed = request.seed;
  opt.stop_token = m.model->config().eos_token_id >= 0 ? m.model->config().eos_token_id : m.tokenizer.endOfTextId();
  opt.validate();
  const bool steering = !request.edits.empty() || request.mode == SteerMode::Ablate;
  SteeringSpec spec;
  if (steering) {
    const Sae& s = m.requireSae();
    spec.edits = request.edits;
    spec.mode = request.mode;
    spec.positions = request.positions;
    spec.prompt_length = result.prompt_tokens;
    spec.validate(s.config().d_sae);
    const std::int64_t end = result.prompt_tokens + request.max_tokens;
    if (m.info.sae_context > 0 && end > m.info.sae_context) {
      result.warnings.push_back("steering reaches position " + std::to_string(end) + ", past the " +
                                std::to_string(m.info.sae_context) +
                                " positions the SAE was trained on; its features may be unreliable there");
    }
  }
  auto run = [&](int which, const HookSet* hooks, Completion* c) {
    GenerationProgress cb = [&](std::int64_t, std::int32_t id) {
      c->pieces.push_back(m.tokenizer.tokenBytes(id));
      if (on_token && !on_token(which, id, toValidUtf8(c->pieces.back()))) {
        c->cancelled = true;
        return false;
      }
      return true;
    };
    c->ids = core::generate(*m.model, prompt_ids, opt, hooks, cb);
    c->text = toValidUtf8(m.tokenizer.decode(c->ids));
    for (auto& p : c->pieces) p = toValidUtf8(p);  // each token's own (the steering panel splits runs at tokens)
  };
  run(0, nullptr, &result.default_run);
  if (steering && !result.default_run.cancelled) {
    HookSet hooks;
    addSteeringHooks(m.sae, spec, &hooks);
    run(1, &hooks, &result.steered_run);
  }
  return result;
}

std::vector<LogitEffects> Engine::Impl::logitEffectsRange(std::int64_t begin, std::int64_t end, std::size_t k, int bins) const {
  const Sae& s = requireSae();
  c10::InferenceMode guard;
  at::Tensor dirs = model->toResidual(s.config().writeHook(), s.writeBlock(begin, end).to(s.device()));  // [b, d_model]
  const at::Tensor scale = model->finalNormWeight();
  if (scale.defined()) dirs = dirs * scale;
  const at::Tensor eff = model->unembedProduct(dirs).to(at::kCPU, at::kFloat);  // [b, vocab]
  const std::int64_t n = end - begin, vocab = eff.size(1);
  const std::int64_t kk = std::min<std::int64_t>(static_cast<std::int64_t>(k), vocab);
  auto up = eff.topk(kk, 1), down = eff.topk(kk, 1, false);
  const at::Tensor mn = std::get<0>(eff.min(1, true)), mx = std::get<0>(eff.max(1, true));  // [b, 1]
  const at::Tensor bin = ((eff - mn) / (mx - mn).clamp_min(1e-12) * bins).floor().clamp(0, bins - 1).to(at::kLong);
  const at::Tensor counts = at::zeros({n * bins}, at::kLong)
                                .index_add_(0, (bin + at::arange(n, at::kLong).unsqueeze(1) * bins).reshape(-1),
                                            at::ones({bin.numel()}, at::kLong))
                                .contiguous();  // [b * bins]
  const at::Tensor uv = std::get<0>(up).contiguous(), ui = std::get<1>(up).contiguous();
  const at::Tensor dv = std::get<0>(down).contiguous(), di = std::get<1>(down).contiguous();
  const at::Tensor lo = mn.contiguous(), hi = mx.contiguous();
  std::vector<LogitEffects> out(static_cast<std::size_t>(n));
  for (std::int64_t r = 0; r < n; ++r) {
    LogitEffects& e = out[static_cast<std::size_t>(r)];
    for (std::int64_t c = 0; c < kk; ++c) {
      e.top.emplace_back(toValidUtf8(tokenizer.tokenBytes(static_cast<std::int32_t>(ui.data_ptr<std::int64_t>()[r * kk + c]))),
                         uv.data_ptr<float>()[r * kk + c]);
      e.bottom.emplace_back(toValidUtf8(tokenizer.tokenBytes(static_cast<std::int32_t>(di.data_ptr<std::int64_t>()[r * kk + c]))),
                            dv.data_ptr<float>()[r * kk + c]);
    }
    e.histogram.lo = lo.data_ptr<float>()[r];
    e.histogram.hi = hi.data_ptr<float>()[r];
    e.histogram.counts.assign(counts.data_ptr<std::int64_t>() + r * bins, counts.data_ptr<std::int64_t>() + (r + 1) * bins);
  }
  return out;
}

LogitEffects Engine::logitEffects(std::int64_t feature, std::size_t k, int bins) const {
  const Sae& s = impl_->requireSae();
  if (feature < 0 || feature >= s.config().d_sae)
    throw Error("feature " + std::to_string(feature) + " does not exist; the SAE has " + std::to_string(s.config().d_sae) + " features");
  return std::move(impl_->logitEffectsRange(feature, feature + 1, k, bins).front());
}

}  // namespace monoscope::core
