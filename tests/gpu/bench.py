#!/usr/bin/env python3
"""GPU benchmarks of tests/gpu/run.sh, each against a plain PyTorch peer on the same device in
the same run: index throughput (forward to the hook, encode, top activations per feature; the
peer under bf16 autocast; Monoscope keeps the checkpoint's BF16 weights, which multiply in BF16
on CUDA), SAE training steps/s (TopK, Adam), and generation tokens/s with a steering clamp (both
in BF16). Random checkpoints of the real demo's shape (SmolLM2-135M) and of a larger one
(Llama-3.2-1B) are written here with transformers, with a synthetic byte-level tokenizer and a
random TopK SAE. Monoscope's rates are steady-state: the difference of a long and a short run,
so start-up (loading, database writing) cancels out. Prints `BENCH` lines."""
import argparse
import json
import os
import subprocess
import time

import torch
from safetensors.torch import save_file

SHAPES = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, rope_theta=100000.0, max_position_embeddings=8192,
                         layer=15, d_sae=16384, index_tokens=1 << 21, train_tokens=4096 * 400),
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=131072,
                         rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                         layer=8, d_sae=32768, index_tokens=1 << 20, train_tokens=4096 * 200),
}
TINY = {"tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=1024, rope_theta=10000.0, max_position_embeddings=512,
                     layer=2, d_sae=512, index_tokens=1 << 16, train_tokens=512 * 40)}
K, CONTEXT, TOP = 32, 128, 20


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_checkpoint(name, shape, device, root):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM
    out = os.path.join(root, name)
    if os.path.exists(os.path.join(out, "tokenizer.json")):
        return out
    cfg = {k: v for k, v in shape.items() if k not in ("layer", "d_sae", "index_tokens", "train_tokens")}
    config = LlamaConfig(**cfg, tie_word_embeddings=True, bos_token_id=0, eos_token_id=shape["vocab_size"] - 1)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    v = shape["vocab_size"]
    vocab = {c: i for i, c in enumerate(byte_chars())}
    for i in range(len(vocab), v - 1):
        vocab[f"t{i}"] = i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(os.path.join(out, "tokenizer.json"))
    del model
    return out


def write_sae(name, shape, root):
    out = os.path.join(root, name + "-sae")
    if os.path.exists(os.path.join(out, "cfg.json")):
        return out
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    d, s = shape["hidden_size"], shape["d_sae"]
    w_dec = torch.nn.functional.normalize(torch.randn(s, d, generator=g), dim=1)
    save_file({"W_enc": w_dec.t().contiguous(), "b_enc": torch.zeros(s), "W_dec": w_dec, "b_dec": torch.zeros(d)},
              os.path.join(out, "sae_weights.safetensors"))
    cfg = {"architecture": "topk", "d_in": d, "d_sae": s, "k": K, "dtype": "float32", "apply_b_dec_to_input": True,
           "normalize_activations": "none",
           "metadata": {"hook_name": f"blocks.{shape['layer']}.hook_resid_post", "context_size": CONTEXT,
                        "prepend_bos": False, "model_name": name}}
    json.dump(cfg, open(os.path.join(out, "cfg.json"), "w"))
    return out


def write_shard(shape, root, n):
    path = os.path.join(root, f"tokens-{shape['vocab_size']}-{n}.safetensors")
    if not os.path.exists(path):
        g = torch.Generator().manual_seed(1)
        save_file({"tokens": torch.randint(0, shape["vocab_size"] - 1, (n,), generator=g, dtype=torch.int32)}, path)
    return path


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def steady_rate(run, long_n, short_n):
    """Units per second between a short and a long run (start-up cancels); the long run's whole
    rate when the two are too close to tell apart (tiny shapes)."""
    ts, tl = run(short_n), run(long_n)
    if tl - ts < 0.1 * tl:
        return long_n / tl
    return (long_n - short_n) / (tl - ts)


