"""eplb: expert-parallel load balancing for Mixture-of-Experts models, from Python.

A thin layer over libeplb (the C library, through the ``_eplb`` extension): every computation
is the library's, arrays are shared with it without copies (numpy views of its memory), and
its errors are raised as :class:`eplb.Error` subclasses carrying the library's detail message.

    import eplb
    loads = eplb.Loads.read("token_collects_all.json")
    m = eplb.plan(loads, num_replicas=288, num_gpus=32, num_groups=8, num_nodes=4)
    m.write("expert_map.json")
    print(eplb.report(loads, m)["overall"]["balancedness"])

The PyTorch side (recording ``topk_ids`` on the device, gathering over torch.distributed,
moving expert weights, routing) is :mod:`eplb.torch`.
"""
import os as _os

import numpy as _np

from . import _eplb
from ._eplb import (  # noqa: F401  (the exception classes are part of the API)
    CommError,
    Error,
    FormatError,
    InvalidArgumentError,
    InvalidPlacementError,
    IOFailureError,
    NotSupportedError,
    OutOfMemoryError,
    ParamError,
    RangeError,
    VerifyError,
)

__version__ = _eplb.version()

__all__ = [
    "Loads", "Placement", "Transfer", "Collector", "plan", "report", "report_svg",
    "lower_bound", "transfer_plan", "route", "route_table", "rebalance", "Rebalance", "load_config", "Error", "InvalidArgumentError",
    "OutOfMemoryError", "IOFailureError", "FormatError", "RangeError", "ParamError",
    "InvalidPlacementError", "CommError", "VerifyError", "NotSupportedError",
    "KEEP", "LOCAL", "RECV", "DUP", "WINDOW_ALL", "TOKEN_FILE",
]

#: Kinds of a transfer plan's slots (``Transfer.kind``), as ``enum eplb_xfer_kind``.
KEEP, LOCAL, RECV, DUP = 0, 1, 2, 3
#: ``window`` value that reads the sum of a collector's whole ring.
WINDOW_ALL = _eplb.WINDOW_ALL
#: Name of the gathered counts file inside a token_save_path folder.
TOKEN_FILE = _eplb.TOKEN_FILE

_POLICIES = {"deepseek": 0, "balanced": 1}
_HIERARCHIES = {None: 0, "auto": 0, "strict": 1, "soft": 2, "none": 3}
_ROUTE_MODES = {"round_robin": 0, "local": 1}


def _choice(what, value, table):
    try:
        return table[value]
    except (KeyError, TypeError):
        names = ", ".join(repr(k) for k in table)
        raise InvalidArgumentError(f"{what}: {value!r} is not one of {names}") from None


def _array(x):
    """Lists and tuples as numpy arrays; arrays and tensors as they are (no copy)."""
    return _np.asarray(x) if isinstance(x, (list, tuple)) else x


def _view(array):
    """A numpy view of an _eplb.Array (read-only, sharing the library's memory)."""
    return _np.asarray(array)


class Loads:
    """A load matrix: tokens per (layer, expert), rows in ascending layer id.

    ``Loads(values, layer_ids=None)`` takes an L x E array (numpy or CPU tensor) of
    non-negative finite numbers; integer arrays keep exact counts. ``Loads.read`` reads the
    seed format ``{"<layer>": {"<expert>": count}}`` or SGLang's dump, from a file, a folder
    (every ``*.json``, summed) or a list of files (summed).
    """

    __slots__ = ("_h",)

    def __init__(self, values, layer_ids=None):
        self._h = _eplb.loads_from_array(_array(values),
                                         None if layer_ids is None else _array(layer_ids))

    @classmethod
    def _wrap(cls, handle):
        obj = cls.__new__(cls)
        obj._h = handle
        return obj

    @classmethod
    def read(cls, path, num_experts=0):
        """Reads counts from a file, a folder of ``*.json`` files or a list of files."""
        if isinstance(path, (list, tuple)):
            return cls._wrap(_eplb.loads_read(list(path), num_experts))
        folder = _os.path.isdir(path)
        return cls._wrap(_eplb.loads_read(path, num_experts, folder))

    @classmethod
    def parse(cls, text, name="<string>", num_experts=0):
        """Parses one JSON document of counts (``name`` is used in error messages)."""
        return cls._wrap(_eplb.loads_parse(text, name, num_experts))

    def write(self, path):
        """Writes the seed format atomically (temp file + rename)."""
        self._h.write(_os.fspath(path))

    num_layers = property(lambda self: self._h.num_layers)
    num_experts = property(lambda self: self._h.num_experts)
    layer_ids = property(lambda self: _view(self._h.layer_ids), doc="int64 [L]")
    load = property(lambda self: _view(self._h.load), doc="float64 [L, E]")

    @property
    def count(self):
        """Exact counts, int64 [L, E]; None when some value was fractional."""
        c = self._h.count
        return None if c is None else _view(c)

    def __repr__(self):
        return f"eplb.Loads(num_layers={self.num_layers}, num_experts={self.num_experts})"


