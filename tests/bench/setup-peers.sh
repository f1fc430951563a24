#!/usr/bin/env bash
# Installs the benchmark peers (PyPI) into .venv: tiktoken, tokenizers, transformers, torch
# (engine benchmarks); sae-lens, sae-dashboard (with transformer-lens), umap-learn, scikit-learn
# (index benchmarks). pyarrow is held below 20: newer wheels need NumPy 2, which sae-dashboard's
# dependencies do not allow.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q tiktoken tokenizers transformers torch safetensors numpy \
  sae-lens sae-dashboard umap-learn scikit-learn "pyarrow<20" gguf accelerate
