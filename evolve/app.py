"""The application's view of a candidate: switching energy on its operand stream, errors under its operands.

Two additions to the bit-parallel evaluator (:mod:`evolve.evaluator`), used only when a run asks for them,
for either function set. The value planes always come from the function set's own simulator
(:func:`evolve.kernels.simulate` for generic gates, :func:`evolve.kernels3.simulate` for cells, incrementally
on the nodes the evaluator marks dirty); the kernels here only consume planes (:func:`toggles`,
:func:`switching_energy`, :func:`weighted_sums`), and :func:`assess` / :func:`assess3` run one child through
its set's passes and these consumers in one compiled call.

**Power** (``--cost power``). The operand stream that ``ppa`` measures power with
(:func:`ppa.activity.power_stream`, the run's seed and the same salt) is simulated bit-parallel, one vector
per lane *in stream order*. A node's toggles are ``popcount(v XOR (v shifted by one vector))`` over its
value planes: how often its output changes between consecutive operand pairs (zero-delay). Glitches
(``--glitch``, default :data:`GLITCH`) are added from a unit-delay simulation of the stream's first
:data:`GLITCH_WORDS` words (:func:`glitches`: every node one step of delay, two time frames of planes), the
transitions beyond the zero-delay one weighted by ``--glitch`` and scaled to the whole stream. Each toggle costs the node's cell energy from the Liberty: the internal energy of one
output transition at the node's load (:meth:`tech.Technology.output_energy`, interpolated in the load)
plus the switching energy ``C V^2 / 2`` of that load, where the load is the input capacitance of every
pin reading it plus the STA's output load for each primary output it drives. A generic gate is its smallest
cell (its largest input capacitance on every input); a cell node is its own cell's output pin, and its
readers' own pins load it (an adder's two outputs are two nodes, each costed by its own pin, and the pins
of one adder instance load their drivers once; an output of an instance that no node uses still switches,
and its unloaded internal energy is counted with the toggles of the instance's node, as OpenSTA's
per-instance power has it). The cost is the sum over active nodes divided by the
transitions: energy per operation, in pJ for a library in pF and V. A clean node's toggle count comes from
the parent.

**Errors under the application** (``--mae-limit``, ``--bias-limit``, ``--mse-limit``). WMED-style: every
input pair is weighted by ``p_a(a) * p_b(b)`` (the operand histograms), exactly over all pairs (up to 16
input bits). The weighted sums of ``|y - p|``, of ``y - p`` and of ``(y - p)^2`` are accumulated from the
output planes, a byte of lanes at a time through a table of the lanes' weights (the square from the products
of the ``|y - p|`` planes up to the highest one set, few below the WCE limit). The WCE stays the hard limit
over every input.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numba import njit

from evolve import kernels, kernels3
from evolve.cellnet import CellNetlist, Tables
from evolve.evaluator import Evaluator
from evolve.netlist import ARITY, FUNCS

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
# The glitch term (--glitch): simulated under unit delay on the stream's first GLITCH_WORDS words (256
# transitions).
GLITCH_WORDS = 4
# Its default weight (--glitch). Unit delay overcounts the glitches a timing simulation with real, unequal
# delays has, so the weight is below 1; the power target bench (evolve.library_bench.power_target) measures
# the cost's correlation with OpenSTA's power at it (README, "Power and the application's operands").
GLITCH = 0.25
# A generic gate as a node of :func:`glitches`: its own op code, no ANF terms.
GATE_OP = np.arange(len(FUNCS), dtype=np.int8)
GATE_ANF = np.zeros((len(FUNCS), 8), dtype=np.uint64)
GATE_ARITY = ARITY


def _sim_tables(net: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arity, op, anf) of ``net``'s function set, as :func:`glitches` reads them."""
    if isinstance(net, CellNetlist):
        return net.tables.arity, net.tables.op, net.tables.anf
    return GATE_ARITY, GATE_OP, GATE_ANF


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


# ------------------------------------------------------------------------------------------ consumers
# The kernels below read value planes that the function set's own simulator wrote (:func:`evolve.kernels.simulate`
# for gates, :func:`evolve.kernels3.simulate` for cells, into the rows of the evaluator's store): they never
# look at a node's function, only at its planes, its function code (to index per-code tables) and the loads.


@njit(cache=True)
def toggles(order, first, dirty, st, n_chunks, n_addr, buf, mask, ptog, ctog):
    """Toggles of every active node of ``order`` on a stream (one vector per lane, in order) into ``ctog``:
    ``popcount(v XOR v shifted by one vector)`` over the transitions ``mask`` keeps, from buffer ``buf`` for
    the ``dirty`` nodes; a clean node keeps the parent's count ``ptog``."""
    ch = st.shape[1]
    for idx in range(order.shape[0]):
        k = order[idx]
        a = first + k
        if not dirty[a]:
            ctog[k] = ptog[k]
            continue
        t = 0
        prev = np.uint64(0)
        for c in range(n_chunks):
            r = (buf * n_chunks + c) * n_addr + a
            for i in range(ch):
                w = st[r, i]
                t += _popcount((w ^ ((w << np.uint64(1)) | (prev >> np.uint64(63)))) & mask[c, i])
                prev = w
        ctog[k] = t


