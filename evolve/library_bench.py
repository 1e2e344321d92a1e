"""``flow.py bench --suite library``: wall-clock of one small library built on a LocalCluster of 1 and of 2
worker processes (4x4 signed members, fixed generations, so both builds make the same members); and the
power target: 8x8 signed members at EPS 0.005, 0.02 and 0.05 evolved with ``--cost power`` and with
``--cost area`` under equal budgets and the same operand stream (LeNet-5's INT8 operands), their OpenSTA
power compared (target: power run <= 0.9x the area run), with the correlation of the evaluator's power
cost and OpenSTA's power over all of them."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.bench import row

POWER_EPS = (0.005, 0.02, 0.05)
POWER_TARGET = 0.9


def run(quick: bool = False) -> Iterator[dict[str, Any]]:
    yield from scaling(quick)
    yield from power_target(quick)


def power_target(quick: bool = False, budget: float | None = None, out: Path | None = None
                 ) -> Iterator[dict[str, Any]]:
    """The OpenSTA power of ``--cost power`` members against ``--cost area`` members at each EPS of
    POWER_EPS, equal budgets, the same seed and operand stream; then the power cost's correlation.

    The two libraries are built at the same time, one worker each, so that the area and the power member of
    an EPS evolve side by side: on a shared machine a time budget buys what the load leaves, and both get
    the same load."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from evolve.library import LibraryConfig, build
    from rtl_gen.operands import SHIPPED

    budget = budget if budget is not None else (20.0 if quick else 90.0)
    with tempfile.TemporaryDirectory(prefix="axflow-bench-power-") as tmp:
        cfgs = {cost: LibraryConfig(eps=POWER_EPS, seeds=(1,), bits=8, signed=True, budget=budget, jobs=1, cost=cost,
                                    operands=str(SHIPPED), workers=1, run_dir=(out or Path(tmp)) / f"cost-{cost}")
                for cost in ("area", "power")}
        with ThreadPoolExecutor(len(cfgs)) as pool:
            built = {cost: pool.submit(build, cfg, progress=False) for cost, cfg in cfgs.items()}
            rows = {cost: {r["eps"]: r for r in fut.result()["members"]} for cost, fut in built.items()}
    for eps in POWER_EPS:
        a, p = rows["area"][eps], rows["power"][eps]
        yield row(f"power target, mul8s EPS {eps:g}: OpenSTA power of --cost power / --cost area", p["power_w"] /
                  a["power_w"], "x", reference=POWER_TARGET,
                  note=f"{budget:g} s each, side by side, LeNet-5 operands; power ratio to exact {p['power_ratio']:.4f} vs "
                       f"{a['power_ratio']:.4f}, area ratio {p['area_ratio']:.4f} vs {a['area_ratio']:.4f}; "
                       f"{'met' if p['power_w'] <= POWER_TARGET * a['power_w'] else 'MISSED'}")
    pts = np.array([(r["power_cost"], r["power_w"]) for c in rows.values() for r in c.values()], dtype=float)
    yield row("power cost vs OpenSTA power: Pearson correlation over the members",
              float(np.corrcoef(pts[:, 0], pts[:, 1])[0, 1]), "", note=f"{len(pts)} members")


def scaling(quick: bool = False) -> Iterator[dict[str, Any]]:
    from evolve.library import LibraryConfig, build

    eps = (0.02, 0.05) if quick else (0.01, 0.02, 0.05, 0.1)
    generations = 300 if quick else 2000
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    times: dict[int, float] = {}
    made: dict[int, list[tuple[Any, ...]]] = {}
    with tempfile.TemporaryDirectory(prefix="axflow-bench-library-") as tmp:
        for workers in (1, 2):
            cfg = LibraryConfig(eps=eps, seeds=(1,), bits=4, signed=True, budget=0.0, generations=generations,
                                jobs=1, epoch=100, power_vectors=50, workers=workers,
                                run_dir=Path(tmp) / f"workers{workers}")
            t0 = time.perf_counter()
            result = build(cfg, progress=False)
            times[workers] = time.perf_counter() - t0
            made[workers] = [(r["name"], r["wce"], r["area"]) for r in result["rows"]]
    what = f"{len(eps)} members, 4x4 signed, {generations} generations"
    yield row(f"library ({what}), 1 worker", times[1], "s")
    yield row(f"library ({what}), 2 workers", times[2], "s", reference=times[1],
              note=f"{cores} cores here; same members as with 1 worker: {'yes' if made[1] == made[2] else 'NO'}")
