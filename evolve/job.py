"""The ``evolve`` job: exact RTL -> gate seed -> evolution -> export -> verification -> PPA -> reports.

Steps, each with a numbered log in ``runs/<design>/<tag>/logs``:

1. RTL of the exact multiplier (Amaranth) and its synthesis to generic gates (Yosys): the seed.
2. Formal equivalence of the RTL and the seed.
3. Technology preflight, before the search, so that a technology problem costs seconds and not the
   budget: the exact multiplier synthesised straight from its RTL onto the technology (the reference of
   every ratio), its STA delay, the clock period (the user's, checked against that delay, or derived
   from it, :mod:`ppa.clock`), the period of the timing simulation, and the exact design's delay and
   power, kept for the report.
4. Evolution (Cartesian GP, :mod:`evolve.engine`) under the hard WCE limit, minimising area.
5. Export of the best circuit: ``approx.v`` (generic gates), ``approx_<tech>.v`` (cells), ``lut.npy``/``lut.csv``.
6. Verification by simulation of the shipped Verilog (cocotb + Icarus): exact RTL, seed, exact mapped,
   evolved and evolved mapped, each against its expected table; formal equivalence of the evolved
   netlist and its mapped cells.
7. Delay and power (OpenSTA) of the exact and the evolved mapped netlists, with switching activity
   measured from a gate-level simulation under the operand distribution.
8. ``report.json``, ``report.md``, ``evolution.csv``, ``evolution.png``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core import config as cfgmod
from core import error_metrics, golden, multrun, stage, tools
from core.config import check_range, check_tag, check_width, option
from core.errors import ConfigError, SettleError, VerificationError, must
from core.run import RunDir, runs_root
from evolve import COSTS, app, cellnet, cgp, descent, engine, kernels, seeds
from evolve.evaluator import EXHAUSTIVE_MAX_BITS, Evaluator, search_vectors
from evolve.netlist import FUNCS, Netlist
from ppa import activity, characterise, sta, yosys
from ppa import clock as pclock
from rtl_gen.multiplier import Multiplier, design_name, to_verilog
from tech import cells
from verify import formal
from verify import multiplier as vecs
from verify import wce as prover
from verify.multiplier import Shape

SEED_SCAN_S = 1800.0  # seconds the exhaustive proof that the exact seed computes a*b may take
LUT_MAX_BITS = 16  # a full product table up to 16 input bits; wider runs ship the proven netlist and metrics
# The application's error limits (fractions of N; MSE_LIMIT of N^2), checked alike.
APP_LIMITS = ("mae_limit", "bias_limit", "mse_limit")
# Settings that define the search: a checkpoint only resumes a run with the same values.
FINGERPRINT = ("design", "eps", "eps_start", "eps_tau", "tech", "cost", "seed", "islands", "offspring", "epoch",
               "migrate", "spare", "samples", "allow_slower", "descent", "uphill", "seed_netlist_sha256")
RESUMABLE = ("budget", "generations", "jobs", "checkpoint_every", "proof_timeout")
# --uphill by objective, in cheapest gates (under power: half toggles of the cheapest node). An area cost
# has plateaus (rewirings that keep the same gates cost the same), along which the search drifts; under
# power every rewiring changes the toggles downstream, so the search needs a wider threshold to drift.
# Measured with the zero-delay cost: mul8s EPS 0.005, LeNet-5 operands, 90 s, seeds 1-3, OpenSTA power ratio
# 0.769/0.827/0.825 at 1 against 0.710/0.695/0.765 at 16; with the glitch term (--glitch 0.25), seeds 1-2,
# --seed-arch auto: 0.655/0.664 at 4 against 0.669/0.673 at 16 (README, "Power and the application's operands").
UPHILL = {"area": 1.0, "transistors": 1.0, "power": 4.0}


@dataclass(frozen=True)
class EvolveConfig:
    """Settings of one evolution run."""

    eps: float = option(0.005, help="WCE limit as a fraction of N (N = 2^(wa+wb-2) signed, 2^(wa+wb) unsigned)")
    bits: int = option(8, help="operand width of a (and of b unless --bits-b is given)")
    bits_b: int | None = option(None, help="operand width of b (default: --bits)")
    signed: bool = option(True, help="two's-complement operands; --no-signed for unsigned")
    seed: int = option(1, help="random seed: a run is a deterministic function of it")
    budget: float = option(600.0, unit="s", help="wall-clock time for evolution; 0 for none (then set --generations)")
    generations: int | None = option(None, help="stop after this many generations")
    tech: str = option("osu018", help="technology: built-in name, Liberty file, directory or TOML description")
    cost: str = option("area", choices=COSTS,
                       help="objective: cell area of the active gates, CircuitsDNA transistor counts, or power: "
                            "switching energy on the power stream (--operands, --power-vectors) from the Liberty")
    function_set: str = option("gates", choices=("gates", "cells"),
                               help="what a node is: a generic two-input gate (costed as its smallest cell, "
                                    "mapped by ABC after the search), or one of the technology's own cells of up "
                                    "to three inputs (costed by its Liberty area; approx_<tech>.v instantiates "
                                    "the evolved cells as they are)")
    eps_start: float | None = option(None, help="start of a WCE schedule decaying exponentially to EPS")
    eps_tau: float = option(20000.0, unit="generations", help="time constant of the WCE schedule")
    allow_slower: bool = option(False, help="let the result be deeper or slower than the exact multiplier")
    timing: str = option("depth", choices=("depth", "sta"),
                         help="what 'not slower than the exact multiplier' means: logic depth of the gates "
                              "(guaranteed by the search), or also OpenSTA delay after mapping (an error if no "
                              "mapping meets it)")
    descent: bool = option(True, help="start the GP from a steepest-descent simplification of the seed")
    resynthesis: bool = option(True, help="with --function-set cells (up to 16 input bits): map the descended "
                               "start and, at every migration, the best parent onto the cell set again with ABC, "
                               "keeping what is cheaper (the same function)")
    uphill: float | None = option(None, unit="cheapest gates",
                                  help="threshold accepting: a child may cost this much more than its parent and "
                                       "still replace it (0: strict (1+lambda)); the best circuit is kept apart "
                                       f"(default: {UPHILL['area']:g} under area and transistors, "
                                       f"{UPHILL['power']:g} under power, whose cost has no plateaus)")
    offspring: int = option(4, help="children per generation (the lambda of the (1+lambda) ES)")
    islands: int = option(2, help="independent (1+lambda) populations; the best migrates between them")
    jobs: int = option(2, help="processes evaluating islands in parallel")
    epoch: int = option(1000, unit="generations", help="generations between migration, progress and checkpoints")
    migrate: int = option(10, unit="epochs", help="epochs between migrations of the best circuit")
    spare: float = option(0.1, help="inactive gates added to the seed, as a fraction of its gates")
    samples: int = option(65536, help="random input vectors the search evaluates when wa+wb > 16 (with the corner "
                          "cases and every counterexample; the WCE limit is proven on all inputs)")
    proof_timeout: float = option(60.0, unit="s", help="time one WCE proof may take when wa+wb > 16 (exhaustive "
                                  "simulation where it fits, else SAT); a candidate whose proof overruns it is "
                                  "rejected, and a result whose WCE cannot be proven in it is an error")
    seed_netlist: Path | None = option(None, help="start from this gate-level Verilog instead of the "
                                       "synthesised exact multiplier (ports a, b, y)")
    seed_arch: str = option("array", choices=seeds.SEED_ARCHS,
                            help="architecture of the exact seed: array (Yosys' a*b), booth (radix 4), wallace, "
                                 "dadda, or auto (the one of least mapped area on the technology)")
    operands: str = option("uniform", help="operand distribution of the application: 'uniform', a histogram CSV "
                           "(value,count or value,count_a,count_b) or a flow.py dnn run directory (its "
                           "operands/all.csv); the power stream is drawn from it, the *_app errors weighted by it")
    power_vectors: int = option(2000, help="operand pairs simulated to measure switching activity (and, with --cost "
                                "power, the stream the search measures its switching energy on)")
    mae_limit: float | None = option(None, help="largest MAE under the operand distribution (--operands), as a "
                                     "fraction of N like EPS: a constraint of the search (up to 16 input bits)")
    bias_limit: float | None = option(None, help="largest |mean error| under the operand distribution, as a "
                                      "fraction of N: a constraint of the search (up to 16 input bits)")
    mse_limit: float | None = option(None, help="largest MSE under the operand distribution, as a fraction of N^2 "
                                     "(the limit is MSE_LIMIT x N^2): a constraint of the search (up to 16 input "
                                     "bits)")
    glitch: float = option(app.GLITCH, before=0.0,  # runs made before it existed had no glitch term
                           help="weight of the unit-delay glitch energy in the power cost (the search's "
                           "objective under --cost power, and every report's power_cost): 0 counts zero-delay "
                           "toggles alone, 1 every output transition while the inputs settle, each node one unit "
                           "of delay")
    calibrate: int = option(0, help="circuits of the search's trajectory also shipped (gates mapped by ABC, cells "
                            "as they are) and powered by OpenSTA, to report the correlation of the power cost with "
                            "OpenSTA's power (report.json power_cost_correlation)")
    clock_period: float | None = option(None, unit="ns", help=pclock.CLOCK_HELP)
    sim_period: float | None = option(None, unit="ns", help=pclock.SIM_HELP)
    checkpoint_every: float = option(60.0, unit="s", help="seconds between checkpoints")
    tag: str | None = option(None, help="run name under runs/<design>/ (default: eps<EPS>-seed<SEED>)")
    run_dir: Path | None = option(None, help="run directory (default: runs/<design>/<tag>)")
    overwrite: bool = option(False, help="replace an existing run directory")
    resume: bool = option(False, help="continue the run in the run directory from its checkpoint")

    @property
    def uphill_gates(self) -> float:
        """``--uphill``, or the objective's default (:data:`UPHILL`)."""
        return UPHILL[self.cost] if self.uphill is None else self.uphill

    def __post_init__(self) -> None:
        check_range("EPS", self.eps, 0.0, 1.0, lo_open=True, hi_open=True)
        check_width("BITS", self.bits)
        check_width("BITS_B", self.bits_b)
        if self.budget < 0:
            raise must("BUDGET", ">= 0 seconds", self.budget)
        if self.budget == 0 and self.generations is None:
            raise ConfigError("BUDGET is 0 (no time limit), so GENERATIONS must be given")
        if self.generations is not None and self.generations < 1:
            raise must("GENERATIONS", ">= 1", self.generations)
        if self.eps_start is not None:
            check_range("EPS_START", self.eps_start, self.eps, 1.0, hi_open=True)
        if self.eps_tau <= 0:
            raise must("EPS_TAU", "> 0 generations", self.eps_tau)
        for name, lo in (("offspring", 1), ("islands", 1), ("jobs", 1), ("epoch", 1), ("power_vectors", 10),
                         ("samples", 1024)):
            if getattr(self, name) < lo:
                raise must(name.upper(), f">= {lo}", getattr(self, name))
        if self.uphill is not None and self.uphill < 0:
            raise must("UPHILL", ">= 0 gates", self.uphill)
        if self.migrate < 0:
            raise must("MIGRATE", ">= 0 epochs (0: never)", self.migrate)
        check_range("SPARE", self.spare, 0.0, 10.0)
        pclock.check_periods(self.clock_period, self.sim_period)
        if not self.proof_timeout > 0:
            raise must("PROOF_TIMEOUT", "> 0 s", self.proof_timeout)
        if self.checkpoint_every <= 0:
            raise must("CHECKPOINT_EVERY", "> 0 s", self.checkpoint_every)
        check_tag(self.tag)
        if self.function_set == "cells" and self.cost == "transistors":
            raise must("COST", "area or power with --function-set cells (cells have no transistor counts)",
                       self.cost, ("area", "power"))
        if self.seed_netlist is not None and self.seed_arch != "array":
            raise ConfigError("SEED_ARCH and SEED_NETLIST cannot both be set")
        if self.overwrite and self.resume:
            raise ConfigError("OVERWRITE and RESUME cannot both be set")
        for name in APP_LIMITS:
            value = getattr(self, name)
            if value is not None:
                check_range(name.upper(), value, 0.0, 1.0, lo_open=True, hi_open=True)
                if self.wa + self.wb > EXHAUSTIVE_MAX_BITS:
                    raise must(name.upper(), f"left out above {EXHAUSTIVE_MAX_BITS} input bits (the weighted errors "
                               "are exact over all pairs)", value)
        check_range("GLITCH", self.glitch, 0.0, 4.0)
        if not 0 <= self.calibrate <= 64:
            raise must("CALIBRATE", "in 0..64 circuits", self.calibrate)

    @property
    def wa(self) -> int:
        return self.bits

    @property
    def wb(self) -> int:
        return self.bits if self.bits_b is None else self.bits_b

    @property
    def design(self) -> str:
        return design_name(self.wa, self.wb, self.signed)

    @property
    def default_tag(self) -> str:
        return self.tag or f"eps{self.eps:g}-seed{self.seed}"

    def directory(self) -> Path:
        return self.run_dir or runs_root() / self.design / self.default_tag


