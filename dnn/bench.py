"""DNN-level benchmarks, measured side by side in one process.

``lut_speed``  LUT-exact INT8 inference against the same network's exact fp32 forward pass (one thread
               each, best of several interleaved runs), for multipliers whose error tables have rank 0
               (exact), 2 and 4 (broken-array multipliers: rank 2 factorised exactly, rank 4 above
               ``lutops.MAX_RANK`` so gathered like the others), full rank
               (random errors: gathered) and the evolved EPS=0.005 and 0.05 multipliers of ``runs/mul8s/``,
               on LeNet-5 and ResNet-20 trained on MNIST, with MNIST test images. Every LUT network is
               first checked bit for bit against the plain int64 reference loop on a few images.
``search``     LeNet-5 on MNIST at <= 1 % accuracy loss (see :func:`search`): the candidates of a library
               (AXFLOW_DNN_LIBRARY, else runs/mul8s/library-*), else the multiplier runs in
               ``AXFLOW_DNN_MULTS`` or under ``runs/mul8s/``, else broken-array multipliers (k = 4..7)
               characterised here by Yosys and OpenSTA on OSU018, searched by XAI-Gen, HAWX and NSGA-II
               with fine-tuning in the loop and the whole accelerator's energy; then a few of them searched
               exhaustively as the yardstick of the methods. Not run in quick mode.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from core.bench import row
from core.run import runs_root


def _best_of(fns: list[Any], reps: int) -> list[float]:
    """Best wall time of each function over ``reps`` interleaved rounds (one warm-up each)."""
    for f in fns:
        f()
    best = [float("inf")] * len(fns)
    for _ in range(reps):
        for i, f in enumerate(fns):
            t = time.perf_counter()
            f()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def paired(a: Any, b: Any, reps: int) -> tuple[float, float, float]:
    """(best CPU time of ``a``, of ``b``, median over ``reps`` rounds of b's time / a's time in the same
    round), the two run back to back in alternating order after a warm-up each. On shared cores the
    median of paired ratios moves far less than the ratio of two bests: both calls of a round see the same
    load. CPU time of this process (one torch thread), not wall time, so waiting for a core does not count."""
    import statistics

    a()
    b()
    ta, tb, ratios = [], [], []
    for i in range(reps):
        pair = []
        for f in ((a, b) if i % 2 == 0 else (b, a)):
            t = time.process_time()
            f()
            pair.append(time.process_time() - t)
        da, db = pair if i % 2 == 0 else pair[::-1]
        ta.append(da)
        tb.append(db)
        ratios.append(db / da if da > 0 else float("nan"))
    return min(ta), min(tb), statistics.median(ratios)


def _forward(model: Any, x: Any, mode: str) -> Any:
    from dnn import qnn

    def go() -> None:
        qnn.set_mode(model, mode)
        model(x)

    return go


def lut_speed(quick: bool = False) -> list[dict[str, Any]]:
    """LUT inference time against the exact fp32 forward pass of the same network, side by side.

    Full mode: LeNet-5 and ResNet-20 trained on MNIST by the flow (cached under ``runs/dnn/models``), on
    MNIST test images, so activations are as sparse as in use; quick mode: untrained networks on random
    images. Multipliers: exact, broken-array (error ranks 2 and 4), random errors (full rank) and the
    evolved EPS=0.005 and 0.05 runs under ``runs/mul8s/`` when there are any.
    """
    import torch

    from core.multrun import latest as latest_multiplier_run
    from dnn import data as dnn_data
    from dnn import fixtures, models, qnn, train
    from dnn.mults import Multiplier, exact, load

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        kinds = {"exact": exact(True), "rank2": Multiplier("rank2", fixtures.broken_array(2), True),
                 "rank4": Multiplier("rank4", fixtures.broken_array(4), True),
                 "full-rank": Multiplier("full-rank", fixtures.lut_error(1, 30), True)}
        if quick:
            kinds = {k: kinds[k] for k in ("exact", "rank2")}
        else:
            for eps in (0.005, 0.05):
                run_dir = latest_multiplier_run(runs_root(), eps)
                if run_dir is not None:
                    kinds[f"evolved-eps{eps:g}"] = load(run_dir)
        mnist = None if quick else dnn_data.load("mnist")
        for net, batch in (("lenet5", 256), ("resnet20", 64)):
            if mnist is None:
                torch.manual_seed(0)
                batch = 4
                model = models.build(net, 1, 28, 10).eval()
                x = torch.rand(batch, 1, 28, 28)
                qnn.calibrate(model, [x])
                inputs = "untrained, random images"
            else:
                model, _ = train.trained(train.Recipe(net), mnist, runs_root() / "dnn" / "models")
                model.eval()
                x = mnist.x_test[:batch].float()
                inputs = "trained, MNIST test images"
            for kind, m in kinds.items():
                qnn.assign(model, qnn.uniform(model, m))
                with torch.no_grad():
                    qnn.set_mode(model, "lut")
                    fast = model(x[:2])
                    qnn.set_mode(model, "lut", backend="reference")
                    same = torch.equal(fast, model(x[:2]))

                    t_fp32, t_lut = _best_of([_forward(model, x, "float"), _forward(model, x, "lut")],
                                             1 if quick else 5)
                ranks = sorted({layer._prep[1].plan.rank for _, layer in qnn.qlayers(model)})
                kind_used = sorted({layer._prep[1].plan.kind for _, layer in qnn.qlayers(model)})
                rows.append(row(f"dnn.lut_inference.{net}.{kind}", 1e3 * t_lut, "ms", 1e3 * t_fp32,
                                f"batch {batch}, {inputs}, 1 thread; reference = exact fp32 forward; bit-exact "
                                f"vs int64 loop: {'yes' if same else 'NO'}; plan {'/'.join(kind_used)}, "
                                f"rank {ranks}"))
    finally:
        torch.set_num_threads(threads)
    return rows


def _mult_dirs() -> list[str]:
    env = os.environ.get("AXFLOW_DNN_MULTS", "").split()
    if env:
        return env
    return sorted(str(p.parent) for p in (runs_root() / "mul8s").glob("**/lut.npy"))


def _library() -> Path | None:
    env = os.environ.get("AXFLOW_DNN_LIBRARY")
    if env:
        return Path(env)
    found = sorted((runs_root() / "mul8s").glob("library-*/library.json"))
    return found[0].parent if found else None


def candidates(tmp: Path) -> tuple[list[str], str, Path | None]:
    """The candidate run directories and where they came from: a library (AXFLOW_DNN_LIBRARY, else
    runs/mul8s/library-*), else multiplier runs (AXFLOW_DNN_MULTS, else runs/mul8s/**), else broken-array
    multipliers characterised here."""
    from dnn import library

    lib = _library()
    if lib is not None:
        dirs = [str(p) for p in library.member_dirs(lib)]
        return dirs, f"members of library {lib}", lib
    dirs = _mult_dirs()
    if dirs:
        return dirs, "multiplier runs", None
    from dnn import fixtures

    dirs = [str(p) for p in fixtures.characterise(tmp / "mults", (4, 5, 6, 7))]
    return dirs, "broken-array multipliers k=4..7 (Yosys/OpenSTA on OSU018)", None


def _dnn(tmp: Path, name: str, **settings: Any) -> dict[str, Any]:
    """One ``flow.py dnn`` run of LeNet-5 on MNIST (the settings the benchmark shares, then ``settings``);
    its report.json. AXFLOW_DNN_BENCH_KEEP=DIR keeps the run directories."""
    from core import config as cfg
    from dnn import cli

    base: dict[str, Any] = {
        "net": "lenet5", "data": "mnist", "max_acc_loss": 0.01, "run_dir": tmp / name, "epochs": 6,
        "finetune_epochs": 2, "val_images": 800, "eval_images": 800, "representatives": 32, "ig_steps": 16,
        "threads": 1, "cache_dir": runs_root() / "dnn" / "models", "max_evals": 100000,
        "confidence": float(os.environ.get("AXFLOW_DNN_CONFIDENCE", "1"))}
    select = int(os.environ.get("AXFLOW_DNN_SELECT_IMAGES", "0"))  # of the 800: checkpoints picked apart
    if select and settings.get("finetune_epochs", base["finetune_epochs"]):
        base.update(select_images=select, eval_images=base["val_images"] - select)
    conf = cfg.from_dict(cli.DnnConfig, {**base, **settings})
    rep = cli.run(conf, quiet=True)
    keep = os.environ.get("AXFLOW_DNN_BENCH_KEEP")
    if keep:  # keep the run (report, plot, Pareto set) for inspection
        import shutil

        shutil.copytree(tmp / name, Path(keep) / name, dirs_exist_ok=True)
    return rep


def _energy(run_dir: str) -> float:
    from dnn import mults

    return float(mults.load(run_dir).cost("energy_pj") or 0.0)


def search(quick: bool = False) -> list[dict[str, Any]]:
    """LeNet-5 on MNIST at <= 1 % loss against exact INT8.

    ``library`` run: every candidate, XAI-Gen, HAWX and NSGA-II, fine-tuning in the loop
    (AXFLOW_DNN_FINETUNE_IN_LOOP fine-tunes of two epochs, default 6) and the whole accelerator (an 8x8 weight-stationary
    array modelled by accel_models; P_pod from the array run in AXFLOW_DNN_ARRAY_RUN when set, else composed
    from the multiplier runs): multiplier- and accelerator-energy reductions, evaluations and wall-clock
    time per method, and the chosen network's loss on the full test split; AXFLOW_DNN_SEEDS="1 2 3" runs it
    for each training seed (rows ``dnn.search.lenet5_mnist.seedN...``). The search minimises the
    multiplier energy, the target's measure (AXFLOW_DNN_OBJECTIVE=accel: the accelerator's). Both runs apply the budget to
    the loss plus AXFLOW_DNN_CONFIDENCE (default 1) x its paired standard error on the validation images
    (``--confidence``): 800 images put that error near half a point at the budget's edge.
    AXFLOW_DNN_SELECT_IMAGES=K: the last K of the 800 pick fine-tuning checkpoints (``--select-images``),
    the first 800 - K evaluate.
    ``yardstick`` run: exhaustive search is feasible only on a few candidates (AXFLOW_DNN_YARDSTICK
    of them, default 4: 5^5 = 3,125 assignments, spread over the candidates' energies) and
    AXFLOW_DNN_YARDSTICK_IMAGES validation images (default 800, as the library run: on 200 a budget of
    1 point is 2 images, and exhaustive search's answer is the one the noise favours most): every
    method's energy next to exhaustive search's, no fine-tuning.
    """
    if quick:
        return [row("dnn.search.lenet5_mnist", float("nan"), "x", None, "not run in quick mode")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        dirs, source, lib = candidates(tmp)
        accel = {"net": "lenet5", "array": "8x8", "pods": 1, "dataflow": "ws"}
        if os.environ.get("AXFLOW_DNN_ARRAY_RUN"):
            accel["array_run"] = os.environ["AXFLOW_DNN_ARRAY_RUN"]
        (tmp / "accel.json").write_text(json.dumps(accel), encoding="utf-8")
        n_tune = int(os.environ.get("AXFLOW_DNN_FINETUNE_IN_LOOP", "6"))
        given: dict[str, Any] = {"library": lib} if lib is not None else {"mults": tuple(dirs)}
        seeds = [int(s) for s in os.environ.get("AXFLOW_DNN_SEEDS", "1").split()]
        for seed in seeds:  # each seed trains its own network (cached) and searches it
            rep = _dnn(tmp, "library" if len(seeds) == 1 else f"library-seed{seed}", **given,
                       method=("xai", "hawx", "nsga2"), finetune_in_loop=n_tune, accel=tmp / "accel.json",
                       objective=os.environ.get("AXFLOW_DNN_OBJECTIVE", "mult"), seed=seed)
            rows += _library_rows(rep, source, "lenet5_mnist" if len(seeds) == 1 else f"lenet5_mnist.seed{seed}")
        k = int(os.environ.get("AXFLOW_DNN_YARDSTICK", "4"))
        by_energy = sorted(dirs, key=_energy)
        picks = [by_energy[round(i * (len(by_energy) - 1) / max(1, k - 1))] for i in range(k)]
        picks = list(dict.fromkeys(picks))
        images = int(os.environ.get("AXFLOW_DNN_YARDSTICK_IMAGES", "800"))
        ys = _dnn(tmp, "yardstick", mults=tuple(picks), method=("xai", "hawx", "nsga2", "exhaustive"),
                  finetune_epochs=0, eval_images=images)
        rows += _yardstick_rows(ys, picks)
    return rows


def _library_rows(rep: dict[str, Any], source: str, label: str = "lenet5_mnist") -> list[dict[str, Any]]:
    rows = []
    n = len(rep["multipliers"]) - 1
    t = rep["test"]
    for name, m in rep["methods"].items():
        b = m["best"]
        acc = f"accuracy {b['accuracy']:.4f} vs exact INT8 {rep['baseline_accuracy']:.4f}" if b else "none within budget"
        note = (f"{m['evaluations']} {'fine-tunes' if name == 'finetune-in-loop' else 'evaluations'}, "
                f"{m['wall_s'] or 0:.0f} s; {acc} on {rep['eval_images']} validation images (budget on the loss "
                f"+ {rep['confidence']:g} x its paired standard error); {n} {source}; target >= 4x")
        rows.append(row(f"dnn.search.{label}.{name}.mult_energy_reduction",
                        m["mult_energy_reduction"] or float("nan"), "x", None, note))
        rows.append(row(f"dnn.search.{label}.{name}.accel_energy_reduction",
                        m["accel_energy_reduction"] or float("nan"), "x", None,
                        f"whole accelerator (accel_models, 8x8 ws array); the search minimised the "
                        f"{'accelerator' if rep['objective'] == 'accel' else 'multiplier'} energy"))
        rows.append(row(f"dnn.search.{label}.{name}.evaluations", float(m["evaluations"]), "nets", None,
                        "networks fine-tuned" if name == "finetune-in-loop" else "distinct networks evaluated"))
        rows.append(row(f"dnn.search.{label}.{name}.wall", float(m["wall_s"] or 0.0), "s", None,
                        "wall-clock in this run (evaluations an earlier method made are cached)"))
    if "chosen_accuracy" in t:
        rows.append(row(f"dnn.search.{label}.chosen.test_loss", 100 * t["chosen_loss_vs_exact_int8"], "pts",
                        None, f"full test split ({t['images']} images): float {t['float_accuracy']:.4f}, exact INT8 "
                        f"{t['exact_int8_accuracy']:.4f}, chosen {t['chosen_accuracy']:.4f} (paired standard "
                        f"error {100 * t['chosen_loss_se']:.2f} pts); multiplier-energy "
                        f"reduction {rep['mult_energy_reduction']:.2f}x, whole accelerator "
                        f"{rep['accel_energy_reduction']:.2f}x; budget 1 pt"))
    return rows


def _yardstick_rows(rep: dict[str, Any], picks: list[str]) -> list[dict[str, Any]]:
    rows = []
    ex = rep["methods"]["exhaustive"]
    ex_e = ex["best"]["energy_pj"] if ex["best"] else None
    names = ", ".join(Path(p).name for p in picks)
    for name, m in rep["methods"].items():
        e = m["best"]["energy_pj"] if m["best"] else float("nan")
        rows.append(row(f"dnn.search.yardstick.{name}.energy", e, "pJ", ex_e if name != "exhaustive" else None,
                        f"{m['evaluations']} evaluations, {m['wall_s'] or 0:.0f} s; multiplier-energy reduction "
                        f"{m['mult_energy_reduction'] or float('nan'):.2f}x; {len(picks)} candidates ({names}) "
                        f"and exact, {rep['eval_images']} validation images; reference = exhaustive, target "
                        "ratio <= 1.05"))
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return lut_speed(quick) + search(quick)


if __name__ == "__main__":
    import sys

    for r in run(quick="--quick" in sys.argv):
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        print(f"{r['name']:<55} {r['value']:>10.3f} {r['unit']:<5} ref {r['reference'] or float('nan'):>10.3f} "
              f"{ratio:>7}  {r['note']}")
