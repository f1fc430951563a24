#pragma once
// A token table: one row of the activation space for each of a set of tokens (tensors
// `token_ids` I32 [n] and `token_means` F32 [n, d_in]), here each frequent token's mean
// activation at a hook. An SAE trained with one (SaeTrainingOptions::token_table) reconstructs an
// activation less its token's row, so that what a token is sits in the table and what its context
// adds in the dictionary's latents. Internal (LibTorch).
#include <ATen/ATen.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "api/progress.h"

namespace monoscope::core {

// The table in `path` as a dense float [vocab, d_in] lookup (zero rows for tokens not in it),
// vocab = max(min_vocab, largest id + 1). Throws Error naming the file and field for a missing or
// malformed tensor, a width other than d_in, a negative, repeated or absurd id, or a value that
// is not finite.
at::Tensor loadTokenTable(const std::string& path, std::int64_t d_in, std::int64_t min_vocab);

// An SAE folder may carry its token table as `token_table.safetensors` (train-sae writes it).
constexpr const char* kSaeTokenTableFile = "token_table.safetensors";
// The token table of the SAE in `sae_dir` (loadTokenTable, on `device`), or an undefined tensor
// when it has none.
at::Tensor loadSaeTokenTable(const std::string& sae_dir, std::int64_t d_in, std::int64_t min_vocab, const c10::Device& device);
// Whether the token table of the SAE in `sae_dir` sits on both sides (safetensors metadata
// "sides": "both", written by train-sae --token-table-side both): the encoder then reads each
// activation less its token's row. False without a table.
bool saeTokenTableOnEncoder(const std::string& sae_dir);
// Copies the table file `table` into `sae_dir` as its token table, marking the sides it sits on.
void writeSaeTokenTable(const std::string& table, const std::string& sae_dir, bool both_sides);
// Writes the token table of `from_dir`, if it has one, into `to_dir` (its means as F16 with
// `half`, else as stored), so that a converted or calibrated SAE keeps it. Returns whether it had one.
bool copySaeTokenTable(const std::string& from_dir, const std::string& to_dir, bool half);

struct TokenMeansOptions {
  std::string activations;       // a harvest folder (or one file) with `activations` and `tokens`
  std::string out;               // the table's safetensors file
  std::int64_t top = 8192;       // the most frequent tokens kept (ties: the smaller id first)
  double massive_factor = 10.0;  // rows over this many times their chunk's median norm are left out (0: none)
  void validate() const;         // throws Error naming the field
};

// Each of the `top` most frequent tokens' mean activation over the harvest's rows (sums in
// float64), written with the rows' count per token (`token_counts` I64 [n]).
JobStatus computeTokenMeans(const TokenMeansOptions& options, const ProgressFn& progress);

}  // namespace monoscope::core