@dataclass
class Preflight:
    """What the technology preflight found on the exact design, reused after the search."""

    exact_map: yosys.Mapped
    exact_delay_ns: float
    periods: pclock.Periods
    exact_ppa: dict[str, float]


@dataclass
class Context:
    """What the steps share."""

    cfg: EvolveConfig
    run: RunDir
    tech: Any
    weights: np.ndarray
    limit: int
    norm: int
    verbose: bool = True
    reference: Netlist | None = None  # the exact seed, for SAT miters (None for a user's seed netlist)
    preflight: Preflight | None = None
    cells: cellnet.Tables | None = None  # the cell function set (--function-set cells)
    resynthesis: list[dict[str, Any]] = field(default_factory=list)  # the GP's ABC remappings, this session
    seed_top: str = ""  # the seed's top module
    probs: Any = None  # the operand distribution (None: uniform)
    objective: app.ObjectiveSpec | None = None  # --cost power, --mae-limit, --bias-limit, --mse-limit
    cell_seed: cellnet.CellNetlist | None = None  # the exact seed mapped onto the cell set (--function-set cells)
    trajectory: list[tuple[float, Any]] = field(default_factory=list)  # bests seen, for --calibrate

    @property
    def periods(self) -> pclock.Periods:
        if self.preflight is None:
            raise RuntimeError("the technology preflight has not run")
        return self.preflight.periods

    def say(self, text: str) -> None:
        """One line of progress on stderr for the steps around the evolution (its own bar says the rest)."""
        if self.verbose:
            print(f"[axflow] {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ the stage
@dataclass
class Plan:
    """What is read before the run directory exists: the technology and the operand distribution."""

    tech: Any
    probs: Any


class EvolveStage(stage.Stage):
    """Exact RTL -> seed -> evolution under the WCE limit -> export -> verification -> PPA -> reports.

    Resumable from its checkpoint: every setting but the time and parallelism ones (``RESUMABLE``) is in
    the fingerprint, and the checkpoint itself carries the search's (``FINGERPRINT``)."""

    name = "evolve"
    Config = EvolveConfig
    outputs = ("config.json", "report.json", "report.md", "approx.v", "approx_<tech>.v", "approx.json",
               "approx.blif", "lut.npy", "lut.csv", "evolution.csv", "evolution.png", "checkpoint.npz")
    resumable = True
    tools = (tools.YOSYS, tools.IVERILOG, tools.VVP, tools.STA)
    packages = ("amaranth", "cocotb", "deap", "numba", "numpy")

    def prepare(self, cfg: EvolveConfig, progress: bool) -> Plan:
        import tech as techmod

        t = techmod.load(cfg.tech)
        probs = activity.read_operands(cfg.operands, cfg.wa, cfg.wb, cfg.signed)
        if cfg.seed_netlist is not None:
            _check_seed_netlist(cfg.seed_netlist)
        return Plan(t, probs)

    def default_dir(self, cfg: EvolveConfig, plan: Any) -> Path:
        return Path(cfg.design) / cfg.default_tag

    def _context(self, ctx: stage.Context) -> Context:
        cfg, t = ctx.cfg, ctx.plan.tech
        cell_set = cellnet.tables(cells.load(t)) if cfg.function_set == "cells" else None
        weights = (cell_set.area.copy() if cell_set is not None else
                   np.array([t.transistors(f) if cfg.cost == "transistors" else t.gate_area(f) for f in FUNCS],
                            dtype=float))
        jctx = Context(cfg, ctx.run, t, weights, golden.wce_limit(cfg.eps, cfg.wa, cfg.wb, cfg.signed),
                       golden.norm(cfg.wa, cfg.wb, cfg.signed), verbose=ctx.progress, cells=cell_set)
        jctx.probs = ctx.plan.probs
        jctx.objective = _objective(jctx)
        return jctx

    def check_resume(self, ctx: stage.Context) -> None:
        # a refused resume writes nothing: its checkpoint, and the seed architectures' power record it
        # will reuse, are read before any file is written
        engine.load_checkpoint(ctx.run.path / "checkpoint.npz", _fingerprint(self._context(ctx)))
        if _seed_by_power(ctx.cfg) and (ctx.run.path / seeds.INFO).is_file():
            seeds.stored_powers(ctx.run.path / seeds.INFO)

    def run(self, ctx: stage.Context) -> dict[str, Any]:
        cfg, run_dir = ctx.cfg, ctx.run
        jctx = self._context(ctx)
        started = time.time()
        _write_rtl(jctx)
        if _seed_by_power(cfg):  # the architectures are powered at the preflight's periods
            _technology_preflight(jctx, ctx.plan.probs)
            seed_net = _seed(jctx, ctx.plan.probs)
        else:  # a bad seed netlist is refused before the preflight's work
            seed_net = _seed(jctx, ctx.plan.probs)
            _technology_preflight(jctx, ctx.plan.probs)
        outcome = _evolve(jctx, seed_net, ctx.progress)
        report = _finish(jctx, seed_net, outcome, ctx.plan.probs, started)
        ctx.reported = True  # _finish writes report.json before the files it names
        # a run that fails its checks is not a success: an --overwrite then keeps the earlier run
        see = run_dir.see("report.md")
        if not report["verification"]["passed"]:
            raise VerificationError(f"verification failed: {report['verification']['failed'][0]} ({see})")
        if cfg.timing == "sta" and not report["timing"]["met"]:
            raise VerificationError(f"the evolved multiplier is slower than the exact one "
                                    f"({report['timing']['approx_delay_ns']:.4g} ns > "
                                    f"{report['timing']['exact_delay_ns']:.4g} ns) even when mapped for speed; "
                                    f"use --allow-slower to accept it ({see})")
        return report

    def summary(self, cfg: EvolveConfig, report: dict[str, Any]) -> str:
        v = report["verification"]
        return (f"{report['design']} EPS={report['eps']:g}: WCE {report['wce']} (limit {report['wce_limit']}), "
                f"area ratio {report['area_ratio']:.4f}, power ratio {report['power_ratio']:.4f}, "
                f"delay ratio {report['delay_ratio']:.4f}; verification {'passed' if v['passed'] else 'FAILED'}; "
                f"{cfg.directory() / 'report.md'}")

    def exit_code(self, report: dict[str, Any]) -> int:
        return 130 if report["interrupted"] else 0


EvolveStage.fingerprint = tuple(f.name for f in cfgmod.fields(EvolveConfig)
                                if f.name not in RESUMABLE + stage.RUN_OPTIONS)
STAGE = EvolveStage()


def run(cfg: EvolveConfig, *, given: Any = None, progress: bool = True) -> dict[str, Any]:
    """The evolve stage on ``cfg``; returns the report (also written to report.json).

    ``given``: the settings the caller gave explicitly (``--resume`` takes the others from the run;
    None: all of them)."""
    return STAGE.execute(cfg, given=given, progress=progress)


SEED_NETLIST_MAX_BYTES = 64 << 20


def _check_seed_netlist(path: Path) -> None:
    """A seed netlist is a Verilog text file: one line for a missing, binary or oversized one."""
    if not path.is_file():
        raise ConfigError(f"seed netlist {path} does not exist")
    size = path.stat().st_size
    if size > SEED_NETLIST_MAX_BYTES:
        raise must("SEED_NETLIST", f"a Verilog file of at most {SEED_NETLIST_MAX_BYTES >> 20} MB",
                   f"{path} ({size / 2**20:.1f} MB)")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if b"\0" in head:
        raise must("SEED_NETLIST", "a Verilog text file", f"{path} (binary)")


# ------------------------------------------------------------------------------------------ steps
def _write_rtl(ctx: Context) -> Path:
    """The exact multiplier's plain ``a*b`` RTL: the flow's exact reference."""
    cfg = ctx.cfg
    rtl = ctx.run.path / f"{cfg.design}.v"
    rtl.write_text(to_verilog(Multiplier(cfg.wa, cfg.wb, signed_=cfg.signed), cfg.design), encoding="utf-8")
    return rtl


def _seed_by_power(cfg: EvolveConfig) -> bool:
    """Whether ``--seed-arch auto`` picks the seed by measured power (``--cost power``)."""
    return cfg.seed_netlist is None and cfg.seed_arch == "auto" and cfg.cost == "power"


def _seed(ctx: Context, probs: Any) -> Netlist:
    """The exact seed (after the preflight: under ``--cost power --seed-arch auto`` each architecture is
    powered at the run's periods on its power stream, as the result will be)."""
    cfg, run = ctx.cfg, ctx.run
    rtl = run.path / f"{cfg.design}.v"
    seed_json, seed_v = run.path / "seed.json", run.path / "seed.v"
    if cfg.seed_netlist is None:
        power = _seed_power(ctx, probs) if _seed_by_power(cfg) else None
        stored = None
        if power is not None and cfg.resume and (run.path / seeds.INFO).is_file():  # powered before: reuse
            stored = seeds.stored_powers(run.path / seeds.INFO)
        seeds.synthesise_seed(run, cfg.seed_arch, cfg.design, cfg.wa, cfg.wb, cfg.signed, ctx.tech, rtl, ctx.say,
                              power=power, stored_powers=stored)
        top, source = cfg.design, "the synthesised seed"
    else:
        top = yosys.read_gates(run, cfg.seed_netlist, seed_json, seed_v)
        source = f"seed netlist {cfg.seed_netlist}"
    ctx.seed_top = top
    data = json.loads(seed_json.read_text())
    return Netlist.from_yosys_json(data, top, cfg.wa, cfg.wb, cfg.signed,
                                   source=source)


def _seed_power(ctx: Context, probs: Any) -> Callable[[str, yosys.Mapped], float | None]:
    """How :func:`seeds.synthesise_seed` powers an architecture's mapped netlist: the timing simulation and
    OpenSTA power of the result's own measurement (the preflight's periods, the run's power stream); the
    array architecture is the exact reference, already powered. None for one that does not settle."""
    cfg, pre = ctx.cfg, ctx.preflight
    assert pre is not None
    shape = Shape(cfg.wa, cfg.wb, cfg.signed)
    a, b = _power_stream(ctx, probs)

    def power(arch: str, mapped: yosys.Mapped) -> float | None:
        if arch == "array":
            return float(pre.exact_ppa["power_w"])
        try:
            return float(characterise.delay_and_power(
                ctx.run, f"seed_{arch}", mapped, cfg.design, ctx.tech, shape, a, b, shape.exact_codes(a, b),
                clock_period_ns=pre.periods.clock_period_ns, sim_period_ns=pre.periods.sim_period_ns,
                seed=cfg.seed)["power_w"])
        except SettleError:  # slower than the run's simulation period: not a candidate (any other failure,
            return None  # OpenSTA reporting no power say, stops the run)
    return power


def _cell_seed(ctx: Context) -> cellnet.CellNetlist:
    """The seed mapped by ABC onto the cell function set's cells, read into nodes."""
    assert ctx.cells is not None
    return seeds.cell_seed(ctx.run, ctx.run.path / "seed.v", ctx.seed_top, ctx.tech, ctx.cells, ctx.cfg.wa,
                           ctx.cfg.wb, ctx.cfg.signed, ctx.say)


def _technology_preflight(ctx: Context, probs: Any) -> None:
    """Every step that can fail on a technology, on the exact design, before the search: mapping, STA,
    the clock period (a user's one shorter than the exact STA delay is a ConfigError), the settling
    probe that sets the timing simulation's period, and the exact design's timing simulation and power
    (kept in ``ctx.preflight`` for :func:`_ppa`)."""
    cfg, run, t = ctx.cfg, ctx.run, ctx.tech
    ctx.say(f"technology preflight on {t.name}: mapping, STA, timing simulation and power of the exact {cfg.design}")
    rtl = run.path / f"{cfg.design}.v"
    exact_map = yosys.map_to_cells(run, [rtl], cfg.design, t, run.path / f"exact_{t.name}.v", step="map_exact")
    delay = sta.analyse(run, exact_map.verilog, cfg.design, t, clock_period_ns=cfg.clock_period or 10.0,
                        step="sta_delay_exact").delay_ns
    clock, clock_source = pclock.clock_period(cfg.clock_period, delay, f"the exact {cfg.design} on {t.name}")
    if cfg.sim_period is not None and cfg.sim_period < clock:
        raise must("--sim-period", f"at least the clock period ({clock:g} ns)", cfg.sim_period)
    shape = Shape(cfg.wa, cfg.wb, cfg.signed)
    a, b = _power_stream(ctx, probs)
    settle = None
    if cfg.sim_period is None:
        settle = characterise.settle_probe(run, "exact", exact_map, cfg.design, t, shape, a, b,
                                           shape.exact_codes(a, b), clock_period_ns=clock, seed=cfg.seed)
    sim, sim_source = pclock.sim_period(cfg.sim_period, clock, settle)
    periods = pclock.Periods(clock, clock_source, delay, sim, sim_source, settle)
    ppa = characterise.delay_and_power(run, "exact", exact_map, cfg.design, t, shape, a, b, shape.exact_codes(a, b),
                                       clock_period_ns=clock, sim_period_ns=sim, seed=cfg.seed)
    ctx.preflight = Preflight(exact_map, delay, periods, ppa)
    ctx.say(f"exact {cfg.design} on {t.name}: STA delay {delay:.4g} ns, clock period {clock:g} ns ({clock_source}), "
            f"timing simulation at {sim:g} ns per operand pair")


def _power_stream(ctx: Context, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """The operand pairs of the power simulations (the same for the exact and the evolved design)."""
    cfg = ctx.cfg
    return activity.power_stream(cfg.wa, cfg.wb, cfg.power_vectors, cfg.seed, probs)


def _objective(ctx: Context) -> app.ObjectiveSpec | None:
    """What the search measures beyond the area costs: the switching energy on the power stream
    (``--cost power``: the very stream OpenSTA's power is measured on; the energies of the function set's
    own cells) and the errors under the operand distribution (``--mae-limit``, ``--bias-limit``,
    ``--mse-limit``, absolute here: the fraction times N, N^2 for the MSE)."""
    cfg = ctx.cfg
    if cfg.cost != "power" and all(getattr(cfg, k) is None for k in APP_LIMITS):
        return None
    stream = energy = None
    if cfg.cost == "power":
        a, b = _power_stream(ctx, ctx.probs)
        stream, energy = app.stream_vectors(a, b, cfg.wb), app.node_energy(ctx.tech, ctx.cells)
    return app.ObjectiveSpec(cfg.wa, cfg.wb, cfg.signed, stream=stream, energy=energy, probs=ctx.probs,
                             mae_limit=None if cfg.mae_limit is None else cfg.mae_limit * ctx.norm,
                             bias_limit=None if cfg.bias_limit is None else cfg.bias_limit * ctx.norm,
                             mse_limit=None if cfg.mse_limit is None else cfg.mse_limit * ctx.norm ** 2,
                             glitch=cfg.glitch if cfg.cost == "power" else 0.0)


def _fingerprint(ctx: Context) -> dict[str, Any]:
    cfg = cfgmod.to_dict(ctx.cfg)
    cfg["design"] = ctx.cfg.design
    cfg["seed_netlist_sha256"] = (hashlib.sha256(ctx.cfg.seed_netlist.read_bytes()).hexdigest()
                                  if ctx.cfg.seed_netlist else None)
    found = {k: cfg[k] for k in FINGERPRINT}
    if ctx.cells is not None:  # runs of generic gates keep the fingerprint they had before cells existed
        found["function_set"] = ctx.cells.key
        found["resynthesis"] = ctx.cfg.resynthesis
    if ctx.objective is not None:  # what the search measures itself on (absent from runs without it)
        found |= {k: getattr(ctx.cfg, k) for k in APP_LIMITS} | {"objective": ctx.objective.digest}
    return found


def _evolve(ctx: Context, generic_seed: Netlist, show_progress: bool) -> engine.Outcome:
    cfg = ctx.cfg
    ctx.reference = generic_seed if cfg.seed_netlist is None else None
    seed_net: Any = generic_seed if ctx.cells is None else _cell_seed(ctx)
    ctx.cell_seed = seed_net if ctx.cells is not None else None
    seed_depth = seed_net.depth()
    max_depth = (1 << 30) if cfg.allow_slower else seed_depth
    n_addr = seed_net.n_addr + round(cfg.spare * seed_net.n_gates)
    spec = ctx.objective
    problem = _problem(ctx, n_addr, max_depth)
    ckpt = ctx.run.path / "checkpoint.npz"
    fingerprint = _fingerprint(ctx)
    schedule = engine.Schedule(ctx.norm, cfg.eps, cfg.eps_start, cfg.eps_tau)
    if cfg.resume:
        state = engine.load_checkpoint(ckpt, fingerprint, genome=None if ctx.cells is None else
                                       functools.partial(cellnet.from_arrays, tables=ctx.cells))
        if ctx.cells is not None:  # the genome is the resynthesised cell seed's size
            problem = _problem(ctx, state.islands[0].net.n_addr, max_depth)
        elif state.islands[0].net.n_addr != n_addr:
            raise ConfigError(f"checkpoint {ckpt} belongs to a different seed netlist")
    else:
        # the seed must meet the limit itself: it is where the search starts
        def rebuild(cex: list[int]) -> Evaluator:
            return Evaluator(cfg.wa, cfg.wb, cfg.signed, seed_net.n_addr,
                             vectors=search_vectors(cfg.wa, cfg.wb, cfg.signed, cfg.samples, cfg.seed, cex))

        ev = rebuild([]) if problem.proves else Evaluator(cfg.wa, cfg.wb, cfg.signed, seed_net.n_addr)
        seed_wce, _ = ev.load_parent(seed_net)
        ob = spec.build(ev, seed_net.n_addr, 1) if spec is not None else None
        if ob is not None and spec is not None and spec.app_limits:
            _, _, _, sums = ob.load_parent(seed_net, ctx.weights)
            if not ob.within_app_limits(sums):
                raise ConfigError(f"the seed netlist has a weighted MAE of {sums[0]:.6g}, mean error {sums[1]:.6g} "
                                  f"and MSE {sums[2]:.6g} under --operands, beyond --mae-limit/--bias-limit/"
                                  "--mse-limit: start from an exact or more accurate netlist")
        if problem.proves and cfg.seed_netlist is not None and seed_wce <= ctx.limit:
            # a user's seed: its WCE on all inputs, not only on the vector set
            proof = problem.prove(seed_net, ctx.limit, threads=cfg.jobs)
            if proof.status == "unknown":
                raise ConfigError(f"the WCE of seed netlist {cfg.seed_netlist} cannot be proven within "
                                  f"--proof-timeout {cfg.proof_timeout:g} s ({proof.method}): raise --proof-timeout")
            if proof.counterexample is not None:
                seed_wce = proof.counterexample.error
        if seed_wce > ctx.limit:
            raise ConfigError(f"the seed netlist has a worst-case error of {seed_wce}, above the limit "
                              f"{ctx.limit} = floor(EPS x N): start from an exact or more accurate netlist")
        start, start_wce = seed_net, seed_wce
        found: list[int] = []
        if cfg.descent:
            t0 = time.monotonic()
            ctx.say(f"steepest descent under WCE <= {ctx.limit}"
                    + (" (each step proven on all inputs)" if problem.proves else ""))
            d = descent.descend(seed_net, ev, ctx.weights, ctx.limit, max_depth,
                                prove=(lambda n: problem.prove(n, ctx.limit, threads=cfg.jobs))
                                if problem.proves else None, rebuild=rebuild,
                                deadline=t0 + cfg.budget / 2 if cfg.budget > 0 and problem.proves else None,
                                objective=ob if ob is not None and not problem.proves else None)
            by = cfg.cost
            if ob is not None and spec is not None and spec.power and not problem.proves:
                d, by = _best_descent(ctx, seed_net, ev, ob, d, max_depth)
            start, start_wce, found = d.net, d.wce, d.counterexamples
            rounds: list[dict[str, Any]] = []
            if ctx.cells is not None and cfg.resynthesis and not problem.proves:
                start, start_wce, rounds = _resynthesise(ctx, start, start_wce, max_depth, d.cost)
            ctx.run.write_json("descent.json", {"steps": d.steps, "evaluations": d.evaluations, "cost": d.cost,
                                                "wce": d.wce, "runtime_s": time.monotonic() - t0,
                                                "proofs": d.proofs, "counterexamples": len(found), "by": by,
                                                "resynthesis": rounds})
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x5EED]))
        genome = cgp.with_spares(start, cfg.spare, rng)
        if genome.n_addr != n_addr:
            problem = _problem(ctx, genome.n_addr, max_depth)
        cost = None
        if spec is not None:
            grown = Evaluator(cfg.wa, cfg.wb, cfg.signed, genome.n_addr, vectors=ev.vectors[:1])
            cost = spec.without_limits().build(grown, genome.n_addr, 1).cost_of(genome, ctx.weights)
        state = engine.new_state(genome, cfg.islands, cfg.seed, ctx.weights, start_wce, cost=cost)
        state.add_counterexamples(found)
    bar = _Progress(cfg, ctx.limit, enabled=show_progress)
    try:
        outcome = engine.evolve(
            state, problem, schedule, jobs=cfg.jobs, epoch_generations=cfg.epoch,
            budget=cfg.budget if cfg.budget > 0 else None, generations=cfg.generations, migrate_every=cfg.migrate,
            checkpoint=lambda s: engine.save_checkpoint(ckpt, s, fingerprint), checkpoint_every=cfg.checkpoint_every,
            progress=lambda s, rec: _remember(ctx, s, bar, rec),
            improve=(_resynthesis_hook(ctx, max_depth, ctx.resynthesis)
                     if ctx.cells is not None and cfg.resynthesis and not problem.proves else None))
    finally:
        bar.close()
    return outcome


