"""``flow.py sweep`` on Dask: 4x4 sweeps on a real LocalCluster of two workers and on a real ``dask
scheduler`` with two ``dask worker`` processes; the members against plain evolve runs, resume by finished
members, a scheduler that does not answer, a worker killed mid-member, the lock and Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import background, free_port, killing_the_worker, need_tools, wait_for
from core.run import MARKER

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--bits", "4", "--generations", "300", "--budget", "0", "--jobs", "1", "--quiet"]
EPS = ["--eps", "0.02", "0.05"]
NAMES = ["eps0.02-seed1", "eps0.05-seed1"]
SAME = ("module", "wce", "wce_limit", "mae", "er", "area", "transistors", "power_w", "delay_ns", "generations")


def flow(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flow.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)


def report(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())


def snapshot(sw: Path) -> dict[str, tuple[int, bytes]]:
    """mtime and bytes of every member's report.json and approx.v."""
    return {str(p.relative_to(sw)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(sw.glob("eps*/*")) if p.name in ("report.json", "approx.v")}


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> Path:
    """Two members on a LocalCluster of two workers; one of them over what a member killed during its
    synthesis left (axflow's marker and a half-written file, no result)."""
    need_tools("yosys", "iverilog", "vvp", "sta")
    sw = tmp_path_factory.mktemp("sweep") / "sw"
    debris = sw / NAMES[1]
    (debris / "logs").mkdir(parents=True)
    (debris / MARKER).touch()
    (debris / "stray.v").write_text("half")
    proc = flow("sweep", *EPS, *TINY, "--workers", "2", "--run-dir", str(sw))
    assert proc.returncode == 0, proc.stderr
    return sw


def test_rows_are_the_members_reports(local_sweep):
    summary = json.loads((local_sweep / "sweep.json").read_text())
    assert summary["complete"] and summary["not_run"] == [] and summary["failed"] == []
    assert summary["cluster"]["scheduler"] == "local" and summary["cluster"]["workers"] == 2
    assert summary["cluster"]["address"].startswith("tcp://127.0.0.1:")
    with open(local_sweep / "sweep.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["eps"] for r in summary["runs"]] == [0.02, 0.05] and [r["eps"] for r in csv_rows] == ["0.02", "0.05"]
    for name, row, csv_row in zip(NAMES, summary["runs"], csv_rows):
        rep = report(local_sweep / name)
        assert row["run_dir"] == str(local_sweep / name) and row["build"] == csv_row["build"] == "new"
        assert row["verified"] and rep["verification"]["passed"] and not row["interrupted"]
        for key in ("wce", "wce_limit", "wce_pct", "mae_pct", "er", "area", "area_ratio", "transistors",
                    "power_w", "power_ratio", "delay_ratio", "generations", "evaluations"):
            assert row[key] == rep[key], key
            assert float(csv_row[key]) == pytest.approx(rep[key], rel=1e-12), key
        assert rep["generations"] == 300 and rep["wce"] <= rep["wce_limit"]
    assert "| 0.05 |" in (local_sweep / "sweep.md").read_text()
    for name in ("cost_vs_eps.png", "error_vs_eps.png"):
        assert (local_sweep / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_what_a_killed_member_left_is_replaced(local_sweep):
    assert not (local_sweep / NAMES[1] / "stray.v").exists()
    assert report(local_sweep / NAMES[1])["verification"]["passed"]


def test_a_member_is_the_evolve_run_of_its_settings(local_sweep, tmp_path):
    """The same member as a plain ``flow.py evolve`` (in this process's tree, no cluster) makes."""
    run = tmp_path / "evolve"
    proc = flow("evolve", "--eps", "0.05", "--seed", "1", "--seed-arch", "array", *TINY, "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr
    member, alone = report(local_sweep / NAMES[1]), report(run)
    assert {k: member[k] for k in SAME} == {k: alone[k] for k in SAME}
    assert (local_sweep / NAMES[1] / "approx.json").read_bytes() == (run / "approx.json").read_bytes()


def test_second_sweep_reuses_finished_members(local_sweep):
    before = snapshot(local_sweep)
    assert len(before) == 4
    proc = flow("sweep", *EPS, *TINY, "--workers", "2", "--run-dir", str(local_sweep))
    assert proc.returncode == 0, proc.stderr
    assert snapshot(local_sweep) == before
    summary = json.loads((local_sweep / "sweep.json").read_text())
    assert summary["complete"] and [r["build"] for r in summary["runs"]] == ["reused", "reused"]


@pytest.mark.parametrize("command", ["sweep", "library"])
def test_scheduler_that_does_not_answer(tmp_path, command):
    """Both composite commands ask a remote scheduler before anything touches the disk."""
    address = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc = flow(command, *EPS, *TINY, "--run-dir", str(tmp_path / "sw"), "--scheduler", address,
                "--scheduler-timeout", "2", timeout=60)
    assert proc.returncode == 2
    assert time.monotonic() - t0 < 30
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: the Dask scheduler {address} did not answer within 2 s")
    assert list(tmp_path.iterdir()) == []  # nothing written: neither the run directory nor its lock


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--scheduler", "127.0.0.1:8786",
     "SCHEDULER must be a Dask scheduler address such as tcp://HOST:PORT, not '127.0.0.1:8786'"),
    ("--workers", "0", "WORKERS must be >= 1, not 0"),
    ("--scheduler-timeout", "0", "SCHEDULER_TIMEOUT must be > 0 s, not 0.0"),
], ids=["scheduler", "workers", "timeout"])
def test_cluster_settings_are_checked(tmp_path, option, value, message):
    proc = flow("sweep", *EPS, *TINY, "--run-dir", str(tmp_path / "sw"), option, value, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {message}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sweep_on_an_external_scheduler(dask_cluster, local_sweep, tmp_path):
    """The same tasks on a running ``dask scheduler`` make the same members as the LocalCluster."""
    sw = tmp_path / "sw"
    proc = flow("sweep", *EPS, *TINY, "--run-dir", str(sw), "--scheduler", dask_cluster)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((sw / "sweep.json").read_text())
    assert summary["cluster"] == {"scheduler": dask_cluster, "address": dask_cluster, "workers": 2}
    assert summary["complete"] and [r["build"] for r in summary["runs"]] == ["new", "new"]
    for name in NAMES:
        assert {k: report(sw / name)[k] for k in SAME} == {k: report(local_sweep / name)[k] for k in SAME}
        assert (sw / name / "approx.json").read_bytes() == (local_sweep / name / "approx.json").read_bytes()


@pytest.mark.slow
def test_killed_worker_member_resumes_from_its_checkpoint(dask_cluster, tmp_path):
    """SIGKILL the worker process evolving a member: Dask runs the task again on the other worker and the
    member continues from its checkpoint to exactly its generations, none logged twice."""
    need_tools("yosys", "iverilog", "vvp", "sta")
    sw = tmp_path / "sw"
    member = sw / "eps0.05-seed1"
    args = ("sweep", "--eps", "0.05", *TINY, "--generations", "10000", "--run-dir", str(sw), "--scheduler",
            dask_cluster)
    # the checkpoint is written as the search starts
    rc, err = killing_the_worker(dask_cluster, args, member / "checkpoint.npz", "member-eps0.05-seed1")
    assert rc == 0, err
    (row,) = json.loads((sw / "sweep.json").read_text())["runs"]
    rep = report(member)
    assert row["build"] == "resumed" and row["verified"]
    assert rep["generations"] == row["generations"] == 10000
    with open(member / "evolution.csv", newline="") as f:
        generations = [int(r["generation"]) for r in csv.DictReader(f)]
    assert generations == sorted(set(generations)) and generations[-1] == 10000


@pytest.mark.slow
def test_second_sweep_refuses_then_ctrl_c_then_resume(tmp_path):
    """One worker, two members: while the first sweep holds its directory a second is refused naming the
    lock; Ctrl-C once the first member finished and the second is evolving leaves a roll-up of the first,
    and the sweep run again reuses it and resumes the second from its checkpoint."""
    need_tools("yosys", "iverilog", "vvp", "sta")
    sw = tmp_path / "sw"
    args = ["sweep", *EPS, *TINY, "--workers", "1", "--run-dir", str(sw)]
    with background(*args) as first:
        wait_for(first, (sw / "config.json").is_file)  # written under the lock
        second = flow(*args)
        assert second.returncode == 2
        assert second.stderr.strip() == (f"error: run directory {sw} is in use by another command (it holds the "
                                         f"lock {tmp_path / '.sw.lock'})")
        # one worker: the second member's search starts once the first member's task returned
        wait_for(first, lambda: all((sw / name / "checkpoint.npz").is_file() for name in NAMES), timeout=600)
        os.killpg(first.pid, signal.SIGINT)  # a terminal's Ctrl-C: the client and its cluster's processes
        _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    summary = json.loads((sw / "sweep.json").read_text())
    assert not summary["complete"] and len(summary["runs"]) == 1 and len(summary["not_run"]) == 1
    (finished,) = [n for n in NAMES if f"eps{summary['runs'][0]['eps']:g}-" in n]
    assert summary["runs"][0]["build"] == "new" and "not run" in (sw / "sweep.md").read_text()
    third = flow(*args)
    assert third.returncode == 0, third.stderr
    summary = json.loads((sw / "sweep.json").read_text())
    assert summary["complete"] and [r["eps"] for r in summary["runs"]] == [0.02, 0.05]
    assert all(r["verified"] and r["generations"] == 300 for r in summary["runs"])
    builds = {name: r["build"] for name, r in zip(NAMES, summary["runs"])}
    assert builds == {n: "reused" if n == finished else "resumed" for n in NAMES}


@pytest.mark.parametrize("stage_of", ["sweep", "library"])
def test_resume_runs_where_it_is_told_now(tmp_path, stage_of):
    """A build started on a remote scheduler and continued without --scheduler runs on a local cluster:
    the cluster settings are the execution's, not the run's (a stored address may be long gone)."""
    from core import config as cfgmod
    from evolve.library import STAGE as LIBRARY
    from evolve.sweep import STAGE as SWEEP

    stage = {"sweep": SWEEP, "library": LIBRARY}[stage_of]
    started = cfgmod.from_dict(stage.Config, {"eps": [0.05], "bits": 4, "scheduler": "tcp://127.0.0.1:1",
                                              "workers": 3, "scheduler_timeout": 2.0, "run_dir": str(tmp_path)})
    (tmp_path / "config.json").write_text(json.dumps(stage.config_json(started)))
    again = cfgmod.from_dict(stage.Config, {"eps": [0.05], "bits": 4, "run_dir": str(tmp_path)})
    resumed = stage.resumed_config(again, tmp_path, given=["eps", "bits", "run_dir"])
    assert (resumed.scheduler, resumed.workers, resumed.scheduler_timeout) == (None, None, 10.0)
    assert resumed.bits == 4
    told = stage.resumed_config(started, tmp_path, given=["scheduler"])
    assert told.scheduler == "tcp://127.0.0.1:1"
