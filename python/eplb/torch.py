"""eplb.torch: the three steps of EPLB inside a PyTorch job.

- :class:`Recorder` counts the router's ``topk_ids`` per MoE layer: on a GPU/NPU into a device
  tensor (``scatter_add_``, no synchronisation per call), on the CPU in eplb's C collector;
  :func:`hook` takes the ids from a module's forward output.
- :meth:`Recorder.save` sums every rank's counts over ``torch.distributed`` (reduce to one
  rank), which writes ``token_collects_all.json`` through the library (atomically).
- :func:`migrate` moves expert weights from one placement to another with
  ``torch.distributed.batch_isend_irecv``, executing eplb's transfer plan (only the copies that
  must cross the network, spread over the senders), layer by layer, in place.
- :func:`route` maps logical expert ids to physical slots with tensor ops on the ids' device.

Any backend works: gloo on CPU tensors, NCCL/HCCL on device tensors.
"""
import os
import time
from collections import namedtuple

import torch
import torch.distributed as dist

import eplb as _eplb

__all__ = ["Recorder", "hook", "migrate", "execute", "MigrateResult", "route", "from_config",
           "Rebalancer", "RebalanceStep"]


def _is_dist(group):
    return dist.is_available() and dist.is_initialized()


def _global_rank(group, r):
    """Rank r of `group` in the default group (what torch.distributed's p2p calls take)."""
    if group is None:
        return r
    get = getattr(dist, "get_global_rank", None) or dist.distributed_c10d._get_global_rank
    return get(group, r)


def _comm_device(group):
    """The device collectives of `group` run on: the current CUDA device for NCCL, else CPU."""
    if _is_dist(group) and dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---- collect ----