def _problem(ctx: Context, n_addr: int, max_depth: int) -> engine.Problem:
    cfg, spec = ctx.cfg, ctx.objective
    unit = (0.5 * spec.energy.cheapest() if spec is not None and spec.energy is not None
            else float(ctx.weights.min()))  # the cheapest gate, toggling every other operation under power
    return engine.Problem(cfg.wa, cfg.wb, cfg.signed, n_addr, tuple(ctx.weights), max_depth, cfg.offspring,
                          cgp.DEFAULT_OPS, cfg.samples, cfg.seed, uphill=cfg.uphill_gates * unit,
                          proof_timeout=cfg.proof_timeout, reference=ctx.reference, objective=spec,
                          function_set="gates" if ctx.cells is None else ctx.cells.key)


RESYNTHESIS_ROUNDS = 4


def _resynthesise(ctx: Context, net: cellnet.CellNetlist, wce: int, max_depth: int, cost: float
                  ) -> tuple[cellnet.CellNetlist, int, list[dict[str, Any]]]:
    """Alternate ABC and steepest descent from the descended cell seed (of search cost ``cost``), while that
    saves cost.

    Each round maps the current netlist's generic view onto the set's cells again (ABC restructures it:
    constants propagated through cells that the set cannot fold, logic shared again), which computes
    the same function (its WCE is checked to be the same), then descends from there, by the search's own cost
    and within its application limits. A round that is deeper than ``max_depth`` or saves nothing ends it.
    This only prepares the GP's start; what the GP evolves is shipped as it is."""
    rounds: list[dict[str, Any]] = []
    for _ in range(RESYNTHESIS_ROUNDS):
        cand, ev = _remap(ctx, net, wce)
        depth = cand.depth()
        info: dict[str, Any] = {"mapped_area": cand.weighted_cost(ctx.weights), "depth": depth}
        rounds.append(info)
        if depth > max_depth:
            break
        ob = ctx.objective.build(ev, cand.n_addr, 1) if ctx.objective is not None else None
        d = descent.descend(cand, ev, ctx.weights, ctx.limit, max_depth, objective=ob)
        info.update(area=d.net.weighted_cost(ctx.weights), cost=d.cost, steps=d.steps, wce=d.wce)
        if d.cost >= cost - 1e-9:
            break
        net, wce, cost = d.net, d.wce, d.cost
    ctx.say(f"resynthesis: {len(rounds)} rounds of ABC and descent, start at {ctx.cfg.cost} {cost:g}")
    return net, wce, rounds


