#!/usr/bin/env python3
"""make_series.py - writes series.json: a synthetic time series of token counts whose hot
experts drift, for `eplb replay` (a JSON list of windows in the seed format).

Each of 4 layers has 64 experts with a fixed lognormal base popularity (sigma 0.5) and two hot
spots (x6 and x4 at their centre, Gaussian over about 3 experts) that travel around the ring
of experts at 0.7 and -0.45 experts per window, from a different start per layer. A window
routes 4096 tokens top-8 (32768 counts per layer), with Poisson-like noise. Deterministic:
the same file on every run (Python's random with a fixed seed).
    usage: python3 make_series.py [OUT.json] [--windows T]
"""
import json
import math
import random
import sys

LAYERS, EXPERTS, TOKENS, TOP_K = 4, 64, 4096, 8
SPOTS = ((6.0, 0.7), (4.0, -0.45))  # (peak factor, experts travelled per window)
WIDTH = 3.0


def ring_distance(a, b):
    d = abs(a - b) % EXPERTS
    return min(d, EXPERTS - d)


def main():
    out, windows = "series.json", 32
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--windows":
            windows = int(args.pop(0))
        else:
            out = a
    rng = random.Random(15)
    base = [[math.exp(0.5 * rng.gauss(0, 1)) for _ in range(EXPERTS)] for _ in range(LAYERS)]
    start = [[rng.uniform(0, EXPERTS) for _ in SPOTS] for _ in range(LAYERS)]
    series = []
    for t in range(windows):
        window = {}
        for layer in range(LAYERS):
            w = []
            for e in range(EXPERTS):
                f = 1.0
                for (peak, speed), s0 in zip(SPOTS, start[layer]):
                    d = ring_distance(e, s0 + speed * t)
                    f += (peak - 1.0) * math.exp(-d * d / (2 * WIDTH * WIDTH))
                w.append(base[layer][e] * f)
            total = sum(w)
            counts = {}
            for e in range(EXPERTS):
                mu = TOKENS * TOP_K * w[e] / total
                counts[str(e)] = max(0, int(round(mu + math.sqrt(mu) * rng.gauss(0, 1))))
            window[str(layer)] = counts
        series.append(window)
    with open(out, "w") as f:
        json.dump(series, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