class Recorder:
    """Counts routed tokens per (layer, expert), in a ring of ``num_windows`` windows.

    ``record(layer, topk_ids)`` takes the router's ids (int32/int64, any shape) on the CPU or
    on one device (``device``, or the device of the first ids that are not on the CPU): ids
    on a GPU/NPU are counted there with ``scatter_add_`` into an int64 tensor
    and never synchronise (ids are not range-checked on the device: that would synchronise);
    CPU ids go to the C collector, which checks them. A Recorder made with ``enabled=False`` (``token_collects:
    false``) records nothing, and :func:`hook` registers nothing for it.
    """

    def __init__(self, num_layers, num_experts, device="cpu", num_windows=1, enabled=True,
                 token_save_path=None):
        self.num_layers, self.num_experts = int(num_layers), int(num_experts)
        self.num_windows = int(num_windows)
        self.device = torch.device(device)
        self.enabled = bool(enabled)
        self.token_save_path = token_save_path
        self._c = _eplb.Collector(self.num_layers, self.num_experts, self.num_windows)
        self._dev = None   # [W, L, E] int64 counts of device ids, ring slot self._cur current
        self._cur = 0
        self._ones = None  # int64 ones reused as scatter_add_'s source
        if self.device.type != "cpu" and self.enabled:
            self._device_counts(self.device)  # allocated now, not in the first forward

    def _device_counts(self, device):
        if self._dev is None:
            self._dev = torch.zeros(self.num_windows, self.num_layers, self.num_experts,
                                    dtype=torch.int64, device=device)
        return self._dev

    def record(self, layer, topk_ids):
        """Counts one forward of one layer (the ids of every token's top-k experts)."""
        if not self.enabled:
            return
        if topk_ids.device.type == "cpu":
            ids = topk_ids if topk_ids.is_contiguous() else topk_ids.contiguous()
            self._c.record(layer, ids)
        else:
            self._record_tensor(layer, topk_ids)

    def _record_tensor(self, layer, topk_ids):
        """Counts with tensor ops on the ids' device (any device; used for all but CPU ids)."""
        if not 0 <= layer < self.num_layers:
            raise _eplb.RangeError(f"record: layer {layer} outside 0..{self.num_layers - 1}")
        if topk_ids.dtype not in (torch.int32, torch.int64):
            raise _eplb.InvalidArgumentError(
                f"topk_ids: dtype must be int32 or int64, got {topk_ids.dtype}")
        ids = topk_ids.reshape(-1).to(torch.int64)
        n = ids.numel()
        if self._ones is None or self._ones.numel() < n or self._ones.device != ids.device:
            self._ones = torch.ones(max(n, 1), dtype=torch.int64, device=ids.device)
        counts = self._device_counts(ids.device)
        if counts.device != ids.device:
            raise _eplb.InvalidArgumentError(
                f"topk_ids: on {ids.device}, the recorder counts on {counts.device}")
        counts[self._cur, layer].scatter_add_(0, ids, self._ones[:n])

    def add_counts(self, layer, counts):
        """Adds E counts made elsewhere to ``layer`` of the current window."""
        if self.enabled:
            c = torch.as_tensor(counts).detach().to("cpu", torch.int64).contiguous()
            self._c.add_counts(layer, c)

    def next_window(self):
        """Closes the current window and opens the next (clearing the oldest when full)."""
        self._c.next_window()
        if self._dev is not None:
            self._cur = (self._cur + 1) % self.num_windows
            self._dev[self._cur].zero_()

    def reset(self):
        """Clears every window."""
        self._c.reset()
        if self._dev is not None:
            self._dev.zero_()
        self._cur = 0

    def counts(self, window=_eplb.WINDOW_ALL):
        """This rank's counts of one window (0 = current, 1 = last closed, ...) or of the ring,
        an int64 CPU tensor [L, E]. Synchronises with the device."""
        host = torch.from_numpy(self._c.counts(window).astype("int64"))
        if self._dev is not None:
            if window == _eplb.WINDOW_ALL:
                host += self._dev.sum(0).cpu()
            else:
                host += self._dev[(self._cur - window) % self.num_windows].cpu()
        return host

    def save(self, token_save_path=None, group=None, dst=0, window=_eplb.WINDOW_ALL):
        """Sums every rank's counts on rank ``dst`` of ``group`` (torch.distributed.reduce) and
        writes ``<token_save_path>/token_collects_all.json`` there, atomically. Collective:
        every rank of the group calls it; each returns the file's path (None when disabled),
        and all raise the same error if the write fails."""
        if not self.enabled:
            return None
        folder = token_save_path if token_save_path is not None else self.token_save_path
        if not folder:
            raise _eplb.InvalidArgumentError("save: no token_save_path (argument or config)")
        total = self.counts(window)
        rank = 0
        status = 0
        if _is_dist(group):
            rank = dist.get_rank(group)
            dev = _comm_device(group)
            t = total.to(dev)
            dist.reduce(t, _global_rank(group, dst), op=dist.ReduceOp.SUM, group=group)
            total = t.cpu()
        path = os.path.join(folder, _eplb.TOKEN_FILE)
        err = None
        if rank == dst:
            try:
                os.makedirs(folder, exist_ok=True)
                _eplb.Loads(total.numpy()).write(path)
            except _eplb.Error as e:
                err = e
            except OSError as e:
                err = _eplb.IOFailureError(f"{folder}: cannot create the folder: {e.strerror}")
            status = err.code if err is not None else 0
        if _is_dist(group):
            s = torch.tensor([status], dtype=torch.int64, device=_comm_device(group))
            dist.broadcast(s, _global_rank(group, dst), group=group)
            status = int(s.item())
        if err is not None:
            raise err
        if status != 0:
            raise _eplb.IOFailureError(f"save: rank {dst} could not write {path}")
        return path


def from_config(config, num_layers, num_experts, device="cpu", num_windows=1):
    """A Recorder switched on and off by the ``generate:`` section of a YAML config (a path
    or eplb.load_config's dict): ``token_collects: false`` gives a disabled Recorder."""
    cfg = _eplb.load_config(config) if isinstance(config, (str, os.PathLike)) else config
    return Recorder(num_layers, num_experts, device, num_windows,
                    enabled=cfg["token_collects"],
                    token_save_path=cfg["token_save_path"] or None)


def _first_int_tensor(output):
    if isinstance(output, torch.Tensor):
        return output if not output.is_floating_point() else None
    if isinstance(output, (tuple, list)):
        for o in output:
            if isinstance(o, torch.Tensor) and not o.is_floating_point() and o.dtype != torch.bool:
                return o
    return None


def hook(module, layer, rec, topk_ids=None):
    """Registers a forward hook on ``module`` (a router or fused-MoE module) that records its
    ``topk_ids`` into ``rec`` as layer ``layer``. ``topk_ids(module, inputs, output)`` returns
    the ids; by default, the output itself if it is an integer tensor, else the first integer
    tensor of an output tuple (e.g. ``(topk_weights, topk_ids)``). Returns the hook's handle
    (``.remove()``), or None when ``rec`` is None or disabled: then nothing is registered."""
    if rec is None or not rec.enabled:
        return None

    def _record(mod, inputs, output):
        ids = topk_ids(mod, inputs, output) if topk_ids is not None else _first_int_tensor(output)
        if ids is None:
            raise _eplb.InvalidArgumentError(
                f"hook: layer {layer}: no integer topk_ids tensor in {type(mod).__name__}'s output"
                " (pass topk_ids=fn)")
        rec.record(layer, ids)

    return module.register_forward_hook(_record)


