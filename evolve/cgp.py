"""Cartesian GP on DEAP: the individual, its fitness, and the toolbox's ``mutate``/``evaluate``/``select``.

The genome is a :class:`~evolve.netlist.Netlist` with spare (inactive) gates interleaved, so that
``add`` mutations have somewhere to put new logic. The search is a (1+lambda) evolution strategy with
neutral drift: the best child replaces the parent when it is at least as fit.

Fitness is lexicographic, both minimised: (WCE excess over the current limit, cost). The excess is
zero for every feasible circuit, so among feasible circuits only the cost counts; it is non-zero
only while a WCE schedule tightens the limit below what the parent achieves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from deap import base, tools

from evolve.evaluator import Evaluator
from evolve.netlist import Netlist, with_spares

# Operator weights, in the order of kernels.OP_NAMES: gene, output, add, delete, merge, const.
DEFAULT_OPS = (0.60, 0.03, 0.07, 0.20, 0.03, 0.07)
NOT_SIMULATED = float("inf")
__all__ = ["Context", "Fitness", "Individual", "select", "with_spares"]


class Fitness(base.Fitness):
    """(WCE excess over the limit, cost, WCE): minimised, compared lexicographically.

    The last term only breaks ties of cost: among equally cheap circuits the more accurate one wins,
    which moves neutral drift away from the limit and frees error budget for the next saving.
    """

    weights = (-1.0, -1.0, -1.0)


class Individual:
    """A genome (gate netlist) with its DEAP fitness and what the evaluator found."""

    __slots__ = ("act", "app", "buf", "depth", "fitness", "net", "order", "wce")

    def __init__(self, net: Netlist):
        self.net = net
        self.fitness = Fitness()
        self.wce = -1
        self.depth = 0
        self.act: np.ndarray | None = None
        self.order: np.ndarray | None = None
        self.buf = 0
        self.app = (0.0, 0.0, 0.0)  # weighted sums of |error|, error and error^2 under the operands (evolve.app)

    @property
    def cost(self) -> float:
        return self.fitness.values[1]

    def clone(self) -> Individual:
        other = Individual(self.net.copy())
        other.fitness.values = self.fitness.values
        other.wce, other.depth, other.act, other.app = self.wce, self.depth, self.act, self.app
        return other


@dataclass
class Context:
    """What ``evaluate`` needs besides the individual: one per island process."""

    evaluator: Evaluator
    weights: np.ndarray  # cost per function code
    max_depth: int
    limit: int = 0
    tiebreak: bool = True
    uphill: float = 0.0
    objective: Any = None  # an evolve.app.Objective: power cost and application errors, when asked for

    def mutate(self, ind: Individual, parent: Individual, rng: np.random.Generator, cum: np.ndarray) -> int:
        assert parent.act is not None, "the parent has not been evaluated"
        return ind.net.mutate(parent.act, rng, cum)

    def evaluate(self, ind: Individual, parent: Individual, dirty: np.ndarray) -> tuple[float, float, float]:
        """Fitness of a child relative to ``parent`` (whose values fill the evaluator's cache)."""
        parent_excess = parent.fitness.values[0]
        feasible_parent = parent_excess == 0
        cap = parent.cost + self.uphill if feasible_parent else np.inf
        stop = self.limit if feasible_parent else -1
        if self.objective is not None:
            return self._evaluate_app(ind, parent, cap, dirty, stop)
        wce, cost, depth, act, order = ind.net.assess(parent.net, self.weights, self.max_depth, cap, self.evaluator,
                                                      dirty, ind.buf, stop if stop >= 0 else (1 << 62))
        ind.act, ind.order, ind.depth = act, order, depth
        if wce < 0:  # not simulated: too costly or too deep, so it cannot replace the parent
            ind.wce = -1
            return (NOT_SIMULATED, cost, NOT_SIMULATED)
        ind.wce = int(wce)
        return (float(max(0, wce - self.limit)), cost, float(wce) if self.tiebreak else 0.0)

    def _evaluate_app(self, ind: Individual, parent: Individual, cap: float, dirty: np.ndarray,
                      stop: int) -> tuple[float, float, float]:
        """:meth:`evaluate` through the objective: power cost on the stream, limits under the operands."""
        ob = self.objective
        wce, cost, depth, act, order, sums = ob.assess(ind.net, parent.net, self.weights, self.max_depth, cap,
                                                       dirty, ind.buf, stop if stop >= 0 else (1 << 62))
        ind.act, ind.order, ind.depth, ind.app = act, order, depth, sums
        if wce < 0:
            ind.wce = -1
            return (NOT_SIMULATED, cost, NOT_SIMULATED)
        ind.wce = wce
        return (ob.excess(wce, self.limit, sums), cost, ob.tiebreak(wce, sums) if self.tiebreak else 0.0)


def select(parent: Individual, offspring: list[Individual], uphill: float = 0.0) -> Individual:
    """(1+lambda) with neutral drift: the best child if it is at least as fit as the parent.

    ``uphill`` > 0 also lets a feasible child replace a feasible parent when it costs at most that much
    more (threshold accepting), so that the search can leave a local optimum; the run keeps the best
    circuit it has seen separately.
    """
    (best,) = tools.selBest(offspring, 1)
    if best.fitness >= parent.fitness:
        return best
    if uphill > 0 and parent.fitness.values[0] == 0 and best.fitness.values[0] == 0 \
            and best.fitness.values[1] <= parent.fitness.values[1] + uphill:
        return best
    return parent
