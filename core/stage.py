"""The stage contract: what every command declares, and what the contract does for all of them, once.

A :class:`Stage` (OpenLane 2's ``Step``) declares

- ``name``: the command (``flow.py NAME``) and the ``command`` of its ``config.json``;
- ``Config``: its typed settings (a frozen dataclass of :func:`core.config.option` fields, checked in
  ``__post_init__``); the command line is derived from it;
- ``inputs``: the settings that name files which must exist; ``outputs``: the files a finished run holds;
- ``fingerprint``: the settings a ``--resume`` must keep (a stage with ``resumable``); a changed one is
  refused by name: ``RESUME: EPS differs from the run's (0.005 -> 0.01)``;
- ``tools`` and ``packages``: the external programs it needs (checked before anything is written) and
  the Python packages whose versions its ``config.json`` records;
- ``prepare(cfg)``: everything that can be checked before the run directory exists (input files read,
  technology loaded); ``run(ctx) -> report``: the work, writing into ``ctx.run``.

:meth:`Stage.execute` owns the rest: validation before any directory exists; the run directory through
:meth:`core.run.RunDir.open` (an existing run is an error; ``overwrite`` builds beside it and swaps on
success; ``resume`` continues it); the resumed settings (stored ones, then those given again, the
fingerprint compared); one ``config.json`` schema for every command::

    {"command": NAME, "settings": {...every resolved setting...}, "tools": {yosys: "0.38", ...},
     "packages": {"python": "3.11.2", "numpy": "1.26.4", ...}, "git_revision": "1a2b3c4d5e6f"}

numbered step logs (``ctx.run.log_path``, ``logs/<n>_<step>.log``); ``report.json`` and ``report.md``
written atomically (by the stage where their order matters, else after ``run``); and the report returned
to the caller. Composite stages (sweep, library) run member stages and resume by finished members.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from core import config as cfgmod
from core.errors import ConfigError
from core.run import RESULTS, RunDir, git_revision, read_json, runs_root, write_text
from core.tools import Tool

SCHEMA = ("command", "settings", "tools", "packages", "git_revision")  # the keys of every config.json
# settings that say where and how a run is made, never what it computes: not compared on resume
RUN_OPTIONS = ("run_dir", "tag", "overwrite", "resume")


@dataclass
class Context:
    """What a stage's ``run`` works with."""

    stage: Stage
    cfg: Any
    run: RunDir
    plan: Any = None  # what ``prepare`` returned
    progress: bool = True
    resumed: bool = False
    reported: bool = False

    def say(self, text: str) -> None:
        """One line of progress on stderr (nothing with ``--quiet``)."""
        if self.progress:
            print(f"[axflow] {text}", file=sys.stderr, flush=True)

    def write_report(self, report: Mapping[str, Any], markdown: str | None = None) -> None:
        """``report.json`` and ``report.md`` (the stage's :meth:`Stage.markdown` when not given), each
        under a temporary name and renamed."""
        self.run.write_json("report.json", dict(report))
        md = self.stage.markdown(dict(report)) if markdown is None else markdown
        if md is not None:
            self.run.write_text("report.md", md)
        self.reported = True

    def write_csv(self, name: str, rows: Iterable[Mapping[str, Any]], fieldnames: Iterable[str] | None = None
                  ) -> Path:
        """A CSV file of the run, written atomically (``fieldnames``: default the first row's keys)."""
        rows = list(rows)
        fields = list(fieldnames) if fieldnames is not None else list(rows[0]) if rows else []
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        path = self.run.path / name
        write_text(path, buf.getvalue())
        return path


