"""Reference multipliers built from their definition, for tests, benchmarks and demonstrations.

``broken_array(k)``: a signed 8x8 array multiplier (Baugh-Wooley partial products) whose partial
products in columns below ``k`` are left out (the broken-array multiplier of Mahdiani et al. with a
vertical break line), so its error table has rank at most ``k``. ``lut_error(seed, spread)``: the exact
product plus independent random errors per entry, the worst case for LUT inference (full-rank error).
:func:`write_run` writes such a table as a multiplier run directory of the documented shape (``lut.npy``,
``lut.csv``, ``report.json``) with the costs the caller measured.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from verify import golden


def _bits(v: np.ndarray, i: int) -> np.ndarray:
    return (v >> i) & 1


def broken_array(k: int) -> np.ndarray:
    """Products of a signed 8x8 Baugh-Wooley array without the partial products of columns < k."""
    codes = np.arange(256, dtype=np.int64)
    a, b = codes[:, None], codes[None, :]
    total = np.zeros((256, 256), dtype=np.int64)
    for i in range(8):
        for j in range(8):
            if i + j < k:
                continue
            sign = -1 if (i == 7) != (j == 7) else 1
            total += sign * (_bits(a, i) * _bits(b, j)) << (i + j)
    return total


def lut_error(seed: int, spread: int) -> np.ndarray:
    """Exact products plus uniform random errors in [-spread, spread] (zero for a zero operand)."""
    rng = np.random.default_rng(seed)
    t = golden.table(8, 8, True)
    err = rng.integers(-spread, spread + 1, size=t.shape)
    err[0, :] = 0
    err[:, 0] = 0
    return t + err


def metrics(lut: np.ndarray) -> dict[str, Any]:
    exact = golden.table(8, 8, True)
    e = lut.astype(np.int64) - exact
    n = golden.norm(8, 8, True)
    return {"wce": int(np.abs(e).max()), "wce_pct": 100 * float(np.abs(e).max()) / n,
            "mae": float(np.abs(e).mean()), "mae_pct": 100 * float(np.abs(e).mean()) / n,
            "er": 100 * float((e != 0).mean()), "bias": float(e.mean())}


def write_run(path: Path, lut: np.ndarray, costs: dict[str, Any], design: str = "mul8s") -> Path:
    """A multiplier run directory: lut.npy (int32), lut.csv (a,b,y by value) and report.json."""
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "lut.npy", lut.astype(np.int32))
    vals = golden.values(8, True)
    with open(path / "lut.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "y"])
        for ca in range(256):
            for cb in range(256):
                w.writerow([int(vals[ca]), int(vals[cb]), int(lut[ca, cb])])
    report = {"design": design, "wa": 8, "wb": 8, "signed": True, **metrics(lut), **costs}
    (path / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def broken_array_verilog(k: int, top: str) -> str:
    """Verilog of :func:`broken_array` (kept partial products summed with their Baugh-Wooley signs)."""
    terms = []
    for i in range(8):
        for j in range(8):
            if i + j < k:
                continue
            sign = "-" if (i == 7) != (j == 7) else "+"
            terms.append(f"{sign} (32'(a[{i}] & b[{j}]) << {i + j})")
    body = " ".join(terms) if terms else ""
    return (f"module {top}(input [7:0] a, input [7:0] b, output [15:0] y);\n"
            f"  wire [31:0] s = 32'd0 {body};\n  assign y = s[15:0];\nendmodule\n")


def characterise(folder: Path, ks: tuple[int, ...], *, tech_name: str = "osu018",
                 period_ns: float = 10.0) -> list[Path]:
    """Broken-array multiplier run directories with area (Yosys on the technology's cells) and power
    (OpenSTA, vectorless, input activity 0.5 at ``period_ns``) measured for each, the exact design
    (k = 0) included as the ``exact`` reference. Used by the benchmarks when no evolved runs exist."""
    import re

    import tech
    from core import tools
    from core.errors import ToolError
    from core.run import RunDir
    from ppa import yosys

    technology = tech.load(tech_name)
    rd = RunDir.create(folder / "characterisation", overwrite=True)
    measured: dict[int, dict[str, float]] = {}
    for k in (0, *ks):
        top = f"mul8s_ba{k}"
        src = rd.path / f"{top}.v"
        src.write_text(broken_array_verilog(k, top), encoding="utf-8")
        mapped = yosys.map_to_cells(rd, [src], top, technology, rd.path / f"{top}_mapped.v", step=f"map_{top}")
        tcl = rd.logs / f"power_{top}.tcl"
        tcl.write_text("\n".join([
            f"read_liberty {technology.liberty}", f"read_verilog {mapped.verilog.resolve()}", f"link_design {top}",
            f"create_clock -name clk -period {period_ns}", "set_input_delay 0 -clock clk [all_inputs]",
            "set_output_delay 0 -clock clk [all_outputs]", "set_power_activity -input -activity 0.5",
            "report_power", "report_checks -digits 4", "exit", ""]), encoding="utf-8")
        log = rd.run("sta", [tools.STA.require(), str(tcl.resolve())], step=f"power_{top}")
        text = log.read_text(encoding="utf-8")
        total = re.search(r"^Total\s+\S+\s+\S+\s+\S+\s+(\S+)", text, re.M)
        arrival = re.search(r"^\s*(\S+)\s+data arrival time", text, re.M)
        if total is None or arrival is None:
            raise ToolError("sta", 0, log, text.splitlines()[-10:])
        measured[k] = {"area": mapped.area, "power_w": float(total.group(1)), "delay_ns": float(arrival.group(1)),
                       "cells": mapped.n_cells}
    ex = measured[0]
    out = []
    for k in ks:
        m = measured[k]
        costs = {**m, "energy_pj": m["power_w"] * period_ns * 1e3, "clock_period_ns": period_ns, "tech": tech_name,
                 "area_ratio": m["area"] / ex["area"], "power_ratio": m["power_w"] / ex["power_w"],
                 "delay_ratio": m["delay_ns"] / ex["delay_ns"],
                 "exact": {"area": ex["area"], "power_w": ex["power_w"], "delay_ns": ex["delay_ns"]}}
        out.append(write_run(folder / f"ba{k}", broken_array(k), costs))
    return out
