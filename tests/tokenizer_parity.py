#!/usr/bin/env python3
"""Live tokenizer parity: `monoscope-cli tokenize` vs Hugging Face `tokenizers` on the same
GPT-2 vocabulary, for every test text, and (with --llama3) on Llama 3's real 128,000-token
vocabulary, also against tiktoken. Exits 77 (skipped) when `tokenizers` is not installed."""
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
ap.add_argument("--llama3", help="Llama 3's tokenizer.model (tiktoken ranks, from PyPI's llama-models)")
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
checked = 3 * len(texts)

# Llama 3's real vocabulary (128,000 byte-level BPE tokens from its tiktoken ranks, merges derived
# from the ranks as transformers' TikTokenConverter does, with Llama 3's Split regex and
# ignore_merges): Monoscope's ids and byte offsets against `tokenizers` running the same
# tokenizer.json, and the ids against tiktoken itself where it is installed.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")


def llama3_tokenizer_json(model_path, out_path):
    import base64
    from tokenizers import Regex
    ranks = {}
    for line in Path(model_path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    byte_chars = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins, in byte order below
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    to_char = dict(zip(bs, map(chr, cs)))
    assert set(to_char.values()) == set(byte_chars)
    text_of = lambda t: "".join(to_char[b] for b in t)
    vocab, merges = {}, []
    for token, rank in ranks.items():
        vocab[text_of(token)] = rank
        if len(token) == 1:
            continue
        local = [(token[:i], token[i:], rank) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks]
        local.sort(key=lambda m: (ranks[m[0]], ranks[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2])
    tok = Tokenizer(BPE(vocab=vocab, merges=[(text_of(a), text_of(b)) for a, b, _ in merges], ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.save(str(out_path))
    return tok, ranks


if args.llama3:
    if not Path(args.llama3).exists():
        print(f"Llama 3's tokenizer.model not found at {args.llama3}" + ("" if os.environ.get("CI") == "true" else "; skipping it"))
        if os.environ.get("CI") == "true":
            sys.exit(1)
    else:
        with tempfile.TemporaryDirectory() as d:
            tok, ranks = llama3_tokenizer_json(args.llama3, Path(d) / "tokenizer.json")
            try:
                import tiktoken
                tt = tiktoken.Encoding("llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens={})
            except ImportError:
                tt = None
            for text in texts:
                f = Path(d) / "input.txt"
                f.write_bytes(text.encode("utf-8"))
                out = subprocess.run([args.cli, "tokenize", "--tokenizer", d, "--text-file", str(f)], capture_output=True, check=True)
                ours = json.loads(out.stdout)
                enc = tok.encode(text)
                raw = text.encode("utf-8")
                # `tokenizers` gives character offsets; Monoscope byte offsets.
                char_to_byte = [len(text[:i].encode("utf-8")) for i in range(len(text) + 1)]
                theirs = [(i, char_to_byte[a], char_to_byte[b]) for i, (a, b) in zip(enc.ids, enc.offsets)]
                mine = [(t["id"], t["start"], t["end"]) for t in ours]
                checked += 1
                if [m[0] for m in mine] != enc.ids or (tt is not None and enc.ids != tt.encode(text, disallowed_special=())):
                    failures += 1
                    print(f"MISMATCH (Llama 3 ids): {text[:60]!r}\n  ours   {[m[0] for m in mine][:20]}\n  theirs {enc.ids[:20]}")
                elif mine != theirs and all(len(raw[a:b].decode("utf-8", "ignore")) > 0 for _, a, b in mine):
                    failures += 1
                    print(f"MISMATCH (Llama 3 offsets): {text[:60]!r}\n  ours   {mine[:8]}\n  theirs {theirs[:8]}")
            print(f"Llama 3 ({len(ranks)} tokens): ids against tokenizers" + (" and tiktoken" if tt else "") + ", byte offsets against tokenizers")

print(f"{checked - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
