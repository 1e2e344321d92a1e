"""Nothing lost, ever: what survives which fault (issue 12).

Each defect has its test: the exit code, the one-line message, and where an earlier run exists, every
file of it byte for byte (sha256) before and after.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import flow
from core import config
from core.errors import ConfigError
from core.run import MARKER, RunDir, write_text

ROOT = Path(__file__).resolve().parent.parent


def digest(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (the lock files beside it excluded)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def earlier_run(path: Path) -> dict[str, str]:
    """A finished run: a report and some results."""
    with RunDir.open(path) as run:
        run.write_json("report.json", {"eps": 0.005, "verification": {"passed": True}})
        run.write_text("approx.v", "module m; endmodule\n")
        (run.logs / "1_x.log").write_text("log\n")
    return digest(path)


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------------------------- the run contract
def test_overwrite_that_fails_leaves_the_earlier_run_byte_identical(tmp_path):
    before = earlier_run(tmp_path / "r")
    with pytest.raises(ConfigError, match="bad"), RunDir.open(tmp_path / "r", overwrite=True) as run:
        assert run.path != (tmp_path / "r").resolve() and run.final == (tmp_path / "r").resolve()
        run.write_text("approx.v", "new\n")
        raise ConfigError("bad input")
    assert digest(tmp_path / "r") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.lock", "r"]


def test_overwrite_that_succeeds_replaces_the_run(tmp_path):
    earlier_run(tmp_path / "r")
    with RunDir.open(tmp_path / "r", overwrite=True) as run:
        run.write_text("new.txt", "new\n")
    assert sorted(digest(tmp_path / "r")) == [MARKER, "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.lock", "r"]


def test_new_run_that_fails_before_any_result_leaves_no_directory(tmp_path):
    with pytest.raises(ConfigError), RunDir.open(tmp_path / "r") as run:
        run.write_text("config.json", "{}")
        raise ConfigError("bad")
    assert not (tmp_path / "r").exists()


def test_new_run_that_fails_after_a_checkpoint_is_kept_for_resume(tmp_path):
    with pytest.raises(KeyboardInterrupt), RunDir.open(tmp_path / "r") as run:
        run.write_text("checkpoint.npz", "state")
        raise KeyboardInterrupt
    assert (tmp_path / "r" / "checkpoint.npz").is_file()


def test_what_a_killed_run_left_without_results_is_replaced(tmp_path):
    (tmp_path / "r" / "logs").mkdir(parents=True)
    (tmp_path / "r" / MARKER).touch()
    (tmp_path / "r" / "seed.v").write_text("half")
    with RunDir.open(tmp_path / "r") as run:
        assert not (run.path / "seed.v").exists()


def test_a_directory_axflow_did_not_create_is_never_replaced(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "mine.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"^run directory .* already exists \(use --overwrite to replace it\)$"):
        with RunDir.open(tmp_path / "r"):
            pass
    assert (tmp_path / "r" / "mine.txt").read_text() == "mine"


def test_only_resumable_commands_suggest_resume(tmp_path):
    earlier_run(tmp_path / "r")
    with pytest.raises(ConfigError, match=r"--overwrite to replace it or --resume to continue it\)$"):
        with RunDir.open(tmp_path / "r", resumable=True):
            pass


def test_resume_that_fails_removes_nothing(tmp_path):
    before = earlier_run(tmp_path / "r")
    with pytest.raises(ConfigError), RunDir.open(tmp_path / "r", resume=True):
        raise ConfigError("bad")
    assert digest(tmp_path / "r") == before


def test_a_swap_killed_half_way_is_undone(tmp_path):
    before = earlier_run(tmp_path / "r")
    os.replace(tmp_path / "r", tmp_path / ".r.old")
    (tmp_path / ".r.staging").mkdir()
    with RunDir.open(tmp_path / "r", resume=True):
        pass
    assert digest(tmp_path / "r") == before
    assert not (tmp_path / ".r.staging").exists()


HOLD = """
import sys, time
from core.run import RunDir
with RunDir.open(sys.argv[1], resume=True):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_command_on_a_run_directory_is_refused_naming_the_lock(tmp_path):
    earlier_run(tmp_path / "r")
    with subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "r")], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
            with pytest.raises(ConfigError, match=r"^run directory .* is in use by another command \(it holds "
                                                  r"the lock .*\.r\.lock\)$"):
                with RunDir.open(tmp_path / "r", resume=True):
                    pass
        finally:
            proc.kill()
    with RunDir.open(tmp_path / "r", resume=True):  # the lock of a killed process does not block
        pass


