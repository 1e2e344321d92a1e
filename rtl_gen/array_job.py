"""The ``flow.py array`` job: generate, verify cycle-exactly against the ``rtl`` model, cost, report.

Run directory (``runs/<array>/<mult>/`` by default)::

    array.v                  the whole accelerator, self-contained (multiplier, PE, core, top); every
                             module named <prefix>..., the multiplier shipped as <prefix>_mult
    array_exact.v            the same array with the exact multiplier (when it is costed for comparison)
    <tag>_core_<tech>.v      the mapped core (flat, hierarchical names); <tag>_pe_<tech>.v the PE alone
    results.xml              JUnit results of the verification bench
    config.json  COMMANDS  logs/  report.json  report.md
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import metrics, stage, tools
from core.config import check_clock, check_tag, check_width, option
from core.errors import ConfigError, VerificationError, must
from core.run import RunDir
from rtl_gen import array as arr
from rtl_gen import rtl_cycles


@dataclass(frozen=True)
class ArrayConfig:
    rows: int = option(8, help="PE rows of each array")
    cols: int = option(8, help="PE columns of each array")
    pods: int = option(1, help="arrays (pods) sharing the GEMM")
    dataflow: str = option("ws", help="weight stationary or output stationary", choices=arr.DATAFLOWS)
    mult: str = option("exact", help="the PE multiplier: 'exact' or a multiplier run directory (its approx.v, "
                                     "lut.npy and report.json)")
    bits: int | None = option(None, help="operand width of a (and of b unless --bits-b): 8 for exact; "
                                         "an evolved multiplier's own when not given")
    bits_b: int | None = option(None, help="operand width of b (default: --bits)")
    signed: bool | None = option(None, help="two's-complement operands (default: signed for exact, the "
                                            "multiplier's own otherwise); --no-signed for unsigned")
    acc_bits: int = option(32, help="accumulator width (sums wrap modulo 2^ACC_BITS)")
    shapes: tuple[str, ...] = option(("standard",), help="test GEMMs: 'standard' (square, tall, wide, K not a "
                                     "multiple of the array, M and N smaller than it; every split with "
                                     "several pods) and/or MxKxN[:SPLIT], e.g. 64x64x64 or 9x30x17:k")
    seed: int = option(1, help="random seed of the test operands")
    ppa: bool = option(True, help="synthesise and measure area, delay and power; --no-ppa only verifies")
    compare_exact: bool = option(True, help="with an evolved multiplier, cost the exact-multiplier array too "
                                            "(the array-level saving)")
    tech: str = option("osu018", help="technology")
    clock_period: float | None = option(None, unit="ns", help="clock period of synthesis, timing and power; at "
                                        "least the exact array's minimum period (default: derived, 1.25 x the "
                                        "minimum period of the slower core rounded up to a whole ns)")
    sim_period: float | None = option(None, unit="ns", help="clock period of the gate-level power simulation "
                                      "(default: CLOCK_PERIOD, longer when the cell models are slower than the "
                                      "Liberty, e.g. GF180's 1 ns per arc)")
    operands: str = option("auto", help="operands of the power GEMM: 'auto' (INT8 activations and weights of "
                                        "LeNet-5 on Fashion-MNIST for 8-bit signed operands, else uniform), "
                                        "'uniform', or a histogram CSV (value,count or value,count_a,count_b)")
    power_shape: str = option("auto", help="GEMM of the power simulation: MxKxN[:SPLIT]; 'auto' is "
                                           "(8 ROWS)x(2 ROWS)x(2 COLS PODS)")
    prefix: str | None = option(None, help="name of the top module and start of every other module's name in "
                                           "array.v (default: <array>_<hash of the configuration and the "
                                           "multiplier>)")
    tile_skip: bool = option(False, help="ws: the array skips all-zero weight tiles (a skip port, one bit per "
                             "K-tile and N panel); each test GEMM also runs with half its tiles skipped, in the "
                             "cycles of the rtl model's sparse schedule")
    tag: str | None = option(None, help="run name under runs/<array>/ (default: the multiplier's name)")
    run_dir: Path | None = option(None, help="run directory (default: runs/<array>/<tag>)")
    overwrite: bool = option(False, help="replace an existing run directory")

    def __post_init__(self) -> None:
        check_width("BITS", self.bits)
        check_width("BITS_B", self.bits_b)
        check_clock(self.clock_period, self.sim_period)
        check_tag(self.tag)
        for s in self.shapes:
            if s != "standard":
                gemm(s, "shape")
        if self.power_shape != "auto":
            gemm(self.power_shape, "power")
        if self.prefix is not None and not arr.IDENTIFIER.fullmatch(self.prefix):
            raise must("PREFIX", "a Verilog identifier (letters, digits and _, not starting with a digit)",
                       self.prefix)
        if self.operands not in ("auto", "uniform") and not Path(self.operands).is_file():
            raise must("OPERANDS", "'auto', 'uniform' or an existing histogram CSV", self.operands)


def gemm(text: str, name: str) -> Any:
    """``MxKxN[:split]`` as a :class:`verify.array.Gemm`."""
    from verify.array import Gemm, parse_shape

    shape, _, split = str(text).partition(":")
    split = split or "n"
    if split not in arr.SPLITS:
        raise must("SHAPES" if name == "shape" else "POWER_SHAPE", "MxKxN with an optional :SPLIT of n, m or k",
                   text)
    try:
        m, k, n = parse_shape(shape)
    except ConfigError:
        raise must("SHAPES" if name == "shape" else "POWER_SHAPE", "MxKxN with positive integers and an "
                   "optional :SPLIT (n, m or k)", text) from None
    return Gemm(f"{name}_{m}x{k}x{n}_{split}", m, k, n, split)


SPLIT_CODES = {s: i for i, s in enumerate(arr.SPLITS)}


def resolve_multiplier(cfg: ArrayConfig) -> arr.MultSpec:
    if cfg.mult == "exact":
        wa = 8 if cfg.bits is None else cfg.bits
        wb = wa if cfg.bits_b is None else cfg.bits_b
        return arr.exact_multiplier(wa, wb, True if cfg.signed is None else cfg.signed)
    return arr.evolved_multiplier(Path(cfg.mult), wa=cfg.bits,
                                  wb=cfg.bits_b if cfg.bits_b is not None else cfg.bits, signed=cfg.signed)


def resolve_gemms(cfg: ArrayConfig) -> list[Any]:
    from verify.array import default_gemms

    out: list[Any] = []
    for s in cfg.shapes:
        out += default_gemms(cfg.rows, cfg.cols, cfg.pods) if s == "standard" else [gemm(s, "shape")]
    names: dict[str, int] = {}
    unique = []
    for g in out:  # the same shape twice runs twice, under distinct names
        n = names.get(g.name, 0)
        names[g.name] = n + 1
        unique.append(g if n == 0 else type(g)(f"{g.name}_{n}", g.m, g.k, g.n, g.split))
    if cfg.tile_skip:
        unique += [sparse_gemm(g, cfg.rows, cfg.cols, cfg.pods, cfg.seed) for g in unique if g.split != "k"]
    return unique


def sparse_gemm(g: Any, rows: int, cols: int, pods: int, seed: int) -> Any:
    """``g`` with a seeded half of its weight tiles zero and skipped, expecting the rtl model's sparse schedule
    (``rtl_cycles.plan`` with each panel's reduction left after the skipped tiles, as accel_models runs it)."""
    import numpy as np

    from verify.array import Gemm

    kt, nt = arr.ceil_div(g.k, rows), arr.ceil_div(g.n, cols)
    rng = np.random.default_rng([seed, g.m, g.k, g.n])
    skip = rng.random((kt, nt)) < 0.5
    rows_of = np.minimum(rows, g.k - np.arange(kt) * rows)
    k_eff = [int(rows_of[~skip[:, j]].sum()) for j in range(nt)]
    cycles = rtl_cycles.plan(g.m, g.k, g.n, rows=rows, cols=cols, dataflow="ws", pods=pods, split=g.split,
                             k_eff=k_eff).cycles
    return Gemm(f"{g.name}_skip", g.m, g.k, g.n, g.split, tuple(tuple(bool(v) for v in r) for r in skip), cycles)


def power_gemm(cfg: ArrayConfig) -> Any:
    from verify.array import Gemm

    if cfg.power_shape == "auto":
        return Gemm("power", 8 * cfg.rows, 2 * cfg.rows, 2 * cfg.cols * cfg.pods)
    g = gemm(cfg.power_shape, "power")
    return Gemm("power", g.m, g.k, g.n, g.split)


def operand_source(cfg: ArrayConfig, mult: arr.MultSpec) -> str:
    from rtl_gen.operands import SHIPPED

    if cfg.operands == "auto":
        return str(SHIPPED) if (mult.wa, mult.wb, mult.signed) == (8, 8, True) else "uniform"
    return cfg.operands


@dataclass
class Plan:
    """What is resolved and checked before the run directory exists."""

    design: arr.Design
    gemms: list[Any]
    power_gemm: Any
    tech: Any
    probs: Any
    source: str
    compare: bool


class ArrayStage(stage.Stage):
    """Generate a systolic / multi-pod array, verify it cycle-exactly against the ``rtl`` model, cost it.
    Everything is checked before the run directory is created; a failed verification raises after the
    report is written."""

    name = "array"
    Config = ArrayConfig
    outputs = ("config.json", "report.json", "report.md", "array.v", "array_exact.v", "results.xml")
    packages = ("amaranth", "cocotb", "numpy")

    def tools_for(self, cfg: ArrayConfig) -> tuple[tools.Tool, ...]:
        # without PPA, Yosys still reads the evolved multiplier's ports
        return (tools.IVERILOG, tools.VVP, tools.YOSYS) + ((tools.STA,) if cfg.ppa else ())

    def prepare(self, cfg: ArrayConfig, progress: bool) -> Plan:
        import tech as techmod
        from ppa import activity

        mult = resolve_multiplier(cfg)
        gemms = resolve_gemms(cfg)
        pg = power_gemm(cfg)
        sized = gemms + ([pg] if cfg.ppa else [])
        g = arr.Geometry(cfg.rows, cfg.cols, cfg.pods, cfg.dataflow, mult.wa, mult.wb, mult.signed, cfg.acc_bits,
                         max(x.m for x in sized), max(x.k for x in sized), max(x.n for x in sized),
                         tile_skip=cfg.tile_skip)
        t = None
        source = "uniform"
        probs = None
        if cfg.ppa:
            t = techmod.load(cfg.tech)
            source = operand_source(cfg, mult)
            if source != "uniform":
                probs = activity.read_histogram(Path(source), g.wa, g.wb, g.signed)
        design = arr.generate(g, mult, cfg.prefix)
        compare = cfg.ppa and cfg.compare_exact and not mult.exact
        return Plan(design, gemms, pg, t, probs, source, compare)

    def default_dir(self, cfg: ArrayConfig, plan: Plan) -> Path:
        return Path(plan.design.geometry.name) / (cfg.tag or plan.design.mult.label)

    def run(self, ctx: stage.Context) -> dict[str, Any]:
        cfg, p, run_dir = ctx.cfg, ctx.plan, ctx.run
        try:
            periods = _technology_preflight(cfg, run_dir, p.design, p.tech) if cfg.ppa else None
            ctx.reported = True  # _run writes the report before it raises for a failed verification
            return _run(cfg, run_dir, p.design, p.gemms, p.power_gemm, p.tech, p.probs, p.source, p.compare,
                        ctx.progress, periods)
        except KeyboardInterrupt:
            print(f"interrupted: {run_dir.path} holds the steps that finished", file=sys.stderr)
            raise

    def summary(self, cfg: Any, report: dict[str, Any]) -> str:
        v = report["verification"]
        line = (f"{report['design']} with {report['mult']['label']}: {v['gemms_passed']}/{len(v['gemms'])} GEMMs "
                f"correct, cycles {'equal' if v['cycles_match'] else 'DIFFER from'} the rtl model")
        if "area" in report:
            line += (f"; area {report['area']:.6g} um^2, power {report['power_w'] * 1e3:.4g} mW, "
                     f"min period {report['min_period_ns']:.4g} ns (clock {report['clock_period_ns']:g} ns)")
        if report.get("savings"):
            s = report["savings"]
            line += (f"; array area ratio {s['area_ratio']:.4f} (multiplier "
                     f"{s['multiplier_level']['area_ratio']:.4f}), power ratio {s['power_ratio']:.4f}")
        return f"{line}; {report['run_dir']}/report.md"


STAGE = ArrayStage()


def run(cfg: ArrayConfig, *, progress: bool = True) -> dict[str, Any]:
    """The array stage on ``cfg``; returns the report (also in report.json)."""
    return STAGE.execute(cfg, progress=progress)


PROVISIONAL_PERIOD_NS = 10.0  # ABC's delay target of the mapping that measures the minimum period
PROBE_VECTORS = 500


def _technology_preflight(cfg: ArrayConfig, run: RunDir, design: arr.Design, t: Any) -> Any:
    """Before the verification and the gate-level simulations: the exact (and the evolved) core mapped
    and timed, the clock period checked against or derived from its minimum period, and the exact
    multiplier alone mapped, timed and simulated with its cells' delays, for the simulation period."""
    import numpy as np

    from ppa import activity, sta, yosys
    from ppa import array as parr
    from ppa import characterise as ch
    from ppa import clock as pclock
    from rtl_gen.multiplier import Multiplier, design_name, to_verilog
    from verify.multiplier import Shape

    g = design.geometry
    target = round((cfg.clock_period or PROVISIONAL_PERIOD_NS) * 1000)
    exact = design if design.mult.exact else arr.generate(g, arr.exact_multiplier(g.wa, g.wb, g.signed))
    exact_min = parr.min_period(run, exact, t, target_ps=target, tag="exact")
    clock, clock_source = pclock.clock_period(cfg.clock_period, exact_min,
                                              f"the exact {design.top} core on {t.name}")
    slower = exact_min
    if clock_source == "derived" and not design.mult.exact:
        slower = max(slower, parr.min_period(run, design, t, target_ps=target, tag=design.mult.label))
        clock = pclock.derive(slower)
    if cfg.sim_period is not None and cfg.sim_period < clock:
        raise must("--sim-period", f"at least the clock period ({clock:g} ns)", cfg.sim_period)
    settle = mult_delay = None
    if cfg.sim_period is None:
        name = design_name(g.wa, g.wb, g.signed)
        rtl = run.path / f"probe_{name}.v"
        rtl.write_text(to_verilog(Multiplier(g.wa, g.wb, signed_=g.signed), name), encoding="utf-8")
        m = yosys.map_to_cells(run, [rtl], name, t, run.path / f"probe_{name}_{t.name}.v", step="map_probe_mult")
        mult_delay = sta.analyse(run, m.verilog, name, t, clock_period_ns=clock, step="sta_probe_mult").delay_ns
        shape = Shape(g.wa, g.wb, g.signed)
        a, b = activity.operand_stream(g.wa, g.wb, PROBE_VECTORS,
                                       np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x5E77])))
        settle = ch.settle_probe(run, "probe_mult", m, name, t, shape, a, b, shape.exact_codes(a, b),
                                 clock_period_ns=pclock.derive(mult_delay), seed=cfg.seed)
    sim, sim_source = pclock.array_sim_period(cfg.sim_period, clock, mult_delay, settle)
    return pclock.Periods(clock, clock_source, slower if clock_source == "derived" else exact_min, sim, sim_source,
                          settle)


