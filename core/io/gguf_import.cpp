#include "io/gguf_import.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <functional>
#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "io/hf_cache.h"
#include "io/safetensors.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace fs = std::filesystem;

namespace monoscope::core {

namespace {

// How a tensor changes on the way to Hugging Face's layout: kept, q/k rows un-permuted, or (Gemma's
// norms, which llama.cpp's converter stores as 1 + w) one subtracted.
enum class Rows { Keep, UnpermuteQ, UnpermuteK, MinusOne };

struct TensorRow {
  const char* gguf;  // llama.cpp's name; "%d" is the layer
  const char* hf;    // Hugging Face's name
  Rows rows;
};

class Meta;

struct Family {
  const char* arch;        // general.architecture
  const char* model_type;  // config.json model_type
  const TensorRow* tensors;
  std::size_t n_tensors;
  nlohmann::json (*config)(const GgufFile&, const Meta&);
};

constexpr TensorRow kLlamaTensors[] = {
    {"token_embd.weight", "model.embed_tokens.weight", Rows::Keep},
    {"output_norm.weight", "model.norm.weight", Rows::Keep},
    {"output.weight", "lm_head.weight", Rows::Keep},
    {"blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", Rows::Keep},
    {"blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", Rows::UnpermuteQ},
    {"blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", Rows::UnpermuteK},
    {"blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", Rows::Keep},
    {"blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", Rows::Keep},
    {"blk.%d.attn_q.bias", "model.layers.%d.self_attn.q_proj.bias", Rows::UnpermuteQ},
    {"blk.%d.attn_k.bias", "model.layers.%d.self_attn.k_proj.bias", Rows::UnpermuteK},
    {"blk.%d.attn_v.bias", "model.layers.%d.self_attn.v_proj.bias", Rows::Keep},
    {"blk.%d.attn_output.bias", "model.layers.%d.self_attn.o_proj.bias", Rows::Keep},
    {"blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight", Rows::Keep},
    {"blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", Rows::Keep},
    {"blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", Rows::Keep},
    {"blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", Rows::Keep},
};

constexpr TensorRow kGemma3Tensors[] = {
    {"token_embd.weight", "model.embed_tokens.weight", Rows::Keep},
    {"output_norm.weight", "model.norm.weight", Rows::MinusOne},
    {"blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", Rows::MinusOne},
    {"blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", Rows::Keep},
    {"blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", Rows::Keep},
    {"blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", Rows::Keep},
    {"blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", Rows::Keep},
    {"blk.%d.attn_q_norm.weight", "model.layers.%d.self_attn.q_norm.weight", Rows::MinusOne},
    {"blk.%d.attn_k_norm.weight", "model.layers.%d.self_attn.k_norm.weight", Rows::MinusOne},
    {"blk.%d.post_attention_norm.weight", "model.layers.%d.post_attention_layernorm.weight", Rows::MinusOne},
    {"blk.%d.ffn_norm.weight", "model.layers.%d.pre_feedforward_layernorm.weight", Rows::MinusOne},
    {"blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", Rows::Keep},
    {"blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", Rows::Keep},
    {"blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", Rows::Keep},
    {"blk.%d.post_ffw_norm.weight", "model.layers.%d.post_feedforward_layernorm.weight", Rows::MinusOne},
};

nlohmann::json llamaConfig(const GgufFile& file, const Meta& m);
nlohmann::json gemma3Config(const GgufFile& file, const Meta& m);

constexpr Family kFamilies[] = {
    {"llama", "llama", kLlamaTensors, std::size(kLlamaTensors), llamaConfig},
    {"gemma3", "gemma3_text", kGemma3Tensors, std::size(kGemma3Tensors), gemma3Config},
};

std::string withLayer(const char* pattern, int layer) {
  std::string s(pattern);
  const auto at = s.find("%d");
  if (at != std::string::npos) s.replace(at, 2, std::to_string(layer));
  return s;
}

class Meta {
 public:
  Meta(const GgufFile& file, std::string arch) : file_(file), arch_(std::move(arch)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw Error("GGUF file '" + file_.path() + "': metadata '" + key + "' " + problem,
                "the file was not written by llama.cpp's converter for this architecture");
  }
  bool has(const std::string& key) const { return file_.hasKey(key); }
  const nlohmann::json& raw(const std::string& key) const {
    if (!has(key)) fail(key, "is missing");
    return file_.metadata()[key];
  }
  std::int64_t integer(const std::string& key) const {
    const auto& v = raw(key);
    if (!v.is_number_integer()) fail(key, "is " + v.dump().substr(0, 80) + ", not an integer");
    return v.get<std::int64_t>();
  }
  std::int64_t integer(const std::string& key, std::int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }
  double number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const auto& v = raw(key);
    if (!v.is_number()) fail(key, "is " + v.dump().substr(0, 80) + ", not a number");
    return v.get<double>();
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const auto& v = raw(key);
    if (!v.is_string()) fail(key, "is not a string");
    return v.get<std::string>();
  }
  // "{arch}.key"
  std::string a(const std::string& key) const { return arch_ + "." + key; }

