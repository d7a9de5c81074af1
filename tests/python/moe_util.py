"""A small expert-parallel MoE model over torch.distributed (gloo, CPU, float64), for the
end-to-end proof of test_moe_proof.py: collect with eplb.torch's hook, save, plan, migrate,
re-route, and check that nothing but the balance changed.

Each of N ranks holds its slots of every layer (weights[layer] = [W1 [S, F, H], W2 [S, H, F]])
and a shard of the tokens. A layer: the router (a module returning (topk_weights, topk_ids),
skewed towards a few hot experts) picks top-K experts per token; the (token, expert) pairs are
mapped to physical slots with et.route, in token order,
sent to the rank that holds the slot (counts exchanged with all_gather, payloads with
batch_isend_irecv), computed there (y = W2 gelu(W1 x)), sent back and combined with the
router's weights: x <- x + sum_k w_k y_k.
"""
import queue
import socket
import time
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import eplb.torch as et


# ---- the model's parameters (the same on every rank: drawn from seeds) ----

def expert_weights(layer, expert, hidden, ffn):
    """The original weights (W1 [F, H], W2 [H, F], float64) of one expert of one layer."""
    g = torch.Generator().manual_seed(layer * 1000 + expert)
    w1 = torch.randn(ffn, hidden, generator=g, dtype=torch.float64) / hidden ** 0.5
    w2 = torch.randn(hidden, ffn, generator=g, dtype=torch.float64) / ffn ** 0.5
    return w1, w2


