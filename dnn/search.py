"""Assignment search: which multiplier each layer (or filter) uses, under an accuracy budget.

An assignment is a tuple with one entry per layer: a multiplier index (layer granularity) or a tuple
of indices, one per filter (filter granularity). Index 0 is always the exact multiplier; the others are
ordered from the cheapest (most aggressive) to the dearest. :class:`Evaluator` measures an assignment's
accuracy by LUT inference on the evaluation images and its cost through a :class:`~dnn.cost.CostModel`,
caching results so that every method's count of evaluations is the number of distinct networks it
actually ran.

Methods:

``xai``         XAI-Gen's importance-guided assignment: each (layer, multiplier) is scored by the layer's
                importance (conductance) x the relative deviation the multiplier causes in that
                layer's output (:mod:`dnn.sensitivity`); then the boundary search below.
``hawx``        HAWX's boundary search, at layer or filter granularity, on HAWX's scores (first-order
                loss estimates that add over layers and filters). For both heuristics the assignments
                searched are the path along the lower convex hull of (total score, energy) over the
                separable choices (:func:`upgrades`: the steps that save most energy per unit of score
                first, each item's energy from the cost model with the rest of the network exact): the
                most aggressive is evaluated first, then a binary search finds the last that meets the
                budget.
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
    # paired with exact INT8 on the same images: how many it classifies right and this wrong (lost) and
    # the other way round (gained); margin = the run's confidence x the loss's paired standard error,
    # added to the loss before the budget is applied (:func:`feasible`)
    lost: int = 0
    gained: int = 0
    margin: float = 0.0

    def loss(self, baseline: float) -> float:
        return baseline - self.accuracy


def paired(reference: torch.Tensor, right: torch.Tensor) -> tuple[int, int]:
    """(lost, gained): images the reference classifies right and ``right`` says wrong, and the other way
    round (one bool per image each)."""
    return int((reference & ~right).sum()), int((~reference & right).sum())


def paired_se(lost: int, gained: int, images: int) -> float:
    """Standard error of an accuracy difference measured on the same ``images``: the per-image
    differences are +1 (``lost``), -1 (``gained``) or 0, so the variance of their mean is
    ((lost + gained) / n - ((lost - gained) / n)^2) / n."""
    if images <= 0:
        return 0.0
    n = float(images)
    return math.sqrt(max(0.0, (lost + gained) - (lost - gained) ** 2 / n)) / n


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
    # z: a result meets the budget when its loss + z x its paired standard error does (--confidence)
    confidence: float = 0.0
    # which evaluation images exact INT8 classifies right: what lost/gained are counted against (by
    # default this network's exact assignment; a block-sparse search passes the dense network's)
    reference: torch.Tensor | None = None
    layer_energies: dict[str, list[float]] | None = None  # :func:`energies`, computed once per evaluator

    def __post_init__(self) -> None:
        self.names = [n for n, _ in qnn.qlayers(self.model)]
        self.filters = {n: layer.out_features for n, layer in qnn.qlayers(self.model)}

    def exact_correct(self) -> torch.Tensor:
        """The reference: per evaluation image, whether exact INT8 classifies it right."""
        if self.reference is None:
            qnn.assign(self.model, self.assignment(self.exact()))
            qnn.set_mode(self.model, "lut")
            self.reference = train.correct(self.model, self.x, self.y)
        return self.reference

    def judged(self, choice: Choice, lost: int, gained: int, accuracy: float, method: str,
               order: int) -> Result:
        margin = self.confidence * paired_se(lost, gained, len(self.x)) if self.confidence else 0.0
        return Result(choice, accuracy, self.cost(choice), method, order, lost, gained, margin)

    def result(self, choice: Choice, right: torch.Tensor, method: str, order: int) -> Result:
        """The result of ``choice`` from which evaluation images the network classified right."""
        lost, gained = paired(self.exact_correct(), right)
        return self.judged(choice, lost, gained, int(right.sum()) / max(1, len(self.x)), method, order)

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
        if choice != self.exact():
            self.exact_correct()  # before this assignment replaces the exact one
        qnn.assign(self.model, self.assignment(choice))
        qnn.set_mode(self.model, "lut")
        right = train.correct(self.model, self.x, self.y)
        if self.reference is None:
            self.reference = right
        res = self.result(choice, right, method, len(self.results) + 1)
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
    return {"order": r.order, "method": r.method, "accuracy": r.accuracy, "lost": r.lost, "gained": r.gained,
            "loss_se": paired_se(r.lost, r.gained, len(ev.x)), "energy_pj": r.cost.energy_pj,
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
    its multipliers' identity; a row that names a multiplier not among them (or has no identities or no
    paired counts) is dropped, and so is a line cut short by an interruption. Returns the number of rows
    reused."""
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
        if not all(isinstance(entry.get(k), int) for k in ("lost", "gained")):
            continue  # a row from before the paired counts were logged: evaluated again
        ev.results[choice] = ev.judged(choice, entry["lost"], entry["gained"], entry["accuracy"],
                                       entry["method"], len(ev.results) + 1)
        reused += 1
    return reused


