"""The other stages' commands: ppa of a given multiplier, sweeps over EPS, re-verification, benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need_tools

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.tools, pytest.mark.sim]


def flow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flow.py"), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900, stdin=subprocess.DEVNULL)


@pytest.fixture(autouse=True)
def _tools():
    need_tools("yosys", "iverilog", "vvp", "sta")


def test_ppa_of_a_truncated_multiplier(tmp_path):
    """A hand-written multiplier that drops the product's two lowest bits: its errors are known exactly."""
    (tmp_path / "trunc.v").write_text(
        "module trunc (a, b, y);\n input signed [3:0] a; input signed [3:0] b; output [7:0] y;\n"
        " wire signed [7:0] p = a * b;\n assign y = {p[7:2], 2'b00};\nendmodule\n")
    proc = flow("ppa", "--verilog", str(tmp_path / "trunc.v"), "--top", "trunc", "--bits", "4",
                "--run-dir", str(tmp_path / "run"), "--power-vectors", "200")
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "run" / "report.json").read_text())
    # dropping bits 0 and 1 rounds down by p mod 4: WCE 3, and the error is 0 exactly when 4 divides p
    assert r["wce"] == 3 and r["wce_pct"] == pytest.approx(100 * 3 / 64)
    import numpy as np

    from core import golden

    p = golden.table(4, 4, True).ravel()
    assert r["mae"] == pytest.approx(np.mean(p % 4)) and r["er"] == pytest.approx(100 * np.mean(p % 4 != 0))
    assert r["area_ratio"] < 1 and r["power_w"] > 0 and r["exact"]["area"] > r["area"]


def test_ppa_reports_x_outputs(tmp_path):
    (tmp_path / "x.v").write_text("module x (a, b, y);\n input [3:0] a; input [3:0] b; output [7:0] y;\n"
                                  " assign y[7:1] = a * b;\nendmodule\n")
    proc = flow("ppa", "--verilog", str(tmp_path / "x.v"), "--top", "x", "--bits", "4", "--no-signed",
                "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: x drives X or Z on y for 256 input pairs"


def test_sweep_reuses_finished_runs(tmp_path):
    args = ["sweep", "--eps", "0.05", "0.1", "--bits", "3", "--generations", "300", "--budget", "0", "--jobs", "1",
            "--run-dir", str(tmp_path / "sw"), "--quiet"]
    first = flow(*args)
    assert first.returncode == 0, first.stderr
    sweep = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [r["eps"] for r in sweep["runs"]] == [0.05, 0.1] and all(r["verified"] for r in sweep["runs"])
    assert [r["wce_limit"] for r in sweep["runs"]] == [0, 1]
    for name in ("sweep.csv", "sweep.md", "cost_vs_eps.png", "error_vs_eps.png"):
        assert (tmp_path / "sw" / name).stat().st_size > 0
    stamp = (tmp_path / "sw" / "eps0.1-seed1" / "report.json").stat().st_mtime_ns
    again = flow(*args)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "sw" / "eps0.1-seed1" / "report.json").stat().st_mtime_ns == stamp


def test_bench_smoke(tmp_path):
    proc = flow("bench", "--suite", "evolve", "--quick", "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "b.json").read_text())
    names = [r["name"] for r in rows]
    assert names[0].startswith("reference evaluation") and len(rows) == 6
    two = [r for n, r in zip(names, rows) if not n.startswith("three-input nodes")]
    three = [r for n, r in zip(names, rows) if n.startswith("three-input nodes")]
    assert len(two) == 4 and len(three) == 2
    assert all(r["value"] > 0 for r in rows) and all(r["ratio"] > 1 for r in two[1:])
    # the three-input evaluator's rows are measured against the two-input one: a ratio, not necessarily > 1
    assert all(r["ratio"] > 0 for r in three)


def test_timing_sta_refuses_a_slower_mapping(tmp_path):
    """A 3x3 run at EPS 5% keeps an exact circuit (limit 0) which ABC maps slower than the RTL's mapping."""
    proc = flow("evolve", "--bits", "3", "--eps", "0.05", "--generations", "300", "--budget", "0", "--jobs", "1",
                "--timing", "sta", "--run-dir", str(tmp_path / "run"), "--quiet", "--power-vectors", "100")
    assert proc.returncode == 5
    assert proc.stderr.strip().startswith("error: the evolved multiplier is slower than the exact one (")
    r = json.loads((tmp_path / "run" / "report.json").read_text())
    assert r["timing"]["met"] is False and r["timing"]["approx_delay_ns"] > r["timing"]["exact_delay_ns"]
    assert r["depth"] <= r["exact"]["depth"] and r["verification"]["passed"]


@pytest.mark.slow
def test_bench_array_quick(tmp_path):
    """The array suite measures the 4x4 array in quick mode: verification and PPA times, and the array's
    saving next to the multiplier's own, from a multiplier it evolves itself when none is given."""
    env = {k: v for k, v in os.environ.items() if k != "AXFLOW_ARRAY_MULT"}
    proc = subprocess.run([sys.executable, str(ROOT / "flow.py"), "bench", "--suite", "array", "--quick", "--json",
                           str(tmp_path / "b.json")], capture_output=True, text=True, cwd=ROOT, timeout=1200,
                          stdin=subprocess.DEVNULL, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads((tmp_path / "b.json").read_text())}
    verify = rows["4x4 ws array: verify 16x16x16 GEMM"]
    assert verify["value"] > 0 and "= rtl model: True, correct: True" in verify["note"]
    area = rows["4x4 ws array: array area ratio (evolved / exact)"]
    # the multiplier is a share of the array, so the array saves less than the multiplier alone (ratio > 1)
    assert 0 < area["value"] <= 1 and area["reference"] <= area["value"]


def test_array_command_with_a_relative_run_directory(tmp_path):
    """`flow.py array` from another directory, run directory given relative to it: verified, reported."""
    base = [sys.executable, str(ROOT / "flow.py"), "array", "--rows", "2", "--cols", "2", "--no-ppa", "--quiet"]
    proc = subprocess.run([*base, "--shapes", "3x5x4", "--run-dir", "arr"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "arr" / "report.json").read_text())
    assert r["verification"]["passed"] and r["verification"]["cycles_match"]
    assert [g["shape"] for g in r["verification"]["gemms"]] == ["3x5x4"]
    assert (tmp_path / "arr" / "array.v").stat().st_size > 0
    bad = subprocess.run([*base, "--rows", "0", "--run-dir", "bad"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: ROWS must be a positive integer, not 0"
    assert not (tmp_path / "bad").exists()
