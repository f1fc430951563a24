#!/usr/bin/env python3
"""Writes data/sae_releases.json: the SAELens release names whose dictionaries Monoscope reads
(SAELens's own layout, Gemma Scope 1 and 2, Llama Scope), each with its Hugging Face
repository and the path of every SAE id in it, taken from the pretrained_saes.yaml that sae-lens ships. Monoscope
compiles the table in, so `--sae RELEASE:ID` resolves through the Hugging Face cache, offline.

Run from the repository root (sae-lens in .venv):  .venv/bin/python packaging/make_sae_releases.py
"""
import json
from pathlib import Path

import sae_lens
import yaml

FORMATS = {None: "saelens", "gemma_2": "gemma-scope", "gemma_3": "gemma-scope-2", "llama_scope": "llama-scope"}  # SAELens conversion_func -> format read


def main():
    src = Path(sae_lens.__file__).parent / "pretrained_saes.yaml"
    releases = yaml.safe_load(src.read_text(encoding="utf-8"))
    out = {}
    for name, r in sorted(releases.items()):
        fmt = r.get("conversion_func")
        if fmt not in FORMATS:
            continue
        out[name] = {"repo": r["repo_id"], "format": FORMATS[fmt], "saes": {s["id"]: s["path"] for s in r["saes"]}}
    dst = Path(__file__).resolve().parent.parent / "data" / "sae_releases.json"
    dst.write_text(json.dumps({"source": f"sae-lens {sae_lens.__version__} pretrained_saes.yaml", "releases": out},
                              indent=0, sort_keys=True), encoding="utf-8")
    print(f"{len(out)} releases, {sum(len(r['saes']) for r in out.values())} SAEs -> {dst}")


if __name__ == "__main__":
    main()
