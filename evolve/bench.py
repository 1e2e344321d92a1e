"""Benchmarks of the evolution: evaluation speed and search quality, measured side by side.

``flow.py bench`` prints every suite's rows: each a figure, its unit, and where there is one, the
reference it was measured against in the same run and the ratio. Suites:

- ``evolve``: exhaustive evaluations per second of the 8x8 signed seed netlist (65,536 vectors), on one
  core: the straightforward way (one byte per vector and gate, every gate re-simulated, as the
  CircuitsDNA engine works), the bit-parallel evaluator from scratch, incremental evaluation of
  mutants, and the rate inside the evolution loop.
- ``evolve`` also measures the three-input evaluator (``--function-set cells``, the 8x8 seed mapped onto
  OSU018's cell set) beside the two-input one: incremental evaluation and the evolution loop.
- ``quality``: evolve runs at EPS 0.005, 0.01, 0.02 and 0.05 with the default 10-minute budget, next to
  the transistor ratios CircuitsDNA reports (0.765, 0.741, 0.644, 0.473; theirs after hours); the same
  from ``--seed-arch auto`` on OSU018 and (where ``../shared/tech/gf180mcu`` exists) GF180, next to the
  area-ratio targets (:func:`seed_rows`); then 8x8
  signed at EPS 0.005 with ``--function-set gates`` and ``cells``, equal budgets, the cells' area ratio
  next to the gates' (:func:`function_set_rows`).
- ``accel`` and ``dnn``: the accelerator-model and DNN suites, when those packages are present.
- ``sparsity``: block sparsity (``dnn/sparsity_bench.py``): accuracy per ratio of zero 8x8 blocks after
  retraining, LUT inference time sparse against dense (and kernel by kernel, with the dense kernel on half
  the filters beside it), and the joint sparsity/multiplier search.
- ``formal``: trusted WCE above 16 input bits. 12x12 signed and unsigned at EPS 0.005 and 0.02: the
  proven run's WCE re-measured by an independent exhaustive simulation of all 2^24 pairs (the evolution's
  own bit-parallel evaluator, chunk by chunk), and its area next to what a search on the sample alone
  would reach (and the true WCE of what it would have shipped). Then 16x16 unsigned and signed at EPS
  0.00058 (EvoApproxLib's mul16u_8VH, 0.385 of the exact area in this flow): area ratio, proof time per
  accepted candidate (median, max) and proven evaluations per second. 10 minutes per 12x12 run and an
  hour per 16x16 one; ``--quick`` gives each 20 s.
- ``array``: the 8x8 array with the EPS=0.005 multiplier verified on a 64x64x64 GEMM and costed, against
  the 10-minute target; its area and power ratios next to the multiplier's own (``rtl_gen/bench.py``).
- ``library``: wall-clock of a small ``flow.py library`` build on 1 and on 2 Dask workers
  (``evolve/library_bench.py``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.bench import row
from core.errors import ConfigError, ToolMissing, VerificationError, must
from core.run import write_text

CIRCUITSDNA_TRANSISTOR_RATIO = {0.005: 0.765, 0.01: 0.741, 0.02: 0.644, 0.05: 0.473}
SUITES = ("evolve", "accel", "dnn", "sparsity", "array", "quality", "formal", "library")


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


def cell_seed_netlist(work: Path, bits: int = 8, signed: bool = True, tech_spec: str = "osu018"):
    """The exact multiplier's generic seed mapped by ABC onto the technology's cell function set."""
    import tech as techmod
    from core.run import RunDir
    from evolve import cellnet, seeds
    from rtl_gen.multiplier import design_name
    from tech import cells

    seed_netlist(work, bits, signed)  # writes work/seed/seed.v
    t = techmod.load(tech_spec)
    run = RunDir.create(work / "cells", overwrite=True)
    tables = cellnet.tables(cells.load(t))
    return seeds.cell_seed(run, work / "seed" / "seed.v", design_name(bits, bits, signed), t, tables, bits, bits,
                           signed)


def _incremental(seed: Any, weights: np.ndarray, secs: float) -> float:
    """Incremental evaluations per second of 256 mutants of ``seed`` (with 10% spares), exact WCE each."""
    from evolve import cgp
    from evolve.evaluator import Evaluator

    rng = np.random.default_rng(1)
    grown = cgp.with_spares(seed, 0.1, rng)
    ev = Evaluator(seed.wa, seed.wb, seed.signed, grown.n_addr, children=1)
    _, act = ev.load_parent(grown)
    cum = np.cumsum(cgp.DEFAULT_OPS)
    dirty = np.zeros(grown.n_addr, dtype=np.bool_)
    mutants = []
    for _ in range(256):
        child = grown.copy()
        child.mutate(act, rng, cum)
        mutants.append(child)
    it = iter(range(1 << 62))

    def one() -> None:
        mutants[next(it) % len(mutants)].assess(grown, weights, 1 << 30, np.inf, ev, dirty, 1, 1 << 62)

    return _rate(one, secs)


def _loop(seed: Any, weights: np.ndarray, gens: int) -> float:
    """Evaluations per second inside the evolution loop: one island, (1+4) ES at EPS 0.005, one core."""
    from core import golden
    from evolve import cgp, engine

    grown = cgp.with_spares(seed, 0.1, np.random.default_rng(1))
    problem = engine.Problem(seed.wa, seed.wb, seed.signed, grown.n_addr, tuple(weights), seed.depth(), 4,
                             cgp.DEFAULT_OPS, 1 << 16, 1,
                             function_set=grown.tables.key if hasattr(grown, "tables") else "gates")
    state = engine.new_state(grown, 1, 1, weights, 0)
    schedule = engine.Schedule(golden.norm(seed.wa, seed.wb, seed.signed), 0.005)
    kw: dict[str, Any] = dict(jobs=1, epoch_generations=1000, budget=None, migrate_every=0, checkpoint=lambda s: None,
              checkpoint_every=1e9, progress=lambda s, r: None)
    engine.evolve(state, problem, schedule, generations=1000, **kw)  # compiles everything
    t0 = time.perf_counter()
    before = state.islands[0].evaluations
    out = engine.evolve(state, problem, schedule, generations=1000 + gens, **kw)
    return (out.state.islands[0].evaluations - before) / (time.perf_counter() - t0)


def evolve_suite(quick: bool = False) -> list[dict[str, Any]]:
    from core import golden
    from evolve.evaluator import Evaluator, reference_outputs
    from evolve.netlist import FUNCS

    secs = 0.2 if quick else 2.0
    with tempfile.TemporaryDirectory() as tmp:
        seed = seed_netlist(Path(tmp))
        cseed = cell_seed_netlist(Path(tmp))
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
    weights = np.ones(len(FUNCS))
    inc = _incremental(seed, weights, secs)
    rows.append(row("incremental evaluation of seed mutants", inc, "evals/s", ref,
                    "exact WCE over all vectors, changed cone only"))
    cweights = cseed.tables.area
    inc3 = _incremental(cseed, cweights, secs)
    rows.append(row("three-input nodes: incremental evaluation of cell-seed mutants", inc3, "evals/s", inc,
                    f"--function-set cells, OSU018 ({cseed.n_gates} cells); reference: two-input gates above; "
                    "target ratio >= 0.8"))

    # the evolution loop itself: one island on one core, everything included
    gens = 2000 if quick else 20000
    evo = _loop(seed, weights, gens)
    rows.append(row("evaluations inside the evolution loop (1 core)", evo, "evals/s", ref,
                    f"(1+4) ES at EPS 0.005, {gens} generations; target >= 10,000"))
    evo3 = _loop(cseed, cweights, gens)
    rows.append(row("three-input nodes: evaluations inside the evolution loop (1 core)", evo3, "evals/s", evo,
                    "--function-set cells, OSU018; reference: two-input gates above; target ratio >= 0.8"))
    return rows


def function_set_rows(budget: float, eps: float = 0.005, tech_spec: str = "osu018") -> list[dict[str, Any]]:
    """8x8 signed at ``eps``: an evolve run per function set with equal budgets, the cells' area ratio next
    to the gates'."""
    from evolve import job

    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fs in ("gates", "cells"):
            cfg = job.EvolveConfig(eps=eps, budget=budget, function_set=fs, tech=tech_spec, power_vectors=500,
                                   run_dir=Path(tmp) / fs)
            out[fs] = job.run(cfg, progress=False)
    g, c = out["gates"], out["cells"]

    def note(r: dict[str, Any]) -> str:
        return (f"{budget:g} s, {tech_spec}; {r['generations']} generations at {r['evals_per_s']:.0f} evals/s; "
                f"cost-area correlation {r['cost_area_correlation']}; verified: {r['verification']['passed']}")

    return [
        row(f"area ratio, mul8s EPS={eps:g}, --function-set gates", g["area_ratio"], "", None, note(g)),
        row(f"area ratio, mul8s EPS={eps:g}, --function-set cells", c["area_ratio"], "", g["area_ratio"],
            note(c) + f"; shipped area {c['area']:g} = search cost {c['search_cost']:g}"),
    ]


