"""``flow.py bench --suite library``: wall-clock of one small library built on a LocalCluster of 1 and of 2
worker processes (4x4 signed members, fixed generations, so both builds make the same members)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.bench import row


def run(quick: bool = False) -> Iterator[dict[str, Any]]:
    from evolve.library import LibraryConfig, build

    eps = (0.02, 0.05) if quick else (0.01, 0.02, 0.05, 0.1)
    generations = 300 if quick else 2000
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    times: dict[int, float] = {}
    made: dict[int, list[tuple[Any, ...]]] = {}
    with tempfile.TemporaryDirectory(prefix="axflow-bench-library-") as tmp:
        for workers in (1, 2):
            cfg = LibraryConfig(eps=eps, seeds=(1,), bits=4, signed=True, budget=0.0, generations=generations,
                                jobs=1, epoch=100, power_vectors=50, workers=workers,
                                run_dir=Path(tmp) / f"workers{workers}")
            t0 = time.perf_counter()
            result = build(cfg, progress=False)
            times[workers] = time.perf_counter() - t0
            made[workers] = [(r["name"], r["wce"], r["area"]) for r in result["rows"]]
    what = f"{len(eps)} members, 4x4 signed, {generations} generations"
    yield row(f"library ({what}), 1 worker", times[1], "s")
    yield row(f"library ({what}), 2 workers", times[2], "s", reference=times[1],
              note=f"{cores} cores here; same members as with 1 worker: {'yes' if made[1] == made[2] else 'NO'}")