def _run(cfg: ArrayConfig, run: RunDir, design: arr.Design, gemms: list[Any], pg: Any, t: Any, probs: Any,
         source: str, compare: bool, progress: bool, periods: Any = None) -> dict[str, Any]:
    from tqdm import tqdm

    from ppa import array as parr
    from verify import array as varray

    g, mult = design.geometry, design.mult
    steps = ["verify"] + (["ppa"] if cfg.ppa else []) + (["ppa exact"] if compare else [])
    bar = tqdm(total=len(steps), desc="array", unit="step", disable=not progress, file=sys.stderr)
    times: dict[str, float] = {}
    design.write(run.path / "array.v")

    bar.set_description(f"verify {len(gemms)} GEMMs")
    t0 = time.perf_counter()
    ver = varray.run(run, name="verify", sources=[run.path / "array.v"], top=design.top, geometry=g, lut=mult.lut(),
                     gemms=gemms, seed=cfg.seed)
    times["verify_s"] = time.perf_counter() - t0
    if ver.bench.xml.is_file():
        shutil.copyfile(ver.bench.xml, run.path / "results.xml")
    bar.update()
    report = _report_head(cfg, run, design, ver, source)
    if cfg.ppa and ver.passed:
        bar.set_description(f"synthesise and power ({mult.label})")
        t0 = time.perf_counter()
        ppa = parr.characterise(run, design, t, clock_period_ns=periods.clock_period_ns, power_gemm=pg, probs=probs,
                                seed=cfg.seed, tag=mult.label, sim_period_ns=periods.sim_period_ns)
        times["ppa_s"] = time.perf_counter() - t0
        bar.update()
        report.update(_flat(ppa))
        report["ppa"] = ppa
        report["clock"] = periods.as_report()
        if compare:
            bar.set_description("synthesise and power (exact)")
            t0 = time.perf_counter()
            exact = arr.generate(g, arr.exact_multiplier(g.wa, g.wb, g.signed),
                                 None if cfg.prefix is None else f"{cfg.prefix}_exact")
            exact.write(run.path / "array_exact.v")
            ex = parr.characterise(run, exact, t, clock_period_ns=periods.clock_period_ns, power_gemm=pg,
                                   probs=probs, seed=cfg.seed, tag="exact", sim_period_ns=periods.sim_period_ns)
            times["ppa_exact_s"] = time.perf_counter() - t0
            bar.update()
            report["exact"] = ex
            report["savings"] = savings(ppa, ex, mult)
    bar.close()
    report["runtime"] = times | {"total_s": sum(times.values())}
    run.write_json("report.json", report)
    run.write_text("report.md", markdown(report))
    if not ver.passed:
        first = ver.bench.messages[0] if ver.bench.messages else f"see {ver.bench.log}"
        raise VerificationError(f"array verification failed: {first} ({run.see('report.md')})")
    return report


