"""The eplb package against the CLI and the library's contracts (run by ctest as python_eplb).

Environment: EPLB (the program), DATA (tests/data), SRC (the source tree); PYTHONPATH holds the
build tree's python/ folder.
"""
import json
import os
import subprocess

import numpy as np
import pytest
import torch

import eplb

EPLB = os.environ.get("EPLB", "eplb")
DATA = os.environ.get("DATA", os.path.join(os.path.dirname(__file__), "..", "data"))
SRC = os.environ.get("SRC", os.path.join(os.path.dirname(__file__), "..", ".."))

# (counts file, R, G, K, N): the golden inputs' shapes and the real OLMoE counts.
CASES = [
    ("golden/hier_4x16_r24_g4_n2_gpu4.json", 24, 4, 4, 2),
    ("golden/global_fallback_3x12_r16_g3_n2_gpu4.json", 16, 4, 3, 2),
    ("golden/skewed_6x32_r64_g1_n1_gpu8.json", 64, 8, 1, 1),
    ("olmoe/olmoe_arxiv.json", 80, 16, 8, 2),
]


def counts_path(rel):
    path = os.path.join(DATA, rel)
    with open(path) as f:
        doc = json.load(f)
    if "loads" in doc:  # golden files carry their input beside the reference output
        return None, doc
    return path, None


@pytest.fixture(params=CASES, ids=lambda c: os.path.basename(c[0]))
def case(request, tmp_path):
    rel, R, G, K, N = request.param
    path, doc = counts_path(rel)
    if path is None:
        path = str(tmp_path / "counts.json")
        with open(path, "w") as f:
            json.dump(doc["loads"], f)
    return path, R, G, K, N


def cli(*args):
    return subprocess.run([EPLB, *map(str, args)], capture_output=True, text=True)


# ---- same results as the CLI ----

@pytest.mark.parametrize("policy", ["balanced", "deepseek"])
def test_plan_writes_the_same_map_as_the_cli(case, policy, tmp_path):
    path, R, G, K, N = case
    a, b = tmp_path / "cli.json", tmp_path / "py.json"
    r = cli("plan", "--input", path, "--num_replicas", R, "--num_gpus", G, "--num_groups", K,
            "--num_nodes", N, "--policy", policy, "--output_path", a)
    assert r.returncode == 0, r.stderr
    m = eplb.plan(eplb.Loads.read(path), num_replicas=R, num_gpus=G, num_groups=K,
                  num_nodes=N, policy=policy)
    m.write(b)
    assert a.read_bytes() == b.read_bytes()
    assert eplb.Placement.read(a) == m


