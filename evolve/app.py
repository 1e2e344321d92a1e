"""The application's view of a candidate: switching energy on its operand stream, errors under its operands.

Two additions to the bit-parallel evaluator (:mod:`evolve.evaluator`), both computed by compiled kernels
beside :mod:`evolve.kernels` and used only when a run asks for them:

**Power** (``--cost power``). The operand stream that ``ppa`` measures power with
(:func:`ppa.activity.power_stream`, the run's seed and the same salt) is simulated bit-parallel, one vector
per lane *in stream order*. A gate's toggles are ``popcount(v XOR (v shifted by one vector))`` over its
value planes: how often its output changes between consecutive operand pairs (zero-delay, so glitches
are not counted). Each toggle costs the gate's cell energy from the Liberty: the internal energy of one
output transition at the gate's load (:meth:`tech.Technology.toggle_energy`, interpolated in the
load) plus the switching energy ``C V^2 / 2`` of that load, where the load is the input capacitance of
every gate reading it plus the STA's output load for each primary output it drives. The cost is the sum
over active gates divided by the transitions: energy per operation, in pJ for a library in pF and V.
Children are simulated incrementally on the stream too: only the gates the evaluator marks dirty are
recomputed, the others' toggle counts come from the parent.

**Errors under the application** (``--mae-limit``, ``--bias-limit``). WMED-style: every input pair is
weighted by ``p_a(a) * p_b(b)`` (the operand histograms), exactly over all pairs (up to 16 input bits).
The weighted sums of ``|y - p|`` and of ``y - p`` are accumulated from the bit planes the WCE kernel
already has, a byte of lanes at a time through a table of the lanes' weights. The WCE stays the hard
limit over every input.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from evolve import kernels
from evolve.evaluator import Evaluator
from evolve.netlist import FUNCS, NOT, Netlist

NO_LIMIT = 1 << 62
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@njit(cache=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return int((x * _H01) >> np.uint64(56))


@njit(cache=True, inline="always")
def _interp(xs, ys, m, x):
    """Piecewise linear through the first ``m`` points of ``xs``/``ys``, extrapolated at both ends."""
    if m < 2:
        return ys[0]
    i = 0
    while i < m - 2 and x > xs[i + 1]:
        i += 1
    return ys[i] + (ys[i + 1] - ys[i]) * (x - xs[i]) / (xs[i + 1] - xs[i])


@njit(cache=True, inline="always")
def _simulate_dirty(func, in0, in1, first, order, dirty, st, pbase, sbase, ch):
    """One chunk: the dirty gates of ``order`` into rows ``sbase + address``, reading clean ones at ``pbase``."""
    for idx in range(order.shape[0]):
        k = order[idx]
        a = first + k
        if dirty[a]:
            r0 = (sbase if dirty[in0[k]] else pbase) + in0[k]
            r1 = (sbase if dirty[in1[k]] else pbase) + in1[k]
            kernels._apply(func[k], st, r0, r1, sbase + a, ch)


@njit(cache=True)
def stream_energy(func, in0, in1, out, first, order, dirty, st, n_chunks, n_addr, buf, mask, loads, energy,
                  n_pts, cap, po_cap, half_v2, ptog, ctog):
    """Simulate the ``dirty`` gates of ``order`` on the stream into buffer ``buf`` (clean ones are read from
    buffer 0), count every active gate's toggles into ``ctog`` (the parent's ``ptog`` for clean gates) and
    return the switching energy of the stream: sum of toggles x energy per toggle at the gate's load."""
    ch = st.shape[1]
    n = func.shape[0]
    for c in range(n_chunks):
        _simulate_dirty(func, in0, in1, first, order, dirty, st, c * n_addr, (buf * n_chunks + c) * n_addr, ch)
    for idx in range(order.shape[0]):
        k = order[idx]
        a = first + k
        if dirty[a]:
            t = 0
            prev = np.uint64(0)
            for c in range(n_chunks):
                r = (buf * n_chunks + c) * n_addr + a
                for i in range(ch):
                    w = st[r, i]
                    t += _popcount((w ^ ((w << np.uint64(1)) | (prev >> np.uint64(63)))) & mask[c, i])
                    prev = w
            ctog[k] = t
        else:
            ctog[k] = ptog[k]
    load = np.zeros(first + n)
    for idx in range(order.shape[0]):
        k = order[idx]
        f = func[k]
        load[in0[k]] += cap[f]
        if f != NOT:
            load[in1[k]] += cap[f]
    for j in range(out.shape[0]):
        load[out[j]] += po_cap
    total = 0.0
    for idx in range(order.shape[0]):
        k = order[idx]
        f = func[k]
        c_l = load[first + k]
        total += ctog[k] * (_interp(loads[f], energy[f], n_pts[f], c_l) + half_v2 * c_l)
    return total