def hot_experts(layer, num_experts):
    """The experts the router of `layer` favours: two hot ones next to each other (so that
    the initial layout puts both on one rank) and a warm one further away."""
    return [(5 * layer) % num_experts, (5 * layer + 1) % num_experts,
            (5 * layer + num_experts // 2) % num_experts]


class Router(torch.nn.Module):
    """A fixed linear gate with a bias that skews towards the layer's hot experts; top-K over
    the softmax. forward(x) -> (topk_weights float64 [T, K], topk_ids int64 [T, K])."""

    def __init__(self, layer, hidden, num_experts, top_k, skew=(2.5, 2.5, 1.5)):
        super().__init__()
        g = torch.Generator().manual_seed(777_000 + layer)
        self.weight = torch.randn(num_experts, hidden, generator=g,
                                  dtype=torch.float64) / hidden ** 0.5
        self.bias = torch.zeros(num_experts, dtype=torch.float64)
        for e, b in zip(hot_experts(layer, num_experts), skew):
            self.bias[e] += b
        self.top_k = top_k

    def forward(self, x):
        probs = torch.softmax(x @ self.weight.t() + self.bias, dim=-1)
        w, ids = torch.topk(probs, self.top_k, dim=-1)
        return w / w.sum(-1, keepdim=True), ids


def local_weights(placement, rank, hidden, ffn):
    """This rank's tensors per layer: slot j holds the weights of expert phy2log[l, rank*S+j]."""
    S = placement.slots_per_gpu
    out = []
    for l in range(placement.num_layers):
        pairs = [expert_weights(l, int(e), hidden, ffn)
                 for e in placement.phy2log[l, rank * S:(rank + 1) * S]]
        out.append([torch.stack([p[0] for p in pairs]).contiguous(),
                    torch.stack([p[1] for p in pairs]).contiguous()])
    return out


def tensor_bytes(t):
    """A tensor's bytes, to compare weights byte for byte."""
    return t.contiguous().view(torch.uint8).numpy().tobytes()


def tokens(num_tokens, hidden, seed=12345):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(num_tokens, hidden, generator=g, dtype=torch.float64)


# ---- the expert-parallel forward ----

def _exchange(send, counts_to, counts_from, width, dtype, tag):
    """Sends send[d] ([counts_to[d], width]) to every other rank d and receives
    counts_from[s] rows from every rank s; returns the received list by source rank (this
    rank's own rows are passed through without a message)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    recv = [None] * world
    ops = []
    for p in range(world):
        if p == rank:
            recv[p] = send[p]
            continue
        if counts_from[p] > 0:
            recv[p] = torch.empty(counts_from[p], width, dtype=dtype)
            ops.append(dist.P2POp(dist.irecv, recv[p], p, None, tag))
        else:
            recv[p] = torch.empty(0, width, dtype=dtype)
        if counts_to[p] > 0:
            ops.append(dist.P2POp(dist.isend, send[p].contiguous(), p, None, tag))
    if ops:
        for req in dist.batch_isend_irecv(ops):
            req.wait()
    return recv


def moe_layer(x, layer, router, weights, placement):
    """One expert-parallel MoE layer on this rank's token shard x [T, H]. Returns
    (x + sum_k w_k expert_k(x), topk_ids, rows this rank computed)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    T, H = x.shape
    S = placement.slots_per_gpu
    topk_w, topk_ids = router(x)                       # the hook records topk_ids here
    K = topk_ids.shape[1]
    flat = topk_ids.reshape(-1)                        # pair i = (token i // K, choice i % K)
    slots = et.route(flat, placement, layer)
    dest = torch.div(slots, S, rounding_mode="floor")
    local = slots % S
    pair_tok = torch.arange(T * K) // K

    # Requests: for every destination its pairs' token rows with the local slot appended.
    idx = [torch.nonzero(dest == d).reshape(-1) for d in range(world)]
    counts_to = torch.tensor([len(i) for i in idx], dtype=torch.int64)
    table = [torch.empty(world, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(table, counts_to)
    counts_from = [int(table[s][rank]) for s in range(world)]
    counts_to = counts_to.tolist()
    send = [torch.cat([x[pair_tok[i]], local[i].to(torch.float64).unsqueeze(1)], 1)
            for i in idx]
    got = _exchange(send, counts_to, counts_from, H + 1, torch.float64, tag=10 * layer + 1)

    # Compute the requests of every source with this rank's slots.
    w1, w2 = weights[layer]
    results = []
    computed = 0
    for rows in got:
        xs, js = rows[:, :H], rows[:, H].to(torch.int64)
        ys = torch.empty(len(rows), H, dtype=torch.float64)
        for j in torch.unique(js).tolist():
            sel = js == j
            ys[sel] = torch.nn.functional.gelu(xs[sel] @ w1[j].t()) @ w2[j].t()
        results.append(ys)
        computed += len(rows)

    # Results back to the owners, combined with the router's weights.
    back = _exchange(results, counts_from, counts_to, H, torch.float64, tag=10 * layer + 2)
    y = torch.empty(T * K, H, dtype=torch.float64)
    for d in range(world):
        y[idx[d]] = back[d]
    out = x + (topk_w.unsqueeze(-1) * y.reshape(T, K, H)).sum(1)
    return out, topk_ids, computed


def forward(x, routers, weights, placement):
    """The whole stack; returns (output shard, topk_ids per layer, rows computed per layer)."""
    ids, computed = [], []
    for l, r in enumerate(routers):
        x, i, c = moe_layer(x, l, r, weights, placement)
        ids.append(i)
        computed.append(c)
    return x, ids, computed


# ---- processes ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, fn, args, out):
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                world_size=world, rank=rank)
        res = fn(rank, world, *args)
        dist.barrier()
        out.put((rank, None, res))
    except BaseException:
        out.put((rank, traceback.format_exc(), None))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(fn, world, *args, timeout=120):
    """Runs fn(rank, world, *args) in `world` spawned gloo processes; returns their results by
    rank. A worker that raises fails the call with its traceback; one that does not report
    within `timeout` seconds, or exits non-zero, fails it too (every worker is then killed)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(r, world, port, fn, args, out), daemon=True)
             for r in range(world)]
    for p in procs:
        p.start()
    results, errors = {}, []
    deadline = time.monotonic() + timeout
    try:
        while len(results) < world and not errors:
            try:
                rank, err, res = out.get(timeout=1.0)
            except queue.Empty:
                dead = [(r, p.exitcode) for r, p in enumerate(procs)
                        if r not in results and p.exitcode is not None]
                if dead:
                    errors.append(f"workers died without reporting: (rank, code) {dead}")
                elif time.monotonic() > deadline:
                    errors.append(f"timed out after {timeout} s: ranks {sorted(results)} of "
                                  f"{world} reported")
                continue
            if err is not None:
                errors.append(f"rank {rank} failed:\n{err}")
            else:
                results[rank] = res
        for p in procs:
            p.join(timeout=15 if not errors else 1)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    if not errors:
        bad = [(r, p.exitcode) for r, p in enumerate(procs) if p.exitcode != 0]
        if bad:
            errors.append(f"workers exited with (rank, code) {bad}")
    if errors:
        raise AssertionError("\n".join(errors))
    return [results[r] for r in range(world)]
