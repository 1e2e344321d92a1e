"""Delay and power of a mapped multiplier under an operand distribution; reading someone else's multiplier.

The mapped netlist is simulated with its cells' delays for ``n`` operand pairs, one per simulation
period (the clock period unless the cell models need longer, see :mod:`ppa.clock`); the simulation must
reproduce the expected products (a timing check at that period), and its VCD gives the switching
activity of every net, which OpenSTA turns into power at the clock period (see :mod:`ppa.sta`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from core.errors import ConfigError, SettleError, ToolError, VerificationError
from core.run import RunDir
from ppa import activity, sta, yosys
from ppa import clock as clk
from ppa.yosys import Mapped
from tech import Technology
from verify.multiplier import Shape, simulate, simulated_codes
from verify.sim import BenchResult


def delay_and_power(run: RunDir, name: str, mapped: Mapped, top: str, tech: Technology, shape: Shape,
                    a: np.ndarray, b: np.ndarray, expected: np.ndarray, *, clock_period_ns: float,
                    seed: int, sim_period_ns: float | None = None,
                    ports: tuple[str, str, str] = ("a", "b", "y")) -> dict[str, float]:
    """Delay, power at ``clock_period_ns`` and energy per operation; ``sim_period_ns`` (default: the
    clock period) is how long the timing simulation holds each operand pair. ``ports``: the names of
    ``top``'s operand and product ports (the netlist is simulated inside a wrapper with the flow's names
    when they differ, and its nets keep their own names)."""
    sim_ps = round((sim_period_ns or clock_period_ns) * 1000)
    bench = f"power_{name}"
    vcd = run.path / "sim_build" / bench / "activity.vcd"
    vcd.parent.mkdir(parents=True, exist_ok=True)
    sources, sim_top, scope = [mapped.verilog, *tech.verilog], top, "axf_vcd_top.dut"
    if ports != ("a", "b", "y"):
        sim_top, scope = f"axf_ports_{top}", scope + ".dut"
        wrapper = vcd.parent / f"{sim_top}.v"
        wrapper.write_text(port_wrapper(sim_top, top, ports, shape.wa, shape.wb), encoding="utf-8")
        sources.insert(0, wrapper)
    res = simulate(run, bench, sources, sim_top, shape, a, b, expected, wce_limit=None,
                   seed=seed, period_ps=sim_ps, vcd=vcd, timing=True)
    if not res.passed:
        raise SettleError(f"timing simulation of the {name} netlist at {sim_ps / 1000:g} ns does not "
                          f"reproduce its table: {res.messages[0] if res.messages else res.log}")
    act = activity.measure(vcd, scope, len(a), sim_ps)
    settle = clk.settle_time_ns(vcd, "axf_vcd_top.dut.y", len(a), sim_ps)
    inputs = {k: v for k, v in act.items() if k.startswith((f"{ports[0]}[", f"{ports[1]}["))}
    r = sta.analyse(run, mapped.verilog, top, tech, clock_period_ns=clock_period_ns, activity=act,
                    input_activity=inputs, step=f"sta_{name}")
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


DETECTED_PORTS = (("a", "b", "y"), ("A", "B", "O"))  # axflow's own; EvoApproxLib's
_STATE = re.compile(r"^\$_?(a|s|al|ad)?(dff|dlatch|ff|sr|mem)", re.I)  # flip-flops, latches, memories


def inspect(source: Path, top: str, ports: str | None, wa: int, wb: int) -> tuple[str, str, str]:
    """The (operand a, operand b, product) port names of ``top`` in ``source``, checked before any run.

    ``ports``: ``"A,B,Y"``, or None to detect ``a,b,y`` or ``A,B,O`` (EvoApproxLib). The top must be
    combinational with exactly those three ports, of widths ``wa``, ``wb`` and ``wa+wb``; every module it
    instantiates must be defined in ``source``.
    """
    modules = {name.lstrip("\\"): mod for name, mod in yosys.read_modules(source).items()}
    if top not in modules:
        raise ConfigError(f"TOP must be a module of {source}, not {top!r} "
                          f"(modules: {', '.join(sorted(modules)) or 'none'})")
    have = modules[top]["ports"]
    if ports is None:
        found = [p for p in DETECTED_PORTS if set(p) <= set(have)]
        if not found:
            raise ConfigError(f"PORTS must be given for module {top} of {source}: it has neither a, b, y nor "
                              f"A, B, O (its ports: {', '.join(have)})")
        names = found[0]
    else:
        pa, pb, py = ports.split(",")
        names = (pa, pb, py)
    want = {names[0]: ("input", wa), names[1]: ("input", wb), names[2]: ("output", wa + wb)}
    got = {n: (p["direction"], len(p["bits"])) for n, p in have.items()}
    if got != want:
        fmt = ", ".join
        raise ConfigError(f"module {top} of {source} must have ports "
                          f"{fmt(f'{d} {n}[{w}]' for n, (d, w) in want.items())} (from --bits, --bits-b and "
                          f"--ports), not {fmt(f'{d} {n}[{w}]' for n, (d, w) in got.items())}")
    seen, todo = set(), [top]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for cell in modules[name].get("cells", {}).values():
            kind = cell["type"].lstrip("\\")
            if kind in modules:
                todo.append(kind)
            elif not kind.startswith("$"):
                raise ConfigError(f"module {name} of {source} instantiates {kind}, which {source} does not define")
            elif _STATE.match(kind):
                raise ConfigError(f"module {name} of {source} must be combinational, not hold state ({kind})")
    return names[0], names[1], names[2]




def port_wrapper(name: str, top: str, ports: tuple[str, str, str], wa: int, wb: int) -> str:
    """A module ``name`` with the flow's ports ``a``, ``b``, ``y`` around ``top`` (no logic of its own)."""
    from core.verilog import TIMESCALE

    pa, pb, py = ports
    return f"""{TIMESCALE}
module {name} (a, b, y);
  input [{wa - 1}:0] a;
  input [{wb - 1}:0] b;
  output [{wa + wb - 1}:0] y;
  {top} dut (.{pa}(a), .{pb}(b), .{py}(y));
endmodule
"""


def codes(run: RunDir, name: str, res: BenchResult) -> np.ndarray:
    """The product codes bench ``name`` read back; a bench that ended before writing them is a tool failure."""
    try:
        return simulated_codes(run, name)
    except FileNotFoundError:
        tail = list(res.messages)[-10:] or [f"see {res.log}"]
        raise ToolError("the simulation (cocotb on Icarus)", 1, Path(res.log) if res.log else None, tail) from None
