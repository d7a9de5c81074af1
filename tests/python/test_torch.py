"""eplb.torch: recording, gathering, migrating and routing, in real gloo process groups."""
import json
import os

import numpy as np
import pytest
import torch

import eplb
import eplb.torch as et
from dist_util import run


def expert_weight(layer, expert, shape=(3, 4), dtype=torch.float32):
    """The original weights of an expert: drawn from a seed per (layer, expert)."""
    g = torch.Generator().manual_seed(1000 * layer + expert)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def local_weights(m, rank, shapes=((3, 4), (5,))):
    """This rank's tensors of each layer: slot j holds its expert's weights (one per shape)."""
    S = m.slots_per_gpu
    out = []
    for l in range(m.num_layers):
        experts = m.phy2log[l, rank * S:(rank + 1) * S]
        out.append([torch.stack([expert_weight(l, int(e), shp) for e in experts])
                    for shp in shapes])
    return out


def holds_its_experts(weights, m, rank, shapes=((3, 4), (5,))):
    S = m.slots_per_gpu
    for l in range(m.num_layers):
        for j, e in enumerate(m.phy2log[l, rank * S:(rank + 1) * S]):
            for i, shp in enumerate(shapes):
                if not torch.equal(weights[l][i][j], expert_weight(l, int(e), shp)):
                    return f"layer {l} slot {rank * S + j}: not expert {e}'s weights"
    return None


# ---- recording ----

class Router(torch.nn.Module):
    """A router whose forward returns (topk_weights, topk_ids), as fused-MoE routers do."""

    def __init__(self, ids):
        super().__init__()
        self.ids = ids

    def forward(self, x):
        return torch.ones(self.ids.shape), self.ids


def test_hook_records_the_ids_of_every_forward():
    ids = torch.tensor([[0, 3], [3, 1]])
    rec = et.Recorder(2, 4)
    r0, r1 = Router(ids), Router(ids[:1])
    h0 = et.hook(r0, 0, rec)
    et.hook(r1, 1, rec, topk_ids=lambda mod, inputs, out: out[1] + 0)
    for _ in range(3):
        r0(torch.zeros(1))
        r1(torch.zeros(1))
    assert rec.counts().tolist() == [[3, 3, 0, 6], [3, 0, 0, 3]]
    h0.remove()
    r0(torch.zeros(1))
    assert rec.counts()[0].sum() == 12


def test_a_hook_without_integer_output_says_so():
    rec = et.Recorder(1, 4)
    m = torch.nn.Linear(2, 2)
    et.hook(m, 0, rec)
    with pytest.raises(eplb.InvalidArgumentError, match="topk_ids"):
        m(torch.zeros(2))


def test_token_collects_false_registers_nothing_and_writes_nothing(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"generate:\n  token_collects: false\n  token_save_path: {tmp_path}/out\n")
    rec = et.from_config(cfg, 2, 4)
    r = Router(torch.tensor([[0, 1]]))
    assert et.hook(r, 0, rec) is None
    assert not r._forward_hooks
    rec.record(0, torch.tensor([1, 2]))
    assert rec.counts().sum() == 0
    assert rec.save() is None and not (tmp_path / "out").exists()
    assert et.hook(r, 0, None) is None


def test_the_device_path_counts_what_the_c_collector_counts():
    # The tensor path (scatter_add_, what a GPU/NPU uses) run on CPU tensors beside the C path.
    ids = torch.randint(0, 16, (4096, 8), generator=torch.Generator().manual_seed(5))
    a, b = et.Recorder(2, 16, num_windows=2), et.Recorder(2, 16, num_windows=2)
    a.record(1, ids)
    b._record_tensor(1, ids.to(torch.int32))
    a.next_window(), b.next_window()
    a.record(0, ids[:7])
    b._record_tensor(0, ids[:7])
    for w in (eplb.WINDOW_ALL, 0, 1):
        assert torch.equal(a.counts(w), b.counts(w))
    a.next_window(), b.next_window()  # the ring of 2 drops the first window
    assert torch.equal(a.counts(), b.counts()) and a.counts()[1].sum() == 0


def _save(rank, n, folder):
    rec = et.Recorder(3, 8)
    g = torch.Generator().manual_seed(rank)
    ids = torch.randint(0, 8, (100 + rank, 2), generator=g)
    rec.record(rank % 3, ids)
    path = rec.save(folder)
    return path, rec.counts().tolist()


def test_save_writes_the_sum_of_every_rank_once(tmp_path):
    out = tmp_path / "eplb_out"
    res = run(_save, 4, str(out))
    paths = {p for p, _ in res}
    assert paths == {str(out / "token_collects_all.json")}
    total = np.sum([np.array(c) for _, c in res], axis=0)
    assert np.array_equal(eplb.Loads.read(out / "token_collects_all.json").count, total)
    assert os.listdir(out) == ["token_collects_all.json"]  # no temp file left


def _save_fails(rank, n, folder):
    rec = et.Recorder(1, 4)
    rec.record(0, torch.tensor([1]))
    try:
        rec.save(folder)
    except eplb.Error as e:
        return type(e).__name__
    return "no error"


