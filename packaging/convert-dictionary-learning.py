#!/usr/bin/env python3
"""Converts a dictionary_learning checkpoint (a folder with `ae.pt` and `config.json`, as its
trainers save them) into the SAELens v6 layout Monoscope reads (`cfg.json` and
`sae_weights.safetensors`). `ae.pt` is a Python pickle: Monoscope never opens one, and this
script reads it with torch.load(weights_only=True), which accepts tensors and plain containers
only, so the checkpoint cannot run code.

Mapping (dictionary_learning's definitions, x the activation):
  AutoEncoder          f = relu(encoder(x - bias))                          -> standard
  AutoEncoderTopK      the k largest of relu(encoder(x - b_dec))            -> topk, k
  BatchTopKSAE,        relu(encoder(x - b_dec)) kept above `threshold`      -> jumprelu, the
  MatryoshkaBatchTopKSAE  (their inference rule)                               threshold on every latent
  JumpReluAutoEncoder  pre = x W_enc + b_enc, kept above `threshold`        -> jumprelu, b_dec not
                                                                               subtracted first
Gated autoencoders are refused (Monoscope has no gated encoder).

Usage: python3 packaging/convert-dictionary-learning.py FOLDER --out DIR [--hook NAME]
  (needs torch and safetensors; the hook defaults to blocks.{layer}.hook_resid_post)
"""
import argparse
import json
import sys
from pathlib import Path


def fail(msg):
    sys.exit(f"convert-dictionary-learning: {msg}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--hook", help="TransformerLens hook the dictionary reads (default blocks.{layer}.hook_resid_post)")
    a = p.parse_args()
    import torch
    from safetensors.torch import save_file

    ae, cfg_path = a.folder / "ae.pt", a.folder / "config.json"
    if not ae.is_file():
        fail(f"'{ae}' does not exist")
    if not cfg_path.is_file():
        fail(f"'{cfg_path}' does not exist (dictionary_learning saves it beside ae.pt)")
    try:
        trainer = json.loads(cfg_path.read_text())["trainer"]
        cls, d_in, d_sae = trainer["dict_class"], int(trainer["activation_dim"]), int(trainer["dict_size"])
    except (KeyError, ValueError, TypeError) as e:
        fail(f"'{cfg_path}': trainer.dict_class / activation_dim / dict_size missing or malformed ({e})")
    try:
        sd = torch.load(ae, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling refusal is reported the same way
        fail(f"'{ae}' could not be read as tensors only ({type(e).__name__}: {e})")
    if not isinstance(sd, dict):
        fail(f"'{ae}' holds a {type(sd).__name__}, not a state dict")

    def get(*names):
        for n in names:
            if n in sd:
                return sd[n].float()
        fail(f"'{ae}' has none of {', '.join(names)} (keys: {', '.join(sorted(sd))})")

    W_enc = sd["W_enc"].float() if "W_enc" in sd else get("encoder.weight").t()
    W_dec = sd["W_dec"].float() if "W_dec" in sd else get("decoder.weight").t()
    b_enc = get("b_enc", "encoder.bias")
    b_dec = get("b_dec", "bias", "decoder_bias")
    tensors = {"W_enc": W_enc.contiguous(), "b_enc": b_enc, "W_dec": W_dec.contiguous(), "b_dec": b_dec}
    cfg = {"d_in": d_in, "d_sae": d_sae, "dtype": "float32", "normalize_activations": "none",
           "apply_b_dec_to_input": True}
    if cls == "AutoEncoder":
        cfg["architecture"] = "standard"
    elif cls == "AutoEncoderTopK":
        cfg["architecture"], cfg["k"] = "topk", int(trainer["k"])
    elif cls in ("BatchTopKSAE", "MatryoshkaBatchTopKSAE", "JumpReluAutoEncoder"):
        cfg["architecture"] = "jumprelu"
        t = get("threshold")
        tensors["threshold"] = t.expand(d_sae).contiguous() if t.dim() == 0 else t
        if cls == "JumpReluAutoEncoder":
            cfg["apply_b_dec_to_input"] = False
    else:
        fail(f"dict_class '{cls}' is not supported (AutoEncoder, AutoEncoderTopK, BatchTopKSAE, "
             "MatryoshkaBatchTopKSAE, JumpReluAutoEncoder)")
    for name, shape in (("W_enc", (d_in, d_sae)), ("W_dec", (d_sae, d_in)), ("b_enc", (d_sae,)), ("b_dec", (d_in,))):
        if tuple(tensors[name].shape) != shape:
            fail(f"'{ae}': {name} has shape {tuple(tensors[name].shape)}, expected {shape} from config.json")
    hook = a.hook or f"blocks.{int(trainer.get('layer', 0))}.hook_resid_post"
    cfg["metadata"] = {"hook_name": hook, "model_name": str(trainer.get("lm_name", "")).split("/")[-1],
                       "prepend_bos": True, "converted_from": f"dictionary_learning {cls}"}
    ctx = json.loads(cfg_path.read_text()).get("buffer", {}).get("ctx_len")
    if ctx:
        cfg["metadata"]["context_size"] = int(ctx)
    a.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(a.out / "sae_weights.safetensors"))
    (a.out / "cfg.json").write_text(json.dumps(cfg, indent=2))
    print(f"wrote {cfg['architecture']} SAE ({d_sae} features at {hook}) to {a.out}")


if __name__ == "__main__":
    main()
