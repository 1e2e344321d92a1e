"""Run directories and the processes that fill them.

A run lives in ``runs/<design>/<tag>/``::

    config.json   every resolved setting, seed, git revision, tool versions
    COMMANDS      every external command, in order, with its working directory
    logs/         one numbered log per step (1_rtl.log, 2_synth.log, ...)
    report.json   report.md   the roll-up, for machines and for people

An existing run is never replaced silently: ``overwrite`` replaces it, ``resume`` continues it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError, ToolError

TAIL_LINES = 10


class RunDir:
    """A directory that records every external command run for it and keeps one log per step."""

    def __init__(self, path: Path):
        self.path = Path(path).resolve()  # tools run in other directories (simulators in their build)
        self.logs = self.path / "logs"

    @classmethod
    def create(cls, path: Path, *, overwrite: bool = False, resume: bool = False) -> RunDir:
        """Open ``path`` for a new run (or an existing one with ``resume``)."""
        path = Path(path)
        exists = path.exists() and any(path.iterdir()) if path.is_dir() else path.exists()
        if resume:
            if not exists:
                raise ConfigError(f"run directory {path} does not exist, so there is nothing to resume")
        elif exists:
            if not overwrite:
                raise ConfigError(f"run directory {path} already exists "
                                  "(use --overwrite to replace it or --resume to continue it)")
            if not path.is_dir():
                raise ConfigError(f"run directory {path} is a file, not a directory")
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.logs.mkdir(exist_ok=True)
        return run

    def log_path(self, step: str) -> Path:
        """A fresh numbered log file for ``step``: ``logs/<n>_<step>.log``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name.split("_", 1)[0]) for p in self.logs.glob("*_*.log")
                   if p.name.split("_", 1)[0].isdigit()]
        return self.logs / f"{max(numbers, default=0) + 1}_{step}.log"

    def record(self, argv: Sequence[str], cwd: Path) -> None:
        with open(self.path / "COMMANDS", "a", encoding="utf-8") as f:
            f.write(f"cd {shlex.quote(str(cwd))} && {shlex.join(argv)}\n")

    def run(self, tool: str, argv: Sequence[str], *, step: str, cwd: Path | None = None,
            env: Mapping[str, str] | None = None, timeout: float | None = None) -> Path:
        """Run ``argv`` with stdin from /dev/null and stdout+stderr into a new step log.

        Returns the log path; a non-zero exit raises :class:`ToolError` with the log's last lines.
        """
        cwd = Path(cwd or self.path).resolve()
        argv = [str(a) for a in argv]
        log = self.log_path(step)
        self.record(argv, cwd)
        full_env = None if env is None else {**os.environ, **env}
        with open(log, "w", encoding="utf-8") as out:
            try:
                proc = subprocess.run(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, timeout=timeout, check=False)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                out.write(f"\n[axflow] killed after {timeout} s\n")
                code = 124
        if code != 0:
            raise ToolError(tool, code, log, tail(log))
        return log

    def write_json(self, name: str, data: Any) -> Path:
        path = self.path / name
        write_json(path, data)
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return path


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def tail(log: Path, n: int = TAIL_LINES) -> list[str]:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip()][-n:]


def git_revision(repo: Path) -> str | None:
    """The checked-out commit of the flow itself (with ``-dirty`` when there are local changes)."""
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=repo,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return rev.stdout.strip() or None if rev.returncode == 0 else None


def latest_multiplier_run(root: Path, eps: float, design: str = "mul8s") -> Path | None:
    """The newest verified evolve run of ``design`` at ``eps`` under ``root/runs`` (sweeps included)
    that has the files the later stages read (``approx.v``, ``lut.npy``), or None."""
    found = []
    for rep in (root / "runs" / design).glob("**/report.json"):
        try:
            r = json.loads(rep.read_text())
        except (OSError, ValueError):
            continue
        if (r.get("eps") == eps and r.get("verification", {}).get("passed")
                and (rep.parent / "approx.v").is_file() and (rep.parent / "lut.npy").is_file()):
            found.append((rep.stat().st_mtime, str(rep.parent)))
    return Path(max(found)[1]) if found else None