def bench_index(a, name, shape, model_dir, sae_dir, root):
    n = shape["index_tokens"]
    shard = write_shard(shape, root, n + CONTEXT)
    batch = 8 if a.tiny else 64

    def ours(tokens):
        db = os.path.join(root, f"{name}-{tokens}.db")
        for f in (db, db + ".scan"):
            if os.path.exists(f):
                os.remove(f)
        return timed([a.cli, "index", "--model", model_dir, "--sae", sae_dir, "--corpus", shard, "--tokens", str(tokens),
                      "--out", db, "--context", str(CONTEXT), "--batch", str(batch), "--umap", "false",
                      "--neighbours", "0", "--device", a.device, "--weights", "stored"])
    mine = steady_rate(ours, n, n // 4)

    from transformers import AutoModelForCausalLM
    dev = torch.device(a.device)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(dev).eval()
    layers = model.model.layers
    from safetensors.torch import load_file
    w = {k: v.to(dev) for k, v in load_file(os.path.join(sae_dir, "sae_weights.safetensors")).items()}
    tokens = load_file(shard)["tokens"].long()

    class Stop(Exception):
        pass
    got = {}

    def hook(_m, _i, o):
        got["h"] = o[0] if isinstance(o, tuple) else o
        raise Stop
    handle = layers[shape["layer"]].register_forward_hook(hook)
    s = shape["d_sae"]

    def peer(n_tokens):
        top = torch.full((TOP, s), float("-inf"), device=dev)
        windows = n_tokens // CONTEXT
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16):
            for b0 in range(0, windows, batch):
                nb = min(batch, windows - b0)
                ids = tokens[b0 * CONTEXT:(b0 + nb) * CONTEXT].view(nb, CONTEXT).to(dev)
                try:
                    model(ids)
                except Stop:
                    pass
                x = got["h"].reshape(-1, got["h"].shape[-1]).float()
                pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
                v, i = pre.topk(K, dim=1)
                acts = torch.zeros_like(pre).scatter_(1, i, v.relu())
                top = torch.cat([top, acts.topk(min(TOP, acts.shape[0]), dim=0).values]).topk(TOP, dim=0).values
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    peer(CONTEXT * batch)  # warm-up
    theirs = (n - n // 4) / max(1e-9, peer(n) - peer(n // 4))
    handle.remove()
    del model
    print(f"BENCH index {name}: Monoscope (BF16 weights as stored) {mine:,.0f} tokens/s, torch loop (bf16 autocast) {theirs:,.0f} tokens/s, "
          f"ratio {mine / theirs:.2f}")


def bench_train(a, name, shape, root):
    d, s = shape["hidden_size"], shape["d_sae"]
    batch = 512 if a.tiny else 4096
    acts = os.path.join(root, f"acts-{d}.safetensors")
    if not os.path.exists(acts):
        g = torch.Generator().manual_seed(2)
        save_file({"activations": torch.randn(batch * 16, d, generator=g).half()}, acts)

    def ours(tokens):
        out = os.path.join(root, f"{name}-train-{tokens}")
        subprocess.run(["rm", "-rf", out], check=True)
        return timed([a.cli, "train-sae", "--activations", acts, "--arch", "topk", "--k", str(K), "--d-sae", str(s),
                      "--tokens", str(tokens), "--batch-size", str(batch), "--seed", "1", "--out", out,
                      "--device", a.device])
    total = shape["train_tokens"]
    mine = steady_rate(ours, total, total // 4) / batch

    dev = torch.device(a.device)
    x_all = torch.randn(batch * 16, d, device=dev)
    w_enc = torch.nn.Parameter(torch.randn(d, s, device=dev) / d ** 0.5)
    b_enc = torch.nn.Parameter(torch.zeros(s, device=dev))
    w_dec = torch.nn.Parameter(torch.randn(s, d, device=dev) / d ** 0.5)
    b_dec = torch.nn.Parameter(torch.zeros(d, device=dev))
    opt = torch.optim.Adam([w_enc, b_enc, w_dec, b_dec], lr=4e-4)

    def steps(n):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(n):
            x = x_all[(i % 16) * batch:(i % 16 + 1) * batch]
            pre = (x - b_dec) @ w_enc + b_enc
            v, idx = pre.topk(K, dim=1)
            f = torch.zeros_like(pre).scatter(1, idx, v.relu())
            loss = ((f @ w_dec + b_dec - x) ** 2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                w_dec.div_(w_dec.norm(dim=1, keepdim=True))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    steps(3)
    n = max(4, total // batch // 4)
    theirs = n / steps(n)
    print(f"BENCH train-sae {name} (TopK k={K}, {s} latents, batch {batch}): Monoscope {mine:.1f} steps/s, "
          f"torch loop {theirs:.1f} steps/s, ratio {mine / theirs:.2f}")


def bench_generate(a, name, shape, model_dir, sae_dir, root):
    def ours(n):
        return timed([a.cli, "generate", "--model", model_dir, "--prompt", "The quick brown fox", "--max-tokens", str(n),
                      "--temperature", "0", "--sae", sae_dir, "--clamp", "5=10", "--mode", "clamp", "--device", a.device,
                      "--weights", "stored"])
    long_n = 40 if a.tiny else 160
    mine = steady_rate(ours, long_n, long_n // 4)

    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
    dev = torch.device(a.device)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).to(dev).eval()
    from safetensors.torch import load_file
    w = {k: v.to(dev) for k, v in load_file(os.path.join(sae_dir, "sae_weights.safetensors")).items()}

    def clamp(_m, _i, o):  # feature 5 clamped to 10 with the SAE's error term kept
        h0 = o[0] if isinstance(o, tuple) else o
        h = h0.float()
        pre = (h - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
        v, i = pre.topk(K, dim=-1)
        f5 = torch.where(i == 5, v.relu(), torch.zeros_like(v)).sum(-1, keepdim=True)
        h = (h + (10.0 - f5) * w["W_dec"][5]).to(h0.dtype)
        return (h,) + tuple(o[1:]) if isinstance(o, tuple) else h
    model.model.layers[shape["layer"]].register_forward_hook(clamp)
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    ids = tok("The quick brown fox", return_tensors="pt").input_ids.to(dev)

    def gen(n):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    gen(4)
    theirs = (long_n - long_n // 4) / max(1e-9, gen(long_n) - gen(long_n // 4))
    print(f"BENCH generate {name} (clamped, greedy, BF16 weights): Monoscope {mine:.1f} tokens/s, transformers {theirs:.1f} tokens/s, "
          f"ratio {mine / theirs:.2f}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cli", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--work", required=True)
    p.add_argument("--tiny", action="store_true", help="a tiny shape (the dry run on a CPU)")
    p.add_argument("--only", default="", help="comma-separated shape names")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    shapes = TINY if a.tiny else SHAPES
    failed = 0
    for name, shape in shapes.items():
        if a.only and name not in a.only.split(","):
            continue
        try:
            model_dir = write_checkpoint(name, shape, a.device, a.work)
            sae_dir = write_sae(name, shape, a.work)
        except Exception as e:  # noqa: BLE001 - reported, then the next shape
            failed += 1
            print(f"FAIL  bench {name}: writing the checkpoint: {type(e).__name__}: {e}", flush=True)
            continue
        # One failed benchmark (a peer's API, memory) leaves the others to run; the exit status says it.
        for what, run in (("index", lambda: bench_index(a, name, shape, model_dir, sae_dir, a.work)),
                          ("generate", lambda: bench_generate(a, name, shape, model_dir, sae_dir, a.work)),
                          ("train-sae", lambda: bench_train(a, name, shape, a.work))):
            try:
                run()
            except Exception as e:  # noqa: BLE001 - reported, then the next benchmark
                failed += 1
                err = getattr(e, "stderr", None)
                detail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
                print(f"FAIL  bench {what} {name}: {type(e).__name__}: {e} {' '.join(detail)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