def test_files_are_written_under_a_temporary_name(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    target.write_text("old")
    real_replace = os.replace

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left on device") as info:
        write_text(target, "new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert info.value.filename == str(target)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


# ---------------------------------------------------------------------------------- settings
@pytest.mark.parametrize("key, raw", [("eps", "nan"), ("spare", "nan"), ("budget", "nan"), ("budget", "inf"),
                                      ("eps", "-inf")], ids=["eps-nan", "spare-nan", "budget-nan", "budget-inf",
                                                             "eps-minus-inf"])
def test_float_options_must_be_finite(key, raw):
    from evolve.job import EvolveConfig

    with pytest.raises(ConfigError, match=rf"^{key.upper()} must be a finite number, not {raw}$"):
        config.from_dict(EvolveConfig, {key: raw})


def test_eps_nan_on_the_command_line_is_one_line(tmp_path, capsys):
    assert flow.main(["evolve", "--eps", "nan", "--run-dir", str(tmp_path / "r")]) == 2
    assert one_line(capsys) == "error: EPS must be a finite number, not nan"
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------- helpers for commands
def run_flow(capsys, *argv: str) -> tuple[int, str]:
    """``flow.py ARGV`` in this process: the exit code and its one line on stderr."""
    code = flow.main([str(a) for a in argv])
    return code, one_line(capsys)


def evolve_config_json(run: Path, **settings) -> None:
    """A config.json as an evolve run of a 4x4 multiplier writes it."""
    from evolve.job import EvolveConfig

    cfg = EvolveConfig(bits=4, eps=0.05, budget=0, generations=10, run_dir=run, **settings)
    write_text(run / "config.json", json.dumps({"command": "evolve", "settings": config.to_dict(cfg)}))


def tools_or_skip() -> None:
    from conftest import need_tools

    need_tools("yosys", "iverilog", "vvp", "sta")


def seed_with_loop(tmp_path: Path) -> Path:
    path = tmp_path / "loop.v"
    path.write_text("module s (a, b, y);\n input [1:0] a; input [1:0] b; output [3:0] y;\n wire p, q;\n"
                    " assign p = a[0] & q;\n assign q = p | b[0];\n assign y = {p, q, a[1], b[1]};\nendmodule\n")
    return path


# ---------------------------------------------------------------------------------- 1: --overwrite
def _bad_seed(tmp_path: Path, kind: str) -> list[str]:
    if kind == "loop":
        return ["--bits", "2", "--seed-netlist", str(seed_with_loop(tmp_path))]
    if kind == "binary-5mb":
        (tmp_path / "big.v").write_bytes(os.urandom(5 << 20))
    else:
        (tmp_path / "big.v").write_text("this is not verilog at all ;;; }{\n" * (5 << 15))
    return ["--bits", "2", "--seed-netlist", str(tmp_path / "big.v")]


@pytest.mark.tools
@pytest.mark.parametrize("kind, code, pattern", [
    ("loop", 2, r"^error: seed netlist .* has a combinational loop through net"),
    ("binary-5mb", 2, r"^error: SEED_NETLIST must be a Verilog text file, not '.*big\.v \(binary\)'$"),
    ("text-5mb", 4, r"^error: yosys failed with exit code 1 \(log: .*\.r\.staging/logs/"),
], ids=["loop", "binary-5mb", "text-5mb"])
def test_evolve_overwrite_with_a_bad_seed_keeps_the_earlier_run(tmp_path, capsys, kind, code, pattern):
    tools_or_skip()
    before = earlier_run(tmp_path / "r")
    got, line = run_flow(capsys, "evolve", *_bad_seed(tmp_path, kind), "--generations", "10", "--budget", "0",
                         "--overwrite", "--run-dir", tmp_path / "r", "--quiet")
    assert got == code and __import__("re").match(pattern, line), line
    assert digest(tmp_path / "r") == before
    assert not (tmp_path / ".r.staging").exists()


@pytest.mark.tools
def test_evolve_with_a_bad_seed_leaves_no_directory(tmp_path, capsys):
    tools_or_skip()
    code, line = run_flow(capsys, "evolve", *_bad_seed(tmp_path, "loop"), "--generations", "10", "--budget", "0",
                          "--run-dir", tmp_path / "r", "--quiet")
    assert code == 2 and "combinational loop" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("option", ["--eps", "--spare", "--budget"])
def test_evolve_overwrite_with_nan_keeps_the_earlier_run(tmp_path, capsys, option):
    before = earlier_run(tmp_path / "r")
    code, line = run_flow(capsys, "evolve", option, "nan", "--overwrite", "--run-dir", tmp_path / "r")
    assert (code, line) == (2, f"error: {option[2:].upper()} must be a finite number, not nan")
    assert digest(tmp_path / "r") == before


@pytest.mark.tools
def test_ppa_overwrite_with_a_missing_top_keeps_the_earlier_run(tmp_path, capsys):
    tools_or_skip()
    before = earlier_run(tmp_path / "r")
    code, line = run_flow(capsys, "ppa", "--verilog", seed_with_loop(tmp_path), "--top", "nosuch", "--bits", "2",
                          "--overwrite", "--run-dir", tmp_path / "r")
    assert code == 2 and line.startswith("error: ") and "cannot be read as Verilog" in line and "nosuch" in line
    assert digest(tmp_path / "r") == before


@pytest.mark.tools
def test_ppa_bits_that_do_not_match_the_design(tmp_path, capsys):
    tools_or_skip()
    v = tmp_path / "m.v"
    v.write_text("module m (a, b, y);\n input [3:0] a; input [3:0] b; output [7:0] y;\n assign y = a * b;\n"
                 "endmodule\n")
    code, line = run_flow(capsys, "ppa", "--verilog", v, "--top", "m", "--bits", "6", "--run-dir", tmp_path / "r")
    assert (code, line) == (2, f"error: module m in {v} must have ports input a[6], input b[6], output y[12] "
                               "(from BITS and BITS_B), not input a[4], input b[4], output y[8]")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------- 3: refused --resume
def _resumable(tmp_path: Path, checkpoint: bytes) -> tuple[Path, dict[str, str]]:
    run = tmp_path / "r"
    earlier_run(run)
    evolve_config_json(run)
    (run / "seed.json").write_text("{}")
    (run / "COMMANDS").write_text("cd / && yosys\n")
    (run / "checkpoint.npz").write_bytes(checkpoint)
    return run, digest(run)


def _foreign_checkpoint() -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps({"format": "something-else"}).encode(), dtype=np.uint8))
    return buf.getvalue()