# issue 16's targets, 8x8 signed, 10 minutes on 2 cores: area ratio against the exact a*b multiplier of the
# same technology at most 0.70 at EPS 0.005, below the array seed's 10-minute figures at the others
SEED_TARGETS = {0.005: 0.70, 0.01: 0.663, 0.02: 0.602, 0.05: 0.464}


def seed_rows(tech_spec: str = "osu018", budget: float = 600.0, jobs: int = 2, seed_arch: str = "auto",
              out: Path | None = None) -> list[dict[str, Any]]:
    """8x8 signed at each EPS of SEED_TARGETS from ``--seed-arch auto`` (the least-area exact seed on the
    technology): the area ratio against the same technology's exact a*b multiplier and against the seed,
    next to the target."""
    from evolve import job

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for eps, target in SEED_TARGETS.items():
            cfg = job.EvolveConfig(eps=eps, budget=budget, jobs=jobs, tech=tech_spec, seed_arch=seed_arch,
                                   power_vectors=500, run_dir=(out or Path(tmp)) / f"{Path(tech_spec).name}-eps{eps}")
            r = job.run(cfg, progress=False)
            met = r["area_ratio"] <= target if eps == 0.005 else r["area_ratio"] < target
            rows.append(row(f"area ratio, mul8s EPS={eps:g}, {Path(tech_spec).name}, --seed-arch {seed_arch}",
                            r["area_ratio"], "", target,
                            f"{budget:g} s, {jobs} process(es); seed {r['seed_arch']['arch']}, area ratio vs seed "
                            f"{r['area_ratio_vs_seed']:.3f}; WCE {r['wce']} / {r['wce_limit']}; {r['generations']} "
                            f"generations; verified: {r['verification']['passed']}; {'met' if met else 'MISSED'}"))
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
    rows += seed_rows("osu018", budget)
    import tech as techmod

    if techmod.SHARED_GF180_LIBERTY.is_file():  # a user's clone lacks it
        rows += seed_rows(str(techmod.SHARED_GF180), budget)
    return rows + function_set_rows(budget)