def _search_cost(ctx: Context, net: Any) -> float:
    """What the search minimises of ``net``: its switching energy per operation under ``--cost power``, else its
    weighted (area) cost."""
    spec = ctx.objective
    if spec is not None and spec.power:
        assert spec.energy is not None and spec.stream is not None
        return app.power_cost(net, spec.energy, spec.stream, spec.glitch)
    return net.weighted_cost(ctx.weights)


def _remap(ctx: Context, net: Any, wce: int) -> tuple[cellnet.CellNetlist, Evaluator]:
    """``net``'s generic view mapped by ABC onto the cell set again, with an evaluator loaded with it; the same
    function, so the same WCE (``wce``; anything else is an error)."""
    cfg, run = ctx.cfg, ctx.run
    assert ctx.cells is not None
    src = run.write_text("resynth.v", net.compact().to_generic().to_verilog(ctx.seed_top))
    cand = seeds.cell_seed(run, src, ctx.seed_top, ctx.tech, ctx.cells, cfg.wa, cfg.wb, cfg.signed, name="resynth")
    for f in (src, run.path / "resynth_cells.json", run.path / f"resynth_{ctx.tech.name}.v",
              run.path / f"resynth_{ctx.tech.name}.stat.json"):
        f.unlink(missing_ok=True)
    ev = (Evaluator(cfg.wa, cfg.wb, cfg.signed, cand.n_addr) if cfg.wa + cfg.wb <= EXHAUSTIVE_MAX_BITS else
          Evaluator(cfg.wa, cfg.wb, cfg.signed, cand.n_addr, samples=cfg.samples, seed=cfg.seed))
    mapped_wce, _ = ev.load_parent(cand)
    if cfg.wa + cfg.wb <= EXHAUSTIVE_MAX_BITS and mapped_wce != wce:
        raise VerificationError(f"ABC's mapping of a cell netlist has WCE {mapped_wce}, not {wce}")
    return cand, ev


