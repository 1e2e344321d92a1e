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
from core.run import read_json

POWER_EPS = (0.005, 0.02, 0.05)
POWER_TARGET = 0.9
POWER_SEEDS = {"area": "array", "power": "auto"}  # each objective's seed: the default, and auto by power


# the library target's WCE grid (fractions of N = 2^14 for mul8s): one level at or just under each of
# EvoApproxLib's signed 8x8 circuits' WCE (5, 17, 49, 128, 161, 255, 449, 759, 896, 1743, 8064), an exact
# member, and 0.2 where LeNet-5 collapses
TARGET_EPS = (0.00005, 0.0003, 0.001, 0.0029, 0.0078, 0.0098, 0.0155, 0.027, 0.046, 0.054, 0.106, 0.2, 0.49)
TARGET_MEMBERS, TARGET_S = 24, 3600.0


def run(quick: bool = False) -> Iterator[dict[str, Any]]:
    yield from scaling(quick)
    yield from power_target(quick)
    yield from target(quick)


def best_at_wce(rows: list[dict[str, Any]]) -> list[tuple[str, float, dict[str, float]]]:
    """For each reference (in WCE order): its name, its WCE, and the lowest power and area of a member
    whose WCE is at most the reference's, each as a ratio to the reference's (NaN: no such member)."""
    members = [r for r in rows if r["kind"] == "member"]
    out = []
    for ref in sorted((r for r in rows if r["kind"] == "reference"), key=lambda r: r["wce"]):
        under = [m for m in members if m["wce"] <= ref["wce"]]
        out.append((ref["name"], ref["wce"], {k: min(m[k] for m in under) / ref[k] if under else float("nan")
                                              for k in ("power_w", "area")}))
    return out


def target(quick: bool = False, budget: float | None = None, out: Path | None = None) -> Iterator[dict[str, Any]]:
    """The issue's library: mul8s on OSU018 for LeNet-5's INT8 operands, ``--cost power``, TARGET_EPS x 2
    seeds on a LocalCluster of 2 workers, timed; with AXFLOW_REFERENCE (a directory of EvoApproxLib's
    signed 8x8 Verilog, ``multiplers/8x8_signed/*/mul8s_*.v`` of github.com/ehw-fit/evoapproxlib) the same
    build characterises them and counts how many a member dominates on each plane."""
    from evolve.library import LibraryConfig, build
    from rtl_gen.operands import SHIPPED

    ref = os.environ.get("AXFLOW_REFERENCE")
    eps, seeds = (TARGET_EPS[-3:-1], (1,)) if quick else (TARGET_EPS, (1, 2))
    budget = budget if budget is not None else (10.0 if quick else 140.0)
    with tempfile.TemporaryDirectory(prefix="axflow-bench-target-") as tmp:
        cfg = LibraryConfig(eps=eps, seeds=seeds, bits=8, signed=True, budget=budget, cost="power",
                            operands=str(SHIPPED), workers=2, reference=Path(ref) if ref else None,
                            run_dir=(out or Path(tmp)) / "library")
        t0 = time.time()
        result = build(cfg, progress=False)
        wall = time.time() - t0
        done = sorted(Path(r["run_dir"], "report.json").stat().st_mtime - t0 for r in result["members"]
                      if r["verified"])
    what = f"mul8s, {len(eps)} EPS x {len(seeds)} seeds, {budget:g} s each, --cost power, LeNet-5 operands"
    yield row(f"library target ({what}): verified members", len(done), "", reference=TARGET_MEMBERS)
    if len(done) >= TARGET_MEMBERS:
        yield row(f"library target: wall-clock until the {TARGET_MEMBERS}th verified member", done[TARGET_MEMBERS - 1],
                  "s", reference=TARGET_S, note="met" if done[TARGET_MEMBERS - 1] <= TARGET_S else "MISSED")
    yield row("library target: wall-clock of the whole build", wall, "s", reference=TARGET_S,
              note=f"{len(result['references'])} references characterised too" if ref else "no AXFLOW_REFERENCE")
    for name, wce, ratios in best_at_wce(result["rows"]):
        yield row(f"library target: best member at or under {name}'s WCE {wce:g}, power / its power",
                  ratios["power_w"], "x", reference=1.0, note=f"area / its area {ratios['area']:.3f}")
    for plane, v in result["references_dominated"].items():
        if v["references"]:
            yield row(f"library target: EvoApproxLib circuits dominated by a member on {plane}",
                      v["references_dominated"], "", reference=v["references"],
                      note="not dominated: " + (", ".join(v["not_dominated"]) or "none"))


