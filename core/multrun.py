"""A multiplier run directory: what ``flow.py evolve`` leaves and every later stage reads.

Files (``runs/<design>/<tag>/``): ``report.json`` (``wa``, ``wb``, ``signed``, ``module``, ``eps``, ``wce``,
the PPA figures and ``exact`` with the exact design's), ``config.json`` (the resolved settings),
``approx.v`` (generic gates), ``approx_<tech>.v`` (mapped cells), ``approx.json`` (the gate netlist) and
``lut.npy`` (int32, ``lut[a_code, b_code]``, up to :data:`LUT_MAX_BITS` input bits).

:meth:`MultiplierRun.load` checks the files a reader needs, each fault one :class:`ConfigError` line;
:meth:`MultiplierRun.write` makes one (the test and bench fixtures); :func:`latest` finds the newest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError
from core.run import read_json
from core.tables import read_lut

REPORT = "report.json"
CONFIG = "config.json"
VERILOG = "approx.v"
NETLIST = "approx.json"
LUT = "lut.npy"
LUT_MAX_BITS = 16


def mapped(tech: str) -> str:
    """The file name of the multiplier mapped onto ``tech``'s cells."""
    return f"approx_{tech}.v"


def _read_object(path: Path, what: str) -> dict[str, Any]:
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a JSON object, not {type(data).__name__}")
    return data


@dataclass(frozen=True)
class MultiplierRun:
    """A checked multiplier run directory; ``wa``, ``wb``, ``signed`` come from its report."""

    path: Path
    report: dict[str, Any] = field(repr=False, compare=False)
    wa: int
    wb: int
    signed: bool

    @classmethod
    def load(cls, path: str | Path, wa: int | None = None, wb: int | None = None, signed: bool | None = None,
             *, need: Iterable[str] = ()) -> MultiplierRun:
        """The run in ``path`` after checking ``report.json`` and the files in ``need`` exist, and that its
        shape is ``wa``, ``wb``, ``signed`` where those are given."""
        path = Path(path)
        report = read_report(path)
        for name in dict.fromkeys(need):
            if not (path / name).is_file():
                raise ConfigError(f"multiplier run directory {path} has no {name}")
        for key in ("wa", "wb", "signed"):
            if key not in report:
                raise ConfigError(f"{path / REPORT} has no {key!r} entry")
        rwa, rwb, rsigned = report["wa"], report["wb"], report["signed"]
        widths_ok = all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in (rwa, rwb))
        if not widths_ok or not isinstance(rsigned, bool):
            raise ConfigError(f"{path / REPORT}: wa and wb must be positive integers and signed a boolean")
        for what, ours, theirs in (("a", wa, rwa), ("b", wb, rwb)):
            if ours is not None and ours != theirs:
                raise ConfigError(f"the multiplier in {path} has {theirs}-bit {what} operands, not {ours}")
        if signed is not None and signed != rsigned:
            raise ConfigError(f"the multiplier in {path} is {'signed' if rsigned else 'unsigned'}, not "
                              f"{'signed' if signed else 'unsigned'}")
        return cls(path, report, rwa, rwb, rsigned)

    def file(self, name: str) -> Path:
        """The path of one of the run's files (which must exist)."""
        p = self.path / name
        if not p.is_file():
            raise ConfigError(f"multiplier run directory {self.path} has no {name}")
        return p

    def lut(self) -> np.ndarray:
        """``lut.npy`` as int64, checked against the report's shape and signedness."""
        return read_lut(self.file(LUT), self.wa, self.wb, self.signed)

    def verilog(self) -> str:
        """The text of ``approx.v``."""
        return self.file(VERILOG).read_text(encoding="utf-8", errors="replace")

    def config(self) -> dict[str, Any]:
        """``config.json`` (the run's resolved settings)."""
        return _read_object(self.file(CONFIG), "run configuration")

    @property
    def design(self) -> str | None:
        d = self.report.get("design")
        return str(d) if d else None

    @staticmethod
    def write(path: str | Path, report: Mapping[str, Any], *, lut: np.ndarray | None = None,
              verilog: str | None = None, config: Mapping[str, Any] | None = None,
              netlist: Mapping[str, Any] | None = None, mapped_verilog: Mapping[str, str] | None = None
              ) -> MultiplierRun:
        """Write a run directory of the documented shape (``mapped_verilog``: technology -> cell netlist)
        and load it back."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if lut is not None:
            write_lut(path, lut)
        if verilog is not None:
            (path / VERILOG).write_text(verilog, encoding="utf-8")
        for tech, text in (mapped_verilog or {}).items():
            (path / mapped(tech)).write_text(text, encoding="utf-8")
        if netlist is not None:
            (path / NETLIST).write_text(json.dumps(dict(netlist)), encoding="utf-8")
        if config is not None:
            (path / CONFIG).write_text(json.dumps(dict(config), indent=2), encoding="utf-8")
        (path / REPORT).write_text(json.dumps(dict(report), indent=2), encoding="utf-8")
        return MultiplierRun.load(path)


def read_report(path: str | Path) -> dict[str, Any]:
    """The ``report.json`` of the run in ``path`` as a JSON object (for readers of its figures alone)."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"multiplier run directory {path} does not exist")
    if not (path / REPORT).is_file():
        raise ConfigError(f"multiplier run directory {path} has no {REPORT}")
    return _read_object(path / REPORT, "multiplier report")


def write_lut(path: Path, lut: np.ndarray) -> Path:
    """``path/lut.npy`` in the one format every reader expects: int32, ``lut[a_code, b_code]``."""
    out = Path(path) / LUT
    np.save(out, np.asarray(lut).astype(np.int32))
    return out


def latest(runs: Path, eps: float, design: str = "mul8s") -> Path | None:
    """The newest verified evolve run of ``design`` at ``eps`` under the runs root ``runs`` (sweeps
    included) that has the files the later stages read (``approx.v``, ``lut.npy``), or None."""
    found = []
    for rep in (Path(runs) / design).glob(f"**/{REPORT}"):
        try:
            r = json.loads(rep.read_text())
        except (OSError, ValueError):
            continue
        if (isinstance(r, dict) and r.get("eps") == eps and r.get("verification", {}).get("passed")
                and (rep.parent / VERILOG).is_file() and (rep.parent / LUT).is_file()):
            found.append((rep.stat().st_mtime, str(rep.parent)))
    return Path(max(found)[1]) if found else None
