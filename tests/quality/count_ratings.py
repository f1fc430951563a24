#!/usr/bin/env python3
"""Counts a reader's ratings (lines `sheet-NNN consistent=... upper=... explained=... artifact=...`)
per dictionary, using the key rating_sheets.py wrote.

  python3 tests/quality/count_ratings.py KEY.json RATINGS.txt [RATINGS.txt ...]
"""
import collections
import json
import re
import sys

# artifact= is optional: a line without it counts as artifact "not given" (one reader of round 6 left it out)
LINE = re.compile(r"(sheet-\d+)\s+consistent=(\w+)\s+upper=(\w+)\s+explained=(\w+)(?:\s+artifact=(\w+))?")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    key = json.load(open(sys.argv[1], encoding="utf-8"))
    for path in sys.argv[2:]:
        counts = collections.defaultdict(collections.Counter)
        skipped = 0
        for line in open(path, encoding="utf-8"):
            m = LINE.match(line.strip())
            if not m or m.group(1) not in key:
                skipped += bool(line.strip())
                continue
            entry = key[m.group(1)]
            name = entry.get("dictionary", entry["db"])
            c = counts[name]
            c["consistent " + m.group(2)] += 1
            c["upper " + m.group(3)] += 1
            c["explained " + m.group(4)] += 1
            c["artifact " + (m.group(5) or "not given")] += 1
        if skipped:
            print(f"{path}: {skipped} lines not in the rating format or not in the key, left out", file=sys.stderr)
        for name in sorted(counts):
            c = counts[name]
            print(f"{path}: {name}: consistent {c['consistent yes']} yes / {c['consistent borderline']} borderline / "
                  f"{c['consistent no']} no; upper {c['upper yes']}; explained {c['explained yes']}; artifact {c['artifact yes']}"
                  + (f" (not given on {c['artifact not given']})" if c["artifact not given"] else ""))


if __name__ == "__main__":
    main()
