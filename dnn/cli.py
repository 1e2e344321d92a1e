"""``flow.py dnn``: pick a multiplier per layer (or filter) of a network under an accuracy budget.

Trains (or takes from the cache) an INT8 network on the training images less a validation split held
out from them, measures layer sensitivity, searches assignments of the given multipliers with LUT-exact
inference on the validation images, fine-tunes promising ones (``--finetune-in-loop``) or the chosen one
approximation-aware, reports accuracies on the full test split, and writes into the run directory:

  config.json  report.json  report.md   settings; the roll-up for machines and for people (float, exact-INT8
                                        and chosen accuracies on the full test split among it)
  splits.json                           image counts of the splits; the validation images' training indices
  evaluations.csv / evaluations.jsonl   every assignment evaluated (accuracy on the validation images, lost and
                                        gained against exact INT8 there and the loss's paired standard error,
                                        energy, multiplier and accelerator energy, area, method)
  finetuned.csv                         (--finetune-in-loop) the assignments fine-tuned in the loop, before/after
  pareto.json  pareto.csv  pareto.png   the non-dominated set (accuracy, energy, area), fine-tuned accuracies
                                        where an assignment was fine-tuned
  assign.json                           the chosen assignment, as ``flow.py accel --assign`` reads it
  sensitivity.json                      conductance importance, deviations and HAWX scores
  operands/<layer>.csv, operands/all.csv the INT8 operand histograms (value,count_a,count_b: activations,
                                        weights) per layer and merged, for flow.py library --operands
  nsga2_pareto.json/.csv, nsga2_log.csv (--method nsga2) its own Pareto set and per-generation logbook
  luts/                                 the chosen multipliers' tables for AdaPT, TFApprox, numpy (dnn.export)
  model_finetuned.pt                    the fine-tuned network's weights
  sparsity/                             (--sparsity-ratios) per ratio the retrained block-sparse network and
                                        its masks.npz, every (ratio, assignment) evaluated, the joint answer
                                        (dnn.joint)
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import config as cfg
from core import stage
from core.errors import ConfigError, must
from core.run import save_figure
from dnn.cost import OBJECTIVES
from dnn.cost import objective as resolve_objective
from dnn.export import DEFAULT_FORMATS, FORMATS

NETS = ("lenet5", "vgg", "resnet20")
DATASETS = ("digits", "mnist", "fashion")
METHODS = ("xai", "hawx", "nsga2", "exhaustive")
GRANULARITIES = ("layer", "filter", "both")


@dataclass(frozen=True)
class DnnConfig:
    net: str = cfg.option("lenet5", help="network", choices=NETS)
    data: str = cfg.option("digits", help="data set: digits, mnist, fashion, or a torchvision-style folder")
    mults: tuple[str, ...] = cfg.option((), help="candidate multipliers: run directories (lut.npy + "
                                        "report.json); the exact multiplier is always a candidate")
    library: Path | None = cfg.option(None, help="a library directory built by flow.py library: every member "
                                      "of its library.json is a candidate too")
    max_acc_loss: float = cfg.option(0.01, help="largest accuracy loss allowed against the exact INT8 "
                                     "network (0.01 = one percentage point)")
    method: tuple[str, ...] = cfg.option(("hawx",), help="search methods (xai, hawx, nsga2, exhaustive; "
                                         "several run side by side)")
    generations: int = cfg.option(8, help="NSGA-II generations (--method nsga2)")
    population: int = cfg.option(16, help="NSGA-II population size (--method nsga2)")
    granularity: str = cfg.option("layer", help="HAWX assignment granularity", choices=GRANULARITIES)
    accel: Path | None = cfg.option(
        None, help="accelerator configuration for accel_models (energy and time of the whole array); "
        "without it, multiplier energy only")
    objective: str = cfg.option("auto", help="what the search minimises: mult (multiplier energy) or accel "
                                "(the whole accelerator's, needs --accel); auto: accel with --accel, else mult",
                                choices=("auto", *OBJECTIVES))
    tag: str | None = cfg.option(None, help="run name under runs/dnn/ (default: <net>-<data>)")
    run_dir: Path | None = cfg.option(
        None, help="run directory (default runs/dnn/<tag>)")
    overwrite: bool = cfg.option(False, help="replace an existing run directory")
    resume: bool = cfg.option(False, help="continue an interrupted run, reusing its evaluations")
    seed: int = cfg.option(1, help="random seed (training, k-means)")
    epochs: int = cfg.option(4, help="float training epochs")
    qat_epochs: int = cfg.option(1, help="quantisation-aware training epochs")
    finetune_epochs: int = cfg.option(1, help="approximation-aware fine-tuning epochs for the chosen "
                                      "assignment and each fine-tune in the loop (0: none)")
    finetune_in_loop: int = cfg.option(0, help="N: fine-tune up to N promising assignments of the search's "
                                       "accuracy-energy front (cheaper than its answer) and apply the budget "
                                       "to the fine-tuned networks (0: fine-tune the chosen one only)")
    lr: float = cfg.option(2e-3, help="learning rate of float training (QAT and fine-tuning use a tenth)")
    batch: int = cfg.option(64, help="training batch size")
    train_limit: int = cfg.option(10000, help="largest number of training images used")
    val_images: int = cfg.option(1000, help="training images held out as the validation split (at most a fifth "
                                 "of them): assignments are evaluated and fine-tuning checkpoints chosen on it, "
                                 "never on test images")
    eval_images: int = cfg.option(1000, help="validation images (the first of the split) used to evaluate each "
                                  "assignment and to pick fine-tuning checkpoints")
    select_images: int = cfg.option(0, help="K: validation images after the EVAL_IMAGES ones that pick "
                                    "fine-tuning checkpoints, so that the images judging the budget did not "
                                    "choose them (0: the evaluation images pick them)")
    confidence: float = cfg.option(0.0, help="Z: an assignment meets the budget when its loss plus Z x the "
                                   "loss's paired standard error (against exact INT8 on the same images) does; "
                                   "0 applies the budget to the measured loss")
    representatives: int = cfg.option(32, help="K: representative inputs (k-means) for sensitivity")
    ig_steps: int = cfg.option(16, help="integrated-gradient steps of the conductance")
    max_evals: int = cfg.option(4096, help="largest search space exhaustive search may enumerate")
    threads: int = cfg.option(2, help="CPU threads for PyTorch")
    cache_dir: Path = cfg.option(
        Path("runs/dnn/models"), help="where trained networks are cached")
    sparsity_ratios: tuple[float, ...] = cfg.option(
        (), help="block-sparsity ratios searched jointly with the multipliers (e.g. 0 0.25 0.5): per ratio the "
        "network's lowest-norm weight blocks are zeroed in every layer not excluded and it is retrained once "
        "(dnn.joint)")
    sparsity_block: int = cfg.option(8, help="sparsity block: BxB (output x input channels, the kernel inside)")
    sparsity_norm: str = cfg.option("l2", help="which blocks are zeroed: lowest l1, l2 norm or variance",
                                    choices=("l1", "l2", "var"))
    sparsity_exclude: tuple[str, ...] = cfg.option(("first",), help="layers kept dense ('first': the first "
                                                   "layer; 'none': none)")
    sparsity_epochs: int = cfg.option(3, help="float epochs (at LR, then one QAT epoch at LR/10) "
                                      "retraining each block-sparse network, masks fixed")
    sparsity_per_layer: bool = cfg.option(True, help="after the uniform ratios, raise one layer's ratio at a "
                                          "time to the next of SPARSITY_RATIOS (layers of most MACs first) while "
                                          "the joint answer gets cheaper; each such mix is retrained once")
    export: tuple[str, ...] = cfg.option(DEFAULT_FORMATS, help="LUT export formats under luts/ (adapt, tfapprox, "
                                          "npy, csv; README says which tool reads which file)")

    def __post_init__(self) -> None:
        cfg.check_range("MAX_ACC_LOSS", self.max_acc_loss, 0.0, 1.0, lo_open=True, hi_open=True)
        cfg.check_range("CONFIDENCE", self.confidence, 0.0, 10.0)
        if not self.method:
            raise must("METHOD", "at least one search method", "", METHODS)
        for m in self.method:
            if m not in METHODS:
                raise must("METHOD", "one of the listed choices", m, METHODS)
        for f in self.export:
            if f not in FORMATS:
                raise must("EXPORT", "one of the listed choices", f, FORMATS)
        if self.data not in DATASETS and not Path(self.data).is_dir():
            raise must("DATA", "a data set name or an existing folder", self.data, DATASETS)
        if "exhaustive" in self.method and self.granularity == "filter":
            raise ConfigError("GRANULARITY filter cannot be searched exhaustively; use layer or both")
        if self.population < 2:
            raise must("POPULATION", "an integer >= 2", self.population)
        if self.generations < 0:
            raise must("GENERATIONS", "zero or a positive integer", self.generations)
        if self.select_images < 0:
            raise must("SELECT_IMAGES", "zero or a positive integer", self.select_images)
        if self.objective == "accel" and self.accel is None:
            raise ConfigError("OBJECTIVE accel needs --accel CONFIG (the accelerator whose energy is minimised); "
                              "without it the objective is mult")
        if self.library is not None and not self.library.is_dir():
            raise must("LIBRARY", "a library directory built by flow.py library", str(self.library))
        for name in ("epochs", "batch", "eval_images", "val_images", "representatives", "ig_steps", "max_evals", "threads",
                     "train_limit"):
            if getattr(self, name) < 1:
                raise must(name.upper(), "a positive integer", getattr(self, name))
        for r in self.sparsity_ratios:
            cfg.check_range("SPARSITY_RATIOS", r, 0.0, 1.0, hi_open=True)
        if self.sparsity_block < 1:
            raise must("SPARSITY_BLOCK", "a positive integer", self.sparsity_block)
        for name in ("qat_epochs", "finetune_epochs", "finetune_in_loop", "sparsity_epochs"):
            if getattr(self, name) < 0:
                raise must(name.upper(), "zero or a positive integer", getattr(self, name))
        if self.finetune_in_loop and not self.finetune_epochs:
            raise must("FINETUNE_EPOCHS", "at least 1 with FINETUNE_IN_LOOP (the epochs of each fine-tune)",
                       self.finetune_epochs)
        if self.lr <= 0:
            raise must("LR", "positive", self.lr)
        if self.overwrite and self.resume:
            raise ConfigError("OVERWRITE and RESUME cannot both be given")
        cfg.check_tag(self.tag)
        if self.accel is not None and not self.accel.is_file():
            raise must("ACCEL", "an accelerator configuration file", str(self.accel))


@dataclass
class Plan:
    """What is read and checked before the run directory exists."""

    candidates: list[Any]  # exact first, then the approximate ones, cheapest first
    data: Any
    cost_model: Any


class DnnStage(stage.Stage):
    """Multiplier assignment of a network's layers under an accuracy budget.

    Resumable: the evaluations already made (``evaluations.jsonl``, each row naming its multipliers by
    the digest of their tables) are reused when the network, its training and the test images are the
    same (the fingerprint); the candidates may change, rows of multipliers no longer given are dropped."""

    name = "dnn"
    Config = DnnConfig
    inputs = ("accel",)
    outputs = ("config.json", "report.json", "report.md", "evaluations.csv", "evaluations.jsonl", "pareto.json",
               "pareto.csv", "pareto.png", "assign.json", "sensitivity.json", "operands/", "luts/")
    resumable = True
    fingerprint = ("net", "data", "seed", "epochs", "qat_epochs", "lr", "batch", "train_limit", "val_images",
                   "eval_images", "cache_dir")
    packages = ("numpy", "torch", "deap", "captum")
    results = ("report.json", "evaluations.jsonl")

    def prepare(self, conf: DnnConfig, progress: bool) -> Plan:
        from dnn import cost as costs
        from dnn import data as datasets
        from dnn import export, mults, qnn, train
        from dnn import library as libs
        from dnn._torch import require

        require()
        members = [str(p) for p in libs.member_dirs(conf.library)] if conf.library is not None else []
        candidates = mults.load_all(list(dict.fromkeys([*conf.mults, *members])))
        if len(candidates) < 2:
            raise ConfigError(mults.NO_MULTS)
        for m in candidates:  # any candidate may be chosen: refuse an impossible export before the run
            if m.path is not None:
                export.check(m, conf.export)
        data = datasets.load(conf.data, split_seed=0, train_limit=conf.train_limit)
        held = min(conf.val_images, len(data.x_train) // 5)  # the validation split, from the training images
        if held < 1:
            raise ConfigError(f"DATA {data.name} must have at least 5 training images (a fifth is held out as the "
                              f"validation split that evaluates assignments and picks fine-tuning checkpoints), "
                              f"not {len(data.x_train)}")
        data = datasets.hold_out(data, held, seed=0)
        if conf.select_images and len(data.x_val) < conf.eval_images + conf.select_images:
            raise ConfigError(f"SELECT_IMAGES {conf.select_images} needs that many validation images after the "
                              f"EVAL_IMAGES {conf.eval_images}, but the validation split holds {len(data.x_val)}: "
                              "lower EVAL_IMAGES or SELECT_IMAGES, or raise VAL_IMAGES")
        if conf.accel:
            layer_names = [n for n, _ in qnn.qlayers(train.build(train.Recipe(conf.net), data))]
            cost_model: costs.CostModel = costs.AccelCost(conf.accel, candidates, layer_names,
                                                          resolve_objective(conf.objective, conf.accel))
        else:
            cost_model = costs.MultiplierCost(candidates)
        # cheapest (most aggressive) first after exact: the order the search methods rely on
        exact, approx = candidates[0], candidates[1:]
        approx.sort(key=lambda m: (cost_model.multiplier(m)["energy_pj"] or 0.0, m.name))
        if conf.sparsity_ratios:
            from dnn import joint

            joint.check(conf, data)
        return Plan([exact, *approx], data, cost_model)

    def default_dir(self, conf: DnnConfig, plan: Any) -> Path:
        return Path("dnn") / (conf.tag or f"{conf.net}-{Path(conf.data).name}")

    def run(self, ctx: stage.Context) -> dict[str, Any]:
        return _run(ctx)

    def markdown(self, report: dict[str, Any]) -> str:
        if "sparsity" not in report:
            return _markdown(report)
        from dnn import joint

        return _markdown(report) + joint.markdown(report["sparsity"])

    def summary(self, conf: Any, report: dict[str, Any]) -> str:
        ch = report.get("chosen")
        what = (f"accuracy {100 * ch['accuracy']:.2f} %, {report['energy_reduction']:.2f}x less energy than exact"
                if ch else "no assignment within the budget")
        return f"{report['net']} on {report['data']}: {what}; {report['run_dir']}/report.md"


STAGE = DnnStage()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    stage.add_arguments(parser, STAGE)


def main(args: argparse.Namespace) -> int:
    return stage.main(STAGE, args)


def _say(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg)


def run(conf: DnnConfig, *, quiet: bool = False) -> dict[str, Any]:
    """The dnn stage on ``conf``; returns its report. Everything is validated before the run directory
    is touched."""
    return STAGE.execute(conf, progress=not quiet)


def _run(ctx: stage.Context) -> dict[str, Any]:
    import torch
    from deap import tools
    from tqdm import tqdm

    from dnn import export, loop, operands, qnn, search, sensitivity, train

    conf, rd, quiet = ctx.cfg, ctx.run, not ctx.progress
    candidates, data, cost_model = ctx.plan.candidates, ctx.plan.data, ctx.plan.cost_model
    exact = candidates[0]
    say = (lambda _m: None) if quiet else _say
    torch.set_num_threads(conf.threads)
    started = time.time()

    recipe = train.Recipe(conf.net, conf.epochs, conf.qat_epochs, conf.lr, conf.batch, conf.seed)
    model, info = train.trained(recipe, data, conf.cache_dir, progress=say)
    qnn.set_signed(model, exact.signed)
    if not exact.signed:
        negative = [n for n, layer in qnn.qlayers(model) if not layer.non_negative]
        if negative:
            raise ConfigError(f"unsigned multipliers need non-negative activations, but layer {negative[0]} "
                              "sees negative inputs; use signed multipliers")
    # never the test images: those give the reported figures
    x_eval, y_eval = data.x_val[:conf.eval_images], data.y_val[:conf.eval_images]
    x_sel, y_sel = select = loop.selection(data, conf.eval_images, conf.select_images)
    rd.write_json("splits.json", {"train": len(data.x_train), "validation": len(data.x_val),
                                  "evaluation": len(x_eval), "selection": len(x_sel), "test": len(data.x_test),
                                  "validation_from": "training images", "validation_index": data.val_index.tolist()})
    macs = _macs(model, data)
    ev = search.Evaluator(model, x_eval, y_eval, candidates, cost_model, macs, confidence=conf.confidence)
    log_path = rd.path / "evaluations.jsonl"
    search.reload(ev, log_path, candidates)
    bar = None if quiet else tqdm(desc="evaluations", unit="net", leave=False)

    def record(res: search.Result) -> None:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(search.row(res, ev, candidates)) + "\n")
        if bar is not None:
            bar.update(1)

    ev.progress = record
    baseline = ev(ev.exact(), "baseline").accuracy
    say(f"exact INT8 {conf.net} on {data.name}: accuracy {baseline:.4f} on {len(x_eval)} validation images")
    hists = operands.layer_histograms(model, x_eval, signed=exact.signed)
    (rd.path / "operands").mkdir(exist_ok=True)
    for layer_name, (acts, weights) in hists.items():
        rd.write_text(f"operands/{layer_name}.csv", operands.histogram_csv(acts, weights, exact.signed))
    rd.write_text("operands/all.csv", operands.histogram_csv(*operands.merged(hists), exact.signed))

    sens: dict[str, Any] = {}
    requested: dict[str, list[search.Result]] = {}
    wall: dict[str, float] = {}  # seconds each method took here (what an earlier method evaluated is cached)
    reps = sensitivity.representatives(model, data.x_train, conf.representatives, conf.seed)
    xr, yr = data.x_train[reps], data.y_train[reps]
    # NSGA-II is seeded with the heuristics' answers: it runs after them (HAWX at layer granularity
    # is run for it when no heuristic is asked for); exhaustive search, the yardstick, runs last so
    # the others' times are their own
    order = sorted(conf.method, key=lambda m: {"nsga2": 1, "exhaustive": 2}.get(m, 0))
    if "nsga2" in order and not {"xai", "hawx"} & set(order):
        order.insert(0, "hawx")
    for method in order:
        t0 = time.perf_counter()
        if method == "nsga2":
            seeds = [b.choice for name, seen in requested.items() if name != "exhaustive"
                     for b in [search.best(seen, baseline, conf.max_acc_loss)] if b is not None]
            book = tools.Logbook()
            requested["nsga2"] = search.nsga2(ev, seeds, conf.generations, conf.population, conf.seed, book)
            wall["nsga2"] = time.perf_counter() - t0
            own = search.pareto(list({r.choice: r for r in requested["nsga2"]}.values()))
            rd.write_json("nsga2_pareto.json", [search.row(r, ev, candidates) for r in own])
            _csv(rd.path / "nsga2_pareto.csv", [search.row(r, ev, candidates) for r in own])
            _csv_plain(rd.path / "nsga2_log.csv", list(book))
        elif method == "xai":
            xai = sensitivity.xai(model, xr, yr, candidates, conf.ig_steps)
            sens["conductance"] = xai.importance
            sens["deviation"] = xai.deviation
            requested["xai"] = search.xai(ev, xai, baseline, conf.max_acc_loss)
            wall["xai"] = time.perf_counter() - t0
        elif method == "hawx":
            scores = sensitivity.hawx(model, xr, yr, candidates)
            sens["hawx_layer"] = scores.layers
            sens["hawx_filter"] = {k: [v.tolist() for v in fs] for k, fs in scores.filters.items()}
            grans = (("layer", "filter") if conf.granularity == "both" else
                     (conf.granularity,) if method in conf.method else ("layer",))
            scored = time.perf_counter() - t0  # the scores serve every granularity
            for g in grans:
                t1 = time.perf_counter()
                requested[f"hawx-{g}"] = search.hawx(ev, scores, baseline, conf.max_acc_loss, g)
                wall[f"hawx-{g}"] = scored + time.perf_counter() - t1
        else:
            requested["exhaustive"] = search.exhaustive(ev, conf.max_evals)
            wall["exhaustive"] = time.perf_counter() - t0

    all_results = list(ev.results.values())
    tuned: dict[Any, loop.Tuned] = {}
    if conf.finetune_in_loop:
        t0 = time.perf_counter()
        tuner = loop.Tuner(model, ev, data, conf.finetune_epochs, conf.lr / 10, conf.batch, conf.seed,
                           progress=say, select=select)
        tuned = {t.result.choice: t for t in loop.run(tuner, all_results, baseline, conf.max_acc_loss,
                                                      conf.finetune_in_loop)}
        wall["finetune-in-loop"] = time.perf_counter() - t0
        _csv(rd.path / "finetuned.csv", [search.row(t.result, ev, candidates) | {"accuracy_before": t.before}
                                         for t in tuned.values()])
    if bar is not None:
        bar.close()
    rd.write_json("sensitivity.json", {"representatives": reps.tolist(), **sens})

    # what the budget is applied to: each assignment's fine-tuned accuracy where it was fine-tuned
    final = list({**{r.choice: r for r in all_results}, **{c: t.result for c, t in tuned.items()}}.values())
    exact_cost = ev.cost(ev.exact())
    objective = resolve_objective(conf.objective, conf.accel)
    methods: dict[str, Any] = {}
    if tuned:
        requested["finetune-in-loop"] = final
    for name, seen in requested.items():
        # NSGA-II's answer: the lowest-energy point of its Pareto set within the budget
        distinct = list({r.choice: r for r in seen}.values())
        b = search.best(search.pareto(distinct) if name == "nsga2" else seen, baseline, conf.max_acc_loss)
        methods[name] = {"evaluations": len(tuned) if name == "finetune-in-loop" else len(distinct),
                         "wall_s": wall.get(name), "best": search.row(b, ev, candidates) if b else None,
                         **_reductions(exact_cost, b.cost if b else None)}
    chosen = search.best(final, baseline, conf.max_acc_loss)
    front = search.pareto(final)
    rd.write_json("pareto.json", [search.row(r, ev, candidates) for r in front])
    _csv(rd.path / "pareto.csv", [search.row(r, ev, candidates) for r in front])
    _csv(rd.path / "evaluations.csv", [search.row(r, ev, candidates) for r in sorted(all_results, key=lambda r: r.order)])
    _plot(rd.path / "pareto.png", final, front, baseline, conf.max_acc_loss, chosen, exact_cost,
          "accelerator energy" if objective == "accel" else "multiply energy")

    report: dict[str, Any] = {
        "net": conf.net, "data": data.name, "layers": ev.names, "macs": macs,
        "multipliers": [{"name": m.name, "path": str(m.path) if m.path else "exact", **cost_model.multiplier(m),
                         "wce": m.report.get("wce"), "mae": m.report.get("mae")} for m in candidates],
        "cost_model": cost_model.name, "objective": objective, "float_accuracy": info["float_accuracy"],
        "qat_accuracy": info["qat_accuracy"], "baseline_accuracy": baseline, "eval_images": len(x_eval),
        "confidence": conf.confidence, "select_images": len(x_sel) if conf.select_images else 0,
        "eval_split": "validation", "max_acc_loss": conf.max_acc_loss, "exact_energy_pj": exact_cost.energy_pj,
        "exact_mult_energy_pj": exact_cost.mult_energy_pj, "exact_accel_energy_pj": exact_cost.accel_energy_pj,
        "exact_area": exact_cost.area, "methods": methods, "evaluations": len(all_results),
        "finetuned_in_loop": len(tuned), "pareto_size": len(front), "model_cache": info.get("cached"),
    }
    qnn.assign(model, ev.assignment(ev.exact()))
    qnn.set_mode(model, "lut")
    exact_right = train.correct(model, data.x_test, data.y_test)
    test = {"images": len(data.x_test), "float_accuracy": info["float_accuracy"],
            "exact_int8_accuracy": int(exact_right.sum()) / max(1, len(data.x_test))}
    if conf.sparsity_ratios:
        from dnn import joint

        report["sparsity"] = joint.search(conf, rd, model, data, ev, final, baseline, say)
    if chosen is not None:
        assignment = ev.assignment(chosen.choice)
        rd.write_json("assign.json", ev.assign_json(chosen.choice))
        used = {m.digest: m for v in assignment.values() for m in (v if isinstance(v, list) else [v])}
        exported = []
        for m in used.values():
            if m.path is not None:
                exported += [str(p.relative_to(rd.path)) for p in export.export(m, rd.path / "luts", conf.export)]
        report["chosen"] = search.row(chosen, ev, candidates)
        report.update(_reductions(exact_cost, chosen.cost))
        report["accuracy_loss"] = baseline - chosen.accuracy
        report["exported_luts"] = exported
        qnn.assign(model, assignment)
        qnn.set_mode(model, "lut")
        right = train.correct(model, data.x_test, data.y_test)  # untuned; replaced below when fine-tuned
        test["chosen_accuracy_untuned"] = int(right.sum()) / max(1, len(data.x_test))
        ft: dict[str, Any] | None = None
        if chosen.choice in tuned:
            t = tuned[chosen.choice]
            model.load_state_dict(t.state)
            ft = {**t.info, "in_loop": True}
        elif conf.finetune_epochs:
            ft = {**train.finetune(model, data, conf.finetune_epochs, conf.lr / 10, conf.batch, conf.seed,
                                   x_sel, y_sel, progress=say), "in_loop": False}
        if ft is not None:
            qnn.set_mode(model, "lut")
            right = train.correct(model, data.x_test, data.y_test)
            test["chosen_accuracy"] = int(right.sum()) / max(1, len(data.x_test))
            torch.save(model.state_dict(), rd.path / "model_finetuned.pt")
            report["finetune"] = {**ft, "test_accuracy_before": test["chosen_accuracy_untuned"],
                                  "test_accuracy_after": test["chosen_accuracy"], "test_images": len(data.x_test)}
        else:
            test["chosen_accuracy"] = test["chosen_accuracy_untuned"]
        test["chosen_loss_vs_exact_int8"] = test["exact_int8_accuracy"] - test["chosen_accuracy"]
        lost, gained = search.paired(exact_right, right)
        test |= {"chosen_lost": lost, "chosen_gained": gained,
                 "chosen_loss_se": search.paired_se(lost, gained, len(data.x_test))}
    else:
        report["chosen"] = None
    report["test"] = test
    report["runtime_s"] = time.time() - started
    report["run_dir"] = str(rd.final)
    return report




def _reductions(exact: Any, cost: Any) -> dict[str, float | None]:
    """Energy reductions against the all-exact network: of the search's objective, of the multipliers
    alone and (with --accel) of the whole accelerator."""
    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if cost is not None and a is not None and b else None

    return {"energy_reduction": ratio(exact.energy_pj, cost and cost.energy_pj),
            "mult_energy_reduction": ratio(exact.mult_energy_pj, cost and cost.mult_energy_pj),
            "accel_energy_reduction": ratio(exact.accel_energy_pj, cost and cost.accel_energy_pj)}


def _csv_plain(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields = ["order", "method", "accuracy", "energy_pj", "mult_energy_pj", "accel_energy_pj", "area", "time_s",
              "assignment"]
    fields[3:3] = [k for k in (rows[0] if rows else {}) if k not in fields and k not in ("choice",)]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "assignment": json.dumps(r["assignment"], sort_keys=False)})
    tmp.replace(path)


def _plot(path: Path, results: list[Any], front: list[Any], baseline: float, budget: float, chosen: Any,
          exact_cost: Any, energy_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ref = exact_cost.energy_pj or 1.0
    by_method: dict[str, list[Any]] = {}
    for r in results:
        by_method.setdefault(r.method, []).append(r)
    for method, rs in sorted(by_method.items()):
        ax.scatter([r.cost.energy_pj / ref for r in rs], [100 * r.accuracy for r in rs], s=12, alpha=0.6,
                   label=f"{method} ({len(rs)})")
    ax.scatter([r.cost.energy_pj / ref for r in front], [100 * r.accuracy for r in front], s=28,
               facecolors="none", edgecolors="k", lw=0.8, label="Pareto set (accuracy, energy, area)")
    line, top = [], -1.0  # the accuracy-energy front: the best accuracy at or below each energy
    for r in sorted(results, key=lambda r: (r.cost.energy_pj, -r.accuracy)):
        if r.accuracy > top:
            line.append(r)
            top = r.accuracy
    ax.step([r.cost.energy_pj / ref for r in line], [100 * r.accuracy for r in line], "k-", lw=1, where="post",
            label="accuracy-energy front")
    ax.axhline(100 * (baseline - budget), color="r", ls="--", lw=1, label="accuracy budget")
    if chosen is not None:
        ax.scatter([chosen.cost.energy_pj / ref], [100 * chosen.accuracy], marker="*", s=160, color="gold",
                   edgecolor="k", zorder=5, label="chosen")
    ax.set_xlabel(f"{energy_label} / exact")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _x(v: float | None) -> str:
    return f"{v:.2f}x" if v is not None else "-"


def _markdown(rep: dict[str, Any]) -> str:
    accel = rep["cost_model"] == "accel"
    objective = rep.get("objective", "accel" if accel else "mult")
    t = rep["test"]
    lines = [f"# DNN multiplier assignment: {rep['net']} on {rep['data']}", "",
             f"Assignments are evaluated on {rep['eval_images']} validation images held out from the training "
             f"images (exact INT8 accuracy there {100 * rep['baseline_accuracy']:.2f} %); budget: at most "
             f"{100 * rep['max_acc_loss']:.2f} points lost"
             + (f" by the loss + {rep['confidence']:g} x its paired standard error"
                if rep.get("confidence") else "")
             + (f"; fine-tuning checkpoints are picked on {rep['select_images']} other validation images"
                if rep.get("select_images") else "") + f". Cost model: {rep['cost_model']}"
             + (" (the search minimises the whole accelerator's energy)." if objective == "accel" else
                " (the search minimises the multipliers' energy; the whole accelerator's beside it)." if accel
                else "."), "",
             f"On the full test split ({t['images']} images): float {100 * t['float_accuracy']:.2f} %, exact INT8 "
             f"{100 * t['exact_int8_accuracy']:.2f} %"
             + (f", chosen {100 * t['chosen_accuracy']:.2f} % ({100 * t['chosen_loss_vs_exact_int8']:+.2f} points "
                f"lost against exact INT8, paired standard error {100 * t['chosen_loss_se']:.2f})."
                if "chosen_accuracy" in t else ", no assignment chosen."), "",
             "| method | evaluations | wall (s) | accuracy (%) | energy / exact | multiplier-energy reduction | "
             "whole-accelerator reduction |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, m in rep["methods"].items():
        b = m["best"]
        wall = f"{m['wall_s']:.1f}" if m.get("wall_s") is not None else "-"
        if b is None:
            lines.append(f"| {name} | {m['evaluations']} | {wall} | - | - | none within budget | - |")
        else:
            lines.append(f"| {name} | {m['evaluations']} | {wall} | {100 * b['accuracy']:.2f} | "
                         f"{b['energy_pj'] / rep['exact_energy_pj']:.3f} | {_x(m['mult_energy_reduction'])} | "
                         f"{_x(m['accel_energy_reduction'])} |")
    if rep.get("finetuned_in_loop"):
        lines += ["", f"finetune-in-loop: {rep['finetuned_in_loop']} assignments of the search's front fine-tuned "
                  "(finetuned.csv); its row is the answer over every evaluation with the fine-tuned accuracies."]
    lines += ["", "## Multipliers", "", "| name | area (um^2) | energy (pJ) | WCE | MAE |", "| --- | ---: | ---: | ---: | ---: |"]
    for m in rep["multipliers"]:
        lines.append(f"| {m['name']} | {m['area']:.1f} | {m['energy_pj']:.4g} | {m['wce']} | {m['mae']} |")
    ch = rep.get("chosen")
    lines += ["", "## Chosen assignment", ""]
    if ch is None:
        lines.append("No evaluated assignment met the budget (the exact one always does unless it was not run).")
    else:
        energies = f"multiplier energy {ch['mult_energy_pj']:.4g} pJ per image ({_x(rep['mult_energy_reduction'])} " \
                   "less than exact)"
        if accel:
            energies += (f", whole-accelerator energy {ch['accel_energy_pj']:.4g} pJ per image "
                         f"({_x(rep['accel_energy_reduction'])} less than exact, accel_models)")
        lines.append(f"Accuracy {100 * ch['accuracy']:.2f} % on the validation images, {energies}; written to "
                     "assign.json.")
        lines += ["", "| layer | MACs / image | multiplier |", "| --- | ---: | --- |"]
        for layer, name in ch["assignment"].items():
            lines.append(f"| {layer} | {rep['macs'][layer]:,} | {name} |")
        ft = rep.get("finetune")
        if ft:
            where = "in the loop" if ft.get("in_loop") else "after the search"
            lines += ["", f"Approximation-aware fine-tuning {where} ({ft['epochs']} epochs, best checkpoint by "
                      f"validation accuracy: epoch {ft['best_epoch']}): validation accuracy "
                      f"{100 * ft['validation_before']:.2f} % -> {100 * ft['validation_after']:.2f} %, test accuracy "
                      f"{100 * ft['test_accuracy_before']:.2f} % -> {100 * ft['test_accuracy_after']:.2f} % "
                      f"on {ft['test_images']} images."]
    lines += ["", f"{rep['evaluations']} distinct assignments evaluated; Pareto set of {rep['pareto_size']} in "
              "pareto.json / pareto.csv / pareto.png.", ""]
    return "\n".join(lines)


def _macs(model: Any, data: Any) -> dict[str, int]:
    """Multiply-accumulates per image of each quantised layer."""
    import torch

    from dnn import qnn

    out: dict[str, int] = {}
    hooks = []
    for name, layer in qnn.qlayers(model):
        def hook(mod: Any, inp: Any, res: Any, name: str = name) -> None:
            w = mod.conv.weight if hasattr(mod, "conv") else mod.fc.weight
            per_out = int(w[0].numel())
            out[name] = per_out * int(res[0].numel())
        hooks.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(data.x_test[:1])
    finally:
        for h in hooks:
            h.remove()
    return out
