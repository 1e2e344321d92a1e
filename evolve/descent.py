"""Steepest descent: the cheap first part of the search, before Cartesian GP takes over.

From the exact seed, every single simplification of one active gate is tried: tying its readers to
constant 0 or 1 (a stuck-at: truncation, in effect) or bypassing it with one of its inputs. Each
candidate is evaluated exhaustively like any CGP child (WCE, cost, depth); the feasible one that
saves the most cost is applied, and the pass repeats until no single simplification saves anything
within the WCE limit and the depth bound. This finds in seconds the savings that random mutation
needs hundreds of thousands of evaluations to stumble on, and the GP starts from there.

Above 16 input bits the evaluator sees a vector set, not every input, so each step is proven
(``prove``) before it is applied: a refuted step adds its counterexample to the vector set (the
evaluator is rebuilt by ``rebuild``) and the candidates are weighed again; a step whose proof runs
out of time is never taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evolve.evaluator import Evaluator
from evolve.netlist import Netlist
from verify.wce import Proof, refuting_vectors


@dataclass(frozen=True)
class Descent:
    net: Any  # a gate or cell netlist, as descended from
    cost: float
    wce: int
    steps: int
    evaluations: int
    counterexamples: list[int] = field(default_factory=list)
    proofs: int = 0


def redirect(net: Netlist, addr: int, to: int) -> None:
    """Make every reader of ``addr`` read ``to`` instead, then fold what became trivial (in place)."""
    net.redirect(addr, to)


def _simplifications(cur: Any, act: np.ndarray, banned: set[tuple[int, int]]
                     ) -> Iterator[tuple[int, int, Any]]:
    """Every single-node simplification of ``cur`` not in ``banned``: (node address, what its readers read
    instead, the simplified copy)."""
    for k in np.flatnonzero(act):
        addr = cur.first + int(k)
        for to in sorted({0, 1, *cur.used_inputs(int(k))}):
            if (addr, to) in banned:
                continue
            cand = cur.copy()
            cand.redirect(addr, to)
            yield addr, to, cand


def descend(net: Any, evaluator: Evaluator, weights: np.ndarray, limit: int, max_depth: int,
            prove: Callable[[Netlist], Proof] | None = None,
            rebuild: Callable[[list[int]], Evaluator] | None = None, deadline: float | None = None,
            objective: Any = None) -> Descent:
    """Apply the best single-gate simplification until none fits the WCE limit and depth bound.

    With ``prove`` (and ``rebuild``, which makes an evaluator whose vector set holds the given
    counterexamples) every step is proven before it is taken. ``deadline`` (``time.monotonic()``)
    ends the descent early: the GP carries on from the last proven step. ``objective`` (an
    :class:`evolve.app.Objective` on ``evaluator``): its cost (power) and its application limits apply."""
    if objective is not None:
        return _descend_objective(net, objective, weights, limit, max_depth)
    ev = evaluator
    cur = net.copy()
    wce, act = ev.load_parent(cur)
    cost = cur.weighted_cost(weights, act)
    dirty = np.zeros(ev.n_addr, dtype=np.bool_)
    steps = evaluations = proofs = 0
    found: list[int] = []
    banned: set[tuple[int, int]] = set()  # steps whose proof ran out of time
    while deadline is None or time.monotonic() < deadline:
        best: tuple[float, Netlist, int, tuple[int, int]] | None = None
        for k in np.flatnonzero(act):
            addr = cur.first + int(k)
            targets = {0, 1, *cur.used_inputs(int(k))}
            for to in sorted(targets):
                if (addr, to) in banned:
                    continue
                cand = cur.copy()
                cand.redirect(addr, to)
                w, c, _, _, _ = cand.assess(cur, weights, max_depth, cost - 1e-9, ev, dirty, 1, limit)
                if w >= 0:
                    evaluations += 1
                if 0 <= w <= limit and (best is None or c < best[0]):
                    best = (c, cand, w, (addr, to))
        if best is None:
            break
        if prove is not None:
            proofs += 1
            proof = prove(best[1])
            if not proof.proven:
                if proof.counterexample is None:
                    banned.add(best[3])
                else:
                    assert rebuild is not None
                    found += refuting_vectors(proof, net.wb)
                    ev = rebuild(found)
                    dirty = np.zeros(ev.n_addr, dtype=np.bool_)
                    ev.load_parent(cur)
                continue
        cost, cur, wce, _ = best
        _, act = ev.load_parent(cur)
        steps += 1
    return Descent(cur, cost, wce, steps, evaluations, found, proofs)


def _descend_objective(net: Netlist, ob: Any, weights: np.ndarray, limit: int, max_depth: int) -> Descent:
    """:func:`descend` with the cost and the limits of an :class:`evolve.app.Objective` (up to 16 input bits)."""
    cur = net.copy()
    wce, act, cost, _ = ob.load_parent(cur, weights)
    dirty = np.zeros(ob.ev.n_addr, dtype=np.bool_)
    steps = evaluations = 0
    while True:
        best: tuple[float, Netlist, int] | None = None
        for _, _, cand in _simplifications(cur, act, set()):
            w, c, _, _, _, sums = ob.assess(cand, cur, weights, max_depth, cost - 1e-12, dirty, 1, limit)
            if w >= 0:
                evaluations += 1
            if 0 <= w <= limit and ob.within_app_limits(sums) and (best is None or c < best[0]):
                best = (c, cand, w)
        if best is None:
            break
        cur = best[1]
        wce, act, cost, _ = ob.load_parent(cur, weights)
        steps += 1
    return Descent(cur, cost, wce, steps, evaluations)
