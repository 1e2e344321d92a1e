"""A reader for the parts of a Liberty file the flow needs: units, cells, areas, pins and functions.

Timing and power tables are skipped, not parsed (OpenSTA and Yosys read those themselves), so a
20 MB library reads in about a second. Pin functions are parsed into truth tables so that a cell is
recognised by what it computes, not by its name.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigError

_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_CONT = re.compile(r"\\\r?\n")
# A group opening "name (args) {", a closing brace, or a simple attribute "name : value ;".
_TOKEN = re.compile(
    r'(?P<group>[A-Za-z_][\w.]*)\s*\((?P<args>[^)]*)\)\s*\{'
    r'|(?P<close>\})'
    r'|(?P<attr>[A-Za-z_][\w.]*)\s*:\s*(?P<value>"[^"]*"|[^;{}\n]*?)\s*;'
)


@dataclass(frozen=True)
class Pin:
    name: str
    direction: str
    function: str | None = None
    capacitance: float | None = None
    three_state: str | None = None  # the enable condition of a tristate output


@dataclass(frozen=True)
class Cell:
    name: str
    area: float
    pins: tuple[Pin, ...]
    dont_use: bool = False
    sequential: bool = False

    @property
    def inputs(self) -> tuple[Pin, ...]:
        return tuple(p for p in self.pins if p.direction == "input")

    @property
    def outputs(self) -> tuple[Pin, ...]:
        return tuple(p for p in self.pins if p.direction == "output")


@dataclass(frozen=True)
class Library:
    name: str
    path: Path
    cells: dict[str, Cell] = field(repr=False)
    time_unit: str = "1ns"
    capacitive_load_unit: str = "1pf"
    leakage_power_unit: str = "1nW"
    nom_voltage: float | None = None


def read(path: Path) -> Library:
    """Parse a Liberty file; a file that is not Liberty is a one-line error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read Liberty file {path}: {exc.strerror}") from None
    text = _CONT.sub(" ", _COMMENT.sub(" ", text))

    lib_name = None
    attrs: dict[str, str] = {}
    cells: dict[str, Cell] = {}
    stack: list[str] = []  # group kinds
    cell: dict | None = None
    pin: dict | None = None
    for m in _TOKEN.finditer(text):
        if m.group("group") is not None:
            kind = m.group("group")
            arg = m.group("args").strip().strip('"')
            if not stack and kind != "library":
                break
            if kind == "library" and not stack:
                lib_name = arg
            elif kind == "cell" and len(stack) == 1:
                cell = {"name": arg, "area": None, "pins": [], "dont_use": False, "sequential": False}
            elif kind in ("ff", "latch", "ff_bank", "latch_bank", "statetable") and cell is not None:
                cell["sequential"] = True
            elif kind == "pin" and cell is not None and stack[-1] == "cell":
                pin = {"name": arg, "direction": "", "function": None, "capacitance": None, "three_state": None}
            stack.append(kind)
        elif m.group("close") is not None:
            if not stack:
                break
            kind = stack.pop()
            if kind == "pin" and pin is not None and stack and stack[-1] == "cell":
                assert cell is not None
                cell["pins"].append(Pin(**pin))
                pin = None
            elif kind == "cell" and cell is not None and len(stack) == 1:
                if cell["area"] is not None:
                    cells[cell["name"]] = Cell(cell["name"], cell["area"], tuple(cell["pins"]),
                                               cell["dont_use"], cell["sequential"])
                cell = None
        else:
            name, value = m.group("attr"), m.group("value").strip().strip('"')
            where = stack[-1] if stack else ""
            if where == "library":
                attrs[name] = value
            elif where == "cell" and cell is not None:
                if name == "area":
                    cell["area"] = _float(value, path, name)
                elif name == "dont_use":
                    cell["dont_use"] = value.lower() == "true"
            elif where == "pin" and pin is not None:
                if name == "direction":
                    pin["direction"] = value
                elif name in ("function", "three_state"):
                    pin[name] = value
                elif name == "capacitance":
                    pin["capacitance"] = _float(value, path, name)
    if lib_name is None:
        raise ConfigError(f"{path} is not a Liberty file (no 'library (...) {{' group found)")
    if not cells:
        raise ConfigError(f"Liberty file {path} defines no cells with an area")
    cap = re.sub(r"[\s()]", "", re.sub(r",\s*", "", _raw_complex(text, "capacitive_load_unit") or "1pf"))
    return Library(
        name=lib_name, path=path, cells=cells,
        time_unit=attrs.get("time_unit", "1ns"),
        capacitive_load_unit=cap,
        leakage_power_unit=attrs.get("leakage_power_unit", "1nW"),
        nom_voltage=_float(attrs["nom_voltage"], path, "nom_voltage") if "nom_voltage" in attrs else None,
    )


