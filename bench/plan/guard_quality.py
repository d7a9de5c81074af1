#!/usr/bin/env python3
"""guard_quality.py - compares two bench_quality outputs, line by line.

Usage: guard_quality.py BEFORE AFTER [--tol 0.0005] [--slower 0.10]

Lines are paired by their text with every number blanked out (a line whose text changed is
reported as unpaired). In a pair, each number is read by what surrounds it:
  - a time (followed by "ms/plan" or "ms)"): after may be at most --slower above before;
  - a ratio against deepseek ("(x1.23 ...") or a move count: shown, not judged;
  - any other number with four decimals is a max/LB figure, lower is better: after may be at
    most --tol above before;
  - an integer (layers within 1%, cells met): higher is better, shown when it changed.
Prints every figure that changed and a verdict; exits 1 when a figure got worse beyond its
tolerance or a line was unpaired, 0 otherwise.
"""
import re
import sys

NUM = re.compile(r"-?\d+(?:\.\d+)?")


def skeleton(line):
    return re.sub(r"\s+", " ", NUM.sub("#", line.strip()))


def tokens(line):
    """Yields (value, text, kind) for every number of the line."""
    for m in NUM.finditer(line):
        text = m.group(0)
        before = line[: m.start()]
        after = line[m.end():]
        if re.match(r"\s*ms(/plan|\))", after):
            kind = "time"
        elif before.endswith("(x") or re.search(r"moves(/plan)?\s+$", before):
            kind = "info"
        elif re.fullmatch(r"-?\d+\.\d{4}", text):
            kind = "quality"
        elif "." not in text and re.search(r"(in|met in|layers:|best:)\s+$", before):
            kind = "count"
        else:
            kind = "info"
        yield float(text), text, kind


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    opts = dict(zip(argv[1::1], argv[2::1]))
    tol = float(opts.get("--tol", 0.0005))
    slower = float(opts.get("--slower", 0.10))
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0]) as f:
        before = [l for l in f if not l.startswith("#") and l.strip()]
    with open(args[1]) as f:
        after = [l for l in f if not l.startswith("#") and l.strip()]
    index = {}
    for i, l in enumerate(after):
        index.setdefault(skeleton(l), []).append(i)
    worse = better = slow = unpaired = 0
    for l in before:
        cand = index.get(skeleton(l))
        if not cand:
            print("UNPAIRED before: " + l.rstrip())
            unpaired += 1
            continue
        a = after[cand.pop(0)]
        notes = []
        for (vb, tb, kind), (va, ta, _) in zip(tokens(l), tokens(a)):
            if tb == ta:
                continue
            if kind == "quality":
                if va > vb + tol:
                    notes.append(f"WORSE {tb} -> {ta}")
                    worse += 1
                elif va < vb:
                    notes.append(f"better {tb} -> {ta}")
                    better += 1
                else:
                    notes.append(f"same within tol {tb} -> {ta}")
            elif kind == "time":
                if vb > 0 and va > vb * (1 + slower):
                    notes.append(f"SLOWER {tb} -> {ta} ms (x{va / vb:.2f})")
                    slow += 1
                elif vb > 0:
                    notes.append(f"time {tb} -> {ta} ms (x{va / vb:.2f})")
            elif kind == "count":
                notes.append(f"count {tb} -> {ta}")
        if notes:
            print(l.rstrip()[:60].strip() + ": " + "; ".join(notes))
    print(f"guard: {worse} max/LB figures worse than before + {tol}, {better} better, "
          f"{slow} times more than {slower:.0%} slower, {unpaired} lines unpaired")
    return 1 if worse or slow or unpaired else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