def test_report_equals_the_cli_report(case, tmp_path):
    path, R, G, K, N = case
    loads = eplb.Loads.read(path)
    m = eplb.plan(loads, num_replicas=R, num_gpus=G, num_groups=K, num_nodes=N)
    old = eplb.Placement.initial(loads.num_layers, loads.num_experts, G,
                                 -(-loads.num_experts // G))
    m.write(tmp_path / "m.json")
    old.write(tmp_path / "old.json")
    r = cli("report", "--input", path, "--map", tmp_path / "m.json", "--old_map",
            tmp_path / "old.json", "--num_groups", K, "--num_nodes", N, "--json")
    assert r.returncode == 0, r.stderr
    want = json.loads(r.stdout)
    got = eplb.report(loads, m, old=old, num_groups=K, num_nodes=N)
    assert got.keys() == want.keys()
    for g, w in zip(got["layers"] + [got["overall"]], want["layers"] + [want["overall"]]):
        assert g.keys() == w.keys()
        for key in w:
            assert g[key] == pytest.approx(w[key], rel=1e-9), key


def test_replan_with_a_move_budget_equals_the_cli(tmp_path):
    path = os.path.join(DATA, "olmoe/olmoe_github.json")
    old_loads = eplb.Loads.read(os.path.join(DATA, "olmoe/olmoe_arxiv.json"))
    old = eplb.plan(old_loads, num_replicas=80, num_gpus=16)
    old.write(tmp_path / "old.json")
    r = cli("plan", "--input", path, "--num_replicas", 80, "--num_gpus", 16, "--old_map",
            tmp_path / "old.json", "--max_moves", 40, "--output_path", tmp_path / "cli.json")
    assert r.returncode == 0, r.stderr
    m = eplb.plan(eplb.Loads.read(path), num_replicas=80, num_gpus=16, old=old, max_moves=40)
    assert eplb.Placement.read(tmp_path / "cli.json") == m
    moves = eplb.report(eplb.Loads.read(path), m, old=old)["overall"]["moves"]
    assert 0 < moves <= 40


# ---- loads ----

def test_loads_from_an_array_equal_the_loads_read_from_its_file(tmp_path):
    a = np.array([[5, 0, 7], [1, 2, 3]], dtype=np.int64)
    loads = eplb.Loads(a, layer_ids=[3, 8])
    loads.write(tmp_path / "c.json")
    back = eplb.Loads.read(tmp_path / "c.json")
    assert back.layer_ids.tolist() == [3, 8]
    assert np.array_equal(back.count, a)
    assert json.loads((tmp_path / "c.json").read_text()) == {
        "3": {"0": 5, "1": 0, "2": 7}, "8": {"0": 1, "1": 2, "2": 3}}


def test_fractional_loads_keep_no_exact_count():
    assert eplb.Loads(np.array([[0.5, 1.0]])).count is None
    assert eplb.Loads(np.array([[2.0, 1.0]])).count.tolist() == [[2, 1]]
    assert eplb.Loads(torch.tensor([[4, 1]], dtype=torch.int32)).count.tolist() == [[4, 1]]


def test_a_folder_sums_its_files(tmp_path):
    eplb.Loads(np.array([[1, 2]])).write(tmp_path / "r0.json")
    eplb.Loads(np.array([[10, 20]])).write(tmp_path / "r1.json")
    assert eplb.Loads.read(str(tmp_path)).count.tolist() == [[11, 22]]
    assert eplb.Loads.read([tmp_path / "r0.json", tmp_path / "r1.json"]).count.tolist() == [[11, 22]]


@pytest.mark.parametrize("values,layer_ids,where", [
    (np.array([[1.0, -1.0]]), None, "values[0][1]"),
    (np.array([[1.0, np.nan]]), None, "values[0][1]"),
    (np.array([[1.0, np.inf]]), None, "values[0][1]"),
    (np.array([1.0, 2.0]), None, "expected 2 dimensions"),
    (np.zeros((0, 4)), None, "at least one layer"),
    (np.array([[1, 2], [3, 4]]), [5, 5], "layer_ids[1]"),
    (np.array([[1, 2], [3, 4]]), [0], "layer_ids"),
    (np.array([["a", "b"]]), None, "unsupported item format"),
])
def test_bad_arrays_are_refused_naming_the_element(values, layer_ids, where):
    with pytest.raises(eplb.InvalidArgumentError, match=where.replace("[", r"\[")):
        eplb.Loads(values, layer_ids)


@pytest.mark.parametrize("text,where", [
    ('{"0": {"0": 1, "1": "x"}}', '"1"'),
    ('{"0": {"-1": 3}}', '"-1"'),
    ('{"0": [1, 2]}', '"0"'),
    ('{"0": {"0": 1}', ":1:14:"),
])
def test_bad_counts_raise_format_errors_naming_file_and_field(text, where, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(eplb.Error) as e:
        eplb.Loads.read(path)
    assert isinstance(e.value, (eplb.FormatError, eplb.RangeError))
    assert isinstance(e.value, ValueError)
    assert str(path) in str(e.value) and where in str(e.value)
    assert e.value.code in (-4, -5) and e.value.name in ("EPLB_EFORMAT", "EPLB_ERANGE")
    assert e.value.detail == str(e.value)


def test_a_missing_file_is_an_os_error():
    with pytest.raises(eplb.IOFailureError) as e:
        eplb.Loads.read("/nonexistent/counts.json")
    assert isinstance(e.value, OSError) and e.value.code == -3
    assert "/nonexistent/counts.json" in str(e.value)


# ---- placements ----

def test_placement_arrays_are_read_only_views_that_keep_their_owner():
    m = eplb.Placement.initial(2, 8, 4, 3)
    p2l, l2p = m.phy2log, m.log2phy
    assert p2l.dtype == np.int32 and p2l.shape == (2, 12)
    assert m.logcnt.shape == (2, 8) and l2p.shape == (2, 8, m.max_replicas)
    assert np.shares_memory(p2l, m.phy2log)
    with pytest.raises(ValueError):
        p2l[0, 0] = 1
    del m
    assert p2l.tolist()[0] == [(d * 3 + j) % 8 for d in range(4) for j in range(3)]


def test_log2phy_lists_every_replica_of_every_expert():
    m = eplb.plan(eplb.Loads(np.array([[90, 5, 5, 40, 1, 1, 30, 8]])), num_replicas=12,
                  num_gpus=4)
    for e in range(8):
        slots = [s for s in m.log2phy[0, e] if s >= 0]
        assert len(slots) == m.logcnt[0, e]
        assert sorted(slots) == [s for s in range(12) if m.phy2log[0, s] == e]


def test_placement_from_an_array_round_trips_and_checks_invariants(tmp_path):
    m = eplb.Placement(np.array([[0, 1, 2, 3, 0, 2]]), num_gpus=3)
    m.write(tmp_path / "m.json")
    assert eplb.Placement.read(tmp_path / "m.json") == m
    with pytest.raises(eplb.InvalidPlacementError):
        eplb.Placement(np.array([[0, 0, 1, 2]]), num_gpus=2)  # expert 0 twice on device 0
    with pytest.raises(eplb.InvalidPlacementError):
        eplb.Placement(np.array([[0, 2]]), num_gpus=1, num_experts=3)  # expert 1 has no slot
    with pytest.raises(eplb.InvalidArgumentError):
        eplb.Placement(np.array([[0, 1, 2]]), num_gpus=2)  # 3 slots on 2 devices


def test_bad_expert_maps_name_the_file(tmp_path):
    bad = tmp_path / "map.json"
    bad.write_text('{"moe_layer_count": 1, "layer_list": [{"layer_id": 0, "device_count": 2, '
                   '"device_list": [{"device_id": 0, "device_expert": [0, 1]}, '
                   '{"device_id": 1, "device_expert": [2]}]}]}')
    with pytest.raises(eplb.Error) as e:
        eplb.Placement.read(bad)
    assert str(bad) in str(e.value)


def test_bad_parameters_raise_param_errors_and_leave_the_output_alone(tmp_path):
    loads = eplb.Loads(np.ones((2, 16), dtype=np.int64))
    out = tmp_path / "expert_map.json"
    out.write_text("previous")
    with pytest.raises(eplb.ParamError, match="multiple"):
        eplb.plan(loads, num_replicas=18, num_gpus=4)
    with pytest.raises(eplb.ParamError):
        eplb.plan(loads, num_replicas=8, num_gpus=4)  # fewer slots than experts
    with pytest.raises(eplb.InvalidArgumentError, match="policy"):
        eplb.plan(loads, num_replicas=16, num_gpus=4, policy="greedy")
    with pytest.raises(eplb.InvalidArgumentError, match="max_moves"):
        eplb.plan(loads, num_replicas=16, num_gpus=4, max_moves=3)
    m = eplb.plan(loads, num_replicas=16, num_gpus=4)
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores the mode: write into a missing folder
            with pytest.raises(eplb.IOFailureError):
                m.write(tmp_path / "missing" / "expert_map.json")
        else:
            with pytest.raises(eplb.IOFailureError):
                m.write(out)
    finally:
        os.chmod(tmp_path, 0o700)
    assert out.read_text() == "previous"


def test_every_error_code_has_its_class():
    classes = [eplb.InvalidArgumentError, eplb.OutOfMemoryError, eplb.IOFailureError,
               eplb.FormatError, eplb.RangeError, eplb.ParamError, eplb.InvalidPlacementError,
               eplb.CommError, eplb.VerifyError, eplb.NotSupportedError]
    assert len(set(classes)) == 10
    for cls in classes:
        assert issubclass(cls, eplb.Error) and issubclass(cls, Exception)


# ---- collector ----

@pytest.mark.parametrize("make", [
    lambda a: a.astype(np.int32),
    lambda a: a.astype(np.int64),
    lambda a: torch.from_numpy(a.astype(np.int64)),
    lambda a: torch.from_numpy(a.astype(np.int32)).reshape(-1),
])
def test_record_counts_every_id_once(make):
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 32, size=(512, 8))
    c = eplb.Collector(3, 32)
    c.record(1, make(ids))
    want = np.zeros((3, 32), dtype=np.uint64)
    want[1] = np.bincount(ids.reshape(-1), minlength=32)
    assert np.array_equal(c.counts(), want)


def test_record_refuses_bad_ids_and_counts_nothing():
    c = eplb.Collector(2, 4)
    with pytest.raises(eplb.RangeError, match="4"):
        c.record(0, np.array([1, 2, 4]))
    with pytest.raises(eplb.RangeError):
        c.record(2, np.array([1]))
    with pytest.raises(eplb.InvalidArgumentError, match="int32 or int64"):
        c.record(0, np.array([1.0, 2.0]))
    with pytest.raises(eplb.InvalidArgumentError):
        c.record(0, [1, 2])
    assert c.counts().sum() == 0


def test_windows_read_by_age_and_the_ring_sums_them():
    c = eplb.Collector(1, 2, num_windows=2)
    c.record(0, np.array([0, 0]))
    c.next_window()
    c.record(0, np.array([1]))
    assert c.counts(0).tolist() == [[0, 1]] and c.counts(1).tolist() == [[2, 0]]
    assert c.counts().tolist() == [[2, 1]]
    c.next_window()  # the ring holds two windows: the first one is dropped
    assert c.counts().tolist() == [[0, 1]]
    assert c.loads().count.tolist() == [[0, 1]]
    assert (c.num_layers, c.num_experts, c.num_windows) == (1, 2, 2)


def test_collectors_merge_and_add_counts():
    a, b = eplb.Collector(1, 3), eplb.Collector(1, 3)
    a.record(0, np.array([0, 1]))
    b.add_counts(0, np.array([5, 0, 2]))
    a.merge(b)
    assert a.counts().tolist() == [[6, 1, 2]]
    with pytest.raises(eplb.InvalidArgumentError):
        a.merge(eplb.Collector(1, 4))
    with pytest.raises(eplb.InvalidArgumentError):
        a.add_counts(0, np.array([-1, 0, 0]))


# ---- transfer plans and routing ----

def test_transfer_plan_slots_come_from_where_the_expert_was():
    loads = eplb.Loads.read(os.path.join(DATA, "olmoe/olmoe_c4.json"))
    old = eplb.Placement.initial(loads.num_layers, loads.num_experts, 16, 5)
    new = eplb.plan(loads, num_replicas=80, num_gpus=16)
    t = eplb.transfer_plan(old, new)
    S = 5
    assert t.kind.shape == (loads.num_layers, 80)
    assert t.receives == int((t.kind == eplb.RECV).sum())
    for l in range(loads.num_layers):
        for s in range(80):
            e, k, src = t.expert[l, s], t.kind[l, s], t.src_slot[l, s]
            assert t.to.phy2log[l, s] == e
            if k == eplb.KEEP:
                assert old.phy2log[l, s] == e
            elif k == eplb.LOCAL:
                assert old.phy2log[l, src] == e and src // S == s // S
            elif k == eplb.RECV:
                assert old.phy2log[l, src] == e and src // S == t.src_rank[l, s] != s // S
            else:
                assert k == eplb.DUP and t.to.phy2log[l, src] == e
    # The same experts on the same devices as `new` (only slots within a device move).
    for l in range(loads.num_layers):
        for d in range(16):
            assert sorted(t.to.phy2log[l, d * S:(d + 1) * S]) == \
                sorted(new.phy2log[l, d * S:(d + 1) * S])


def test_route_sends_each_token_to_a_replica_of_its_expert():
    m = eplb.plan(eplb.Loads(np.array([[90, 5, 5, 40, 1, 1, 30, 8]])), num_replicas=12,
                  num_gpus=4)
    ids = np.random.default_rng(3).integers(0, 8, size=1000).astype(np.int32)
    for mode in ("round_robin", "local"):
        slots = eplb.route(m, 0, ids, mode=mode, rank=1)
        assert (m.phy2log[0, slots] == ids).all()
    with pytest.raises(eplb.RangeError):
        eplb.route(m, 0, np.array([8], dtype=np.int32))
    with pytest.raises(eplb.InvalidArgumentError, match="mode"):
        eplb.route(m, 0, ids, mode="nearest")


def test_config_reads_the_generate_section(tmp_path):
    cfg = eplb.load_config(os.path.join(SRC, "examples/eplb.yaml"))
    assert cfg == {"token_collects": True, "token_save_path": "./eplb_out",
                   "expert_map_path": "./eplb_out/expert_map.json"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("generate:\n  token_collects: maybe\n")
    with pytest.raises(eplb.FormatError, match="token_collects"):
        eplb.load_config(bad)


@pytest.mark.parametrize("gpus_per_node,relabel", [(0, False), (4, False), (4, True)])
def test_transfer_plan_equals_the_cli_dry_run(gpus_per_node, relabel, tmp_path):
    loads = eplb.Loads.read(os.path.join(DATA, "olmoe/olmoe_github.json"))
    new = eplb.plan(loads, num_replicas=96, num_gpus=16, num_groups=4, num_nodes=4)
    new.write(tmp_path / "new.json")
    args = ["migrate", "--dry-run", "--from", "initial", "--to", tmp_path / "new.json",
            "--write_map", tmp_path / "held.json"]
    args += ["--gpus_per_node", gpus_per_node] if gpus_per_node else []
    r = cli(*args, *(["--relabel"] if relabel else []))
    assert r.returncode == 0, r.stderr
    want = json.loads(r.stdout)
    old = eplb.Placement.initial(loads.num_layers, loads.num_experts, 16)  # k = ceil(E/G) = 4
    t = eplb.transfer_plan(old, new, gpus_per_node=gpus_per_node, relabel=relabel)
    for key, value in t.stats.items():
        assert want[key] == value, key
    assert eplb.Placement.read(tmp_path / "held.json") == t.to


# ---- re-balancing decisions ----

def _domains():
    return [eplb.Loads.read(os.path.join(DATA, f"olmoe/olmoe_{d}.json"))
            for d in ("arxiv", "github", "c4")]


@pytest.mark.parametrize("max_moves,min_gain", [(None, None), (40, None), (200, 0.1)])
def test_rebalance_moves_only_layers_that_gain_within_the_budget(max_moves, min_gain):
    a, b, _ = _domains()
    cur = eplb.plan(a, num_replicas=80, num_gpus=16)
    d = eplb.rebalance(b, cur, max_moves=max_moves, min_gain=min_gain)
    gain = 0.02 if min_gain is None else min_gain
    assert d.num_moved == d.moved.sum() > 0
    assert d.copies_moved == d.transfer.receives == d.moves.sum()
    assert max_moves is None or d.copies_moved <= max_moves
    for l in range(cur.num_layers):
        if d.moved[l]:
            assert d.new_max_over_mean[l] <= d.cur_max_over_mean[l] - gain + 1e-12
        else:
            assert (d.placement.phy2log[l] == cur.phy2log[l]).all() and d.moves[l] == 0
    # The predictions are the report's figures on the same loads.
    for m, figs in ((cur, d.cur_max_over_mean), (d.placement, d.new_max_over_mean)):
        rep = eplb.report(b, m)["layers"]
        assert [r["max_load"] / r["mean_load"] for r in rep] == pytest.approx(list(figs))
    assert d.transfer.to == d.placement


def test_rebalance_keeps_a_placement_planned_on_the_same_loads():
    a, _, _ = _domains()
    cur = eplb.plan(a, num_replicas=80, num_gpus=16)
    d = eplb.rebalance(a, cur)
    assert d.num_moved == 0 and d.copies_moved == 0 and d.placement == cur


def test_rebalance_combines_collector_windows_by_decay():
    a, b, c = _domains()
    col = eplb.Collector(a.num_layers, a.num_experts, num_windows=3)
    for i, x in enumerate((a, b, c)):  # ages after the loop: c 0, b 1, a 2
        for l in range(x.num_layers):
            col.add_counts(l, x.count[l])
        if i < 2:
            col.next_window()
    cur = eplb.plan(a, num_replicas=80, num_gpus=16)
    combined = eplb.Loads(c.load + 0.5 * b.load + 0.25 * a.load)
    got = eplb.rebalance(col, cur, decay=0.5, max_moves=50)
    want = eplb.rebalance(combined, cur, max_moves=50)
    assert got.placement == want.placement
    assert list(got.moved) == list(want.moved)
    w = eplb.rebalance(col, cur, weights=[1.0, 0.5, 0.25], max_moves=50)
    assert w.placement == want.placement


def test_rebalance_refuses_bad_options_naming_them():
    a, b, _ = _domains()
    cur = eplb.plan(a, num_replicas=80, num_gpus=16)
    with pytest.raises(eplb.InvalidArgumentError, match="min_gain"):
        eplb.rebalance(b, cur, min_gain=-1)
    with pytest.raises(eplb.InvalidArgumentError, match="max_moves"):
        eplb.rebalance(b, cur, max_moves=-5)
    col = eplb.Collector(a.num_layers, a.num_experts, num_windows=2)
    with pytest.raises(eplb.InvalidArgumentError, match="decay"):
        eplb.rebalance(col, cur, decay=0)
    with pytest.raises(eplb.InvalidArgumentError, match="weights"):
        eplb.rebalance(col, cur, weights=[1.0, 1.0, 1.0], num_windows=2)
    with pytest.raises(eplb.InvalidArgumentError):
        eplb.rebalance(eplb.Loads(np.ones((1, 64), dtype=np.int64)), cur)