def _report_head(cfg: ArrayConfig, run: RunDir, design: arr.Design, ver: Any, source: str) -> dict[str, Any]:
    g, mult = design.geometry, design.mult
    rows = [r.as_report() for r in ver.gemms]
    mrep = mult.report_dict()
    return {
        "design": design.top, "run_dir": str(run.final), "rows": g.rows, "cols": g.cols, "pods": g.pods,
        "dataflow": g.dataflow, "wa": g.wa, "wb": g.wb, "signed": g.signed, "acc_bits": g.acc_bits,
        "mult": {"label": mult.label, "module": mult.module, "exact": mult.exact,
                 "run_dir": None if mult.exact else str(mult.run_dir),
                 **{k: mrep[k] for k in ("eps", "wce", "area_ratio", "power_ratio", "delay_ratio") if k in mrep}},
        "buffers": {"m_max": g.m_max, "k_max": g.k_max, "n_max": g.n_max, "bits": g.buffer_bits},
        "operands": source,
        "verification": {
            "passed": ver.passed, "tests": ver.bench.tests, "failures": ver.bench.failures,
            "messages": list(ver.bench.messages), "gemms": rows,
            "gemms_passed": sum(1 for r in rows if r["passed"]),
            "cycles_match": bool(rows) and all(r["cycles_match"] for r in rows),
            "seed": cfg.seed,
        },
    }


