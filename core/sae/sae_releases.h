#pragma once
// SAELens release names ("gemma-scope-2b-pt-res-canonical") and the Hugging Face repository and
// path of each SAE id in them, for the releases whose dictionaries Monoscope reads; compiled in
// from data/sae_releases.json (packaging/make_sae_releases.py reads sae-lens's own list).
// `--sae RELEASE:ID` becomes "repo/path", which the hub cache resolves offline (io/hf_cache.h).
#include <string>

namespace monoscope::core {

const char* saeReleasesJson();

// "RELEASE:ID" as "org/repo/path/in/it"; any other spec unchanged. Throws Error naming the
// release or id (with the nearest choices) when the release is known but the id is not.
std::string resolveSaeRelease(const std::string& spec);

}  // namespace monoscope::core
