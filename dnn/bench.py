"""DNN-level benchmarks, measured side by side in one process.

``lut_speed``  LUT-exact INT8 inference against the same network's exact fp32 forward pass (one thread
               each, best of several interleaved runs), for multipliers whose error tables have rank 0
               (exact), 2 and 4 (broken-array multipliers: rank 2 factorised exactly, rank 4 above
               ``lutops.MAX_RANK`` so gathered like the others), full rank
               (random errors: gathered) and the evolved EPS=0.005 and 0.05 multipliers of ``runs/mul8s/``,
               on LeNet-5 and ResNet-20 trained on MNIST, with MNIST test images. Every LUT network is
               first checked bit for bit against the plain int64 reference loop on a few images.
``search``     LeNet-5 on MNIST: multiplier-energy reduction at <= 1 % accuracy loss found by XAI-Gen's
               and HAWX's searches and the evaluations each needed, next to exhaustive search; with the
               multiplier runs in ``AXFLOW_DNN_MULTS`` (space-separated run directories) when set, else
               with the runs under ``runs/mul8s/`` (sweeps included) that have a ``lut.npy``, else with broken-array
               multipliers (k = 4..7) characterised here by Yosys and OpenSTA on OSU018. Not run in
               quick mode.
"""

from __future__ import annotations

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


def search(quick: bool = False) -> list[dict[str, Any]]:
    from core import config as cfg
    from dnn import cli

    if quick:
        return [row("dnn.search.lenet5_mnist", float("nan"), "x", None, "not run in quick mode")]
    with tempfile.TemporaryDirectory() as tmp:
        dirs = _mult_dirs()
        source = "multiplier runs"
        if not dirs:
            from dnn import fixtures

            dirs = [str(p) for p in fixtures.characterise(Path(tmp) / "mults", (4, 5, 6, 7))]
            source = "broken-array multipliers k=4..7 (Yosys/OpenSTA on OSU018)"
        conf = cfg.from_dict(cli.DnnConfig, {
            "net": "lenet5", "data": "mnist", "mults": tuple(dirs),
            "method": ("xai", "hawx", "exhaustive"), "granularity": "both", "max_acc_loss": 0.01,
            "run_dir": Path(tmp) / "run", "epochs": 6, "finetune_epochs": 1,
            "eval_images": 1000, "representatives": 32, "ig_steps": 16, "threads": 1, "cache_dir": runs_root() / "dnn" / "models",
            "max_evals": 100000})
        rep = cli.run(conf, quiet=True)
        keep = os.environ.get("AXFLOW_DNN_BENCH_KEEP")
        if keep:  # keep the run (report, plot, Pareto set) for inspection
            import shutil

            shutil.copytree(Path(tmp), keep, dirs_exist_ok=True)
    rows = []
    ex = rep["methods"].get("exhaustive", {})
    ex_red = ex.get("energy_reduction")
    for name, m in rep["methods"].items():
        red = m["energy_reduction"]
        acc = m["best"]["accuracy"] if m["best"] else float("nan")
        rows.append(row(f"dnn.search.lenet5_mnist.{name}.energy_reduction", red or float("nan"), "x",
                        ex_red if name != "exhaustive" else None,
                        f"{m['evaluations']} evaluations; accuracy {acc:.4f} vs exact INT8 "
                        f"{rep['baseline_accuracy']:.4f} on {rep['eval_images']} images; "
                        f"{len(rep['multipliers']) - 1} {source}; reference = exhaustive"))
        rows.append(row(f"dnn.search.lenet5_mnist.{name}.evaluations", float(m["evaluations"]), "nets",
                        float(ex.get("evaluations")) if ex and name != "exhaustive" else None,
                        "distinct networks evaluated; reference = exhaustive"))
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return lut_speed(quick) + search(quick)


if __name__ == "__main__":
    import sys

    for r in run(quick="--quick" in sys.argv):
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        print(f"{r['name']:<55} {r['value']:>10.3f} {r['unit']:<5} ref {r['reference'] or float('nan'):>10.3f} "
              f"{ratio:>7}  {r['note']}")