def _flat(ppa: dict[str, Any]) -> dict[str, Any]:
    keys = ("area", "cells", "delay_ns", "min_period_ns", "power_w", "power_dynamic_w", "power_leakage_w",
            "power_clock_w", "energy_per_mac_pj", "tech", "clock_period_ns")
    out = {k: ppa[k] for k in keys}
    out["utilization"] = ppa["power_gemm"]["utilization"]
    out["mult_area_share"] = ppa["pe"]["mult_area_share"]
    out["mult_power_share"] = ppa["pe"]["mult_power_share"]
    return out


def savings(ppa: dict[str, Any], exact: dict[str, Any], mult: arr.MultSpec) -> dict[str, Any]:
    """Ratios approximate / exact at every level, next to the multiplier's own (its run's report)."""
    mrep = mult.report_dict()

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    return {
        "area_ratio": ratio(ppa["area"], exact["area"]),
        "power_ratio": ratio(ppa["power_w"], exact["power_w"]),
        "energy_per_mac_ratio": ratio(ppa["energy_per_mac_pj"], exact["energy_per_mac_pj"]),
        "pe_area_ratio": ratio(ppa["pe"]["area"], exact["pe"]["area"]),
        "pe_power_ratio": ratio(ppa["pe"]["power_w"], exact["pe"]["power_w"]),
        "mult_area_ratio_in_array": ratio(ppa["pe"]["mult_area"], exact["pe"]["mult_area"]),
        "mult_power_ratio_in_array": ratio(ppa["pe"]["mult_power_w"], exact["pe"]["mult_power_w"]),
        "min_period_ratio": ratio(ppa["min_period_ns"], exact["min_period_ns"]),
        "multiplier_level": {"area_ratio": mrep.get("area_ratio"), "power_ratio": mrep.get("power_ratio"),
                             "source": str(mult.run_dir / "report.json") if mult.run_dir else None},
    }