@pytest.mark.tools
@pytest.mark.parametrize("checkpoint, pattern", [
    (b"not a zip file", r"^error: checkpoint .* is corrupt or truncated: delete it or use --overwrite"),
    (None, r"^error: .*checkpoint\.npz is not an axflow evolution checkpoint$"),
], ids=["corrupt", "foreign"])
def test_refused_resume_writes_nothing(tmp_path, capsys, checkpoint, pattern):
    tools_or_skip()
    run, before = _resumable(tmp_path, checkpoint or _foreign_checkpoint())
    code, line = run_flow(capsys, "evolve", "--resume", "--run-dir", run, "--quiet")
    assert code == 2 and __import__("re").match(pattern, line), line
    assert digest(run) == before


@pytest.mark.parametrize("text, pattern", [
    ("{not json", r"^error: run configuration .*config\.json must be valid JSON, not a corrupt file"),
    ("[1, 2]", r"^error: run configuration .*config\.json must be a JSON object with 'settings', not list$"),
    ('{"settings": {"eps": "nan"}}', r"^error: EPS must be a finite number, not nan$"),
], ids=["not-json", "not-an-object", "nan-setting"])
def test_corrupt_config_on_resume_is_one_line(tmp_path, capsys, text, pattern):
    run, _ = _resumable(tmp_path, b"x")
    (run / "config.json").write_text(text)
    before = digest(run)
    code, line = run_flow(capsys, "evolve", "--resume", "--run-dir", run, "--quiet")
    assert code == 2 and __import__("re").match(pattern, line), line
    assert digest(run) == before


# ---------------------------------------------------------------------------------- 4: the lock
def test_resume_while_another_process_holds_the_run_is_refused(tmp_path, capsys):
    run, before = _resumable(tmp_path, b"x")
    with subprocess.Popen([sys.executable, "-c", HOLD, str(run)], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
            code, line = run_flow(capsys, "evolve", "--resume", "--run-dir", run, "--quiet")
        finally:
            proc.kill()
    assert code == 2
    assert line == f"error: run directory {run} is in use by another command (it holds the lock {tmp_path}/.r.lock)"
    assert digest(run) == before
