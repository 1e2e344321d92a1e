"""Benchmarks of the accelerator models (printed by ``flow.py bench``).

* whole ResNet-50 on a 4-pod 128x128 ws accelerator with the rtl model (target: under 50 ms), next to
  the same evaluation with the scalesim model on its first layers;
* re-evaluating the energy and time of a new multiplier assignment (target: under 1 ms), next to a
  full evaluation from scratch;
* zero differences: the scalesim model against the SCALE-Sim v2 figures stored in
  ``tests/data/scalesim_v2_grid.json``, and the rtl formulas against the cycle-stepped model of
  RTL_TIMING.md.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from core.bench import row
from core.multrun import MultiplierRun
from core.run import REPO

GRID = REPO / "tests" / "data" / "scalesim_v2_grid.json"


def _timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _fixture_run(root: Path, name: str, power_w: float) -> str:
    run = root / name
    report = {"wa": 8, "wb": 8, "signed": True, "area": 9000.0, "power_w": power_w, "energy_pj": power_w * 1e4,
              "clock_period_ns": 10.0, "exact": {"area": 15000.0, "power_w": 4e-4}}
    MultiplierRun.write(run, report)
    return str(run)


def run(quick: bool = False) -> list[dict]:
    from accel_models import networks
    from accel_models.model import Accelerator, Hardware

    rows: list[dict] = []
    _, r50 = networks.load("resnet50")
    hw = Hardware(128, 128, 4, "ws")
    acc = Accelerator(hw)
    acc.prepare(r50)  # warm up
    t_rtl = _timed(lambda: acc.prepare(r50), 3 if quick else 11)
    # side by side: the scalesim model on the first layers of the same network and accelerator
    first = r50[:1] if quick else r50[:4]
    ss = Accelerator(Hardware(128, 128, 4, "ws", cycle_model="scalesim"))
    ss.prepare(first[:1])  # compile
    t_ss = _timed(lambda: ss.prepare(first), 1)
    rows.append(row("resnet50_4x128x128_rtl_eval", t_rtl * 1e3, "ms", None,
                    f"all {len(r50)} layers, best split per layer; target < 50 ms"))
    rows.append(row("scalesim_model_first_layers", t_ss * 1e3, "ms", t_rtl * 1e3 * len(first) / len(r50),
                    f"scalesim model on the first {len(first)} layer(s); reference: rtl model on the same layers"))

    with tempfile.TemporaryDirectory() as tmp:
        from accel_models.api import Evaluator

        runs = [_fixture_run(Path(tmp), f"m{i}", p) for i, p in enumerate((1e-4, 2e-4, 3e-4))]
        config = {"net": "resnet50", "array": "128x128", "pods": 4, "dataflow": "ws"}
        evaluator = Evaluator(config, multipliers=tuple(runs))
        rng = np.random.default_rng(0)
        choices = ["exact", *runs]
        assignments = [{layer.name: choices[rng.integers(4)] for layer in r50} for _ in range(200)]
        it = iter(assignments * 100)
        t_re = _timed(lambda: evaluator.evaluate(next(it)), 50 if quick else 2000)
        t_full = _timed(lambda: Evaluator(config, multipliers=tuple(runs)).evaluate(assignments[0]),
                        1 if quick else 5)
    rows.append(row("assignment_reevaluation", t_re * 1e6, "us", t_full * 1e6,
                    "energy + time of a new per-layer JSON assignment of ResNet-50 (api.Evaluator); "
                    "reference: building the evaluator from scratch; target < 1000 us"))

    if GRID.is_file():
        from accel_models.scalesim import ScaleSimConfig, simulate_row

        data = json.loads(GRID.read_text(encoding="utf-8"))
        entries = data["runs"][:6] if quick else data["runs"]
        diff = layers = 0
        t = time.perf_counter()
        for entry in entries:
            c = entry["config"]
            cfg = ScaleSimConfig(c["rows"], c["cols"], c["dataflow"], c["ifmap_kb"], c["filter_kb"], c["ofmap_kb"],
                                 c["bandwidth"])
            for layer in entry["layers"]:
                mine = simulate_row(tuple(layer["row"]), cfg).as_dict()
                layers += 1
                diff += any(float(layer["scalesim"][k]) != v for k, v in mine.items())
        rows.append(row("scalesim_v2_differences", float(diff), "layers", float(layers),
                        f"{len(entries)} configurations x layers of the stored SCALE-Sim grid, "
                        f"{time.perf_counter() - t:.2f} s; target 0"))
    else:
        rows.append(row("scalesim_v2_differences", float("nan"), "layers", None, f"{GRID} missing"))

    from accel_models.rtl_reference import simulate
    from rtl_gen.rtl_cycles import gemm_cycles

    rng = np.random.default_rng(1)
    shapes = [(5, 6, 9), (7, 13, 5)] if quick else [(5, 6, 9), (7, 13, 5), (16, 16, 16), (33, 20, 17)]
    mism = total = 0
    for df in ("ws", "os"):
        for m, k, n in shapes:
            for pods, split in ((1, "n"), (2, "m"), (3, "k")):
                A, B = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
                out, cyc = simulate(A, B, rows=4, cols=4, dataflow=df, pods=pods, split=split)
                total += 1
                mism += cyc != gemm_cycles(m, k, n, rows=4, cols=4, dataflow=df, pods=pods, split=split) or \
                    not np.array_equal(out, (A @ B) & 0xFFFFFFFF)
    rows.append(row("rtl_contract_differences", float(mism), "runs", float(total),
                    "cycle-stepped model of RTL_TIMING.md vs the rtl formulas and A x B; target 0"))
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
