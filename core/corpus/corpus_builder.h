#pragma once
// Builds a training corpus from text sources listed in a manifest: extraction, cleaning,
// de-duplication, a train/validation split by document, and token shards.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "api/progress.h"

namespace monoscope::core {

class Tokenizer;

struct CorpusSource {
  std::string name;
  std::string package;   // Debian package that ships the text
  std::string licence;
  std::string domain;    // scripture, dictionary, code, ...
  std::string kind;      // files | dictd | command
  std::vector<std::string> paths;    // files: glob patterns (* within one path component)
  std::vector<std::string> exclude;  // files: substrings that exclude a path
  std::string path;                  // dictd: path without .index / .dict.dz
  std::vector<std::string> command;  // command: argv whose stdout is the text
  std::string split = "file";        // file | percent | blank-lines | bible-chapters
  std::int64_t max_bytes = 0;        // cap on the text taken (0 = all), sampled evenly
};

struct CorpusManifest {
  double validation_fraction = 0.02;
  std::vector<CorpusSource> sources;
  static CorpusManifest fromFile(const std::string& path);
};

struct Document {
  std::string source;
  std::string text;
};

struct CorpusStats {
  struct PerSource {
    std::string name, domain;
    std::int64_t documents = 0, bytes = 0, duplicates = 0;
  };
  std::vector<PerSource> sources;
  std::int64_t train_documents = 0, valid_documents = 0, train_bytes = 0, valid_bytes = 0;
  bool cancelled = false;  // the progress callback stopped the build (nothing was written)
};


// Reads every source, cleans and de-duplicates, splits by document hash, and writes
// `out`/train.jsonl, `out`/valid.jsonl ({"source":..,"text":..} per line) and `out`/stats.json.
CorpusStats buildCorpusText(const CorpusManifest& manifest, const std::string& out,
                            const ProgressFn& progress = {});

// Reads one split ("train" or "valid") of a built corpus.
std::vector<Document> readCorpusSplit(const std::string& corpus_dir, const std::string& split);

// Tokenises a split into `out`/<split>.tokens.safetensors: `tokens` I32 [n] (each document
// followed by end-of-text) and `doc_offsets` I64 [documents + 1].
std::int64_t writeTokenShard(const std::string& corpus_dir, const std::string& split, const Tokenizer& tok);

// A smaller shard of whole documents, evenly spaced through `shard` (every k-th document, k chosen
// so that about `tokens` tokens are kept), with their offsets, sources and the source metadata.
// Returns the tokens written.
std::int64_t sampleTokenShard(const std::string& shard, std::int64_t tokens, const std::string& out);

// Cleans one document: UTF-8 (Latin-1 bytes are converted), \r\n -> \n, backspace overstrike
// removed, control characters dropped, trailing spaces trimmed, runs of blank lines collapsed.
std::string cleanText(const std::string& raw);

}  // namespace monoscope::core
