"""Candidate multipliers from a library built by ``flow.py library``.

The catalogue ``<DIR>/library.json`` (written by ``evolve.library``, read here as plain JSON: the DNN
level does not import the search) has one row per member, ``{"kind": "member", "name": ..., "run_dir":
...}``; every member is an ordinary evolve run directory that :func:`dnn.mults.load` reads. Rows of
``kind`` ``reference`` (other designs characterised by ``flow.py ppa``, without a product table) are
not candidates. A recorded ``run_dir`` that is relative is taken from ``DIR``; one that no longer exists
(the library was moved) is looked for in ``DIR/members/<name>``.

Every fault is one :class:`~core.errors.ConfigError` line: no catalogue, a catalogue that is not the
documented shape, a member directory that is missing, a member that is not an 8x8 signed multiplier
(the network's INT8 quantisation) or lacks ``lut.npy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import multrun
from core.errors import ConfigError
from core.multrun import MultiplierRun
from core.run import read_json

CATALOGUE = "library.json"
BITS = 8  # the network's INT8 quantisation: 8x8 signed multipliers


def member_dirs(directory: str | Path, *, bits: int = BITS, signed: bool = True) -> list[Path]:
    """The member run directories of the library in ``directory``, in catalogue order, each checked to
    be a ``bits`` x ``bits`` multiplier of the given signedness with a product table."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"LIBRARY {directory} must be a library directory built by flow.py library")
    cat_path = directory / CATALOGUE
    if not cat_path.is_file():
        raise ConfigError(f"LIBRARY {directory} has no {CATALOGUE} (build it with flow.py library --out {directory})")
    cat = read_json(cat_path, "library catalogue")
    rows = cat.get("rows") if isinstance(cat, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"library catalogue {cat_path} must hold an object with a list of rows")
    out = []
    for n, row in enumerate(rows, start=1):
        if row.get("kind", "member") != "member":
            continue
        name, recorded = row.get("name"), row.get("run_dir")
        if not isinstance(recorded, str) or not recorded:
            raise ConfigError(f"library catalogue {cat_path} row {n} ({name}) has no run_dir")
        path = _resolve(directory, recorded, name)
        try:
            run = MultiplierRun.load(path, need=(multrun.LUT,))
        except ConfigError as err:
            raise ConfigError(f"library {directory} member {name}: {err}") from None
        if (run.wa, run.wb, run.signed) != (bits, bits, signed):
            raise ConfigError(f"library {directory} member {name} is a {run.wa}x{run.wb} "
                              f"{'signed' if run.signed else 'unsigned'} multiplier; the network's INT8 "
                              f"quantisation needs {bits}x{bits} {'signed' if signed else 'unsigned'} ones")
        out.append(path)
    if not out:
        raise ConfigError(f"library catalogue {cat_path} lists no members")
    return out


def _resolve(directory: Path, recorded: str, name: Any) -> Path:
    path = Path(recorded)
    if not path.is_absolute():
        path = directory / path
    if path.is_dir():
        return path
    moved = directory / "members" / str(name)
    if isinstance(name, str) and name and moved.is_dir():
        return moved
    raise ConfigError(f"library {directory} member {name}: its run directory {recorded} does not exist")