def exhaustive_wce(net: Any, chunk_bits: int = 20) -> int:
    """max |y - a*b| over every input pair by the evolution's evaluator, chunk by chunk (independent of
    the prover's kernel)."""
    from evolve.evaluator import Evaluator

    nbits = net.wa + net.wb
    step = 1 << min(chunk_bits, nbits)
    worst = 0
    for start in range(0, 1 << nbits, step):
        ev = Evaluator(net.wa, net.wb, net.signed, net.n_addr, vectors=np.arange(start, start + step))
        worst = max(worst, ev.load_parent(net)[0])
    return worst


def _sampled_only(bits: int, signed: bool, eps: float, budget: float, seed: int = 1) -> tuple[float, int, int]:
    """What the search would ship on its sample alone (no proofs): (gate-area ratio, true WCE, limit)."""
    import tech as techmod
    from core import golden
    from evolve import cgp, descent, engine, kernels
    from evolve.evaluator import Evaluator
    from evolve.netlist import FUNCS

    t = techmod.load("osu018")
    weights = np.array([t.gate_area(f) for f in FUNCS], dtype=float)
    with tempfile.TemporaryDirectory() as tmp:
        net = seed_netlist(Path(tmp), bits, signed)
    limit = golden.wce_limit(eps, bits, bits, signed)
    ev = Evaluator(bits, bits, signed, net.n_addr, samples=65536, seed=seed)
    t0 = time.monotonic()
    d = descent.descend(net, ev, weights, limit, net.depth())
    genome = cgp.with_spares(d.net, 0.1, np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])))
    problem = engine.Problem(bits, bits, signed, genome.n_addr, tuple(weights), net.depth(), 4, cgp.DEFAULT_OPS,
                             65536, seed, uphill=float(weights.min()), proofs=False)
    state = engine.new_state(genome, 2, seed, weights, d.wce)
    out = engine.evolve(state, problem, engine.Schedule(golden.norm(bits, bits, signed), eps), jobs=2,
                        epoch_generations=1000, budget=max(1.0, budget - (time.monotonic() - t0)), generations=None,
                        migrate_every=10, checkpoint=lambda s: None, checkpoint_every=1e9, progress=lambda s, r: None)
    seed_cost = float(kernels.gate_cost(net.func, net.active(), weights))
    return out.best_cost / seed_cost, exhaustive_wce(out.best.compact()), limit


