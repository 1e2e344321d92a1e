"""Assignment search: which multiplier each layer (or filter) uses, under an accuracy budget.

An assignment is a tuple with one entry per layer: a multiplier index (layer granularity) or a tuple
of indices, one per filter (filter granularity). Index 0 is always the exact multiplier; the others are
ordered from the cheapest (most aggressive) to the dearest. :class:`Evaluator` measures an assignment's
accuracy by LUT inference on the evaluation images and its cost through a :class:`~dnn.cost.CostModel`,
caching results so that every method's count of evaluations is the number of distinct networks it
actually ran.

Methods:

``xai``         XAI-Gen's threshold-guided search. Layers are normalised by importance (1 = most
                important). For each multiplier, from the most aggressive to the mildest, a threshold
                steps down through the importance values: layers less important than the threshold get
                that multiplier, the rest stay exact; the first threshold that meets the budget is kept
                (later ones only approximate fewer layers). Then layers left exact are given the
                mildest multiplier that keeps the budget, least important first. The cheapest
                configuration found is the answer.
``hawx``        HAWX's boundary search. Each (layer or filter, multiplier) pair has a score; a threshold
                T gives the configuration where every layer (filter) takes the cheapest multiplier whose
                score is <= T (exact otherwise). The configurations at the minimum, median and maximum
                score are evaluated first, then a binary search over the sorted scores finds the largest
                T that meets the budget.
``nsga2``       ALWANN's multi-objective search: NSGA-II (``deap.tools.selNSGA2``) over layer-granularity
                assignments with objectives accuracy (max), energy (min) and area (min). The first
                population holds the seeds (the heuristics' answers, the exact and every uniform
                assignment), the rest drawn at random; each generation makes as many children by
                uniform crossover and per-layer mutation, and selNSGA2 keeps the best of parents and
                children. All randomness comes from one ``random.Random(seed)``.
``exhaustive``  every configuration of the layer-granularity space (refused above ``max_evals``).
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deap import base, tools
from torch import nn

from core import metrics
from core.errors import ConfigError
from dnn import qnn, train
from dnn.cost import Cost, CostModel, Usage
from dnn.mults import Multiplier

METHODS = ("xai", "hawx", "nsga2", "exhaustive")
OBJECTIVES = ("accuracy", "energy_pj", "area")  # of NSGA-II and the Pareto set, in this order
Choice = tuple[Any, ...]  # per layer: int (whole layer) or tuple[int, ...] (per filter)


@dataclass
class Result:
    choice: Choice
    accuracy: float
    cost: Cost
    method: str
    order: int  # evaluation number (1-based) within the run

    def loss(self, baseline: float) -> float:
        return baseline - self.accuracy


@dataclass
class Evaluator:
    """Runs LUT inference for assignments and remembers every result."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    mults: list[Multiplier]
    costs: CostModel
    macs: dict[str, int]  # multiply-accumulates per image of each layer
    results: dict[Choice, Result] = field(default_factory=dict)
    progress: Callable[[Result], Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = [n for n, _ in qnn.qlayers(self.model)]
        self.filters = {n: layer.out_features for n, layer in qnn.qlayers(self.model)}

    def assignment(self, choice: Choice) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, c in zip(self.names, choice):
            out[name] = self.mults[c] if isinstance(c, (int, np.integer)) else [self.mults[i] for i in c]
        return out

    def usage(self, choice: Choice) -> Usage:
        out: Usage = []
        for name, c in zip(self.names, choice):
            macs = self.macs[name]
            if isinstance(c, (int, np.integer)):
                out.append((name, [(self.mults[int(c)], macs)]))
            else:
                per = macs // len(c)
                counts: dict[int, int] = {}
                for i in c:
                    counts[int(i)] = counts.get(int(i), 0) + per
                out.append((name, [(self.mults[i], n) for i, n in sorted(counts.items())]))
        return out

    def cost(self, choice: Choice) -> Cost:
        return self.costs.cost(self.usage(choice), self.assign_json(choice))

    def assign_json(self, choice: Choice) -> dict[str, Any]:
        """The assignment in the ``assign.json`` form: run directory or ``exact``, per layer or filter."""
        def spec(m: Multiplier) -> str:
            return str(m.path) if m.path is not None else "exact"

        return {n: spec(v) if isinstance(v, Multiplier) else [spec(m) for m in v]
                for n, v in self.assignment(choice).items()}

    def __call__(self, choice: Choice, method: str) -> Result:
        choice = tuple(c if isinstance(c, (int, np.integer)) else tuple(int(i) for i in c) for c in choice)
        choice = tuple(int(c) if isinstance(c, (int, np.integer)) else c for c in choice)
        self.counts[method] = self.counts.get(method, 0) + (choice not in self.results)
        if choice in self.results:
            return self.results[choice]
        qnn.assign(self.model, self.assignment(choice))
        qnn.set_mode(self.model, "lut")
        acc = train.accuracy(self.model, self.x, self.y)
        res = Result(choice, acc, self.cost(choice), method, len(self.results) + 1)
        self.results[choice] = res
        if self.progress:
            self.progress(res)
        return res

    def exact(self) -> Choice:
        return tuple(0 for _ in self.names)


# ------------------------------------------------------------------ the evaluation log (--resume)
def row(r: Result, ev: Evaluator, candidates: list[Multiplier]) -> dict[str, Any]:
    """One evaluation as a row of ``evaluations.jsonl`` / the CSV files and reports."""
    names: list[Any] = []
    for c in r.choice:
        if isinstance(c, int):
            names.append(candidates[c].name)
        else:
            counts: dict[str, int] = {}
            for i in c:
                counts[candidates[i].name] = counts.get(candidates[i].name, 0) + 1
            names.append(counts)
    return {"order": r.order, "method": r.method, "accuracy": r.accuracy, "energy_pj": r.cost.energy_pj,
            "mult_energy_pj": r.cost.mult_energy_pj, "accel_energy_pj": r.cost.accel_energy_pj,
            "area": r.cost.area, "time_s": r.cost.time_s,
            "choice": [list(c) if isinstance(c, tuple) else c for c in r.choice],
            # the multipliers by identity (the digest of their tables), not by their index in this run's
            # candidate list, which another --mults re-sorts: what --resume reads back
            "multipliers": [[candidates[i].digest for i in c] if isinstance(c, tuple) else candidates[c].digest
                            for c in r.choice],
            "assignment": dict(zip(ev.names, names))}


def reload(ev: Evaluator, path: Path, candidates: list[Multiplier]) -> int:
    """Resume: earlier evaluations are reused instead of re-run, each mapped to this run's candidates by
    its multipliers' identity; a row that names a multiplier not among them (or has no identities) is
    dropped, and so is a line cut short by an interruption. Returns the number of rows reused."""
    if not path.is_file():
        return 0
    index = {m.digest: i for i, m in enumerate(candidates)}
    reused = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interruption
        ids = entry.get("multipliers") if isinstance(entry, dict) else None
        if not isinstance(ids, list) or len(ids) != len(ev.names):
            continue
        try:
            choice = tuple(tuple(index[d] for d in c) if isinstance(c, list) else index[c] for c in ids)
        except (KeyError, TypeError):
            continue  # a multiplier this run does not have
        ev.results[choice] = Result(choice, entry["accuracy"], ev.cost(choice), entry["method"],
                                    len(ev.results) + 1)
        reused += 1
    return reused


def feasible(r: Result, baseline: float, budget: float) -> bool:
    return baseline - r.accuracy <= budget + 1e-12


def best(results: Sequence[Result], baseline: float, budget: float) -> Result | None:
    ok = [r for r in results if feasible(r, baseline, budget)]
    return min(ok, key=lambda r: (r.cost.energy_pj, r.cost.area, -r.accuracy)) if ok else None


# ------------------------------------------------------------------ XAI-Gen
def xai(ev: Evaluator, importance: dict[str, float], baseline: float, budget: float) -> list[Result]:
    names = ev.names
    seen: list[Result] = []
    approx = list(range(1, len(ev.mults)))  # most aggressive first
    thresholds = sorted({importance[n] for n in names}, reverse=True)
    found: list[Result] = []
    for m in approx:
        # threshold above every importance: all layers take m; then step down
        for t in [math.inf, *thresholds]:
            choice = tuple(m if importance[n] < t else 0 for n in names)
            if not any(choice):
                break
            r = ev(choice, "xai")
            seen.append(r)
            if feasible(r, baseline, budget):
                found.append(r)
                break
    start = best(found, baseline, budget)
    current = start.choice if start is not None else ev.exact()
    # layers still exact get the cheapest multiplier that keeps the budget, least important first
    for n in sorted(names, key=lambda k: importance[k]):
        i = names.index(n)
        if current[i] != 0:
            continue
        for m in approx:
            trial = (*current[:i], m, *current[i + 1:])
            r = ev(trial, "xai")
            seen.append(r)
            if feasible(r, baseline, budget):
                current = trial
                break
    return seen


# ------------------------------------------------------------------ HAWX
def hawx(ev: Evaluator, scores: Any, baseline: float, budget: float, granularity: str) -> list[Result]:
    """Boundary search over a score threshold (``scores`` is a :class:`~dnn.sensitivity.HawxScores`)."""
    names = ev.names
    approx = list(range(1, len(ev.mults)))

    def config(t: float) -> Choice:
        out: list[Any] = []
        for n in names:
            if granularity == "layer":
                ok = [m for m in approx if scores.layers[n][m] <= t]
                out.append(min(ok) if ok else 0)
            else:
                f = scores.filters[n]
                per = []
                for o in range(len(f[0])):
                    ok = [m for m in approx if f[m][o] <= t]
                    per.append(min(ok) if ok else 0)
                out.append(tuple(per))
        return tuple(out)

    if granularity == "layer":
        values = sorted({scores.layers[n][m] for n in names for m in approx})
    else:
        values = sorted({float(v) for n in names for m in approx for v in scores.filters[n][m]})
    if not values:
        return []
    seen: list[Result] = []
    ok_at: dict[int, bool] = {}
    for i in sorted({0, len(values) // 2, len(values) - 1}):  # minimum, median, maximum score
        r = ev(config(values[i]), "hawx")
        seen.append(r)
        ok_at[i] = feasible(r, baseline, budget)
    # binary search for the largest threshold index that is feasible (accuracy falls as T grows)
    lo, hi = -1, len(values)  # lo: feasible (or none), hi: infeasible
    for i in sorted(ok_at):
        if ok_at[i]:
            lo = max(lo, i)
        else:
            hi = min(hi, i)
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = ev(config(values[mid]), "hawx")
        seen.append(r)
        if feasible(r, baseline, budget):
            lo = mid
        else:
            hi = mid
    return seen


# ------------------------------------------------------------------ NSGA-II
class Fitness(base.Fitness):
    """:data:`OBJECTIVES`, each weighted by its registry direction: accuracy maximised, energy and area
    minimised."""

    weights = metrics.weights(OBJECTIVES)


class Individual(list[int]):
    """A layer-granularity assignment: one multiplier index per layer."""

    def __init__(self, genes: Iterable[int]):
        super().__init__(int(g) for g in genes)
        self.fitness = Fitness()


def nsga2(ev: Evaluator, seeds: Sequence[Choice], generations: int, population: int, seed: int,
          logbook: tools.Logbook | None = None) -> list[Result]:
    """NSGA-II over layer assignments; returns every result it evaluated (seeds first). Seeds that are
    not layer-granularity choices are skipped; duplicates are dropped."""
    rng = random.Random(seed)
    n_layers, n_mults = len(ev.names), len(ev.mults)
    start: list[tuple[int, ...]] = []
    for s in [*seeds, ev.exact(), *((m,) * n_layers for m in range(1, n_mults))]:
        if len(s) == n_layers and all(isinstance(c, (int, np.integer)) for c in s):
            t = tuple(int(c) for c in s)
            if t not in start:
                start.append(t)
    seen: list[Result] = []

    def evaluate(ind: Individual) -> tuple[float, float, float]:
        r = ev(tuple(ind), "nsga2")
        seen.append(r)
        values = objectives(r)
        return values["accuracy"], values["energy_pj"], values["area"]

    def mate(a: Individual, b: Individual) -> tuple[Individual, Individual]:
        for i in range(n_layers):
            if rng.random() < 0.5:
                a[i], b[i] = b[i], a[i]
        return a, b

    def mutate(ind: Individual) -> tuple[Individual]:
        for i in range(n_layers):
            if rng.random() < 1.0 / n_layers:
                ind[i] = rng.choice([m for m in range(n_mults) if m != ind[i]] or [ind[i]])
        return (ind,)

    toolbox = base.Toolbox()
    toolbox.register("evaluate", evaluate)
    toolbox.register("mate", mate)
    toolbox.register("mutate", mutate)
    toolbox.register("select", tools.selNSGA2)
    book = logbook if logbook is not None else tools.Logbook()
    book.header = ["gen", "evals", "front", "best_acc", "min_energy"]

    def record(gen: int, pop: list[Individual], evals: int) -> None:
        front = tools.sortNondominated(pop, len(pop), first_front_only=True)[0]
        book.record(gen=gen, evals=evals, front=len(front), best_acc=max(i.fitness.values[0] for i in pop),
                    min_energy=min(i.fitness.values[1] for i in pop))

    pop = [Individual(s) for s in start[:population]]
    while len(pop) < population:
        pop.append(Individual(rng.randrange(n_mults) for _ in range(n_layers)))
    for ind in pop:
        ind.fitness.values = toolbox.evaluate(ind)
    pop = toolbox.select(pop, population)
    record(0, pop, len(pop))
    for gen in range(1, generations + 1):
        children: list[Individual] = []
        while len(children) < population:
            a, b = (Individual(p) for p in rng.sample(pop, 2))
            a, b = toolbox.mate(a, b)
            children += [toolbox.mutate(a)[0], toolbox.mutate(b)[0]]
        children = children[:population]
        for ind in children:
            ind.fitness.values = toolbox.evaluate(ind)
        pop = toolbox.select(pop + children, population)
        record(gen, pop, len(children))
    return seen


# ------------------------------------------------------------------ exhaustive
def space_size(ev: Evaluator) -> int:
    return len(ev.mults) ** len(ev.names)


def exhaustive(ev: Evaluator, max_evals: int, tick: Callable[[], Any] | None = None) -> list[Result]:
    size = space_size(ev)
    if size > max_evals:
        raise ConfigError(f"exhaustive search over {len(ev.mults)} multipliers ^ {len(ev.names)} layers = "
                          f"{size} configurations must be at most MAX_EVALS={max_evals} "
                          "(choose --method xai or hawx, fewer --mults, or raise --max-evals)")
    seen = []
    for choice in itertools.product(range(len(ev.mults)), repeat=len(ev.names)):
        seen.append(ev(choice, "exhaustive"))
        if tick:
            tick()
    return seen


# ------------------------------------------------------------------ Pareto set
def objectives(r: Result) -> dict[str, float]:
    """A result's values of :data:`OBJECTIVES`."""
    return {"accuracy": r.accuracy, "energy_pj": r.cost.energy_pj, "area": r.cost.area}


def pareto(results: Sequence[Result]) -> list[Result]:
    """Non-dominated results in :data:`OBJECTIVES` (higher accuracy, lower energy, lower area: the
    registry's directions), by energy."""
    points = [objectives(r) for r in results]
    flags = metrics.dominated(points, OBJECTIVES)
    return sorted((r for r, d in zip(results, flags) if not d), key=lambda r: r.cost.energy_pj)
