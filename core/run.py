"""Run directories and the processes that fill them.

A run lives in ``runs/<design>/<tag>/``::

    config.json   every resolved setting, seed, git revision, tool versions
    COMMANDS      every external command, in order, with its working directory
    logs/         one numbered log per step (1_rtl.log, 2_synth.log, ...)
    report.json   report.md   the roll-up, for machines and for people

An existing run is never replaced silently: ``overwrite`` replaces it, ``resume`` continues it.
:meth:`RunDir.open` is the contract every command goes through: it holds a lock on the directory for
the whole command, builds an ``overwrite`` beside the old run and swaps only on success, and removes a
new run that failed before it produced anything (a report or a checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError, ToolError

TAIL_LINES = 10
REPO = Path(__file__).resolve().parent.parent  # the flow's own checkout
RUNS_ENV = "AXFLOW_RUNS"  # where runs go instead of <checkout>/runs
MARKER = ".axflow-run"  # written first into every run directory RunDir.open creates
RESULTS = ("report.json", "checkpoint.npz")  # what makes a run worth keeping after a failure


class RunDir:
    """A directory that records every external command run for it and keeps one log per step."""

    def __init__(self, path: Path, final: Path | None = None):
        self.path = Path(path).resolve()  # tools run in other directories (simulators in their build)
        self.logs = self.path / "logs"
        # where the run will be once the command succeeds (an --overwrite is built in a staging directory)
        self.final = Path(final).resolve() if final is not None else self.path

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path, *, overwrite: bool = False, resume: bool = False, resumable: bool = False,
             results: tuple[str, ...] = RESULTS) -> Iterator[RunDir]:
        """The run directory ``path`` for one command, locked until the ``with`` block ends.

        - new (neither flag): ``path`` must not hold a run; if the block fails, the directory is removed
          unless it holds one of ``results`` (a report, a checkpoint to resume) or the failure is a
          :class:`ToolError`, whose message names a log in it. What a failed or killed run left without
          results (the marker file and no results) counts as no run and the next run replaces it.
        - ``overwrite``: the new run is built in ``.<name>.staging`` beside ``path``; only when the block
          succeeds does it replace the old run, which a failure leaves byte for byte as it was (the
          staging directory goes, or after a ToolError stays for its log until the next command).
        - ``resume``: ``path`` must hold a run; nothing is removed, whatever happens.

        A second command on the same directory is refused while the first holds the lock; the lock is
        an OS file lock, released when its process dies, so a killed run never blocks the next one.
        ``resumable``: whether the command has ``--resume`` (only then does an error suggest it).
        """
        if overwrite and resume:
            raise ConfigError("OVERWRITE and RESUME cannot both be set")
        path = Path(path).resolve()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"run directory {path} is a file, not a directory")
        if resume and not path.is_dir() and not (path.parent / f".{path.name}.old").is_dir():
            # checked before the lock, which would create the parent directory
            raise ConfigError(f"run directory {path} does not exist, so there is nothing to resume")
        try:
            with locked(path):
                yield from cls._open(path, overwrite=overwrite, resume=resume, resumable=resumable,
                                     results=results)
        except OSError as exc:
            # a full disk fails write(), which names no file, and a file of an --overwrite's staging
            # directory is gone with it: name the run
            staging = str(path.parent / f".{path.name}.staging")
            if exc.filename is None or str(exc.filename).startswith(staging + os.sep):
                raise OSError(exc.errno, exc.strerror, str(path)) from exc
            raise

    @classmethod
    def _open(cls, path: Path, *, overwrite: bool, resume: bool, resumable: bool,
              results: tuple[str, ...]) -> Iterator[RunDir]:
        staging, old = path.parent / f".{path.name}.staging", path.parent / f".{path.name}.old"
        if old.is_dir() and not path.exists():  # a swap that was killed half-way: put the old run back
            os.replace(old, path)
        for debris in (staging, old):
            shutil.rmtree(debris, ignore_errors=True)
        state = _state(path, results)
        if resume:
            if state == "none":
                raise ConfigError(f"run directory {path} does not exist, so there is nothing to resume")
            run = cls(path)
            yield run
            return
        if state == "run" and not overwrite:
            hint = " or --resume to continue it" if resumable else ""
            raise ConfigError(f"run directory {path} already exists (use --overwrite to replace it{hint})")
        if state == "run":
            staging.mkdir()
            (staging / MARKER).touch()
            run = cls(staging, final=path)
            run.logs.mkdir()
            try:
                yield run
            except BaseException as exc:
                if not isinstance(exc, ToolError):  # a tool's log, which its error names, stays until the next run
                    shutil.rmtree(staging, ignore_errors=True)
                raise
            os.replace(path, old)
            os.replace(staging, path)
            shutil.rmtree(old, ignore_errors=True)
            return
        if state == "debris":
            shutil.rmtree(path)
        path.mkdir(exist_ok=True)
        (path / MARKER).touch()
        run = cls(path)
        run.logs.mkdir(exist_ok=True)
        try:
            yield run
        except BaseException as exc:
            # nothing worth keeping: removed, except the log a tool's error names (the next run replaces it)
            if not any((path / name).exists() for name in results) and not isinstance(exc, ToolError):
                shutil.rmtree(path, ignore_errors=True)
            raise

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

    def see(self, name: str = "report.md") -> str:
        """Where to look after a failure raised inside :meth:`open`: the file, or (for an ``--overwrite``,
        whose staging directory the failure removes) that the earlier run is kept."""
        if self.path == self.final:
            return f"see {self.path / name}"
        return f"the earlier run in {self.final} is kept"

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
        write_text(path, text)
        return path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[Path]:
    """Hold the lock of directory ``path`` (the file ``.<name>.lock`` beside it) or refuse in one line.

    An OS file lock: the kernel releases it when its process dies, so a killed command never blocks.
    """
    from filelock import FileLock, Timeout

    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"run directory {path} is in use by another command (it holds the lock "
                          f"{lock_path})") from None
    try:
        yield lock_path
    finally:
        lock.release()


def _state(path: Path, results: tuple[str, ...]) -> str:
    """``none`` (no directory or an empty one), ``debris`` (what a killed run left before it produced
    any result: our marker and no result) or ``run``."""
    if not path.is_dir() or not any(path.iterdir()):
        return "none"
    if (path / MARKER).is_file() and not any((path / name).exists() for name in results):
        return "debris"
    return "run"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write text under a temporary name and rename it: a crash or a full disk never leaves half a file."""
    write_bytes(path, text.encode("utf-8"))


