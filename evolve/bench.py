"""Benchmarks of the evolution: evaluation speed and search quality, measured side by side.

``flow.py bench`` prints every suite's rows: each a figure, its unit, and where there is one, the
reference it was measured against in the same run and the ratio. Suites:

- ``evolve``: exhaustive evaluations per second of the 8x8 signed seed netlist (65,536 vectors), on one
  core: the straightforward way (one byte per vector and gate, every gate re-simulated, as the
  CircuitsDNA engine works), the bit-parallel evaluator from scratch, incremental evaluation of
  mutants, and the rate inside the evolution loop.
- ``quality``: evolve runs at EPS 0.005, 0.01, 0.02 and 0.05 with the default 10-minute budget, next to
  the transistor ratios CircuitsDNA reports (0.765, 0.741, 0.644, 0.473; theirs after hours).
- ``accel`` and ``dnn``: the accelerator-model and DNN suites, when those packages are present.
- ``array``: the 8x8 array with the EPS=0.005 multiplier verified on a 64x64x64 GEMM and costed, against
  the 10-minute target; its area and power ratios next to the multiplier's own (``rtl_gen/bench.py``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.bench import row
from core.errors import must
from core.run import write_text

CIRCUITSDNA_TRANSISTOR_RATIO = {0.005: 0.765, 0.01: 0.741, 0.02: 0.644, 0.05: 0.473}
SUITES = ("evolve", "accel", "dnn", "array", "quality")


def _rate(fn, min_seconds: float) -> float:
    """Calls per second of ``fn``, best of three runs of at least ``min_seconds`` each."""
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_seconds:
                break
        best = max(best, n / dt)
    return best


def seed_netlist(work: Path, bits: int = 8, signed: bool = True):
    """The exact multiplier synthesised to generic gates by the flow's own steps."""
    from core.run import RunDir
    from evolve.netlist import Netlist
    from ppa import yosys
    from rtl_gen.multiplier import Multiplier, design_name, to_verilog

    run = RunDir.create(work / "seed", overwrite=True)
    name = design_name(bits, bits, signed)
    rtl = run.path / f"{name}.v"
    rtl.write_text(to_verilog(Multiplier(bits, bits, signed_=signed), name))
    yosys.synth_generic(run, [rtl], name, run.path / "seed.json", run.path / "seed.v")
    return Netlist.from_yosys_json(json.loads((run.path / "seed.json").read_text()), name, bits, bits, signed)


def evolve_suite(quick: bool = False) -> list[dict[str, Any]]:
    from evolve import cgp, engine, kernels
    from evolve.evaluator import Evaluator, reference_outputs
    from evolve.netlist import FUNCS
    from verify import golden

    secs = 0.2 if quick else 2.0
    with tempfile.TemporaryDirectory() as tmp:
        seed = seed_netlist(Path(tmp))
    exact = golden.table(8, 8, True).ravel()
    rows = []

    def reference() -> None:
        int(np.abs(reference_outputs(seed) - exact).max())

    ref = _rate(reference, secs)
    rows.append(row("reference evaluation (byte per vector, all gates)", ref, "evals/s",
                    note=f"{seed.n_gates} gates x 65,536 vectors, numpy"))

    ev = Evaluator(8, 8, True, seed.n_addr, children=1)
    ev.load_parent(seed)
    full = _rate(lambda: ev.load_parent(seed), secs)
    rows.append(row("bit-parallel evaluation from scratch", full, "evals/s", ref, "exact WCE over all vectors"))

    # mutants of the seed, each simulated incrementally and its exact WCE computed (no early exit)
    rng = np.random.default_rng(1)
    grown = cgp.with_spares(seed, 0.1, rng)
    ev2 = Evaluator(8, 8, True, grown.n_addr, children=1)
    _, act = ev2.load_parent(grown)
    cum = np.cumsum(cgp.DEFAULT_OPS)
    weights = np.ones(len(FUNCS))
    dirty = np.zeros(grown.n_addr, dtype=np.bool_)
    mutants = []
    for _ in range(256):
        child = grown.copy()
        kernels.mutate(child.func, child.in0, child.in1, child.out, child.first, act, rng, cum, len(FUNCS))
        mutants.append(child)
    it = iter(range(1 << 62))

    def incremental() -> None:
        c = mutants[next(it) % len(mutants)]
        kernels.assess(c.func, c.in0, c.in1, c.out, grown.func, grown.in0, grown.in1, c.first, weights, 1 << 30,
                       np.inf, ev2.valid, dirty, ev2.store, ev2.n_chunks, ev2.n_addr, 1, ev2.ex, ev2.nb, True, 1 << 62)

    inc = _rate(incremental, secs)
    rows.append(row("incremental evaluation of seed mutants", inc, "evals/s", ref,
                    "exact WCE over all vectors, changed cone only"))

    # the evolution loop itself: one island on one core, everything included
    problem = engine.Problem(8, 8, True, grown.n_addr, tuple(weights), seed.depth(), 4, cgp.DEFAULT_OPS,
                             1 << 16, 1)
    state = engine.new_state(grown, 1, 1, weights, 0)
    gens = 2000 if quick else 20000
    engine.evolve(state, problem, engine.Schedule(16384, 0.005), jobs=1, epoch_generations=1000, budget=None,
                  generations=1000, migrate_every=0, checkpoint=lambda s: None, checkpoint_every=1e9,
                  progress=lambda s, r: None)  # compiles everything
    t0 = time.perf_counter()
    before = state.islands[0].evaluations
    out = engine.evolve(state, problem, engine.Schedule(16384, 0.005), jobs=1, epoch_generations=1000,
                        budget=None, generations=1000 + gens, migrate_every=0, checkpoint=lambda s: None,
                        checkpoint_every=1e9, progress=lambda s, r: None)
    dt = time.perf_counter() - t0
    evo = (out.state.islands[0].evaluations - before) / dt
    rows.append(row("evaluations inside the evolution loop (1 core)", evo, "evals/s", ref,
                    f"(1+4) ES at EPS 0.005, {gens} generations; target >= 10,000"))
    return rows


