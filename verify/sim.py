"""Simulation with Icarus Verilog: cocotb benches through cocotb's runner, and plain runs for VCDs.

Exposes :func:`available`, :func:`version` and :func:`run_bench`. Each bench gets its own build
directory; the runner runs the ``iverilog`` and ``vvp`` the flow found (``IVERILOG``, ``VVP``), each
command is appended to the run's ``COMMANDS``, and its output goes to a numbered log. Only cocotb's
public runner API is used; results are read from the JUnit XML the runner writes, never from text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import tools
from core.errors import ToolError
from core.run import REPO, RunDir, tail
from verify.cocotb_run import BUILD_FAILED, TEST_FAILED

TIMESCALE = ("1ns", "1ps")


def available() -> bool:
    return tools.IVERILOG.available() and tools.VVP.available()


def version() -> str:
    return tools.IVERILOG.version()


@dataclass(frozen=True)
class BenchResult:
    """The outcome of one cocotb bench: counts from its JUnit XML plus the bench's own summary."""

    name: str
    tests: int
    failures: int
    xml: Path
    log: Path
    summary: dict[str, Any] = field(default_factory=dict)
    messages: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.failures == 0

    def as_report(self) -> dict[str, Any]:
        return {"passed": self.passed, "tests": self.tests, "failures": self.failures,
                **{k: v for k, v in self.summary.items() if k != "bench"}, "messages": list(self.messages)}


_SHIM = """#!{python} -I
# {tool} for cocotb's runner, which runs the {tool} on PATH: runs the configured one and records the command
import os, shlex, subprocess, sys
argv = [{real!r}, *sys.argv[1:], *{extra!r}]
with open({commands!r}, "a", encoding="utf-8") as f:
    f.write("cd " + shlex.quote(os.getcwd()) + " && " + shlex.join(argv) + "\\n")
code = subprocess.call(argv)
with open({rc!r}, "w", encoding="utf-8") as f:
    f.write(str(code))
sys.exit(code if code >= 0 else 128 - code)
"""


def _shims(run_dir: RunDir, build_dir: Path, vcd: bool) -> Path:
    """A private directory holding ``iverilog`` and ``vvp`` for the front of the runner's PATH.

    Each runs the binary the flow found (``IVERILOG``/``VVP`` or PATH, version checked), appends its
    command line to the run's ``COMMANDS`` and leaves its exit code in ``<build>/<tool>.rc``. With
    ``vcd``, ``vvp`` gets ``-vcd`` as its last extended argument: the runner passes ``-none`` when it
    does not dump waves itself, and the last dump-format argument is the one vvp uses, so the design's
    own ``$dumpfile`` is written as a VCD.
    """
    bin_dir = build_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool, extra in ((tools.IVERILOG, ()), (tools.VVP, ("-vcd",) if vcd else ())):
        shim = bin_dir / tool.binary
        (build_dir / f"{tool.binary}.rc").unlink(missing_ok=True)
        shim.write_text(_SHIM.format(python=sys.executable, tool=tool.binary, real=str(Path(tool.require()).resolve()),
                                     extra=tuple(extra), commands=str(run_dir.path / "COMMANDS"),
                                     rc=str(build_dir / f"{tool.binary}.rc")), encoding="utf-8")
        shim.chmod(0o755)
    return bin_dir


def _rc(build_dir: Path, tool: str) -> int:
    """The exit code the shim of ``tool`` recorded; 1 when it did not run to the end."""
    try:
        return int((build_dir / f"{tool}.rc").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 1


def run_bench(run_dir: RunDir, *, name: str, sources: list[Path], toplevel: str, test_module: str,
              config: dict[str, Any], seed: int, build_args: tuple[str, ...] = (),
              vcd: bool = False) -> BenchResult:
    """Build ``sources`` with Icarus and run the cocotb ``test_module`` against ``toplevel``.

    ``config`` is written to ``<build>/bench.json`` and handed to the bench through ``AXF_BENCH``;
    the bench writes its summary to ``<build>/summary.json``. With ``vcd`` the design's own
    ``$dumpfile`` is written as a VCD.

    cocotb's runner (its public API: :func:`cocotb_tools.runner.get_runner`, ``build``, ``test``) runs in
    a helper process (:mod:`verify.cocotb_run`) whose PATH starts with :func:`_shims`, so it runs the
    configured ``iverilog`` and ``vvp``; the runner's own messages go to ``<build>/runner.log``.
    """
    tools.IVERILOG.require()
    tools.VVP.require()

    build_dir = (run_dir.path / "sim_build" / name).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = build_dir / "bench.json"
    summary_path = build_dir / "summary.json"
    summary_path.unlink(missing_ok=True)
    cfg_path.write_text(json.dumps({**config, "summary": str(summary_path)}, indent=1), encoding="utf-8")
    xml = build_dir / "results.xml"
    xml.unlink(missing_ok=True)
    build_log = run_dir.log_path(f"sim_{name}_build")
    build_log.touch()
    test_log = run_dir.log_path(f"sim_{name}")
    spec = build_dir / "runner.json"
    spec.write_text(json.dumps({
        "build": {"sources": [str(Path(s).resolve()) for s in sources], "hdl_toplevel": toplevel,
                  "build_dir": str(build_dir), "always": True, "timescale": list(TIMESCALE),
                  "log_file": str(build_log), "build_args": list(build_args)},
        "test": {"test_module": test_module, "hdl_toplevel": toplevel, "build_dir": str(build_dir),
                 "test_dir": str(build_dir), "seed": seed, "results_xml": str(xml), "log_file": str(test_log),
                 "timescale": list(TIMESCALE),
                 "extra_env": {"AXF_BENCH": str(cfg_path), "PYTHONWARNINGS": "error::DeprecationWarning"}},
    }, indent=1), encoding="utf-8")
    bin_dir = _shims(run_dir, build_dir, vcd)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # the runner's pytest mode exits
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    runner_log = build_dir / "runner.log"
    with open(runner_log, "w", encoding="utf-8") as out:
        code = subprocess.run([sys.executable, "-m", "verify.cocotb_run", str(spec)], cwd=build_dir, env=env,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if code == BUILD_FAILED:
        raise ToolError("iverilog", _rc(build_dir, "iverilog"), build_log, tail(build_log))
    if code not in (0, TEST_FAILED):
        raise ToolError("cocotb's runner", code, runner_log, tail(runner_log))
    if not xml.is_file():  # a simulator that failed before the benches could report
        raise ToolError("vvp (cocotb)", _rc(build_dir, "vvp"), test_log, tail(test_log))
    from cocotb_tools.check_results import get_results

    tests, failures = get_results(xml)
    messages = _messages(xml)
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return BenchResult(name, tests, failures, xml, test_log, summary, tuple(messages))


def _messages(xml: Path) -> list[str]:
    """``<test>: <message>`` for each failure or error in the JUnit XML."""
    messages = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        for bad in list(case.iter("failure")) + list(case.iter("error")):
            messages.append(f"{case.get('name')}: {bad.get('message') or (bad.text or '').strip()[:300]}")
    return messages