def formal_suite(quick: bool = False) -> list[dict[str, Any]]:
    from evolve import job
    from evolve.netlist import load

    rows = []
    budget = 20.0 if quick else 600.0
    with tempfile.TemporaryDirectory() as tmp:
        for signed in (True, False):
            for eps in (0.005, 0.02):
                tag = f"mul12{'s' if signed else 'u'} EPS={eps:g}"
                cfg = job.EvolveConfig(eps=eps, bits=12, signed=signed, budget=budget, power_vectors=500,
                                       run_dir=Path(tmp) / f"m12{signed}{eps}")
                r = job.run(cfg, progress=False)
                true = exhaustive_wce(load(cfg.directory() / "approx.json"))
                rows.append(row(f"{tag}: proven WCE = exhaustive re-measure", float(true == r["wce"] <= r["wce_limit"]),
                                "bool", None, f"report {r['wce']}, all 2^24 pairs {true}, limit {r['wce_limit']}"))
                gate_ratio = r["gate_area"] / r["exact"]["gate_area"] if r["exact"].get("gate_area") else float("nan")
                area, sampled_wce, limit = _sampled_only(12, signed, eps, budget)
                rows.append(row(f"{tag}: area ratio, proven search", r["area_ratio"], "", None,
                                f"{budget:g} s; gate-area ratio {gate_ratio:.4f}"))
                rows.append(row(f"{tag}: gate-area ratio, sampled-only search", area, "", gate_ratio,
                                f"ships WCE {sampled_wce} on all pairs ({sampled_wce / limit:.2f}x the limit {limit})"))
        for signed in (False, True):
            eps, hours = 0.00058, 3600.0
            b16 = 20.0 if quick else hours
            cfg = job.EvolveConfig(eps=eps, bits=16, signed=signed, budget=b16, power_vectors=500,
                                   run_dir=Path(tmp) / f"m16{signed}")
            try:
                r = job.run(cfg, progress=False)
            except (VerificationError, ConfigError) as exc:  # a proof that cannot finish is a result here
                rows.append(row(f"mul16{'s' if signed else 'u'} EPS={eps:g}: not finished", float("nan"), "",
                                note=str(exc)[:160]))
                continue
            pr = r["proofs"] or {}
            rows.append(row(f"mul16{'s' if signed else 'u'} EPS={eps:g}: area ratio", r["area_ratio"], "",
                            0.385 if not signed else None,
                            f"{b16:g} s; reference: EvoApproxLib mul16u_8VH in this flow; WCE {r['wce']} proven by "
                            f"{r['wce_proof']['method']}"))
            rows.append(row(f"mul16{'s' if signed else 'u'}: proof time per accepted candidate, median",
                            pr.get("median_s") or float("nan"), "s", None,
                            f"max {pr.get('max_s')}, {pr.get('accepted')} accepted, {pr.get('refuted')} refuted, "
                            f"{pr.get('unproven')} unproven"))
            rows.append(row(f"mul16{'s' if signed else 'u'}: proven evaluations per second",
                            pr.get("proven_evals_per_s") or float("nan"), "evals/s"))
    return rows


