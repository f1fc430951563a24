"""Random checkpoints of real models' full sizes, for tests/bench/full_size.sh.

Writes Hugging Face folders (config.json + model.safetensors in BF16, as the released weights are
stored) with the shapes of Gemma-2-2B and Llama-3.1-8B, random weights of magnitude 2^-8..2^-5 (a spread
like N(0, 0.02)'s; norm weights at their neutral value), plus a random TopK SAE (SAELens layout) at the middle of each
model's residual stream. Only numpy is needed; the safetensors file is streamed tensor by tensor,
so writing the 16 GB Llama checkpoint needs little memory.

With --tokenizer FILE (a byte-level tokenizer.json, e.g. SmolLM2's), each folder also gets that
tokenizer, its vocabulary filled up to the model's with added tokens <unused_N>, so every id the
model can produce has a token.

Usage: python tests/bench/make_full_size.py OUT [--tokenizer FILE] [gemma-2-2b] [llama-3.1-8b]
"""
import json
import os
import struct
import sys

import numpy as np

SHAPES = {
    "gemma-2-2b": {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 2304,
        "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
        "num_key_value_heads": 4, "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "attn_logit_softcapping": 50.0,
        "final_logit_softcapping": 30.0, "query_pre_attn_scalar": 256, "sliding_window": 4096,
        "hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu_pytorch_tanh",
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "bos_token_id": 2, "eos_token_id": 1,
    },
    "llama-3.1-8b": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "hidden_act": "silu", "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
        "torch_dtype": "bfloat16", "bos_token_id": 128000, "eos_token_id": 128001,
    },
}


def tensors(c):
    """(name, shape, kind) of every tensor; kind: 'matrix', 'norm' (ones) or 'norm+1' (zeros)."""
    d, m, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    dh = c.get("head_dim", d // c["num_attention_heads"])
    q, kv = c["num_attention_heads"] * dh, c["num_key_value_heads"] * dh
    gemma = c["model_type"] == "gemma2"
    norm = "norm+1" if gemma else "norm"
    out = [("model.embed_tokens.weight", (c["vocab_size"], d), "matrix")]
    for layer in range(layers):
        p = f"model.layers.{layer}."
        out += [(p + "input_layernorm.weight", (d,), norm),
                (p + "self_attn.q_proj.weight", (q, d), "matrix"),
                (p + "self_attn.k_proj.weight", (kv, d), "matrix"),
                (p + "self_attn.v_proj.weight", (kv, d), "matrix"),
                (p + "self_attn.o_proj.weight", (d, q), "matrix"),
                (p + "post_attention_layernorm.weight", (d,), norm)]
        if gemma:
            out += [(p + "pre_feedforward_layernorm.weight", (d,), norm),
                    (p + "post_feedforward_layernorm.weight", (d,), norm)]
        out += [(p + "mlp.gate_proj.weight", (m, d), "matrix"),
                (p + "mlp.up_proj.weight", (m, d), "matrix"),
                (p + "mlp.down_proj.weight", (d, m), "matrix")]
    out.append(("model.norm.weight", (d,), norm))
    if not c["tie_word_embeddings"]:
        out.append(("lm_head.weight", (c["vocab_size"], d), "matrix"))
    return out


def bf16(x):
    """float32 array -> BF16 bit patterns (round to nearest even)."""
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, entries, fill, dtype="BF16", itemsize=2):
    header, offset = {}, 0
    for name, shape, _ in entries:
        n = int(np.prod(shape)) * itemsize
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for entry in entries:
            fill(f, entry)
    os.replace(path + ".part", path)


def write_model(out, name, seed):
    c = SHAPES[name]
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        return folder
    rng = np.random.default_rng(seed)
    entries = tensors(c)

    def fill(f, entry):
        _, shape, kind = entry
        n = int(np.prod(shape))
        if kind != "matrix":
            f.write(bf16(np.full(n, 1.0 if kind == "norm" else 0.0, np.float32)).tobytes())
            return
        # Random BF16 bit patterns: random sign and mantissa, exponent for magnitudes 2^-8..2^-5
        # (a spread like N(0, 0.02)'s), made from random integers, much faster than normals.
        chunk = 1 << 26
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            bits = rng.integers(0, 1 << 16, size=m, dtype=np.uint16)
            exponent = (119 + (bits >> 8) % 4).astype(np.uint16)
            f.write(((bits & 0x807F) | (exponent << 7)).astype(np.uint16).tobytes())

    write_safetensors(os.path.join(folder, "model.safetensors"), entries, fill)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    total = sum(int(np.prod(s)) for _, s, _ in entries)
    print(f"{name}: {total / 1e9:.2f}B parameters, {total * 2 / 2**30:.1f} GiB in BF16", file=sys.stderr)
    return folder


def write_sae(folder, c, d_sae=16384, k=64, seed=7):
    sae = os.path.join(folder, "sae")
    if os.path.exists(os.path.join(sae, "sae_weights.safetensors")):
        return
    os.makedirs(sae, exist_ok=True)
    d = c["hidden_size"]
    rng = np.random.default_rng(seed)
    w_dec = rng.standard_normal((d_sae, d), dtype=np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    arrays = {"W_enc": np.ascontiguousarray(w_dec.T), "b_enc": np.zeros(d_sae, np.float32),
              "W_dec": w_dec, "b_dec": np.zeros(d, np.float32)}
    entries = [(n, a.shape, None) for n, a in arrays.items()]
    write_safetensors(os.path.join(sae, "sae_weights.safetensors"), entries,
                      lambda f, e: f.write(arrays[e[0]].tobytes()), dtype="F32", itemsize=4)
    layer = c["num_hidden_layers"] // 2
    cfg = {"architecture": "topk", "d_in": d, "d_sae": d_sae, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
           "metadata": {"hook_name": f"blocks.{layer}.hook_resid_post", "model_name": "random",
                        "context_size": 128, "prepend_bos": False},
           "k": k}
    with open(os.path.join(sae, "cfg.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def write_tokenizer(folder, c, source):
    t = json.load(open(source, encoding="utf-8"))
    used = {a["id"] for a in t.get("added_tokens", [])} | set(t["model"]["vocab"].values())
    for i in range(c["vocab_size"]):
        if i not in used:
            t.setdefault("added_tokens", []).append({"id": i, "content": f"<unused_{i}>", "single_word": False,
                                                      "lstrip": False, "rstrip": False, "normalized": False,
                                                      "special": True})
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(t, f)


def main():
    args = sys.argv[1:]
    tokenizer = None
    if "--tokenizer" in args:
        i = args.index("--tokenizer")
        tokenizer = args[i + 1]
        del args[i:i + 2]
    out, names = args[0], args[1:] or list(SHAPES)
    for i, name in enumerate(names):
        folder = write_model(out, name, seed=i + 1)
        write_sae(folder, SHAPES[name])
        if tokenizer:
            write_tokenizer(folder, SHAPES[name], tokenizer)
        print(folder)


if __name__ == "__main__":
    main()
