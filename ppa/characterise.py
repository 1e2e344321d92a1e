"""Delay and power of a mapped multiplier under an operand distribution.

The mapped netlist is simulated with its cells' delays for ``n`` operand pairs, one per simulation
period (the clock period unless the cell models need longer, see :mod:`ppa.clock`); the simulation must
reproduce the expected products (a timing check at that period), and its VCD gives the switching
activity of every net, which OpenSTA turns into power at the clock period (see :mod:`ppa.sta`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from core.errors import VerificationError
from core.run import RunDir
from ppa import activity, sta
from ppa import clock as clk
from ppa.yosys import Mapped
from tech import Technology
from verify.multiplier import Shape, simulate


def delay_and_power(run: RunDir, name: str, mapped: Mapped, top: str, tech: Technology, shape: Shape,
                    a: np.ndarray, b: np.ndarray, expected: np.ndarray, *, clock_period_ns: float,
                    seed: int, sim_period_ns: float | None = None) -> dict[str, float]:
    """Delay, power at ``clock_period_ns`` and energy per operation; ``sim_period_ns`` (default: the
    clock period) is how long the timing simulation holds each operand pair."""
    sim_ps = round((sim_period_ns or clock_period_ns) * 1000)
    bench = f"power_{name}"
    vcd = run.path / "sim_build" / bench / "activity.vcd"
    vcd.parent.mkdir(parents=True, exist_ok=True)
    res = simulate(run, bench, [mapped.verilog, *tech.verilog], top, shape, a, b, expected, wce_limit=None,
                   seed=seed, period_ps=sim_ps, vcd=vcd, timing=True)
    if not res.passed:
        raise VerificationError(f"timing simulation of the {name} netlist at {sim_ps / 1000:g} ns does not "
                                f"reproduce its table: {res.messages[0] if res.messages else res.log}")
    act = activity.measure(vcd, "axf_vcd_top.dut", len(a), sim_ps)
    settle = clk.settle_time_ns(vcd, "axf_vcd_top.dut.y", len(a), sim_ps)
    ports = {k: v for k, v in act.items() if k.startswith(("a[", "b["))}
    r = sta.analyse(run, mapped.verilog, top, tech, clock_period_ns=clock_period_ns, activity=act,
                    input_activity=ports, step=f"sta_{name}")
    vcd.unlink()  # large; the per-net activity it gave is kept
    Path(vcd.parent / "activity.json").write_text(json.dumps(act), encoding="utf-8")
    if r.power_w is None or not math.isfinite(r.power_w):
        raise VerificationError(f"OpenSTA reported no power for the {name} netlist")
    return {"delay_ns": r.delay_ns, "power_w": r.power_w, "power_dynamic_w": float(r.power_dynamic_w or 0.0),
            "power_leakage_w": float(r.power_leakage_w or 0.0),
            "power_vectorless_w": float(r.power_vectorless_w or math.nan), "energy_pj": float(r.energy_pj or 0.0),
            "sim_settle_ns": settle}


def settle_probe(run: RunDir, name: str, mapped: Mapped, top: str, tech: Technology, shape: Shape,
                 a: np.ndarray, b: np.ndarray, expected: np.ndarray, *, clock_period_ns: float,
                 seed: int) -> float:
    """How long the mapped netlist takes to settle in a timing simulation of its cells' Verilog models:
    each pair is held ``PROBE_FACTOR`` clock periods, and the latest output change within a period is
    the answer (ns). A netlist that does not reproduce its table even then is a technology problem."""
    probe_ps = round(clk.PROBE_FACTOR * clock_period_ns * 1000)
    bench = f"settle_{name}"
    vcd = run.path / "sim_build" / bench / "settle.vcd"
    vcd.parent.mkdir(parents=True, exist_ok=True)
    res = simulate(run, bench, [mapped.verilog, *tech.verilog], top, shape, a, b, expected, wce_limit=None,
                   seed=seed, period_ps=probe_ps, vcd=vcd, timing=True)
    if not res.passed:
        raise VerificationError(f"timing simulation of the {name} netlist on {tech.name} does not reproduce its "
                                f"table even at {probe_ps / 1000:g} ns per operand pair: "
                                f"{res.messages[0] if res.messages else res.log}")
    settle = clk.settle_time_ns(vcd, "axf_vcd_top.dut.y", len(a), probe_ps)
    vcd.unlink()
    return settle