def quality_suite(quick: bool = False) -> list[dict[str, Any]]:
    from evolve import job

    rows = []
    budget = 20.0 if quick else 600.0
    with tempfile.TemporaryDirectory() as tmp:
        for eps, theirs in CIRCUITSDNA_TRANSISTOR_RATIO.items():
            cfg = job.EvolveConfig(eps=eps, budget=budget, run_dir=Path(tmp) / f"eps{eps}", power_vectors=500)
            r = job.run(cfg, progress=False)
            rows.append(row(f"area ratio, mul8s EPS={eps:g}", r["area_ratio"], "", None,
                            f"{budget:g} s, 2 processes; verified: {r['verification']['passed']}"))
            rows.append(row(f"transistor ratio, mul8s EPS={eps:g}", r["transistor_ratio"], "", theirs,
                            "reference: CircuitsDNA's reported transistor ratio"))
    return rows


def run_suite(name: str, quick: bool) -> list[dict[str, Any]]:
    if name == "evolve":
        return evolve_suite(quick)
    if name == "quality":
        return quality_suite(quick)
    module = {"accel": "accel_models.bench", "dnn": "dnn.bench", "array": "rtl_gen.bench"}[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        return [row(f"{name} suite not run", float("nan"), "", note=f"missing: {exc.name}")]
    return list(mod.run(quick=quick))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", nargs="+", choices=SUITES, default=["evolve", "accel", "dnn", "array"],
                        help="suites to run (default: evolve accel dnn array; quality takes 40 minutes)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the benchmarks")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")


def main(args: argparse.Namespace) -> int:
    if args.json is not None:  # checked before the benchmarks run, not after
        if args.json.is_dir():
            raise must("JSON", "a file name", f"{args.json} (a directory)")
        if not args.json.parent.resolve().is_dir():
            raise must("JSON", "a file in an existing directory", f"{args.json} (no directory {args.json.parent})")
    all_rows = []
    for suite in args.suite:
        rows = run_suite(suite, args.quick)
        all_rows += [{"suite": suite, **r} for r in rows]
        print(f"\n== {suite}")
        for r in rows:
            ref = f"  vs {r['reference']:.6g}  ratio {r['ratio']:.2f}" if r.get("ratio") else ""
            print(f"  {r['name']:<56} {r['value']:>12.6g} {r['unit']:<8}{ref}  {r['note']}")
    if args.json:
        write_text(args.json, json.dumps(all_rows, indent=1))
    return 0
