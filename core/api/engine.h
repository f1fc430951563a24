#pragma once
// The public engine API for front ends (CLI, desktop app): a model + tokenizer + SAE opened on
// a device. Plain types only: no LibTorch, Qt or SQLite headers. Methods are const and may be
// called from one worker thread at a time (the app's inference worker owns the Engine).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/progress.h"
#include "api/types.h"

namespace monoscope::core {

struct EngineOptions {
  std::string model_dir;         // Hugging Face model folder (config.json, safetensors, tokenizer)
  std::string sae_dir;           // SAELens folder; empty opens the model alone
  std::string device = "auto";   // auto | cpu | cuda | cuda:N
  int threads = 0;               // LibTorch intra-op threads (0: all cores)
  std::string weights = "auto";  // auto | float32 | stored: the model's matrices (lm/transformer.h)
};

struct EngineInfo {
  std::string model_dir, sae_dir, device;
  std::string model_type;        // the family: gpt2 | llama | mistral | qwen2 | gemma2 | ...
  std::string dtype;             // the model's weights as kept in memory (float32, bfloat16, ...)
  std::string compute_dtype;     // what their products run in: float32, or bfloat16 (BF16 weights
                                 // on a CPU with BF16 instructions or on CUDA; lm/packed_product.h)
  std::int64_t n_layers = 0, d_model = 0, n_ctx = 0, vocab_size = 0;
  std::string hook_name;         // the SAE's hook ("" without an SAE)
  std::string architecture;      // standard | topk | jumprelu
  std::string hook_name_out;     // a transcoder's output hook ("" for an SAE)
  std::int64_t d_sae = 0;
  std::int64_t sae_context = 0;  // positions the SAE was trained on (cfg.json metadata.context_size)
  std::int64_t window = 0;       // tokens per window for encoding: min(sae_context, n_ctx)
};

struct TokenInfo {
  std::int32_t id = 0;
  std::size_t start = 0, end = 0;  // byte span in the UTF-8 input
  std::string text;                // its characters (valid UTF-8; a character split over tokens shows whole on the first, displayPieces)
};

struct FeatureActivation {
  std::int64_t feature = 0;
  float value = 0.0f;
};

struct EncodedText {
  std::vector<TokenInfo> tokens;
  // Per token, its active features sorted by activation (strongest first).
  std::vector<std::vector<FeatureActivation>> active;
  std::int64_t window = 0;  // tokens per window the text was cut into
  // Per token: kNoSink, or why its features are position artifacts (attention sinks) that the
  // database and contrastive search leave out: the first position of its window, or a residual
  // norm above kMassiveRowFactor times the window's median (api/training.h).
  enum Sink : std::uint8_t { kNoSink = 0, kFirstPosition = 1, kMassiveRow = 2 };
  std::vector<Sink> sink;
};

struct GenerateRequest {
  std::string prompt;
  std::int64_t max_tokens = 32;
  double temperature = 0.0;  // 0: greedy
  double top_p = 1.0;
  std::uint64_t seed = 0;
  std::vector<FeatureEdit> edits;  // empty: default run only
  SteerMode mode = SteerMode::Clamp;
  SteerPositions positions = SteerPositions::All;
};

struct Completion {
  std::vector<std::int32_t> ids;
  std::vector<std::string> pieces;  // each generated token's text
  std::string text;                 // the whole completion (valid UTF-8)
  bool cancelled = false;
};

struct GenerateResult {
  Completion default_run, steered_run;
  std::int64_t prompt_tokens = 0;
  std::vector<std::string> warnings;  // e.g. reading or steering past the SAE's context
};

// Streaming: run 0 is the default completion, run 1 the steered one. Return false to cancel.
using TokenCallback = std::function<bool(int run, std::int32_t id, const std::string& piece)>;

struct LogitEffects {
  std::vector<std::pair<std::string, float>> top, bottom;  // token text, logit effect
  Histogram histogram;                                       // over the whole vocabulary
};

class Engine {
 public:
  // Loads the model, tokenizer and SAE; checks that the SAE reads a hook of this model with its
  // width. Returns nullptr when cancelled through `progress`.
  static std::unique_ptr<Engine> open(const EngineOptions& options, const ProgressFn& progress = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineInfo& info() const;
  // Opens another dictionary for the same model (empty: none), keeping the model and tokenizer
  // loaded; the one open stays when the new one fails to load or does not fit the model.
  void setDictionary(const std::string& sae_dir);

  std::vector<TokenInfo> tokenize(std::string_view text) const;
  std::string tokenText(std::int32_t id) const;

  // Feature activations of every token; the text is cut into windows of info().window tokens.
  EncodedText encode(std::string_view text, std::size_t max_per_token = 64) const;
  // Token ids of a text (valid UTF-8, non-empty; ids within the model's vocabulary).
  std::vector<std::int32_t> tokenIds(std::string_view text) const;
  // Dense feature activations of token ids, row-major [ids.size(), d_sae], in windows.
  std::vector<float> featureMatrix(const std::vector<std::int32_t>& ids) const;
  // One feature's activation at every token.
  std::vector<float> featureValues(std::string_view text, std::int64_t feature) const;

  // Strongest features on the last token (the feature-completeness probe).
  std::vector<FeatureScore> topFeaturesLastToken(std::string_view text, std::size_t k) const;
  // Features active on `prompt` (max over its tokens) and silent on `negative`.
  std::vector<FeatureScore> contrastive(std::string_view prompt, std::string_view negative, std::size_t k) const;
  // Attribution of logit(target) - logit(versus) at the last position to features:
  // sum over positions of f_i * W_dec[i] . d(logit diff)/dx at the SAE's hook. Targets are
  // token texts that must be single tokens.
  std::vector<FeatureScore> attribute(std::string_view prompt, const std::string& target,
                                      const std::string& versus, std::size_t k) const;

  // Default and (when edits are given) steered completions with the same seed and settings.
  GenerateResult generate(const GenerateRequest& request, const TokenCallback& on_token = {}) const;

  // W_dec[i] @ W_U through the final norm's scale: top/bottom k tokens and the histogram.
  LogitEffects logitEffects(std::int64_t feature, std::size_t k = 10, int bins = 40) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }  // for core's own jobs (index, scoring)

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Splits n tokens into windows of at most `window`: returns [start, end) pairs.
std::vector<std::pair<std::size_t, std::size_t>> windowSpans(std::size_t n, std::size_t window);

}  // namespace monoscope::core
