"""Bad input through the real command line: one line on stderr, a non-zero exit, nothing touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def flow(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flow.py"), *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=600, stdin=subprocess.DEVNULL)


def one_line_error(proc: subprocess.CompletedProcess, code: int, pattern: str) -> None:
    import re

    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.match(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("args, pattern", [
    (["--eps", "1.5"], r"^error: EPS must be in \(0, 1\), not 1\.5$"),
    (["--eps", "0"], r"^error: EPS must be in \(0, 1\), not 0\.0$"),
    (["--eps", "half"], r"^error: EPS must be a number, not 'half'$"),
    (["--bits", "1"], r"^error: BITS must be an operand width in 2\.\.16, not 1$"),
    (["--bits", "8", "--bits-b", "17"], r"^error: BITS_B must be an operand width in 2\.\.16, not 17$"),
    (["--tech", "tsmc7"], r"^error: TECH must be a built-in technology .* \(choices: osu018, osu035, osu050\)$"),
    (["--cost", "speed"], r"^error: COST must be one of the listed choices, not 'speed' "
                          r"\(choices: area, transistors, power\)$"),
    (["--budget", "0"], r"^error: BUDGET is 0 \(no time limit\), so GENERATIONS must be given$"),
    (["--eps-start", "0.001"], r"^error: EPS_START must be in \[0\.005, 1\), not 0\.001$"),
    (["--operands", "/no/such.csv"], r"^error: cannot read operand histogram /no/such\.csv"),
], ids=["eps-high", "eps-zero", "eps-text", "bits-low", "bits-b-high", "tech", "cost", "budget", "eps-start",
        "operands"])
def test_bad_settings(tmp_path, args, pattern):
    proc = flow("evolve", *args, "--run-dir", str(tmp_path / "run"))
    one_line_error(proc, 2, pattern)
    assert not (tmp_path / "run").exists()


def test_unknown_option_is_an_error():
    proc = flow("evolve", "--epss", "0.1")
    assert proc.returncode == 2 and "unrecognized arguments: --epss" in proc.stderr


def test_existing_run_is_left_alone(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text("{}")
    proc = flow("evolve", "--run-dir", str(run))
    one_line_error(proc, 2, r"^error: run directory .* already exists \(use --overwrite to replace it or "
                            r"--resume to continue it\)$")
    assert [p.name for p in run.iterdir()] == ["report.json"] and (run / "report.json").read_text() == "{}"


def test_missing_tool_names_the_package(tmp_path):
    proc = flow("evolve", "--run-dir", str(tmp_path / "run"), env={"YOSYS": str(tmp_path / "no-yosys")})
    one_line_error(proc, 3, r"^error: yosys not found at YOSYS=")
    assert not (tmp_path / "run").exists()


def test_resume_without_a_run(tmp_path):
    proc = flow("evolve", "--resume", "--run-dir", str(tmp_path / "none"))
    one_line_error(proc, 2, r"^error: run directory .*none does not exist, so there is nothing to resume$")
    assert not (tmp_path / "none").exists() and not (tmp_path / ".none.lock").exists()


def _seed_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "seed.v"
    path.write_text("module s (a, b, y);\n input [1:0] a; input [1:0] b; output [3:0] y;\n" + body + "endmodule\n")
    return path


@pytest.mark.tools
@pytest.mark.parametrize("body, pattern", [
    (" wire p, q;\n assign p = a[0] & q;\n assign q = p | b[0];\n assign y = {p, q, a[1], b[1]};\n",
     r"^error: seed netlist .* has a combinational loop through net (p|q|y\[[23]\])$"),
    (" assign y[0] = a[0] & b[0];\n assign y[1] = a[1];\n assign y[2] = b[1];\n",
     r"^error: seed netlist .*: output y\[3\] is undriven$"),
], ids=["loop", "undriven"])
def test_bad_seed_netlists(tmp_path, body, pattern):
    from conftest import need_tools

    need_tools("yosys")
    seed = _seed_file(tmp_path, body)
    proc = flow("evolve", "--bits", "2", "--seed-netlist", str(seed), "--run-dir", str(tmp_path / "run"),
                "--generations", "10", "--budget", "0")
    one_line_error(proc, 2, pattern)


def test_rtl_command_rejects_widths(tmp_path):
    proc = flow("rtl", "--bits", "17", "--out", str(tmp_path / "m.v"))
    one_line_error(proc, 2, r"^error: BITS must be an operand width in 2\.\.16, not 17$")
    assert not (tmp_path / "m.v").exists()


@pytest.mark.parametrize("args, pattern", [
    (["rtl", "--wa", "8"], r"^error: --wa is now --bits$"),
    (["rtl", "--wb", "4"], r"^error: --wb is now --bits-b$"),
    (["accel", "--clock-ns", "5"], r"^error: --clock-ns is now --clock-period$"),
    (["sweep", "--out", "x"], r"^error: --out is now --run-dir$"),
    (["library", "--out", "x"], r"^error: --out is now --run-dir$"),
], ids=["rtl-wa", "rtl-wb", "accel-clock-ns", "sweep-out", "library-out"])
def test_old_option_spellings_name_the_new_one(tmp_path, args, pattern):
    proc = flow(*args, cwd=tmp_path)
    one_line_error(proc, 2, pattern)
    assert not any(tmp_path.iterdir())