def save_figure(fig: Any, path: Path, *, dpi: int = 120) -> Path:
    """A matplotlib figure as a PNG at ``path``: rendered in memory, then written under a temporary name and
    renamed (a crash, Ctrl-C or a full disk never leaves half a plot, and an earlier plot stays whole); the
    figure is closed either way."""
    import io

    import matplotlib.pyplot as plt

    try:
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    write_bytes(path, png.getvalue())
    return Path(path)


def write_bytes(path: Path, data: bytes) -> None:
    """Write bytes under a temporary name and rename it (the temporary file goes when writing fails)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None:  # a full disk fails write(), which names no file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def read_json(path: Path, what: str) -> Any:
    """A JSON file another command wrote: a missing, unreadable or corrupt one is a one-line error."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
        return json.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{what} {path} must be valid JSON, not a corrupt file ({exc})") from None


def tail(log: Path, n: int = TAIL_LINES) -> list[str]:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip()][-n:]


def runs_root() -> Path:
    """The directory every command's default run directory lies under: ``$AXFLOW_RUNS`` when it is set,
    else ``runs/`` in the flow's checkout."""
    return Path(os.environ.get(RUNS_ENV) or REPO / "runs")


def git_revision(repo: Path = REPO) -> str | None:
    """The checked-out commit of the flow itself (with ``-dirty`` when there are local changes)."""
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=repo,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return rev.stdout.strip() or None if rev.returncode == 0 else None
