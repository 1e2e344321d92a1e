"""Finding external programs: ``shutil.which``, overridable by an environment variable named after the tool.

A missing tool names the Debian package that provides it; a tool older than the flow needs says so.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from core.errors import ToolMissing


@dataclass(frozen=True)
class Tool:
    """One external program the flow calls."""

    name: str
    env: str
    binary: str
    package: str
    version_args: tuple[str, ...]
    version_regex: str
    min_version: tuple[int, ...] = ()

    def path(self) -> str | None:
        override = os.environ.get(self.env)
        if override:
            return shutil.which(override) or (override if os.access(override, os.X_OK) else None)
        return shutil.which(self.binary)

    def available(self) -> bool:
        path = self.path()
        return path is not None and self._version_of(path) is not None

    def version(self) -> str:
        """The version the tool reports, e.g. ``'0.23'``; raises :class:`ToolMissing` if absent."""
        path = self.require()
        return self._version_of(path) or "unknown"

    def require(self) -> str:
        """The tool's path, after checking it exists and is new enough."""
        path = self.path()
        if path is None:
            where = os.environ.get(self.env)
            if where:
                raise ToolMissing(f"{self.name} not found at {self.env}={where!r}")
            raise ToolMissing(f"{self.name} not found: install the Debian package '{self.package}' "
                              f"(make deps), or set {self.env} to its path")
        found = self._version_of(path)
        if found is None:
            raise ToolMissing(f"{self.name} at {path} did not report a version; is it really {self.name}?")
        if self.min_version and _numbers(found) < self.min_version:
            need = ".".join(map(str, self.min_version))
            raise ToolMissing(f"{self.name} at {path} is version {found}; the flow needs {need} or newer")
        return path

    def _version_of(self, path: str) -> str | None:
        return _probe(path, self.version_args, self.version_regex)


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


@functools.cache
def _probe(path: str, args: tuple[str, ...], regex: str) -> str | None:
    try:
        proc = subprocess.run([path, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(regex, proc.stdout + proc.stderr)
    return match.group(1) if match else None


YOSYS = Tool("yosys", "YOSYS", "yosys", "yosys", ("-V",), r"Yosys (\d+\.\d+)", (0, 10))
IVERILOG = Tool("iverilog", "IVERILOG", "iverilog", "iverilog", ("-V",), r"Icarus Verilog version (\d+\.\d+)",
                (11, 0))
VVP = Tool("vvp", "VVP", "vvp", "iverilog", ("-V",), r"Icarus Verilog runtime version (\d+\.\d+)", (11, 0))
STA = Tool("OpenSTA", "STA", "sta", "opensta", ("-version",), r"(\d+\.\d+\.\d+)", (2, 0))

# not run by the flow: the tests lint and elaborate what the flow writes the way Verilator users do
VERILATOR = Tool("verilator", "VERILATOR", "verilator", "verilator", ("--version",), r"Verilator (\d+\.\d+)",
                 (5, 0))

BY_NAME: dict[str, Tool] = {"yosys": YOSYS, "iverilog": IVERILOG, "vvp": VVP, "sta": STA, "verilator": VERILATOR}


def versions(names: tuple[str, ...] = ("yosys", "iverilog", "sta")) -> dict[str, str | None]:
    """The version of each named tool, ``None`` where it is missing: recorded in every run's config."""
    return {n: (BY_NAME[n]._version_of(p) if (p := BY_NAME[n].path()) else None) for n in names}