def _resynthesis_hook(ctx: Context, max_depth: int, log: list[dict[str, Any]]) -> Any:
    """The GP's ``improve``: the best island's parent mapped by ABC onto the cell set again; where that is
    cheaper and no deeper it replaces the parent (padded with spares to the genome's size), and the island's
    best if it beats it. Up to 16 input bits only (the same function needs no proof there)."""
    rng = np.random.default_rng(np.random.SeedSequence([ctx.cfg.seed, 0x2E5]))

    def improve(state: engine.State) -> None:
        isl = min(state.islands, key=lambda i: i.fitness)
        if isl.fitness[0] != 0:
            return
        cand, _ = _remap(ctx, isl.net, isl.wce)  # the same function: the same errors, within the same limits
        cost = _search_cost(ctx, cand)
        spare = isl.net.n_gates - cand.n_gates
        entry = {"generation": state.generation, "before": isl.fitness[1], "after": cost, "taken": False}
        log.append(entry)
        if cost >= isl.fitness[1] - 1e-9 or spare < 0 or cand.depth() > max_depth:
            return
        isl.net = cgp.with_spares(cand, 0.0, rng, n_spare=spare)
        isl.fitness = (0.0, cost, isl.fitness[2])
        entry["taken"] = True
        if cost < isl.best_cost and isl.wce <= ctx.limit:
            isl.best, isl.best_cost, isl.best_wce = isl.net.copy(), cost, isl.wce

    return improve


def _best_descent(ctx: Context, seed_net: Netlist, ev: Evaluator, ob: app.Objective, by_power: descent.Descent,
                  max_depth: int) -> tuple[descent.Descent, str]:
    """Under ``--cost power``, the greedy descent by area too: it sometimes ends at a lower switching energy
    than the descent by energy does (measured: EPS 0.005, mul8s, LeNet-5 operands, 8.99 against 9.20 pJ),
    so the GP starts from whichever of the two costs less energy and is within the application limits."""
    by_area = descent.descend(seed_net, ev, ctx.weights, ctx.limit, max_depth)
    wce, _, energy, sums = ob.load_parent(by_area.net, ctx.weights)
    if wce <= ctx.limit and ob.within_app_limits(sums) and energy < by_power.cost:
        return replace(by_area, cost=energy, evaluations=by_area.evaluations + by_power.evaluations), "area"
    return replace(by_power, evaluations=by_area.evaluations + by_power.evaluations), "power"


def _remember(ctx: Context, state: engine.State, bar: _Progress, rec: dict) -> None:
    """Show the epoch's progress and keep its best circuit when its cost is new: the trajectory
    ``--calibrate`` samples."""
    bar.update(state, rec)
    if ctx.cfg.calibrate <= 0:
        return
    isl = min((i for i in state.islands if i.best is not None), key=lambda i: (i.best_cost, i.best_wce))
    if isl.best is not None and all(c != isl.best_cost for c, _ in ctx.trajectory):
        ctx.trajectory.append((isl.best_cost, isl.best.copy()))


class _Progress:
    """A tqdm bar over the budget (or generations): generation, best cost, its WCE, evaluations/s."""

    def __init__(self, cfg: EvolveConfig, limit: int, enabled: bool):
        from tqdm import tqdm

        self.by_time = cfg.generations is None
        total = cfg.budget if self.by_time else cfg.generations
        self.bar = tqdm(total=total, unit="s" if self.by_time else "gen", disable=not enabled or None,
                        dynamic_ncols=True, desc=f"{cfg.design} eps={cfg.eps:g}")
        self.start = time.monotonic()
        self.cost_name = {"area": "area", "transistors": "transistors", "power": "pJ/op"}[cfg.cost]

    def update(self, state: engine.State, rec: dict) -> None:
        done = time.monotonic() - self.start if self.by_time else state.generation
        self.bar.n = min(done, self.bar.total) if self.bar.total else done
        self.bar.set_postfix({"gen": rec["generation"], self.cost_name: f"{rec['best_cost']:.6g}",
                              "wce": rec["best_wce"], "limit": rec["limit"],
                              "evals/s": f"{rec['evals_per_s']:.0f}"}, refresh=True)

    def close(self) -> None:
        self.bar.close()


