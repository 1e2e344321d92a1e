"""A technology's own combinational cells of up to three inputs, as the function set of the evolution.

Every function comes from the Liberty ``function`` attribute of a cell's output, parsed into a truth
table (:func:`tech.liberty.truth_table`), so the set is the same on any library: OSU018's AOI21, OAI21,
MUX2, NAND3, NOR3, half and full adders, GF180's AND3, OR3, XOR3, XNOR3 and its adders, and the two-input
gates and the inverter of both. Per distinct function (up to a permutation of its inputs) the cell of
least area is kept, its pins in Liberty order.

Kept out: sequential, ``dont_use`` and tristate cells, cells with more than three inputs, constants
(tie cells) and buffers (a buffer computes a wire, which costs nothing in the netlist), and functions
that ignore one of their inputs.

A multi-output cell (a half or full adder) gives one function per output, all in one *group*: nodes
of the same group reading the same inputs are one instance of the cell, costed once (its area) and
exported as one instance; a node whose sibling output is unused still costs the whole cell.

Truth tables are over three *slots* (the node's inputs ``in0``, ``in1``, ``in2``): bit ``i`` is the
output for ``in0 = i & 1``, ``in1 = (i >> 1) & 1``, ``in2 = (i >> 2) & 1``; slots beyond a function's
arity are never read.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from tech import Technology, liberty

MAX_INPUTS = 3


@dataclass(frozen=True)
class CellFunction:
    """One output of one cell, as a node function."""

    name: str  # the cell's name, with ``.<pin>`` for a multi-output cell
    cell: str
    output: str
    pins: tuple[str, ...]  # input pins, in slot order
    table: int  # truth table over three slots (see the module docstring)
    area: float  # the cell's Liberty area
    group: int = -1  # index of the multi-output cell this output belongs to, or -1
    pin_caps: tuple[float, ...] = ()  # input capacitance of each pin of ``pins`` (Liberty units; 0 if not given)

    @property
    def arity(self) -> int:
        return len(self.pins)

    @property
    def symmetric(self) -> bool:
        """The function is unchanged by any permutation of its inputs."""
        return all(permute(self.table, p) == self.table for p in itertools.permutations(range(self.arity)))


@dataclass(frozen=True)
class CellSet:
    """The function set of one technology: the functions, in a fixed order (their codes)."""

    tech: str
    liberty: Path
    functions: tuple[CellFunction, ...]
    groups: tuple[str, ...]  # the multi-output cells, by group index
    buffer: tuple[str, str, str] | None = None  # the smallest buffer (cell, input, output): not a node
    # function (a wire is free), but ABC does not map without one

    def index(self, cell: str, output: str) -> int | None:
        for i, f in enumerate(self.functions):
            if f.cell == cell and f.output == output:
                return i
        return None

    @property
    def cells(self) -> frozenset[str]:
        return frozenset(f.cell for f in self.functions)

    def describe(self) -> list[dict]:
        return [{"name": f.name, "cell": f.cell, "pins": list(f.pins), "output": f.output, "area": f.area,
                 "table": f"{f.table:08b}", "group": f.group} for f in self.functions]


def slot_table(table: int, n: int) -> int:
    """A truth table over ``n`` inputs, extended to three slots (independent of the unused ones)."""
    rows = 1 << n
    return sum(1 << i for i in range(8) if (table >> (i % rows)) & 1)


def permute(table: int, perm: tuple[int, ...]) -> int:
    """The three-slot table of f(x[perm[0]], x[perm[1]], ...): slot ``s`` of the new function feeds
    input ``s`` of the old one with variable ``perm[s]``."""
    out = 0
    for i in range(8):
        j = sum(((i >> p) & 1) << s for s, p in enumerate(perm))
        if (table >> j) & 1:
            out |= 1 << i
    return out


def _canonical(tables: tuple[int, ...], n: int) -> tuple[int, ...]:
    return min(tuple(permute(t, p) for t in tables) for p in itertools.permutations(range(n)))


def _depends_on_all(table: int, n: int) -> bool:
    for s in range(n):
        for i in range(8):
            if not (i >> s) & 1 and ((table >> i) & 1) != ((table >> (i | 1 << s)) & 1):
                break
        else:
            return False
    return True


def _rank(cell: liberty.Cell) -> tuple:
    m = re.search(r"(\d+)$", cell.name)
    return (cell.area, "clk" in cell.name.lower(), int(m.group(1)) if m else 0, cell.name)


def load(t: Technology) -> CellSet:
    """The function set of technology ``t`` (read from its Liberty, cached per file)."""
    return _load(t.name, t.liberty)


@functools.lru_cache(maxsize=8)
def _load(name: str, path: Path) -> CellSet:
    lib = liberty.read(path)
    best: dict[tuple, tuple[liberty.Cell, tuple[int, ...]]] = {}
    buffers: list[liberty.Cell] = []
    for cell in lib.cells.values():
        ins, outs = cell.inputs, cell.outputs
        if cell.sequential or cell.dont_use or not outs or not 1 <= len(ins) <= MAX_INPUTS:
            continue
        if any(p.function is None or p.three_state is not None for p in outs):
            continue
        names = [p.name for p in ins]
        try:
            tables = tuple(slot_table(liberty.truth_table(p.function or "", names), len(ins)) for p in outs)
        except ValueError:
            continue
        if not all(_depends_on_all(tt, len(ins)) for tt in tables):
            continue  # constants, and functions that ignore an input
        if len(outs) == 1 and len(ins) == 1 and tables[0] == slot_table(0b10, 1):
            buffers.append(cell)  # a wire does the same for nothing
            continue
        key = (len(ins), _canonical(tables, len(ins)))
        if key not in best or _rank(cell) < _rank(best[key][0]):
            best[key] = (cell, tables)
    functions: list[CellFunction] = []
    groups: list[str] = []
    for _key, (cell, tables) in sorted(best.items(), key=lambda kv: (kv[0][0], _rank(kv[1][0]))):
        pins = tuple(p.name for p in cell.inputs)
        caps = tuple(p.capacitance or 0.0 for p in cell.inputs)
        group = -1
        if len(tables) > 1:
            group = len(groups)
            groups.append(cell.name)
        for pin, tt in zip(cell.outputs, tables):
            label = cell.name if len(tables) == 1 else f"{cell.name}.{pin.name}"
            functions.append(CellFunction(label, cell.name, pin.name, pins, tt, cell.area, group, caps))
    arities = {f.arity for f in functions if f.group < 0}
    if 1 not in arities or 2 not in arities:
        raise ConfigError(f"Liberty {path} must have an inverter and two-input cells for the cell function set, "
                          f"not only cells of {sorted(arities)} inputs")
    buf = min(buffers, key=_rank) if buffers else None
    return CellSet(name, Path(path), tuple(functions), tuple(groups),
                   (buf.name, buf.inputs[0].name, buf.outputs[0].name) if buf else None)


def restricted_liberty(cs: CellSet, out: Path) -> Path:
    """A copy of the Liberty in which every cell outside the set is ``dont_use``, so that ABC maps onto
    the set's cells only (Yosys 0.23's ``abc`` has no ``-dont_use``). The smallest buffer stays usable:
    ABC does not map without one (it is read back as a wire)."""
    keep = cs.cells | ({cs.buffer[0]} if cs.buffer else set())
    text = cs.liberty.read_text(encoding="utf-8", errors="replace")

    def mark(m: re.Match) -> str:
        return m.group(0) if m.group(2) in keep else m.group(0) + " dont_use : true ;"

    out.write_text(re.sub(r'(\bcell\s*\(\s*"?)([\w.$-]+)"?\s*\)\s*\{', mark, text), encoding="utf-8")
    return out
