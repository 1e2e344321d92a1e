"""The clock period of power (derived, or the user's checked against the exact design's STA delay), the
timing simulation's period, and runs on every technology with default settings (issue 18)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need_tools
from core.errors import ConfigError
from ppa import clock

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--power-vectors", "200", "--jobs", "1", "--epoch", "200", "--quiet"]


def flow(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flow.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)


# ------------------------------------------------------------------------------------------ rules
@pytest.mark.parametrize("delay, period", [(10.88, 14.0), (4.0, 5.0), (3.99, 5.0), (0.1, 1.0), (8.0, 10.0)],
                         ids=["gf180-8x8", "exact-multiple", "just-below", "tiny", "whole"])
def test_derived_period_is_the_margin_rounded_up(delay, period):
    assert clock.derive(delay) == period


def test_user_period_must_fit_the_exact_delay():
    assert clock.clock_period(12.0, 10.88, "x") == (12.0, "user")
    assert clock.clock_period(None, 10.88, "x") == (14.0, "derived")
    with pytest.raises(ConfigError, match=r"^--clock-period must be at least the STA delay of the exact mul8s "
                                          r"\(10\.88 ns\), not 10 ns"):
        clock.clock_period(10.0, 10.88, "the exact mul8s")


@pytest.mark.parametrize("user, settle, expected", [
    (30.0, 16.0, (30.0, "user")), (None, None, (14.0, "clock")), (None, 9.0, (14.0, "clock")),
    (None, 16.0, (20.0, "derived"))], ids=["user", "no-probe", "settles-in-clock", "slow-models"])
def test_sim_period(user, settle, expected):
    assert clock.sim_period(user, 14.0, settle) == expected


@pytest.mark.parametrize("settle, expected", [(3.0, (10.0, "clock")), (8.0, (40.0, "derived-ratio"))],
                         ids=["models-like-liberty", "models-twice-slower"])
def test_array_sim_period(settle, expected):
    assert clock.array_sim_period(None, 10.0, 4.0, settle) == expected


# ------------------------------------------------------------------------------------------ too short
def _one_line(proc: subprocess.CompletedProcess, pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.match(pattern, lines[0]), lines[0]


@pytest.mark.tools
def test_too_short_clock_period_stops_evolve_before_the_search(tmp_path):
    need_tools("yosys", "iverilog", "vvp", "sta")
    d = tmp_path / "run"
    proc = flow("evolve", "--bits", "4", "--eps", "0.05", "--budget", "600", "--clock-period", "0.1",
                "--run-dir", str(d), *QUICK, timeout=300)
    _one_line(proc, r"^error: --clock-period must be at least the STA delay of the exact mul4s on osu018 "
                    r"\(\d+(\.\d+)? ns\), not 0\.1 ns \(leave it out to derive it\)$")
    assert not d.exists()  # nothing evolved, nothing left behind


@pytest.mark.tools
@pytest.mark.sim
def test_too_short_clock_period_stops_ppa(tmp_path):
    need_tools("yosys", "iverilog", "vvp", "sta")
    rtl = tmp_path / "mul4s.v"
    assert flow("rtl", "--bits", "4", "--out", str(rtl)).returncode == 0
    proc = flow("ppa", "--verilog", str(rtl), "--top", "mul4s", "--bits", "4", "--clock-period", "0.1",
                "--run-dir", str(tmp_path / "p"), timeout=300)
    _one_line(proc, r"^error: --clock-period must be at least the STA delay of the exact mul4s on osu018 "
                    r"\(\d+(\.\d+)? ns\), not 0\.1 ns")
    assert not (tmp_path / "p").exists()


@pytest.mark.tools
@pytest.mark.sim
def test_too_short_clock_period_stops_array_before_verification(tmp_path):
    need_tools("yosys", "iverilog", "vvp", "sta")
    proc = flow("array", "--rows", "2", "--cols", "2", "--bits", "4", "--shapes", "3x5x4", "--clock-period", "0.1",
                "--quiet", "--run-dir", str(tmp_path / "a"), timeout=600)
    _one_line(proc, r"^error: --clock-period must be at least the STA delay of the exact \w+ core on osu018 "
                    r"\(\d+(\.\d+)? ns\), not 0\.1 ns")
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------------------------------ technologies
def _evolve(d: Path, tech: str, bits: int, *extra: str) -> dict:
    proc = flow("evolve", "--bits", str(bits), "--eps", "0.02", "--budget", "0", "--generations", "400",
                "--tech", tech, "--run-dir", str(d), *QUICK, *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads((d / "report.json").read_text())


def _derived_clock_holds(r: dict) -> None:
    ck = r["clock"]
    assert ck["clock_period_source"] == "derived" and r["clock_period_ns"] == ck["clock_period_ns"]
    slower = max(r["exact"]["delay_ns"], r["delay_ns"])
    assert r["clock_period_ns"] == clock.derive(slower) and r["clock_period_ns"] >= 1.25 * slower
    assert ck["sim_period_ns"] >= r["clock_period_ns"]


@pytest.mark.tools
@pytest.mark.sim
@pytest.mark.parametrize("name", ["osu035", "osu050"])
def test_qflow_technologies_by_name(tmp_path, name):
    need_tools("yosys", "iverilog", "vvp", "sta")
    import tech

    try:
        tech.load(name)
    except ConfigError as exc:
        pytest.skip(str(exc))
    r = _evolve(tmp_path / name, name, 4)
    assert r["tech"] == name and r["verification"]["passed"] and r["power_w"] > 0
    assert (tmp_path / name / f"approx_{name}.v").read_text().count("X1") > 0  # OSU cell names
    _derived_clock_holds(r)
    assert r["clock"]["sim_period_source"] == "clock"  # the OSU models' delays are the Liberty's


@pytest.mark.slow
@pytest.mark.tools
@pytest.mark.sim
@pytest.mark.parametrize("name", ["osu018", "osu035", "osu050", "gf180"])
def test_every_technology_at_8x8_with_default_settings(tmp_path, name, request):
    need_tools("yosys", "iverilog", "vvp", "sta")
    t = str(request.getfixturevalue("gf180_dir")) if name == "gf180" else name
    r = _evolve(tmp_path / name, t, 8)
    assert r["verification"]["passed"] and r["verification"]["exhaustive"]
    _derived_clock_holds(r)
    if name == "gf180":  # its cell models give every arc 1 ns: the timing simulation needs longer
        assert r["exact"]["delay_ns"] > 10 and r["clock"]["sim_period_source"] == "derived"


@pytest.mark.slow
@pytest.mark.tools
@pytest.mark.sim
def test_gf180_ppa_at_8x8_with_default_settings(tmp_path, gf180_dir):
    need_tools("yosys", "iverilog", "vvp", "sta")
    rtl = tmp_path / "mul8s.v"
    assert flow("rtl", "--bits", "8", "--out", str(rtl)).returncode == 0
    proc = flow("ppa", "--verilog", str(rtl), "--top", "mul8s", "--tech", str(gf180_dir),
                "--run-dir", str(tmp_path / "p"))
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "p" / "report.json").read_text())
    assert r["area_ratio"] == pytest.approx(1.0) and r["wce"] == 0
    assert r["clock"]["clock_period_source"] == "derived" and r["clock_period_ns"] == clock.derive(r["delay_ns"])
    assert r["clock"]["sim_period_ns"] > r["clock_period_ns"]


@pytest.mark.slow
@pytest.mark.tools
@pytest.mark.sim
def test_gf180_array_of_8x8_multipliers_with_default_settings(tmp_path, gf180_dir):
    need_tools("yosys", "iverilog", "vvp", "sta")
    proc = flow("array", "--rows", "2", "--cols", "2", "--mult", "exact", "--shapes", "4x4x4", "--tech",
                str(gf180_dir), "--quiet", "--run-dir", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "a" / "report.json").read_text())
    assert r["wa"] == 8 and r["verification"]["passed"] and r["ppa"]["power_gemm"]["passed"]
    ck = r["clock"]
    assert ck["clock_period_source"] == "derived" and r["clock_period_ns"] == clock.derive(ck["clock_delay_ns"])
    assert ck["sim_period_source"] == "derived-ratio" and ck["sim_period_ns"] > r["clock_period_ns"]