@njit(cache=True)
def evaluate_weighted(func, in0, in1, out, first, order, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed,
                      stop_above, wfac, wtid, wtab, mae_stop):
    """:func:`evolve.kernels.evaluate` that also sums ``w |y - p|`` and ``w (y - p)`` over every lane, the
    lane weights being ``wfac[word] * table[wtid[word]]`` (``wtab[t, byte, bits]``: the weight of the set
    lanes of one byte). Returns (wce, weighted |error| sum, weighted error sum); stops early once the WCE
    exceeds ``stop_above`` or the |error| sum exceeds ``mae_stop`` (both only grow)."""
    ch, nbc = st.shape[1], ex.shape[1]
    planes = np.empty((2 * nbc + 3, ch), np.uint64)  # the output's planes, |y - p|'s, and scratch
    yb, db, tmp = planes[:nbc], planes[nbc:2 * nbc], planes[2 * nbc:]
    wce, s_abs, s_neg = 0, 0.0, 0.0
    for c in range(n_chunks):
        pbase = c * n_addr
        sbase = (buf * n_chunks + c) * n_addr
        _simulate_dirty(func, in0, in1, first, order, dirty, st, pbase, sbase, ch)
        kernels._gather_outputs(out, dirty, st, pbase, sbase, yb, nb, nbc, is_signed)
        m = kernels._max_abs_diff(yb, ex, c, nbc, db, tmp)
        # tmp[0]: the final borrow of y - p, i.e. the lanes where the error is negative
        for i in range(ch):
            j = c * ch + i
            fac = wfac[j]
            if fac == 0.0:
                continue
            t = wtid[j]
            neg = tmp[0, i]
            sa = 0.0
            sn = 0.0
            for k in range(nbc):
                w = db[k, i]
                if w == 0:
                    continue
                wn = w & neg
                pa = 0.0
                pn = 0.0
                for q in range(8):
                    sh = np.uint64(8 * q)
                    pa += wtab[t, q, (w >> sh) & np.uint64(255)]
                    pn += wtab[t, q, (wn >> sh) & np.uint64(255)]
                scale = float(1 << k)
                sa += pa * scale
                sn += pn * scale
            s_abs += fac * sa
            s_neg += fac * sn
        if m > wce:
            wce = m
            if wce > stop_above:
                return wce, s_abs, s_abs - 2.0 * s_neg
        if s_abs > mae_stop:
            return wce, s_abs, s_abs - 2.0 * s_neg
    return wce, s_abs, s_abs - 2.0 * s_neg


