"""Array benchmarks (``flow.py bench --suite array``): the targets of the arrays issue, measured.

- The 8x8 weight-stationary array with the EPS=0.005 multiplier: the wall time of verifying it on a
  64x64x64 GEMM (Icarus, cycle count against the ``rtl`` model) and of synthesising it with its PPA
  report, against the 10-minute target.
- The array-level area and power ratios (evolved / exact multiplier in every PE, both costed in the same
  run) next to the multiplier-level ratios of the multiplier's own report.

The multiplier is the newest verified EPS=0.005 run under ``runs/mul8s/`` (sweeps included), or the run
directory in ``AXFLOW_ARRAY_MULT``; without one, a multiplier is evolved here first (60 s; 10 s quick).
Quick mode (``--quick``): a 4x4 array and a 16x16x16 GEMM.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from core.bench import row
from core.multrun import latest as latest_multiplier_run
from core.run import runs_root

TARGET_S = 600.0


def find_multiplier(eps: float = 0.005) -> Path | None:
    """``AXFLOW_ARRAY_MULT``, else the newest verified 8x8 signed run at ``eps``."""
    if os.environ.get("AXFLOW_ARRAY_MULT"):
        return Path(os.environ["AXFLOW_ARRAY_MULT"])
    return latest_multiplier_run(runs_root(), eps)


def run(quick: bool = False) -> list[dict[str, Any]]:
    from evolve import job
    from rtl_gen import array_job
    from rtl_gen.array_job import ArrayConfig

    size, shape = (4, "16x16x16") if quick else (8, "64x64x64")
    with tempfile.TemporaryDirectory() as tmp:
        mult = find_multiplier()
        origin = "its run directory"
        if mult is None:
            budget = 10.0 if quick else 60.0
            mult = Path(tmp) / "mult"
            job.run(job.EvolveConfig(eps=0.005, budget=budget, run_dir=mult, power_vectors=500), progress=False)
            origin = f"evolved here for {budget:g} s"
        cfg = ArrayConfig(rows=size, cols=size, mult=str(mult), shapes=(shape,), run_dir=Path(tmp) / "array")
        t0 = time.perf_counter()
        r = array_job.run(cfg, progress=False)
        wall = time.perf_counter() - t0
    rt, s, g = r["runtime"], r["savings"], r["verification"]["gemms"][0]
    ml = s["multiplier_level"]
    label = f"{size}x{size} ws array"
    note = f"multiplier {mult} ({origin})"
    return [
        row(f"{label}: verify {shape} GEMM", rt["verify_s"], "s", None,
            f"{g['cycles']:,} cycles = rtl model: {g['cycles_match']}, correct: {g['passed']}"),
        row(f"{label}: synthesis + PPA, evolved multiplier", rt["ppa_s"], "s"),
        row(f"{label}: verify + synthesis + PPA (one array)", rt["verify_s"] + rt["ppa_s"], "s", TARGET_S,
            "reference: the 10-minute target"),
        row(f"{label}: whole job (also the exact array's PPA)", wall, "s"),
        row(f"{label}: array area ratio (evolved / exact)", s["area_ratio"], "", ml["area_ratio"],
            f"reference: the multiplier alone; {note}"),
        row(f"{label}: array power ratio (evolved / exact)", s["power_ratio"], "", ml["power_ratio"],
            "reference: the multiplier alone"),
        row(f"{label}: PE area ratio", s["pe_area_ratio"], "", ml["area_ratio"],
            f"the multiplier takes {r['mult_area_share']:.1%} of the evolved PE's area"),
    ]
