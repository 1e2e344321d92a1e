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
from pathlib import Path
from typing import Any

import numpy as np

from core import golden
from core.multrun import MultiplierRun


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


def lut_error(seed: int, spread: int, zero_exact: bool = True) -> np.ndarray:
    """Exact products plus uniform random errors in [-spread, spread]; zero for a zero operand unless
    ``zero_exact`` is False (evolved multipliers often return a non-zero product for a zero operand)."""
    rng = np.random.default_rng(seed)
    t = golden.table(8, 8, True)
    err = rng.integers(-spread, spread + 1, size=t.shape)
    if zero_exact:
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
    vals = golden.values(8, True)
    with open(path / "lut.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "y"])
        for ca in range(256):
            for cb in range(256):
                w.writerow([int(vals[ca]), int(vals[cb]), int(lut[ca, cb])])
    report = {"design": design, "wa": 8, "wb": 8, "signed": True, **metrics(lut), **costs}
    MultiplierRun.write(path, report, lut=lut)
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
                 period_ns: float = 10.0, power_vectors: int = 500) -> list[Path]:
    """Broken-array multiplier run directories whose costs are measured by ``flow.py ppa`` (the flow that
    characterises evolved multipliers: area on the technology's cells, OpenSTA delay, power from measured
    switching activity, ratios to the exact multiplier of the same flow). Used by the benchmarks when no
    evolved runs exist."""
    from ppa.cli import PpaConfig
    from ppa.cli import characterise as ppa_characterise

    out = []
    for k in ks:
        top = f"mul8s_ba{k}"
        src = folder / "characterisation" / f"{top}.v"
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(broken_array_verilog(k, top), encoding="utf-8")
        r = ppa_characterise(PpaConfig(verilog=src, top=top, tech=tech_name, clock_period=period_ns,
                                       power_vectors=power_vectors, run_dir=folder / "characterisation" / top,
                                       overwrite=True))
        if not np.array_equal(broken_array(k), _measured_table(r, k)):
            raise AssertionError(f"{top}: simulated errors differ from the broken-array definition")
        costs = {key: r[key] for key in ("area", "power_w", "delay_ns", "cells", "energy_pj", "area_ratio",
                                         "power_ratio", "delay_ratio", "exact")}
        out.append(write_run(folder / f"ba{k}", broken_array(k), {**costs, "clock_period_ns": period_ns,
                                                                   "tech": r["tech"]}))
    return out


def _measured_table(report: dict[str, Any], k: int) -> np.ndarray:
    """The product table the simulation of the broken-array Verilog read back."""
    sim = np.load(Path(report["run_dir"]) / "sim_build" / "errors" / "simulated.npy")
    return golden.decode(sim, 16, True).reshape(256, 256)
