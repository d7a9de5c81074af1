#!/usr/bin/python3
"""pair_optimum.py - how far `balanced` is from the true optimum with two slots per device.

With two slots per device the busiest device of a plan is at least the optimum of this problem:
choose a replica count c_e >= 1 for every expert (sum 2G), each replica carrying w_e / c_e, and
pair the 2G replicas into G devices so that the largest pair is as small as possible. Duplicates
(two replicas of one expert on one device) are allowed here, so the optimum is a lower bound for
every plan eplb makes, and a witness below a goal shows that the goal is reachable.

For a target T the replicas pair with every pair <= T exactly when, for every replica load v
above T/2, the replicas of load >= v are no more than those of load <= T - v (Hall's condition:
a replica above T/2 needs its own partner of at most T - v; the rest are <= T/2 and pair among
themselves). That is a 0/1 program over "expert e has count c", solved by CBC (Debian's
coinor-cbc); a bisection on T brackets the optimum. `--self-check` first compares the bisection
with an exhaustive search over every count vector on small random pools.

usage: pair_optimum.py [--goal 1.02] [--limit SEC] [--self-check] LOADS.json REPORT.json
  LOADS.json   token counts {"<layer>": {"<expert>": count}} (the input of `eplb plan`)
  REPORT.json  `eplb report --json` of a balanced plan of LOADS with R = 2G (gives G and the
               plan's max/LB per layer)
"""
import argparse
import heapq
import json
import math
import os
import random
import subprocess
import sys
import tempfile

EPS = 1e-9


def lower_bound(w, slots, devices):
    """The issue's LB: max(total / G, min over counts of max w_e / d_e), d_e <= G, sum <= R."""
    d = [1] * len(w)
    heap = [(-x, e) for e, x in enumerate(w)]
    heapq.heapify(heap)
    for _ in range(slots - len(w)):
        while heap:
            _, e = heapq.heappop(heap)
            if d[e] < devices:
                break
        else:
            break
        d[e] += 1
        heapq.heappush(heap, (-w[e] / d[e], e))
    return max(sum(w) / devices, max(x / d[e] for e, x in enumerate(w)))


