#!/usr/bin/env python3
"""deepseek_pyref.py - an independent Python re-statement of the deepseek policy, written from
../shared/DEEPSEEK_EPLB.md and eplb's tie and no-duplicate contract (include/eplb.h), used to
produce tests/data/deepseek_pyref.json, which test_plan_deepseek compares the C planner against.

Plain Python (no numpy): float32 arithmetic is emulated by rounding every operation's double
result to float32 (innocuous for +, -, / of float32 operands); exact integer counts are rounded
int -> float32 directly, to nearest even.

Usage: /usr/bin/python3 tests/deepseek_pyref.py > tests/data/deepseek_pyref.json
"""
import json
import random
import struct
import sys

SEED = 20261130
NUM_CASES = 500
FLOAT_BITS = 24  # significand bits of a float32


def f32(v):
    """Round a Python float to float32."""
    return struct.unpack("f", struct.pack("f", v))[0]


def int_to_f32(n):
    """Round a non-negative integer to float32 directly (to nearest, ties to even)."""
    if n < (1 << FLOAT_BITS):
        return float(n)
    shift = n.bit_length() - FLOAT_BITS
    q, r = divmod(n, 1 << shift)
    half = 1 << (shift - 1)
    if r > half or (r == half and q & 1):
        q += 1
    return float(q << shift)


def replicate(x, p, cap):
    """replicate_experts: extra replicas to the first argmax of x/cnt (capped when cap)."""
    n = len(x)
    ph, cnt = list(range(n)), [1] * n
    for _ in range(p - n):
        best, best_v = None, None
        for j in range(n):
            if cap and cnt[j] >= cap:
                continue
            v = f32(x[j] / cnt[j])
            if best is None or v > best_v:
                best, best_v = j, v
        ph.append(best)
        cnt[best] += 1
    return ph, cnt


def packing(w, m, expert=None):
    """balanced_packing with stable ties; with `expert`, no two items of one expert in a pack,
    repaired by the cheapest swap when greedy is stuck."""
    n = len(w)
    cap = n // m
    if cap == 1:
        return list(range(n)), [0] * n
    load, items = [0.0] * m, [[] for _ in range(m)]
    holds = lambda d, e: any(expert[j] == e for j in items[d])
    for i in sorted(range(n), key=lambda i: (-w[i], i)):
        free = [d for d in range(m) if len(items[d]) < cap and (expert is None or not holds(d, expert[i]))]
        if free:
            d = min(free, key=lambda d: (load[d], d))
            items[d].append(i)
            load[d] = f32(load[d] + w[i])
            continue
        best = None
        for P in range(m):
            if len(items[P]) < cap or holds(P, expert[i]):
                continue
            for k, xi in enumerate(items[P]):
                for Q in range(m):
                    if len(items[Q]) >= cap or holds(Q, expert[xi]):
                        continue
                    cost = max(f32(f32(load[P] - w[xi]) + w[i]), f32(load[Q] + w[xi]))
                    if best is None or cost < best[0]:
                        best = (cost, P, k, Q)
        _, P, k, Q = best
        xi = items[P][k]
        items[Q].append(xi)
        load[Q] = f32(load[Q] + w[xi])
        items[P][k] = i
        s = 0.0
        for j in items[P]:
            s = f32(s + w[j])
        load[P] = s
    pack, rank = [0] * n, [0] * n
    for d in range(m):
        for r, i in enumerate(items[d]):
            pack[i], rank[i] = d, r
    return pack, rank


def plan_layer(w, P, K, N, G, no_dups):
    """One layer of the hierarchical algorithm (global: K = N = 1); returns phy2log."""
    E = len(w)
    if K % N != 0:
        K, N = 1, 1
    gs, gpn, En, Pn, Gn, S = E // K, K // N, E // N, P // N, G // N, P // G
    gw = []
    for k in range(K):
        s = 0.0
        for j in range(gs):
            s = f32(s + w[k * gs + j])
        gw.append(s)
    gpack, grank = packing(gw, N)
    mlog2log = [0] * E
    for k in range(K):
        for j in range(gs):
            mlog2log[(gpack[k] * gpn + grank[k]) * gs + j] = k * gs + j
    phy2log = [0] * P
    for node in range(N):
        x = [w[mlog2log[node * En + j]] for j in range(En)]
        ph, cnt = replicate(x, Pn, Gn if no_dups else 0)
        y = [f32(x[ph[q]] / cnt[ph[q]]) for q in range(Pn)]
        pack, rank = packing(y, Gn, ph if no_dups else None)
        for q in range(Pn):
            phy2log[node * Pn + pack[q] * S + rank[q]] = mlog2log[node * En + ph[q]]
    return phy2log


def random_case(rs, kind):
    """A random shape valid in both modes and loads of the given kind."""
    L = rs.randint(1, 3)
    if rs.randint(0, 1):
        N = rs.randint(1, 4)
        K = N * rs.randint(1, 3)
        E = K * rs.randint(1, 5)
        nodes = N
    else:
        N = rs.randint(2, 4)
        K = N * rs.randint(0, 2) + rs.randint(1, N - 1)
        E = rs.randint(1, 30)
        nodes = 1
    G = N * rs.randint(1, 4)
    en, gn = E // nodes, G // nodes
    smin = max(1, -(-en // gn))
    S = rs.randint(smin, max(smin, min(en, smin + 3)))
    R = G * S
    if kind == 0:
        gen = lambda: rs.randint(0, 4)  # many exact ties
    elif kind == 1:
        gen = lambda: rs.randint(0, 10 ** 6)
    elif kind == 2:
        gen = lambda: rs.randint(0, 1 << 62)  # int64 -> float32 rounding
    else:
        gen = lambda: rs.choice([0, 0, 0, 1 << 24, (1 << 24) + 1, 3])
    loads = [[gen() for _ in range(E)] for _ in range(L)]
    return {"L": L, "E": E, "R": R, "K": K, "N": N, "G": G, "loads": loads}


def main():
    rs = random.Random(SEED)
    cases = []
    for i in range(NUM_CASES):
        c = random_case(rs, i % 4)
        for mode, no_dups in (("phy2log_exact", False), ("phy2log_nodup", True)):
            c[mode] = [plan_layer([int_to_f32(v) for v in row], c["R"], c["K"], c["N"], c["G"], no_dups)
                       for row in c["loads"]]
        cases.append(c)
    json.dump({"seed": SEED, "cases": cases}, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
