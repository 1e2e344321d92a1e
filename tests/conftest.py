"""Shared test set-up.

Tests skip when a tool or the GF180 library is missing locally; with ``NOSKIP=1`` (set by
``.ci/run``) every skip becomes a failure, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GF180_DIR = ROOT.parent / "shared" / "tech" / "gf180mcu"
NOSKIP = os.environ.get("NOSKIP", "") not in ("", "0")


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
    if not (GF180_DIR / "gf180mcu_fd_sc_mcu9t5v0__tt_025C_3v30.lib").is_file():
        pytest.skip(f"GF180MCU library not present at {GF180_DIR}")
    return GF180_DIR


@pytest.fixture
def one_thread():
    """torch on one thread for the test (timings and kernels as the benchmarks run them), restored after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
