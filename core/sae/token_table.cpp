#include "sae/token_table.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <vector>

#include "io/safetensors.h"
#include "io/torch_bridge.h"
#include "sae/activation_store.h"
#include "sae/harvest.h"
#include "sae/sae.h"
#include "util/cancel.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace monoscope::core {

namespace {
constexpr std::int64_t kMaxTokenId = (1 << 24) - 1;  // far above any vocabulary
}  // namespace

at::Tensor loadTokenTable(const std::string& path, std::int64_t d_in, std::int64_t min_vocab) {
  c10::InferenceMode guard;
  SafetensorsFile f(path);
  auto bad = [&](const std::string& field, const std::string& why) {
    return Error("token table '" + path + "': " + field + " " + why, "write it with monoscope-cli token-means");
  };
  if (!f.has("token_ids")) throw bad("tensor 'token_ids'", "is missing");
  if (!f.has("token_means")) throw bad("tensor 'token_means'", "is missing");
  const auto& iv = f.tensor("token_ids");
  const auto& mv = f.tensor("token_means");
  if (iv.dtype != DType::I32 || iv.shape.size() != 1 || iv.shape[0] < 1)
    throw bad("tensor 'token_ids'", "must be I32 [n] with n >= 1, got " + std::string(dtypeName(iv.dtype)) + " " + shapeString(iv.shape));
  const std::int64_t n = iv.shape[0];
  if (mv.shape.size() != 2 || mv.shape[0] != n || mv.shape[1] != d_in)
    throw bad("tensor 'token_means'", "must be [" + std::to_string(n) + ", " + std::to_string(d_in) + "] (one row per id, the SAE's width), got " +
                                          shapeString(mv.shape));
  const at::Tensor ids = at::from_blob(const_cast<std::uint8_t*>(iv.data), {n}, at::kInt).to(at::kLong);
  const std::int64_t lo = ids.min().item<std::int64_t>(), hi = ids.max().item<std::int64_t>();
  if (lo < 0 || hi > kMaxTokenId) throw bad("tensor 'token_ids'", "holds id " + std::to_string(lo < 0 ? lo : hi) + ", outside 0.." + std::to_string(kMaxTokenId));
  if (std::get<0>(at::_unique(ids)).numel() != n) throw bad("tensor 'token_ids'", "repeats an id");
  const at::Tensor means = toFloatTensor(mv, path);
  if (!at::isfinite(means).all().item<bool>()) throw bad("tensor 'token_means'", "holds NaN or infinite values");
  at::Tensor table = at::zeros({std::max(min_vocab, hi + 1), d_in}, at::kFloat);
  table.index_copy_(0, ids, means);
  return table;
}

at::Tensor loadSaeTokenTable(const std::string& sae_dir, std::int64_t d_in, std::int64_t min_vocab, const c10::Device& device) {
  const fs::path path = fs::path(sae_dir) / kSaeTokenTableFile;
  std::error_code ec;
  if (!fs::is_directory(sae_dir, ec) || !fs::exists(path, ec)) return {};
  return loadTokenTable(path.string(), d_in, min_vocab).to(device);
}

bool saeTokenTableOnEncoder(const std::string& sae_dir) {
  const fs::path path = fs::path(sae_dir) / kSaeTokenTableFile;
  std::error_code ec;
  if (!fs::is_directory(sae_dir, ec) || !fs::exists(path, ec)) return false;
  const SafetensorsFile f(path.string());
  const auto it = f.metadata().find("sides");
  if (it == f.metadata().end() || it->second == "decoder") return false;
  if (it->second == "both") return true;
  throw Error("token table '" + path.string() + "': metadata 'sides' is '" + it->second + "', not decoder or both",
              "write it with monoscope-cli train-sae --token-table-side");
}

void writeSaeTokenTable(const std::string& table, const std::string& sae_dir, bool both_sides) {
  const SafetensorsFile f(table);
  SafetensorsWriter w;
  for (const auto& [key, value] : f.metadata()) w.setMetadata(key, value);
  w.setMetadata("sides", both_sides ? "both" : "decoder");
  for (const char* name : {"token_ids", "token_means", "token_counts"}) {
    if (!f.has(name)) continue;
    const auto& v = f.tensor(name);
    w.add(name, v.dtype, v.shape, v.data, v.nbytes);
  }
  w.write((fs::path(sae_dir) / kSaeTokenTableFile).string());
}

bool copySaeTokenTable(const std::string& from_dir, const std::string& to_dir, bool half) {
  const fs::path from = fs::path(from_dir) / kSaeTokenTableFile, to = fs::path(to_dir) / kSaeTokenTableFile;
  std::error_code ec;
  if (!fs::is_directory(from_dir, ec) || !fs::exists(from, ec)) return false;
  SafetensorsFile f(from.string());
  SafetensorsWriter w;
  for (const auto& [key, value] : f.metadata()) w.setMetadata(key, value);
  for (const char* name : {"token_ids", "token_means", "token_counts"}) {
    if (!f.has(name)) continue;
    const auto& v = f.tensor(name);
    if (half && std::string(name) == "token_means" && v.dtype != DType::F16) {
      const at::Tensor m = toFloatTensor(v, from.string()).to(at::kHalf).contiguous();
      w.add(name, DType::F16, v.shape, m.data_ptr(), static_cast<std::size_t>(m.numel()) * 2);
    } else {
      w.add(name, v.dtype, v.shape, v.data, v.nbytes);
    }
  }
  w.write(to.string());
  return true;
}