def _yes(v: bool) -> str:
    return "yes" if v else "no"


def markdown(r: dict[str, Any]) -> str:
    v = r["verification"]
    mult = r["mult"]
    lines = [f"# {r['design']}: {r['rows']}x{r['cols']} {r['dataflow']} array x {r['pods']} pod(s), "
             f"{r['wa']}x{r['wb']} {'signed' if r['signed'] else 'unsigned'}, multiplier {mult['label']}", "",
             f"Multiplier: {'exact (Amaranth)' if mult['exact'] else mult['run_dir']}"
             + (f", EPS {mult['eps']:g}, WCE {mult['wce']}" if "eps" in mult else "") + ".",
             f"Accumulator {r['acc_bits']} bits; buffers sized for M<={r['buffers']['m_max']}, "
             f"K<={r['buffers']['k_max']}, N<={r['buffers']['n_max']} "
             f"({', '.join(f'{k.upper()} {b:,} bits' for k, b in r['buffers']['bits'].items())}).", "",
             "## Verification", "",
             f"Every GEMM ran on Icarus through the host interface; results compared with a numpy reference that "
             f"looks up every product in the multiplier's table, cycles from start to done compared with "
             f"`rtl_gen.rtl_cycles` (seed {v['seed']}). **{'PASSED' if v['passed'] else 'FAILED'}**.", "",
             *metrics.table(v["gemms"], [
                 ("GEMM", lambda g: g["name"]), ("MxKxN", lambda g: g["shape"]), ("split", lambda g: g["split"]),
                 "cycles", "rtl_model_cycles", ("match", lambda g: _yes(g["cycles_match"])), "mismatches",
                 "utilization"])]
    for msg in v["messages"]:
        lines += ["", f"- {msg}"]
    if "ppa" in r:
        lines += ["", *_ppa_table(r)]
    if "runtime" in r:
        rt = r["runtime"]
        lines += ["", "Runtime: " + ", ".join(f"{k[:-2].replace('_', ' ')} {s:.1f} s" for k, s in rt.items()), ""]
    return "\n".join(lines) + "\n"


