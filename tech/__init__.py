"""Technologies: immutable descriptions of a standard-cell library, passed to every stage that needs one.

``tech.load("osu018")`` gives the default, the OSU 0.18 um library from Debian's qflow-tech-osu018;
``"osu035"`` and ``"osu050"`` are the OSU 0.35 um and 0.5 um libraries of qflow-tech-osu035 and
qflow-tech-osu050 (installed by ``make deps``).
Any other library is given by path:

- a Liberty file (``.lib``): its cell models are the ``.v`` files in the same directory;
- a directory holding one Liberty file and its ``.v`` models;
- a TOML description::

      name = "gf180mcu"
      liberty = "gf180mcu_fd_sc_mcu9t5v0__tt_025C_3v30.lib"   # relative to the TOML file
      verilog = ["gf180mcu_fd_sc_mcu9t5v0.v", "primitives.v"]
      [cells]            # optional: pin the cell used for a generic gate
      NAND = "gf180mcu_fd_sc_mcu9t5v0__nand2_1"

Each generic gate of the evolution (AND, NAND, OR, NOR, XOR, XNOR, NOT) is bound to the smallest
library cell that computes it; its area is that cell's Liberty area. Transistor counts per gate are
the equivalents CircuitsDNA uses (INV 2, NAND/NOR 4, AND/OR 6, XOR/XNOR 10).
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from core.errors import ConfigError, must
from tech import liberty
from tech.liberty import EnergyTable

_QFLOW = Path("/usr/share/qflow/tech")
# the GF180MCU library beside a development checkout (../shared/tech/gf180mcu; a user's clone lacks it):
# what the technology-independence tests and benchmarks run on where it is present
SHARED_GF180 = Path(__file__).resolve().parent.parent.parent / "shared" / "tech" / "gf180mcu"
SHARED_GF180_LIBERTY = SHARED_GF180 / "gf180mcu_fd_sc_mcu9t5v0__tt_025C_3v30.lib"
# name -> (Liberty, cell models), as Debian's qflow-tech-<name> packages install them
BUILTIN: dict[str, tuple[Path, tuple[Path, ...]]] = {
    "osu018": (_QFLOW / "osu018/osu018_stdcells.lib", (_QFLOW / "osu018/osu018_stdcells.v",)),
    "osu035": (_QFLOW / "osu035/osu035_stdcells.lib", (_QFLOW / "osu035/osu035_stdcells.v",)),
    "osu050": (_QFLOW / "osu050/osu05_stdcells.lib", (_QFLOW / "osu050/osu05_stdcells.v",)),
}
BUILTIN_PACKAGES = {name: f"qflow-tech-{name}" for name in BUILTIN}

# Generic gates of the evolution: name -> (inputs, truth table over inputs (A=bit0, B=bit1)).
GATES: dict[str, tuple[int, int]] = {
    "AND": (2, 0b1000), "NAND": (2, 0b0111), "OR": (2, 0b1110), "NOR": (2, 0b0001),
    "XOR": (2, 0b0110), "XNOR": (2, 0b1001), "NOT": (1, 0b01),
}
TRANSISTORS: Mapping[str, int] = MappingProxyType(
    {"NOT": 2, "NAND": 4, "NOR": 4, "AND": 6, "OR": 6, "XOR": 10, "XNOR": 10})


@dataclass(frozen=True)
class GateCell:
    """The library cell that implements one generic gate."""

    gate: str
    cell: str
    area: float
    inputs: tuple[str, ...]  # cell pins in the gate's operand order
    output: str
    input_cap: float | None


@dataclass(frozen=True)
class Technology:
    """A standard-cell library with the cells chosen for the generic gates."""

    name: str
    liberty: Path
    verilog: tuple[Path, ...]
    gates: Mapping[str, GateCell] = field(repr=False)
    cell_areas: Mapping[str, float] = field(repr=False, default_factory=lambda: MappingProxyType({}))
    cap_unit: str = "1pf"
    time_unit: str = "1ns"
    voltage: float | None = None
    tie_lo: str | None = None
    tie_hi: str | None = None

    def gate_area(self, gate: str) -> float:
        return self.gates[gate].area

    def transistors(self, gate: str) -> int:
        return TRANSISTORS[gate]

    def toggle_energy(self, gate: str) -> EnergyTable:
        """Internal energy of one output toggle of ``gate``'s cell against its output load (Liberty energy
        units, pJ for a library in pF and V), at the 0.1 ns input transition the flow's STA drives."""
        c = self.gates[gate]
        return self.output_energy(c.cell, c.output)

    def output_energy(self, cell: str, pin: str) -> EnergyTable:
        """:meth:`toggle_energy` of output ``pin`` of any combinational ``cell`` of the library (a cell of
        ``--function-set cells``; each output of a multi-output cell has its own)."""
        return _toggle_energy(self.liberty, cell, pin, _TRANSITION_NS / _time_scale(self.time_unit))

    @property
    def cap_pf(self) -> float:
        """One unit of the library's capacitance in pF."""
        m = re.fullmatch(r"([\d.]+)(pf|ff)", self.cap_unit.lower())
        if not m:
            raise ConfigError(f"Liberty capacitive_load_unit {self.cap_unit!r} is not supported (choices: pf, ff)")
        return float(m.group(1)) * (1.0 if m.group(2) == "pf" else 1e-3)

    @property
    def default_load(self) -> float:
        """Output load for timing and power: four inverter inputs (FO4), in the library's cap unit."""
        cap = self.gates["NOT"].input_cap
        return 4 * cap if cap else 0.0

    def describe(self) -> dict:
        return {
            "name": self.name, "liberty": str(self.liberty), "verilog": [str(p) for p in self.verilog],
            "gates": {g: {"cell": c.cell, "area": c.area} for g, c in self.gates.items()},
            "transistors": dict(TRANSISTORS),
        }


