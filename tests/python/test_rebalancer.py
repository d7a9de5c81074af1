"""eplb.torch.Rebalancer on a running expert-parallel MoE model (issue "Online re-balancing" 2/3).

4 gloo processes serve a stack of MoE layers (moe_util: tokens dispatched to the rank holding
the chosen replica, computed there, sent back) for STEPS steps with a fresh batch each step.
The routers' skew drifts: every PHASE steps the hot experts move to other ranks. The same
steps are served twice: once on the static initial layout, once with a Rebalancer that
re-plans every EVERY steps from its last WINDOWS windows and migrates while the job runs.
The test shows that:

- the mean over steps (and layers) of the busiest rank's computed rows over the mean is lower
  with the Rebalancer than without;
- after every step, every slot of every rank holds byte for byte the weights of the expert its
  routing placement names (so a layer's routing never switches before its weights landed);
- every step's output equals a reference forward computed on one rank without expert
  parallelism (allclose), and the routers chose the same experts in both;
- every rank took the same decisions, each logged in one line, and the bytes it reports are
  the copies times one slot's bytes;
- with ``layers_per_step=1`` the moved layers land one per step;
- on a skew that does not change, it moves once and then keeps (no churn).

Run with -s to see the figures.
"""
import time

import pytest
import torch
import torch.distributed as dist

import eplb
import eplb.torch as et
from moe_util import (Router, expert_weights, forward, hot_experts, local_weights, spawn,
                      tensor_bytes, tokens)

L, E, K, H, F = 2, 16, 2, 32, 16     # layers, experts, top-k, hidden, expert ffn width
WORLD = 4
TOKENS = 96                          # per rank and step
STEPS, PHASE = 48, 16                # steps served; the hot experts move every PHASE steps
EVERY, WINDOWS = 8, 2


def _skew(routers, phase):
    """Points every router's bias at the hot experts of `phase`: the layer's hot set shifted
    by 5 * phase experts, i.e. onto other ranks of the initial layout."""
    for l, r in enumerate(routers):
        r.bias.zero_()
        for e, b in zip(hot_experts(l, E), (2.5, 2.5, 1.5)):
            r.bias[(e + 5 * phase) % E] += b


def _reference(x, routers, experts):
    """The same stack without expert parallelism: every expert's weights here, tokens of this
    rank only. Returns (output, topk_ids per layer)."""
    ids_all = []
    for l, r in enumerate(routers):
        w, ids = r(x)
        y = torch.zeros(x.shape[0], K, H, dtype=torch.float64)
        for e in torch.unique(ids).tolist():
            tok, k = torch.nonzero(ids == e, as_tuple=True)
            w1, w2 = experts[l][e]
            y[tok, k] = torch.nn.functional.gelu(x[tok] @ w1.t()) @ w2.t()
        x = x + (w.unsqueeze(-1) * y).sum(1)
        ids_all.append(ids)
    return x, ids_all


def _busiest_over_mean(computed):
    """computed: this rank's rows per layer; returns max/mean over ranks, per layer."""
    t = torch.tensor(computed, dtype=torch.int64)
    every = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(every, t)
    c = torch.stack(every).double()                     # [world, L]
    return (c.max(0).values / c.mean(0)).tolist()