# ------------------------------------------------------------------------------------------ finish
def _finish(ctx: Context, seed_net: Netlist, outcome: engine.Outcome, probs: Any, started: float) -> dict:
    cfg, run, t = ctx.cfg, ctx.run, ctx.tech
    # report.json marks a finished run and names the files it describes: it goes before any of them is
    # replaced, so a finishing phase cut short (Ctrl-C in verification, a full disk) leaves an unfinished
    # run that --resume completes and `verify` refuses, never a report of other files
    for name in ("report.json", "report.md"):
        (run.path / name).unlink(missing_ok=True)
    evolved: Any = outcome.best.compact()  # gates, or cells (then the generic view is what the prover reads)
    best = evolved if ctx.cells is None else evolved.to_generic()
    module = f"{cfg.design}_ax_{evolved.digest()}"
    header = (f"{module}: approximate {cfg.wa}x{cfg.wb} {'signed' if cfg.signed else 'unsigned'} multiplier, "
              f"generated by axflow\nEPS={cfg.eps:g} (WCE limit {ctx.limit}), seed {cfg.seed}, "
              f"{outcome.state.generation} generations\nports: a[{cfg.wa - 1}:0], b[{cfg.wb - 1}:0], "
              f"y[{cfg.wa + cfg.wb - 1}:0] = a*b approximately; latency 0 (combinational)")
    approx_v = run.write_text("approx.v", best.to_verilog(module, header))
    run.write_text("approx.blif", best.to_blif(module))
    run.write_json("approx.json", best.to_json())
    if ctx.cells is not None:
        run.write_json("approx_cells.json", evolved.to_json())
    rtl = run.path / f"{cfg.design}.v"

    # the proven WCE and the error metrics over every input pair (estimated where that does not fit)
    proof, errors, metrics_how = _proven_errors(ctx, best, outcome.state.counterexamples)
    lut = None
    if cfg.wa + cfg.wb <= LUT_MAX_BITS:
        lut = Evaluator(cfg.wa, cfg.wb, cfg.signed, best.n_addr).lut(best)
        multrun.write_lut(run.path, lut)
        _write_lut_csv(run.path / "lut.csv", lut, cfg.wa, cfg.wb, cfg.signed)

    # mapping onto the technology, exact (straight from RTL) and evolved
    ctx.say(f"mapping the evolved multiplier onto {t.name}")
    assert ctx.preflight is not None  # run() maps the exact design before the search
    exact_map = ctx.preflight.exact_map
    if ctx.cells is None:
        approx_map, timing = _map_in_time(ctx, approx_v, module, exact_map)
    else:
        approx_map, timing = _ship_cells(ctx, evolved, module, header)
    correlation = _cost_area(ctx, outcome.trail)

    verification = _verify(ctx, rtl, seed_net, best, module, approx_v, exact_map, approx_map, lut,
                           outcome.state.counterexamples)
    ppa = _ppa(ctx, exact_map, approx_map, module, best, lut, probs)
    power_costs = _power_costs(ctx, evolved, seed_net if ctx.cell_seed is None else ctx.cell_seed)
    calibration = _calibrate(ctx, evolved, power_costs, ppa)

    seed_tr = seed_net.cost({f: float(t.transistors(f)) for f in FUNCS})
    best_tr = best.cost({f: float(t.transistors(f)) for f in FUNCS})
    state = outcome.state
    evaluations = sum(i.evaluations for i in state.islands)
    candidates = sum(i.candidates for i in state.islands)
    ops = np.sum([i.op_counts for i in state.islands], axis=0)
    seed_info = None if cfg.seed_netlist else seeds.report(run.path, exact_map.area)
    report: dict[str, Any] = {
        "design": cfg.design, "module": module, "wa": cfg.wa, "wb": cfg.wb, "signed": cfg.signed,
        "eps": cfg.eps, "norm": ctx.norm, "wce_limit": ctx.limit, "tech": t.name, "cost_objective": cfg.cost,
        **errors,
        "wce_proof": proof.as_report(), "error_metrics": metrics_how,
        "function_set": cfg.function_set,
        **_app_errors(ctx, lut), **{k: getattr(cfg, k) for k in APP_LIMITS},
        "area": approx_map.area, "area_ratio": approx_map.area / exact_map.area,
        "search_cost": evolved.weighted_cost(ctx.weights),
        "cost_area_correlation": correlation["pearson"], "cost_area": correlation,
        "cell_nodes": evolved.n_gates if ctx.cells is not None else None,
        "cell_depth": evolved.depth() if ctx.cells is not None else None,
        "resynthesis": {"taken": sum(e["taken"] for e in ctx.resynthesis), "tried": len(ctx.resynthesis),
                        "steps": ctx.resynthesis} if ctx.cells is not None else None,
        "area_ratio_vs_seed": approx_map.area / seed_info["area"] if seed_info else None,
        "gate_area": best.cost({f: t.gate_area(f) for f in FUNCS}),
        "transistors": int(best_tr), "transistor_ratio": best_tr / seed_tr,
        "cells": approx_map.n_cells, "gates": best.n_gates, "depth": best.depth(),
        **ppa["approx"],
        "delay_ratio": ppa["approx"]["delay_ns"] / ppa["exact"]["delay_ns"],
        "power_ratio": ppa["approx"]["power_w"] / ppa["exact"]["power_w"],
        **power_costs, "power_calibration": calibration,
        "power_cost_correlation": calibration["pearson"] if calibration else None,
        "clock_period_ns": ctx.periods.clock_period_ns, "clock": ctx.periods.as_report(),
        "exact": {"area": exact_map.area, "cells": exact_map.n_cells, "transistors": int(seed_tr),
                  "gates": seed_net.n_gates, "depth": seed_net.depth(),
                  "gate_area": seed_net.cost({f: t.gate_area(f) for f in FUNCS}), **ppa["exact"]},
        "verification": verification, "timing": timing,
        "generations": state.generation, "evaluations": evaluations, "candidates": candidates,
        "evals_per_s": evaluations / state.elapsed if state.elapsed else 0.0,
        "runtime_s": state.elapsed, "total_runtime_s": time.time() - started,
        "islands": cfg.islands, "interrupted": outcome.interrupted, "stop_reason": outcome.stop_reason,
        "descent": (json.loads((run.path / "descent.json").read_text())
                    if (run.path / "descent.json").is_file() else None),
        "operators": {name: int(n) for name, n in zip(kernels.OP_NAMES, ops)},
        "proofs": _proof_stats(state, cfg),
        "operands": cfg.operands, "power_vectors": cfg.power_vectors,
        "seed_arch": seed_info,
        "lut": "lut.npy" if lut is not None else None,
    }
    from evolve import report as rep

    run.write_json("report.json", report)
    rep.write_evolution_csv(run.path / "evolution.csv", state.logbook)
    rep.plot_evolution(run.path / "evolution.png", state.logbook, report)
    run.write_text("report.md", rep.markdown(report))
    return report


def _app_errors(ctx: Context, lut: np.ndarray | None) -> dict[str, Any]:
    """The error metrics under the operand distribution, exact over every pair (up to 16 input bits)."""
    cfg = ctx.cfg
    if lut is None:
        return {}
    exact = np.outer(golden.values(cfg.wa, cfg.signed), golden.values(cfg.wb, cfg.signed)).ravel()
    return error_metrics.weighted(lut.ravel().astype(np.int64), exact, app.pair_weights(cfg.wa, cfg.wb, ctx.probs),
                                  ctx.norm)


def _power_costs(ctx: Context, best: Any, seed_net: Any) -> dict[str, Any]:
    """The evaluator's switching energy per operation (the ``--cost power`` objective) of the result and of
    the exact seed, on the power stream, both in the search's function set (cells: the result's cells as they
    ship and the seed mapped onto the cell set); None where the Liberty gives no voltage."""
    if ctx.tech.voltage is None:
        return {"power_cost": None, "power_cost_exact": None, "power_cost_ratio": None}
    energy = app.node_energy(ctx.tech, ctx.cells)
    a, b = _power_stream(ctx, ctx.probs)
    stream = app.stream_vectors(a, b, ctx.cfg.wb)
    g = ctx.cfg.glitch
    mine, exact = app.power_cost(best, energy, stream, g), app.power_cost(seed_net, energy, stream, g)
    return {"power_cost": mine, "power_cost_exact": exact, "power_cost_ratio": mine / exact if exact else None}


