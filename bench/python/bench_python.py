"""bench_python.py - throughput of recording topk_ids from Python against the C call.

Shape of the issue: batches of 4096 tokens x top-8 (32768 ids a call), 64 layers x 256 experts,
one core. The baseline is the C call itself, eplb_collector_record() in a C loop on the same
buffer in this process (Collector._record_repeat); ours are the calls a PyTorch job makes:
eplb.Collector.record on a numpy array and on a CPU tensor, and eplb.torch.Recorder.record on a
CPU tensor (which adds a contiguity check and the tensor's zero-copy numpy view). Each figure is
the median of MEASURES measures of CALLS calls, ours and the baseline interleaved; the ratio is
ours over the baseline (1 = as fast as C; the issue asks for >= 0.5, "within 2x").

usage: PYTHONPATH=BUILD/python python3 bench/python/bench_python.py [CALLS] [MEASURES]
"""
import statistics
import sys
import time

import numpy as np
import torch

import eplb
import eplb.torch as et

L, E, TOKENS, TOPK = 64, 256, 4096, 8


def rate(fn, calls):
    t0 = time.perf_counter()
    fn(calls)
    return calls * TOKENS * TOPK / (time.perf_counter() - t0)


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    measures = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    ids64 = rng.integers(0, E, size=(TOKENS, TOPK), dtype=np.int64)
    ids32 = ids64.astype(np.int32)
    t64 = torch.from_numpy(ids64)
    c = eplb.Collector(L, E)
    rec = et.Recorder(L, E)

    def loop(f, ids):
        def run(n):
            for i in range(n):
                f(i % L, ids)
        return run

    cases = [
        ("Collector.record, numpy int64", loop(c.record, ids64), ids64),
        ("Collector.record, numpy int32", loop(c.record, ids32), ids32),
        ("Collector.record, torch int64", loop(c.record, t64), ids64),
        ("Recorder.record, torch int64", loop(rec.record, t64), ids64),
    ]
    print(f"bench_python: {L} layers x {E} experts, top-{TOPK}, {TOKENS} tokens per call "
          f"({TOKENS * TOPK} ids), {calls} calls x {measures} measures, medians")
    print(f"{'case':34s} {'ours ids/s':>12s} {'C call ids/s':>13s} {'ours / C':>9s}")
    worst = None
    for name, ours, ids in cases:
        base = lambda n, ids=ids: c._record_repeat(0, ids, n)  # noqa: E731
        a, b = [], []
        for _ in range(measures):
            a.append(rate(ours, calls))
            b.append(rate(base, calls))
        ra, rb = statistics.median(a), statistics.median(b)
        worst = ra / rb if worst is None else min(worst, ra / rb)
        print(f"{name:34s} {ra:12.3e} {rb:13.3e} {ra / rb:9.3f}")
    print(f"slowest ratio {worst:.3f} ({'within' if worst >= 0.5 else 'NOT within'} 2x of C)")


if __name__ == "__main__":
    main()
