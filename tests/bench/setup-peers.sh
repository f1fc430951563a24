#!/usr/bin/env bash
# Installs the benchmark peers (PyPI) into .venv: tiktoken, tokenizers, transformers, torch.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q tiktoken tokenizers transformers torch safetensors numpy