def _ppa_table(r: dict[str, Any]) -> list[str]:
    p = r["ppa"]
    ex = r.get("exact")
    pg = p["power_gemm"]
    cols = ["metric", r["mult"]["label"]] + (["exact", metrics.get("array_ratio").header] if ex else [])
    ck = r.get("clock")
    out = [f"## Area, delay, power ({p['tech']}, {p['clock_period_ns']:g} ns clock)", "",
           *([f"Clock period {ck['clock_period_how']}; gate-level simulation at {ck['sim_period_ns']:g} ns: "
              f"{ck['sim_period_how']}.", ""] if ck else []),
           f"The core (controller, sequencers, feeders, PEs) synthesised by Yosys, timed and powered by OpenSTA; "
           f"power from the switching activity of a gate-level timing simulation of GEMM {pg['shape']} "
           f"({pg['cycles']:,} cycles, equal to the rtl model: {_yes(pg['cycles'] == pg['rtl_model_cycles'])}, "
           f"utilisation {pg['utilization']:.3f}) on operands: {r['operands']}. Buffers are memories, not "
           "synthesised (capacity above).", "",
           "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]

    def row(label: str, name: str, get: Any) -> None:
        """``label``: the figure ``get`` returns, a value of metric ``name`` (its unit and format)."""
        m = metrics.get(name)
        a = get(p)
        cells = [label, m.fmt_unit(a)]
        if ex:
            b = get(ex)
            cells += [m.fmt_unit(b), metrics.get("array_ratio").fmt(a / b if b else None)]
        out.append("| " + " | ".join(cells) + " |")

    row("area (core)", "area", lambda x: x["area"])
    for blk in ("mult", "pe", "pod", "control"):
        row(f"  area: {blk}", "area_blocks", lambda x, b=blk: x["area_blocks"][b])
    row("power (core)", "power_w", lambda x: x["power_w"])
    for blk in ("mult", "pe", "pod", "control"):
        row(f"  power: {blk}", "power_blocks", lambda x, b=blk: x["power_blocks"][b])
    row("  clock pins", "power_clock_w", lambda x: x["power_clock_w"])
    row("energy per MAC", "energy_per_mac_pj", lambda x: x["energy_per_mac_pj"])
    row("critical path", "delay_ns", lambda x: x["delay_ns"])
    row("min clock period", "min_period_ns", lambda x: x["min_period_ns"])
    row("PE area", "area", lambda x: x["pe"]["area"])
    row("PE multiplier area", "mult_area", lambda x: x["pe"]["mult_area"])
    row("PE power (mean)", "power_w", lambda x: x["pe"]["power_w"])
    row("PE multiplier power", "mult_power_w", lambda x: x["pe"]["mult_power_w"])
    row("PE min clock period", "min_period_ns", lambda x: x["pe"]["min_period_ns"])
    out += ["", f"The multiplier takes {p['pe']['mult_area_share']:.1%} of the PE's area and "
                f"{p['pe']['mult_power_share']:.1%} of its power."]
    s = r.get("savings")
    if s:
        ml = s["multiplier_level"]
        levels = [("multiplier alone (its run's report)", ml["area_ratio"], ml["power_ratio"]),
                  ("multiplier inside the array", s["mult_area_ratio_in_array"], s["mult_power_ratio_in_array"]),
                  ("PE", s["pe_area_ratio"], s["pe_power_ratio"]), ("array core", s["area_ratio"], s["power_ratio"])]
        out += ["", "### Savings of the evolved multiplier (approximate / exact)", "",
                *metrics.table([{"level": lv, "area_ratio": a, "power_ratio": pw} for lv, a, pw in levels],
                               [("level", lambda x: x["level"]), "area_ratio", "power_ratio"])]
    return out