@njit(cache=True)
def switching_energy(func, order, first, ctog, load, idle_node, idle_func, e_loads, e_energy, e_pts, half_v2):
    """Sum over the active nodes of ``order`` of toggles x energy of one toggle at the node's load: the internal
    energy of its function code's output (``e_loads``/``e_energy``, interpolated in the load) plus
    ``half_v2 * load``; and for each idle output ``idle_func[m]`` (unloaded) the internal energy of its
    toggles, counted as node ``idle_node[m]``'s."""
    total = 0.0
    for idx in range(order.shape[0]):
        k = order[idx]
        f = func[k]
        c_l = load[first + k]
        total += ctog[k] * (_interp(e_loads[f], e_energy[f], e_pts[f], c_l) + half_v2 * c_l)
    for m in range(idle_node.shape[0]):
        f = idle_func[m]
        total += ctog[idle_node[m]] * _interp(e_loads[f], e_energy[f], e_pts[f], 0.0)
    return total


@njit(cache=True)
def glitches(func, in0, in1, in2, first, order, arity, op, anf, dirty, st, n_chunks, n_addr, buf, mask, sc, gtog):
    """Glitch toggles of every active node of ``order`` under unit delay into ``gtog``: on the first
    ``sc.shape[1]`` words of the stream (chunk 0), the transitions ``mask`` keeps, each node's output
    transitions while its inputs settle (every node one unit of delay, the primary inputs switching at once
    from the previous vector to the next) less its zero-delay toggles (the one settling transition where its
    value changes). Either function set: node ``k`` is ``op``/``anf`` function ``func[k]`` of its first
    ``arity[func[k]]`` inputs (:func:`evolve.kernels3._apply3`; a generic gate is its own ``op``). ``sc`` is
    scratch of two time frames of ``n_addr`` rows."""
    w = sc.shape[1]
    lvl = np.zeros(n_addr, np.int32)
    for a in range(first):  # the inputs hold the new vector in both frames
        for i in range(w):
            sc[a, i] = st[a, i]
            sc[n_addr + a, i] = st[a, i]
    depth = 0
    for idx in range(order.shape[0]):
        k = order[idx]
        a = first + k
        d = 0
        for s in range(arity[func[k]]):
            x = lvl[kernels3._slot(in0, in1, in2, k, s)]
            if x > d:
                d = x
        lvl[a] = d + 1
        if d + 1 > depth:
            depth = d + 1
        r = (buf * n_chunks * n_addr if dirty[a] else 0) + a
        prev = np.uint64(0)
        for i in range(w):  # time 0: every node still holds its value of the previous vector
            v = st[r, i]
            sc[a, i] = (v << np.uint64(1)) | (prev >> np.uint64(63))
            prev = v
        gtog[k] = 0
    for t in range(1, depth + 1):
        cb = ((t - 1) & 1) * n_addr
        nb = (t & 1) * n_addr
        for idx in range(order.shape[0]):
            k = order[idx]
            a = first + k
            if lvl[a] + 1 < t:  # settled in both frames
                continue
            kernels3._apply3(func[k], op, anf, sc, cb + in0[k], cb + in1[k], cb + in2[k], nb + a, w)
            n = 0
            for i in range(w):
                n += _popcount((sc[nb + a, i] ^ sc[cb + a, i]) & mask[0, i])
            gtog[k] += n
    for idx in range(order.shape[0]):  # less the settling transition: final value against time 0
        k = order[idx]
        a = first + k
        r = (buf * n_chunks * n_addr if dirty[a] else 0) + a
        prev = np.uint64(0)
        n = 0
        for i in range(w):
            v = st[r, i]
            n += _popcount((v ^ ((v << np.uint64(1)) | (prev >> np.uint64(63)))) & mask[0, i])
            prev = v
        gtog[k] -= n


@njit(cache=True, inline="always")
def _lanes_weight(wtab, t, w):
    """The weight of the lanes set in word ``w``, through lane table ``t`` (one lookup per byte)."""
    x = 0.0
    for q in range(8):
        x += wtab[t, q, (w >> np.uint64(8 * q)) & np.uint64(255)]
    return x


