"""Fine-tuning in the loop (``--finetune-in-loop N``): the accuracy budget applies to fine-tuned networks.

The search evaluates assignments on the plain INT8 network; an assignment just below the budget may be
rescued by a short approximation-aware fine-tune (:func:`dnn.train.finetune`: LUT products forward, the
exact product's gradient backward, the best checkpoint by validation accuracy kept, the start included).
The candidates are the points of the search's accuracy-energy front (the best accuracy found at or
below each energy) that are cheaper than the cheapest assignment already within the budget: all of them
miss it untuned, and the cheaper one is, the more accuracy it has to win back. They are tried by
bisection on energy (a rescued point moves the search to cheaper ones, a failure to dearer ones), then,
while fine-tunes of the ``N`` remain, the untried front points cheaper than the cheapest rescued one,
dearest first. Every fine-tune starts from the same trained network.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from dnn import qnn, train
from dnn.data import Data
from dnn.search import Choice, Evaluator, Result, best, feasible


@dataclass
class Tuned:
    """One assignment after fine-tuning: its result (accuracy on the evaluation images after the
    fine-tune, method ``finetune``), the accuracy before, the fine-tune's record and the weights."""

    result: Result
    before: float
    info: dict[str, Any]
    state: dict[str, Any]


def front(results: Sequence[Result]) -> list[Result]:
    """The accuracy-energy front, cheapest first: each point more accurate than every cheaper one."""
    out: list[Result] = []
    top = -1.0
    for r in sorted(results, key=lambda r: (r.cost.energy_pj, -r.accuracy, r.cost.area)):
        if r.accuracy > top:
            out.append(r)
            top = r.accuracy
    return out


def promising(results: Sequence[Result], baseline: float, budget: float) -> list[Result]:
    """Front points cheaper than the cheapest assignment within the budget (cheapest first)."""
    chosen = best(results, baseline, budget)
    limit = chosen.cost.energy_pj if chosen is not None else float("inf")
    return [r for r in front(results) if r.cost.energy_pj < limit and not feasible(r, baseline, budget)]


class Tuner:
    """Fine-tunes ``model`` (its state at construction is the start of every fine-tune) for one
    assignment at a time, on ``data``'s training images, keeping the best checkpoint on validation images
    (never test images): the evaluator's, or with ``select`` images of their own. The fine-tuned result
    is judged on the evaluator's images, as every evaluation is, with its paired counts against exact
    INT8 there; on its own selection images the checkpoint choice does not flatter that judgement."""

    def __init__(self, model: nn.Module, ev: Evaluator, data: Data, epochs: int,
                 lr: float, batch: int, seed: int, progress: Callable[[str], Any] | None = None,
                 select: tuple[Any, Any] | None = None):
        """``select``: the validation images (x, y) that pick the checkpoints, apart from the evaluator's
        (``--select-images``); None: the evaluator's own."""
        self.model, self.ev, self.data = model, ev, data
        self.select = select if select is not None else (ev.x, ev.y)
        self.epochs, self.lr, self.batch, self.seed = epochs, lr, batch, seed
        self.progress = progress
        self.start = copy.deepcopy(model.state_dict())
        self.done: list[Tuned] = []

    def __call__(self, choice: Choice) -> Tuned:
        before = self.ev(choice, "finetune").accuracy
        self.model.load_state_dict(self.start)
        qnn.assign(self.model, self.ev.assignment(choice))
        qnn.set_mode(self.model, "lut")
        try:
            x_sel, y_sel = self.select
            info = train.finetune(self.model, self.data, self.epochs, self.lr, self.batch, self.seed,
                                  x_sel, y_sel, progress=self.progress)
            right = train.correct(self.model, self.ev.x, self.ev.y)
            state = copy.deepcopy(self.model.state_dict())
        finally:
            self.model.load_state_dict(self.start)
        res = self.ev.result(choice, right, "finetune", len(self.done) + 1)
        tuned = Tuned(res, before, info, state)
        self.done.append(tuned)
        return tuned


def selection(data: Data, eval_images: int, select_images: int) -> tuple[Any, Any]:
    """The validation images that pick fine-tuning checkpoints: with ``--select-images K`` the K after the
    first ``eval_images`` (those evaluate assignments), with K = 0 the evaluation images themselves."""
    lo, hi = (eval_images, eval_images + select_images) if select_images else (0, eval_images)
    return data.x_val[lo:hi], data.y_val[lo:hi]


def run(tune: Callable[[Choice], Tuned], results: Sequence[Result], baseline: float, budget: float,
        n: int) -> list[Tuned]:
    """Fine-tune up to ``n`` promising assignments (module docstring); returns them in the order tried."""
    cands = promising(results, baseline, budget)
    tried: dict[int, Tuned] = {}
    lo, hi = 0, len(cands)  # the cheapest rescuable candidate is in [lo, hi); hi: none rescued yet
    while lo < hi and len(tried) < n:
        mid = (lo + hi) // 2
        tried[mid] = tune(cands[mid].choice)
        if feasible(tried[mid].result, baseline, budget):
            hi = mid
        else:
            lo = mid + 1
    cheapest_ok = min((i for i, t in tried.items() if feasible(t.result, baseline, budget)), default=len(cands))
    for i in range(cheapest_ok - 1, -1, -1):
        if len(tried) >= n:
            break
        if i not in tried:
            tried[i] = tune(cands[i].choice)
    return list(tried.values())