_TRANSITION_NS = 0.1  # input transition of the flow's STA (ppa.sta.analyse)


def _time_scale(unit: str) -> float:
    """One library time unit in ns."""
    m = re.fullmatch(r"(\d+)(ps|ns)", unit.replace(" ", "").lower())
    if not m:
        raise ConfigError(f"Liberty time_unit {unit!r} is not supported (choices: 1ps, 1ns, ...)")
    return int(m.group(1)) * (1e-3 if m.group(2) == "ps" else 1.0)


@functools.lru_cache(maxsize=64)
def _toggle_energy(lib: Path, cell: str, pin: str, transition: float) -> EnergyTable:
    return liberty.internal_energy(lib, cell, pin, transition)


def names() -> list[str]:
    return sorted(BUILTIN)


def load(spec: str | Path) -> Technology:
    """A technology by built-in name or by path (Liberty file, directory or TOML description)."""
    return _load(str(spec))


@functools.lru_cache(maxsize=8)
def _load(spec: str) -> Technology:
    if spec in BUILTIN:
        lib, models = BUILTIN[spec]
        if not lib.is_file():
            raise ConfigError(f"technology {spec!r} is not installed: install the Debian package "
                              f"'{BUILTIN_PACKAGES[spec]}' (make deps)")
        return _build(spec, lib, models, {})
    path = Path(spec)
    if not path.exists():
        raise must("TECH", "a built-in technology or a path to a Liberty file, a directory or a TOML "
                   "description", spec, names())
    if path.is_dir():
        libs = sorted(path.glob("*.lib"))
        if len(libs) != 1:
            raise ConfigError(f"technology directory {path} must hold exactly one .lib file, "
                              f"not {len(libs)}")
        return _build(path.name, libs[0], tuple(sorted(path.glob("*.v"))), {})
    if path.suffix == ".toml":
        return _from_toml(path)
    if path.suffix == ".lib":
        return _build(path.stem, path, tuple(sorted(path.parent.glob("*.v"))), {})
    raise must("TECH", "a built-in name, a .lib file, a directory or a .toml file", spec, names())


def _from_toml(path: Path) -> Technology:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read technology description {path}: {exc}") from None
    known = {"name", "liberty", "verilog", "cells"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"technology description {path} has unknown key {unknown[0]!r} "
                          f"(valid keys: {', '.join(sorted(known))})")
    if "liberty" not in data:
        raise ConfigError(f"technology description {path} must name its 'liberty' file")
    base = path.parent
    lib = base / data["liberty"]
    models = tuple(base / v for v in data.get("verilog", []))
    for f in (lib, *models):
        if not f.is_file():
            raise ConfigError(f"technology description {path} names {f}, which does not exist")
    cells = data.get("cells", {})
    bad = sorted(set(cells) - set(GATES))
    if bad:
        raise must(f"technology description {path}: [cells] key", "a generic gate", bad[0], list(GATES))
    return _build(str(data.get("name", path.stem)), lib, models, cells)


def _build(name: str, lib_path: Path, models: tuple[Path, ...], pinned: dict[str, str]) -> Technology:
    if not models:
        raise ConfigError(f"technology {name!r} has no Verilog cell models (.v files beside {lib_path})")
    lib = liberty.read(lib_path)
    candidates: dict[str, list[GateCell]] = {g: [] for g in GATES}
    tie_lo: list[tuple[float, str]] = []
    tie_hi: list[tuple[float, str]] = []
    for cell in lib.cells.values():
        if cell.sequential or cell.dont_use or len(cell.outputs) != 1 or cell.outputs[0].function is None:
            continue
        out = cell.outputs[0]
        ins = [p.name for p in cell.inputs]
        try:
            tt = liberty.truth_table(out.function or "", ins)
        except ValueError:
            continue
        if not ins:
            (tie_hi if tt == 1 else tie_lo).append((cell.area, cell.name))
            continue
        for gate, (arity, table) in GATES.items():
            if arity != len(ins):
                continue
            if tt == table:
                caps = [p.capacitance for p in cell.inputs if p.capacitance is not None]
                candidates[gate].append(GateCell(gate, cell.name, cell.area, tuple(ins), out.name,
                                                 max(caps) if caps else None))
    chosen: dict[str, GateCell] = {}
    for gate in GATES:
        options = candidates[gate]
        if gate in pinned:
            options = [c for c in options if c.cell == pinned[gate]]
            if not options:
                raise ConfigError(f"technology {name!r}: cell {pinned[gate]!r} pinned for {gate} does not "
                                  f"compute {gate} in {lib_path}")
        if not options:
            raise ConfigError(f"Liberty {lib_path} has no cell for the {gate} gate the flow needs "
                              f"(needed: {', '.join(GATES)})")
        chosen[gate] = min(options, key=lambda c: (c.area, "clk" in c.cell.lower(), _drive(c.cell), c.cell))
    return Technology(
        name=re.sub(r"[^\w.-]", "_", name), liberty=lib_path.resolve(),
        verilog=tuple(p.resolve() for p in models), gates=MappingProxyType(chosen),
        cell_areas=MappingProxyType({c.name: c.area for c in lib.cells.values()}),
        cap_unit=lib.capacitive_load_unit, time_unit=lib.time_unit, voltage=lib.nom_voltage,
        tie_lo=min(tie_lo)[1] if tie_lo else None, tie_hi=min(tie_hi)[1] if tie_hi else None,
    )


def _drive(cell: str) -> int:
    m = re.search(r"(\d+)$", cell)
    return int(m.group(1)) if m else 0
