#!/usr/bin/env python3
"""SmolLM2 benchmark peers, measured in the same run as Monoscope (tests/bench/smollm2.sh):
`transformers` running the whole model (logits), and a plain torch harvest loop (forward to
blocks.15.hook_resid_post with the later blocks cut off, TopK encode, running top 20 per
feature and counts, the first position of each window skipped as Monoscope's scan does), each in
float32 and, where the CPU has bfloat16 instructions, bfloat16. The model is the F32 folder
that `monoscope-cli import-gguf` wrote from the same GGUF file. Prints one JSON line each."""
import argparse
import json
import resource
import time
import warnings

import numpy as np
import torch
from safetensors.numpy import load_file as load_np

warnings.filterwarnings("ignore")


def llama(model_dir, dtype):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()


def bench_forward(args, dtype_name):
    dtype = getattr(torch, dtype_name)
    model = llama(args.model, dtype)
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq))
    with torch.inference_mode():
        model(ids)  # warm-up
        best = float("inf")
        for _ in range(args.iters):
            t0 = time.perf_counter()
            model(ids)
            best = min(best, time.perf_counter() - t0)
    print(json.dumps({"bench": "forward", "impl": "transformers", "dtype": dtype_name, "threads": args.threads,
                      "tokens_per_s": args.batch * args.seq / best}))


def windows(shard, n_tokens, window):
    toks = load_np(shard)["tokens"].astype(np.int64)
    n = n_tokens // window
    stride = (len(toks) - window) / max(1, n - 1)
    return torch.tensor(np.stack([toks[int(w * stride): int(w * stride) + window] for w in range(n)]))


def bench_harvest(args, dtype_name):
    dtype = getattr(torch, dtype_name)
    cfg = json.load(open(f"{args.sae}/cfg.json"))
    w = {k: torch.from_numpy(v).to(dtype) for k, v in load_np(f"{args.sae}/sae_weights.safetensors").items()}
    W_enc, b_enc, b_dec, k = w["W_enc"], w["b_enc"], w["b_dec"], cfg["k"]
    threshold = w["threshold"].float() if "threshold" in w else None
    layer = int(cfg["metadata"]["hook_name"].split(".")[1])
    model = llama(args.model, dtype)
    model.model.layers = model.model.layers[: layer + 1]
    model.model.norm = torch.nn.Identity()  # the last hidden state is then the hook's residual stream
    tokens = windows(args.shard, args.tokens, args.window)
    d_sae, top = W_enc.shape[1], 20
    top_v = torch.full((top, d_sae), -1.0)
    top_i = torch.zeros((top, d_sae), dtype=torch.long)
    count = torch.zeros(d_sae, dtype=torch.long)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, tokens.shape[0], args.batch):
            ids = tokens[s: s + args.batch]
            x = model.model(ids).last_hidden_state[:, 1:].reshape(-1, W_enc.shape[0])  # first position skipped
            pre = (x - b_dec) @ W_enc + b_enc
            v, i = pre.topk(k, dim=1)
            f = torch.zeros_like(pre).scatter_(1, i, torch.relu(v)).float()
            if threshold is not None:  # Monoscope's per-feature thresholds after the top k
                f = f * (f > threshold)
            count += (f > 0).sum(0)
            v, i = f.topk(min(top, f.shape[0]), dim=0)
            allv = torch.cat([top_v, v])
            alli = torch.cat([top_i, i + s * args.window])
            top_v, idx = allv.topk(top, dim=0)
            top_i = alli.gather(0, idx)
    dt = time.perf_counter() - t0
    print(json.dumps({"bench": "harvest", "impl": "torch-loop", "dtype": dtype_name, "tokens": int(tokens.numel()),
                      "seconds": dt, "tokens_per_s": tokens.numel() / dt,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["forward", "harvest"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--sae", default="data/smollm2/sae")
    ap.add_argument("--shard", default="data/smollm2/corpus/sample.tokens.safetensors")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--tokens", type=int, default=65536)
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    (bench_forward if args.what == "forward" else bench_harvest)(args, args.dtype)


if __name__ == "__main__":
    main()