 private:
  const GgufFile& file_;
  std::string arch_;
};

struct Heads {
  std::int64_t d_model, n_heads, n_kv;
};

// Width and attention heads, shared by every family (one kv head count for all layers).
Heads readHeads(const Meta& m, const char* family) {
  const std::int64_t d_model = m.integer(m.a("embedding_length"));
  const std::int64_t n_heads = m.integer(m.a("attention.head_count"));
  if (m.has(m.a("attention.head_count_kv")) && m.raw(m.a("attention.head_count_kv")).is_array())
    m.fail(m.a("attention.head_count_kv"), std::string("varies by layer, which ") + family + " models do not do");
  const std::int64_t n_kv = m.integer(m.a("attention.head_count_kv"), n_heads);
  if (n_heads <= 0 || d_model <= 0 || n_kv <= 0) m.fail(m.a("attention.head_count"), "is not positive");
  return {d_model, n_heads, n_kv};
}

// The BOS / EOS ids the tokenizer metadata names, into config.json.
void addSpecialIds(const Meta& m, nlohmann::json& c) {
  if (m.has("tokenizer.ggml.bos_token_id")) c["bos_token_id"] = m.integer("tokenizer.ggml.bos_token_id");
  if (m.has("tokenizer.ggml.eos_token_id")) c["eos_token_id"] = m.integer("tokenizer.ggml.eos_token_id");
}

nlohmann::json llamaConfig(const GgufFile& file, const Meta& m) {
  const auto [d_model, n_heads, n_kv] = readHeads(m, "Llama");
  const std::int64_t d_head = m.integer(m.a("attention.key_length"), d_model / n_heads);
  if (m.has(m.a("rope.dimension_count")) && m.integer(m.a("rope.dimension_count")) != d_head)
    m.fail(m.a("rope.dimension_count"), "rotates part of each head, which Llama models do not do");
  const std::string scaling = m.string(m.a("rope.scaling.type"), "none");
  if (scaling != "none" || file.has("rope_freqs.weight"))
    m.fail(m.a("rope.scaling.type"), "asks for scaled RoPE ('" + scaling + "' / rope_freqs), which is not supported yet");
  const auto& embd = file.tensor("token_embd.weight");
  nlohmann::json c = {
      {"model_type", "llama"},
      {"architectures", {"LlamaForCausalLM"}},
      {"vocab_size", m.integer(m.a("vocab_size"), embd.ne.size() == 2 ? embd.ne[1] : 0)},
      {"hidden_size", d_model},
      {"num_hidden_layers", m.integer(m.a("block_count"))},
      {"num_attention_heads", n_heads},
      {"num_key_value_heads", n_kv},
      {"head_dim", d_head},
      {"intermediate_size", m.integer(m.a("feed_forward_length"))},
      {"max_position_embeddings", m.integer(m.a("context_length"), 2048)},
      {"rms_norm_eps", m.number(m.a("attention.layer_norm_rms_epsilon"), 1e-6)},
      {"rope_theta", m.number(m.a("rope.freq_base"), 10000.0)},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", !file.has("output.weight")},
      {"attention_bias", file.has("blk.0.attn_q.bias")},
      {"mlp_bias", false},
      {"torch_dtype", "float32"},
  };
  addSpecialIds(m, c);
  return c;
}

// Gemma 3 as llama.cpp runs it: the sliding-window pattern (every sixth layer global), the local
// RoPE base (10,000) and the query scale are fixed by llama.cpp rather than stored in the file.
nlohmann::json gemma3Config(const GgufFile& file, const Meta& m) {
  const auto [d_model, n_heads, n_kv] = readHeads(m, "Gemma 3");
  const std::int64_t d_head = m.integer(m.a("attention.key_length"), 256);
  if (m.integer(m.a("attention.value_length"), d_head) != d_head)
    m.fail(m.a("attention.value_length"), "differs from the key length, which Gemma 3 models do not do");
  const std::int64_t layers = m.integer(m.a("block_count"));
  // llama.cpp: the 27B model (62 layers) scales queries by (d_model / heads)^-1/2, the others by d_head^-1/2.
  const double query_scalar = layers == 62 ? static_cast<double>(d_model) / static_cast<double>(n_heads) : static_cast<double>(d_head);
  nlohmann::json rope = {{"rope_type", "default"}, {"rope_theta", m.number(m.a("rope.freq_base"), 1000000.0)}};
  const std::string scaling = m.string(m.a("rope.scaling.type"), "none");
  if (scaling == "linear") {
    rope = {{"rope_type", "linear"}, {"rope_theta", rope["rope_theta"]}, {"factor", m.number(m.a("rope.scaling.factor"), 1.0)}};
  } else if (scaling != "none") {
    m.fail(m.a("rope.scaling.type"), "is '" + scaling + "'; Gemma 3 files use none or linear");
  }
  if (file.has("rope_freqs.weight")) m.fail(m.a("rope.scaling.type"), "comes with per-dimension rope_freqs, which is not supported");
  const auto& embd = file.tensor("token_embd.weight");
  nlohmann::json c = {
      {"model_type", "gemma3_text"},
      {"architectures", {"Gemma3ForCausalLM"}},
      {"vocab_size", m.integer(m.a("vocab_size"), embd.ne.size() == 2 ? embd.ne[1] : 0)},
      {"hidden_size", d_model},
      {"num_hidden_layers", layers},
      {"num_attention_heads", n_heads},
      {"num_key_value_heads", n_kv},
      {"head_dim", d_head},
      {"intermediate_size", m.integer(m.a("feed_forward_length"))},
      {"max_position_embeddings", m.integer(m.a("context_length"), 32768)},
      {"rms_norm_eps", m.number(m.a("attention.layer_norm_rms_epsilon"), 1e-6)},
      {"hidden_activation", "gelu_pytorch_tanh"},
      {"query_pre_attn_scalar", query_scalar},
      {"sliding_window", m.integer(m.a("attention.sliding_window"), 4096)},
      {"sliding_window_pattern", 6},
      {"rope_parameters", {{"full_attention", rope}, {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}}},
      {"rope_local_base_freq", 10000.0},
      {"attn_logit_softcapping", nullptr},
      {"final_logit_softcapping", nullptr},
      {"tie_word_embeddings", !file.has("output.weight")},
      {"attention_bias", false},
      {"torch_dtype", "float32"},
  };
  addSpecialIds(m, c);
  return c;
}

// llama.cpp's converter stores each head's q/k rows as interleaved pairs (rotary in the ggml
// "normal" mode); Hugging Face's rotate_half wants the first half of the head, then the second.
// GGUF row (h, i, j) for i < d_head/2, j < 2 holds Hugging Face row (h, j, i).
std::vector<float> unpermuteRows(const std::vector<float>& g, std::int64_t rows, std::int64_t cols,
                                 std::int64_t heads, const std::string& what) {
  if (heads <= 0 || rows % heads != 0 || (rows / heads) % 2 != 0)
    throw Error(what + ": " + std::to_string(rows) + " rows do not split into " + std::to_string(heads) + " heads of even size");
  const std::int64_t hd = rows / heads, half = hd / 2;
  std::vector<float> out(g.size());
  for (std::int64_t h = 0; h < heads; ++h)
    for (std::int64_t i = 0; i < half; ++i)
      for (std::int64_t j = 0; j < 2; ++j) {
        const std::int64_t src = h * hd + i * 2 + j, dst = h * hd + j * half + i;
        std::memcpy(out.data() + dst * cols, g.data() + src * cols, static_cast<std::size_t>(cols) * 4);
      }
  return out;
}

std::uint16_t toBf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return 0x7FC0;
  u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<std::uint16_t>(u >> 16);
}

