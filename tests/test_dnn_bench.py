"""The DNN benchmarks' quick mode runs and returns well-formed rows."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")


def test_quick_bench_rows():
    from dnn import bench

    rows = bench.run(quick=True)
    assert {r["name"] for r in rows} >= {"dnn.lut_inference.lenet5.exact", "dnn.lut_inference.resnet20.rank2"}
    for r in rows:
        assert set(r) == {"name", "value", "unit", "reference", "ratio", "note"}
        if r["reference"]:
            assert math.isclose(r["ratio"], r["value"] / r["reference"])
