"""The Dask cluster of the composite commands (``flow.py library``, ``flow.py sweep``): each member a task.

The default is a :class:`distributed.LocalCluster` of ``cores // jobs`` single-threaded worker processes;
``--scheduler tcp://HOST:PORT`` sends the same tasks to a running cluster (refused in one line, naming its
address, when it does not answer within ``--scheduler-timeout``), whose workers must see the run directory
and this checkout at the same paths.

:class:`CompositeStage` is what the two commands share: a member is one evolve run in its own directory,
built by :func:`build_member` inside one ``Client.submit`` task (``retries=1``) and the unit of resume (a
finished member is reused, an interrupted or killed one continues from its checkpoint with the evolution
time already spent taken off its budget, so a member retried after its worker died counts nothing twice);
Ctrl-C writes the roll-up of the members finished so far.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from core import stage
from core.errors import ConfigError, FlowError, must
from core.run import read_json

_ADDRESS = re.compile(r"(tcp|tls|inproc|ucx|ws|wss)://\S+")


def check_cluster(cfg: Any) -> None:
    """The cluster settings a library or a sweep shares: ``jobs``, ``workers``, ``scheduler``, its timeout."""
    if cfg.jobs < 1:
        raise must("JOBS", ">= 1", cfg.jobs)
    if cfg.workers is not None and cfg.workers < 1:
        raise must("WORKERS", ">= 1", cfg.workers)
    if cfg.scheduler is not None and not _ADDRESS.fullmatch(cfg.scheduler):
        raise must("SCHEDULER", "a Dask scheduler address such as tcp://HOST:PORT", cfg.scheduler)
    if not cfg.scheduler_timeout > 0:
        raise must("SCHEDULER_TIMEOUT", "> 0 s", cfg.scheduler_timeout)


class MemberError(FlowError):
    """A member or reference failed; its exit code is the member's."""

    def __init__(self, text: str, exit_code: int):
        super().__init__(text)
        self.exit_code = exit_code


def completed(client: Any, tasks: dict[Any, Any], progress: bool, desc: str = "library",
              unit: str = "member") -> Iterator[Any]:
    """The futures of ``tasks`` as they finish, under one progress bar."""
    from distributed import as_completed
    from tqdm import tqdm

    with tqdm(total=len(tasks), desc=desc, unit=unit, disable=not progress, file=sys.stderr) as bar:
        for fut in as_completed(list(tasks), loop=client.loop):
            yield fut
            bar.update(1)