@njit(cache=True)
def assess(func, in0, in1, out, pfunc, pin0, pin1, first, weights, max_depth, cost_cap, valid, dirty, st,
           n_chunks, n_addr, buf, ex, nb, is_signed, stop_above,
           use_power, pst, p_chunks, mask, loads, energy, n_pts, cap, po_cap, half_v2, ptog, ctog,
           use_app, wfac, wtid, wtab, mae_stop):
    """:func:`evolve.kernels.assess` with the stream energy as the cost (``use_power``) and the weighted
    error sums (``use_app``). Returns (wce, cost, depth, act, order, weighted |error| sum, weighted error
    sum); wce is -2 (cost above ``cost_cap``) or -3 (too deep) for a child that was not simulated."""
    n = func.shape[0]
    act = kernels.active_mask(func, in0, in1, out, first)
    changed = np.empty(n, np.bool_)
    for k in range(n):
        changed[k] = func[k] != pfunc[k] or in0[k] != pin0[k] or (func[k] != NOT and in1[k] != pin1[k])
    order = kernels.mark_dirty(func, in0, in1, first, act, changed, valid, dirty)
    if use_power:
        cost = stream_energy(func, in0, in1, out, first, order, dirty, pst, p_chunks, n_addr, buf, mask, loads,
                             energy, n_pts, cap, po_cap, half_v2, ptog, ctog)
    else:
        cost = kernels.gate_cost(func, act, weights)
    if cost > cost_cap:
        return -2, cost, 0, act, order, 0.0, 0.0
    dep = kernels.depth(func, in0, in1, out, first)
    if dep > max_depth:
        return -3, cost, dep, act, order, 0.0, 0.0
    if use_app:
        wce, sa, sb = evaluate_weighted(func, in0, in1, out, first, order, dirty, st, n_chunks, n_addr, buf, ex,
                                        nb, is_signed, stop_above, wfac, wtid, wtab, mae_stop)
        return wce, cost, dep, act, order, sa, sb
    wce = kernels.evaluate(func, in0, in1, out, first, order, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed,
                           stop_above)
    return wce, cost, dep, act, order, 0.0, 0.0


# ------------------------------------------------------------------------------------------ weights
def pair_weights(wa: int, wb: int, probs: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """WMED weights of every input pair, numbered ``(a << wb) | b``: ``p_a(a) p_b(b)`` (uniform: 2^-(wa+wb))."""
    if probs is None:
        return np.full(1 << (wa + wb), 1.0 / (1 << (wa + wb)))
    return np.outer(probs[0], probs[1]).ravel()


def _byte_tables(lanes: np.ndarray) -> np.ndarray:
    """``lanes[t, 64]`` -> ``tab[t, q, byte]``: the weight of the lanes set in byte ``q`` of a word."""
    bits = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.float64)  # (256, 8)
    return np.ascontiguousarray(np.einsum("tqs,bs->tqb", lanes.reshape(-1, 8, 8), bits))


