"""Fixture run directories for the accelerator-model tests: a multiplier run (truncated 8x8 signed
multiplier, report.json of the documented shape) and an array run, built under the test's tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.multrun import MultiplierRun


def mult_run(root: Path, name: str = "trunc4", drop_bits: int = 4, power_w: float = 2.0e-4,
             area: float = 9000.0, clock_ns: float = 10.0) -> Path:
    """A multiplier run: products with ``drop_bits`` low bits cleared, and its PPA report."""
    run = root / name
    vals = np.arange(256)
    vals = np.where(vals >= 128, vals - 256, vals)
    exact = np.outer(vals, vals)
    lut = (exact >> drop_bits) << drop_bits
    err = np.abs(lut - exact)
    report = {
        "design": "mul8s", "wa": 8, "wb": 8, "signed": True, "eps": 0.005, "wce": int(err.max()),
        "mae": float(err.mean()), "area": area, "area_ratio": area / 15000.0, "delay_ns": 3.0,
        "power_w": power_w, "energy_pj": power_w * clock_ns * 1e3, "tech": "osu018",
        "clock_period_ns": clock_ns,
        "exact": {"area": 15000.0, "delay_ns": 3.5, "power_w": 4.0e-4},
    }
    MultiplierRun.write(run, report, lut=lut)
    return run


def array_run(root: Path, mult: str = "exact", rows: int = 8, cols: int = 8, pods: int = 1,
              dataflow: str = "ws", power_w: float = 0.05, clock_ns: float = 10.0) -> Path:
    run = root / f"array_{rows}x{cols}_{dataflow}"
    run.mkdir(parents=True)
    report = {"power_w": power_w, "area": 1.0e6, "rows": rows, "cols": cols, "pods": pods,
              "dataflow": dataflow, "clock_period_ns": clock_ns, "mult": mult}
    (run / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return run
