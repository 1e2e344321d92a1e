"""Area, delay and power of an array (rtl_gen/array.py) on a technology, split by hierarchy.

What is costed is the array's *core*: the top controller, the pods' sequencers, feeders and output
units, and every PE (multiplier, accumulator adder, registers). The operand and result buffers are
memories (SRAM macros in a real chip; OSU018 and GF180 come without a memory compiler here), so they
are reported as capacity in bits, not synthesised into flip-flops.

Steps:

1. the core is synthesised module by module and flattened with hierarchical names
   (:func:`ppa.yosys.map_hierarchical`), so every cell belongs to a known block: ``mult`` (the PE
   multipliers), ``pe`` (the rest of the PEs), ``pod`` (sequencers, feeders, output units) and
   ``control`` (top controller, REDUCE);
2. the whole accelerator (RTL buffers + mapped core + the cells' Verilog models with their delays) runs
   a GEMM on realistic operands through the cocotb bench: it must give the reference result in the
   ``rtl`` model's cycle count at the clock period, so it is also a gate-level timing simulation;
3. the VCD of the core, between the edge that samples ``start`` and the one that raises ``done``,
   gives the switching activity of every net (:func:`ppa.activity.measure_window`);
4. OpenSTA gives the critical path against the clock and the power with that activity
   (:func:`ppa.sta.analyse` with ``clock_port``), instance by instance, summed per block.

The PE is also synthesised on its own for its critical path (register/port to register).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import VerificationError
from core.run import RunDir
from ppa import activity, sta, yosys
from rtl_gen.array import Design
from tech import Technology
from verify import array as varray

BLOCKS = ("mult", "pe", "pod", "control")
_BLOCK_RE = [
    ("mult", re.compile(r"^pod\d+\.sa\.pe_\d+_\d+\.mult\.")),
    ("pe", re.compile(r"^pod\d+\.sa\.pe_\d+_\d+\.")),
    ("pod", re.compile(r"^pod\d+\.")),
]


def block_of(instance: str) -> str:
    """The block of a flat instance name (``pod0.sa.pe_1_2.mult._7_`` -> ``mult``)."""
    name = instance.replace("\\", "")
    for block, rx in _BLOCK_RE:
        if rx.match(name):
            return block
    return "control"


def _by_block(values: dict[str, float]) -> dict[str, float]:
    out = dict.fromkeys(BLOCKS, 0.0)
    for inst, v in values.items():
        out[block_of(inst)] += v
    return out


def min_period(run: RunDir, design: Design, tech: Technology, *, target_ps: int, tag: str) -> float:
    """The core's minimum clock period (OpenSTA, register to register) when mapped for ``target_ps``:
    what the clock period is checked against or derived from (:mod:`ppa.clock`)."""
    core_rtl = design.write(run.path / f"{tag}_core_rtl.v", ("mult", "pe", "core"))
    mapped = yosys.map_hierarchical(run, [core_rtl], design.core, tech,
                                    run.path / f"{tag}_core_{tech.name}_probe.v", clock_period_ps=target_ps,
                                    step=f"map_{tag}_probe")
    r = sta.analyse(run, mapped.verilog, design.core, tech, clock_period_ns=target_ps / 1000, clock_port="clk",
                    step=f"sta_{tag}_probe")
    Path(mapped.verilog).unlink()
    return float(r.min_period_ns if r.min_period_ns is not None else r.delay_ns)


def characterise(run: RunDir, design: Design, tech: Technology, *, clock_period_ns: float,
                 power_gemm: varray.Gemm, probs: tuple[np.ndarray, np.ndarray] | None, seed: int,
                 tag: str, sim_period_ns: float | None = None) -> dict[str, Any]:
    """PPA of ``design`` on ``tech``; files and steps are named after ``tag``.

    ``sim_period_ns``: clock period of the gate-level simulation (default: ``clock_period_ns``). Activity
    is counted per cycle, so a longer one changes nothing as long as every cycle settles; it is needed for
    cell models whose delays are not the Liberty's (GF180's Verilog models give every arc 1 ns).
    """
    g = design.geometry
    period_ps = round(clock_period_ns * 1000)
    sim_ps = round((sim_period_ns or clock_period_ns) * 1000)
    core_rtl = design.write(run.path / f"{tag}_core_rtl.v", ("mult", "pe", "core"))
    mapped = yosys.map_hierarchical(run, [core_rtl], design.core, tech, run.path / f"{tag}_core_{tech.name}.v",
                                    clock_period_ps=period_ps, step=f"map_{tag}")
    areas = _by_block({inst: tech.cell_areas[cell] for inst, cell in mapped.cell_types.items()})
    pes = g.rows * g.cols * g.pods

    # gate-level timing simulation of a GEMM, with the VCD of the core
    top_rtl = design.write(run.path / f"{tag}_top_rtl.v", ("top",))
    bench = f"power_{tag}"
    vcd = run.path / "sim_build" / bench / "activity.vcd"
    vcd.parent.mkdir(parents=True, exist_ok=True)
    res = varray.run(run, name=bench, sources=[top_rtl, mapped.verilog, *tech.verilog], top=design.top,
                     geometry=g, lut=design.mult.lut(), gemms=[power_gemm], seed=seed, probs=probs,
                     period_ps=sim_ps, vcd=vcd, timing=True)
    if not res.passed or not res.gemms:
        why = res.bench.messages[0] if res.bench.messages else str(res.bench.log)
        raise VerificationError(f"the mapped {design.top} core does not run GEMM {power_gemm.shape} correctly at "
                                f"{sim_ps / 1000:g} ns in a gate-level timing simulation of the cells' Verilog "
                                f"models (a longer --sim-period tells a timing failure from a logic one): {why}")
    gr = res.gemms[0]
    act = activity.measure_window(vcd, f"{design.top}.core", gr.t_start_ps, gr.t_done_ps, gr.cycles)
    vcd.unlink()  # large; what it gave is in the report
    r = sta.analyse(run, mapped.verilog, design.core, tech, clock_period_ns=clock_period_ns, activity=act,
                    clock_port="clk", step=f"sta_{tag}")
    if r.power_w is None or not math.isfinite(r.power_w):
        raise VerificationError(f"OpenSTA reported no power for the {design.top} core")
    power = _by_block(r.instance_power_w)

    # the PE alone: its own critical path
    pe_rtl = design.write(run.path / f"{tag}_pe_rtl.v", ("mult", "pe"))
    pe_map = yosys.map_hierarchical(run, [pe_rtl], design.pe, tech, run.path / f"{tag}_pe_{tech.name}.v",
                                    clock_period_ps=period_ps, step=f"map_{tag}_pe")
    pe_sta = sta.analyse(run, pe_map.verilog, design.pe, tech, clock_period_ns=clock_period_ns, clock_port="clk",
                         step=f"sta_{tag}_pe")

    pe_area = mapped.modules[design.pe]
    mult_area = mapped.modules[design.mult_module]
    pe_power = (power["mult"] + power["pe"]) / pes
    mult_power = power["mult"] / pes
    energy = r.power_w * gr.cycles * clock_period_ns * 1e-9
    return {
        "tech": tech.name, "clock_period_ns": clock_period_ns, "sim_period_ns": sim_ps / 1000,
        "area": mapped.area, "cells": mapped.n_cells,
        "area_blocks": areas,
        "delay_ns": r.delay_ns, "min_period_ns": r.min_period_ns,
        "power_w": r.power_w, "power_dynamic_w": float(r.power_dynamic_w or 0.0),
        "power_leakage_w": float(r.power_leakage_w or 0.0), "power_clock_w": float(r.power_clock_w or 0.0),
        "power_vectorless_w": float(r.power_vectorless_w or math.nan),
        "power_blocks": power,
        "energy_pj": energy * 1e12, "energy_per_mac_pj": energy * 1e12 / gr.macs,
        "pe": {"area": pe_area, "area_in_array": (areas["mult"] + areas["pe"]) / pes,
               "mult_area": mult_area, "mult_area_share": mult_area / pe_area,
               "power_w": pe_power, "mult_power_w": mult_power,
               "mult_power_share": mult_power / pe_power if pe_power else math.nan,
               "delay_ns": pe_sta.delay_ns, "min_period_ns": pe_sta.min_period_ns, "cells": pe_map.n_cells},
        "power_gemm": {"shape": power_gemm.shape, "cycles": gr.cycles, "rtl_model_cycles": gr.expected_cycles,
                       "macs": gr.macs, "utilization": gr.utilization, "passed": gr.passed},
        "netlist": str(Path(mapped.verilog).name),
    }
