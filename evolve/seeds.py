"""The exact seed of an evolution, synthesised from one of several architectures (``--seed-arch``).

:func:`synthesise_seed` writes the run's ``seed.json``/``seed.v`` (generic gates, top module named after
the design, as the plain RTL's) from the chosen architecture of :mod:`rtl_gen.architectures`; ``auto``
synthesises every architecture, maps each onto the technology and keeps the one that costs least by the
run's objective: the least mapped area, or under ``--cost power`` the least power as the flow measures it
(a timing simulation of the mapped seed on the run's power stream, powered by OpenSTA: the glitches of a
ripple array against a tree are what separate the architectures, and the zero-delay cost does not see
them). What was chosen, and each candidate's mapped area (and power), is written to ``seed_arch.json`` for
the report. The
seed is proven equal to the plain ``a*b`` RTL later in the flow (``formal_rtl_vs_seed``), whichever
architecture it came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.run import RunDir, read_json
from ppa import yosys
from ppa.yosys import Mapped
from rtl_gen.architectures import ARCHITECTURES, multiplier
from rtl_gen.multiplier import to_verilog

SEED_ARCHS = (*ARCHITECTURES, "auto")
INFO = "seed_arch.json"


def _rtl(run: RunDir, arch: str, design: str, wa: int, wb: int, is_signed: bool, plain_rtl: Path) -> Path:
    if arch == "array":
        return plain_rtl  # the plain a*b RTL is the array architecture
    path = run.path / f"{design}_{arch}.v"
    path.write_text(to_verilog(multiplier(arch, wa, wb, signed_=is_signed), design), encoding="utf-8")
    return path


def stored_powers(path: Path) -> dict[str, float | None] | None:
    """The architectures' powers an earlier execution of a run recorded in its :data:`INFO` (``power_w``),
    or None where it recorded none (chosen by area, or written before powers were) or recorded them for
    another set of architectures: then they are measured again. A file that is not that record is a
    one-line error naming it, never a traceback or a guess."""
    info = read_json(path, "seed architecture")
    if not isinstance(info, dict):
        raise ConfigError(f"seed architecture {path} must be a JSON object, not {type(info).__name__}: "
                          "a corrupt file (delete it to measure the powers again)")
    found = info.get("power_w")
    if found is None:
        return None
    if (not isinstance(found, dict) or not found
            or not all(isinstance(k, str) and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                             and v > 0)) for k, v in found.items())
            or all(v is None for v in found.values())):
        raise ConfigError(f"seed architecture {path} must record power_w as watts > 0 or null per architecture "
                          f"(at least one measured), not {json.dumps(found)[:120]}: a corrupt file (delete it to "
                          "measure the powers again)")
    if set(found) != set(ARCHITECTURES):
        return None  # recorded for another set of architectures: measured again
    return {k: (None if v is None else float(v)) for k, v in found.items()}


def synthesise_seed(run: RunDir, choice: str, design: str, wa: int, wb: int, is_signed: bool, tech: Any,
                    plain_rtl: Path, say: Callable[[str], None] = lambda _: None,
                    power: Callable[[str, Mapped], float | None] | None = None,
                    stored_powers: dict[str, float | None] | None = None) -> dict[str, Any]:
    """Write ``seed.json`` and ``seed.v`` for architecture ``choice`` (or, under ``auto``, the one of least
    mapped area, or of least power when ``power`` is given) and return what :data:`INFO` records:
    ``choice``, ``arch`` (the one used), ``by`` (``area`` or ``power``), ``rtl`` (its file), ``mapped_area``
    (architecture -> area on ``tech``; the chosen one's is left out for ``array``, whose mapping is the
    flow's exact reference) and under ``power`` ``power_w`` (architecture -> measured power, None for one
    whose timing simulation does not settle at the run's period: it is not a candidate).

    ``power(arch, mapped)``: the power of an architecture's mapped netlist, measured the way the run
    measures its result; it must measure at least one (the run's own powers the array, its exact reference).
    ``stored_powers``: those powers as an earlier execution of the same run measured them (its :data:`INFO`, read on
    ``--resume``), used instead of measuring again."""
    seed_json, seed_v = run.path / "seed.json", run.path / "seed.v"
    archs = ARCHITECTURES if choice == "auto" else (choice,)
    areas: dict[str, float] = {}
    rtls: dict[str, Path] = {}
    maps: dict[str, Mapped] = {}
    for arch in archs:
        rtls[arch] = _rtl(run, arch, design, wa, wb, is_signed, plain_rtl)
        if choice == "auto" or arch != "array":
            mapped = yosys.map_to_cells(run, [rtls[arch]], design, tech, run.path / f"exact_{arch}_{tech.name}.v",
                                        step=f"map_seed_{arch}")
            areas[arch] = mapped.area
            maps[arch] = mapped
    by = "power" if choice == "auto" and power is not None else "area"
    powers: dict[str, float | None] = {}
    if choice == "auto" and power is not None:
        if stored_powers is not None:
            say(f"seed architecture powers as this run measured them ({INFO})")
        for x in archs:
            if stored_powers is not None:
                powers[x] = stored_powers[x]
                continue
            say(f"seed architecture {x}: timing simulation and power of its mapped netlist on {tech.name}")
            powers[x] = power(x, maps[x])
        measured = {x: w for x, w in powers.items() if w is not None}  # the array (exact reference) always is
        arch = min(measured, key=measured.__getitem__)
    else:
        arch = min(archs, key=lambda x: areas[x]) if choice == "auto" else choice
    if choice == "auto":
        def figures(x: str) -> str:
            if by == "area":
                return f"{x} {areas[x]:g}"
            w = powers[x]
            return f"{x} {areas[x]:g} " + ("(does not settle)" if w is None else f"{w * 1e3:.4g} mW")
        say(f"seed architectures on {tech.name}, mapped area{' and power' if by == 'power' else ''}: "
            + ", ".join(map(figures, archs)) + f"; starting from {arch} (least {by})")
    say(f"synthesising {design} ({arch}) to generic gates (the seed)")
    yosys.synth_generic(run, [rtls[arch]], design, seed_json, seed_v)
    info = {"choice": choice, "arch": arch, "by": by, "rtl": rtls[arch].name, "mapped_area": areas}
    if by == "power":
        info["power_w"] = powers
    run.write_json(INFO, info)
    return info


def report(run_path: Path, exact_area: float) -> dict[str, Any]:
    """What :data:`INFO` holds, with ``area``: the mapped area of the exact seed the run started from
    (the smallest under ``auto``; the exact reference's, ``exact_area``, for ``array``)."""
    info = read_json(run_path / INFO, "seed architecture")
    return {**info, "area": float(info["mapped_area"].get(info["arch"], exact_area))}


def cell_seed(run: RunDir, seed_v: Path, top: str, tech: Any, tables: Any, wa: int, wb: int, is_signed: bool,
              say: Callable[[str], None] = lambda _: None, name: str = "seed") -> Any:
    """The netlist ``seed_v`` (generic gates) mapped by ABC onto the cells of the cell function set ``tables``
    (:class:`evolve.cellnet.Tables`; every other cell ``dont_use``), read into a cell netlist. Writes
    ``<name>_<tech>.v`` and ``<name>_cells.json``."""
    import json

    from evolve import cellnet
    from tech import cells

    say(f"mapping {seed_v.name} onto the {tables.n} cell functions of {tech.name}")
    lib = cells.restricted_liberty(tables.cells, run.path / f"cells_{tech.name}.lib")
    out_json = run.path / f"{name}_cells.json"
    yosys.map_to_cells(run, [seed_v], top, tech, run.path / f"{name}_{tech.name}.v", step=f"map_{name}_cells",
                       liberty=lib, out_json=out_json)
    lib.unlink()  # a copy of the technology's Liberty, large
    return cellnet.CellNetlist.from_yosys_json(json.loads(out_json.read_text()), top, wa, wb, is_signed, tables,
                                               source=out_json.name)
