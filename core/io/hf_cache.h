#pragma once
// The Hugging Face hub cache, offline: "org/name[@revision][/path inside the repository]" names a
// snapshot folder in $HF_HUB_CACHE (else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
// else ~/.cache/huggingface/hub), laid out as huggingface_hub writes it:
//   models--org--name/refs/main              the revision "main" points at
//   models--org--name/snapshots/<commit>/... the files of that commit
// Nothing is ever downloaded. No LibTorch here.
#include <string>

namespace monoscope::core {

// The hub cache folder searched.
std::string hubCacheDir();

// The commit that revision `rev` names in a cached repository folder (models--org--name): the
// content of refs/<rev> for a branch or tag, else `rev` itself (a commit id).
std::string hubRevisionCommit(const std::string& repo_dir, const std::string& rev);

// A local path for `spec`: unchanged when it exists on disk (unless `cache_only`: an hf:// path,
// never a local one) or does not look like a repository id; else the snapshot path in the hub
// cache. Throws Error naming the folder searched when the repository, revision or path is not
// there.
std::string resolveHubPath(const std::string& spec, bool cache_only = false);

}  // namespace monoscope::core
