#!/usr/bin/env python3
"""Writes one random checkpoint per model family Monoscope reads, each about 130M parameters
(d_model 1024, 8 blocks, 16 query heads over 4 key/value heads where the family groups them,
vocabulary 32,000), in float32 with `transformers`, for the per-family forward benchmark
(tests/bench/families.sh). The family-specific settings are those of the test fixtures
(tests/fixtures/make_family_fixtures.py), scaled: sliding windows of 128, Llama 3's RoPE scaling
from an original context of 1,024.

Usage: .venv/bin/python tests/bench/make_family_bench.py OUT [FAMILY...]   (existing folders are kept)
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from make_family_fixtures import families  # noqa: E402

SIZE = dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
            num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048)


def configs():
    import transformers as t
    out = {"gpt2": (t.GPT2LMHeadModel, t.GPT2Config(n_embd=1024, n_layer=8, n_head=16, n_inner=4096,
                                                    vocab_size=32000, n_positions=2048, bos_token_id=0, eos_token_id=0))}
    for name, (cls, cfg) in families().items():
        # A fresh config from the fixture's settings and the bench's sizes, so that what a config
        # derives from its sizes (Gemma 3's per-layer attention types) is derived again.
        d = {k: v for k, v in cfg.to_dict().items() if k not in ("layer_types", "transformers_version", "architectures")}
        d.update({k: v for k, v in SIZE.items() if k in d})
        if name == "gpt_neox":
            d["intermediate_size"] = 4096
            d.pop("num_key_value_heads", None)
        if d.get("head_dim"):
            d["head_dim"] = 64
        if d.get("sliding_window"):
            d["sliding_window"] = 128
        for key in ("rope_scaling", "rope_parameters"):
            if isinstance(d.get(key), dict) and "original_max_position_embeddings" in d[key]:
                d[key] = dict(d[key], original_max_position_embeddings=1024)
        if "query_pre_attn_scalar" in d:
            d["query_pre_attn_scalar"] = 64
        out[name] = (cls, type(cfg)(**d))
    return out


def main():
    out = Path(sys.argv[1])
    wanted = sys.argv[2:]
    torch.manual_seed(0)
    for name, (cls, cfg) in configs().items():
        if wanted and name not in wanted:
            continue
        folder = out / name
        if (folder / "config.json").exists():
            continue
        model = cls(cfg).eval()
        model.save_pretrained(folder, safe_serialization=True)
        print(name, sum(p.numel() for p in model.parameters()), "parameters ->", folder)


if __name__ == "__main__":
    main()
