"""The accelerator-model benchmarks run (quick mode) and report what they must."""

from __future__ import annotations

import math

from accel_models import bench

KEYS = {"name", "value", "unit", "reference", "ratio", "note"}


def test_quick_bench_rows():
    rows = {r["name"]: r for r in bench.run(quick=True)}
    assert all(set(r) == KEYS for r in rows.values())
    assert {"resnet50_4x128x128_rtl_eval", "assignment_reevaluation", "scalesim_v2_differences",
            "rtl_contract_differences"} <= set(rows)
    assert rows["scalesim_v2_differences"]["value"] == 0 and rows["scalesim_v2_differences"]["reference"] > 0
    assert rows["rtl_contract_differences"]["value"] == 0
    for r in rows.values():
        assert math.isfinite(r["value"]) and r["value"] >= 0
        if r["reference"]:
            assert r["ratio"] == r["value"] / r["reference"]
