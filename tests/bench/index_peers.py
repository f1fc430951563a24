#!/usr/bin/env python3
"""Index benchmark peers on the bundled demo, measured in the same run as Monoscope:
SAEDashboard's runner on a TransformerLens HookedTransformer built from the demo's config and
weights, and a plain torch harvest loop (forward to the hook, encode, running top-k per feature);
UMAP and trustworthiness against umap-learn. Prints one JSON line per measurement."""
import argparse
import json
import os
import resource
import time

import numpy as np
import torch
from safetensors.numpy import load_file as load_np, save_file as save_np


def demo_tokens(shard, n_tokens, window):
    toks = load_np(shard)["tokens"].astype(np.int64)
    windows = n_tokens // window
    stride = (len(toks) - window) / max(1, windows - 1)
    rows = [toks[int(w * stride): int(w * stride) + window] for w in range(windows)]
    return torch.tensor(np.stack(rows))


def load_sae(sae_dir):
    from sae_lens import SAE
    return SAE.load_from_disk(sae_dir, device="cpu")


def hooked_model(model_dir):
    """A TransformerLens HookedSAETransformer with the demo's weights, unprocessed (so the
    residual stream equals the Hugging Face model's)."""
    from sae_lens import HookedSAETransformer
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    from transformers import GPT2LMHeadModel
    hf = GPT2LMHeadModel.from_pretrained(model_dir, torch_dtype=torch.float32)
    c = hf.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_ctx=c.n_positions, d_head=c.n_embd // c.n_head, n_heads=c.n_head,
        d_mlp=c.n_inner or 4 * c.n_embd, d_vocab=c.vocab_size, act_fn="gelu_new", normalization_type="LN",
        eps=c.layer_norm_epsilon, positional_embedding_type="standard", original_architecture="GPT2LMHeadModel",
        default_prepend_bos=False, device="cpu")
    model = HookedSAETransformer(cfg)
    model.load_and_process_state_dict(convert_gpt2_weights(hf, cfg), fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False, refactor_factored_attn_matrices=False)
    model.eval()
    return model


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_saedashboard(args):
    from sae_dashboard.sae_vis_data import SaeVisConfig
    from sae_dashboard.sae_vis_runner import SaeVisRunner
    torch.set_num_threads(args.threads)
    sae = load_sae(args.sae)
    model = hooked_model(args.model)
    tokens = demo_tokens(args.shard, args.tokens, args.window)
    cfg = SaeVisConfig(hook_point=sae.cfg.metadata.hook_name, features=list(range(sae.cfg.d_sae)),
                       minibatch_size_features=256, minibatch_size_tokens=64, device="cpu", verbose=False)
    t0 = time.perf_counter()
    SaeVisRunner(cfg).run(encoder=sae, model=model, tokens=tokens)
    dt = time.perf_counter() - t0
    print(json.dumps({"bench": "index", "impl": "saedashboard", "tokens": int(tokens.numel()), "seconds": dt,
                      "tokens_per_s": tokens.numel() / dt, "peak_rss_mb": peak_rss_mb()}))


def bench_torch_loop(args):
    """Forward to the hook (the model is cut after the hook's block), encode, keep the top 20
    activations of every feature."""
    from transformers import GPT2LMHeadModel
    torch.set_num_threads(args.threads)
    sae = load_sae(args.sae)
    hf = GPT2LMHeadModel.from_pretrained(args.model, torch_dtype=torch.float32).eval()
    layer = int(sae.cfg.metadata.hook_name.split(".")[1])
    hf.transformer.h = hf.transformer.h[: layer + 1]
    # The last hidden state is the final layer norm's output: without it, it is the hook's
    # residual stream (blocks.<layer>.hook_resid_post).
    hf.transformer.ln_f = torch.nn.Identity()
    tokens = demo_tokens(args.shard, args.tokens, args.window)
    W_enc, b_enc, b_dec = sae.W_enc.detach(), sae.b_enc.detach(), sae.b_dec.detach()
    k = 20
    top_v = torch.full((k, sae.cfg.d_sae), -1.0)
    top_i = torch.zeros((k, sae.cfg.d_sae), dtype=torch.long)
    count = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, tokens.shape[0], args.batch):
            ids = tokens[s: s + args.batch]
            out = hf.transformer(ids, output_hidden_states=True)
            x = out.hidden_states[layer + 1].reshape(-1, W_enc.shape[0])     # [tokens, d_in]
            f = torch.relu((x - b_dec) @ W_enc + b_enc)                      # [tokens, d_sae]
            count += (f > 0).sum(0)
            v, i = f.topk(min(k, f.shape[0]), dim=0)
            allv = torch.cat([top_v, v]); alli = torch.cat([top_i, i + s * args.window])
            top_v, idx = allv.topk(k, dim=0)
            top_i = alli.gather(0, idx)
    dt = time.perf_counter() - t0
    print(json.dumps({"bench": "index", "impl": "torch-loop", "tokens": int(tokens.numel()), "seconds": dt,
                      "tokens_per_s": tokens.numel() / dt, "peak_rss_mb": peak_rss_mb()}))


def synthetic_rows(n, d, seed):
    """Clustered unit-norm rows: 256 centres, each row a centre plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((256, d)).astype(np.float32)
    rows = centres[rng.integers(0, 256, n)] + 0.6 * rng.standard_normal((n, d)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def bench_umap(args):
    import umap
    from sklearn.manifold import trustworthiness
    if args.synthetic:
        n, d = (int(v) for v in args.synthetic.split("x"))
        data = synthetic_rows(n, d, 0)
        save_np({"rows": data}, args.rows_out)
        name = f"synthetic {n}x{d}"
    else:
        data = load_np(args.sae_weights)["W_dec"].astype(np.float32)
        name = f"demo W_dec {data.shape[0]}x{data.shape[1]}"
    t0 = time.perf_counter()
    emb = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", n_jobs=args.threads).fit_transform(data)
    dt = time.perf_counter() - t0
    tw = trustworthiness(data, emb, n_neighbors=15, metric="cosine")
    print(json.dumps({"bench": "umap", "impl": "umap-learn", "data": name, "seconds": dt, "trustworthiness": tw}))


def trust(args):
    from sklearn.manifold import trustworthiness
    data = load_np(args.data)[args.name].astype(np.float32)
    emb = load_np(args.embedding)["embedding"]
    print(json.dumps({"bench": "trustworthiness", "embedding": args.embedding,
                      "trustworthiness": trustworthiness(data, emb, n_neighbors=15, metric="cosine")}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["saedashboard", "torch-loop", "umap", "trust"])
    ap.add_argument("--model", default="data/demo/model")
    ap.add_argument("--sae", default="data/demo/sae")
    ap.add_argument("--shard", default="data/demo/corpus/sample.tokens.safetensors")
    ap.add_argument("--tokens", type=int, default=65536)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sae-weights", default="data/demo/sae/sae_weights.safetensors")
    ap.add_argument("--synthetic", default="")
    ap.add_argument("--rows-out", default="")
    ap.add_argument("--data", default="")
    ap.add_argument("--name", default="W_dec")
    ap.add_argument("--embedding", default="")
    args = ap.parse_args()
    {"saedashboard": bench_saedashboard, "torch-loop": bench_torch_loop, "umap": bench_umap, "trust": trust}[args.what](args)


if __name__ == "__main__":
    main()