def _calibrate(ctx: Context, best: Any, costs: dict[str, Any], ppa: dict[str, dict[str, float]]
               ) -> dict[str, Any] | None:
    """``--calibrate N``: N circuits of the search's trajectory shipped (generic gates mapped by ABC; cells as
    they are) and powered like the result; the Pearson correlation of their power cost with OpenSTA's power,
    with the exact design and the result."""
    cfg, run, t = ctx.cfg, ctx.run, ctx.tech
    if cfg.calibrate <= 0 or costs["power_cost"] is None:
        return None
    energy = app.node_energy(t, ctx.cells)
    a, b = _power_stream(ctx, ctx.probs)
    stream = app.stream_vectors(a, b, cfg.wb)
    shape = Shape(cfg.wa, cfg.wb, cfg.signed)
    points = [{"circuit": "exact", "power_cost": costs["power_cost_exact"], "power_w": ppa["exact"]["power_w"]},
              {"circuit": "result", "power_cost": costs["power_cost"], "power_w": ppa["approx"]["power_w"]}]
    done = {best.digest()}
    seen = [net.compact() for _, net in ctx.trajectory]
    seen = [n for n in seen if n.digest() not in done]
    picks = [seen[round(i * (len(seen) - 1) / max(cfg.calibrate - 1, 1))] for i in range(min(cfg.calibrate, len(seen)))]
    periods = ctx.periods
    for i, net in enumerate(picks):
        if net.digest() in done:
            continue
        done.add(net.digest())
        module = f"{cfg.design}_cal{i}_{net.digest()}"
        ctx.say(f"calibration circuit {i + 1} of {len(picks)}: mapping and power (OpenSTA)")
        (run.path / "calibration").mkdir(exist_ok=True)
        if ctx.cells is None:
            v = run.write_text(f"calibration/{module}.v", net.to_verilog(module, f"{module}: calibration circuit"))
            mapped = yosys.map_to_cells(run, [v], module, t, run.path / "calibration" / f"{module}_{t.name}.v",
                                        step=f"map_cal{i}")
        else:
            v = run.write_text(f"calibration/{module}_{t.name}.v",
                               net.to_cell_verilog(module, f"{module}: calibration circuit"))
            mapped = yosys.cell_area(run, v, module, t, step=f"area_cal{i}")
            (run.path / f"{v.stem}.stat.json").unlink(missing_ok=True)
        res = characterise.delay_and_power(run, f"cal{i}", mapped, module, t, shape, a, b,
                                           _model_codes(shape, net, None, a, b),
                                           clock_period_ns=periods.clock_period_ns,
                                           sim_period_ns=periods.sim_period_ns, seed=cfg.seed)
        points.append({"circuit": module, "power_cost": app.power_cost(net, energy, stream, cfg.glitch),
                       "power_w": res["power_w"]})
    x = np.array([p["power_cost"] for p in points])
    y = np.array([p["power_w"] for p in points])
    r = float(np.corrcoef(x, y)[0, 1]) if len(points) >= 3 and x.std() > 0 and y.std() > 0 else None
    return {"circuits": points, "pearson": r}


def _proven_errors(ctx: Context, best: Netlist, counterexamples: list[int]
                   ) -> tuple[prover.Wce, dict[str, Any], dict[str, Any]]:
    """The exact WCE of ``best``, proven, and its other error metrics with how they were measured.

    Up to 16 input bits everything is exhaustive (the evaluator and the prover must agree). Above,
    the prover scans every pair where that fits ``--proof-timeout`` (and the metrics come from the same
    scan), else it proves the WCE by SAT and the other metrics are estimated on the random sample.
    """
    cfg = ctx.cfg
    nbits = cfg.wa + cfg.wb
    vec_ev = (Evaluator(cfg.wa, cfg.wb, cfg.signed, best.n_addr) if nbits <= EXHAUSTIVE_MAX_BITS else
              Evaluator(cfg.wa, cfg.wb, cfg.signed, best.n_addr,
                        vectors=search_vectors(cfg.wa, cfg.wb, cfg.signed, cfg.samples, cfg.seed, counterexamples)))
    on_vectors = vec_ev.errors(best)
    ctx.say(f"proving the WCE of the result on all 2^{nbits} input pairs")
    try:
        proof = prover.exact_wce(best, lower=on_vectors.wce, timeout=cfg.proof_timeout, reference=ctx.reference,
                                 threads=cfg.jobs, metrics=nbits > EXHAUSTIVE_MAX_BITS)
    except prover.ProofTimeout as e:
        raise VerificationError(f"the WCE of the evolved circuit could not be proven within --proof-timeout "
                                f"{cfg.proof_timeout:g} s ({e}); raise --proof-timeout and run again with "
                                "--resume") from None
    if proof.wce > ctx.limit:  # every best circuit was proven in the search: this is a bug, not a user error
        raise VerificationError(f"the evolved circuit has a proven WCE of {proof.wce}, above the limit {ctx.limit}")
    if nbits <= EXHAUSTIVE_MAX_BITS:
        if proof.wce != on_vectors.wce:
            raise VerificationError(f"the prover ({proof.wce}) and the exhaustive evaluation ({on_vectors.wce}) "
                                    "disagree on the WCE")
        return proof, on_vectors.as_report(), {"method": "exhaustive", "pairs": 1 << nbits}
    if proof.metrics is not None:
        errors = {"wce": proof.wce, "wce_pct": 100.0 * proof.wce / ctx.norm, **proof.metrics}
        return proof, errors, {"method": "exhaustive", "pairs": 1 << nbits}
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0xE57]))
    sample = rng.integers(0, 1 << nbits, size=cfg.samples, dtype=np.int64)
    est = Evaluator(cfg.wa, cfg.wb, cfg.signed, best.n_addr, vectors=sample).errors(best).as_report()
    est.update(wce=proof.wce, wce_pct=100.0 * proof.wce / ctx.norm)
    return proof, est, {"method": "estimate", "pairs": cfg.samples,
                        "note": "every metric but the WCE estimated on uniformly random input pairs; "
                                "the WCE is proven"}


def _proof_stats(state: engine.State, cfg: EvolveConfig) -> dict[str, Any] | None:
    """Proofs made by the search (above 16 input bits): how many, how long, what they rejected."""
    if cfg.wa + cfg.wb <= EXHAUSTIVE_MAX_BITS:
        return None
    times = sorted(t for i in state.islands for t in i.proof_times)
    evaluations = sum(i.evaluations for i in state.islands)
    return {"accepted": len(times), "refuted": sum(i.refuted for i in state.islands),
            "unproven": sum(i.unproven for i in state.islands), "counterexamples": len(state.counterexamples),
            "median_s": float(np.median(times)) if times else None, "max_s": max(times) if times else None,
            "total_s": float(sum(times)), "proof_timeout_s": cfg.proof_timeout,
            "proven_evals_per_s": evaluations / state.elapsed if state.elapsed else 0.0}


def _write_lut_csv(path: Path, lut: np.ndarray, wa: int, wb: int, is_signed: bool) -> None:
    va, vb = golden.values(wa, is_signed), golden.values(wb, is_signed)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "y"])
        for i in range(lut.shape[0]):
            w.writerows(zip([int(va[i])] * lut.shape[1], vb.tolist(), lut[i].tolist()))
    tmp.replace(path)


def _map_in_time(ctx: Context, approx_v: Path, module: str, exact_map: yosys.Mapped
                 ) -> tuple[yosys.Mapped, dict[str, Any]]:
    """Map the evolved netlist; unless slower results are allowed, make it no slower than the exact one.

    Evolution keeps the logic depth within the seed's, but ABC's mapping can still land a little
    slower under OpenSTA. Then it is mapped again for ABC delay targets at and below the exact delay
    (with the same load and drive as OpenSTA, so ABC may also size gates) and the smallest mapping that
    OpenSTA finds no slower is kept; the report says what was done, and whether timing was met.
    """
    cfg, run, t = ctx.cfg, ctx.run, ctx.tech
    out = run.path / f"approx_{t.name}.v"
    clock = ctx.periods.clock_period_ns
    exact_ns = ctx.periods.delay_ns
    mapped = yosys.map_to_cells(run, [approx_v], module, t, out, step="map_approx")
    delay = sta.analyse(run, out, module, t, clock_period_ns=clock, step="sta_delay_approx").delay_ns
    timing: dict[str, Any] = {"exact_delay_ns": exact_ns, "approx_delay_ns": delay, "required": not cfg.allow_slower,
                              "abc_delay_target_ps": None}
    if not cfg.allow_slower and delay > exact_ns:
        best: tuple[float, int, float] | None = None
        for factor in (1.0, 0.95, 0.9, 0.85, 0.8, 0.7):
            target = int(exact_ns * factor * 1000)
            trial = run.path / f"approx_{t.name}_D{target}.v"
            m = yosys.map_to_cells(run, [approx_v], module, t, trial, step="map_approx_timed",
                                   delay_target_ps=target)
            d = sta.analyse(run, trial, module, t, clock_period_ns=clock, step="sta_delay_timed").delay_ns
            if d <= exact_ns and (best is None or m.area < best[0]):
                best = (m.area, target, d)
        if best is not None:
            _, target, delay = best
            mapped = yosys.map_to_cells(run, [approx_v], module, t, out, step="map_approx_timed",
                                        delay_target_ps=target)
            timing.update(approx_delay_ns=delay, abc_delay_target_ps=target)
        for trial in run.path.glob(f"approx_{t.name}_D*"):
            trial.unlink()
    timing["met"] = cfg.allow_slower or delay <= exact_ns
    return mapped, timing


