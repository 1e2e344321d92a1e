"""Nothing lost, ever: what survives which fault (issue 12).

Each defect has its test: the exit code, the one-line message, and where an earlier run exists, every
file of it byte for byte (sha256) before and after.
"""

from __future__ import annotations

import errno
import hashlib
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
