"""Runs a function in N real torch.distributed processes (gloo over TCP on localhost).

run(fn, n, *args) starts n spawned processes; process r joins a gloo group of n ranks as rank r
and calls fn(r, n, *args); the list of their return values (by rank) comes back. A process that
raises makes run() raise with its traceback; one that does not finish within `timeout` seconds
is killed and run() raises, so a hang fails the test instead of blocking it.
"""
import os
import queue
import socket
import traceback

import torch.multiprocessing as mp


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, n, port, fn, args, out):
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=n,
                                rank=rank)
        res = fn(rank, n, *args)
        dist.barrier()
        out.put((rank, True, res))
    except BaseException:  # reported to the parent, which fails the test
        out.put((rank, False, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run(fn, n, *args, timeout=180):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, n, port, fn, args, out)) for r in range(n)]
    for p in procs:
        p.start()
    results, errors = {}, []
    try:
        for _ in range(n):
            rank, ok, res = out.get(timeout=timeout)
            if ok:
                results[rank] = res
            else:
                errors.append(f"rank {rank}:\n{res}")
                break
    except queue.Empty:
        errors.append(f"timed out after {timeout} s with {len(results)} of {n} ranks done")
    finally:
        for p in procs:
            p.join(timeout=10 if not errors else 1)
            if p.is_alive():
                p.kill()
                p.join()
    if errors:
        raise AssertionError("\n".join(errors))
    return [results[r] for r in range(n)]


def env_int(name, default):
    return int(os.environ.get(name, default))