def _ship_cells(ctx: Context, evolved: cellnet.CellNetlist, module: str, header: str
                ) -> tuple[yosys.Mapped, dict[str, Any]]:
    """Write ``approx_<tech>.v`` from the evolved cells as they are (nothing remapped), its area as Yosys
    reads it with the Liberty, and its STA delay. Its logic depth is the cell seed's at most (unless
    slower results are allowed), but nothing resizes it: the report says whether timing was met."""
    run, t = ctx.run, ctx.tech
    out = run.write_text(f"approx_{t.name}.v", evolved.to_cell_verilog(module, header))
    mapped = yosys.cell_area(run, out, module, t, step="area_approx_cells")
    delay = sta.analyse(run, out, module, t, clock_period_ns=ctx.periods.clock_period_ns,
                        step="sta_delay_approx").delay_ns
    exact_ns = ctx.periods.delay_ns
    return mapped, {"exact_delay_ns": exact_ns, "approx_delay_ns": delay, "required": not ctx.cfg.allow_slower,
                    "abc_delay_target_ps": None, "remapped": False,
                    "met": ctx.cfg.allow_slower or delay <= exact_ns}


TRAIL_POINTS = 8  # circuits of a run's trail whose shipped area is measured for the cost-area correlation


def _cost_area(ctx: Context, trail: list[tuple[Any, float]]) -> dict[str, Any]:
    """The search's cost against the shipped area over the circuits that became the run's best (up to
    :data:`TRAIL_POINTS`, evenly spaced, the last included): each compacted, costed by the search's cost
    function and shipped as the run ships its result (generic gates mapped by ABC; cells read as they
    are). Returns the Pearson correlation (None below three distinct costs) and the points."""
    run, t = ctx.run, ctx.tech
    picks = sorted({round(i * (len(trail) - 1) / max(1, TRAIL_POINTS - 1)) for i in range(TRAIL_POINTS)}) if trail else []
    costs, areas = [], []
    tmp = run.path / "trail"
    tmp.mkdir(exist_ok=True)
    for j, i in enumerate(picks):
        net = trail[i][0].compact()
        module = f"{ctx.cfg.design}_trail{j}"
        src = tmp / f"{module}.v"
        if ctx.cells is None:
            src.write_text(net.to_verilog(module), encoding="utf-8")
            area = yosys.map_to_cells(run, [src], module, t, tmp / f"{module}_{t.name}.v", step="map_trail").area
        else:
            src.write_text(net.to_cell_verilog(module), encoding="utf-8")
            area = yosys.cell_area(run, src, module, t, step="area_trail").area
        costs.append(net.weighted_cost(ctx.weights))
        areas.append(area)
        (run.path / f"{src.stem if ctx.cells is not None else module + '_' + t.name}.stat.json").unlink(missing_ok=True)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    r = None
    if len(set(costs)) >= 3 and len(set(areas)) >= 2:
        r = float(np.corrcoef(costs, areas)[0, 1])
    return {"pearson": r, "points": len(costs), "search_cost": costs, "area": areas,
            "cost": "area of the cells" if ctx.cells is not None else f"{ctx.cfg.cost} of the generic gates"}


def _verify(ctx: Context, rtl: Path, seed_net: Netlist, best: Netlist, module: str, approx_v: Path,
            exact_map: yosys.Mapped, approx_map: yosys.Mapped, lut: np.ndarray | None,
            counterexamples: list[int]) -> dict[str, Any]:
    cfg, run, t = ctx.cfg, ctx.run, ctx.tech
    shape = Shape(cfg.wa, cfg.wb, cfg.signed)
    # every pair up to 16 input bits; above, a sample, the corner cases and every counterexample
    a, b, sampled = vecs.vectors(shape, cfg.seed, extra=counterexamples)
    exact_codes = shape.exact_codes(a, b)
    model_codes = _model_codes(shape, best, lut, a, b)
    checks = [("exact_rtl", [rtl], cfg.design, exact_codes, 0),
              ("seed_gates", [run.path / "seed.v"], cfg.design, exact_codes, 0),
              ("exact_mapped", [exact_map.verilog, *t.verilog], cfg.design, exact_codes, 0),
              ("approx_gates", [approx_v], module, model_codes, ctx.limit),
              ("approx_mapped", [approx_map.verilog, *t.verilog], module, model_codes, ctx.limit)]
    results: dict[str, Any] = {}
    for name, sources, top, expected, wce_limit in checks:
        if name == "seed_gates" and cfg.seed_netlist is not None:
            continue  # a user's seed need not be exact; the evolution model measured its error
        ctx.say(f"verifying {name} on {len(a):,} input pairs (cocotb, Icarus)")
        res = vecs.simulate(run, name, sources, top, shape, a, b, expected, wce_limit=wce_limit, seed=cfg.seed)
        results[name] = {**res.as_report(), "sources": [s.name for s in sources],
                         "expected": "goldenbrick" if expected is exact_codes else "evolution model"}
    ctx.say("formal equivalence checks (Yosys)")
    if cfg.seed_netlist is None:
        results["formal_rtl_vs_seed"] = _seed_is_exact(ctx, rtl, seed_net)
    eq2 = formal.equivalent(run, [approx_v], module, [approx_map.verilog], module, step="formal_mapping",
                            gate_liberty=t.liberty)
    results["formal_approx_vs_mapped"] = eq2.as_report()
    failed = [name for name, r in results.items() if not (r.get("passed") or r.get("proven"))]
    return {"passed": not failed, "failed": failed, "vectors": len(a), "exhaustive": not sampled,
            "benches": results}


def _seed_is_exact(ctx: Context, rtl: Path, seed_net: Netlist) -> dict[str, Any]:
    """The seed computes a*b on every input: Yosys' miter (fraig + SAT) up to 16 input bits; above, an
    exhaustive scan against a*b where it fits SEED_SCAN_S (2^24 pairs in seconds, where the Yosys miter
    of a 12x12 multiplier takes minutes; 2^32 in a few minutes, where the Yosys miter of a signed 16x16
    one does not finish in ten), else the Yosys miter."""
    cfg, run = ctx.cfg, ctx.run
    if cfg.wa + cfg.wb > EXHAUSTIVE_MAX_BITS:
        try:
            w = prover.exact_wce(seed_net, method="exhaustive", timeout=max(cfg.proof_timeout, SEED_SCAN_S),
                                 threads=cfg.jobs)
        except prover.ProofTimeout:
            pass
        else:
            return {"proven": w.wce == 0, "method": "exhaustive scan against a*b", "time_s": round(w.time_s, 3),
                    "pairs": 1 << (cfg.wa + cfg.wb)}
    eq = formal.equivalent(run, [rtl], cfg.design, [run.path / "seed.v"], cfg.design, step="formal_seed")
    return eq.as_report()


def _model_codes(shape: Shape, best: Netlist, lut: np.ndarray | None, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The evolution model's product codes for operand codes ``a``, ``b``."""
    if lut is not None:
        return golden.encode(lut[a, b].astype(np.int64), shape.nb)
    ev = Evaluator(shape.wa, shape.wb, shape.signed, best.n_addr, vectors=(a << shape.wb) | b)
    return golden.encode(ev.outputs(best), shape.nb)


def _ppa(ctx: Context, exact_map: yosys.Mapped, approx_map: yosys.Mapped, module: str, best: Netlist,
         lut: np.ndarray | None, probs: Any) -> dict[str, dict[str, float]]:
    cfg, pre = ctx.cfg, ctx.preflight
    assert pre is not None
    shape = Shape(cfg.wa, cfg.wb, cfg.signed)
    a, b = _power_stream(ctx, probs)
    periods, exact = pre.periods, pre.exact_ppa
    approx_delay = sta.analyse(ctx.run, approx_map.verilog, module, ctx.tech, clock_period_ns=periods.clock_period_ns,
                               step="sta_delay_final").delay_ns
    if periods.clock_period_source == "derived" and pclock.derive(approx_delay) > periods.clock_period_ns:
        # the evolved design is the slower one: the clock follows it, and the exact design is powered again
        clock = pclock.derive(approx_delay)
        sim = clock if periods.sim_period_source == "clock" else max(clock, periods.sim_period_ns)
        periods = pclock.Periods(clock, "derived", approx_delay, sim, periods.sim_period_source, periods.settle_ns)
        exact = characterise.delay_and_power(ctx.run, "exact", exact_map, cfg.design, ctx.tech, shape, a, b,
                                             shape.exact_codes(a, b), clock_period_ns=clock, sim_period_ns=sim,
                                             seed=cfg.seed)
        ctx.preflight = Preflight(pre.exact_map, pre.exact_delay_ns, periods, exact)
    ctx.say(f"delay and power (OpenSTA, activity from {cfg.power_vectors:,} simulated operand pairs)")
    approx = characterise.delay_and_power(ctx.run, "approx", approx_map, module, ctx.tech, shape, a, b,
                                          _model_codes(shape, best, lut, a, b),
                                          clock_period_ns=periods.clock_period_ns,
                                          sim_period_ns=periods.sim_period_ns, seed=cfg.seed)
    return {"exact": exact, "approx": approx}