# ---- move ----

MigrateResult = namedtuple("MigrateResult", "placement copies sent received bytes seconds plan")
MigrateResult.__doc__ = """What migrate() did.

placement: the layout the ranks now hold (experts that stayed keep their slot): route with it.
copies: expert copies sent over the network by all ranks (equals plan.receives).
sent, received: this rank's copies sent and received.
bytes: bytes all ranks sent over the network. seconds: this rank's wall time.
plan: the eplb.Transfer that was executed."""


def _check_weights(weights, L, slots, rank, in_place):
    """A message for the first tensor that does not fit, or None."""
    if len(weights) != L:
        return f"weights: {len(weights)} layers, the placements have {L}"
    for l, ts in enumerate(weights):
        if not isinstance(ts, list if not in_place else (list, tuple)) or len(ts) == 0:
            return (f"weights[{l}]: expected a non-empty list of tensors" +
                    ("" if in_place else " (slot counts differ: the list gets new tensors)"))
        for i, t in enumerate(ts):
            if not isinstance(t, torch.Tensor) or t.dim() < 1 or t.shape[0] != slots:
                return (f"rank {rank}: weights[{l}][{i}]: first dimension must be the {slots} "
                        f"local slots, got shape {tuple(getattr(t, 'shape', ()))}")
            if not t.is_contiguous():
                return f"rank {rank}: weights[{l}][{i}]: tensor must be contiguous"
    return None


def migrate(weights, old, new, group=None, gpus_per_node=0):
    """Moves this rank's expert weights from placement ``old`` to ``new``.

    ``weights[layer]`` is the list of this rank's tensors of that layer whose first dimension
    is its local slots (w13, w2, their scales, ...); rank d of ``group`` is device d of the
    placements. Plans with ``eplb.transfer_plan(old, new, gpus_per_node)`` and runs the plan
    with :func:`execute` on every layer. Collective: every rank calls it with the same
    placements; bad arguments on any rank raise on every rank before anything moves. Returns
    a :data:`MigrateResult` whose ``placement`` is the layout to route with.
    """
    try:
        plan, problem = _eplb.transfer_plan(old, new, gpus_per_node), None
    except _eplb.Error as e:
        plan, problem = None, str(e)
    if _agree(problem is not None, group):
        raise _eplb.InvalidArgumentError(
            f"migrate: {problem}" if problem else "migrate: bad arguments on another rank")
    return execute(weights, plan, group=group)


def execute(weights, plan, layers=None, group=None):
    """Runs the transfer plan ``plan`` (an eplb.Transfer) on this rank's ``weights``, for the
    layer indices in ``layers`` (default: all), one layer after the other: slots that keep
    their expert stay, local copies are made on the rank, every other slot is received from
    the plan's sender with ``batch_isend_irecv``, in the plan's rounds, so that a slot is
    overwritten only once its old content has been read. With equal slot counts the move is in
    place, staging (a copy aside) only the slots the plan stages, at most one layer's worth;
    with different counts each moved layer's tensors are replaced, in its list, by new ones of
    the new count. Collective over ``group``; bad arguments on any rank raise on every rank
    before anything moves. Returns a :data:`MigrateResult` (``placement`` is ``plan.to``)."""
    t0 = time.perf_counter()
    L = plan.num_layers
    world = dist.get_world_size(group) if _is_dist(group) else 1
    rank = dist.get_rank(group) if _is_dist(group) else 0
    todo = range(L) if layers is None else [int(l) for l in layers]
    problem = None
    if world != plan.num_gpus:
        problem = f"group of {world} ranks, the plan has {plan.num_gpus} devices"
    elif any(not 0 <= l < L for l in todo):
        problem = f"layers: an index outside 0..{L - 1}"
    else:
        problem = _check_weights(weights, L, plan.from_slots // world, rank,
                                 plan.from_slots == plan.to_slots)
    if _agree(problem is not None, group):
        raise _eplb.InvalidArgumentError(
            f"migrate: {problem}" if problem else "migrate: bad arguments on another rank")

    sent = received = nbytes = 0
    kind, src_rank, src_slot = plan.kind, plan.src_rank, plan.src_slot
    staged, step = plan.staged, plan.step
    S, Sf = plan.to_slots // world, plan.from_slots // world
    for l in todo:
        n_sent, n_recv, n_bytes = _migrate_layer(weights, l, rank, world, S, Sf, kind[l],
                                                 src_rank[l], src_slot[l], staged[l], step[l],
                                                 group)
        sent, received, nbytes = sent + n_sent, received + n_recv, nbytes + n_bytes
    total = torch.tensor([sent, nbytes], dtype=torch.int64, device=_comm_device(group))
    if _is_dist(group):
        dist.all_reduce(total, group=group)
    return MigrateResult(plan.to, int(total[0]), sent, received, int(total[1]),
                         time.perf_counter() - t0, plan)


