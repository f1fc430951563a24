#!/usr/bin/env python3
"""Blind rating sheets for feature databases.

Picks COUNT random firing features of each database (the same seed for each), or the features
--features names (ids, or the features of an earlier key.json, shown again), reads every one
with `monoscope-cli feature DB ID --json`, and writes one plain-text sheet per feature: the
automatic explanation, the top examples and a sample of each activation interval with its share
of the feature's activations. The sheets of all databases are shuffled together and numbered;
which database and feature a sheet shows is written only to key.json, so a reader rating the
sheets cannot tell the dictionaries apart. RUBRIC.md beside them is what the reader is given.

  python3 tests/quality/rating_sheets.py --db A=one.db --db B=two.db --out build/rating
"""
import argparse
import json
import os
import random
import re
import sqlite3
import subprocess
import sys

RUBRIC = """# Rating feature sheets

Each sheet shows one feature of a sparse autoencoder: its automatic explanation, its strongest
examples ("top"), and samples from intervals of its activation range, each with the share of the
feature's activations that fall in it. In an example the activating token is marked [[token]]
with its activation; other tokens with a non-zero activation carry it in braces.

For every sheet, answer on one line: `sheet-NNN consistent=yes|borderline|no upper=yes|no
explained=yes|no artifact=yes|no concept="..." note="..."`

- consistent: one concept (a word family, a syntactic role, a format, a topic, a language...)
  explains the top examples and the interval samples, with each interval weighted by its share
  of the activations. `borderline` when it explains most of the weight but not all.
- upper: one concept explains the top examples and the upper half of the intervals.
- explained: the automatic explanation names the concept of the strongest activations.
- artifact: the feature fires on a position (a window's start, a document boundary) rather
  than on content.
"""


def example_text(ex, width=80):
    toks, acts, c = ex["tokens"], ex["acts"], ex["center"]
    parts = []
    for i, (t, a) in enumerate(zip(toks, acts)):
        t = t.replace("\n", "\\n")
        if i == c:
            parts.append(f"[[{t}]]({a:.2f})")
        elif a > 0:
            parts.append(f"{t}{{{a:.2f}}}")
        else:
            parts.append(t)
    text = "".join(parts)
    domain = ex.get("domain") or ""
    return f"  {text}" + (f"    <{domain}>" if domain else "")


def sheet(j, top, per_interval):
    # The indexer's warnings ("Rare (N activations): ", "Window start (...): ") are left out, so
    # that databases built before and after they existed look alike to a reader.
    explanation = re.sub(r"^(?:(?:Rare|Window start) \([^)]*\): )+", "", j.get("explanation", ""))
    lines = [f"explanation: {explanation}",
             f"activations in the sample: {j['count']}, max {j['max_act']:.3f}", "", "top examples:"]
    lines += [example_text(e) for e in j["top_examples"][:top]]
    total = sum(iv["count"] for iv in j["intervals"]) or 1
    for iv in reversed(j["intervals"]):
        if iv["count"] == 0:
            continue
        lines.append("")
        lines.append(f"interval {iv['lo']:.3f}-{iv['hi']:.3f}: {iv['count']} activations ({100.0 * iv['count'] / total:.0f}%)")
        lines += [example_text(e) for e in iv["examples"][:per_interval]]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", action="append", required=True, help="LETTER=FILE.db (repeat)")
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--per-interval", type=int, default=5)
    ap.add_argument("--min-count", type=int, default=1, help="only features with at least this many activations")
    ap.add_argument("--common", action="store_true",
                    help="the same features from every database: a sample of those that fire in all of them")
    ap.add_argument("--features", help="these features (comma-separated ids, or a key.json whose features to show again) "
                    "instead of a random sample of --count; each must fire in every database")
    ap.add_argument("--cli", default="build/app/monoscope-cli")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.count < 1:
        sys.exit("--count must be at least 1")
    os.makedirs(a.out, exist_ok=True)
    firing = []
    for spec in a.db:
        letter, sep, path = spec.partition("=")
        if not sep or not os.path.isfile(path):
            sys.exit(f"--db {spec}: expected LETTER=FILE.db naming an existing database")
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        ids = [r[0] for r in con.execute("SELECT id FROM features WHERE count >= ? ORDER BY id", (a.min_count,))]
        con.close()
        firing.append((letter, path, ids))
    own_ids = list(firing)
    if a.common:
        shared = set(firing[0][2]).intersection(*(set(ids) for _, _, ids in firing[1:]))
        firing = [(letter, path, sorted(shared)) for letter, path, _ in firing]
    chosen = None
    if a.features is not None:
        if os.path.isfile(a.features):
            try:
                with open(a.features, encoding="utf-8") as f:
                    chosen = sorted({int(v["feature"]) for v in json.load(f).values()})
            except (ValueError, KeyError, TypeError, AttributeError):
                sys.exit(f"--features {a.features}: not a key.json (expected {{sheet: {{\"feature\": ID}}}})")
        elif a.features.endswith(".json"):
            sys.exit(f"--features {a.features}: no such file")
        else:
            try:
                chosen = sorted({int(x) for x in a.features.split(",") if x.strip()})
            except ValueError:
                sys.exit(f"--features {a.features}: expected comma-separated feature ids or a key.json")
        if not chosen:
            sys.exit("--features names no feature")
        for _, path, ids in own_ids:
            missing = sorted(set(chosen) - set(ids))
            if missing:
                sys.exit(f"{path}: {len(missing)} of the features fire fewer than {a.min_count} times, e.g. {missing[:10]}")
    items = []
    for letter, path, ids in firing:
        if chosen is not None:
            items += [(letter, path, fid) for fid in chosen]
            continue
        if len(ids) < a.count:
            sys.exit(f"{path}: only {len(ids)} features fire at least {a.min_count} times" + (" in every database" if a.common else ""))
        for fid in sorted(random.Random(a.seed).sample(ids, a.count)):
            items.append((letter, path, fid))
    random.Random(a.seed + 1).shuffle(items)
    key = {}
    for n, (letter, path, fid) in enumerate(items, 1):
        out = subprocess.run([a.cli, "feature", path, str(fid), "--json"], check=True, capture_output=True, text=True).stdout
        name = f"sheet-{n:03d}"
        with open(os.path.join(a.out, name + ".txt"), "w", encoding="utf-8") as f:
            f.write(sheet(json.loads(out), a.top, a.per_interval))
        key[name] = {"db": letter, "path": path, "feature": fid}
    with open(os.path.join(a.out, "RUBRIC.md"), "w", encoding="utf-8") as f:
        f.write(RUBRIC)
    with open(os.path.join(a.out, "key.json"), "w", encoding="utf-8") as f:
        json.dump(key, f, indent=1)
    print(f"{len(items)} sheets in {a.out}; the key is {os.path.join(a.out, 'key.json')}")


if __name__ == "__main__":
    main()
