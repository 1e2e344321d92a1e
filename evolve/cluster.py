"""The Dask cluster of the composite commands (``flow.py library``, ``flow.py sweep``): each member a task.

The default is a :class:`distributed.LocalCluster` of ``cores // jobs`` single-threaded worker processes;
``--scheduler tcp://HOST:PORT`` sends the same tasks to a running cluster (refused in one line, naming its
address, when it does not answer within ``--scheduler-timeout``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from core.errors import ConfigError, FlowError, must

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
