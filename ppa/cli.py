"""``flow.py ppa``: characterise any multiplier given as Verilog, with the flow that characterises evolved ones.

The design (any combinational module, submodules included; ports ``a``, ``b``, ``y``, EvoApproxLib's
``A``, ``B``, ``O``, or any named by ``--ports``) is simulated on every input pair (a random sample above 16 input
bits) to measure its error against the goldenbrick table, mapped onto the technology, timed and
powered like an evolved circuit, and compared with the exact multiplier synthesised by the same flow.
Typical use: put a multiplier from a library (EvoApproxLib, say) next to axflow's on your technology.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import metrics, stage, tools
from core.config import check_tag, check_width, option
from core.errors import ConfigError, must
from ppa import clock as pclock

_ID = r"[A-Za-z_][A-Za-z0-9_$]*"
_PORTS = re.compile(rf"{_ID},{_ID},{_ID}")


@dataclass(frozen=True)
class PpaConfig:
    verilog: Path = option(help="Verilog of the multiplier: any combinational module, submodules included")
    top: str = option(help="its top module")
    ports: str | None = option(None, help="its operand and product ports, 'A,B,Y' (default: a,b,y or A,B,O, "
                                          "whichever the top has)")
    bits: int = option(8, help="operand width of a (and of b unless --bits-b is given)")
    bits_b: int | None = option(None, help="operand width of b (default: --bits)")
    signed: bool = option(True, help="two's-complement operands; --no-signed for unsigned")
    tech: str = option("osu018", help="technology")
    clock_period: float | None = option(None, unit="ns", help=pclock.CLOCK_HELP)
    sim_period: float | None = option(None, unit="ns", help=pclock.SIM_HELP)
    power_vectors: int = option(2000, help="operand pairs simulated to measure switching activity")
    operands: str = option("uniform", help="operand distribution for power: 'uniform' or a histogram CSV")
    seed: int = option(1, help="random seed (operand streams, sampled vectors)")
    tag: str | None = option(None, help="run name under runs/<top>/ (default: ppa-<tech>)")
    run_dir: Path | None = option(None, help="run directory (default: runs/<top>/<tag>)")
    overwrite: bool = option(False, help="replace an existing run directory")

    def __post_init__(self) -> None:
        check_width("BITS", self.bits)
        check_width("BITS_B", self.bits_b)
        check_tag(self.tag)
        if not self.verilog.is_file():
            raise ConfigError(f"VERILOG {self.verilog} does not exist")
        if self.ports is not None and not _PORTS.fullmatch(self.ports):
            raise must("PORTS", "three port names separated by commas (operand a, operand b, product)", self.ports)
        pclock.check_periods(self.clock_period, self.sim_period)
        if self.power_vectors < 10:
            raise must("POWER_VECTORS", ">= 10", self.power_vectors)


@dataclass
class Plan:
    """What is read and checked before the run directory exists."""

    tech: Any
    probs: Any
    ports: tuple[str, str, str]


class PpaStage(stage.Stage):
    """Error (simulated against the goldenbrick table), area, delay and power of one Verilog multiplier."""

    name = "ppa"
    Config = PpaConfig
    inputs = ("verilog",)
    outputs = ("config.json", "report.json", "report.md", "<design>.v", "exact_<tech>.v", "<top>_<tech>.v")
    tools = (tools.YOSYS, tools.IVERILOG, tools.VVP, tools.STA)
    packages = ("amaranth", "cocotb", "numpy")

    def prepare(self, cfg: PpaConfig, progress: bool) -> Plan:
        import tech as techmod
        from ppa import activity
        from ppa import characterise as ch

        wb = cfg.bits if cfg.bits_b is None else cfg.bits_b
        t = techmod.load(cfg.tech)
        probs = activity.read_operands(cfg.operands, cfg.bits, wb, cfg.signed)
        return Plan(t, probs, ch.inspect(cfg.verilog, cfg.top, cfg.ports, cfg.bits, wb))

    def default_dir(self, cfg: PpaConfig, plan: Plan) -> Path:
        return Path(cfg.top) / (cfg.tag or f"ppa-{plan.tech.name}")

    def run(self, ctx: stage.Context) -> dict[str, Any]:
        return _characterise(ctx)

    def markdown(self, report: dict[str, Any]) -> str:
        return _markdown(report)

    def summary(self, cfg: Any, r: dict[str, Any]) -> str:
        return (f"{r['design']}: WCE {r['wce']} ({r['wce_pct']:.4g} %), area {r['area']:.6g} ({r['area_ratio']:.4f} "
                f"of exact), delay {r['delay_ns']:.4g} ns, power {r['power_w']:.4g} W ({r['power_ratio']:.4f} of "
                f"exact); {r['run_dir']}/report.md")


STAGE = PpaStage()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    stage.add_arguments(parser, STAGE)


def main(args: argparse.Namespace) -> int:
    return stage.main(STAGE, args)


def characterise(cfg: PpaConfig, *, progress: bool = False) -> dict[str, Any]:
    """The ``ppa`` stage on ``cfg``; returns its report."""
    return STAGE.execute(cfg, progress=progress)


def _characterise(ctx: stage.Context) -> dict[str, Any]:
    from core import golden
    from core.error_metrics import errors_of
    from core.run import write_bytes
    from ppa import activity, sta, yosys
    from ppa import characterise as ch
    from rtl_gen.multiplier import Multiplier, design_name, to_verilog
    from verify.multiplier import Shape, simulate, vectors

    cfg, run, t, probs, ports = ctx.cfg, ctx.run, ctx.plan.tech, ctx.plan.probs, ctx.plan.ports
    wb = cfg.bits if cfg.bits_b is None else cfg.bits_b
    shape = Shape(cfg.bits, wb, cfg.signed)
    exact_name = design_name(shape.wa, wb, cfg.signed)
    rtl = run.write_text(f"{exact_name}.v", to_verilog(Multiplier(shape.wa, wb, signed_=cfg.signed), exact_name))
    # the technology first, on the exact design: mapping, STA, and the clock period checked against it
    exact_map = yosys.map_to_cells(run, [rtl], exact_name, t, run.path / f"exact_{t.name}.v", step="map_exact")
    exact_delay = sta.analyse(run, exact_map.verilog, exact_name, t, clock_period_ns=cfg.clock_period or 10.0,
                              step="sta_delay_exact").delay_ns
    pclock.clock_period(cfg.clock_period, exact_delay, f"the exact {exact_name} on {t.name}")
    source = run.path / cfg.verilog.name
    write_bytes(source, cfg.verilog.read_bytes())
    sources, top = [source], cfg.top
    if ports != ("a", "b", "y"):  # the RTL is simulated in a wrapper with the flow's port names
        top = f"axf_ports_{cfg.top}"
        sources.append(run.write_text(f"{top}.v", ch.port_wrapper(top, cfg.top, ports, shape.wa, wb)))

    # error: simulate the design and compare with the goldenbrick table
    a, b, sampled = vectors(shape, cfg.seed)
    exact_codes = shape.exact_codes(a, b)
    res = simulate(run, "errors", sources, top, shape, a, b, exact_codes, wce_limit=None, seed=cfg.seed)
    got = ch.codes(run, "errors", res)
    if (got < 0).any():
        raise ConfigError(f"{cfg.top} drives X or Z on {ports[2]} for {(got < 0).sum()} input pairs")
    y = golden.decode(got, shape.nb, cfg.signed)
    exact = golden.decode(exact_codes, shape.nb, cfg.signed)
    errors = errors_of(y, exact, golden.norm(shape.wa, wb, cfg.signed), sampled)

    # mapped as written, by the script that maps the exact and the evolved multipliers (a wrapper or a
    # flattening beforehand would change what ABC is given, and its area by a few per cent)
    mapped = yosys.map_to_cells(run, [source], cfg.top, t, run.path / f"{cfg.top}_{t.name}.v", step="map")
    design_delay = sta.analyse(run, mapped.verilog, cfg.top, t, clock_period_ns=cfg.clock_period or 10.0,
                               step="sta_delay_design").delay_ns
    slower = max(exact_delay, design_delay)
    clock, clock_source = pclock.clock_period(cfg.clock_period, exact_delay, f"the exact {exact_name} on {t.name}")
    if clock_source == "derived":
        clock = pclock.derive(slower)
    pa, pb = activity.power_stream(shape.wa, wb, cfg.power_vectors, cfg.seed, probs)
    lookup = {int(v): int(c) for v, c in zip((a << wb) | b, got)}
    design_codes = np.array([lookup[int(v)] for v in (pa << wb) | pb]) if not sampled else None
    if design_codes is None:  # a sampled design: simulate the power stream's own products
        res_p = simulate(run, "power_stream", sources, top, shape, pa, pb, shape.exact_codes(pa, pb),
                         wce_limit=None, seed=cfg.seed)
        design_codes = ch.codes(run, "power_stream", res_p)
    settle = None
    if cfg.sim_period is None:
        settle = ch.settle_probe(run, "exact", exact_map, exact_name, t, shape, pa, pb, shape.exact_codes(pa, pb),
                                 clock_period_ns=clock, seed=cfg.seed)
    sim, sim_source = pclock.sim_period(cfg.sim_period, clock, settle)
    periods = pclock.Periods(clock, clock_source, slower if clock_source == "derived" else exact_delay, sim,
                             sim_source, settle)
    pe = ch.delay_and_power(run, "exact", exact_map, exact_name, t, shape, pa, pb, shape.exact_codes(pa, pb),
                            clock_period_ns=clock, sim_period_ns=sim, seed=cfg.seed)
    pd = ch.delay_and_power(run, "design", mapped, cfg.top, t, shape, pa, pb, design_codes,
                            clock_period_ns=clock, sim_period_ns=sim, seed=cfg.seed, ports=ports)
    report = {
        "design": cfg.top, "ports": dict(zip(("a", "b", "y"), ports)), "wa": shape.wa, "wb": wb,
        "signed": cfg.signed, "tech": t.name,
        "run_dir": str(run.final), **errors.as_report(), "verification_vectors": len(a),
        # someone else's design is simulated, not proven: above 16 input bits its WCE is a lower bound
        "wce_measured_on": "all input pairs" if not sampled else f"{len(a)} sampled pairs (a lower bound)",
        "area": mapped.area, "area_ratio": mapped.area / exact_map.area, "cells": mapped.n_cells, **pd,
        "delay_ratio": pd["delay_ns"] / pe["delay_ns"], "power_ratio": pd["power_w"] / pe["power_w"],
        "clock_period_ns": clock, "clock": periods.as_report(), "operands": cfg.operands,
        "exact": {"area": exact_map.area, "cells": exact_map.n_cells, **pe},
        "simulation": res.as_report(),
    }
    return report


def _markdown(r: dict[str, Any]) -> str:
    ex = r["exact"]
    rows = [f"# {r['design']} on {r['tech']}", "",
            f"{r['wa']}x{r['wb']} {'signed' if r['signed'] else 'unsigned'} multiplier characterised by axflow; "
            f"errors from simulation of {r['verification_vectors']:,} input pairs against the goldenbrick table.", "",
            "| metric | value | exact | meaning |", "| --- | --- | --- | --- |"]
    for key in ("wce", "wce_pct", "mae", "mae_pct", "er", "mred", "bias", "area", "area_ratio", "cells",
                "delay_ns", "delay_ratio", "power_w", "power_ratio", "energy_pj"):
        rows.append(metrics.row(key, r[key], ex.get(key, "")))
    ck = r["clock"]
    rows += ["", f"Power at a {r['clock_period_ns']:g} ns clock ({ck['clock_period_how']}), operands {r['operands']}; "
                 f"timing simulation at {ck['sim_period_ns']:g} ns per operand pair ({ck['sim_period_how']}).", ""]
    return "\n".join(rows)
