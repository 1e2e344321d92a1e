"""Joint search of block sparsity and multipliers under one accuracy budget (``flow.py dnn --sparsity-ratios``).

What is searched, and why so: a block-sparse network must be retrained with its masks fixed before its
accuracy means anything, and retraining is the dear step (seconds for LeNet-5, minutes for ResNet-20 on
two cores). So the ratio is chosen per *ratio set*, not freely per layer: for each ratio ``r`` of
``--sparsity-ratios`` every layer not in ``--sparsity-exclude`` (the first layer by default) gets ``r``
(blocks of lowest ``--sparsity-norm`` zeroed, :mod:`dnn.sparsity`), and the network is retrained once, for
``--sparsity-epochs`` float epochs, calibration and one quantisation-aware epoch
(:func:`dnn.sparsity.retrain`). Then (``--sparsity-per-layer``, the default) mixes: from the cheapest
uniform ratio set with an answer, one layer's ratio at a time (layers of most MACs first) is raised to the
next ratio of the list, retrained from the dense network and searched, and kept while the answer gets
cheaper (a layer stops at its first dearer or failed mix; a mix zeroing the same blocks as the current
one is not retrained): a network's layers do not all take the same ratio (LeNet-5's fully connected
layers lose fewer points than its second convolution, whose two 8x8 blocks allow 50 % at most), and this
costs a retraining per mix tried, not one per combination. The multiplier half is searched on each ratio's network by the same
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
skipped. Outputs under ``sparsity/``: per ratio set ``r<ratio>[-<layer>=<ratio>...]/masks.npz``, ``r<ratio>/model.pt``
(the retrained network), ``r<ratio>/network.json`` (what it was made with: its checkpoint's seal),
``r<ratio>/evaluations.jsonl`` (every assignment evaluated on it, a line each) and, with ``--accel``,
``r<ratio>/accel.json``; ``evaluations.csv`` (every (ratio, assignment) evaluated), ``assign.json`` and
``masks.npz`` of the joint answer (and ``model_finetuned.pt`` when its accuracy is that of a fine-tune of
``--finetune-in-loop``, which each ratio's network gets as the dense one does).

Interrupted (Ctrl-C, a kill): every file is written whole under a temporary name and renamed, and the
evaluations are appended a line at a time, so what finished stays as it was; ``--resume`` reloads each
ratio's retrained network whose ``network.json`` matches the settings (else retrains it) and every
evaluation already made on it (the searches then re-run from their seeds without evaluating again).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
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
    return costs.AccelCost(sub / "accel.json", ev.mults, ev.names, costs.objective(conf.objective, conf.accel),
                           SparseMultiplierCost(ev.mults, sparsity.kept_filters(model), ev.macs))


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


def _network(conf: Any, dense: Any, r: float, layer_ratios: dict[str, float], sub: Path, data: Any,
             exact: Multiplier, say: Any) -> tuple[Any, float]:
    """The block-sparse network of ``layer_ratios`` (``r``: the uniform ratio it comes from), retrained,
    and its exact INT8 test accuracy right after pruning. A checkpoint in ``sub`` whose ``network.json`` names the same settings is loaded
    instead of retraining; a new one is written file by file under temporary names, ``network.json``
    last, so an interrupted one is never taken for whole."""
    import io

    import torch

    from core.run import read_json, write_bytes, write_json
    from dnn import qnn, sparsity

    net = copy.deepcopy(dense)
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
                say(f"block sparsity {sub.name}: retrained network reloaded from {sub}")
                return net, float(state["test_accuracy_pruned"])
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
    return net, pruned


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
        found = searching.xai(ev_r, sensitivity.xai(net, xr, yr, ev_r.mults, conf.ig_steps), baseline, budget)
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


def _tuned(conf: Any, net: Any, ev_r: Any, data: Any, results: list[Any], baseline: float,
           say: Any) -> dict[Any, Any]:
    """``--finetune-in-loop N``: up to N promising assignments of this network fine-tuned, as the dense
    search does (:mod:`dnn.loop`; the masks stay fixed through it)."""
    from dnn import loop

    if not conf.finetune_in_loop:
        return {}
    tuner = loop.Tuner(net, ev_r, data, conf.finetune_epochs, conf.lr / 10, conf.batch, conf.seed,
                       progress=say, select=loop.selection(data, conf.eval_images, conf.select_images))
    return {t.result.choice: t for t in loop.run(tuner, results, baseline, conf.max_acc_loss,
                                                 conf.finetune_in_loop)}


@dataclass
class _Joint:
    """What every ratio set of one joint search shares, and what it has found."""

    conf: Any
    dense: Any
    data: Any
    ev: Any
    seeds: list[Any]
    baseline: float
    root: Path
    say: Any
    rows: list[dict[str, Any]] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    # (directory, best result, its evaluator, its table row) of every ratio set with an answer in the budget
    candidates: list[tuple[str, Any, Any, dict[str, Any]]] = field(default_factory=list)
    tuned: dict[str, dict[Any, Any]] = field(default_factory=dict)  # per directory: the fine-tuned assignments

    def ratio_set(self, r: float, layer_ratios: dict[str, float]) -> Any:
        """Retrain the network of ``layer_ratios`` (from uniform ratio ``r``), search its assignments, add
        its row to the table; returns its best result within the budget (or None)."""
        from dnn import search as searching
        from dnn import sparsity

        conf, ev = self.conf, self.ev
        uniform = sparsity.ratios(ev.names, r, exclude=conf.sparsity_exclude)
        label = f"r{r:g}" + "".join(f"-{n}={q:g}" for n, q in layer_ratios.items() if uniform.get(n) != q)
        sub = self.root / label
        sub.mkdir(exist_ok=True)
        net, pruned = _network(conf, self.dense, r, layer_ratios, sub, self.data, ev.mults[0], self.say)
        # judged against the dense network's exact INT8, the baseline of the budget
        ev_r = searching.Evaluator(net, ev.x, ev.y, ev.mults, _cost(conf, ev, net, sub), ev.macs,
                                   confidence=ev.confidence, reference=ev.exact_correct())
        log = sub / "evaluations.jsonl"
        reused = searching.reload(ev_r, log, ev.mults)
        if reused:
            self.say(f"block sparsity {label}: {reused} evaluations reused from {log}")

        def record(res: Any) -> None:
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps(searching.row(res, ev_r, ev.mults)) + "\n")

        ev_r.progress = record
        results = _searched(conf, net, ev_r, self.data, self.seeds, self.baseline, self.say)
        tuned = _tuned(conf, net, ev_r, self.data, results, self.baseline, self.say)
        results = list({**{r.choice: r for r in results}, **{c: t.result for c, t in tuned.items()}}.values())
        self.tuned[label] = tuned
        for res in results:
            self.rows.append({"ratio": r, "layer_ratios": json.dumps(layer_ratios), "accuracy": res.accuracy,
                              "energy_pj": res.cost.energy_pj, "time_s": res.cost.time_s, "area": res.cost.area,
                              "assignment": json.dumps(ev_r.assign_json(res.choice))})
        b = searching.best(results, self.baseline, conf.max_acc_loss)
        exact_r = ev_r(ev.exact(), f"sparse-{label}")
        exact_cost = ev.cost(ev.exact())
        self.table.append({"ratio": r, "layer_ratios": layer_ratios, "density": sparsity.density(net),
                           "test_accuracy": _exact_test_accuracy(copy.deepcopy(net), self.data, ev.mults[0]),
                           "test_accuracy_pruned": pruned, "eval_accuracy": exact_r.accuracy,
                           "exact_energy_pj": exact_r.cost.energy_pj, "exact_time_s": exact_r.cost.time_s,
                           "best": _brief(b, exact_cost), "evaluations": len(results),
                           "finetuned_in_loop": len(tuned)})
        self.say(f"block sparsity {label}: exact INT8 test accuracy {pruned:.4f} pruned -> "
                 f"{self.table[-1]['test_accuracy']:.4f} retrained")
        if b is not None:
            self.candidates.append((label, b, ev_r, self.table[-1]))
        return b


def _cheapest(candidates: list[tuple[str, Any, Any, dict[str, Any]]]) -> tuple[str, Any, Any, dict[str, Any]]:
    return min(candidates, key=lambda t: (t[1].cost.energy_pj, t[1].cost.area, -t[1].accuracy))


def _per_layer(j: _Joint, levels: list[float]) -> None:
    """From the cheapest uniform ratio set with an answer, raise one layer's ratio at a time to the next of
    ``levels`` (layers of most MACs first) while the joint answer gets cheaper; a mix whose masks equal
    the current ones (a layer of few blocks) is not retrained."""
    from dnn import sparsity

    uniform = [c for c in j.candidates if c[0]]  # (only uniform ratio sets are there yet)
    if not uniform:
        return
    _, b, _, start = _cheapest(uniform)
    r, current, best = start["ratio"], dict(start["layer_ratios"]), b.cost.energy_pj
    block, norm = j.conf.sparsity_block, j.conf.sparsity_norm
    masks = sparsity.derive(copy.deepcopy(j.dense), current, block, norm)
    for name in sorted(current, key=lambda n: -j.ev.macs[n]):
        for q in (q for q in levels if q > current[name]):
            mix = {**current, name: q}
            mixed = sparsity.derive(copy.deepcopy(j.dense), mix, block, norm)
            if all(np.array_equal(mixed[n], masks[n]) for n in mix):
                continue  # the same blocks zeroed: the same network
            found = j.ratio_set(r, mix)
            if found is None or found.cost.energy_pj >= best:
                break
            current, masks, best = mix, mixed, found.cost.energy_pj


def search(conf: Any, rd: Any, model: Any, data: Any, ev: Any, final: list[Any], baseline: float,
           say: Any) -> dict[str, Any]:
    """Retrain one block-sparse network per ratio (then per mix of layer ratios), search the multiplier
    assignments on each, and return the ``sparsity`` section of the report (files under ``sparsity/``).
    ``final``: the dense search's results, with their fine-tuned accuracies where it fine-tuned them."""
    from core.run import write_bytes, write_json
    from dnn import qnn, sparsity
    from dnn import search as searching

    dense = copy.deepcopy(model)
    qnn.set_mode(dense, "qat")
    names = ev.names
    approx_only = searching.best(final, baseline, conf.max_acc_loss)
    seeds = list(dict.fromkeys([r.choice for r in searching.pareto(final)] + [ev.exact()]
                               + [(m,) * len(names) for m in range(1, len(ev.mults))]
                               + ([approx_only.choice] if approx_only else [])))
    exact_cost = ev.cost(ev.exact())
    root = rd.path / "sparsity"
    root.mkdir(exist_ok=True)
    j = _Joint(conf, dense, data, ev, seeds, baseline, root, say)
    j.table.append({
        "ratio": 0.0, "layer_ratios": {}, "density": sparsity.density(dense),
        "test_accuracy": _exact_test_accuracy(copy.deepcopy(dense), data, ev.mults[0]),
        "test_accuracy_pruned": None, "eval_accuracy": baseline, "exact_energy_pj": exact_cost.energy_pj,
        "exact_time_s": exact_cost.time_s, "best": _brief(approx_only, exact_cost), "evaluations": len(ev.results)})
    if approx_only:
        j.candidates.append(("", approx_only, None, j.table[0]))
    levels = sorted({float(x) for x in conf.sparsity_ratios if x > 0})
    for r in levels:
        j.ratio_set(r, sparsity.ratios(names, r, exclude=conf.sparsity_exclude))
    if conf.sparsity_per_layer:
        _per_layer(j, levels)
    _csv(root / "evaluations.csv", j.rows)
    out: dict[str, Any] = {
        "block": conf.sparsity_block, "norm": conf.sparsity_norm, "exclude": list(conf.sparsity_exclude),
        "epochs": conf.sparsity_epochs, "test_images": len(data.x_test), "table": j.table,
        "approximation_only": _brief(approx_only, exact_cost), "chosen": None}
    if j.candidates:
        label, b, ev_r, row = _cheapest(j.candidates)
        spec = (ev_r or ev).assign_json(b.choice)
        write_json(root / "assign.json", spec)
        if label:
            write_bytes(root / "masks.npz", (root / label / "masks.npz").read_bytes())
            tuned = j.tuned.get(label, {}).get(b.choice)
            if tuned is not None:  # the answer's accuracy is its fine-tuned network's: keep that network
                import io

                import torch

                buf = io.BytesIO()
                torch.save(tuned.state, buf)
                write_bytes(root / "model_finetuned.pt", buf.getvalue())
        out["chosen"] = {"ratio": row["ratio"], "layer_ratios": row["layer_ratios"], **(_brief(b, exact_cost) or {}),
                         "assignment": spec}
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
    w = csv.DictWriter(buf, fieldnames=["ratio", "layer_ratios", "accuracy", "energy_pj", "time_s", "area",
                                              "assignment"])
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def _label(t: dict[str, Any]) -> str:
    """A ratio set in words: its uniform ratio, and the layers that deviate from it."""
    r = t["ratio"]
    other = [f"{n} {q:g}" for n, q in (t.get("layer_ratios") or {}).items() if q != r]
    return f"{r:g}" + (f" ({', '.join(other)})" if other else "")


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
        lines.append(f"| {_label(t)} | {kept:.3f} (layer mean) | {pruned} | {100 * t['test_accuracy']:.2f} | "
                     f"{best} |")
    ch = rep.get("chosen")
    lines.append("")
    if ch is None:
        lines.append("No (ratio, assignment) pair met the budget.")
    else:
        gain = rep.get("energy_vs_approximation_only")
        lines.append(f"Joint answer: ratio {_label(ch)}, accuracy {100 * ch['accuracy']:.2f} %, energy "
                     f"{ch['energy_pj']:.4g} pJ ({ch['energy_reduction']:.2f}x less than the dense exact network"
                     + (f", {gain:.2f}x less than the best approximation-only assignment" if gain else "")
                     + (f"; time {1e6 * ch['time_s']:.2f} us" if ch.get("time_s") else "")
                     + "), in sparsity/assign.json and sparsity/masks.npz.")
    return "\n".join(lines) + "\n"
