"""Simulation with Icarus Verilog: cocotb benches through cocotb's runner, and plain runs for VCDs.

Exposes :func:`available`, :func:`version` and :func:`run_bench`. Each bench gets its own build
directory; the commands the runner executes are appended to the run's ``COMMANDS``, and its output
goes to a numbered log. Results are read from the JUnit XML the runner writes, never from text.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import tools
from core.errors import ToolError
from core.run import RunDir, tail

ROOT = Path(__file__).resolve().parent.parent
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


class _CommandLog(logging.Handler):
    """Copies the runner's "Running command ..." records into the run's COMMANDS file."""

    def __init__(self, run_dir: RunDir):
        super().__init__(logging.INFO)
        self.run_dir = run_dir

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "Running command %s in directory %s" and len(record.args or ()) == 2:
            cmd, cwd = record.args  # type: ignore[misc]
            with open(self.run_dir.path / "COMMANDS", "a", encoding="utf-8") as f:
                f.write(f"cd {shlex.quote(str(cwd))} && {cmd}\n")


def _runner(vcd: bool) -> Any:
    """cocotb's Icarus runner; with ``vcd`` the design's own ``$dumpfile``/``$dumpvars`` are honoured.

    cocotb passes ``-none`` to vvp when it is not dumping waves itself, which silences every dump;
    a VCD wanted by the design (for switching activity) needs ``-vcd`` there instead.
    """
    from cocotb_tools.runner import Icarus

    class _Icarus(Icarus):
        def _set_env_common(self) -> None:
            # the runner sets PYTHONPATH to the caller's sys.path: make the benches importable whatever
            # the caller's working directory or entry point
            super()._set_env_common()
            self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), self.env.get("PYTHONPATH", "")])

        def _test_command(self) -> list:
            cmds = super()._test_command()
            if vcd:
                cmds = [["-vcd" if arg == "-none" else arg for arg in cmd] for cmd in cmds]
            return cmds

    return _Icarus()


def run_bench(run_dir: RunDir, *, name: str, sources: list[Path], toplevel: str, test_module: str,
              config: dict[str, Any], seed: int, build_args: tuple[str, ...] = (),
              vcd: bool = False) -> BenchResult:
    """Build ``sources`` with Icarus and run the cocotb ``test_module`` against ``toplevel``.

    ``config`` is written to ``<build>/bench.json`` and handed to the bench through ``AXF_BENCH``;
    the bench writes its summary to ``<build>/summary.json``. With ``vcd`` the design's own
    ``$dumpfile`` is written as a VCD.
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
    runner = _runner(vcd)
    handler = _CommandLog(run_dir)
    runner.log.addHandler(handler)
    runner.log.setLevel(logging.INFO)
    try:
        try:
            runner.build(sources=[Path(s).resolve() for s in sources], hdl_toplevel=toplevel,
                         build_dir=build_dir, always=True, timescale=TIMESCALE, log_file=build_log,
                         build_args=list(build_args))
        except RuntimeError as exc:
            raise ToolError("iverilog", _code(exc), build_log, tail(build_log)) from None
        test_log = run_dir.log_path(f"sim_{name}")
        try:
            runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=build_dir, test_dir=build_dir,
                        seed=seed, results_xml=str(xml), log_file=test_log, timescale=TIMESCALE,
                        extra_env={"AXF_BENCH": str(cfg_path), "PYTHONWARNINGS": "error::DeprecationWarning"})
        except RuntimeError as exc:
            if not xml.is_file():
                raise ToolError("vvp (cocotb)", _code(exc), test_log, tail(test_log)) from None
        except SystemExit as exc:
            # Under pytest the runner exits when a bench fails; the JUnit XML below says how.
            if not xml.is_file():
                raise ToolError("vvp (cocotb)", exc.code if isinstance(exc.code, int) else 1, test_log,
                                tail(test_log)) from None
    finally:
        runner.log.removeHandler(handler)
    if not xml.is_file():
        raise ToolError("vvp (cocotb)", 1, test_log, tail(test_log))
    tests, failures, messages = _junit(xml)
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return BenchResult(name, tests, failures, xml, test_log, summary, tuple(messages))


def _code(exc: RuntimeError) -> int:
    digits = "".join(c for c in str(exc).rsplit(":", 1)[-1] if c.isdigit())
    return int(digits) if digits else 1


def _junit(xml: Path) -> tuple[int, int, list[str]]:
    root = ET.parse(xml).getroot()
    tests = failures = 0
    messages = []
    for case in root.iter("testcase"):
        tests += 1
        for bad in list(case.iter("failure")) + list(case.iter("error")):
            failures += 1
            messages.append(f"{case.get('name')}: {bad.get('message') or (bad.text or '').strip()[:300]}")
    return tests, failures, messages
