// The SAE training job behind api/training.h: activation source, trainer, checkpoints,
// export with metadata, and the quality report.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "api/engine_impl.h"
#include "api/training.h"
#include "dist/process_group.h"
#include "lm/transformer.h"
#include "sae/activation_store.h"
#include "sae/sae.h"
#include "sae/sae_trainer.h"
#include "sae/token_table.h"
#include "text/tokenizer.h"
#include "util/cancel.h"
#include "util/device.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/numbers.h"
#include "util/runtime.h"

namespace fs = std::filesystem;

namespace monoscope::core {

std::int64_t defaultSaeBatchSize(std::int64_t tokens) {
  std::int64_t b = 4096;
  while (b > 256 && tokens / b < 2000) b /= 2;
  return b;
}

void SaeTrainingOptions::validate() const {
  auto bad = [](const std::string& f, const std::string& why) { throw Error("training option " + f + " " + why); };
  if (activations.empty() && model_dir.empty()) bad("activations/model_dir", "- give a source");
  if (!model_dir.empty() && (hook.empty() || corpus.empty())) bad("hook/corpus", "are needed with model_dir");
  if (out.empty()) bad("out", "is empty");
  if (tokens <= 0) bad("total_tokens", "must be positive");
  if (batch_size < 0 || batch_size > (1 << 22)) bad("batch_size", "must be in 0..4194304 (0: chosen for the run)");
  if (dead_window < 0) bad("dead_window", "must be non-negative");
  if (resample_every < 0) bad("resample_every", "must be non-negative");
  if (encoder_precision != "f32" && encoder_precision != "bf16") bad("encoder_precision", "must be f32 or bf16");
  if (token_table_side != "decoder" && token_table_side != "both") bad("token_table_side", "must be decoder or both");
  if (token_table_side != "decoder" && token_table.empty()) bad("token_table_side", "needs a token_table");
  if (context < 0) bad("context", "must be non-negative");
  if (buffer_tokens < 1024 || buffer_tokens > (1 << 26)) bad("buffer_tokens", "must be in 1024..67108864");
  // Refuse runs that could never finish before starting them.
  const std::int64_t b = batch_size > 0 ? batch_size : defaultSaeBatchSize(tokens);
  if (checkpoint_every < 1) bad("checkpoint_every", "must be at least 1");
  if (world_size < 1 || world_size > (1 << 16)) bad("world_size", "must be in 1..65536");
  if (rank < 0 || rank >= world_size) bad("rank", "must be in 0..world_size-1");
  if (world_size > 1 && (master_port < 1 || master_port > 65535)) bad("master_port", "must be in 1..65535");
  if (dist_timeout_s < 1) bad("dist_timeout_s", "must be at least 1 second");
  if (tokens / b > 100'000'000) bad("total_tokens", "gives " + std::to_string(tokens / b) + " steps of " + std::to_string(b) + ", more than 100,000,000");
}

JobStatus trainSae(const SaeTrainingOptions& o, const ProgressFn& progress, SaeTrainingResult* result) {
  o.validate();
  configureThreads(o.threads);
  const c10::Device device = resolveDevice(o.device);
  SaeTrainingResult r;
  r.rank = o.rank;
  r.world_size = o.world_size;
  const bool writer = o.rank == 0;  // rank 0 writes checkpoints and the result
  DistEnv env;
  env.rank = o.rank;
  env.world_size = o.world_size;
  env.master_addr = o.master_addr;
  env.master_port = o.master_port;
  // Joined before anything slow, so a missing rank is reported within the timeout.
  const auto pg = ProcessGroup::join(env, device, std::chrono::seconds(o.dist_timeout_s));
  std::unique_ptr<ActivationSource> source;
  FileActivationSource* file_source = nullptr;
  std::shared_ptr<const Transformer> model;
  std::shared_ptr<const TokenShard> valid_shard;
  std::string hook = o.hook;
  std::int64_t context = 0;
  std::int32_t boundary = -1;  // the end-of-text token, left out with the first position
  const double sink_factor = o.skip_first && o.skip_sinks ? kMassiveRowFactor : 0;  // secondary sinks, left out with it
  report(progress, "load", 0, 1);
  if (!o.model_dir.empty()) {  // the model streams activations, or (with a harvest) evaluates the splice
    model = Transformer::load(o.model_dir, device);
    try {
      if (o.skip_first && o.skip_end_of_text) boundary = Tokenizer::endOfTextIdOf(o.model_dir);
    } catch (const Error& e) {
      throw e.withContext("reading the end-of-text id that skip_first leaves out");
    }
    context = o.context > 0 ? o.context : std::min<std::int64_t>(128, model->config().n_ctx);
    if (context < 2 || context > model->config().n_ctx)
      throw Error("context " + std::to_string(context) + " is outside 2.." + std::to_string(model->config().n_ctx) + " (the model's positions)");
    const fs::path corpus = o.corpus;
    const fs::path train = fs::is_directory(corpus) ? corpus / "train.tokens.safetensors" : corpus;
    auto shard = std::make_shared<const TokenShard>(train.string());
    valid_shard = fs::is_directory(corpus) && fs::exists(corpus / "valid.tokens.safetensors")
                      ? std::make_shared<const TokenShard>((corpus / "valid.tokens.safetensors").string())
                      : shard;
    if (o.activations.empty())
      // Each rank streams its own windows (seeded by rank).
      source = std::make_unique<ModelActivationSource>(model, hook, shard, context, o.buffer_tokens,
                                                       o.seed + 7919u * static_cast<std::uint64_t>(o.rank), o.skip_first, boundary,
                                                       sink_factor);
  }
  if (!o.token_table.empty() && o.activations.empty())
    throw Error("training option token_table needs a harvest (activations): a streamed model gives no token ids here",
                "harvest first (monoscope-cli harvest), then train on its folder");
  if (!o.activations.empty()) {
    auto fsrc = std::make_unique<FileActivationSource>(o.activations, o.seed, boundary, sink_factor, !o.token_table.empty());
    file_source = fsrc.get();
    source = std::move(fsrc);
    if (hook.empty()) hook = "blocks.0.hook_resid_post";
  }
  SaeTrainConfig cfg;
  cfg.architecture = o.architecture;
  cfg.d_in = source->width();
  cfg.d_sae = o.d_sae;
  cfg.total_tokens = o.tokens;
  cfg.seed = o.seed;
  r.batch_size_chosen = o.batch_size == 0;
  cfg.batch_size = o.batch_size > 0 ? o.batch_size : defaultSaeBatchSize(o.tokens);
  const std::string ck = (fs::path(o.out) / "checkpoint.safetensors").string();
  if (o.batch_size == 0 && o.world_size == 1 && fs::exists(ck)) {
    // A run trained further (a larger --tokens) keeps the batch its checkpoint was trained with,
    // which the default for the new length may not be. (With several ranks only rank 0 can read
    // the checkpoint, so there --batch-size must be given.)
    const auto run = SaeTrainer::checkpointRunSettings(ck);
    const auto it = run.find("global_batch");
    if (it != run.end()) cfg.batch_size = parseInt64(it->second, "checkpoint '" + ck + "': run.global_batch");
  }
  cfg.world_size = o.world_size;
  cfg.lr = o.lr;
  cfg.dead_window = o.dead_window > 0 ? o.dead_window : std::max<std::int64_t>(1, std::min<std::int64_t>(10'000'000, o.tokens / 3));
  cfg.hook_name = hook;
  cfg.resample_every = o.resample_every;
  cfg.encoder_precision = o.encoder_precision;
  cfg.matryoshka = o.matryoshka;
  cfg.matryoshka_k = o.matryoshka_k;
  if (cfg.architecture != "standard") {
    cfg.k = o.k;
  } else {
    cfg.l1_coefficient = o.l1_coefficient;
  }
  cfg.validate();
  if (file_source != nullptr && cfg.batch_size > file_source->rows()) {
    throw Error("the activation file holds " + std::to_string(file_source->rows()) + " rows, fewer than one batch of " +
                    std::to_string(cfg.batch_size),
                "lower batch_size or collect more activations");
  }
  r.batch_size = cfg.batch_size;
  r.dead_window = cfg.dead_window;
  at::Tensor table;  // token table: dense [vocab, d_in], or undefined
  const bool both_sides = o.token_table_side == "both";  // the encoder reads the row less its table row too
  std::string table_signature;
  if (!o.token_table.empty()) {
    table = loadTokenTable(o.token_table, cfg.d_in, file_source->maxToken() + 1).to(device);
    const at::Tensor kept = table.abs().sum(1).gt(0);
    table_signature = std::to_string(kept.sum().item<std::int64_t>()) + " tokens, sum " +
                      roundTripDecimal(table.to(at::kDouble).sum().item<double>());
  }
  fs::create_directories(o.out);
  SaeTrainer trainer(cfg, device);
  trainer.setProcessGroup(pg.get());
  std::map<std::string, std::string> run_settings;  // (also written to training.json)
  {  // what decides the stream of rows and the updates (a harvest's resume reads the rows the run
     // would have read next; a model's draws its windows anew)
    std::map<std::string, std::string> run = {
        {"seed", std::to_string(o.seed)},
        {"source", file_source != nullptr ? "file of " + std::to_string(file_source->rows()) + " rows"
                                           : "model, context " + std::to_string(context) + ", buffer " +
                                                 std::to_string(o.buffer_tokens) + ", ranks " + std::to_string(o.world_size)},
        {"hook", hook},
        {"skip_first", o.skip_first ? "true" : "false"},
        {"end_of_text_left_out", std::to_string(boundary)},
        {"sink_factor", roundTripDecimal(sink_factor)},
        {"global_batch", std::to_string(cfg.globalBatch())},
        {"lr", roundTripDecimal(cfg.lr)}};  // the length (tokens) may grow: a finished run can be trained further
    if (cfg.architecture != "standard") run["k"] = std::to_string(cfg.k);
    else run["l1_coefficient"] = roundTripDecimal(cfg.l1_coefficient);
    if (cfg.resample_every > 0) run["resample_every"] = std::to_string(cfg.resample_every);
    if (cfg.encoder_precision != "f32") run["encoder_precision"] = cfg.encoder_precision;
    if (!cfg.matryoshka.empty()) {
      std::string list;
      for (const std::int64_t m : cfg.matryoshka) list += (list.empty() ? "" : ",") + std::to_string(m);
      run["matryoshka"] = list;
    }
    if (table.defined()) run["token_table"] = table_signature + (both_sides ? ", both sides" : "");
    if (!cfg.matryoshka_k.empty()) {
      std::string list;
      for (const std::int64_t m : cfg.matryoshka_k) list += (list.empty() ? "" : ",") + std::to_string(m);
      run["matryoshka_k"] = list;
    }
    run_settings = run;
    trainer.setRunSettings(std::move(run));
  }
  // Rank 0 resumes from its checkpoint (written with any number of ranks) and every rank takes
  // its state, so the others need no access to the output folder.
  if (writer) trainer.loadCheckpoint(ck);
  trainer.broadcastState(0);
  r.resumed = trainer.tokensSeen() > 0;
  const std::int64_t total = cfg.totalSteps();
  if (r.resumed) report(progress, "resume", trainer.tokensSeen() / cfg.globalBatch(), total);
  // A file's rows form one seeded stream; each global batch is the ranks' slices in rank order,
  // so N ranks with batch B read exactly what one process with batch N*B reads.
  if (file_source != nullptr) file_source->skip(trainer.tokensSeen());
  auto nextBatch = [&]() {
    if (file_source == nullptr || o.world_size == 1) return source->next(cfg.batch_size);
    file_source->advance(o.rank * cfg.batch_size);
    at::Tensor b = file_source->next(cfg.batch_size);
    file_source->advance((o.world_size - 1 - o.rank) * cfg.batch_size);
    return b;
  };
  // With a token table: the rows of the last batch's tokens (what the decoder does not learn).
  auto tableRows = [&]() { return table.index_select(0, file_source->lastTokens().to(device)); };
  SaeTrainStats last;
  char detail[160];
  try {
    while (trainer.tokensSeen() < cfg.total_tokens) {
      const at::Tensor batch = nextBatch();
      if (!table.defined()) {
        last = trainer.step(batch);
      } else {
        const at::Tensor rest = batch.to(device) - tableRows();
        last = both_sides ? trainer.step(rest) : trainer.step(batch, rest);
      }
      const std::int64_t s = trainer.tokensSeen() / cfg.globalBatch();
      if (writer && s % o.checkpoint_every == 0) trainer.saveCheckpoint(ck);
      std::snprintf(detail, sizeof detail, "mse %.4f  fve %.4f  L0 %.1f  dead %.3f%s", last.mse, last.fve, last.l0,
                    last.dead_fraction, last.resampled > 0 ? ("  re-aimed " + std::to_string(last.resampled)).c_str() : "");
      report(progress, "train", std::min(s, total), total, detail);
    }
  } catch (const Cancelled&) {
    if (writer) trainer.saveCheckpoint(ck);
    return JobStatus::Cancelled;
  }
  if (!writer) {  // the weights are rank 0's to write and evaluate
    r.steps = trainer.stepsDone();
    r.tokens = trainer.tokensSeen();
    r.batch_size = cfg.batch_size;
    r.dead_window = cfg.dead_window;
    if (result) *result = r;
    return JobStatus::Done;
  }
  trainer.saveCheckpoint(ck);
  report(progress, "evaluate", 0, 1);
  auto sae = trainer.exportSae();
  if (model) {
    auto cfg_out = sae->config();
    cfg_out.model_name = fs::path(o.model_dir).filename().string();
    cfg_out.context_size = context;
    sae = std::make_unique<Sae>(cfg_out, sae->W_enc(), sae->b_enc(), sae->W_dec(), sae->b_dec(), sae->threshold());
  }
  sae->save(o.out);
  if (table.defined()) writeSaeTokenTable(o.token_table, o.out, both_sides);
  r.steps = trainer.stepsDone();
  r.tokens = trainer.tokensSeen();
  // With a model: variance explained and L0 on held-out text (the validation shard), else on
  // further rows of the training source.
  at::Tensor held_out, held_out_table;
  if (table.defined()) {  // further rows of the harvest, with their tokens' table rows added back
    held_out = file_source->next(16384);
    held_out_table = tableRows();
  } else if (model) {
    ModelActivationSource eval_source(model, hook, valid_shard, context, 1 << 15, o.seed + 99, o.skip_first, boundary, sink_factor);
    held_out = eval_source.next(16384);
  } else {
    held_out = source->next(std::min<std::int64_t>(16384, cfg.batch_size * 4));
  }
  const auto m = sae->metrics(held_out, held_out_table, both_sides);
  r.fraction_variance_explained = m.fraction_variance_explained;
  r.l0 = m.l0;
  r.dead_fraction = last.dead_fraction;
  if (model && !table.defined()) {  // (the splice does not apply a token table)
    const auto ev = evaluateSplice(*model, *sae, *valid_shard, 16, 8, context, o.skip_first ? 1 : 0, boundary);
    r.has_splice = true;
    r.clean_loss = ev.clean_loss;
    r.spliced_loss = ev.sae_loss;
    r.zero_ablation_loss = ev.zero_loss;
    r.ce_loss_recovered = ev.ce_loss_recovered;
  }
  nlohmann::ordered_json j;
  j["out"] = o.out;
  j["steps"] = r.steps;
  j["tokens"] = r.tokens;
  j["batch_size"] = r.batch_size;
  if (o.world_size > 1) j["ranks"] = o.world_size;  // batch_size rows each
  j["context"] = context;
  j["first_position"] = o.skip_first ? "excluded from training and from the splice" : "included";
  if (boundary >= 0) j["end_of_text"] = "token " + std::to_string(boundary) + " excluded from training and from the splice";
  if (sink_factor > 0)
    j["secondary_sinks"] = "rows with a norm over " + std::to_string(static_cast<int>(kMassiveRowFactor)) +
                           "x the median excluded from training and its held-out measures (the index's rule)";
  if (file_source != nullptr) {
    j["activation_rows"] = file_source->rows();
    j["rows_left_out"] = {{"end_of_text", file_source->leftOutBoundary()}, {"massive", file_source->leftOutMassive()}};
  }
  j["metrics_on"] = std::string(model && !table.defined() ? "16,384 held-out activations (the validation shard)"
                                                           : "16,384 further training activations") +
                    (sink_factor > 0 ? ", secondary sinks left out" : "");
  if (table.defined())
    j["token_table"] = {{"file", kSaeTokenTableFile}, {"from", o.token_table}, {"table", table_signature},
                        {"decoder", "reconstructs each activation less its token's row; metrics add the row back"}};
  if (both_sides) j["token_table"]["encoder"] = "reads each activation less its token's row";
  j["run"] = run_settings;  // seed, lr, k, re-aiming, encoder precision, prefixes: what the checkpoint resumes with
  j["fraction_variance_explained"] = r.fraction_variance_explained;
  j["l0"] = r.l0;
  j["dead_fraction"] = r.dead_fraction;
  j["dead_window_tokens"] = r.dead_window;
  if (r.has_splice) {
    j["clean_loss"] = r.clean_loss;
    j["spliced_loss"] = r.spliced_loss;
    j["zero_ablation_loss"] = r.zero_ablation_loss;
    j["ce_loss_recovered"] = r.ce_loss_recovered;
  }
  writeFileAtomically((fs::path(o.out) / "training.json").string(), j.dump(2));
  report(progress, "evaluate", 1, 1);
  if (result) *result = r;
  return JobStatus::Done;
}

}  // namespace monoscope::core
