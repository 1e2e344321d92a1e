"""Exceptions that reach the user as one line and a non-zero exit.

Library code raises these; only ``flow.py`` turns them into exit codes.
"""

from __future__ import annotations

from pathlib import Path


class FlowError(Exception):
    """A problem the user can act on. ``str(err)`` is the one line printed."""

    exit_code = 1


class ConfigError(FlowError, ValueError):
    """A setting, an input file or a command-line value is not acceptable."""

    exit_code = 2


class ToolMissing(FlowError):
    """An external tool is absent or too old."""

    exit_code = 3


class ToolError(FlowError):
    """An external tool ran and failed."""

    exit_code = 4

    def __init__(self, tool: str, returncode: int, log: Path | None, tail: list[str], *,
                 reason: str | None = None):
        """``reason``: what went wrong, for a tool that exits 0 after an error (OpenSTA); then the line
        says ``<tool> failed: <reason>`` instead of quoting the exit code and the log's last line."""
        self.tool = tool
        self.returncode = returncode
        self.log = log
        self.tail = tail
        where = f" (log: {log})" if log else ""
        if reason is not None:
            super().__init__(f"{tool} failed: {reason}{where}")
            return
        last = f": {tail[-1].strip()}" if tail else ""
        super().__init__(f"{tool} failed with exit code {returncode}{where}{last}")

    def details(self) -> str:
        """The last lines of the tool's log, for the user who asks why."""
        return "\n".join(self.tail)


class VerificationError(FlowError):
    """A design did not match its expected behaviour."""

    exit_code = 5


class SettleError(VerificationError):
    """A timing simulation of a mapped netlist did not reproduce its table at the period it was held for:
    the netlist does not settle in time (a fact about the netlist at that period, not a tool failure)."""


class DiskError(FlowError):
    """Reading or writing a file failed in the operating system (read-only, full disk, missing directory)."""

    exit_code = 6

    def __init__(self, err: OSError):
        self.errno = err.errno
        where = " -> ".join(str(p) for p in (err.filename, err.filename2) if p is not None)
        reason = err.strerror or str(err)
        super().__init__(f"cannot use {where}: {reason}" if where else f"file system error: {reason}")


def must(what: str, rule: str, value: object, choices: list[str] | tuple[str, ...] | None = None) -> ConfigError:
    """The project's error sentence: ``<what> must be <rule>, not <value!r>``, with choices when listed."""
    text = f"{what} must be {rule}, not {value!r}"
    if choices:
        text += f" (choices: {', '.join(choices)})"
    return ConfigError(text)