class Placement:
    """Where every replica of every logical expert lives, per layer (an expert map).

    Slot p of a layer belongs to device ``p // (num_slots // num_gpus)``. ``phy2log`` [L, R],
    ``logcnt`` [L, E] and ``log2phy`` [L, E, X] (-1 padded) are read-only int32 numpy views.
    ``Placement(phy2log, num_gpus, num_experts=0, layer_ids=None)`` builds one from its slot
    table and checks every invariant.
    """

    __slots__ = ("_h",)

    def __init__(self, phy2log, num_gpus, num_experts=0, layer_ids=None, allow_duplicates=False):
        self._h = _eplb.placement_from_array(_array(phy2log), num_gpus, num_experts,
                                             None if layer_ids is None else _array(layer_ids),
                                             allow_duplicates)

    @classmethod
    def _wrap(cls, handle):
        obj = cls.__new__(cls)
        obj._h = handle
        return obj

    @classmethod
    def read(cls, path, num_experts=0):
        """Reads an expert_map.json (the seed's, or the full format) and validates it."""
        return cls._wrap(_eplb.placement_read(_os.fspath(path), num_experts))

    @classmethod
    def initial(cls, num_layers, num_experts, num_gpus, k=None):
        """The layout a job starts from: device d holds experts (d*k + j) % E, j < k
        (k defaults to E / G, the layout without redundancy)."""
        if k is None:
            k = num_experts // num_gpus if num_gpus > 0 else 0
        return cls._wrap(_eplb.placement_initial(num_layers, num_experts, num_gpus, k))

    def write(self, path, full=False):
        """Writes expert_map.json atomically; ``full`` adds phy2log, logcnt and log2phy."""
        self._h.write(_os.fspath(path), full)

    def validate(self, allow_duplicates=False):
        """Raises InvalidPlacementError naming the first broken invariant."""
        self._h.validate(allow_duplicates)

    def duplicates(self):
        """Extra copies of an expert on a device that already holds it (0 normally)."""
        return self._h.duplicates()

    def device_loads(self, loads, layer):
        """Load of each device in layer index ``layer`` under the loads' same row."""
        return _view(_eplb.device_loads(loads._h, layer, self._h, layer))

    num_layers = property(lambda self: self._h.num_layers)
    num_experts = property(lambda self: self._h.num_experts)
    num_slots = property(lambda self: self._h.num_slots)
    num_gpus = property(lambda self: self._h.num_gpus)
    max_replicas = property(lambda self: self._h.max_replicas)
    slots_per_gpu = property(lambda self: self._h.num_slots // self._h.num_gpus)
    layer_ids = property(lambda self: _view(self._h.layer_ids), doc="int64 [L]")
    phy2log = property(lambda self: _view(self._h.phy2log), doc="int32 [L, R]")
    logcnt = property(lambda self: _view(self._h.logcnt), doc="int32 [L, E]")
    log2phy = property(lambda self: _view(self._h.log2phy), doc="int32 [L, E, X], -1 padded")

    def __eq__(self, other):
        if not isinstance(other, Placement):
            return NotImplemented
        return (self.num_gpus == other.num_gpus and self.num_experts == other.num_experts
                and _np.array_equal(self.layer_ids, other.layer_ids)
                and _np.array_equal(self.phy2log, other.phy2log))

    __hash__ = None

    def __repr__(self):
        return (f"eplb.Placement(num_layers={self.num_layers}, num_experts={self.num_experts}, "
                f"num_slots={self.num_slots}, num_gpus={self.num_gpus})")


def plan(loads, num_replicas, num_gpus, num_groups=1, num_nodes=1, policy="balanced",
         hierarchy=None, old=None, max_moves=None, allow_duplicates=False, time_budget_ms=0.0):
    """Plans a placement of ``loads`` (``eplb_plan``), or re-plans against ``old`` moving the
    fewest weights and at most ``max_moves`` (``eplb_plan_replan``; None: no budget).

    policy: "balanced" (default) or "deepseek"; hierarchy (balanced only): None/"auto",
    "strict", "soft" or "none". Raises ParamError for parameters that do not fit.
    """
    if old is not None and not isinstance(old, Placement):
        raise TypeError(f"old: expected eplb.Placement, got {type(old).__name__}")
    if max_moves is not None and old is None:
        raise InvalidArgumentError("max_moves: needs old (the placement to move from)")
    h = _eplb.plan(loads._h, num_replicas, num_gpus, num_groups, num_nodes,
                   _choice("policy", policy, _POLICIES),
                   _choice("hierarchy", hierarchy, _HIERARCHIES), allow_duplicates,
                   float(time_budget_ms), None if old is None else old._h,
                   -1 if max_moves is None else int(max_moves))
    return Placement._wrap(h)


def report(loads, m, old=None, num_groups=1, num_nodes=1):
    """The figures of ``eplb report --json`` as a dict, same keys: ``{"num_gpus",
    "num_slots", "layers": [...], "overall": {...}}``, each line with total_load, mean_load,
    max_load, lower_bound, balancedness, max_over_lb, imbalance, duplicates, missing, moves
    (None without old) and off_node_share, and the layers' lines with layer_id."""
    return _eplb.report(loads._h, m._h, None if old is None else old._h, num_groups, num_nodes)


def report_svg(loads, m, path, initial=None):
    """Draws device loads before/after and the expert heat map to an SVG file, atomically."""
    _eplb.report_svg(loads._h, m._h, None if initial is None else initial._h,
                     _os.fspath(path))


def lower_bound(loads, layer, num_slots, num_gpus):
    """The lower bound on the busiest device's load of row ``layer`` (eplb/quality.h)."""
    return _eplb.lower_bound(loads._h, layer, num_slots, num_gpus)


class Transfer:
    """A transfer plan from an old placement to a new one (``eplb_transfer_plan_ex``).

    Per layer and slot of the new layout [L, R_to] (int32, read-only): ``kind`` (KEEP, LOCAL,
    RECV, DUP), ``src_rank``, ``src_slot`` (a slot of the old layout; of the new one for DUP),
    ``expert``, ``staged`` (uint8: copied aside first when moving in place), ``step`` (the
    round the slot is written in when moving in place); ``needed`` [L, R_from]; ``stats``
    (dict: receives, keeps, local_copies, max_sent, ...); ``to``: the new layout as the plan
    lays it out (experts that stay keep their slot): route with this one.
    """

    __slots__ = ("_h", "to")

    def __init__(self, handle):
        self._h = handle
        self.to = Placement._wrap(handle.to())

    num_layers = property(lambda self: self._h.num_layers)
    num_gpus = property(lambda self: self._h.num_gpus)
    from_slots = property(lambda self: self._h.from_slots)
    to_slots = property(lambda self: self._h.to_slots)
    kind = property(lambda self: _view(self._h.kind))
    src_rank = property(lambda self: _view(self._h.src_rank))
    src_slot = property(lambda self: _view(self._h.src_slot))
    expert = property(lambda self: _view(self._h.expert))
    staged = property(lambda self: _view(self._h.staged))
    step = property(lambda self: _view(self._h.step))
    needed = property(lambda self: _view(self._h.needed))
    stats = property(lambda self: self._h.stats)
    receives = property(lambda self: self._h.stats["receives"],
                        doc="expert copies sent over the network")

    def staging_slots(self, layer, rank):
        """Slots ``rank`` stages in ``layer`` when moving in place."""
        return self._h.staging_slots(layer, rank)

    def bytes(self, bytes_per_copy):
        """Bytes sent over the network: receives times the bytes of one expert copy."""
        return self.receives * int(bytes_per_copy)

    def __repr__(self):
        s = self.stats
        return (f"eplb.Transfer(num_layers={self.num_layers}, receives={s['receives']}, "
                f"keeps={s['keeps']}, local_copies={s['local_copies']})")


class Collector(_eplb.Collector):
    """Token counters per (layer, expert) in a ring of windows (eplb/collect.h), in C.

    ``Collector(num_layers, num_experts, num_windows=1)``; ``record(layer, topk_ids)`` counts
    one forward of one layer from int32/int64 ids of any shape (numpy array or CPU tensor,
    contiguous), straight into the C counters; ``add_counts(layer, counts)`` adds E counts made
    elsewhere; ``next_window()``, ``reset()``, ``merge(other)``. ``counts(window)`` and
    ``loads(window)`` read one window (0 = current, 1 = the last closed, ...) or, by default,
    the whole ring.
    """

    __slots__ = ()

    def counts(self, window=WINDOW_ALL):
        """The counts of one window (or the ring), uint64 [L, E] (a copy)."""
        return _view(super().counts(window))

    def loads(self, window=WINDOW_ALL):
        """The counts of one window (or the ring) as Loads, ready for plan()."""
        return Loads._wrap(super().loads(window))

    num_layers = property(lambda self: self.dims()[0])
    num_experts = property(lambda self: self.dims()[1])
    num_windows = property(lambda self: self.dims()[2])


def transfer_plan(old, new, gpus_per_node=0, align=True, relabel=False):
    """Plans how to turn placement ``old`` into ``new``: the fewest copies over the network,
    senders spread over the ranks holding each expert (on the receiver's node first)."""
    return Transfer(_eplb.transfer_plan(old._h, new._h, gpus_per_node, align, relabel))


def route(m, layer, logical_ids, mode="round_robin", rank=0, gpus_per_node=0):
    """Maps logical expert ids (int32, any shape) of layer index ``layer`` to physical slots
    of ``m`` (``eplb_route``): "round_robin", an expert's replicas in turn (its n-th id of
    the call to replica n mod its replica count), or "local" (a replica on ``rank``, else on
    its node, else any, in turn the same way). Returns an int32 array of ids' shape."""
    ids = _np.ascontiguousarray(logical_ids, dtype=_np.int32)
    out = _np.empty_like(ids)
    _eplb.route(m._h, layer, ids, out, _choice("mode", mode, _ROUTE_MODES), rank, gpus_per_node)
    return out


def route_table(m, layer, mode="round_robin", rank=0, gpus_per_node=0):
    """The routing rule as arrays (``eplb_route_table``): ``(slots [E, X], counts [E])``,
    int32, such that ``route`` sends the n-th id of expert e in a call to
    ``slots[e, n % counts[e]]``."""
    slots, counts = _eplb.route_table(m._h, layer, _choice("mode", mode, _ROUTE_MODES), rank,
                                      gpus_per_node)
    return _view(slots), _view(counts)


class Rebalance:
    """A re-balancing decision (``eplb_rebalance``): ``placement`` to serve with (kept layers
    hold the current rows exactly, moved ones are slot-aligned with them), ``transfer`` (the
    Transfer from the current placement to it), ``moved`` (bool [L]), ``num_moved``,
    ``copies_moved``, per layer ``cur_max_over_mean``, ``new_max_over_mean``,
    ``candidate_max_over_mean`` (float [L]) and ``moves`` (int [L]), overall ``cur_overall``
    and ``new_overall`` (sum of max over sum of mean), all predicted on the decision's loads."""

    __slots__ = ("placement", "transfer", "moved", "num_moved", "copies_moved",
                 "cur_max_over_mean", "new_max_over_mean", "candidate_max_over_mean", "moves",
                 "cur_overall", "new_overall")

    def __init__(self, d):
        self.placement = Placement._wrap(d["placement"])
        self.transfer = Transfer(d["transfer"])
        self.moved = _view(d["moved"]).astype(bool)
        for key in ("cur_max_over_mean", "new_max_over_mean", "candidate_max_over_mean",
                    "moves"):
            setattr(self, key, _view(d[key]))
        for key in ("num_moved", "copies_moved", "cur_overall", "new_overall"):
            setattr(self, key, d[key])

    def __repr__(self):
        return (f"eplb.Rebalance(num_moved={self.num_moved}, copies_moved={self.copies_moved}, "
                f"max/mean {self.cur_overall:.4f} -> {self.new_overall:.4f})")


def rebalance(source, cur, num_replicas=None, num_gpus=None, num_groups=1, num_nodes=1,
              policy="balanced", hierarchy=None, max_moves=None, min_gain=None,
              first_window=0, num_windows=0, weights=None, decay=1.0, allow_duplicates=False,
              time_budget_ms=0.0):
    """Decides whether and where to move experts of placement ``cur`` (``eplb_rebalance``):
    from ``source``, a Loads (already combined) or a Collector whose windows (ages
    ``first_window`` .. ``+num_windows-1``, 0: all it holds) are combined by ``weights``
    (newest first) or ``decay``; a candidate is re-planned within ``max_moves`` copies (None:
    no limit) and a layer moves only when its predicted max/mean drops by at least
    ``min_gain`` (None: the library's default, 0.02). Deterministic. Returns a Rebalance."""
    if not isinstance(source, (Loads, _eplb.Collector)):
        raise TypeError(f"source: expected eplb.Loads or eplb.Collector, got "
                        f"{type(source).__name__}")
    if min_gain is not None and not min_gain >= 0:
        raise InvalidArgumentError(f"min_gain: {min_gain} is not a finite value >= 0")
    d = _eplb.rebalance(
        source._h if isinstance(source, Loads) else source, cur._h,
        cur.num_slots if num_replicas is None else num_replicas,
        cur.num_gpus if num_gpus is None else num_gpus, num_groups, num_nodes,
        _choice("policy", policy, _POLICIES), _choice("hierarchy", hierarchy, _HIERARCHIES),
        allow_duplicates, float(time_budget_ms), -1 if max_moves is None else int(max_moves),
        -1.0 if min_gain is None else float(min_gain), first_window, num_windows,
        None if weights is None else _np.ascontiguousarray(weights, dtype=_np.float64),
        float(decay))
    return Rebalance(d)


def load_config(path):
    """Reads the ``generate:`` section of a job's YAML config (libyaml): a dict with
    token_collects (bool), token_save_path and expert_map_path (str, "" when unset)."""
    return _eplb.config_load(_os.fspath(path))
