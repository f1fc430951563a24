// The streaming scan: model + SAE over numbered windows of a corpus, one compact record per
// window, committed a block at a time so an interrupted scan resumes where it stopped.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "api/engine.h"
#include "api/indexer.h"
#include "api/training.h"
#include "api/engine_impl.h"
#include "index/index_job.h"
#include "index/token_corpus.h"
#include "index/window_log.h"
#include "store/schema.h"
#include "store/sqlite.h"
#include "util/cancel.h"
#include "util/error.h"
#include "util/sparse_row.h"

namespace fs = std::filesystem;

namespace monoscope::core {

namespace {

// Floats of one dense encoding chunk in the scan, per lane (64 MiB; twice that with the
// pre-activation).
constexpr std::int64_t kDenseEncodeFloats = std::int64_t{1} << 24;

std::string absolute(const std::string& p) {
  std::error_code ec;
  const auto a = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? p : a.string();
}

}  // namespace

std::map<std::string, std::string> scanSettings(const IndexOptions& o, const Engine& engine, std::int64_t windows,
                                                std::int64_t context) {
  return {{"kind", "scan"},
          {"scan_version", "2"},
          {"model", absolute(o.model_dir)},
          {"sae", absolute(o.sae_dir)},
          {"sae_fingerprint", dictionaryFingerprint(o.sae_dir)},
          {"corpus", absolute(o.corpus)},
          {"hook", engine.info().hook_name},
          {"d_sae", std::to_string(engine.info().d_sae)},
          {"tokens_requested", std::to_string(o.tokens)},
          {"windows", std::to_string(windows)},
          {"context", std::to_string(context)},
          {"batch", std::to_string(o.batch)},
          {"seed", std::to_string(o.seed)},
          {"shard_count", std::to_string(o.shard_count)},
          {"intervals", std::to_string(o.intervals)},
          {"per_interval", std::to_string(o.per_interval)},
          {"top", std::to_string(o.top)},
          {"left", std::to_string(o.left)},
          {"right", std::to_string(o.right)},
          {"histogram_bins", std::to_string(o.histogram_bins)},
          {"neighbours", std::to_string(o.neighbours)},
          {"neighbour_method", o.neighbour_method},
          {"first_position", o.skip_first ? "skipped, with document boundaries and massive rows" : "scanned"},
          {"umap", o.umap ? "1" : "0"},
          {"umap_epochs", std::to_string(o.umap_epochs)}};
}

void scanCorpus(const IndexOptions& o, const Engine& engine, const std::string& scan_path, const ProgressFn& progress) {
  const auto& info = engine.info();
  // Document boundaries (the end-of-text token) are left out with the first position.
  const std::int32_t boundary = o.skip_first ? engine.impl().tokenizer.endOfTextId() : -1;
  std::int64_t context = o.context > 0 ? o.context : info.window;
  if (context > info.n_ctx) {
    throw Error("context " + std::to_string(context) + " exceeds the model's " + std::to_string(info.n_ctx) + " positions",
                "use a context of at most " + std::to_string(info.n_ctx));
  }
  if (info.sae_context > 0 && context > info.sae_context) {
    throw Error("context " + std::to_string(context) + " exceeds the " + std::to_string(info.sae_context) +
                    " positions the SAE was trained on (cfg.json metadata.context_size)",
                "use a context of at most " + std::to_string(info.sae_context));
  }
  report(progress, "corpus", 0, 1, "reading " + o.corpus);
  const TokenCorpus corpus(o.corpus, engine.impl().tokenizer, o.tokens, context);
  const std::int64_t windows = corpus.windows();
  auto settings = scanSettings(o, engine, windows, context);
  settings["shard_index"] = std::to_string(o.shard_index);
  settings["weights"] = o.weights;  // the model's matrices as asked (--weights)

  Sqlite db(scan_path, Sqlite::Open::Create);
  configureWriter(db);
  if (db.hasTable("features")) throw Error("'" + scan_path + "' is a feature database, not a scan", "choose another output path");
  createScanSchema(db);
  {
    Transaction t(db);
    const bool fresh = getMeta(db, "kind", "\x01") == "\x01";
    for (const auto& [k, v] : settings) {
      const std::string have = getMeta(db, k, fresh ? "\x01" : "(not recorded)");
      if (have == "\x01") {
        putMeta(db, k, v);
      } else if (have != v && !(k == "weights" && have == "(not recorded)" && v == "auto")) {  // (older scans: auto)
        throw Error("'" + scan_path + "' holds a scan with other settings (" + k + " is " + have + ", now " + v + ")",
                    "delete it to start over, or rerun with the same settings to resume");
      }
    }
    if (getMeta(db, "complete", "").empty()) putMeta(db, "complete", "0");
    t.commit();
  }
  const std::int64_t batch = o.batch, blocks = (windows + batch - 1) / batch;
  std::int64_t mine = 0, done = 0;
  for (std::int64_t b = o.shard_index; b < blocks; b += o.shard_count) mine += std::min(batch, windows - b * batch);
  auto count = db.prepare("SELECT COUNT(*) FROM scan_windows WHERE window >= ? AND window < ?");
  auto insert = db.prepare("INSERT OR REPLACE INTO scan_windows(window, data) VALUES(?, ?)");
  c10::InferenceMode guard;
  const Sae& sae = engine.impl().requireSae();
  auto committed = [&](std::int64_t s, std::int64_t e) {
    count.bind(1, s).bind(2, e);
    count.step();
    const bool all = count.integer(0) == e - s;
    count.reset();
    return all;
  };
  // Blocks committed by an earlier, interrupted run are kept.
  std::vector<std::int64_t> todo;
  for (std::int64_t b = o.shard_index; b < blocks; b += o.shard_count) {
    if (committed(b * batch, std::min(windows, (b + 1) * batch))) {
      done += std::min(windows, (b + 1) * batch) - b * batch;
    } else {
      todo.push_back(b);
    }
  }
  report(progress, "scan", done, mine, done > 0 ? "resuming after " + std::to_string(done) + " windows" : "");
  // Lanes: on the CPU each core runs whole blocks by itself (products, attention and all, one
  // thread each), so no core waits for another at the end of every product; the calling thread
  // writes each block's records as it arrives (blocks may finish out of order: each is committed
  // with its window numbers) and reports progress. One lane with all threads on a GPU, without
  // OpenMP, or with MONOSCOPE_SCAN_LANES=1.
  const int threads = at::get_num_threads();
  int lanes = 1;
#ifdef _OPENMP
  const char* env = std::getenv("MONOSCOPE_SCAN_LANES");
  if (engine.impl().model->device().is_cpu() && !(env != nullptr && std::strcmp(env, "1") == 0))
    lanes = static_cast<int>(std::clamp<std::int64_t>(static_cast<std::int64_t>(todo.size()), 1, threads));
#endif
  [[maybe_unused]] const int lane_threads = lanes > 1 ? 1 : threads;  // used with OpenMP
  struct Block {
    std::int64_t first = 0;
    std::vector<std::string> blobs;
  };
  // One block through model and SAE: the records of its windows.
  auto runBlock = [&](std::int64_t b) {
    const std::int64_t s = b * batch, e = std::min(windows, s + batch);
    std::vector<std::vector<std::int32_t>> toks(static_cast<std::size_t>(e - s));
    std::vector<std::int64_t> flat;
    for (std::int64_t w = s; w < e; ++w) {
      corpus.windowTokens(w, &toks[static_cast<std::size_t>(w - s)]);
      flat.insert(flat.end(), toks[static_cast<std::size_t>(w - s)].begin(), toks[static_cast<std::size_t>(w - s)].end());
    }
    const at::Tensor ids = at::tensor(flat, at::kLong).view({e - s, context});  // [b, pos]
    const at::Tensor h = engine.impl().hookActivationsBatch(ids);              // [b, pos, d_model]
    Block block{s, std::vector<std::string>(static_cast<std::size_t>(e - s))};
    // The block encoded at once: straight to sparse rows where Sae::encodeSparse applies (the
    // screened encoder, a TopK SAE, any SAE on an accelerator: only the active entries come back
    // to the CPU), else dense products whose rows are then made sparse. A dense encoding holds
    // rows x d_sae floats twice (pre-activation and activation), so rows go in chunks of at most
    // kDenseEncodeFloats / d_sae: a dictionary of millions of features scans in bounded memory.
    SparseRows rows;
    const at::Tensor flat_h = h.reshape({-1, h.size(2)});
    const at::Tensor sae_in = sae.lessTokenRows(flat_h, ids);  // (an SAE with its token table on both sides)
    if (!sae.encodeSparse(sae_in, &rows)) {
      const std::int64_t n_rows = flat_h.size(0);
      const std::int64_t chunk = std::max<std::int64_t>(1, kDenseEncodeFloats / std::max<std::int64_t>(1, sae.config().d_sae));
      for (std::int64_t r = 0; r < n_rows; r += chunk) {
        const at::Tensor acts =
            sae.encode(sae_in.slice(0, r, std::min(n_rows, r + chunk))).to(at::kCPU, at::kFloat).contiguous();  // [rows, d_sae]
        appendPositiveRows(acts.data_ptr<float>(), acts.size(0), acts.size(1), &rows);
      }
    }
    // Rows far above the block's median norm are sinks like the first position (with skip_first).
    const at::Tensor massive =
        o.skip_first ? windowSinkMask(rowNorms(flat_h).view({e - s, context}), kMassiveRowFactor).contiguous() : at::Tensor();
    for (std::int64_t w = 0; w < e - s; ++w) {
      block.blobs[static_cast<std::size_t>(w)] =
          WindowLog::fromRows(rows, w * context, context, std::move(toks[static_cast<std::size_t>(w)]), o.skip_first ? 1 : 0,
                boundary, massive.defined() ? massive.data_ptr<bool>() + w * context : nullptr)
              .serialize();
    }
    return block;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Block> ready;
  std::size_t next = 0;
  int running = lanes;
  bool stop = false;
  std::exception_ptr lane_error;
  auto lane = [&] {
#ifdef _OPENMP
    (void)at::get_num_threads();  // LibTorch sets a new thread's OpenMP count on first use
    omp_set_num_threads(lane_threads);
#endif
    c10::InferenceMode lane_guard;
    try {
      for (;;) {
        std::int64_t b = 0;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return stop || ready.size() < 2 * static_cast<std::size_t>(lanes); });
          if (stop || next >= todo.size()) break;
          b = todo[next++];
        }
        Block block = runBlock(b);
        {
          std::lock_guard<std::mutex> lock(mu);
          ready.push_back(std::move(block));
        }
        cv.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!lane_error) lane_error = std::current_exception();
      stop = true;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      --running;
    }
    cv.notify_all();
  };
  std::vector<std::thread> workers;
  auto joinLanes = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    for (auto& t : workers)
      if (t.joinable()) t.join();
  };
  try {
    for (int l = 0; l < lanes; ++l) workers.emplace_back(lane);
    for (;;) {
      Block block;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !ready.empty() || running == 0; });
        if (ready.empty()) break;
        block = std::move(ready.front());
        ready.pop_front();
      }
      cv.notify_all();
      Transaction t(db);
      for (std::size_t i = 0; i < block.blobs.size(); ++i) {
        insert.bind(1, block.first + static_cast<std::int64_t>(i)).bindBlob(2, block.blobs[i].data(), block.blobs[i].size());
        insert.step();
        insert.reset();
      }
      t.commit();
      done += static_cast<std::int64_t>(block.blobs.size());
      report(progress, "scan", done, mine, std::to_string(done * context) + " tokens");
    }
  } catch (...) {
    joinLanes();
    throw;
  }
  joinLanes();
  if (lane_error) std::rethrow_exception(lane_error);
  putMeta(db, "complete", "1");
}

}  // namespace monoscope::core