def lane_tables(ev: Evaluator, probs: tuple[np.ndarray, np.ndarray] | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(wfac, wtid, wtab) for :func:`evaluate_weighted` on ``ev``'s vectors (exhaustive evaluators only).

    With ``wb >= 6`` the 64 lanes of a word share ``a``, so a word's weights are ``p_a(a)`` times one of
    ``2^(wb-6)`` tables of ``p_b``; otherwise each word has its own table (few words: at most 2^10)."""
    if ev.sampled:
        raise ValueError("weighted errors need an exhaustive evaluator")
    words = ev.n_chunks * ev.ch
    pa, pb = probs if probs is not None else (np.full(1 << ev.wa, 2.0 ** -ev.wa), np.full(1 << ev.wb, 2.0 ** -ev.wb))
    if ev.wb >= 6:
        per_a = 1 << (ev.wb - 6)
        j = np.arange(words)
        wfac = pa[j // per_a].astype(np.float64)
        wtid = (j % per_a).astype(np.int64)
        wtab = _byte_tables(pb.reshape(per_a, 64).astype(np.float64))
        return np.ascontiguousarray(wfac), wtid, wtab
    lanes = np.zeros(words * 64)
    lanes[:ev.n_vectors] = pair_weights(ev.wa, ev.wb, probs)  # padding lanes weigh nothing
    return np.ones(words), np.arange(words, dtype=np.int64), _byte_tables(lanes.reshape(words, 64))


# ------------------------------------------------------------------------------------------ energy
@dataclass(frozen=True)
class GateEnergy:
    """Per generic gate (index = function code): internal energy against load, and input capacitance."""

    loads: np.ndarray  # (funcs, points), pF
    energy: np.ndarray  # (funcs, points), pJ per output toggle
    n_pts: np.ndarray  # (funcs,) points used
    cap: np.ndarray  # (funcs,) input capacitance of the gate's cell, pF
    po_cap: float  # load of a primary output (the STA's), pF
    half_v2: float  # V^2 / 2: switching energy per pF

    def per_toggle(self, gate: str, load_pf: float) -> float:
        """Energy of one toggle of ``gate`` driving ``load_pf`` (pJ)."""
        f = FUNCS.index(gate)
        return float(_interp(self.loads[f], self.energy[f], int(self.n_pts[f]), load_pf) + self.half_v2 * load_pf)

    def cheapest(self) -> float:
        """One toggle of the cheapest gate driving one input of the smallest cell: the unit of ``--uphill``."""
        c = float(self.cap.min())
        return min(self.per_toggle(g, c) for g in FUNCS)


def gate_energy(tech: object) -> GateEnergy:
    """The generic gates' switching energies on ``tech`` (a :class:`tech.Technology`)."""
    from tech import Technology

    assert isinstance(tech, Technology)
    if tech.voltage is None:
        from core.errors import ConfigError

        raise ConfigError(f"--cost power needs the Liberty's nom_voltage, which {tech.liberty} does not give")
    tables = [tech.toggle_energy(g) for g in FUNCS]
    pts = max(len(t.loads) for t in tables)
    loads = np.zeros((len(FUNCS), pts))
    energy = np.zeros((len(FUNCS), pts))
    for f, t in enumerate(tables):
        loads[f, :len(t.loads)] = np.array(t.loads) * tech.cap_pf
        energy[f, :len(t.loads)] = t.energy
    cap = np.array([(tech.gates[g].input_cap or 0.0) * tech.cap_pf for g in FUNCS])
    return GateEnergy(loads, energy, np.array([len(t.loads) for t in tables], dtype=np.int64), cap,
                      tech.default_load * tech.cap_pf, 0.5 * tech.voltage ** 2)


def stream_vectors(a: np.ndarray, b: np.ndarray, wb: int) -> np.ndarray:
    """Operand code pairs as evaluator vectors ``(a << wb) | b``, in stream order."""
    return (np.asarray(a, dtype=np.int64) << wb) | np.asarray(b, dtype=np.int64)


# ------------------------------------------------------------------------------------------ objective
@dataclass(frozen=True, eq=False)
class ObjectiveSpec:
    """What a worker needs to build its :class:`Objective` (picklable; compared by ``digest``)."""

    wa: int
    wb: int
    signed: bool
    stream: np.ndarray | None = None  # power cost: the operand stream as vectors, in order
    energy: GateEnergy | None = None
    probs: tuple[np.ndarray, np.ndarray] | None = None  # the operand distribution (None: uniform)
    mae_limit: float | None = None  # absolute: weighted MAE <= this
    bias_limit: float | None = None  # absolute: |weighted mean error| <= this
    digest: str = field(default="")

    def __post_init__(self) -> None:
        h = hashlib.sha256(repr((self.wa, self.wb, self.signed, self.mae_limit, self.bias_limit)).encode())
        for arr in (self.stream, *(self.probs or ()), *((self.energy.energy, self.energy.cap)
                                                           if self.energy else ())):
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
        object.__setattr__(self, "digest", h.hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectiveSpec) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    @property
    def power(self) -> bool:
        return self.stream is not None

    @property
    def app_limits(self) -> bool:
        return self.mae_limit is not None or self.bias_limit is not None

    def build(self, ev: Evaluator, n_addr: int, children: int) -> Objective:
        return Objective(self, ev, n_addr, children)


class Objective:
    """One worker's power cost and application errors, beside its :class:`Evaluator` ``ev``."""

    def __init__(self, spec: ObjectiveSpec, ev: Evaluator, n_addr: int, children: int):
        self.spec = spec
        self.ev = ev
        n_gates = n_addr - (2 + spec.wa + spec.wb)
        self.ptog = np.zeros(n_gates, dtype=np.int64)
        self.ctog = np.zeros((children + 1, n_gates), dtype=np.int64)
        e = spec.energy
        if spec.power:
            assert spec.stream is not None and e is not None
            self.sev = Evaluator(spec.wa, spec.wb, spec.signed, n_addr, children=children, vectors=spec.stream)
            n = len(spec.stream)
            self.transitions = max(n - 1, 1)
            lanes = np.zeros(self.sev.n_chunks * self.sev.ch * 64, dtype=np.uint8)
            lanes[1:n] = 1  # transition i: from vector i-1 to vector i
            self.mask = np.ascontiguousarray(np.packbits(lanes, bitorder="little").view("<u8")
                                             .reshape(self.sev.n_chunks, self.sev.ch))
            self.loads, self.energy, self.n_pts, self.cap = e.loads, e.energy, e.n_pts, e.cap
            self.po_cap, self.half_v2 = e.po_cap, e.half_v2
        else:
            self.sev = ev
            self.transitions = 1
            self.mask = np.zeros((1, 1), dtype=np.uint64)
            self.loads = self.energy = np.zeros((len(FUNCS), 1))
            self.n_pts = np.ones(len(FUNCS), dtype=np.int64)
            self.cap = np.zeros(len(FUNCS))
            self.po_cap = self.half_v2 = 0.0
        self.use_app = spec.app_limits
        if self.use_app:
            self.wfac, self.wtid, self.wtab = lane_tables(ev, spec.probs)
        else:
            self.wfac, self.wtid, self.wtab = np.zeros(1), np.zeros(1, dtype=np.int64), np.zeros((1, 8, 256))
        self.mae_stop = spec.mae_limit if spec.mae_limit is not None else math.inf

    # ---------------------------------------------------------------- parent
    def load_parent(self, net: Netlist, weights: np.ndarray) -> tuple[int, np.ndarray, float, tuple[float, float]]:
        """Load ``net`` into the evaluator's cache (and the stream's); returns (wce, act, cost, app sums)."""
        wce, act = self.ev.load_parent(net)
        order = np.flatnonzero(act).astype(np.int32)
        dirty = np.zeros(self.ev.n_addr, dtype=np.bool_)
        dirty[net.first + order] = True
        if self.spec.power:
            s = self.sev
            raw = stream_energy(net.func, net.in0, net.in1, net.out, net.first, order, dirty, s.store, s.n_chunks,
                                s.n_addr, 0, self.mask, self.loads, self.energy, self.n_pts, self.cap, self.po_cap,
                                self.half_v2, self.ptog, self.ptog)
            cost = raw / self.transitions
        else:
            cost = float(kernels.gate_cost(net.func, act, weights))
        sums = (0.0, 0.0)
        if self.use_app:
            ev = self.ev
            _, sa, sb = evaluate_weighted(net.func, net.in0, net.in1, net.out, net.first, order, dirty, ev.store,
                                          ev.n_chunks, ev.n_addr, 0, ev.ex, ev.nb, ev.signed, NO_LIMIT, self.wfac,
                                          self.wtid, self.wtab, math.inf)
            sums = (float(sa), float(sb))
        return int(wce), act, float(cost), sums

    def cost_of(self, net: Netlist, weights: np.ndarray) -> float:
        """The cost of ``net`` (loads it as the parent)."""
        return self.load_parent(net, weights)[2]

    # ---------------------------------------------------------------- children
    def assess(self, child: Netlist, parent: Netlist, weights: np.ndarray, max_depth: int, cap: float,
               dirty: np.ndarray, buf: int, stop_above: int
               ) -> tuple[int, float, int, np.ndarray, np.ndarray, tuple[float, float]]:
        ev, s = self.ev, self.sev
        cost_cap = cap * self.transitions if self.spec.power else cap
        wce, cost, dep, act, order, sa, sb = assess(
            child.func, child.in0, child.in1, child.out, parent.func, parent.in0, parent.in1, child.first, weights,
            max_depth, cost_cap, ev.valid, dirty, ev.store, ev.n_chunks, ev.n_addr, buf, ev.ex, ev.nb, ev.signed,
            stop_above, self.spec.power, s.store, s.n_chunks, self.mask, self.loads, self.energy, self.n_pts,
            self.cap, self.po_cap, self.half_v2, self.ptog, self.ctog[buf], self.use_app, self.wfac, self.wtid,
            self.wtab, self.mae_stop)
        if self.spec.power:
            cost = cost / self.transitions
        return int(wce), float(cost), int(dep), act, order, (float(sa), float(sb))

    def commit(self, order: np.ndarray, dirty: np.ndarray, buf: int, act: np.ndarray) -> None:
        """Make child ``buf`` the parent: the evaluator's cache, the stream's and the toggle counts."""
        self.ev.commit(order, dirty, buf, act)
        if self.spec.power:
            s = self.sev
            first = 2 + self.spec.wa + self.spec.wb
            kernels.commit(order, first, dirty, s.store, s.n_chunks, s.n_addr, buf)
            moved = order[dirty[first + order]]
            self.ptog[moved] = self.ctog[buf][moved]

    # ---------------------------------------------------------------- fitness
    def excess(self, wce: int, limit: int, sums: tuple[float, float]) -> float:
        """How far a circuit is from feasible: WCE over ``limit`` plus the application limits' excess."""
        x = float(max(0, wce - limit))
        if self.spec.mae_limit is not None:
            x += max(0.0, sums[0] - self.spec.mae_limit)
        if self.spec.bias_limit is not None:
            x += max(0.0, abs(sums[1]) - self.spec.bias_limit)
        return x

    def within_app_limits(self, sums: tuple[float, float]) -> bool:
        return self.excess(0, 0, sums) == 0.0

    def tiebreak(self, wce: int, sums: tuple[float, float]) -> float:
        """Among equally cheap circuits: the lower weighted MAE (with application limits), else the lower WCE."""
        return sums[0] if self.use_app else float(wce)


def power_cost(net: Netlist, energy: GateEnergy, stream: np.ndarray) -> float:
    """Switching energy per operation of ``net`` on ``stream`` (the evaluator's power cost, from scratch)."""
    spec = ObjectiveSpec(net.wa, net.wb, net.signed, stream=stream, energy=energy)
    ev = Evaluator(net.wa, net.wb, net.signed, net.n_addr, vectors=stream[:1])
    return Objective(spec, ev, net.n_addr, 1).cost_of(net, np.zeros(len(FUNCS)))


def reference_power_cost(net: Netlist, energy: GateEnergy, stream: np.ndarray) -> float:
    """:func:`power_cost` by plain numpy simulation (:func:`evolve.evaluator.reference_outputs`'s way):
    the independent reference the tests hold the kernel to."""
    from core import golden
    from evolve.evaluator import reference_outputs

    act = net.active()
    gates = net.first + np.flatnonzero(act)
    nb = net.wa + net.wb
    vals = np.zeros((net.n_addr, len(stream)), dtype=np.int64)
    for i in range(0, len(gates), nb):  # every gate's values: nb of them at a time wired to the outputs
        probe = net.copy()
        batch = gates[i:i + nb]
        probe.out[:] = batch[0]
        probe.out[:len(batch)] = batch
        codes = golden.encode(reference_outputs(probe, stream), nb)
        for j, addr in enumerate(batch):
            vals[addr] = (codes >> j) & 1
    load = np.zeros(net.n_addr)
    for k in np.flatnonzero(act):
        f = int(net.func[k])
        load[net.in0[k]] += energy.cap[f]
        if f != NOT:
            load[net.in1[k]] += energy.cap[f]
    for o in net.out:
        load[o] += energy.po_cap
    total = 0.0
    for k in np.flatnonzero(act):
        toggles = int(np.count_nonzero(np.diff(vals[net.first + k])))
        total += toggles * energy.per_toggle(FUNCS[int(net.func[k])], load[net.first + k])
    return total / max(len(stream) - 1, 1)