def _raw_complex(text: str, name: str) -> str | None:
    m = re.search(rf"\b{name}\s*\(([^)]*)\)", text)
    return m.group(1) if m else None


def _float(value: str, path: Path, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"Liberty file {path}: {name} must be a number, not {value!r}") from None


# ---------------------------------------------------------------------------------------------
# Boolean functions: Liberty syntax -> truth table over the given input order.

_FTOKEN = re.compile(r"\s*(?:(?P<id>[A-Za-z_][\w\[\]]*)|(?P<const>[01])\b|(?P<op>[!'&*|+^()]))")


def truth_table(function: str, inputs: list[str]) -> int:
    """The truth table of a Liberty function as an integer: bit ``i`` is the output for the input
    assignment whose bit ``k`` is input ``inputs[k]``."""
    tokens = _tokens(function)
    n = len(inputs)
    rows = 1 << n
    full = (1 << rows) - 1
    var = {}
    for k, name in enumerate(inputs):
        bits = 0
        for i in range(rows):
            if (i >> k) & 1:
                bits |= 1 << i
        var[name] = bits
    parser = _Parser(tokens, var, full, function)
    value = parser.parse_or()
    if parser.pos != len(tokens):
        raise ValueError(f"cannot parse Liberty function {function!r}")
    return value


def _tokens(function: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    text = function.strip()
    while pos < len(text):
        m = _FTOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"cannot parse Liberty function {function!r}")
        pos = m.end()
        if m.group("const") is not None:
            out.append(("const", m.group("const")))
        elif m.group("id") is not None:
            out.append(("id", m.group("id")))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
    return out


class _Parser:
    """Precedence: postfix ' > prefix ! > ^ > AND (& * juxtaposition) > OR (| +)."""

    def __init__(self, tokens: list[tuple[str, str]], var: dict[str, int], full: int, text: str):
        self.t, self.var, self.full, self.text, self.pos = tokens, var, full, text, 0

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.pos] if self.pos < len(self.t) else None

    def take(self) -> tuple[str, str]:
        tok = self.t[self.pos]
        self.pos += 1
        return tok

    def parse_or(self) -> int:
        v = self.parse_and()
        while self.peek() in (("op", "|"), ("op", "+")):
            self.take()
            v |= self.parse_and()
        return v

    def parse_and(self) -> int:
        v = self.parse_xor()
        while True:
            tok = self.peek()
            if tok in (("op", "&"), ("op", "*")):
                self.take()
                v &= self.parse_xor()
            elif tok is not None and (tok[0] in ("id", "const") or tok in (("op", "("), ("op", "!"))):
                v &= self.parse_xor()  # juxtaposition is AND
            else:
                return v

    def parse_xor(self) -> int:
        v = self.parse_unary()
        while self.peek() == ("op", "^"):
            self.take()
            v ^= self.parse_unary()
        return v

    def parse_unary(self) -> int:
        if self.peek() == ("op", "!"):
            self.take()
            return self.full & ~self.parse_unary()
        v = self.parse_atom()
        while self.peek() == ("op", "'"):
            self.take()
            v = self.full & ~v
        return v

    def parse_atom(self) -> int:
        if self.peek() is None:
            raise ValueError(f"cannot parse Liberty function {self.text!r}")
        kind, val = self.take()
        if kind == "const":
            return self.full if val == "1" else 0
        if kind == "id":
            if val not in self.var:
                raise ValueError(f"Liberty function {self.text!r} uses unknown pin {val!r}")
            return self.var[val]
        if val == "(":
            v = self.parse_or()
            if self.peek() != ("op", ")"):
                raise ValueError(f"cannot parse Liberty function {self.text!r}")
            self.take()
            return v
        raise ValueError(f"cannot parse Liberty function {self.text!r}")


# ---------------------------------------------------------------------------------------------
# Internal power: the energy tables of one cell's output pin, read on demand (``read`` skips them).

_TEMPLATE = re.compile(r"power_lut_template\s*\(\s*\"?([\w.]+)\"?\s*\)\s*\{(?P<body>[^{}]*)\}")
_TABLE = re.compile(r"(rise_power|fall_power)\s*\(\s*\"?([\w.]*)\"?\s*\)\s*\{(?P<body>[^{}]*)\}")