def largest_pair(w, counts):
    """The largest pair of the best pairing of these counts: k-th largest with k-th smallest."""
    r = sorted(w[e] / c for e, c in enumerate(counts) for _ in range(c))
    return max(r[i] + r[len(r) - 1 - i] for i in range(len(r) // 2))


def witness_duplicates(w, counts):
    """How many pairs of that pairing hold two replicas of one expert."""
    r = sorted((w[e] / c, e) for e, c in enumerate(counts) for _ in range(c))
    return sum(r[i][1] == r[len(r) - 1 - i][1] for i in range(len(r) // 2))


def write_program(w, devices, target, path):
    """Writes the 0/1 program for target T in CPLEX LP format; returns False when some expert
    cannot fit at all (then T is out of reach without a solver)."""
    slots = 2 * devices
    if max(w) / devices > target:  # even one replica per device is too heavy
        return False
    choices = []  # (expert, count, replica load)
    for e, x in enumerate(w):
        c = max(1, math.ceil(x / target - EPS))
        while c <= devices:
            choices.append((e, c, x / c))
            if x / c <= target / 2:  # small already: larger counts follow below if they matter
                break
            c += 1
    bigs = sorted({l for _, _, l in choices if l > target / 2 + EPS})
    if sum(min(c for f, c, _ in choices if f == e) for e in range(len(w))) > slots:
        return False
    saturated = {}  # expert -> its count whose replicas fit under every threshold
    if bigs:
        # Smaller replicas matter until they are <= T - (largest big load): from there on more
        # replicas only add partners under every threshold, so they are one integer y_e of
        # extra replicas on top of that count (fewer variables for the solver).
        for e, x in enumerate(w):
            c = max(k for f, k, _ in choices if f == e)
            while x / c > target - bigs[-1] + EPS and c < devices:
                c += 1
                choices.append((e, c, x / c))
            if x / c <= target - bigs[-1] + EPS and c < devices:
                saturated[e] = c
    name = {ch: "x_%d_%d" % ch[:2] for ch in choices}
    extra = ["y_%d" % e for e in saturated]
    rows = ["Minimize", " obj: 0 %s" % name[choices[0]], "Subject To"]
    for e in range(len(w)):
        rows.append(" one_%d: %s = 1" % (e, " + ".join(name[ch] for ch in choices if ch[0] == e)))
    rows.append(" slots: %s = %d" % (" + ".join(["%d %s" % (ch[1], name[ch]) for ch in choices]
                                                + extra), slots))
    for e, c in saturated.items():
        rows.append(" extra_%d: y_%d - %d x_%d_%d <= 0" % (e, e, devices - c, e, c))
    for i, v in enumerate(bigs):
        terms = ["%d %s" % (ch[1], name[ch]) for ch in choices if ch[2] >= v - EPS]
        terms += ["- %d %s" % (ch[1], name[ch]) for ch in choices if ch[2] <= target - v + EPS]
        terms += ["- " + y for y in extra]
        rows.append(" hall_%d: %s <= 0" % (i, " ".join(
            t if k == 0 or t.startswith("-") else "+ " + t for k, t in enumerate(terms))))
    rows += ["Bounds"] + [" 0 <= %s <= %d" % (y, devices) for y in extra]
    if extra:
        rows += ["General", " " + " ".join(extra)]
    rows += ["Binary", " " + " ".join(name[ch] for ch in choices), "End"]
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return True


def solve(w, devices, target, limit, workdir, relaxed=False):
    """Whether counts exist whose best pairing stays <= target: (True, counts), (False, None)
    or (None, None) when CBC stopped at the time limit. relaxed: only the linear relaxation
    (fractional counts), whose "infeasible" still rules the target out; counts then None."""
    lp = os.path.join(workdir, "pairs.lp")
    sol = os.path.join(workdir, "pairs.sol")
    if not write_program(w, devices, target, lp):
        return False, None
    if os.path.exists(sol):
        os.remove(sol)
    how = ["initialSolve"] if relaxed else ["solve", "solu", sol]
    out = subprocess.run(["cbc", lp, "sec", str(limit)] + how,
                         capture_output=True, text=True, check=False).stdout
    if relaxed:
        if "infeasible" in out.lower():
            return False, None
        return (True, None) if "optimal" in out.lower() else (None, None)
    # CBC says "Result - Optimal solution found" when it found counts, "Result - Stopped on
    # time limit" when it ran out of time, and "infeasible" in one of several phrasings when it
    # proved there are none (the objective is constant, so "infeasible or unbounded" is
    # infeasible too).
    result = [line for line in out.splitlines() if line.startswith("Result -")]
    if result and "Optimal" in result[0]:
        pass
    elif result and "Stopped" in result[0]:
        return None, None
    elif "infeasible" in out.lower():
        return False, None
    else:
        return None, None
    counts = [0] * len(w)
    with open(sol) as f:
        for line in f:
            p = line.split()
            if len(p) >= 3 and p[1].startswith("x_") and float(p[2]) > 0.5:
                _, e, c = p[1].split("_")
                counts[int(e)] += int(c)
            elif len(p) >= 3 and p[1].startswith("y_"):
                counts[int(p[1][2:])] += int(round(float(p[2])))
    return True, counts


def bracket(w, devices, lo, hi, limit, steps, workdir):
    """Bisection on T/LB in [lo, hi] (lo out of reach or the bound, hi reachable): (lo, hi,
    counts reaching hi or None, whether no CBC run stopped at the time limit)."""
    lb = lower_bound(w, 2 * devices, devices)
    best = None
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok, counts = solve(w, devices, mid * lb, limit, workdir)
        if ok is None:
            return lo, hi, best, False
        if ok:
            hi, best = largest_pair(w, counts) / lb, counts
        else:
            lo = mid
    return lo, hi, best, True


def relaxed_bound(w, devices, hi, limit, workdir):
    """The linear relaxation's bound on T/LB by bisection in [1, hi] (to 1e-4): a cheap floor
    for the exact bisection."""
    lb = lower_bound(w, 2 * devices, devices)
    lo = 1.0
    while hi - lo > 1e-4:
        mid = (lo + hi) / 2
        if solve(w, devices, mid * lb, limit, workdir, relaxed=True)[0] is False:
            lo = mid
        else:
            hi = mid
    return lo


def compositions(total, parts, top):
    """Every way to write total as parts numbers in 0..top."""
    if parts == 1:
        if total <= top:
            yield (total,)
        return
    for k in range(min(total, top) + 1):
        for rest in compositions(total - k, parts - 1, top):
            yield (k,) + rest


def self_check(workdir, limit):
    """Compares the bisection with every count vector on small random pools."""
    rng = random.Random(5)
    worst, floors = 0.0, 0
    for case in range(12):
        n, devices = rng.choice([(5, 4), (6, 5), (7, 6), (8, 6)])
        w = [math.floor(1000 * math.exp(rng.gauss(0, 1.2))) + 1 for _ in range(n)]
        lb = lower_bound(w, 2 * devices, devices)
        best = min(largest_pair(w, [1 + k for k in ks])
                   for ks in compositions(2 * devices - n, n, devices - 1)) / lb
        lo, hi, _, done = bracket(w, devices, 1.0, best + 0.05, limit, 14, workdir)
        if not done or not lo - 1e-6 <= best <= hi + 1e-6:
            sys.exit("self-check failed on pool %d: exhaustive optimum %.5f outside [%.5f, %.5f]"
                     % (case, best, lo, hi))
        relaxed = relaxed_bound(w, devices, best + 0.05, limit, workdir)
        if relaxed > best + 1e-6:
            sys.exit("self-check failed on pool %d: relaxation's bound %.5f above the exhaustive "
                     "optimum %.5f" % (case, relaxed, best))
        floors += relaxed > 1.0 + 1e-4
        worst = max(worst, hi - lo)
    print("self-check: the bisection brackets the exhaustive optimum on 12 of 12 small pools "
          "(widest bracket %.5f); the relaxation's bound is never above it (above LB on %d)"
          % (worst, floors))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("loads")
    ap.add_argument("report")
    ap.add_argument("--goal", type=float, default=1.02)
    ap.add_argument("--limit", type=int, default=30, help="seconds per CBC run")
    ap.add_argument("--steps", type=int, default=4, help="bisection steps below the plan")
    ap.add_argument("--self-check", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        if a.self_check:
            self_check(workdir, a.limit)
        with open(a.loads) as f:
            loads = json.load(f)
        with open(a.report) as f:
            report = json.load(f)
        devices = report["num_gpus"]
        if report["num_slots"] != 2 * devices:
            sys.exit("%s: num_slots %d is not 2 x num_gpus %d" % (a.report, report["num_slots"],
                                                                 devices))
        print("%-22s %5s %9s %17s  goal %.3f (duplicates ignored)"
              % ("file", "layer", "balanced", "optimum in", a.goal))
        for layer in report["layers"]:
            counts = loads[str(layer["layer_id"])]
            w = [float(counts[k]) for k in sorted(counts, key=int)]
            plan = layer["max_over_lb"]
            met = plan <= a.goal
            lb = lower_bound(w, 2 * devices, devices)
            ok, witness = (None, None) if met else solve(w, devices, a.goal * lb, a.limit,
                                                         workdir)
            hi = plan
            if ok:
                hi = min(hi, largest_pair(w, witness) / lb)
            lo = max(a.goal if ok is False else 1.0,
                     relaxed_bound(w, devices, hi, a.limit, workdir))
            lo, hi, _, done = bracket(w, devices, lo, hi, a.limit, a.steps, workdir)
            if met:
                goal = "met by the plan"
            elif ok:
                goal = "reachable (witness %.4f, %d duplicate pairs)" % (
                    largest_pair(w, witness) / lb, witness_duplicates(w, witness))
            else:
                goal = "out of reach" if ok is False else "unknown (CBC time limit)"
            print("%-22s %5d %9.4f [%.4f, %.4f]%s  %s"
                  % (os.path.basename(a.loads), layer["layer_id"], plan, lo, hi,
                     "" if done else "*", goal))


if __name__ == "__main__":
    main()