DEFAULT_SUITES = ("evolve", "accel", "dnn", "sparsity", "array")
# the suites of other packages, imported when run
SUITE_MODULES = {"accel": "accel_models.bench", "dnn": "dnn.bench", "sparsity": "dnn.sparsity_bench",
                 "array": "rtl_gen.bench", "library": "evolve.library_bench"}
# optional Python packages a suite needs (import names) and how to install them
SUITE_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "dnn": (("torch", "sklearn"), "make dnn-setup (requirements-dnn.txt)"),
    "sparsity": (("torch", "sklearn"), "make dnn-setup (requirements-dnn.txt)"),
}


def missing_packages(name: str) -> list[str]:
    """The optional packages suite ``name`` needs that are not installed."""
    packages = SUITE_PACKAGES.get(name, ((), ""))[0]
    return [p for p in packages if importlib.util.find_spec(p) is None]


def _missing(name: str, missing: list[str]) -> ToolMissing:
    return ToolMissing(f"the {name} suite needs the Python package {missing[0]!r}: install it with "
                       f"{SUITE_PACKAGES[name][1]}")


def run_suite(name: str, quick: bool) -> list[dict[str, Any]]:
    """The rows of suite ``name``; a missing optional package raises :class:`ToolMissing` naming it.

    Only the packages listed in :data:`SUITE_PACKAGES` count as missing; any other import failure (a
    module of this project, a package the list forgot) is a bug and propagates as it is.
    """
    missing = missing_packages(name)
    if missing:
        raise _missing(name, missing)
    if name == "evolve":
        return evolve_suite(quick)
    if name == "formal":
        return formal_suite(quick)
    if name == "quality":
        return quality_suite(quick)
    return list(importlib.import_module(SUITE_MODULES[name]).run(quick=quick))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", nargs="+", choices=SUITES, default=None,
                        help=f"suites to run (default: {' '.join(DEFAULT_SUITES)}, those whose optional packages "
                             "are installed; quality takes 40 minutes, formal three hours). A suite named here "
                             "that cannot run is an error")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the benchmarks")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")


def main(args: argparse.Namespace) -> int:
    if args.json is not None:  # checked before the benchmarks run, not after
        if args.json.is_dir():
            raise must("JSON", "a file name", f"{args.json} (a directory)")
        if not args.json.parent.resolve().is_dir():
            raise must("JSON", "a file in an existing directory", f"{args.json} (no directory {args.json.parent})")
    explicit = args.suite is not None
    suites = list(dict.fromkeys(args.suite)) if explicit else list(DEFAULT_SUITES)
    skipped = {}
    for suite in suites:  # before any suite runs: a suite asked for that cannot run fails at once
        missing = missing_packages(suite)
        if missing and explicit:
            raise _missing(suite, missing)
        if missing:
            skipped[suite] = missing
    all_rows = []
    for suite in suites:
        if suite in skipped:
            rows = [row(f"{suite} suite not run", float("nan"), "",
                        note=f"missing Python package {', '.join(skipped[suite])} ({SUITE_PACKAGES[suite][1]}); "
                             f"--suite {suite} makes this an error")]
        else:
            rows = run_suite(suite, args.quick)
        all_rows += [{"suite": suite, **r} for r in rows]
        print(f"\n== {suite}")
        for r in rows:
            ref = f"  vs {r['reference']:.6g}  ratio {r['ratio']:.2f}" if r.get("ratio") else ""
            print(f"  {r['name']:<56} {r['value']:>12.6g} {r['unit']:<8}{ref}  {r['note']}")
    if args.json:
        write_text(args.json, json.dumps(all_rows, indent=1))
    return 0
