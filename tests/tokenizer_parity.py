#!/usr/bin/env python3
"""Live tokenizer parity: `monoscope-cli tokenize` vs Hugging Face `tokenizers` on the same
GPT-2 vocabulary, for every test text. Exits 77 (skipped) when `tokenizers` is not installed."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
except ImportError:
    # In CI the parity test must run: a missing `tokenizers` is a failure there, not a skip.
    print("tokenizers is not installed" + ("" if os.environ.get("CI") == "true" else "; skipping"))
    sys.exit(1 if os.environ.get("CI") == "true" else 77)

ap = argparse.ArgumentParser()
ap.add_argument("--cli", required=True)
ap.add_argument("--vocab", required=True)
ap.add_argument("--texts", required=True)
args = ap.parse_args()

vocab = Path(args.vocab)
if not (vocab / "vocab.json").exists():
    print("GPT-2 vocabulary not found; skipping")
    sys.exit(77)
tok = Tokenizer(BPE.from_file(str(vocab / "vocab.json"), str(vocab / "merges.txt")))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.add_special_tokens(["<|endoftext|>"])

texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
# Also a long mixed text built from all of them.
texts.append("\n".join(texts) * 3)
failures = 0
with tempfile.TemporaryDirectory() as d:
    # Both layouts: vocab.json + merges.txt, and the tokenizer.json `tokenizers` writes.
    tok.save(str(Path(d) / "tokenizer.json"))
    for folder in (str(vocab), d):
        for text in texts:
            f = Path(d) / "input.txt"
            f.write_bytes(text.encode("utf-8"))
            out = subprocess.run([args.cli, "tokenize", "--tokenizer", folder, "--text-file", str(f)],
                                 capture_output=True, check=True)
            ours = [t["id"] for t in json.loads(out.stdout)]
            theirs = tok.encode(text).ids
            if ours != theirs:
                failures += 1
                print(f"MISMATCH ({folder}): {text[:60]!r}\n  ours   {ours[:20]}\n  theirs {theirs[:20]}")
    # A tokenizer trained by Monoscope: `tokenizers` must load its tokenizer.json and agree.
    train = Path(d) / "train.txt"
    train.write_text("\n".join(texts) * 20, encoding="utf-8")
    trained = Path(d) / "trained"
    subprocess.run([args.cli, "train-tokenizer", "--text-file", str(train), "--vocab-size", "600", "--out", str(trained)],
                   capture_output=True, check=True)
    hf = Tokenizer.from_file(str(trained / "tokenizer.json"))
    for text in texts:
        f = Path(d) / "input.txt"
        f.write_bytes(text.encode("utf-8"))
        out = subprocess.run([args.cli, "tokenize", "--tokenizer", str(trained), "--text-file", str(f)],
                             capture_output=True, check=True)
        ours = [t["id"] for t in json.loads(out.stdout)]
        if ours != hf.encode(text).ids:
            failures += 1
            print(f"MISMATCH (trained): {text[:60]!r}")
print(f"{3 * len(texts) - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