class dask_client:
    """A Dask client on ``--scheduler`` (refused in one line when it does not answer) or on a local cluster
    of ``cores // jobs`` single-threaded worker processes; closes what it opened. ``cfg``: a library's or
    a sweep's settings (``scheduler``, ``scheduler_timeout``, ``workers``, ``jobs``)."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.client: Any = None
        self.cluster: Any = None

    def __enter__(self) -> Any:
        import dask
        from distributed import Client, LocalCluster

        cfg = self.cfg
        if cfg.scheduler is not None:
            try:
                self.client = Client(cfg.scheduler, timeout=cfg.scheduler_timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"the Dask scheduler {cfg.scheduler} did not answer within "
                                  f"{cfg.scheduler_timeout:g} s ({type(exc).__name__})") from None
            return self.client
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        n = cfg.workers or max(1, cores // cfg.jobs)
        # a member with --jobs > 1 starts a process pool, which a daemonic worker process may not
        with dask.config.set({"distributed.worker.daemon": False}):
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                        scheduler_port=0)
        self.client = Client(self.cluster, set_as_default=False)
        return self.client

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


# ------------------------------------------------------------------------------------------ members
MIN_REST_S = 0.001  # a resumed member whose time is spent still finishes: one epoch, then verification


def member_name(eps: float, seed: int) -> str:
    """The directory of the member evolved at ``eps`` with ``seed``."""
    return f"eps{eps:g}-seed{seed}"


def build_member(cfg: Any, run_dir: Path, overwrite: bool) -> dict[str, Any]:
    """One member (``cfg``: its evolve configuration) in ``run_dir``, in a Dask worker: reused when finished,
    resumed from its checkpoint when interrupted or killed, else built. Returns ``{"report": ..., "reused":
    ..., "resumed": ...}`` or ``{"error": line, "exit_code": n}`` (project errors come back as values: a retry
    would not change them)."""
    from evolve import engine, job

    try:
        report_path = run_dir / "report.json"
        if report_path.is_file() and not overwrite:
            r = read_json(report_path, "member report")
            if isinstance(r, dict) and not r.get("interrupted"):
                if not r.get("verification", {}).get("passed"):
                    return {"error": f"member {run_dir} failed its verification (see {run_dir / 'report.md'})",
                            "exit_code": 5}
                return {"report": r, "reused": True, "resumed": False}
        resume = (run_dir / "checkpoint.npz").is_file() and not overwrite
        if resume and cfg.budget > 0:  # every member gets the same evolution time: a resumed one only the rest
            spent = engine.checkpoint_elapsed(run_dir / "checkpoint.npz") or 0.0
            cfg = replace(cfg, budget=max(cfg.budget - spent, MIN_REST_S))
        cfg = replace(cfg, run_dir=run_dir, resume=resume, overwrite=overwrite and run_dir.exists())
        r = job.run(cfg, given={"budget": cfg.budget, "generations": cfg.generations} if resume else None,
                    progress=False)
        return {"report": r, "reused": False, "resumed": resume}
    except FlowError as err:
        return {"error": f"member {run_dir.name}: {err}", "exit_code": err.exit_code}


@dataclass(frozen=True)
class Task:
    """One Dask task of a composite command: ``fn(*args)`` under the key ``<kind>-<name>``; ``fn`` returns
    what :func:`build_member` does."""

    kind: str
    name: str
    fn: Callable[..., dict[str, Any]]
    args: tuple[Any, ...]


def how_built(res: dict[str, Any]) -> str:
    """How this build got a member: ``reused``, ``resumed`` from its checkpoint, or ``new``."""
    return "reused" if res.get("reused") else "resumed" if res.get("resumed") else "new"


# the roll-up of a composite command: (cluster, finished reports by name (each with "_build"), failures)
RollUp = Callable[[dict[str, Any], dict[str, dict[str, Any]], list[dict[str, Any]]], dict[str, Any]]


class CompositeStage(stage.Stage):
    """A stage whose members are Dask tasks (``flow.py library``, ``flow.py sweep``). It resumes by finished
    members (a directory that exists is continued), and the settings the members share (``fingerprint``)
    may not change. ``client``: a Dask client on a remote scheduler, asked before anything touches the disk
    (None: a local cluster, started once the run's lock is held). A subclass names its roll-up file
    (``listing``) and calls :meth:`members` from ``run``."""

    listing: ClassVar[str]
    resumable = True
    renamed = (("--out", "--run-dir"),)
    stored_required = False  # a directory from before config.json: resumed as given
    environment = ("scheduler", "scheduler_timeout", "workers")  # a resumed build runs where it is told now
    packages = ("amaranth", "cocotb", "dask", "distributed", "deap", "numba", "numpy")

    def __init__(self, client: Any = None):
        self.client = client

    def resuming(self, cfg: Any) -> bool:
        path = self.directory(cfg, None)
        return not cfg.overwrite and path.is_dir() and any(path.iterdir())

    def directory(self, cfg: Any, plan: Any) -> Path:
        return super().directory(cfg, plan).resolve()  # the workers' working directories are not ours

    def execute(self, cfg: Any, *, given: Any = None, progress: bool = True) -> dict[str, Any]:
        if cfg.scheduler is None or self.client is not None:
            return super().execute(cfg, given=given, progress=progress)
        self.prepare(cfg, progress)  # every setting checked before the scheduler is asked
        with dask_client(cfg) as client:  # a remote scheduler is asked first, before anything touches the disk
            return type(self)(client).execute(cfg, given=given, progress=progress)

    def members(self, ctx: stage.Context, tasks: Sequence[Task], roll_up: RollUp,
                folders: Sequence[str] = ()) -> dict[str, Any]:
        """Run ``tasks`` on the cluster (``folders`` of the run made once it is up) under one progress bar
        and return ``roll_up``'s result, which the stage's report is. Ctrl-C cancels the tasks not finished,
        rolls up those that did and raises KeyboardInterrupt; a failed member raises :class:`MemberError`
        with its exit code once the others are rolled up."""
        where = ctx.run.path
        with contextlib.ExitStack() as stack:
            client = self.client if self.client is not None else stack.enter_context(dask_client(ctx.cfg))
            for folder in folders:
                (where / folder).mkdir(exist_ok=True)
            info = client.scheduler_info()
            cluster = {"scheduler": ctx.cfg.scheduler or "local", "address": info.get("address"),
                       "workers": len(info.get("workers", {}))}
            futures = {client.submit(t.fn, *t.args, key=f"{t.kind}-{t.name}", retries=1, pure=False): t
                       for t in tasks}
            done: dict[str, dict[str, Any]] = {}
            failures: list[dict[str, Any]] = []
            try:
                for fut in completed(client, futures, ctx.progress, desc=self.name):
                    res = fut.result()
                    if "error" in res:
                        failures.append(res)
                    else:
                        done[futures[fut].name] = {**res["report"], "_build": how_built(res)}
            except KeyboardInterrupt:
                for fut in futures:
                    fut.cancel()
                roll_up(cluster, done, failures)
                print(f"interrupted: {len(done)} of {len(tasks)} finished, the rest not; {ctx.run.see(self.listing)}; "
                      f"run the {self.name} again to resume the rest", file=sys.stderr)
                raise
            result = roll_up(cluster, done, failures)
            ctx.reported = True  # the roll-up is the report
            if failures:
                raise MemberError(f"{failures[0]['error']} ({len(failures)} of {len(tasks)} failed; "
                                  f"{where / self.listing} lists the rest)", failures[0]["exit_code"])
        return result