def feasible(r: Result, baseline: float, budget: float) -> bool:
    """Whether ``r`` meets the budget: its loss, plus its confidence margin, at most ``budget``."""
    return baseline - r.accuracy + r.margin <= budget + 1e-12


def best(results: Sequence[Result], baseline: float, budget: float) -> Result | None:
    ok = [r for r in results if feasible(r, baseline, budget)]
    return min(ok, key=lambda r: (r.cost.energy_pj, r.cost.area, -r.accuracy)) if ok else None


# ------------------------------------------------------------------ the heuristics' boundary search
Option = tuple[int, float, float]  # (multiplier index, score, energy) of one choice of one item


def upgrades(items: Sequence[Sequence[Option]]) -> list[tuple[int, int]]:
    """The path along the lower convex hull of (total score, total energy) over the separable choices of
    ``items`` (each item a layer or filter, each option scored and costed alone): starting from every item
    at its least-scored option, the (item, multiplier) steps in the order of energy saved per unit of
    score added, most first. This is the Lagrangian relaxation of "least energy at a total score": each
    prefix of the path is the best assignment for some price of score, and an item's steps come in its
    own order because its hull is convex. Options dearer and no less scored than another are never
    taken."""
    steps: list[tuple[float, int, int, int]] = []
    for k, opts in enumerate(items):
        hull: list[Option] = []
        for o in sorted(opts, key=lambda o: (o[1], o[2])):
            if hull and o[2] >= hull[-1][2]:
                continue  # no cheaper than a less-scored option
            while len(hull) >= 2:
                (_, s1, e1), (_, s2, e2) = hull[-2], hull[-1]
                if (e2 - e1) * (o[1] - s1) >= (o[2] - e1) * (s2 - s1):
                    hull.pop()  # not below the chord from hull[-2] to o
                else:
                    break
            hull.append(o)
        for j in range(1, len(hull)):
            (_, s1, e1), (m, s2, e2) = hull[j - 1], hull[j]
            rate = math.inf if s2 <= s1 else (e1 - e2) / (s2 - s1)
            steps.append((-rate, k, j, m))
    return [(k, m) for _, k, _, m in sorted(steps)]


def first_options(items: Sequence[Sequence[Option]]) -> list[int]:
    """Every item's least-scored option (the cheapest among ties): where :func:`upgrades` begins."""
    return [min(opts, key=lambda o: (o[1], o[2]))[0] for opts in items]


def boundary(ev: Evaluator, path: Sequence[Choice], baseline: float, budget: float, method: str) -> list[Result]:
    """HAWX's boundary search along ``path`` (assignments from the mildest to the most aggressive):
    the last one first, then a binary search for the last that keeps the budget, taking accuracy to fall
    along the path. Returns every result it saw."""
    seen: list[Result] = []
    if not path:
        return seen

    def ok(i: int) -> bool:
        r = ev(path[i], method)
        seen.append(r)
        return feasible(r, baseline, budget)

    if ok(len(path) - 1):
        return seen
    lo, hi = 0, len(path) - 1  # hi: infeasible; lo: feasible (path[0] is taken as the exact network's)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    if lo == 0:
        ok(0)
    return seen