const Family& findFamily(const GgufFile& file, const std::string& arch) {
  for (const auto& f : kFamilies)
    if (arch == f.arch) return f;
  throw Error("GGUF file '" + file.path() + "': architecture '" + arch + "' is not supported",
              "Monoscope imports llama (Llama, SmolLM, Mistral) and gemma3 GGUF files; "
              "convert the model's Hugging Face folder instead, or use a supported model");
}

}  // namespace

bool isGgufModel(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && looksLikeGguf(path);
}

void importGguf(const std::string& gguf_path, const std::string& out_dir, const GgufImportOptions& options) try {
  GgufFile file(gguf_path);
  if (!file.hasKey("general.architecture") || !file.metadata()["general.architecture"].is_string())
    throw Error("GGUF file '" + gguf_path + "': metadata 'general.architecture' is missing or not a string",
                "the file is not a llama.cpp model");
  const std::string arch = file.metadata()["general.architecture"].get<std::string>();
  const Family& family = findFamily(file, arch);
  const Meta meta(file, arch);

  const nlohmann::json config = family.config(file, meta);
  const nlohmann::json tokenizer = ggufTokenizerJson(file);
  const int layers = static_cast<int>(config["num_hidden_layers"].get<std::int64_t>());
  const std::int64_t n_heads = config["num_attention_heads"].get<std::int64_t>();
  const std::int64_t n_kv = config["num_key_value_heads"].get<std::int64_t>();

  // Every tensor in the file must have a row: an unknown one means a variant we would run wrongly.
  std::map<std::string, std::pair<const TensorRow*, int>> rows;
  for (std::size_t r = 0; r < family.n_tensors; ++r) {
    const TensorRow& row = family.tensors[r];
    if (std::strstr(row.gguf, "%d") == nullptr) {
      rows[row.gguf] = {&row, -1};
    } else {
      for (int l = 0; l < layers; ++l) rows[withLayer(row.gguf, l)] = {&row, l};
    }
  }
  SafetensorsWriter writer;
  writer.setMetadata("format", "pt");
  for (const GgufTensor& t : file.tensors()) {
    auto it = rows.find(t.name);
    if (it == rows.end()) {
      throw Error("GGUF file '" + gguf_path + "': tensor '" + t.name + "' has no place in a " + arch + " model",
                  "this variant of the architecture is not supported");
    }
    const TensorRow& row = *it->second.first;
    const std::string hf = withLayer(row.hf, it->second.second);
    std::vector<float> values = file.toFloat(t);
    const std::vector<std::int64_t> shape = t.shape();
    const std::int64_t out_rows = shape[0];
    const std::int64_t cols = shape.size() > 1 ? t.numel() / out_rows : 1;
    if (row.rows == Rows::MinusOne) {
      for (float& v : values) v -= 1.0f;
    } else if (row.rows != Rows::Keep) {
      values = unpermuteRows(values, out_rows, cols, row.rows == Rows::UnpermuteQ ? n_heads : n_kv,
                             "GGUF file '" + gguf_path + "': tensor '" + t.name + "'");
    }
    for (float v : values) {
      if (!std::isfinite(v)) {
        throw Error("GGUF file '" + gguf_path + "': tensor '" + t.name + "' holds a non-finite value",
                    "the file is damaged; re-download or re-convert it");
      }
    }
    if (options.bf16) {
      std::vector<std::uint16_t> h(values.size());
      for (std::size_t i = 0; i < values.size(); ++i) h[i] = toBf16(values[i]);
      writer.add(hf, DType::BF16, shape, h.data(), h.size() * 2);
    } else {
      writer.add(hf, DType::F32, shape, values.data(), values.size() * 4);
    }
  }
  nlohmann::json cfg = config;
  cfg["torch_dtype"] = options.bf16 ? "bfloat16" : "float32";
  fs::create_directories(out_dir);
  writer.write((fs::path(out_dir) / "model.safetensors").string());
  writeFileAtomically((fs::path(out_dir) / "tokenizer.json").string(), tokenizer.dump(2));
  writeFileAtomically((fs::path(out_dir) / "config.json").string(), cfg.dump(2));
} catch (const Error& e) {
  throw e.withContext("importing '" + gguf_path + "'");
}

