"""Joint search of block sparsity and multipliers under one accuracy budget (``flow.py dnn --sparsity-ratios``).

What is searched, and why so: a block-sparse network must be retrained with its masks fixed before its
accuracy means anything, and retraining is the dear step (seconds for LeNet-5, minutes for ResNet-20 on
two cores). So the ratio is chosen per *ratio set*, not freely per layer: for each ratio ``r`` of
``--sparsity-ratios`` every layer not in ``--sparsity-exclude`` (the first layer by default) gets ``r``
(blocks of lowest ``--sparsity-norm`` zeroed, :mod:`dnn.sparsity`), and the network is retrained once, for
``--sparsity-epochs`` float epochs, calibration and one quantisation-aware epoch
(:func:`dnn.sparsity.retrain`). The multiplier half is searched on each ratio's network by the same
search as the dense one (the ``--method`` list: HAWX / XAI-Gen on the sparse network's own scores,
NSGA-II, exhaustive), seeded with every assignment on the dense search's Pareto set, the exact and every
uniform assignment: a sparse network's layers carry other shares of the energy (the dense first layer
a larger one) and other sensitivities, so the dense network's answers are not the sparse one's. Every
assignment is evaluated by LUT inference that skips the zero blocks. The answer is the cheapest (ratio,
assignment) pair within ``--max-acc-loss`` of the *dense* exact INT8 network's accuracy, next to the best
approximation-only answer (ratio 0).

Costs: skipped blocks cost nothing. Without ``--accel`` the multiplier energy counts only the MACs of kept
blocks (per filter); with ``--accel CONFIG`` each ratio's masks go to ``accel_models`` (``masks.npz``,
as ``flow.py accel --masks`` reads it), which gives the array's energy and time with the zero tiles
skipped. Outputs under ``sparsity/``: per ratio ``r<ratio>/masks.npz``, ``r<ratio>/model.pt``
(the retrained network), ``r<ratio>/network.json`` (what it was made with: its checkpoint's seal),
``r<ratio>/evaluations.jsonl`` (every assignment evaluated on it, a line each) and, with ``--accel``,
``r<ratio>/accel.json``; ``evaluations.csv`` (every (ratio, assignment) evaluated), ``assign.json`` and
``masks.npz`` of the joint answer.

Interrupted (Ctrl-C, a kill): every file is written whole under a temporary name and renamed, and the
evaluations are appended a line at a time, so what finished stays as it was; ``--resume`` reloads each
ratio's retrained network whose ``network.json`` matches the settings (else retrains it) and every
evaluation already made on it (the searches then re-run from their seeds without evaluating again).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

from dnn import cost as costs
from dnn.mults import Multiplier


class SparseMultiplierCost:
    """Multiplier energy of a block-sparse network: each filter's MACs scaled by its share of kept weights
    (a skipped block's products are never computed), then :class:`~dnn.cost.MultiplierCost`."""

    name = "multiplier"

    def __init__(self, mults: list[Multiplier], kept: dict[str, np.ndarray], macs: dict[str, int]):
        self.base = costs.MultiplierCost(mults)
        self.by_spec = {(str(m.path) if m.path is not None else "exact"): m for m in mults}
        self.kept, self.macs = kept, macs

    def multiplier(self, m: Multiplier) -> dict[str, float | None]:
        return self.base.multiplier(m)

    def cost(self, usage: costs.Usage, assignment: dict[str, Any] | None = None) -> costs.Cost:
        assert assignment is not None
        out: costs.Usage = []
        for name, spec in assignment.items():
            share = self.kept[name]
            per_filter = [spec] * len(share) if isinstance(spec, str) else list(spec)
            counts: dict[str, float] = {}
            for s, k in zip(per_filter, share):
                counts[s] = counts.get(s, 0.0) + k * self.macs[name] / len(share)
            out.append((name, [(self.by_spec[s], round(n)) for s, n in counts.items()]))
        del usage
        return self.base.cost(out)


def check(conf: Any, data: Any) -> None:
    """Everything the sparsity options can get wrong, before the run directory is touched."""
    from dnn import qnn, sparsity, train

    model = train.build(train.Recipe(conf.net), data)
    layers = dict(qnn.qlayers(model))
    names = list(layers)
    for r in conf.sparsity_ratios:
        for name in sparsity.ratios(names, r, exclude=conf.sparsity_exclude):
            sparsity.mask_shape(name, layers[name], conf.sparsity_block)


def _cost(conf: Any, ev: Any, model: Any, sub: Path) -> Any:
    from core.run import write_json
    from dnn import sparsity

    if conf.accel is None:
        return SparseMultiplierCost(ev.mults, sparsity.kept_filters(model), ev.macs)
    settings = json.loads(conf.accel.read_text(encoding="utf-8"))
    settings.update({"masks": str((sub / "masks.npz").resolve()), "sparsity": 0.0,
                     "sparsity_block": conf.sparsity_block})
    write_json(sub / "accel.json", settings)
    return costs.AccelCost(sub / "accel.json", ev.mults, ev.names)


def _exact_test_accuracy(model: Any, data: Any, exact: Multiplier) -> float:
    from dnn import qnn, train

    qnn.assign(model, qnn.uniform(model, exact))
    qnn.set_mode(model, "lut")
    return train.accuracy(model, data.x_test, data.y_test)


def _network_settings(conf: Any, r: float, layer_ratios: dict[str, float]) -> dict[str, Any]:
    """What a ratio's retrained network is made from (besides the dense network, which the run's
    fingerprint fixes): a checkpoint is reused only when these are the same."""
    return {"ratio": r, "layer_ratios": layer_ratios, "block": conf.sparsity_block, "norm": conf.sparsity_norm,
            "exclude": list(conf.sparsity_exclude), "epochs": conf.sparsity_epochs, "lr": conf.lr,
            "batch": conf.batch, "seed": conf.seed}


def _network(conf: Any, dense: Any, names: list[str], r: float, sub: Path, data: Any, exact: Multiplier,
             say: Any) -> tuple[Any, dict[str, float], float]:
    """Ratio ``r``'s block-sparse network, retrained, with its layer ratios and its exact INT8 test accuracy
    right after pruning. A checkpoint in ``sub`` whose ``network.json`` names the same settings is loaded
    instead of retraining; a new one is written file by file under temporary names, ``network.json``
    last, so an interrupted one is never taken for whole."""
    import io

    import torch

    from core.run import read_json, write_bytes, write_json
    from dnn import qnn, sparsity

    net = copy.deepcopy(dense)
    layer_ratios = sparsity.ratios(names, r, exclude=conf.sparsity_exclude)
    settings = _network_settings(conf, r, layer_ratios)
    sealed = sub / "network.json"
    if sealed.is_file() and (sub / "model.pt").is_file():
        state = read_json(sealed, "the sparse network's checkpoint")
        if isinstance(state, dict) and state.get("settings") == settings:
            masks = sparsity.derive(net, layer_ratios, conf.sparsity_block, conf.sparsity_norm)
            sparsity.apply(net, masks, conf.sparsity_block)
            net.load_state_dict(torch.load(sub / "model.pt", weights_only=True))
            qnn.set_mode(net, "qat")
            if sparsity.zeros_kept(net):
                say(f"block sparsity {r:g}: retrained network reloaded from {sub}")
                return net, layer_ratios, float(state["test_accuracy_pruned"])
            net = copy.deepcopy(dense)
    sealed.unlink(missing_ok=True)  # what follows replaces the checkpoint: never a stale seal on new files
    sparsity.apply(net, sparsity.derive(net, layer_ratios, conf.sparsity_block, conf.sparsity_norm),
                   conf.sparsity_block)
    pruned = _exact_test_accuracy(copy.deepcopy(net), data, exact)
    qnn.set_mode(net, "qat")
    sparsity.retrain(net, data, conf.sparsity_epochs, conf.lr, conf.batch, conf.seed, progress=say)
    assert sparsity.zeros_kept(net)
    sparsity.save(sub / "masks.npz", net)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    write_bytes(sub / "model.pt", buf.getvalue())
    write_json(sealed, {"settings": settings, "test_accuracy_pruned": pruned})
    return net, layer_ratios, pruned


def _searched(conf: Any, net: Any, ev_r: Any, data: Any, seeds: list[Any], baseline: float,
              say: Any) -> list[Any]:
    """Every result of the configured search on one sparse network (the dense search's methods, NSGA-II
    seeded with the heuristics' answers and ``seeds``)."""
    from dnn import qnn, sensitivity
    from dnn import search as searching

    budget = conf.max_acc_loss
    seen = [ev_r(c, "seed") for c in seeds]
    answers = []
    methods = set(conf.method)
    if methods & {"hawx", "xai", "nsga2"}:
        # from a set state (exact products), not whatever the last evaluation left: a resumed run, whose
        # evaluations come from its log, picks the same representatives
        qnn.assign(net, ev_r.assignment(ev_r.exact()))
        qnn.set_mode(net, "lut")
        reps = sensitivity.representatives(net, data.x_train, conf.representatives, conf.seed)
        xr, yr = data.x_train[reps], data.y_train[reps]
    if "xai" in methods:
        qnn.set_mode(net, "qat")
        found = searching.xai(ev_r, sensitivity.conductance(net, xr, yr, conf.ig_steps), baseline, budget)
        seen += found
        answers.append(searching.best(found, baseline, budget))
    if "hawx" in methods or ("nsga2" in methods and "xai" not in methods):
        found = searching.hawx(ev_r, sensitivity.hawx(net, xr, yr, ev_r.mults), baseline, budget, "layer")
        seen += found
        answers.append(searching.best(found, baseline, budget))
    if "nsga2" in methods:
        start = [a.choice for a in answers if a is not None] + list(seeds)
        seen += searching.nsga2(ev_r, start, conf.generations, conf.population, conf.seed)
    if "exhaustive" in methods and searching.space_size(ev_r) <= conf.max_evals:
        seen += searching.exhaustive(ev_r, conf.max_evals)
    say(f"{len(ev_r.results)} assignments evaluated on the block-sparse network")
    return list({r.choice: r for r in seen}.values())


def search(conf: Any, rd: Any, model: Any, data: Any, ev: Any, front: list[Any], baseline: float,
           say: Any) -> dict[str, Any]:
    """Retrain one block-sparse network per ratio, search the multiplier assignments on each, and return
    the ``sparsity`` section of the report (files written under ``sparsity/``)."""
    from core.run import write_bytes, write_json
    from dnn import cli, qnn, sparsity
    from dnn import search as searching

    dense = copy.deepcopy(model)
    qnn.set_mode(dense, "qat")
    names = ev.names
    budget = conf.max_acc_loss
    approx_only = searching.best(list(ev.results.values()), baseline, budget)
    seeds = list(dict.fromkeys([r.choice for r in front] + [ev.exact()]
                               + [(m,) * len(names) for m in range(1, len(ev.mults))]
                               + ([approx_only.choice] if approx_only else [])))
    exact_cost = ev.cost(ev.exact())
    root = rd.path / "sparsity"
    root.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    table: list[dict[str, Any]] = [{
        "ratio": 0.0, "layer_ratios": {}, "density": sparsity.density(dense),
        "test_accuracy": _exact_test_accuracy(copy.deepcopy(dense), data, ev.mults[0]),
        "test_accuracy_pruned": None, "eval_accuracy": baseline, "exact_energy_pj": exact_cost.energy_pj,
        "exact_time_s": exact_cost.time_s, "best": _brief(approx_only, exact_cost), "evaluations": len(ev.results)}]
    candidates: list[tuple[float, Any, Any]] = [(0.0, approx_only, None)] if approx_only else []
    for r in sorted({float(x) for x in conf.sparsity_ratios if x > 0}):
        sub = root / f"r{r:g}"
        sub.mkdir(exist_ok=True)
        net, layer_ratios, pruned = _network(conf, dense, names, r, sub, data, ev.mults[0], say)
        ev_r = searching.Evaluator(net, ev.x, ev.y, ev.mults, _cost(conf, ev, net, sub), ev.macs)
        log = sub / "evaluations.jsonl"
        reused = cli._reload(ev_r, log, ev.mults)
        if reused:
            say(f"block sparsity {r:g}: {reused} evaluations reused from {log}")

        def record(res: Any, ev_r: Any = ev_r, log: Path = log) -> None:
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps(cli._row(res, ev_r, ev.mults)) + "\n")

        ev_r.progress = record
        results = _searched(conf, net, ev_r, data, seeds, baseline, say)
        for res in results:
            rows.append({"ratio": r, "accuracy": res.accuracy, "energy_pj": res.cost.energy_pj,
                         "time_s": res.cost.time_s, "area": res.cost.area,
                         "assignment": json.dumps(ev_r.assign_json(res.choice))})
        b = searching.best(results, baseline, budget)
        exact_r = ev_r(ev.exact(), f"sparse-{r:g}")
        table.append({"ratio": r, "layer_ratios": layer_ratios, "density": sparsity.density(net),
                      "test_accuracy": _exact_test_accuracy(copy.deepcopy(net), data, ev.mults[0]),
                      "test_accuracy_pruned": pruned, "eval_accuracy": exact_r.accuracy,
                      "exact_energy_pj": exact_r.cost.energy_pj, "exact_time_s": exact_r.cost.time_s,
                      "best": _brief(b, exact_cost), "evaluations": len(results)})
        say(f"block sparsity {r:g}: exact INT8 test accuracy {pruned:.4f} pruned -> "
            f"{table[-1]['test_accuracy']:.4f} retrained")
        if b is not None:
            candidates.append((r, b, ev_r))
    _csv(root / "evaluations.csv", rows)
    out: dict[str, Any] = {
        "block": conf.sparsity_block, "norm": conf.sparsity_norm, "exclude": list(conf.sparsity_exclude),
        "epochs": conf.sparsity_epochs, "test_images": len(data.x_test), "table": table,
        "approximation_only": _brief(approx_only, exact_cost), "chosen": None}
    if candidates:
        r, b, ev_r = min(candidates, key=lambda t: (t[1].cost.energy_pj, t[1].cost.area, -t[1].accuracy))
        spec = (ev_r or ev).assign_json(b.choice)
        write_json(root / "assign.json", spec)
        if r > 0:
            write_bytes(root / "masks.npz", (root / f"r{r:g}" / "masks.npz").read_bytes())
        out["chosen"] = {"ratio": r, **(_brief(b, exact_cost) or {}), "assignment": spec}
        if approx_only is not None and b.cost.energy_pj:
            out["energy_vs_approximation_only"] = approx_only.cost.energy_pj / b.cost.energy_pj
            if approx_only.cost.time_s and b.cost.time_s:
                out["time_vs_approximation_only"] = approx_only.cost.time_s / b.cost.time_s
    return out