void TokenMeansOptions::validate() const {
  auto bad = [](const std::string& f, const std::string& why) { throw Error("token-means option " + f + " " + why); };
  if (activations.empty()) bad("activations", "is empty");
  if (out.empty()) bad("out", "is empty");
  if (top < 1 || top > kMaxTokenId + 1) bad("top", "must be in 1.." + std::to_string(kMaxTokenId + 1));
  if (!(massive_factor >= 0) || massive_factor > 1e6) bad("massive_factor", "must be in 0..1e6 (0: keep every row)");
}

JobStatus computeTokenMeans(const TokenMeansOptions& o, const ProgressFn& progress) {
  o.validate();
  c10::InferenceMode guard;
  const std::vector<std::string> files = activationFiles(o.activations);
  at::Tensor sums, counts;  // float64 [vocab, d], int64 [vocab], grown as ids appear
  std::int64_t width = 0;
  try {
    for (std::size_t i = 0; i < files.size(); ++i) {
      report(progress, "read", static_cast<std::int64_t>(i), static_cast<std::int64_t>(files.size()));
      SafetensorsFile f(files[i]);
      if (!f.has("activations")) throw Error("'" + files[i] + "' has no tensor 'activations'", "give a harvest folder (monoscope-cli harvest)");
      const auto& av = f.tensor("activations");
      if (av.shape.size() != 2 || av.shape[0] < 1 || av.shape[1] < 1)
        throw Error("tensor 'activations' in '" + files[i] + "' must be [rows, d], got " + shapeString(av.shape));
      if (width != 0 && av.shape[1] != width)
        throw Error("'" + files[i] + "' holds activations of width " + std::to_string(av.shape[1]) + ", not " + std::to_string(width));
      width = av.shape[1];
      at::Tensor x = toFloatTensor(av, files[i]);
      if (!at::isfinite(x).all().item<bool>()) throw Error("'" + files[i] + "' holds NaN or infinite activations");
      at::Tensor ids = storedTokenIds(f, av.shape[0], "its rows' token means cannot be taken", "harvest it again (harvest writes the ids)")
                           .to(at::kLong);
      const std::int64_t lo = ids.min().item<std::int64_t>(), hi = ids.max().item<std::int64_t>();
      if (lo < 0 || hi > kMaxTokenId)
        throw Error("tensor 'tokens' in '" + files[i] + "' holds id " + std::to_string(lo < 0 ? lo : hi) + ", outside 0.." +
                    std::to_string(kMaxTokenId));
      if (o.massive_factor > 0) {
        const at::Tensor kept = massiveRowMask(x, o.massive_factor).logical_not().nonzero().squeeze(1);
        x = x.index_select(0, kept);
        ids = ids.index_select(0, kept);
      }
      if (!sums.defined() || sums.size(0) <= hi) {  // grow to the largest id seen
        const std::int64_t v = std::max<std::int64_t>(hi + 1, sums.defined() ? sums.size(0) : 0);
        at::Tensor s = at::zeros({v, width}, at::kDouble), c = at::zeros({v}, at::kLong);
        if (sums.defined()) {
          s.narrow(0, 0, sums.size(0)).copy_(sums);
          c.narrow(0, 0, counts.size(0)).copy_(counts);
        }
        sums = s, counts = c;
      }
      sums.index_add_(0, ids, x.to(at::kDouble));
      counts.index_add_(0, ids, at::ones_like(ids));
    }
    report(progress, "read", static_cast<std::int64_t>(files.size()), static_cast<std::int64_t>(files.size()));
  } catch (const Cancelled&) {
    return JobStatus::Cancelled;
  }
  // The most frequent tokens, ties to the smaller id, then in id order.
  std::vector<std::int64_t> order(static_cast<std::size_t>(counts.size(0)));
  std::iota(order.begin(), order.end(), 0);
  const std::int64_t* c = counts.data_ptr<std::int64_t>();
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return c[a] > c[b]; });
  std::vector<std::int64_t> keep;
  for (const std::int64_t id : order) {
    if (static_cast<std::int64_t>(keep.size()) == o.top || c[id] == 0) break;
    keep.push_back(id);
  }
  if (keep.empty()) throw Error("'" + o.activations + "' holds no rows once massive rows are left out");
  std::sort(keep.begin(), keep.end());
  const at::Tensor sel = at::tensor(keep, at::kLong);
  const at::Tensor n = counts.index_select(0, sel);
  const at::Tensor means = (sums.index_select(0, sel) / n.to(at::kDouble).unsqueeze(1)).to(at::kFloat).contiguous();
  const at::Tensor ids32 = sel.to(at::kInt).contiguous();
  SafetensorsWriter w;
  w.add("token_ids", DType::I32, {ids32.size(0)}, ids32.data_ptr(), static_cast<std::size_t>(ids32.numel()) * 4);
  w.add("token_means", DType::F32, {means.size(0), means.size(1)}, means.data_ptr(), static_cast<std::size_t>(means.numel()) * 4);
  w.add("token_counts", DType::I64, {n.size(0)}, n.contiguous().data_ptr(), static_cast<std::size_t>(n.numel()) * 8);
  w.setMetadata("activations", o.activations);
  w.setMetadata("top", std::to_string(o.top));
  w.setMetadata("massive_factor", std::to_string(o.massive_factor));
  w.setMetadata("rows", std::to_string(counts.sum().item<std::int64_t>()));
  w.write(o.out);
  return JobStatus::Done;
}

}  // namespace monoscope::core
