"""Steepest descent: the cheap first part of the search, before Cartesian GP takes over.

From the exact seed, every single simplification of one active gate is tried: tying its readers to
constant 0 or 1 (a stuck-at: truncation, in effect) or bypassing it with one of its inputs. Each
candidate is evaluated exhaustively like any CGP child (WCE, cost, depth); the feasible one that
saves the most cost is applied, and the pass repeats until no single simplification saves anything
within the WCE limit and the depth bound. This finds in seconds the savings that random mutation
needs hundreds of thousands of evaluations to stumble on, and the GP starts from there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evolve import kernels
from evolve.evaluator import Evaluator
from evolve.netlist import NOT, Netlist


@dataclass(frozen=True)
class Descent:
    net: Netlist
    cost: float
    wce: int
    steps: int
    evaluations: int


def redirect(net: Netlist, addr: int, to: int) -> None:
    """Make every reader of ``addr`` read ``to`` instead, then fold what became trivial (in place)."""
    k = addr - net.first
    for arr in (net.in0, net.in1):
        tail = arr[k + 1:]
        tail[tail == addr] = to
    net.out[net.out == addr] = to
    kernels.fold_constants(net.func, net.in0, net.in1, net.out, net.first)


def descend(net: Netlist, evaluator: Evaluator, weights: np.ndarray, limit: int, max_depth: int) -> Descent:
    """Apply the best single-gate simplification until none fits the WCE limit and depth bound."""
    ev = evaluator
    cur = net.copy()
    wce, act = ev.load_parent(cur)
    cost = float(kernels.gate_cost(cur.func, act, weights))
    dirty = np.zeros(ev.n_addr, dtype=np.bool_)
    steps = evaluations = 0
    while True:
        best: tuple[float, Netlist, int] | None = None
        for k in np.flatnonzero(act):
            addr = cur.first + int(k)
            targets = {0, 1, int(cur.in0[k])}
            if cur.func[k] != NOT:
                targets.add(int(cur.in1[k]))
            for to in sorted(targets):
                cand = cur.copy()
                redirect(cand, addr, to)
                w, c, _, _, _ = kernels.assess(
                    cand.func, cand.in0, cand.in1, cand.out, cur.func, cur.in0, cur.in1, cand.first, weights,
                    max_depth, cost - 1e-9, ev.valid, dirty, ev.store, ev.n_chunks, ev.n_addr, 1, ev.ex, ev.nb,
                    ev.signed, limit)
                if w >= 0:
                    evaluations += 1
                if 0 <= w <= limit and (best is None or c < best[0]):
                    best = (c, cand, w)
        if best is None:
            break
        cost, cur, wce = best
        _, act = ev.load_parent(cur)
        steps += 1
    return Descent(cur, cost, wce, steps, evaluations)
