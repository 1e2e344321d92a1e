"""Shared test set-up.

Tests skip when a tool or the GF180 library is missing locally; with ``NOSKIP=1`` (set by
``.ci/run``) every skip becomes a failure, so CI cannot pass by skipping.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import tech  # noqa: E402  (after the path: the project's own package)

GF180_DIR = tech.SHARED_GF180
NOSKIP = os.environ.get("NOSKIP", "") not in ("", "0")
DASK = Path(sys.executable).parent / "dask"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if NOSKIP and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"NOSKIP=1 turns this skip into a failure: {reason}"


def need_tools(*names: str) -> None:
    """Skip the calling test unless every named tool (yosys, iverilog, sta) is installed."""
    from core import tools

    for name in names:
        tool = tools.BY_NAME[name]
        if not tool.available():
            pytest.skip(f"{name} is not installed (Debian package {tool.package})")


@pytest.fixture
def gf180_dir() -> Path:
    if not tech.SHARED_GF180_LIBERTY.is_file():
        pytest.skip(f"GF180MCU library not present at {GF180_DIR}")
    return GF180_DIR


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (a scheduler that does not answer)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dask_cluster(tmp_path):
    """A ``dask scheduler`` and two single-threaded ``dask worker`` processes on 127.0.0.1 (which run this
    checkout); yields the scheduler's address."""
    if not DASK.is_file():
        pytest.skip(f"no dask command at {DASK}")
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen] = []

    def start(*argv: str, log: str) -> None:
        with open(tmp_path / log, "w") as out:
            procs.append(subprocess.Popen([str(DASK), *argv], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT))

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
              str(sched_file), log="scheduler.log")
        deadline = time.monotonic() + 60
        while not sched_file.is_file():
            assert procs[0].poll() is None, (tmp_path / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the dask scheduler did not start within 60 s"
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written whole, but give the writer its close
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            start("worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--nworkers", "1",
                  "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}", log=f"worker{i}.log")
        from distributed import Client

        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def kill_worker_running(address: str, key: str) -> None:
    """SIGKILL the process of the one worker of the scheduler at ``address`` that is running task ``key``."""
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as client:
        busy = [w for w, keys in client.processing().items() if key in keys]
        assert len(busy) == 1, client.processing()
        pid = client.run(os.getpid, workers=busy)[busy[0]]
    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def background(*args: str) -> Iterator[subprocess.Popen]:
    """``flow.py ARGS`` in the background, in its own process group (so that ``os.killpg`` is a terminal's
    Ctrl-C: the command and its cluster's processes); killed if still running when the block ends."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "flow.py"), *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for(proc: subprocess.Popen, done: Callable[[], bool], timeout: float = 300) -> None:
    """Poll ``done`` until it holds; fails (with the command's stderr) if ``proc`` ends first or on timeout."""
    deadline = time.monotonic() + timeout
    while not done():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"timed out after {timeout} s"
        time.sleep(0.05)


def killing_the_worker(address: str, args: tuple[str, ...], checkpoint: Path, key: str, *, start: float = 300,
                       finish: float = 600) -> tuple[int, str]:
    """``flow.py ARGS`` in the background on the scheduler at ``address``: once ``checkpoint`` exists (a
    member's search has started) the worker running task ``key`` is SIGKILLed; the command's return code
    and stderr when it ends."""
    with background(*args) as proc:
        wait_for(proc, checkpoint.is_file, timeout=start)
        kill_worker_running(address, key)
        _, err = proc.communicate(timeout=finish)
    return proc.returncode, err
@pytest.fixture
def one_thread():
    """torch on one thread for the test (timings and kernels as the benchmarks run them), restored after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