std::string resolveModelDir(const std::string& spec) {
  const std::string model = resolveHubPath(spec);  // "org/name" from the Hugging Face cache
  if (!isGgufModel(model)) return model;
  std::error_code ec;
  const fs::path src = fs::canonical(model, ec);
  if (ec) throw Error("cannot resolve GGUF model path '" + model + "': " + ec.message());
  const auto size = fs::file_size(src);
  const auto mtime = fs::last_write_time(src).time_since_epoch().count();
  fs::path cache;
  if (const char* c = std::getenv("MONOSCOPE_CACHE"); c && *c) {
    cache = c;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    cache = fs::path(x) / "monoscope";
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    cache = fs::path(h) / ".cache" / "monoscope";
  } else {
    throw Error("no cache folder for the imported GGUF model: HOME is not set",
                "set MONOSCOPE_CACHE, or import it with monoscope-cli import-gguf and pass the folder");
  }
  const std::string key = src.string() + "|" + std::to_string(size) + "|" + std::to_string(mtime);
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : key) h = (h ^ ch) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  const fs::path dir = cache / "gguf" / (src.stem().string() + "-" + hex);
  if (fs::exists(dir / "config.json")) return dir.string();
  // Threads of one process (the app's database job and its model loader on first launch) import
  // one at a time: the second finds the first's copy. Other processes use their own folder.
  static std::mutex import_mutex;
  const std::lock_guard<std::mutex> lock(import_mutex);
  if (fs::exists(dir / "config.json")) return dir.string();
  const fs::path tmp = cache / "gguf" / (dir.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  importGguf(src.string(), tmp.string());
  fs::rename(tmp, dir, ec);
  if (ec) {  // another process finished first: keep its copy
    fs::remove_all(tmp, ec);
    if (!fs::exists(dir / "config.json"))
      throw Error("cannot place the imported model in '" + dir.string() + "'", "check the cache folder's permissions");
  }
  return dir.string();
}

}  // namespace monoscope::core