def serve(rank, world, drift, layers_per_step, rebalance):
    """One rank serving STEPS steps; returns its figures."""
    old = eplb.Placement.initial(L, E, world, k=E // world + 1)   # 5 slots/rank, 20 slots
    S = old.slots_per_gpu
    routers = [Router(l, H, E, K) for l in range(L)]
    experts = [[expert_weights(l, e, H, F) for e in range(E)] for l in range(L)]
    expert_bytes = [[[tensor_bytes(t) for t in experts[l][e]] for e in range(E)] for l in range(L)]
    weights = local_weights(old, rank, H, F)
    rec = et.Recorder(L, E, num_windows=WINDOWS)
    hooks = [et.hook(r, l, rec) for l, r in enumerate(routers)]
    lines = []
    rb = et.Rebalancer(rec, weights, old, every=EVERY, windows=WINDOWS, min_gain=0.02,
                       layers_per_step=layers_per_step, log=lines.append) if rebalance else None
    fig = dict(balance=[], decisions=[], landed=[], max_abs_diff=0.0)
    t0 = time.perf_counter()
    for step in range(STEPS):
        _skew(routers, step // PHASE if drift else 0)
        placement = rb.placement if rb else old
        x0 = tokens(TOKENS, H, seed=1_000_003 * step + rank)   # a fresh batch per step
        x, ids, computed = forward(x0, routers, weights, placement)
        ref, ref_ids = _reference(x0, routers, experts)
        for l in range(L):
            assert torch.equal(ids[l], ref_ids[l]), f"step {step} layer {l}: other experts"
        diff = float((x - ref).abs().max())
        fig["max_abs_diff"] = max(fig["max_abs_diff"], diff)
        assert torch.allclose(x, ref, rtol=0, atol=1e-9), (step, diff)
        fig["balance"].append(_busiest_over_mean(computed))
        if rb is None:
            continue
        before = rb.placement.phy2log.copy()
        done = rb.step()
        fig["landed"].append([l for l in range(L)
                              if (rb.placement.phy2log[l] != before[l]).any()])
        if done is not None:
            fig["decisions"].append(tuple(done[:6]) + (tuple(done.layers),))
            # the bytes of the moved layers' copies: each copy is one slot of W1 and W2
            assert done.bytes == done.copies * 2 * F * H * 8 if done.moved else done.bytes == 0
        # every slot of this rank holds its expert's weights, per the placement it routes by
        m = rb.placement
        for l in range(L):
            for j in range(S):
                e = int(m.phy2log[l, rank * S + j])
                for i in range(2):
                    assert tensor_bytes(weights[l][i][j]) == expert_bytes[l][e][i], \
                        f"after step {step + 1}: layer {l} slot {rank * S + j} is not expert {e}"
    fig["seconds"] = time.perf_counter() - t0
    for h in hooks:
        h.remove()
    if rb is not None:
        assert len(rb.history) == STEPS // EVERY
        assert [h.step for h in rb.history] == list(range(EVERY, STEPS + 1, EVERY))
        fig["lines"] = lines if rank == 0 else None
        assert len(lines) == len(rb.history), "one log line per re-plan"
        fig["final"] = rb.placement.phy2log.tolist()
    return fig


def _mean_balance(fig):
    b = torch.tensor(fig["balance"])        # [STEPS, L]
    return float(b.mean())


def _run(drift, layers_per_step):
    t0 = time.perf_counter()
    static = spawn(serve, WORLD, drift, layers_per_step, False, timeout=150)
    online = spawn(serve, WORLD, drift, layers_per_step, True, timeout=150)
    wall = time.perf_counter() - t0
    f = online[0]
    for g in online[1:]:
        assert g["decisions"] == f["decisions"], "ranks took different decisions"
        assert g["final"] == f["final"], "ranks ended on different placements"
    b_static, b_online = _mean_balance(static[0]), _mean_balance(f)
    print(f"\n[{WORLD} ranks, drift={drift}, layers_per_step={layers_per_step}] wall {wall:.1f} s;"
          f" serving {static[0]['seconds']:.1f} s static, {f['seconds']:.1f} s online;"
          f" mean busiest/mean static {b_static:.4f} -> online {b_online:.4f};"
          f" max |out - reference| {max(static[0]['max_abs_diff'], f['max_abs_diff']):.1e}")
    for line in f["lines"]:
        print("  " + line)
    return b_static, b_online, f


@pytest.mark.parametrize("layers_per_step", [None, 1], ids=["at-once", "one-layer-a-step"])
def test_rebalancer_follows_a_drifting_router(layers_per_step):
    b_static, b_online, f = _run(True, layers_per_step)
    assert b_online < b_static - 0.1, (b_static, b_online)
    moved = [d for d in f["decisions"] if d[1] > 0]
    assert len(moved) >= 2, f["decisions"]            # it followed more than one phase
    # when the moves land: at the re-plan step, or spread one layer a step after it
    for d in moved:
        step, layers = d[0], d[6]
        if layers_per_step is None:
            assert set(f["landed"][step - 1]) == set(layers)
        elif step + len(layers) <= STEPS:
            spread = [f["landed"][step - 1 + i] for i in range(len(layers))]
            assert spread[0] == [] and all(len(s) <= 1 for s in spread), spread
            landed = [l for i in range(1, len(layers) + 1) for l in f["landed"][step - 1 + i]]
            assert sorted(landed) == sorted(layers), (layers, landed)


def test_rebalancer_keeps_a_balanced_layout_on_unchanged_skew():
    b_static, b_online, f = _run(False, None)
    assert b_online < b_static, (b_static, b_online)
    moved = [d[0] for d in f["decisions"] if d[1] > 0]
    assert moved == [EVERY], f["decisions"]             # the first re-plan moves, then it keeps
    assert all("keep" in line for line in f["lines"][1:]), f["lines"]


def test_rebalancer_refuses_bad_options():
    old = eplb.Placement.initial(L, E, WORLD)
    weights = local_weights(old, 0, H, F)
    rec = et.Recorder(L, E, num_windows=2)
    with pytest.raises(eplb.InvalidArgumentError, match="multiple"):
        et.Rebalancer(rec, weights, old, every=5, windows=2)
    with pytest.raises(eplb.InvalidArgumentError, match="multiple"):
        et.Rebalancer(rec, weights, old, every=4, windows=0)
    with pytest.raises(eplb.InvalidArgumentError, match="3 needed"):
        et.Rebalancer(rec, weights, old, every=6, windows=3)
    with pytest.raises(eplb.InvalidArgumentError, match="layers_per_step"):
        et.Rebalancer(rec, weights, old, every=4, windows=2, layers_per_step=0)
