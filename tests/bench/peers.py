#!/usr/bin/env python3
"""Benchmark peers, measured in the same run as Monoscope: tiktoken and Hugging Face tokenizers
(tokenizer throughput, one thread) and transformers + torch (GPT-2-small forward pass)."""
import argparse
import json
import os
import time


def checksum(ids):
    c = 0
    for i in ids:
        c = (c * 1000003 + i) % (1 << 64)
    return str(c)


def tokenizer_json_bench(tokenizer_dir, text_file, repeats):
    """Hugging Face tokenizers running a tokenizer.json as it is (one thread, whole text)."""
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer
    text = open(text_file, encoding="utf-8").read()
    tok = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    best = 1e30
    for _ in range(repeats):
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        best = min(best, time.perf_counter() - t0)
    return [{"bench": "tokenizer", "impl": "hf-tokenizers", "mb_per_s": len(text.encode("utf-8")) / best / 1e6,
             "tokens": len(ids), "checksum": checksum(ids)}]


def tokenizers_bench(vocab_dir, text_file, repeats):
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    text = open(text_file, encoding="utf-8").read()
    nbytes = len(text.encode("utf-8"))
    out = []

    # tiktoken: Encoding built from GPT-2's merge ranks and GPT-2's pattern (no download).
    import tiktoken
    vocab = json.load(open(os.path.join(vocab_dir, "vocab.json"), encoding="utf-8"))
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_of = {chr(c): b for b, c in zip(bs, cs)}
    ranks = {bytes(byte_of[ch] for ch in tok): i for tok, i in vocab.items() if tok != "<|endoftext|>"}
    enc = tiktoken.Encoding(
        name="gpt2-local",
        pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        mergeable_ranks=ranks, special_tokens={"<|endoftext|>": vocab["<|endoftext|>"]})
    best = 1e30
    for _ in range(repeats):
        t0 = time.perf_counter()
        ids = enc.encode_ordinary(text)
        best = min(best, time.perf_counter() - t0)
    out.append({"bench": "tokenizer", "impl": "tiktoken", "mb_per_s": nbytes / best / 1e6,
                "tokens": len(ids), "checksum": checksum(ids)})

    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    tok = Tokenizer(BPE.from_file(os.path.join(vocab_dir, "vocab.json"), os.path.join(vocab_dir, "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    best = 1e30
    for _ in range(repeats):
        t0 = time.perf_counter()
        ids = tok.encode(text).ids
        best = min(best, time.perf_counter() - t0)
    out.append({"bench": "tokenizer", "impl": "hf-tokenizers", "mb_per_s": nbytes / best / 1e6,
                "tokens": len(ids), "checksum": checksum(ids)})
    return out


def resident_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return 0.0


def forward_bench(threads, seq, batch, iters, model_dir=None):
    """GPT-2 small with random weights, or a checkpoint folder loaded as its config's dtype says
    (BF16 for the full-size checkpoints: transformers then runs BF16 products)."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    t_load = time.perf_counter()
    if model_dir:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").eval()
    else:
        model = GPT2LMHeadModel(GPT2Config()).eval()
    load_s = time.perf_counter() - t_load
    rss_after_load = resident_mb("VmRSS:")
    ids = torch.randint(0, model.config.vocab_size, (batch, seq))
    with torch.inference_mode():
        model(ids)
        best = 1e30
        for _ in range(iters):
            t0 = time.perf_counter()
            model(ids)
            best = min(best, time.perf_counter() - t0)
    row = {"bench": "forward", "impl": "transformers", "threads": threads, "tokens_per_s": batch * seq / best}
    if model_dir:
        row.update({"model": model_dir, "weights": str(next(model.parameters()).dtype).replace("torch.", ""),
                    "load_s": load_s, "rss_after_load_mb": rss_after_load, "peak_rss_mb": resident_mb("VmHWM:")})
    return [row]


def sae_bench(arch, threads, batch, steps, d_in, d_sae, k=32, l1=5.0):
    """A plain torch SAE training loop doing the same work per step as Monoscope's trainer:
    encoder, ReLU or TopK, decoder, MSE (+ decoder-norm-weighted L1 for standard), Adam,
    and decoder-row normalisation for topk."""
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    W_dec = torch.randn(d_sae, d_in)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True) * (1.0 if arch == "topk" else 0.1)
    W_dec = W_dec.requires_grad_()
    W_enc = W_dec.detach().t().clone().requires_grad_()
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = torch.zeros(d_in, requires_grad=True)
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=1e-4)
    x = torch.randn(batch, d_in)
    x = x * (d_in ** 0.5) / x.norm(dim=1).mean()

    def step():
        pre = (x - b_dec) @ W_enc + b_enc
        if arch == "topk":
            vals, idx = pre.topk(k, dim=-1)
            f = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
            x_hat = f @ W_dec + b_dec
            loss = (x_hat - x).pow(2).sum(-1).mean()
        else:
            f = torch.relu(pre)
            x_hat = f @ W_dec + b_dec
            loss = (x_hat - x).pow(2).sum(-1).mean() + l1 * (f * W_dec.norm(dim=1)).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if arch == "topk":
            with torch.no_grad():
                W_dec.div_(W_dec.norm(dim=1, keepdim=True))
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t0
    return [{"bench": f"sae_{arch}", "impl": "torch", "threads": threads, "tokens_per_s": batch * steps / dt}]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["tokenizer", "tokenizer-json", "forward", "sae"])
    ap.add_argument("--arch", default="standard")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--d-in", type=int, default=768)
    ap.add_argument("--d-sae", type=int, default=24576)
    ap.add_argument("--vocab")
    ap.add_argument("--text")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--model", help="forward: a checkpoint folder instead of random GPT-2 small")
    a = ap.parse_args()
    if a.what == "tokenizer":
        rows = tokenizers_bench(a.vocab, a.text, a.repeats)
    elif a.what == "tokenizer-json":
        rows = tokenizer_json_bench(a.vocab, a.text, a.repeats)
    elif a.what == "forward":
        rows = forward_bench(a.threads, a.seq, a.batch, a.iters, a.model)
    else:
        rows = sae_bench(a.arch, a.threads, a.batch, a.steps, a.d_in, a.d_sae)
    for r in rows:
        print(json.dumps(r))
