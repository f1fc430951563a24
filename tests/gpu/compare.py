#!/usr/bin/env python3
"""Compares what Monoscope computed on two devices (tests/gpu/run.sh): tensors, generated ids,
feature-database statistics and the UMAP map. Prints one line per check; exit 1 on a failure.
`bf16-copy` writes a model folder's float weights in BF16 (for the BF16 products' check).
Needs numpy and safetensors (both on the GPU machine; run.sh installs them into .venv here)."""
import argparse
import json
import os
import shutil
import sqlite3
import sys

import numpy as np
from safetensors.numpy import load_file


def tensors(a, b, atol, rtol, differ=False):
    ta, tb = load_file(a), load_file(b)
    if set(ta) != set(tb):
        return False, f"different tensors: {sorted(set(ta) ^ set(tb))}"
    worst, where = 0.0, ""
    for k in sorted(ta):
        x, y = ta[k].astype(np.float64), tb[k].astype(np.float64)
        if x.shape != y.shape:
            return False, f"{k}: shapes {x.shape} vs {y.shape}"
        scale = max(1.0, float(np.abs(x).max()) if x.size else 1.0)
        d = float(np.abs(x - y).max()) / scale if x.size else 0.0
        if d > worst:
            worst, where = d, k
    ok = worst <= atol + rtol
    if differ and worst == 0.0:  # e.g. BF16 products that should have rounded
        return False, f"{len(ta)} tensors identical: the two paths did not differ as they must"
    return ok, f"{len(ta)} tensors, worst max|a-b|/max(1,max|a|) {worst:.2e} ({where or '-'}), limit {atol + rtol:.0e}"


def generated(a, b):
    ja, jb = json.load(open(a)), json.load(open(b))
    msgs, ok = [], True
    for run in ("default", "steered"):
        if run not in ja:
            continue
        ia, ib = ja[run]["ids"], jb[run]["ids"]
        same = ia == ib
        ok &= same
        first = next((i for i, (p, q) in enumerate(zip(ia, ib)) if p != q), min(len(ia), len(ib)))
        msgs.append(f"{run}: {len(ia)} tokens " + ("identical" if same else f"differ from token {first}"))
    return ok, "; ".join(msgs)


def database(a, b, max_rtol):
    def rows(path):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        return {r[0]: r[1:] for r in con.execute("SELECT id, count, max_act FROM features")}
    ra, rb = rows(a), rows(b)
    if set(ra) != set(rb):
        return False, "different feature ids"
    count_diff = [i for i in ra if ra[i][0] != rb[i][0]]
    # A count may differ only by activations that sit within float rounding of zero (or of a
    # JumpReLU threshold): allow one per 10,000 activations of a feature, at least one.
    bad_counts = [i for i in count_diff if abs(ra[i][0] - rb[i][0]) > max(1, ra[i][0] // 10000)]
    rel = [abs(ra[i][1] - rb[i][1]) / abs(ra[i][1]) for i in ra if ra[i][1] and ra[i][1] > 0]
    worst = max(rel) if rel else 0.0
    ok = not bad_counts and worst <= max_rtol
    return ok, (f"{len(ra)} features: {len(count_diff)} counts differ ({len(bad_counts)} beyond rounding), "
                f"max activation worst relative difference {worst:.2e} (limit {max_rtol:.0e})")


def trustworthiness(high, low, k=5):
    """sklearn's definition, cosine distance in the high space, Euclidean in the map."""
    n = high.shape[0]
    h = high / np.maximum(np.linalg.norm(high, axis=1, keepdims=True), 1e-12)
    dh = 1.0 - h @ h.T
    np.fill_diagonal(dh, np.inf)
    order = np.argsort(dh, axis=1, kind="stable")
    rank = np.empty_like(order)
    rank[np.arange(n)[:, None], order] = np.arange(n)[None, :] + 1
    dl = ((low[:, None, :] - low[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dl, np.inf)
    nn_low = np.argsort(dl, axis=1, kind="stable")[:, :k]
    r = rank[np.arange(n)[:, None], nn_low] - k
    t = np.clip(r, 0, None).sum()
    return 1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * t


def umap(a, b, sae, limit):
    w = load_file(sae + "/sae_weights.safetensors")["W_dec"].astype(np.float64)
    out = []
    for path in (a, b):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        pts = con.execute("SELECT id, umap_x, umap_y FROM features WHERE umap_x IS NOT NULL ORDER BY id").fetchall()
        if len(pts) < 20:
            return False, f"{path}: {len(pts)} mapped features, too few to compare"
        ids = np.array([p[0] for p in pts])
        out.append(trustworthiness(w[ids], np.array([[p[1], p[2]] for p in pts], dtype=np.float64)))
    ok = abs(out[0] - out[1]) <= limit
    return ok, f"trustworthiness (k=5) {out[0]:.4f} vs {out[1]:.4f}, difference {abs(out[0] - out[1]):.4f} (limit {limit})"


def bf16_copy(src, dst):
    """The folder `src` again in `dst` with every float tensor rounded to BF16 (nearest, ties to
    even); other files copied."""
    os.makedirs(dst, exist_ok=True)
    for f in sorted(os.listdir(src)):
        if not f.endswith(".safetensors"):
            shutil.copy(os.path.join(src, f), dst)
            continue
        header, blobs, at = {}, [], 0
        for name, t in sorted(load_file(os.path.join(src, f)).items()):
            if t.dtype.kind == "f":
                f32 = np.ascontiguousarray(t, dtype=np.float32)
                u = f32.view(np.uint32).astype(np.uint64)
                rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
                # A NaN stays a (quiet) NaN instead of rounding into infinity or zero.
                raw = np.where(np.isnan(f32), (u >> 16) | 0x40, rounded).astype(np.uint16).tobytes()
                dtype = "BF16"
            else:
                raw, dtype = np.ascontiguousarray(t).tobytes(), {"i": "I", "u": "U"}[t.dtype.kind] + str(8 * t.dtype.itemsize)
            header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
            blobs.append(raw)
            at += len(raw)
        header["__metadata__"] = {"format": "pt"}
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(dst, f), "wb") as out:
            out.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))
    return True, f"{dst}: float weights in BF16"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["tensors", "generate", "db", "umap", "bf16-copy"])
    p.add_argument("name")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--rtol", type=float, default=0.0)
    p.add_argument("--sae")
    p.add_argument("--limit", type=float, default=0.01)
    p.add_argument("--report", action="store_true", help="print the finding as INFO; never fail")
    p.add_argument("--differ", action="store_true", help="tensors: identical ones fail (a path that must round)")
    o = p.parse_args()
    if o.kind == "tensors":
        ok, msg = tensors(o.a, o.b, o.atol, o.rtol, o.differ)
    elif o.kind == "generate":
        ok, msg = generated(o.a, o.b)
    elif o.kind == "bf16-copy":
        ok, msg = bf16_copy(o.a, o.b)
    elif o.kind == "db":
        ok, msg = database(o.a, o.b, 1e-4)
    else:
        ok, msg = umap(o.a, o.b, o.sae, o.limit)
    print(f"{'INFO' if o.report else 'PASS' if ok else 'FAIL'}  {o.name}: {msg}")
    sys.exit(0 if ok or o.report else 1)


if __name__ == "__main__":
    main()