@njit(cache=True)
def weighted_sums(out, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed, wfac, wtid, wtab, want_sq, mae_stop,
                  mse_stop):
    """Sums of ``w |y - p|``, ``w (y - p)`` and (``want_sq``) ``w (y - p)^2`` over every lane, from the output
    planes (buffer ``buf`` for the ``dirty`` outputs, else buffer 0): the lane weights are ``wfac[word] *
    table[wtid[word]]`` (``wtab[t, byte, bits]``: the weight of the set lanes of one byte). Stops early once
    the |error| sum exceeds ``mae_stop`` or the squared one ``mse_stop`` (both only grow)."""
    ch, nbc = st.shape[1], ex.shape[1]
    planes = np.empty((2 * nbc + 3, ch), np.uint64)  # the output's planes, |y - p|'s, and scratch
    yb, db, tmp = planes[:nbc], planes[nbc:2 * nbc], planes[2 * nbc:]
    s_abs, s_neg, s_sq = 0.0, 0.0, 0.0
    for c in range(n_chunks):
        kernels._gather_outputs(out, dirty, st, c * n_addr, (buf * n_chunks + c) * n_addr, yb, nb, nbc, is_signed)
        kernels._max_abs_diff(yb, ex, c, nbc, db, tmp)
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
            top = -1
            for k in range(nbc):
                w = db[k, i]
                if w == 0:
                    continue
                top = k
                scale = float(1 << k)
                sa += _lanes_weight(wtab, t, w) * scale
                sn += _lanes_weight(wtab, t, w & neg) * scale
            s_abs += fac * sa
            s_neg += fac * sn
            if want_sq:
                # |d|^2 = sum_k 4^k d_k + sum_{k < m} 2^(k+m+1) d_k d_m over the planes up to the top one set
                sq = 0.0
                for k in range(top + 1):
                    wk = db[k, i]
                    if wk == 0:
                        continue
                    sq += _lanes_weight(wtab, t, wk) * float(1 << (2 * k))
                    for m in range(k + 1, top + 1):
                        x = wk & db[m, i]
                        if x != 0:
                            sq += _lanes_weight(wtab, t, x) * float(1 << (k + m + 1))
                s_sq += fac * sq
        if s_abs > mae_stop or s_sq > mse_stop:
            break
    return s_abs, s_abs - 2.0 * s_neg, s_sq


# ------------------------------------------------------------------------------------------ one child
# One compiled call per child and function set: the function set's own passes and simulator, then the
# consumers above. The power cost comes first, so that a child above the cost cap is not simulated on the
# exhaustive vectors at all.


@njit(cache=True, inline="always")
def _stream_energy(func, order, first, dirty, pst, p_chunks, n_addr, buf, mask, load, idle_node, idle_func, e_loads,
                   e_energy, e_pts, half_v2, ptog, ctog):
    toggles(order, first, dirty, pst, p_chunks, n_addr, buf, mask, ptog, ctog)
    return switching_energy(func, order, first, ctog, load, idle_node, idle_func, e_loads, e_energy, e_pts, half_v2)


@njit(cache=True, inline="always")
def _app_sums(use_app, wce, stop_above, out, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed, wfac, wtid, wtab,
              want_sq, mae_stop, mse_stop):
    if use_app and wce <= stop_above:  # beyond the WCE limit the child is infeasible whatever the sums
        return weighted_sums(out, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed, wfac, wtid, wtab, want_sq,
                             mae_stop, mse_stop)
    return 0.0, 0.0, 0.0


@njit(cache=True)
def assess(func, in0, in1, out, pfunc, pin0, pin1, first, weights, max_depth, cost_cap, valid, dirty, st,
           n_chunks, n_addr, buf, ex, nb, is_signed, stop_above,
           use_power, pst, p_chunks, mask, e_loads, e_energy, e_pts, pin_cap, po_cap, half_v2, ptog, ctog,
           g_weight, g_mask, g_sc, g_tog, use_app, wfac, wtid, wtab, want_sq, mae_stop, mse_stop):
    """:func:`evolve.kernels.assess` of a gate netlist with the stream energy as the cost (``use_power``) and
    the weighted error sums (``use_app``). Returns (wce, cost, depth, act, order, weighted |error| sum,
    weighted error sum, weighted squared error sum); wce is -2 (cost above ``cost_cap``) or -3 (too deep) for
    a child that was not simulated on the exhaustive vectors."""
    act = kernels.active_mask(func, in0, in1, out, first)
    changed = kernels.changed_genes(func, in0, in1, pfunc, pin0, pin1)
    order = kernels.mark_dirty(func, in0, in1, first, act, changed, valid, dirty)
    if use_power:
        kernels.simulate(func, in0, in1, first, order, dirty, pst, p_chunks, n_addr, buf)
        load = kernels.fanout_load(func, in0, in1, out, first, order, pin_cap, po_cap)
        none = np.empty(0, np.int32)  # a gate has no idle outputs
        nf = np.empty(0, np.int8)
        cost = _stream_energy(func, order, first, dirty, pst, p_chunks, n_addr, buf, mask, load, none, nf,
                              e_loads, e_energy, e_pts, half_v2, ptog, ctog)
        if g_weight > 0 and cost <= cost_cap:
            glitches(func, in0, in1, in0, first, order, GATE_ARITY, GATE_OP, GATE_ANF, dirty, pst, p_chunks, n_addr,
                     buf, g_mask, g_sc, g_tog)
            cost += g_weight * switching_energy(func, order, first, g_tog, load, none, nf, e_loads, e_energy, e_pts,
                                                half_v2)
    else:
        cost = kernels.gate_cost(func, act, weights)
    if cost > cost_cap:
        return -2, cost, 0, act, order, 0.0, 0.0, 0.0
    dep = kernels.levels(func, in0, in1, out, first, act)
    if dep > max_depth:
        return -3, cost, dep, act, order, 0.0, 0.0, 0.0
    wce = kernels.evaluate(func, in0, in1, out, first, order, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed,
                           stop_above)
    sa, sb, sq = _app_sums(use_app, wce, stop_above, out, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed, wfac,
                           wtid, wtab, want_sq, mae_stop, mse_stop)
    return wce, cost, dep, act, order, sa, sb, sq


