"""``flow.py sweep`` on Dask: every EPS a task on a real LocalCluster, or on ``--scheduler``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import need_tools

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--bits", "3", "--generations", "300", "--budget", "0", "--jobs", "1", "--quiet"]


def flow(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flow.py"), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.tools
@pytest.mark.sim
def test_sweep_runs_each_eps_as_a_task_on_a_local_cluster(tmp_path):
    need_tools("yosys", "iverilog", "vvp", "sta")
    proc = flow("sweep", "--eps", "0.05", "0.1", *TINY, "--workers", "2", "--cost", "power", "--out",
                str(tmp_path / "sw"))
    assert proc.returncode == 0, proc.stderr
    sweep = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert sweep["cluster"]["scheduler"] == "local" and sweep["cluster"]["workers"] == 2
    assert [r["eps"] for r in sweep["runs"]] == [0.05, 0.1] and all(r["verified"] for r in sweep["runs"])
    for eps in ("0.05", "0.1"):
        report = json.loads((tmp_path / "sw" / f"eps{eps}-seed1" / "report.json").read_text())
        assert report["cost_objective"] == "power"


def test_sweep_scheduler_that_does_not_answer(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc = flow("sweep", "--eps", "0.05", *TINY, "--out", str(tmp_path / "sw"), "--scheduler", address,
                "--scheduler-timeout", "2", timeout=60)
    assert proc.returncode == 2 and time.monotonic() - t0 < 30
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: the Dask scheduler {address} did not answer within 2 s")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--scheduler", "127.0.0.1:8786"], "error: SCHEDULER must be a Dask scheduler address such as tcp://HOST:PORT, "
                                        "not '127.0.0.1:8786'"),
    (["--workers", "0"], "error: WORKERS must be >= 1, not 0"),
], ids=["address", "workers"])
def test_sweep_cluster_settings_are_checked(tmp_path, args, message):
    proc = flow("sweep", "--eps", "0.05", *TINY, "--out", str(tmp_path / "sw"), *args, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == message
    assert list(tmp_path.iterdir()) == []