def test_a_failed_save_raises_on_every_rank(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert run(_save_fails, 2, str(blocker)) == ["IOFailureError"] * 2


# ---- migrating ----

def _skewed_loads(L, E, seed):
    rng = np.random.default_rng(seed)
    return eplb.Loads((rng.lognormal(0, 1.5, size=(L, E)) * 1000).astype(np.int64))


def _migrate(rank, n, old_rs, new_rs):
    old, new = (eplb.Placement(np.array(r), num_gpus=n) for r in (old_rs, new_rs))
    weights = local_weights(old, rank)
    before = [t.data_ptr() for ts in weights for t in ts]
    res = et.migrate(weights, old, new)
    in_place = before == [t.data_ptr() for ts in weights for t in ts]
    return (holds_its_experts(weights, res.placement, rank), res.copies, res.sent,
            res.received, in_place, res.placement == new, res.bytes)


def _check_migration(old, new, n):
    t = eplb.transfer_plan(old, new)
    res = run(_migrate, n, old.phy2log.tolist(), new.phy2log.tolist())
    for rank, (problem, copies, *_rest) in enumerate(res):
        assert problem is None, f"rank {rank}: {problem}"
        assert copies == t.receives
    assert sum(r[2] for r in res) == t.receives == sum(r[3] for r in res)
    per_copy = 4 * (3 * 4) + 4 * 5
    assert res[0][6] == t.receives * per_copy
    return t, res


def test_migrate_in_place_gives_every_slot_its_experts_weights():
    L, E, n = 3, 16, 4
    old = eplb.Placement.initial(L, E, n, 5)
    new = eplb.plan(_skewed_loads(L, E, 1), num_replicas=20, num_gpus=n)
    t, res = _check_migration(old, new, n)
    assert t.receives > 0 and all(r[4] for r in res)  # moved in place


def test_migrate_stages_swaps_and_still_moves_only_the_plans_copies():
    # Every device takes the next device's experts: each slot's old content leaves while new
    # content arrives, so rounds and staging (a ring of waits) are exercised.
    L, E, n = 2, 12, 4
    old = eplb.Placement.initial(L, E, n, 3)
    rows = np.roll(old.phy2log, -3, axis=1)
    new = eplb.Placement(rows, num_gpus=n)
    t, res = _check_migration(old, new, n)
    assert t.stats["staging_slots"] > 0 and t.receives == L * E


def test_migrate_to_more_slots_replaces_the_layers_tensors():
    L, E, n = 2, 8, 2
    old = eplb.Placement.initial(L, E, n)
    new = eplb.plan(_skewed_loads(L, E, 2), num_replicas=12, num_gpus=n)
    t, res = _check_migration(old, new, n)
    assert not res[0][4]  # new tensors of 6 slots


def _execute_in_parts(rank, n, old_rs, new_rs):
    old, new = (eplb.Placement(np.array(r), num_gpus=n) for r in (old_rs, new_rs))
    plan = eplb.transfer_plan(old, new)
    weights = local_weights(old, rank)
    first = et.execute(weights, plan, layers=[1])
    mixed = eplb.Placement(np.stack([old.phy2log[0], plan.to.phy2log[1], old.phy2log[2]]),
                           num_gpus=n)
    problem_mixed = holds_its_experts(weights, mixed, rank)
    rest = et.execute(weights, plan, layers=[0, 2])
    return (problem_mixed, holds_its_experts(weights, plan.to, rank),
            first.copies + rest.copies, int((plan.kind[1] == eplb.RECV).sum()), first.copies)


def test_execute_moves_only_the_layers_asked_for():
    L, E, n = 3, 16, 4
    old = eplb.Placement.initial(L, E, n, 5)
    new = eplb.plan(_skewed_loads(L, E, 4), num_replicas=20, num_gpus=n)
    res = run(_execute_in_parts, n, old.phy2log.tolist(), new.phy2log.tolist())
    receives = eplb.transfer_plan(old, new).receives
    for mixed, final, copies, layer1, first in res:
        assert mixed is None and final is None
        assert copies == receives and first == layer1 > 0


def _migrate_bad(rank, n, old_rs):
    old = eplb.Placement(np.array(old_rs), num_gpus=n)
    weights = local_weights(old, rank)
    if rank == 1:
        weights[0][0] = weights[0][0][:1]  # one slot instead of the rank's slots
    try:
        et.migrate(weights, old, old)
    except eplb.InvalidArgumentError as e:
        return str(e)
    return "no error"


def test_bad_weights_on_one_rank_raise_on_every_rank_before_anything_moves():
    old = eplb.Placement.initial(2, 8, 4)
    msgs = run(_migrate_bad, 4, old.phy2log.tolist())
    assert "rank 1: weights[0][0]" in msgs[1]
    assert all(m != "no error" for m in msgs)


# ---- routing ----

@pytest.mark.parametrize("mode", ["round_robin", "local"])
def test_route_on_tensors_equals_the_c_route(mode):
    m = eplb.plan(_skewed_loads(2, 16, 3), num_replicas=24, num_gpus=4)
    ids = torch.randint(0, 16, (512, 4), generator=torch.Generator().manual_seed(9))
    for layer in range(2):
        for rank in range(4):
            got = et.route(ids, m, layer, rank=rank, mode=mode, gpus_per_node=2)
            want = eplb.route(m, layer, ids.numpy(), mode=mode, rank=rank, gpus_per_node=2)
            assert got.shape == ids.shape and np.array_equal(got.numpy(), want)
    # A new placement in the same place gets its own table, not the cached one.
    m2 = eplb.Placement.initial(2, 16, 4, 6)
    assert np.array_equal(et.route(ids, m2, 0).numpy(), eplb.route(m2, 0, ids.numpy()))