@njit(cache=True)
def assess3(func, in0, in1, in2, out, pfunc, pin0, pin1, pin2, first, weights, max_depth, cost_cap, valid, dirty,
            st, n_chunks, n_addr, buf, ex, nb, is_signed, stop_above, arity, op, anf, group, garea, gsym,
            use_power, pst, p_chunks, mask, e_loads, e_energy, e_pts, pin_cap, po_cap, half_v2, ptog, ctog,
            g_weight, g_mask, g_sc, g_tog, use_app, wfac, wtid, wtab, want_sq, mae_stop, mse_stop):
    """:func:`assess` of a cell netlist (:mod:`evolve.kernels3`'s passes and simulator; a node's energy is its
    cell output's, its load the input pins of the cells reading it)."""
    act = kernels3.active_mask(func, in0, in1, in2, out, first, arity)
    changed = kernels3.changed_genes(func, in0, in1, in2, pfunc, pin0, pin1, pin2, arity)
    order = kernels3.mark_dirty(func, in0, in1, in2, first, act, changed, valid, dirty, arity)
    if use_power:
        kernels3.simulate(func, in0, in1, in2, first, order, dirty, pst, p_chunks, n_addr, buf, op, anf)
        load, idle_node, idle_func = kernels3.fanout(func, in0, in1, in2, out, first, order, arity, group, gsym,
                                                     pin_cap, po_cap)
        cost = _stream_energy(func, order, first, dirty, pst, p_chunks, n_addr, buf, mask, load, idle_node,
                              idle_func, e_loads, e_energy, e_pts, half_v2, ptog, ctog)
        if g_weight > 0 and cost <= cost_cap:
            glitches(func, in0, in1, in2, first, order, arity, op, anf, dirty, pst, p_chunks, n_addr, buf, g_mask,
                     g_sc, g_tog)
            cost += g_weight * switching_energy(func, order, first, g_tog, load, idle_node, idle_func, e_loads,
                                                e_energy, e_pts, half_v2)
    else:
        cost = kernels3.cost(func, in0, in1, in2, act, first, weights, group, garea, gsym, arity)
    if cost > cost_cap:
        return -2, cost, 0, act, order, 0.0, 0.0, 0.0
    dep = kernels3.levels(func, in0, in1, in2, out, first, arity, act)
    if dep > max_depth:
        return -3, cost, dep, act, order, 0.0, 0.0, 0.0
    wce = kernels3.evaluate(func, in0, in1, in2, out, first, order, dirty, st, n_chunks, n_addr, buf, ex, nb,
                            is_signed, stop_above, op, anf)
    sa, sb, sq = _app_sums(use_app, wce, stop_above, out, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed, wfac,
                           wtid, wtab, want_sq, mae_stop, mse_stop)
    return wce, cost, dep, act, order, sa, sb, sq


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
    """(wfac, wtid, wtab) for :func:`weighted_sums` on ``ev``'s vectors (exhaustive evaluators only).

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
@dataclass(frozen=True, eq=False)
class NodeEnergy:
    """Per function code of a function set (the generic gates, or the cell set's functions): the internal energy
    of one output toggle against the load, and the input capacitance of each input slot."""

    names: tuple[str, ...]  # the functions, by code
    loads: np.ndarray  # (funcs, points), pF
    energy: np.ndarray  # (funcs, points), pJ per output toggle
    n_pts: np.ndarray  # (funcs,) points used
    pin_cap: np.ndarray  # (funcs, 3) input capacitance of each slot's pin, pF (0 beyond the arity)
    po_cap: float  # load of a primary output (the STA's), pF
    half_v2: float  # V^2 / 2: switching energy per pF

    def toggle(self, f: int, load_pf: float) -> float:
        """Energy of one toggle of function code ``f`` driving ``load_pf`` (pJ)."""
        return float(_interp(self.loads[f], self.energy[f], int(self.n_pts[f]), load_pf) + self.half_v2 * load_pf)

    def per_toggle(self, name: str, load_pf: float) -> float:
        """Energy of one toggle of the function ``name`` (a gate, or a cell output) driving ``load_pf`` (pJ)."""
        return self.toggle(self.names.index(name), load_pf)

    def cheapest(self) -> float:
        """One toggle of the cheapest function driving the smallest input pin: the unit of ``--uphill``."""
        c = float(self.pin_cap[self.pin_cap > 0].min())
        return min(self.toggle(f, c) for f in range(len(self.names)))


def gate_energy(tech: object) -> NodeEnergy:
    """The generic gates' switching energies on ``tech`` (a :class:`tech.Technology`): each gate's cell, its
    largest input capacitance on every input."""
    from tech import Technology

    assert isinstance(tech, Technology)
    caps = [[tech.gates[g].input_cap or 0.0] * int(ARITY[f]) for f, g in enumerate(FUNCS)]
    return _energy(tech, FUNCS, [tech.toggle_energy(g) for g in FUNCS], caps)


def cell_energy(tech: object, cells: Tables) -> NodeEnergy:
    """The cell function set's switching energies: each function is one output pin of its cell, with that
    pin's own internal energy and the cell's own input pin capacitances."""
    fs = cells.cells.functions
    return _energy(tech, tuple(f.name for f in fs), [tech.output_energy(f.cell, f.output) for f in fs],  # type: ignore[attr-defined]
                   [list(f.pin_caps) for f in fs])


def node_energy(tech: object, cells: Tables | None) -> NodeEnergy:
    """:func:`gate_energy`, or :func:`cell_energy` for the cell function set ``cells``."""
    return gate_energy(tech) if cells is None else cell_energy(tech, cells)


def _energy(tech: object, names: tuple[str, ...], tables: list, caps: list[list[float]]) -> NodeEnergy:
    from tech import Technology

    assert isinstance(tech, Technology)
    if tech.voltage is None:
        from core.errors import ConfigError

        raise ConfigError(f"--cost power needs the Liberty's nom_voltage, which {tech.liberty} does not give")
    pts = max(len(t.loads) for t in tables)
    loads = np.zeros((len(names), pts))
    energy = np.zeros((len(names), pts))
    for f, t in enumerate(tables):
        loads[f, :len(t.loads)] = np.array(t.loads) * tech.cap_pf
        energy[f, :len(t.loads)] = t.energy
    pin_cap = np.zeros((len(names), 3))
    for f, c in enumerate(caps):
        pin_cap[f, :len(c)] = np.array(c, dtype=np.float64) * tech.cap_pf
    return NodeEnergy(tuple(names), loads, energy, np.array([len(t.loads) for t in tables], dtype=np.int64), pin_cap,
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
    energy: NodeEnergy | None = None  # of the function set the search evolves
    probs: tuple[np.ndarray, np.ndarray] | None = None  # the operand distribution (None: uniform)
    mae_limit: float | None = None  # absolute: weighted MAE <= this
    bias_limit: float | None = None  # absolute: |weighted mean error| <= this
    mse_limit: float | None = None  # absolute: weighted MSE <= this
    glitch: float = 0.0  # power cost: weight of the unit-delay glitch energy (0: zero-delay toggles alone)
    digest: str = field(default="")

    def __post_init__(self) -> None:
        # runs from before --mse-limit and --function-set cells keep the digest they had
        key: tuple[Any, ...] = (self.wa, self.wb, self.signed, self.mae_limit, self.bias_limit)
        key += (self.mse_limit,) if self.mse_limit is not None else ()
        key += (("glitch", self.glitch, GLITCH_WORDS),) if self.glitch else ()  # runs before it keep their digest
        h = hashlib.sha256(repr(key).encode())
        e = self.energy
        arrays = [self.stream, *(self.probs or ())]
        if e is not None:
            arrays += [e.energy, e.pin_cap[:, 0]] + ([e.pin_cap] if e.names != FUNCS else [])
        for arr in arrays:
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
        return self.mae_limit is not None or self.bias_limit is not None or self.mse_limit is not None

    def without_limits(self) -> ObjectiveSpec:
        """The same cost without the application limits (what costing a circuit on any evaluator needs)."""
        return replace(self, mae_limit=None, bias_limit=None, mse_limit=None, digest="")

    def build(self, ev: Evaluator, n_addr: int, children: int) -> Objective:
        return Objective(self, ev, n_addr, children)


class Objective:
    """One worker's power cost and application errors, beside its :class:`Evaluator` ``ev``: the value planes
    come from the netlist's own simulator (gates or cells), the cost and the sums from the consumers above."""

    def __init__(self, spec: ObjectiveSpec, ev: Evaluator, n_addr: int, children: int):
        self.spec = spec
        self.ev = ev
        self.first = 2 + spec.wa + spec.wb
        n_gates = n_addr - self.first
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
            self.loads, self.energy, self.n_pts, self.pin_cap = e.loads, e.energy, e.n_pts, e.pin_cap
            self.po_cap, self.half_v2 = e.po_cap, e.half_v2
            # the glitch term on the stream's first GLITCH_WORDS words, scaled to the whole stream's transitions
            gw = min(GLITCH_WORDS, self.sev.ch)
            self.g_mask = np.ascontiguousarray(self.mask[:1, :gw])
            sub = int(np.unpackbits(self.g_mask.view(np.uint8)).sum())  # the subset's transitions
            self.g_weight = spec.glitch * self.transitions / max(sub, 1)
            self.g_sc = np.zeros((2 * n_addr, gw), dtype=np.uint64)
        else:
            self.g_weight = 0.0
            self.g_mask = np.zeros((1, 1), dtype=np.uint64)
            self.g_sc = np.zeros((2, 1), dtype=np.uint64)
            self.sev = ev
            self.transitions = 1
            self.mask = np.zeros((1, 1), dtype=np.uint64)
            self.loads = self.energy = np.zeros((1, 1))
            self.n_pts = np.ones(1, dtype=np.int64)
            self.pin_cap = np.zeros((1, 3))
            self.po_cap = self.half_v2 = 0.0
        self.g_tog = np.zeros(n_gates, dtype=np.int64)
        self.use_app = spec.app_limits
        if self.use_app:
            self.wfac, self.wtid, self.wtab = lane_tables(ev, spec.probs)
        else:
            self.wfac, self.wtid, self.wtab = np.zeros(1), np.zeros(1, dtype=np.int64), np.zeros((1, 8, 256))
        self.want_sq = spec.mse_limit is not None
        self.mae_stop = spec.mae_limit if spec.mae_limit is not None else math.inf
        self.mse_stop = spec.mse_limit if spec.mse_limit is not None else math.inf
        self._clean = np.zeros(n_addr, dtype=np.bool_)
        # the kernels' objective arguments, per buffer (fixed arrays; the stream's store never changes)
        s = self.sev
        self._tail = [(spec.power, s.store, s.n_chunks, self.mask, self.loads, self.energy, self.n_pts, self.pin_cap,
                       self.po_cap, self.half_v2, self.ptog, self.ctog[b], self.g_weight, self.g_mask, self.g_sc,
                       self.g_tog, self.use_app, self.wfac, self.wtid,
                       self.wtab, self.want_sq, self.mae_stop, self.mse_stop) for b in range(children + 1)]

    # ---------------------------------------------------------------- parent
    def load_parent(self, net: Any, weights: np.ndarray
                    ) -> tuple[int, np.ndarray, float, tuple[float, float, float]]:
        """Load ``net`` into the evaluator's cache (and the stream's); returns (wce, act, cost, app sums)."""
        ev = self.ev
        wce, act = ev.load_parent(net)
        order = np.flatnonzero(act).astype(np.int32)
        if self.spec.power:
            s = self.sev
            net.simulate(s.store, s.n_chunks, s.n_addr)
            dirty = np.zeros(s.n_addr, dtype=np.bool_)
            dirty[net.first + order] = True
            toggles(order, net.first, dirty, s.store, s.n_chunks, s.n_addr, 0, self.mask, self.ptog, self.ptog)
            load, idle_node, idle_func = net.fanout(order, self.pin_cap, self.po_cap)
            cost = switching_energy(net.func, order, net.first, self.ptog, load, idle_node, idle_func, self.loads,
                                    self.energy, self.n_pts, self.half_v2)
            if self.g_weight > 0:
                glitches(net.func, net.in0, net.in1, getattr(net, "in2", net.in0), net.first, order,
                         *_sim_tables(net), dirty, s.store, s.n_chunks, s.n_addr, 0, self.g_mask, self.g_sc, self.g_tog)
                cost += self.g_weight * switching_energy(net.func, order, net.first, self.g_tog, load, idle_node,
                                                         idle_func, self.loads, self.energy, self.n_pts, self.half_v2)
            cost /= self.transitions
        else:
            cost = net.weighted_cost(weights, act)
        sums = (0.0, 0.0, 0.0)
        if self.use_app:
            sa, sb, sq = weighted_sums(net.out, self._clean, ev.store, ev.n_chunks, ev.n_addr, 0, ev.ex, ev.nb,
                                       ev.signed, self.wfac, self.wtid, self.wtab, self.want_sq, math.inf, math.inf)
            sums = (float(sa), float(sb), float(sq))
        return int(wce), act, float(cost), sums

    def cost_of(self, net: Any, weights: np.ndarray) -> float:
        """The cost of ``net`` (loads it as the parent)."""
        return self.load_parent(net, weights)[2]

    # ---------------------------------------------------------------- children
    def assess(self, child: Any, parent: Any, weights: np.ndarray,
               max_depth: int, cap: float, dirty: np.ndarray, buf: int, stop_above: int
               ) -> tuple[int, float, int, np.ndarray, np.ndarray, tuple[float, float, float]]:
        ev = self.ev
        cost_cap = cap * self.transitions if self.spec.power else cap
        if isinstance(child, CellNetlist):
            assert isinstance(parent, CellNetlist)
            t = child.tables
            wce, cost, dep, act, order, sa, sb, sq = assess3(
                child.func, child.in0, child.in1, child.in2, child.out, parent.func, parent.in0, parent.in1,
                parent.in2, child.first, weights, max_depth, cost_cap, ev.valid, dirty, ev.store, ev.n_chunks,
                ev.n_addr, buf, ev.ex, ev.nb, ev.signed, stop_above, t.arity, t.op, t.anf, t.group, t.garea, t.gsym,
                *self._tail[buf])
        else:
            wce, cost, dep, act, order, sa, sb, sq = assess(
                child.func, child.in0, child.in1, child.out, parent.func, parent.in0, parent.in1, child.first,
                weights, max_depth, cost_cap, ev.valid, dirty, ev.store, ev.n_chunks, ev.n_addr, buf, ev.ex, ev.nb,
                ev.signed, stop_above, *self._tail[buf])
        if self.spec.power:
            cost = cost / self.transitions
        return int(wce), float(cost), int(dep), act, order, (float(sa), float(sb), float(sq))

    def commit(self, order: np.ndarray, dirty: np.ndarray, buf: int, act: np.ndarray) -> None:
        """Make child ``buf`` the parent: the evaluator's cache, the stream's and the toggle counts."""
        self.ev.commit(order, dirty, buf, act)
        if self.spec.power:
            s = self.sev
            kernels.commit(order, self.first, dirty, s.store, s.n_chunks, s.n_addr, buf)
            moved = order[dirty[self.first + order]]
            self.ptog[moved] = self.ctog[buf][moved]

    # ---------------------------------------------------------------- fitness
    def excess(self, wce: int, limit: int, sums: tuple[float, float, float]) -> float:
        """How far a circuit is from feasible: WCE over ``limit`` plus the application limits' excess."""
        x = float(max(0, wce - limit))
        if self.spec.mae_limit is not None:
            x += max(0.0, sums[0] - self.spec.mae_limit)
        if self.spec.bias_limit is not None:
            x += max(0.0, abs(sums[1]) - self.spec.bias_limit)
        if self.spec.mse_limit is not None:
            x += max(0.0, sums[2] - self.spec.mse_limit)
        return x

    def within_app_limits(self, sums: tuple[float, float, float]) -> bool:
        return self.excess(0, 0, sums) == 0.0

    def tiebreak(self, wce: int, sums: tuple[float, float, float]) -> float:
        """Among equally cheap circuits: the lower weighted MAE (with application limits), else the lower WCE."""
        return sums[0] if self.use_app else float(wce)


def power_cost(net: Any, energy: NodeEnergy, stream: np.ndarray, glitch: float = 0.0) -> float:
    """Switching energy per operation of ``net`` (gates with :func:`gate_energy`, cells with :func:`cell_energy`)
    on ``stream``, with ``glitch`` times the unit-delay glitch energy (the evaluator's power cost, from
    scratch)."""
    spec = ObjectiveSpec(net.wa, net.wb, net.signed, stream=stream, energy=energy, glitch=glitch)
    ev = Evaluator(net.wa, net.wb, net.signed, net.n_addr, vectors=stream[:1])
    return Objective(spec, ev, net.n_addr, 1).cost_of(net, np.zeros(len(energy.names)))


def node_values(net: Any, vectors: np.ndarray) -> np.ndarray:
    """Every address's value (0/1, int64) on ``vectors`` by :func:`evolve.evaluator.reference_outputs`' plain
    simulation, ``wa + wb`` nodes at a time wired to the outputs: the independent reference of the tests."""
    from core import golden
    from evolve.evaluator import reference_outputs

    nodes = net.first + np.flatnonzero(net.active())
    nb = net.wa + net.wb
    vals = np.zeros((net.n_addr, len(vectors)), dtype=np.int64)
    for i in range(0, len(nodes), nb):
        probe = net.copy()
        batch = nodes[i:i + nb]
        probe.out[:] = batch[0]
        probe.out[:len(batch)] = batch
        codes = golden.encode(reference_outputs(probe, vectors), nb)
        for j, addr in enumerate(batch):
            vals[addr] = (codes >> j) & 1
    return vals


def _node_eval(net: Any, k: int, ins: list[np.ndarray]) -> np.ndarray:
    """Node ``k``'s value (0/1) of its input values ``ins``, by its truth table (cells) or its gate."""
    if isinstance(net, CellNetlist):
        row = np.zeros_like(ins[0], dtype=np.int64)
        for s, x in enumerate(ins):
            row |= x.astype(np.int64) << s
        return np.asarray((net.tables.cells.functions[int(net.func[k])].table >> row) & 1)
    name = FUNCS[int(net.func[k])]
    if name == "NOT":
        return 1 - ins[0]
    x, y = ins
    v = {"AND": x & y, "NAND": x & y, "OR": x | y, "NOR": x | y, "XOR": x ^ y, "XNOR": x ^ y}[name]
    return 1 - v if name in ("NAND", "NOR", "XNOR") else v


def unit_delay_glitches(net: Any, vals: np.ndarray) -> np.ndarray:
    """Per address, the glitch toggles of :func:`glitches` by plain numpy: the steady values ``vals`` (one
    column per vector, in order) switch from each vector to the next under unit delay, time step by time
    step, every node recomputed from its inputs' values one step earlier; less the zero-delay toggles."""
    act = np.flatnonzero(net.active())
    old = np.concatenate([vals[:, :1], vals[:, :-1]], axis=1)
    cur = old.copy()
    cur[:net.first] = vals[:net.first]
    count = np.zeros(net.n_addr, dtype=np.int64)
    for _ in range(net.depth() + 1):
        nxt = cur.copy()
        for k in act:
            nxt[net.first + k] = _node_eval(net, int(k), [cur[x] for x in net.used_inputs(int(k))])
        count += np.count_nonzero((nxt != cur)[:, 1:], axis=1)
        cur = nxt
    assert (cur[net.first + act] == vals[net.first + act]).all(), "unit-delay simulation did not settle"
    return count - np.count_nonzero(np.diff(vals, axis=1), axis=1)


def reference_power_cost(net: Any, energy: NodeEnergy, stream: np.ndarray, glitch: float = 0.0) -> float:
    """:func:`power_cost` by plain numpy simulation (:func:`node_values`, :func:`unit_delay_glitches` on the
    stream's first ``GLITCH_WORDS * 64`` vectors, scaled to the whole stream) and the netlist's own view of
    its instances (a cell netlist's multi-output cells load their input pins once, and their unused outputs
    switch with the instance's first node): the independent reference the tests hold the kernels to."""
    act = net.active()
    vals = node_values(net, stream)
    n_sub = min(len(stream), GLITCH_WORDS * 64)
    scale = glitch * (len(stream) - 1) / max(n_sub - 1, 1)
    toggles_of = np.count_nonzero(np.diff(vals, axis=1), axis=1).astype(float)
    if glitch:
        from core import golden

        full = vals[:, :n_sub].copy()
        a, b = golden.vector_codes(net.wa, net.wb, stream[:n_sub])
        full[1] = 1
        for j in range(net.wa):
            full[2 + j] = (a >> j) & 1
        for j in range(net.wb):
            full[2 + net.wa + j] = (b >> j) & 1
        toggles_of += scale * unit_delay_glitches(net, full)
    instances = (net._instances() if isinstance(net, CellNetlist)
                 else [[(int(k), int(net.func[k]))] for k in np.flatnonzero(act)])
    load = np.zeros(net.n_addr)
    idle = 0.0
    for inst in instances:
        k0, f0 = inst[0]
        for s, x in enumerate(net.used_inputs(k0)):
            load[x] += energy.pin_cap[f0, s]
        if isinstance(net, CellNetlist) and net.tables.group[f0] >= 0:
            used = {f for _, f in inst}
            unused = [h for h in range(net.tables.n) if net.tables.group[h] == net.tables.group[f0] and h not in used]
            idle += toggles_of[net.first + k0] * sum(energy.toggle(h, 0.0) for h in unused)
    for o in net.out:
        load[o] += energy.po_cap
    total = 0.0
    for k in np.flatnonzero(act):
        total += float(toggles_of[net.first + k]) * energy.toggle(int(net.func[k]), load[net.first + k])
    return (total + idle) / max(len(stream) - 1, 1)