def _brief(r: Any, exact_cost: Any) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"accuracy": r.accuracy, "energy_pj": r.cost.energy_pj, "time_s": r.cost.time_s, "area": r.cost.area,
            "energy_reduction": exact_cost.energy_pj / r.cost.energy_pj if r.cost.energy_pj else None,
            "time_reduction": (exact_cost.time_s / r.cost.time_s) if r.cost.time_s and exact_cost.time_s else None,
            "choice": [list(c) if isinstance(c, tuple) else c for c in r.choice]}


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv
    import io

    from core.run import write_text

    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=["ratio", "accuracy", "energy_pj", "time_s", "area", "assignment"])
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def markdown(rep: dict[str, Any]) -> str:
    """The report's block-sparsity section: accuracy per ratio (Table I's shape) and the joint answer."""
    lines = ["", f"## Block sparsity ({rep['block']}x{rep['block']} blocks, {rep['norm']}, "
             f"excluded: {', '.join(rep['exclude']) or 'none'}; retrained {rep['epochs']} epochs)", "",
             "| ratio | weights kept | exact INT8 test acc. pruned (%) | retrained (%) | best within budget: "
             "accuracy (%) | energy / exact dense |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t in rep["table"]:
        dens = t["density"]
        kept = sum(dens.values()) / max(1, len(dens))
        pruned = "-" if t["test_accuracy_pruned"] is None else f"{100 * t['test_accuracy_pruned']:.2f}"
        b = t["best"]
        best = ("none | -" if b is None else
                f"{100 * b['accuracy']:.2f} | {1 / b['energy_reduction']:.3f}" if b["energy_reduction"] else "-")
        lines.append(f"| {t['ratio']:g} | {kept:.3f} (layer mean) | {pruned} | {100 * t['test_accuracy']:.2f} | "
                     f"{best} |")
    ch = rep.get("chosen")
    lines.append("")
    if ch is None:
        lines.append("No (ratio, assignment) pair met the budget.")
    else:
        gain = rep.get("energy_vs_approximation_only")
        lines.append(f"Joint answer: ratio {ch['ratio']:g}, accuracy {100 * ch['accuracy']:.2f} %, energy "
                     f"{ch['energy_pj']:.4g} pJ ({ch['energy_reduction']:.2f}x less than the dense exact network"
                     + (f", {gain:.2f}x less than the best approximation-only assignment" if gain else "")
                     + (f"; time {1e6 * ch['time_s']:.2f} us" if ch.get("time_s") else "")
                     + "), in sparsity/assign.json and sparsity/masks.npz.")
    return "\n".join(lines) + "\n"