def _agree(flag, group):
    """True on every rank when `flag` is true on any (one all_reduce)."""
    if not _is_dist(group):
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_comm_device(group))
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return bool(t.item())


def _migrate_layer(weights, l, rank, world, S, Sf, kind, src_rank, src_slot, staged, step,
                   group):
    """Moves one layer; returns the copies this rank sent and received and the bytes it sent."""
    in_place = S == Sf
    old_ts = list(weights[l])
    new_ts = old_ts if in_place else [torch.empty((S,) + tuple(t.shape[1:]), dtype=t.dtype,
                                                  device=t.device) for t in old_ts]
    n_t = len(old_ts)
    lo, hi = rank * S, (rank + 1) * S

    # Old contents that are read after their slot may be written: copied aside first.
    stage = {}
    if in_place:
        for s in range(lo, hi):
            if staged[s]:
                stage[s] = [t[s - lo].clone() for t in old_ts]

    def source(slot, i):
        """Tensor i of old slot `slot` (this rank's), from the staging area when staged."""
        if slot in stage:
            return stage[slot][i]
        return old_ts[i][slot - rank * Sf]

    # Local copies still to make, and how many of them read each of this rank's old slots.
    todo = [s for s in range(lo, hi) if kind[s] == _eplb.LOCAL]
    readers = {}
    for s in todo:
        p = int(src_slot[s])
        if p not in stage:
            readers[p] = readers.get(p, 0) + 1
    if not in_place:
        for s in range(lo, hi):
            if kind[s] == _eplb.KEEP:
                for i in range(n_t):
                    new_ts[i][s - lo].copy_(old_ts[i][s - lo])

    sent = received = nbytes = 0
    rounds = int(step.max()) + 1 if len(step) else 1
    for k in range(rounds):
        # Local copies of this round: one is made once no pending copy reads its slot.
        pending = [s for s in todo if step[s] == k]
        while pending:
            ready = [s for s in pending if not in_place or readers.get(s, 0) == 0]
            if not ready:
                raise _eplb.VerifyError(f"migrate: layer {l}: local copies wait on each other")
            for s in ready:
                p = int(src_slot[s])
                for i in range(n_t):
                    new_ts[i][s - lo].copy_(source(p, i))
                if p in readers:
                    readers[p] -= 1
            pending = [s for s in pending if s not in ready]
        # This round's messages: receives into this rank's slots, sends of its old contents.
        ops = []
        for s in range(world * S):
            if kind[s] != _eplb.RECV or step[s] != k:
                continue
            if lo <= s < hi:
                for i in range(n_t):
                    ops.append(dist.P2POp(dist.irecv, new_ts[i][s - lo],
                                          _global_rank(group, int(src_rank[s])), group,
                                          s * n_t + i))
                received += 1
            elif src_rank[s] == rank:
                for i in range(n_t):
                    buf = source(int(src_slot[s]), i)
                    ops.append(dist.P2POp(dist.isend, buf, _global_rank(group, s // S), group,
                                          s * n_t + i))
                    nbytes += buf.numel() * buf.element_size()
                sent += 1
        if ops:
            for req in dist.batch_isend_irecv(ops):
                req.wait()
    # Second copies of an expert this rank received once: from the new slot.
    for s in range(lo, hi):
        if kind[s] == _eplb.DUP:
            for i in range(n_t):
                new_ts[i][s - lo].copy_(new_ts[i][int(src_slot[s]) - lo])
    if not in_place:
        weights[l][:] = new_ts
    return sent, received, nbytes


# ---- route ----

_tables = {}  # (id of the placement's handle, layer, mode, rank, gpus_per_node, device)


def route(topk_ids, m, layer, rank=None, mode="round_robin", gpus_per_node=0):
    """Maps each logical expert id of layer index ``layer`` to one of its physical slots in
    ``m`` with tensor ops on the ids' device, with no synchronisation: the n-th id of expert e
    (in flat order) goes to ``slots[e, n % counts[e]]`` of eplb's routing table
    (``eplb.route_table``: all replicas in turn, or with mode "local" those on ``rank``, else
    on its node, else all), the slots ``eplb.route`` gives. The table is cached per placement,
    layer, mode, rank and device. ``rank`` defaults to this process's rank. Returns int64
    slots of the ids' shape."""
    if rank is None:
        rank = dist.get_rank() if _is_dist(None) else 0
    key = (id(m._h), layer, mode, rank, gpus_per_node, str(topk_ids.device))
    entry = _tables.get(key)
    if entry is None or entry[0] is not m._h:  # a new placement may reuse a freed one's id
        slots, counts = _eplb.route_table(m, layer, mode, rank, gpus_per_node)
        entry = (m._h, torch.from_numpy(slots.astype("int64")).to(topk_ids.device),
                 torch.from_numpy(counts.astype("int64")).to(topk_ids.device))
        if len(_tables) >= 4096:  # bounds the cache when placements come and go
            _tables.clear()
        _tables[key] = entry
    _, slots, counts = entry
    ids = topk_ids.reshape(-1).to(torch.int64)
    # n of each id: its position in a stable sort by expert minus its expert's first position.
    sorted_ids, order = torch.sort(ids, stable=True)
    first = torch.searchsorted(sorted_ids, sorted_ids)
    nth = torch.empty_like(ids)
    nth[order] = torch.arange(ids.numel(), device=ids.device) - first
    return slots[ids, nth % counts[ids]].reshape(topk_ids.shape)


# ---- online re-balancing ----

RebalanceStep = namedtuple("RebalanceStep", "step moved layers copies bytes predicted_before "
                                            "predicted_after measured seconds")
RebalanceStep.__doc__ = """One re-plan of a Rebalancer (its ``history``).

step: the step it ran at. moved: layers that move (0: kept). layers: their indices.
copies, bytes: what crosses the network for them (all ranks; bytes from this rank's tensor
sizes, which every rank shares). predicted_before/after: the
overall max/mean of the serving placement and of the new one on the decision's loads.
measured: max/mean of the served placement on the last window's counts. seconds: this rank's
time in the decision and the moves made at once."""


class Rebalancer:
    """Re-plans from recent windows and moves the weights that change, while the job runs.

    ``Rebalancer(rec, weights, placement, every=steps, windows=W, ...)``; call ``step()`` after
    each forward. Every ``every / W`` steps it closes ``rec``'s window (``rec`` needs a ring of
    at least W windows); every ``every`` steps it sums the last W windows over ``group``
    (all_reduce), lets the library decide (``eplb.rebalance``: the windows combined with
    ``decay``, a candidate re-planned within ``max_moves`` copies, only the layers whose
    predicted max/mean drops by ``min_gain`` move) and migrates the moved layers' weights.
    With ``layers_per_step`` the move is spread over the following steps, that many layers a
    step, and a layer's routing switches only once its weights have landed: route with
    ``placement`` (or ``route()``) in every forward. Every rank takes the same decision (same
    summed counts, same code). Each re-plan is logged (``log``, default ``print`` on rank 0)
    and kept in ``history``.
    """

    def __init__(self, rec, weights, placement, every, windows=1, max_moves=None, min_gain=None,
                 layers_per_step=None, decay=1.0, num_groups=1, num_nodes=1,
                 policy="balanced", hierarchy=None, group=None, gpus_per_node=0, log=None):
        every, windows = int(every), int(windows)
        if windows < 1 or every < windows or every % windows:
            raise _eplb.InvalidArgumentError(
                f"Rebalancer: every ({every}) must be a multiple of windows ({windows}) >= 1")
        if rec.num_windows < windows:
            raise _eplb.InvalidArgumentError(
                f"Rebalancer: the recorder holds {rec.num_windows} windows, {windows} needed")
        if layers_per_step is not None and int(layers_per_step) < 1:
            raise _eplb.InvalidArgumentError("Rebalancer: layers_per_step must be >= 1")
        self.rec, self.weights, self.placement = rec, weights, placement
        self.every, self.windows, self.decay = every, windows, float(decay)
        self.max_moves, self.min_gain = max_moves, min_gain
        self.layers_per_step = None if layers_per_step is None else int(layers_per_step)
        self.params = dict(num_replicas=placement.num_slots, num_gpus=placement.num_gpus,
                           num_groups=num_groups, num_nodes=num_nodes, policy=policy,
                           hierarchy=hierarchy)
        self.group, self.gpus_per_node = group, gpus_per_node
        rank = dist.get_rank(group) if _is_dist(group) else 0
        self.log = log if log is not None else (print if rank == 0 else (lambda *a: None))
        self.steps = 0
        self.history = []
        self._pending = []     # layer indices whose weights still have to move
        self._target = None    # the decision's placement while layers are pending
        self._plan = None

    def route(self, topk_ids, layer, **kw):
        """Routes with the placement the weights are in now (:func:`route`)."""
        return route(topk_ids, self.placement, layer, **kw)

    def step(self):
        """Advances one step; returns the RebalanceStep of a re-plan made now, else None."""
        self.steps += 1
        if self._pending:
            self._land(self._pending[:self.layers_per_step])
        done = None
        if self.steps % self.every == 0:
            if self._pending:  # a re-plan needs the weights where the placement says
                self._land(self._pending)
            done = self._replan()
        if self.steps % (self.every // self.windows) == 0:
            self.rec.next_window()
        return done

    def _window_counts(self):
        """The last W windows, summed over the group: int64 [W, L, E], newest first."""
        w = torch.stack([self.rec.counts(a) for a in range(self.windows)])
        if _is_dist(self.group):
            t = w.to(_comm_device(self.group))
            dist.all_reduce(t, group=self.group)
            w = t.cpu()
        return w

    def _replan(self):
        t0 = time.perf_counter()
        counts = self._window_counts()
        L, E = counts.shape[1], counts.shape[2]
        windows = _eplb.Collector(L, E, self.windows)
        for a in reversed(range(self.windows)):  # oldest first, so that ages match
            for l in range(L):
                windows.add_counts(l, counts[a, l].numpy())
            if a:
                windows.next_window()
        measured = _eplb.report(_eplb.Loads(counts[0].numpy()), self.placement)["overall"]
        d = _eplb.rebalance(windows, self.placement, decay=self.decay,
                            max_moves=self.max_moves, min_gain=self.min_gain, **self.params)
        moved = [int(l) for l in d.moved.nonzero()[0]]
        plan = d.transfer
        if moved and self.gpus_per_node:  # senders chosen on the receiver's node first
            plan = _eplb.transfer_plan(self.placement, d.placement, self.gpus_per_node)
        kind = plan.kind
        nbytes = sum(int((kind[l] == _eplb.RECV).sum()) *
                     sum(t[0].numel() * t.element_size() for t in self.weights[l])
                     for l in moved)
        if moved:
            self._plan, self._target = plan, plan.to
            self._pending = list(moved)
            if self.layers_per_step is None:
                self._land(self._pending)
        rec = RebalanceStep(self.steps, len(moved), moved, d.copies_moved, nbytes,
                            d.cur_overall, d.new_overall,
                            measured["max_load"] / measured["mean_load"]
                            if measured["mean_load"] > 0 else 1.0,
                            time.perf_counter() - t0)
        self.history.append(rec)
        if moved:
            how = "now" if self.layers_per_step is None else \
                f"over {-(-len(moved) // self.layers_per_step)} steps"
            self.log(f"eplb rebalance at step {self.steps}: {len(moved)} layer(s) move {how} "
                     f"({d.copies_moved} copies, {nbytes} bytes), predicted max/mean "
                     f"{d.cur_overall:.4f} -> "
                     f"{d.new_overall:.4f}, measured {rec.measured:.4f}")
        else:
            self.log(f"eplb rebalance at step {self.steps}: keep (predicted max/mean "
                     f"{d.cur_overall:.4f}, best candidate gains less than min_gain), "
                     f"measured {rec.measured:.4f}")
        return rec

    def _land(self, layers):
        """Moves the weights of `layers` (pending ones) and switches their routing."""
        execute(self.weights, self._plan, layers=layers, group=self.group)
        rows = self.placement.phy2log.copy()
        for l in layers:
            rows[l] = self._target.phy2log[l]
        self._pending = [l for l in self._pending if l not in set(layers)]
        if self._pending:
            self.placement = _eplb.Placement(rows, self.placement.num_gpus,
                                             self.placement.num_experts,
                                             self.placement.layer_ids)
        else:
            self.placement, self._target, self._plan = self._target, None, None