def power_target(quick: bool = False, budget: float | None = None, out: Path | None = None
                 ) -> Iterator[dict[str, Any]]:
    """The OpenSTA power of ``--cost power`` members against ``--cost area`` members at each EPS of
    POWER_EPS, equal budgets, the same seed and operand stream; then the power cost's correlation.

    Each objective starts from the seed it is run with by default for it: ``--cost area`` from the array
    (the flow's default), ``--cost power`` from ``--seed-arch auto``, which under power starts from the
    architecture of least measured power. Each row's note has both members' seed, power cost (the
    search's zero-delay objective, pJ per operation) and generations, so that the search and the seed can
    be told apart.

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
                                    operands=str(SHIPPED), workers=1, seed_arch=POWER_SEEDS[cost],
                                    run_dir=(out or Path(tmp)) / f"cost-{cost}")
                for cost in ("area", "power")}
        with ThreadPoolExecutor(len(cfgs)) as pool:
            built = {cost: pool.submit(build, cfg, progress=False) for cost, cfg in cfgs.items()}
            rows = {cost: {r["eps"]: {**r, "seed": _seed_of(Path(r["run_dir"]))} for r in fut.result()["members"]}
                    for cost, fut in built.items()}
    for eps in POWER_EPS:
        a, p = rows["area"][eps], rows["power"][eps]
        yield row(f"power target, mul8s EPS {eps:g}: OpenSTA power of --cost power / --cost area", p["power_w"] /
                  a["power_w"], "x", reference=POWER_TARGET,
                  note=f"{budget:g} s each, side by side, LeNet-5 operands; power ratio to exact {p['power_ratio']:.4f} vs "
                       f"{a['power_ratio']:.4f}, area ratio {p['area_ratio']:.4f} vs {a['area_ratio']:.4f}, "
                       f"power cost {p['power_cost']:.4f} vs {a['power_cost']:.4f} pJ, seed {p['seed']} vs "
                       f"{a['seed']}, generations {p['generations']} vs {a['generations']}; "
                       f"{'met' if p['power_w'] <= POWER_TARGET * a['power_w'] else 'MISSED'}")
    pts = np.array([(r["power_cost"], r["power_w"]) for c in rows.values() for r in c.values()], dtype=float)
    yield row("power cost vs OpenSTA power: Pearson correlation over the members",
              float(np.corrcoef(pts[:, 0], pts[:, 1])[0, 1]), "", note=f"{len(pts)} members")


def _seed_of(member: Path) -> str:
    """A member's seed architecture, and how ``auto`` chose it."""
    from evolve import seeds

    info = read_json(member / seeds.INFO, "seed architecture")
    return info["arch"] + (f" (auto, least {info.get('by', 'area')})" if info["choice"] == "auto" else "")


SPEEDUP_TARGET = 1.8


def scaling(quick: bool = False) -> Iterator[dict[str, Any]]:
    """The same small library (4x4 signed members, fixed generations, so that every build makes the same
    members) on a LocalCluster of 1 and of 2 workers. On a shared machine a build's wall-clock is what the
    load leaves it: the full benchmark builds each twice, in the order 1, 2, 2, 1 (the first build of a
    machine also pays numba's and the tools' cold start), and compares the fastest of each."""
    from evolve.library import LibraryConfig, build

    eps = (0.02, 0.05) if quick else (0.01, 0.02, 0.05, 0.1)
    seeds = (1,) if quick else (1, 2)
    generations = 300 if quick else 2000
    order = (1, 2) if quick else (1, 2, 2, 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    times: dict[int, list[float]] = {1: [], 2: []}
    made: dict[int, list[tuple[Any, ...]]] = {}
    with tempfile.TemporaryDirectory(prefix="axflow-bench-library-") as tmp:
        for i, workers in enumerate(order):
            cfg = LibraryConfig(eps=eps, seeds=seeds, bits=4, signed=True, budget=0.0, generations=generations,
                                jobs=1, epoch=100, power_vectors=50, workers=workers,
                                run_dir=Path(tmp) / f"build{i}-workers{workers}")
            t0 = time.perf_counter()
            result = build(cfg, progress=False)
            times[workers].append(time.perf_counter() - t0)
            rows = [(r["name"], r["wce"], r["area"]) for r in result["rows"]]
            if made.setdefault(workers, rows) != rows:
                raise AssertionError(f"two builds on {workers} worker(s) made different members")
    what = f"{len(eps) * len(seeds)} members, 4x4 signed, {generations} generations"
    t1, t2 = min(times[1]), min(times[2])
    each = "; builds: " + ", ".join(f"{w} worker(s) {t:.1f} s" for w in (1, 2) for t in times[w])
    yield row(f"library ({what}), 1 worker", t1, "s", note="fastest of " + str(len(times[1])))
    yield row(f"library ({what}), 2 workers", t2, "s", reference=t1,
              note=f"{cores} cores here; same members as with 1 worker: {'yes' if made[1] == made[2] else 'NO'}")
    yield row(f"library ({what}): speed-up of 2 workers over 1", t1 / t2, "x", reference=SPEEDUP_TARGET,
              note=("met" if t1 / t2 >= SPEEDUP_TARGET else "MISSED") + each)