def _block(text: str, start: int) -> str:
    """The text of the brace group that opens at or after ``start``."""
    open_at = text.index("{", start)
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
    raise ValueError("unbalanced braces")


def _numbers(body: str, name: str) -> list[float]:
    m = re.search(rf"\b{name}\s*\(([^)]*)\)", body)
    if not m:
        return []
    return [float(x) for x in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", m.group(1))]


def _interp(xs: list[float], ys: list[float], x: float) -> float:
    """Piecewise-linear in ``xs``, extrapolated linearly beyond its ends (as OpenSTA does)."""
    if len(xs) < 2:
        return ys[0]
    i = 0
    while i < len(xs) - 2 and x > xs[i + 1]:
        i += 1
    x0, x1 = xs[i], xs[i + 1]
    return ys[i] + (ys[i + 1] - ys[i]) * (x - x0) / (x1 - x0) if x1 != x0 else ys[i]


@dataclass(frozen=True)
class EnergyTable:
    """Internal energy of one output toggle against the output load, at one input transition: the
    average of rise and fall over every arc of the pin (Liberty energy units: capacitance x voltage^2)."""

    loads: tuple[float, ...]
    energy: tuple[float, ...]

    def at(self, load: float) -> float:
        return _interp(list(self.loads), list(self.energy), load)


@functools.lru_cache(maxsize=4)
def _power_text(path: Path) -> tuple[str, dict[str, tuple[str, str]]]:
    """The Liberty text without comments and continuations, and its power templates' variables (read once
    per file: a 20 MB library takes seconds)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    text = _CONT.sub(" ", _COMMENT.sub(" ", text))
    templates = {}
    for m in _TEMPLATE.finditer(text):
        body = m.group("body")
        v1 = re.search(r"variable_1\s*:\s*(\w+)", body)
        v2 = re.search(r"variable_2\s*:\s*(\w+)", body)
        templates[m.group(1)] = (v1.group(1) if v1 else "", v2.group(1) if v2 else "")
    return text, templates


def internal_energy(path: Path, cell: str, pin: str, transition: float) -> EnergyTable:
    """The internal-power table of ``cell``'s output ``pin`` at input ``transition`` (library time units),
    as a function of the output load. A cell without internal power has an all-zero table."""
    text, templates = _power_text(Path(path))
    m = re.search(rf"\bcell\s*\(\s*\"?{re.escape(cell)}\"?\s*\)\s*\{{", text)
    if not m:
        raise ConfigError(f"Liberty file {path} has no cell {cell!r}")
    cell_text = _block(text, m.start())
    pm = re.search(rf"\bpin\s*\(\s*\"?{re.escape(pin)}\"?\s*\)\s*\{{", cell_text)
    if not pm:
        raise ConfigError(f"Liberty file {path}: cell {cell} has no pin {pin!r}")
    pin_text = _block(cell_text, pm.start())
    curves: list[tuple[list[float], list[float]]] = []
    for tm in _TABLE.finditer(pin_text):
        body = tm.group("body")
        vals = _numbers(body, "values")
        if not vals:
            continue
        v1 = templates.get(tm.group(2), ("total_output_net_capacitance", ""))[0]
        i1, i2 = _numbers(body, "index_1"), _numbers(body, "index_2")
        if not i1:  # a scalar table: the same energy at every load
            curves.append(([0.0], [vals[0]]))
            continue
        load_first = "capacitance" in v1
        if not i2:  # one index: load or transition
            curves.append((i1, vals) if load_first else ([0.0], [_interp(i1, vals, transition)]))
            continue
        rows = [vals[r * len(i2):(r + 1) * len(i2)] for r in range(len(i1))]
        if load_first:  # rows over load, columns over transition
            curves.append((i1, [_interp(i2, row, transition) for row in rows]))
        else:  # rows over transition, columns over load
            cols = [[rows[r][c] for r in range(len(i1))] for c in range(len(i2))]
            curves.append((i2, [_interp(i1, col, transition) for col in cols]))
    if not curves:
        return EnergyTable((0.0,), (0.0,))
    loads = sorted({x for xs, _ in curves for x in xs})
    energy = [sum(_interp(xs, ys, x) for xs, ys in curves) / len(curves) for x in loads]
    return EnergyTable(tuple(loads), tuple(energy))