class Stage:
    """One command of the flow; subclasses declare the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    Config: ClassVar[type]
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ("config.json", "report.json", "report.md")
    resumable: ClassVar[bool] = False
    fingerprint: ClassVar[tuple[str, ...]] = ()
    tools: ClassVar[tuple[Tool, ...]] = ()
    packages: ClassVar[tuple[str, ...]] = ("numpy",)
    results: ClassVar[tuple[str, ...]] = RESULTS  # what makes a failed run worth keeping (RunDir.open)
    renamed: ClassVar[tuple[tuple[str, str], ...]] = ()  # (old option spelling, new one): refused with a hint
    stored_required: ClassVar[bool] = True  # a resumed run must hold its config.json
    # settings that say where and how this execution runs (a cluster's address, its size), never what it
    # makes: a resume takes them from the command line as given now (else their defaults), not from the run
    environment: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ what a stage provides
    def directory(self, cfg: Any, plan: Any) -> Path:
        """The run directory: ``--run-dir``, else ``<runs root>/<self.default_dir(cfg, plan)>``."""
        return Path(cfg.run_dir) if cfg.run_dir is not None else runs_root() / self.default_dir(cfg, plan)

    def default_dir(self, cfg: Any, plan: Any) -> Path:
        """The run directory under the runs root when ``--run-dir`` is not given (``--tag`` names its last
        part); ``plan`` is what :meth:`prepare` returned."""
        raise NotImplementedError

    def prepare(self, cfg: Any, progress: bool) -> Any:
        """Checks that read files or load a technology, before any directory exists; the result is
        ``ctx.plan``. On ``--resume`` it runs on the resumed settings, before anything is written."""
        return None

    def resuming(self, cfg: Any) -> bool:
        """Whether this execution continues an existing run (``--resume``; a composite stage continues
        its directory whenever it exists)."""
        return bool(getattr(cfg, "resume", False))

    def check_resume(self, ctx: Context) -> None:
        """What else a resume must agree with (a checkpoint), read before anything is written."""

    def run(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def markdown(self, report: dict[str, Any]) -> str | None:
        """``report.md`` of a report (None: none)."""
        return None

    def summary(self, cfg: Any, report: dict[str, Any]) -> str:
        """The line the command prints when it finished."""
        return str(report.get("run_dir", ""))

    def exit_code(self, report: dict[str, Any]) -> int:
        return 0

    def verdict(self, cfg: Any, report: dict[str, Any]) -> None:
        """Raise for a run whose results say it failed (after they were written and summarised)."""

    # ------------------------------------------------------------------ the contract
    def execute(self, cfg: Any, *, given: Iterable[str] | None = None, progress: bool = True) -> dict[str, Any]:
        """Run the stage on ``cfg``; returns its report.

        ``given``: the settings the user gave explicitly; on ``--resume`` they override the run's stored
        settings (the others are taken from its ``config.json``), and a changed one of ``fingerprint`` is
        refused. ``None``: every setting of ``cfg`` counts as given.
        """
        self.check_inputs(cfg)
        resume = self.resuming(cfg)
        overwrite = bool(getattr(cfg, "overwrite", False))
        plan = None
        if not resume:  # a resume is checked on the stored settings, under the run's lock
            self.require_tools(cfg)
            plan = self.prepare(cfg, progress)
        path = self.directory(cfg, plan)
        with RunDir.open(path, overwrite=overwrite, resume=resume, resumable=self.resumable,
                         results=self.results) as run:
            if resume:
                cfg = self.resumed_config(cfg, run.path, given)
                self.check_inputs(cfg)
                self.require_tools(cfg)
                plan = self.prepare(cfg, progress)
            ctx = Context(self, cfg, run, plan, progress, resume)
            if resume:
                self.check_resume(ctx)  # a refused resume writes nothing
            run.write_json("config.json", self.config_json(cfg))
            report = self.run(ctx)
            if not ctx.reported:
                ctx.write_report(report)
        return report

    def check_inputs(self, cfg: Any) -> None:
        for name in self.inputs:
            value = getattr(cfg, name)
            for p in value if isinstance(value, tuple) else (value,):
                if p is not None and not Path(p).exists():
                    raise ConfigError(f"{name.upper()} {p} does not exist")

    def tools_for(self, cfg: Any) -> tuple[Tool, ...]:
        """The external programs a run with ``cfg`` needs (default: ``tools``)."""
        return self.tools

    def require_tools(self, cfg: Any) -> None:
        for tool in self.tools_for(cfg):
            tool.require()

    def config_json(self, cfg: Any) -> dict[str, Any]:
        """The one ``config.json`` schema (:data:`SCHEMA`)."""
        return {"command": self.name, "settings": cfgmod.to_dict(cfg),
                "tools": {t.binary: t.version() for t in self.tools_for(cfg)},
                "packages": package_versions(self.packages), "git_revision": git_revision()}

    def resumed_config(self, cfg: Any, path: Path, given: Iterable[str] | None) -> Any:
        """The run's stored settings with those given again; a changed fingerprint setting is refused,
        every one named: ``RESUME: EPS differs from the run's (0.005 -> 0.01); ...``."""
        if not self.stored_required and not (path / "config.json").is_file():
            return cfg
        stored = stored_settings(path)
        mine = cfgmod.to_dict(cfg)
        names = [f.name for f in cfgmod.fields(type(cfg))]
        given = names if given is None else [g for g in given if g in mine]
        changed = [f"{k.upper()} differs from the run's ({stored[k]!r} -> {mine[k]!r})" for k in names
                   if k in given and k in self.fingerprint and k in stored and mine[k] != stored[k]]
        if changed:
            raise ConfigError("RESUME: " + "; ".join(changed))
        kept = {k: v for k, v in stored.items() if k not in self.environment}
        kept |= {f.name: f.metadata["before"] for f in cfgmod.fields(type(cfg))  # added since the run was made
                 if "before" in f.metadata and f.name not in stored}
        merged = {**kept, **{k: mine[k] for k in given}, "resume": True, "overwrite": False, "run_dir": str(path)}
        return cfgmod.from_dict(type(cfg), {k: v for k, v in merged.items() if v is not None and k in mine},
                                source=str(path / "config.json"))


def stored_settings(path: Path) -> dict[str, Any]:
    """The ``settings`` of the run in ``path`` (its ``config.json``), one line for a missing or bad file."""
    stored_path = Path(path) / "config.json"
    if not stored_path.is_file():
        raise ConfigError(f"{path} holds no config.json, so it cannot be resumed")
    data = read_json(stored_path, "run configuration")
    stored = data.get("settings") if isinstance(data, dict) else None
    if not isinstance(stored, dict):
        got = ("an object without it" if isinstance(data, dict) and "settings" not in data
               else type(stored if isinstance(data, dict) else data).__name__)
        raise ConfigError(f"run configuration {stored_path} must be a JSON object with 'settings', not {got}")
    return stored


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------------------------------- the CLI side
def add_arguments(parser: argparse.ArgumentParser, stage: Stage) -> None:
    """The stage's options, from its Config (and ``--quiet``); old spellings refused with a hint."""
    cfgmod.add_arguments(parser, stage.Config, renamed=dict(stage.renamed))
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def given(cls: type, args: argparse.Namespace) -> list[str]:
    """The settings given on the command line."""
    return [f.name for f in cfgmod.fields(cls) if getattr(args, f.name, None) is not None]


def main(stage: Stage, args: argparse.Namespace) -> int:
    """What every command's ``main`` does: parse, execute, print the summary, the exit code."""
    cfg: Any = cfgmod.from_namespace(stage.Config, args)
    report = stage.execute(cfg, given=given(stage.Config, args), progress=not getattr(args, "quiet", False))
    print(stage.summary(cfg, report))
    stage.verdict(cfg, report)
    return stage.exit_code(report)

