#pragma once
// What the Hugging Face hub cache holds (public API, plain types): the models and dictionaries
// Monoscope can open from it, offline, each with the spec `--model` / `--sae` take.
#include <cstddef>
#include <string>
#include <vector>

namespace monoscope::core {

struct HubEntry {
  std::string kind;  // "model" or "dictionary"
  std::string spec;  // org/name[/path]: what --model / --sae and the app's Open take
  std::string path;  // the folder (or .gguf file) in the snapshot
  std::string format;  // for a dictionary: its format's name (SAELens, Gemma Scope, ...); a model: its file kind
};

// The entries of every repository's main snapshot (else its only one) in the hub cache
// (hubCacheDir()), in the order of repository then path; at most `limit`. Never throws for a
// damaged cache entry: it is skipped.
std::vector<HubEntry> listHubCache(std::size_t limit = 10000);

// The cache folder searched: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
std::string hubCacheLocation();

}  // namespace monoscope::core