def energies(ev: Evaluator) -> dict[str, list[float]]:
    """``[layer][mult_index]``: what the cost model charges for the layer on that multiplier, the rest
    exact, less the exact network's (a layer-separable model of the energy objective). Computed once per
    evaluator: both heuristics walk paths over it."""
    if ev.layer_energies is not None:
        return ev.layer_energies
    exact = ev.exact()
    e0 = ev.cost(exact).energy_pj
    out: dict[str, list[float]] = {}
    for i, name in enumerate(ev.names):
        out[name] = [ev.cost((*exact[:i], m, *exact[i + 1:])).energy_pj - e0 if m else 0.0
                     for m in range(len(ev.mults))]
    ev.layer_energies = out
    return out


class HullPath(Sequence[Choice]):
    """The assignments along :func:`upgrades`: entry i has the first i steps applied to :func:`first_options`,
    packed into a :data:`Choice` by ``pack``; built on demand (a filter-granularity path is long)."""

    def __init__(self, items: Sequence[Sequence[Option]], pack: Callable[[list[int]], Choice]):
        self.first = first_options(items)
        self.steps = upgrades(items)
        self.pack = pack

    def __len__(self) -> int:
        return len(self.steps) + 1

    def __getitem__(self, i: Any) -> Any:
        if not isinstance(i, int) or not -len(self) <= i < len(self):
            raise IndexError(i)
        current = list(self.first)
        for k, m in self.steps[:i % len(self)]:
            current[k] = m
        return self.pack(current)


def _layer_path(ev: Evaluator, score: Callable[[str, int], float]) -> HullPath:
    en = energies(ev)
    return HullPath([[(m, score(n, m) if m else 0.0, en[n][m]) for m in range(len(ev.mults))] for n in ev.names],
                    tuple)


# ------------------------------------------------------------------ XAI-Gen
def xai(ev: Evaluator, scores: Any, baseline: float, budget: float) -> list[Result]:
    """XAI-Gen's layer-importance-guided assignment: (layer, multiplier) scored by ``scores`` (a
    :class:`~dnn.sensitivity.XaiScores`: importance x the relative deviation the multiplier causes in the
    layer), then the boundary search along the path of
    :func:`upgrades` (the less important a layer and the milder a multiplier's effect on it, the sooner
    it takes the multiplier, in the order of energy saved)."""
    path = _layer_path(ev, scores.score)
    return boundary(ev, path, baseline, budget, "xai")


# ------------------------------------------------------------------ HAWX
def hawx(ev: Evaluator, scores: Any, baseline: float, budget: float, granularity: str) -> list[Result]:
    """HAWX: the scores of ``scores`` (a :class:`~dnn.sensitivity.HawxScores`, loss estimates that add
    over layers and filters), the boundary search along the path of :func:`upgrades` over layers or
    over every layer's filters (a filter's energy is its layer's share)."""
    if granularity == "layer":
        return boundary(ev, _layer_path(ev, lambda n, m: scores.layers[n][m]), baseline, budget, "hawx")
    en = energies(ev)
    sizes = [ev.filters[n] for n in ev.names]
    items = [[(m, float(scores.filters[n][m][o]) if m else 0.0, en[n][m] / per) for m in range(len(ev.mults))]
             for n, per in zip(ev.names, sizes) for o in range(per)]
    ends = list(itertools.accumulate(sizes))

    def pack(flat: list[int]) -> Choice:
        return tuple(tuple(flat[e - n:e]) for e, n in zip(ends, sizes))

    return boundary(ev, HullPath(items, pack), baseline, budget, "hawx")


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
