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
    """The one line of the error (progress bars, which end in a carriage return, aside)."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip() and "it/s]" not in line
             and not line.rstrip().endswith("/s]")]
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


def test_new_run_whose_tool_failed_keeps_its_log_until_the_next_run(tmp_path):
    from core.errors import ToolError

    with pytest.raises(ToolError), RunDir.open(tmp_path / "r") as run:
        run.run("python", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], step="fails")
    assert (tmp_path / "r" / "logs" / "1_fails.log").read_text().strip() == "boom"
    with RunDir.open(tmp_path / "r") as run:  # no result in it: the next run replaces it, no --overwrite needed
        assert not (run.logs / "1_fails.log").exists()


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


def library_config_json(run: Path, **settings) -> None:
    """A config.json as ``flow.py library`` writes it (the composite stage resumes a library that has one)."""
    from evolve.library import LibraryConfig

    cfg = LibraryConfig(run_dir=run, **settings)
    run.mkdir(parents=True)
    write_text(run / "config.json", json.dumps({"command": "library", "settings": config.to_dict(cfg)}))


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
    # the staging directory goes, or after a tool failure stays for the log the message names
    assert (tmp_path / ".r.staging").exists() == (code == 4)
    if code == 4:
        log = line.split("(log: ")[1].split(")")[0]
        assert Path(log).is_file()
        with RunDir.open(tmp_path / "r", resume=True):  # the next command on the run clears it away
            pass
        assert not (tmp_path / ".r.staging").exists() and digest(tmp_path / "r") == before


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
    assert code == 2 and line.startswith("error: TOP must be a module of ") and "not 'nosuch'" in line
    assert digest(tmp_path / "r") == before


@pytest.mark.tools
def test_ppa_bits_that_do_not_match_the_design(tmp_path, capsys):
    tools_or_skip()
    v = tmp_path / "m.v"
    v.write_text("module m (a, b, y);\n input [3:0] a; input [3:0] b; output [7:0] y;\n assign y = a * b;\n"
                 "endmodule\n")
    code, line = run_flow(capsys, "ppa", "--verilog", v, "--top", "m", "--bits", "6", "--run-dir", tmp_path / "r")
    assert (code, line) == (2, f"error: module m of {v} must have ports input a[6], input b[6], output y[12] "
                               "(from --bits, --bits-b and --ports), not input a[4], input b[4], output y[8]")
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


# ---------------------------------------------------------------------------------- 5: Ctrl-C in a sweep
# A sweep's members are Dask tasks in worker processes (evolve.cluster): its Ctrl-C, resume by finished
# members and a member killed before its first result are tested on real runs in test_sweep_dask.py.


# ---------------------------------------------------------------------------------- 6: SIGKILL early
@pytest.mark.tools
@pytest.mark.sim
def test_sigkill_early_then_resume(tmp_path):
    """The checkpoint exists before the first epoch: an evolve killed in its first seconds resumes."""
    import signal
    import time

    tools_or_skip()
    d = tmp_path / "killed"
    quick = ["--power-vectors", "200", "--jobs", "1", "--epoch", "200", "--quiet"]
    with subprocess.Popen([sys.executable, str(ROOT / "flow.py"), "evolve", "--bits", "4", "--eps", "0.05",
                           "--budget", "300", "--run-dir", str(d), *quick], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True) as proc:
        deadline = time.time() + 120
        while not (d / "checkpoint.npz").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    assert (d / "checkpoint.npz").is_file(), "no checkpoint within 120 s"
    resumed = subprocess.run([sys.executable, str(ROOT / "flow.py"), "evolve", "--resume", "--budget", "1",
                              "--run-dir", str(d), "--quiet"], cwd=ROOT, capture_output=True, text=True,
                             timeout=900, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((d / "report.json").read_text())["verification"]["passed"]


# ---------------------------------------------------------------------------------- 8: the file system
def _fake_evolve_run(path: Path, lut: bytes | None = None) -> Path:
    """What ``verify`` and ``array --mult`` read of a 2x2 signed evolve run (no simulation needed to fail)."""
    import io

    import numpy as np

    from core import golden

    path.mkdir(parents=True)
    (path / "report.json").write_text(json.dumps({"design": "mul2s", "module": "mul2s_ax", "wa": 2, "wb": 2,
                                                  "signed": True, "wce_limit": 0, "tech": "osu018", "eps": 0.01}))
    (path / "config.json").write_text(json.dumps({"settings": {"tech": "osu018"}}))
    for name in ("approx.v", "approx_osu018.v"):
        (path / name).write_text("module mul2s_ax (a, b, y);\n input [1:0] a; input [1:0] b; output [3:0] y;\n"
                                 " assign y = $signed(a) * $signed(b);\nendmodule\n")
    (path / "approx.json").write_text("{}")
    if lut is None:
        buf = io.BytesIO()
        np.save(buf, golden.table(2, 2, True).astype(np.int32))
        lut = buf.getvalue()
    (path / "lut.npy").write_bytes(lut)
    return path


def _npy(array) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    return buf.getvalue()


def _bad_luts() -> dict[str, tuple[bytes, str]]:
    import numpy as np

    good = _npy(np.zeros((4, 4), dtype=np.int32))
    return {
        "truncated": (good[:-9], r"must be a whole \.npy array, not a truncated or corrupt file"),
        "empty": (b"", r"must be a whole \.npy array, not a truncated or corrupt file"),
        "float": (_npy(np.zeros((4, 4))), r"must have an integer dtype \(int32\), not float64$"),
        "string": (_npy(np.full((4, 4), "x")), r"must have an integer dtype \(int32\), not <U1$"),
        "shape": (_npy(np.zeros((4, 2), dtype=np.int32)), r"must have shape \(4, 4\), not \(4, 2\)$"),
        "range": (_npy(np.full((4, 4), 99, dtype=np.int32)), r"must hold 4-bit signed products in -8\.\.7, "
                                                             r"not 99 at \[0, 0\]$"),
    }


@pytest.mark.parametrize("kind", list(_bad_luts()))
def test_array_mult_with_a_bad_lut_is_one_line(tmp_path, capsys, kind):
    data, message = _bad_luts()[kind]
    run = _fake_evolve_run(tmp_path / "m", data)
    code, line = run_flow(capsys, "array", "--mult", run, "--no-ppa", "--run-dir", tmp_path / "a", "--quiet")
    assert code == 2 and __import__("re").search(rf"^error: product table {run}/lut\.npy {message}", line), line
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("kind", list(_bad_luts()))
def test_verify_with_a_bad_lut_is_one_line(tmp_path, capsys, kind):
    data, message = _bad_luts()[kind]
    run = _fake_evolve_run(tmp_path / "m", data)
    before = digest(run)
    code, line = run_flow(capsys, "verify", run)
    assert code == 2 and __import__("re").search(rf"^error: product table {run}/lut\.npy {message}", line), line
    assert digest(run) == before


@pytest.mark.parametrize("text, pattern", [
    ("{trunc", r"^error: run report .*report\.json must be valid JSON, not a corrupt file"),
    ("\x00\x01binary", r"^error: run report .*report\.json must be valid JSON, not a corrupt file"),
    ('{"wa": 2}', r"^error: run report .*report\.json must hold wa, wb, signed, wce_limit, tech and module"),
], ids=["truncated", "binary", "not-evolve"])
def test_verify_with_a_corrupt_report_is_one_line(tmp_path, capsys, text, pattern):
    run = _fake_evolve_run(tmp_path / "m")
    (run / "report.json").write_text(text)
    code, line = run_flow(capsys, "verify", run)
    assert code == 2 and __import__("re").match(pattern, line), line


def test_verify_names_the_failed_check():
    from verify.cli import _wce_line

    assert _wce_line({"wce": 48}, 3) == "WCE 48 > 3 (FAILED)"
    assert _wce_line({"wce": 2}, 3) == "WCE 2 <= 3"


def test_rtl_out_a_directory_is_one_line(tmp_path, capsys):
    code, line = run_flow(capsys, "rtl", "--out", tmp_path)
    assert (code, line) == (2, f"error: OUT must be a file name, not '{tmp_path} (a directory)'")


def test_rtl_out_refuses_to_replace_a_file(tmp_path, capsys):
    (tmp_path / "m.v").write_text("mine")
    code, line = run_flow(capsys, "rtl", "--out", tmp_path / "m.v")
    assert (code, line) == (2, f"error: {tmp_path / 'm.v'} already exists (use --overwrite to replace it)")
    assert (tmp_path / "m.v").read_text() == "mine"
    assert flow.main(["rtl", "--out", str(tmp_path / "m.v"), "--overwrite"]) == 0
    assert "module mul8s" in (tmp_path / "m.v").read_text()


def test_bench_json_into_a_missing_directory_is_refused_before_the_benchmarks(tmp_path, capsys, monkeypatch):
    from evolve import bench

    monkeypatch.setattr(bench, "run_suite", lambda *a: pytest.fail("the benchmarks ran"))
    code, line = run_flow(capsys, "bench", "--suite", "evolve", "--json", tmp_path / "no" / "b.json")
    assert (code, line) == (2, f"error: JSON must be a file in an existing directory, not "
                               f"'{tmp_path / 'no' / 'b.json'} (no directory {tmp_path / 'no'})'")


def test_accel_binary_topology_is_one_line(tmp_path, capsys):
    topo = tmp_path / "net.csv"
    topo.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(512))
    code, line = run_flow(capsys, "accel", "--net", topo, "--array", "8x8", "--run-dir", tmp_path / "a")
    assert (code, line) == (2, f"error: topology file {topo} must be a CSV text file, not binary")
    assert not (tmp_path / "a").exists()


def test_accel_existing_run_message_does_not_suggest_resume(tmp_path, capsys):
    earlier_run(tmp_path / "a")
    code, line = run_flow(capsys, "accel", "--net", "lenet5", "--array", "8x8", "--run-dir", tmp_path / "a")
    assert (code, line) == (2, f"error: run directory {tmp_path / 'a'} already exists (use --overwrite to "
                               "replace it)")


# read-only: a real read-only bind mount where the kernel allows it (root in a container usually may);
# otherwise the same EROFS is raised at the OS-call level (os.open, os.mkdir, io.open) in this process
@pytest.fixture
def read_only(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted: list[bool] = []

    def seal() -> str:
        bind = subprocess.run(["mount", "--bind", str(ro), str(ro)], capture_output=True, check=False)
        if bind.returncode == 0:
            mounted.append(True)
            if subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True,
                              check=False).returncode == 0:
                return "mount"
        _simulate_erofs(monkeypatch, ro)
        return "simulated"

    yield ro, seal
    if mounted:
        subprocess.run(["umount", str(ro)], check=False)


def _simulate_erofs(monkeypatch, root: Path) -> None:
    import builtins
    import io

    def under(p) -> bool:
        try:
            return Path(os.fsdecode(p)).resolve().is_relative_to(root.resolve())
        except (TypeError, ValueError):
            return False

    def refuse(p):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))

    real_open, real_os_open, real_mkdir = io.open, os.open, os.mkdir

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+") and under(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and under(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if under(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


READ_ONLY_COMMANDS = {
    "evolve-overwrite": ["evolve", "--overwrite", "--run-dir", "{ro}/r", "--quiet"],
    "evolve-resume": ["evolve", "--resume", "--run-dir", "{ro}/r", "--quiet"],
    "evolve-new": ["evolve", "--run-dir", "{ro}/new", "--quiet"],
    "sweep": ["sweep", "--eps", "0.01", "--run-dir", "{ro}/s", "--quiet"],
    "library-new": ["library", "--bits", "4", "--eps", "0.05", "--seeds", "1", "--run-dir", "{ro}/new-l", "--quiet"],
    "library-resume": ["library", "--bits", "4", "--eps", "0.05", "--seeds", "1", "--run-dir", "{ro}/l", "--quiet"],
    "verify": ["verify", "{ro}/m"],
    "rtl": ["rtl", "--out", "{ro}/m.v"],
    "accel": ["accel", "--net", "lenet5", "--array", "8x8", "--run-dir", "{ro}/a"],
    "array": ["array", "--no-ppa", "--rows", "2", "--cols", "2", "--run-dir", "{ro}/a", "--quiet"],
    "ppa": ["ppa", "--verilog", "{ro}/r/m.v", "--top", "m", "--bits", "2", "--run-dir", "{ro}/p"],
}


@pytest.mark.parametrize("command", list(READ_ONLY_COMMANDS))
def test_read_only_directory_is_one_line(read_only, capsys, command):
    ro, seal = read_only
    earlier_run(ro / "r")
    evolve_config_json(ro / "r")
    (ro / "r" / "m.v").write_text("module m (a, b, y);\n input [1:0] a; input [1:0] b; output [3:0] y;\n"
                                  " assign y = a * b;\nendmodule\n")
    _fake_evolve_run(ro / "m")
    library_config_json(ro / "l", bits=4, eps=(0.05,), seeds=(1,))  # an earlier library the command resumes
    before = digest(ro)
    if command in ("array", "ppa"):
        tools_or_skip()
    how = seal()
    code, line = run_flow(capsys, *[a.replace("{ro}", str(ro)) for a in READ_ONLY_COMMANDS[command]])
    assert code == 6, (how, line)
    assert __import__("re").match(rf"^error: cannot use {ro}/\S+: Read-only file system$", line), (how, line)
    assert digest(ro) == before


@pytest.mark.tools
def test_full_disk_during_an_overwrite_keeps_the_earlier_run(tmp_path, capsys, monkeypatch):
    import builtins
    import io

    tools_or_skip()
    before = earlier_run(tmp_path / "r")
    staging = (tmp_path / ".r.staging").resolve()
    real_open = io.open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # write() names no file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __getattr__(self, name):
            return getattr(self.f, name)

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        inside = isinstance(file, (str, os.PathLike)) and Path(file).resolve().is_relative_to(staging)
        return Full(f) if inside and "w" in mode and not str(file).endswith(".lock") else f

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)
    code, line = run_flow(capsys, "evolve", "--bits", "2", "--overwrite", "--run-dir", tmp_path / "r", "--quiet")
    assert code == 6 and __import__("re").match(rf"^error: cannot use {tmp_path / 'r'}: No space left on device$",
                                                line), line
    assert digest(tmp_path / "r") == before and not staging.exists()


@pytest.mark.tools
@pytest.mark.sim
def test_full_disk_during_calibration_keeps_the_earlier_run(tmp_path, capsys, monkeypatch):
    """The disk fills late, after the search and the result's PPA, when ``--calibrate`` writes its first
    trajectory circuit: one line, exit 6, and the run that ``--overwrite`` was replacing is untouched."""
    import builtins
    import io

    tools_or_skip()
    before = earlier_run(tmp_path / "r")
    calibration = (tmp_path / ".r.staging" / "calibration").resolve()
    real_open = io.open
    refused: list[str] = []

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and "w" in mode and Path(file).resolve().is_relative_to(calibration):
            refused.append(str(file))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)
    code, line = run_flow(capsys, "evolve", "--bits", "4", "--eps", "0.1", "--budget", "0", "--generations", "1000",
                          "--epoch", "100", "--jobs", "1", "--power-vectors", "200", "--calibrate", "2",
                          "--no-descent", "--overwrite", "--run-dir", tmp_path / "r", "--quiet")
    assert refused, "the run never reached its calibration"
    assert code == 6 and __import__("re").match(rf"^error: cannot use {tmp_path / 'r'}\S*: No space left on device$",
                                                line), line
    assert digest(tmp_path / "r") == before and not (tmp_path / ".r.staging").exists()


def test_full_disk_never_leaves_half_a_file(tmp_path, capsys, monkeypatch):
    import builtins

    (tmp_path / "m.v").write_text("old")
    real_open = builtins.open

    def fake_open(file, mode="r", *args, **kwargs):
        if "w" in mode and str(file).startswith(str(tmp_path)):
            f = real_open(file, mode, *args, **kwargs)
            f.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    code, line = run_flow(capsys, "rtl", "--out", tmp_path / "m.v", "--overwrite")
    assert (code, line) == (6, f"error: cannot use {tmp_path / 'm.v'}: No space left on device")
    monkeypatch.setattr(builtins, "open", real_open)
    assert (tmp_path / "m.v").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.v"]


# ---------------------------------------------------------------------------------- 7: histograms
def _hist(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "hist.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("value,count\n0,nan\n1,1\n", r"line 2: count must be a finite number >= 0, not 'nan'$"),
    ("value,count\n0,inf\n1,1\n", r"line 2: count must be a finite number >= 0, not 'inf'$"),
    ("value,count\n0,1\n1,-inf\n", r"line 3: count must be a finite number >= 0, not '-inf'$"),
    ("value,count\n0,1e400\n", r"line 2: count must be a finite number >= 0, not '1e400'$"),
    ("value,count\n0,1e308\n1,1e308\n", r": count must sum to a finite number, not inf$"),
    ("value,count\n0,x\n", r"line 2: value must be an integer and count a number, not '0', 'x'$"),
    ("value,count\n0.5,1\n", r"line 2: value must be an integer and count a number, not '0\.5', '1'$"),
    ("value,count\n0,1,2\n", r"line 2: must have 2 columns, not 3$"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", r" must be a CSV text file, not binary$"),
    (b"value,count\n\xff\xfe,1\n", r" must be UTF-8 CSV text, not binary$"),
], ids=["nan", "inf", "minus-inf", "overflow", "sum-overflow", "text", "float-value", "extra-column", "binary",
        "not-utf8"])
def test_histogram_refuses_what_is_not_a_histogram(tmp_path, text, message):
    from ppa.activity import read_histogram

    path = _hist(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"^operand histogram {path}.*{message}"):
        read_histogram(path, 2, 2, True)


@pytest.mark.tools
def test_evolve_with_a_nan_histogram_stops_before_it_starts(tmp_path, capsys):
    tools_or_skip()
    path = _hist(tmp_path, "value,count\n0,nan\n1,1\n")
    code, line = run_flow(capsys, "evolve", "--bits", "2", "--operands", path, "--run-dir", tmp_path / "r",
                          "--quiet")
    assert (code, line) == (2, f"error: operand histogram {path} line 2: count must be a finite number >= 0, "
                               "not 'nan'")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------- property tests
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CELLS = st.one_of(st.integers(-10, 10).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.sampled_from(["nan", "inf", "-inf", "", " ", "1e999", "0x1", "value", "count", "\"", "1,2"]),
                  st.text(max_size=4))


def _mutated(draw, data: bytes) -> bytes:
    """Half the time the file with one byte flipped, its tail cut, or a few bytes inserted."""
    if draw(st.booleans()):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and data:
            data = data[:pos] + bytes([data[pos] ^ draw(st.integers(1, 255))]) + data[pos + 1:]
        elif op == "cut":
            data = data[:pos]
        else:
            data = data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos:]
    return data


@st.composite
def histogram_files(draw) -> bytes:
    header = draw(st.sampled_from(["value,count", "value,count_a,count_b", "value", "count,value", ""]))
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=4), max_size=6))
    text = header + "\n" + "\n".join(",".join(r) for r in rows)
    data = text.encode("utf-8", errors="surrogatepass")
    return _mutated(draw, data)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(histogram_files(), st.binary(max_size=64)), signed=st.booleans())
def test_histogram_reader_raises_only_config_errors(tmp_path, data, signed):
    """Random and mutated files: a histogram (probabilities summing to 1) or a ConfigError, nothing else."""
    import numpy as np

    from ppa.activity import read_histogram

    path = tmp_path / "h.csv"
    path.write_bytes(data)
    try:
        pa, pb = read_histogram(path, 3, 2, signed)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    assert np.isfinite(pa).all() and np.isfinite(pb).all() and (pa >= 0).all() and (pb >= 0).all()
    assert abs(pa.sum() - 1) < 1e-9 and abs(pb.sum() - 1) < 1e-9


@st.composite
def lut_files(draw) -> bytes:
    import numpy as np

    dtype = draw(st.sampled_from(["int32", "int64", "int8", "uint16", "float64", "float32", "bool", "<U2",
                                  "complex64"]))
    shape = draw(st.sampled_from([(4, 4), (4, 2), (16,), (), (4, 4, 1), (0, 4)]))
    values = draw(st.lists(st.integers(-20, 20), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    array = np.array(values, dtype=np.int64).reshape(shape).astype(dtype)
    data = _npy(array)
    return _mutated(draw, data)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(lut_files(), st.binary(max_size=200)), signed=st.booleans())
def test_lut_reader_raises_only_config_errors(tmp_path, data, signed):
    """Random and mutated .npy files: a 4x4 int64 table of 4-bit products or a ConfigError, nothing else."""
    import numpy as np

    from core.tables import read_lut

    path = tmp_path / "lut.npy"
    path.write_bytes(data)
    try:
        lut = read_lut(path, 2, 2, signed)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    lo, hi = (-8, 7) if signed else (0, 15)
    assert lut.shape == (4, 4) and lut.dtype == np.int64 and lo <= lut.min() and lut.max() <= hi
