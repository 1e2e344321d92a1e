"""The cell netlist: a genome of the technology's own cells (``--function-set cells``), and its views.

Like :class:`evolve.netlist.Netlist` (same addresses: constants, ``a``, ``b``, then nodes), but a node is
a cell function of :mod:`tech.cells` with up to three inputs (``in0``, ``in1``, ``in2``). It offers the
netlist interface the search uses (``copy``, ``active``, ``weighted_cost``, ``simulate``, ``assess``,
``mutate``, ``redirect``, ``compact``, ``depth``, ``digest``) through :mod:`evolve.kernels3`, and three
views:

- :meth:`CellNetlist.to_cell_verilog`: ``approx_<tech>.v``, one instance of a Liberty cell per node (the
  outputs of one multi-output cell reading the same inputs share an instance), no remapping, so its
  area is exactly the search's cost;
- :meth:`CellNetlist.to_generic`: the same function as generic gates, for ``approx.v``, the BLIF and
  JSON views and the WCE prover (formally checked against the cell view by the flow);
- :meth:`CellNetlist.from_yosys_json`: a netlist of the set's cells as Yosys writes it (the exact seed
  mapped by ABC onto the set's cells).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ConfigError
from evolve import kernels3
from evolve.netlist import AND, NAND, NOR, NOT, OR, XNOR, XOR, Addresses, Netlist, address_name, with_spares
from tech.cells import CellSet, permute

ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
# the generic gates' tables over (in0, in1), as three-slot tables: the two-input kernels' codes 0..6
_GATE_TABLES = {0b10001000: AND, 0b01110111: NAND, 0b11101110: OR, 0b00010001: NOR, 0b01100110: XOR,
                0b10011001: XNOR}
_NOT_TABLE = 0b01010101


def _anf(table: int) -> list[int]:
    """Algebraic normal form coefficients (Moebius transform) of a three-slot truth table."""
    c = [(table >> i) & 1 for i in range(8)]
    for s in range(3):
        for i in range(8):
            if (i >> s) & 1:
                c[i] ^= c[i ^ (1 << s)]
    return c


@dataclass(frozen=True, eq=False)
class Tables:
    """A :class:`tech.cells.CellSet` as the arrays :mod:`evolve.kernels3` reads."""

    cells: CellSet
    arity: np.ndarray = field(repr=False)
    op: np.ndarray = field(repr=False)
    anf: np.ndarray = field(repr=False)
    area: np.ndarray = field(repr=False)
    group: np.ndarray = field(repr=False)
    garea: np.ndarray = field(repr=False)
    gsym: np.ndarray = field(repr=False)
    sym: np.ndarray = field(repr=False)
    red_kind: np.ndarray = field(repr=False)
    red_val: np.ndarray = field(repr=False)
    red_map: np.ndarray = field(repr=False)
    inv: int = -1  # the inverter's code

    @property
    def key(self) -> str:
        """Names the set (technology and its functions), for comparing problems and resuming."""
        text = ";".join(f"{f.name}:{f.table}:{f.area}" for f in self.cells.functions)
        return f"{self.cells.tech}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    @property
    def n(self) -> int:
        return len(self.cells.functions)


def tables(cs: CellSet) -> Tables:
    fs = cs.functions
    nf = len(fs)
    arity = np.array([f.arity for f in fs], dtype=np.int8)
    op = np.full(nf, kernels3.GENERIC, dtype=np.int8)
    for i, f in enumerate(fs):
        if f.arity == 2 and f.table in _GATE_TABLES:
            op[i] = _GATE_TABLES[f.table]
        elif f.arity == 1 and f.table == _NOT_TABLE:
            op[i] = NOT
    anf = np.array([[ALL if c else np.uint64(0) for c in _anf(f.table)] for f in fs], dtype=np.uint64)
    group = np.array([f.group for f in fs], dtype=np.int32)
    garea = np.array([next(f.area for f in fs if f.group == g) for g in range(len(cs.groups))] or [0.0])
    gsym = np.array([all(f.symmetric for f in fs if f.group == g) for g in range(len(cs.groups))] or [False])
    sym = np.array([f.symmetric for f in fs], dtype=np.bool_)
    kind, val, remap = _reductions(cs)
    inv = next((i for i, f in enumerate(fs) if f.arity == 1 and f.table == _NOT_TABLE), -1)
    return Tables(cs, arity, op, anf, np.array([f.area for f in fs], dtype=np.float64), group,
                  garea.astype(np.float64), gsym.astype(np.bool_), sym, kind, val, remap, inv)


def _reductions(cs: CellSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every function and input pattern (:func:`evolve.kernels3.pattern`): what the node becomes."""
    fs = cs.functions
    kind = np.zeros((len(fs), kernels3.N_PATTERNS), dtype=np.int8)
    val = np.zeros((len(fs), kernels3.N_PATTERNS), dtype=np.int32)
    remap = np.zeros((len(fs), kernels3.N_PATTERNS, 3), dtype=np.int8)
    by_table: dict[tuple[int, int], int] = {}
    for i, f in enumerate(fs):
        if f.group < 0:
            by_table.setdefault((f.arity, f.table), i)
    for i, f in enumerate(fs):
        for codes in itertools.product(range(5), repeat=f.arity):
            codes_all = (*codes, *([0] * (3 - f.arity)))
            p = codes_all[0] + 5 * codes_all[1] + 25 * codes_all[2]
            vars_ = sorted({c for c in codes if c >= 2})
            if vars_ != list(range(2, 2 + len(vars_))):
                continue  # not a pattern kernels3.pattern produces
            m = len(vars_)
            table = 0  # over m variables, as a three-slot table
            for j in range(8):
                x = 0
                for s, c in enumerate(codes):
                    bit = c if c <= 1 else (j >> (c - 2)) & 1
                    x |= bit << s
                if (f.table >> x) & 1:
                    table |= 1 << j
            if m == 0 or table in (0, 255):
                kind[i, p], val[i, p] = 1, table & 1
                continue
            alias = [v for v in range(m) if table == _var_table(v)]
            if alias:
                kind[i, p], val[i, p] = 2, codes.index(2 + alias[0])
                continue
            if m >= f.arity:
                continue  # every input distinct and variable: nothing to reduce
            for perm in itertools.permutations(range(m)):
                g = by_table.get((m, permute(table, perm)))
                if g is not None:  # g(x[perm]) = table: its slot s reads variable perm[s]
                    kind[i, p], val[i, p] = 3, g
                    for s in range(3):
                        remap[i, p, s] = codes.index(2 + perm[s]) if s < m else 0
                    break
    return kind, val, remap


def _var_table(v: int) -> int:
    return sum(1 << j for j in range(8) if (j >> v) & 1)


@dataclass
class CellNetlist(Addresses):
    """A netlist of cell functions with operand widths ``wa``, ``wb`` and a ``wa+wb``-bit output ``y``."""

    wa: int
    wb: int
    signed: bool
    func: np.ndarray  # int8 code into tables.cells.functions
    in0: np.ndarray
    in1: np.ndarray
    in2: np.ndarray
    out: np.ndarray
    tables: Tables = field(repr=False)

    def __post_init__(self) -> None:
        self.func = np.ascontiguousarray(self.func, dtype=np.int8)
        for name in ("in0", "in1", "in2", "out"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.int32))

    # ------------------------------------------------------------------ structure
    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self.func, self.in0, self.in1, self.in2, self.out

    def copy(self) -> CellNetlist:
        return CellNetlist(self.wa, self.wb, self.signed, self.func.copy(), self.in0.copy(), self.in1.copy(),
                           self.in2.copy(), self.out.copy(), self.tables)

    def check(self) -> None:
        """Raise ``ValueError`` unless every node reads only earlier addresses and outputs are in range."""
        t = self.tables
        if np.any((self.func < 0) | (self.func >= t.n)):
            raise ValueError("node function out of range")
        idx = np.arange(self.n_gates) + self.first
        for arr in (self.in0, self.in1, self.in2):
            if np.any(arr < 0) or np.any(arr >= idx):
                raise ValueError("a node reads an address that is not before it")
        if len(self.out) != self.n_outputs or np.any(self.out < 0) or np.any(self.out >= self.n_addr):
            raise ValueError("output address out of range")

    def active(self) -> np.ndarray:
        t = self.tables
        return kernels3.active_mask(self.func, self.in0, self.in1, self.in2, self.out, self.first, t.arity)

    def weighted_cost(self, weights: np.ndarray, act: np.ndarray | None = None) -> float:
        t = self.tables
        act = self.active() if act is None else act
        return float(kernels3.cost(self.func, self.in0, self.in1, self.in2, act, self.first,
                                   np.asarray(weights, dtype=np.float64), t.group, t.garea, t.gsym, t.arity))

    def area(self) -> float:
        """The Liberty area of the active cells: what ``approx_<tech>.v`` weighs."""
        return self.weighted_cost(self.tables.area)

    def depth(self) -> int:
        return int(kernels3.levels(self.func, self.in0, self.in1, self.in2, self.out, self.first, self.tables.arity,
                                   self.active()))

    def used_inputs(self, k: int) -> list[int]:
        ar = int(self.tables.arity[self.func[k]])
        return [int(x) for x in (self.in0[k], self.in1[k], self.in2[k])[:ar]]

    def cell_counts(self) -> dict[str, int]:
        """Instances per cell of the active netlist (shared multi-output instances counted once)."""
        counts: dict[str, int] = defaultdict(int)
        for inst in self._instances():
            counts[self.tables.cells.functions[inst[0][1]].cell] += 1
        return dict(counts)

    # ------------------------------------------------------------------ search interface
    def simulate(self, st: np.ndarray, n_chunks: int, n_addr: int) -> np.ndarray:
        """Compute the active nodes into buffer 0 of an evaluator's store; returns the active mask."""
        act = self.active()
        kernels3.simulate_full(self.func, self.in0, self.in1, self.in2, act, self.first, st, n_chunks, n_addr,
                               self.tables.op, self.tables.anf)
        return act

    def fanout(self, order: np.ndarray, pin_cap: np.ndarray, po_cap: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The load every address drives and the idle outputs of multi-output instances
        (:func:`evolve.kernels3.fanout`)."""
        t = self.tables
        return kernels3.fanout(self.func, self.in0, self.in1, self.in2, self.out, self.first, order, t.arity,
                               t.group, t.gsym, pin_cap, po_cap)

    def assess(self, parent: CellNetlist, weights: np.ndarray, max_depth: int, cost_cap: float, ev: Any,
               dirty: np.ndarray, buf: int, stop_above: int) -> tuple:
        t = self.tables
        return kernels3.assess(self.func, self.in0, self.in1, self.in2, self.out, parent.func, parent.in0,
                               parent.in1, parent.in2, self.first, weights, max_depth, cost_cap, ev.valid, dirty,
                               ev.store, ev.n_chunks, ev.n_addr, buf, ev.ex, ev.nb, ev.signed, stop_above,
                               t.arity, t.op, t.anf, t.group, t.garea, t.gsym)

    def mutate(self, act: np.ndarray, rng: np.random.Generator, cum: np.ndarray) -> int:
        t = self.tables
        return int(kernels3.mutate(self.func, self.in0, self.in1, self.in2, self.out, self.first, act, rng, cum,
                                   t.arity, t.sym, t.red_kind, t.red_val, t.red_map, t.inv))

    def redirect(self, addr: int, to: int) -> None:
        """Make every reader of ``addr`` read ``to`` instead, then fold what became trivial (in place)."""
        t = self.tables
        kernels3.redirect(self.func, self.in0, self.in1, self.in2, self.out, self.first, addr, to)
        kernels3.fold_constants(self.func, self.in0, self.in1, self.in2, self.out, self.first, t.arity, t.sym,
                                t.red_kind, t.red_val, t.red_map)

    def with_spares(self, spare: float, rng: np.random.Generator) -> CellNetlist:
        return with_spares(self, spare, rng)

    def compact(self) -> CellNetlist:
        """The same function with inactive nodes dropped and structurally equal ones merged."""
        t = self.tables
        c = self.copy()
        kernels3.merge_equivalent(c.func, c.in0, c.in1, c.in2, c.out, c.first, t.arity, t.sym, t.red_kind,
                                  t.red_val, t.red_map)
        act = c.active()
        remap = np.arange(c.n_addr, dtype=np.int32)
        keep = np.flatnonzero(act)
        remap[c.first + keep] = c.first + np.arange(len(keep), dtype=np.int32)
        ar = t.arity[c.func[keep]]
        ins = [np.where(ar > s, remap[np.where(ar > s, arr[keep], 0)], 0)
               for s, arr in enumerate((c.in0, c.in1, c.in2))]
        return CellNetlist(c.wa, c.wb, c.signed, c.func[keep], ins[0], ins[1], ins[2], remap[c.out], t)

    def digest(self) -> str:
        c = self.compact()
        h = hashlib.sha256(self.tables.key.encode())
        for arr in (np.array([c.wa, c.wb, int(c.signed)], dtype=np.int32), *c._arrays()):
            h.update(arr.tobytes())
        return h.hexdigest()[:10]

    def to_json(self) -> dict[str, Any]:
        fs = self.tables.cells.functions
        return {"format": "axflow-cell-netlist", "version": 1, "wa": self.wa, "wb": self.wb, "signed": self.signed,
                "tech": self.tables.cells.tech, "functions": [f.name for f in fs],
                "gates": [[fs[int(f)].name, *self.used_inputs(k)] for k, f in enumerate(self.func)],
                "outputs": [int(x) for x in self.out]}

    @classmethod
    def from_json(cls, data: dict[str, Any], t: Tables, source: str = "cell netlist") -> CellNetlist:
        """Read :meth:`to_json`'s form back onto the function set ``t`` (a node's function by its name)."""
        if not isinstance(data, dict) or data.get("format") != "axflow-cell-netlist":
            raise ConfigError(f"{source} is not an axflow cell netlist")
        code = {f.name: i for i, f in enumerate(t.cells.functions)}
        func: list[int] = []
        ins: list[list[int]] = [[], [], []]
        try:
            for name, *xs in data["gates"]:
                if name not in code:
                    raise ConfigError(f"{source}: node function {name!r} is not in the cell function set of "
                                      f"{t.cells.tech}")
                func.append(code[name])
                for s in range(3):
                    ins[s].append(xs[s] if s < len(xs) else 0)
            i0, i1, i2 = (np.array(x, dtype=np.int32) for x in ins)
            net = cls(int(data["wa"]), int(data["wb"]), bool(data["signed"]), np.array(func, dtype=np.int8), i0, i1,
                      i2, np.array(data["outputs"], dtype=np.int32), t)
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{source} is not a well-formed axflow cell netlist") from None
        try:
            net.check()
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return net

    # ------------------------------------------------------------------ views
    def _instances(self) -> list[list[tuple[int, int]]]:
        """The cell instances of the active netlist: lists of (node, function); the outputs of one
        multi-output cell reading the same inputs are one instance."""
        t = self.tables
        act = self.active()
        by_key: dict[tuple, list[tuple[int, int]]] = {}
        out: list[list[tuple[int, int]]] = []
        for k in np.flatnonzero(act):
            f = int(self.func[k])
            g = int(t.group[f])
            if g < 0:
                out.append([(int(k), f)])
                continue
            ins = self.used_inputs(int(k))
            key = (g, tuple(sorted(ins)) if t.gsym[g] else tuple(ins))
            if key not in by_key:
                by_key[key] = []
                out.append(by_key[key])
            if any(f2 == f for _, f2 in by_key[key]):  # the same output twice: a copy, an instance of its own
                out.append([(int(k), f)])
            else:
                by_key[key].append((int(k), f))
        return out

    def _name(self, addr: int) -> str:
        return address_name(addr, self.wa, self.first)

    def to_cell_verilog(self, module: str, header: str = "") -> str:
        """A netlist of the technology's cells (named connections, Liberty pin names), one instance per
        cell of the search's cost, with the flow's timescale."""
        from core.verilog import TIMESCALE

        c = self.compact()
        fs = c.tables.cells.functions
        insts = c._instances()
        lines = [f"// {h}" if h else "//" for h in header.splitlines()] + [TIMESCALE]
        lines += [f"module {module} (a, b, y);", f"  input [{c.wa - 1}:0] a;", f"  input [{c.wb - 1}:0] b;",
                  f"  output [{c.n_outputs - 1}:0] y;"]
        names = [f"n{c.first + k}" for k in range(c.n_gates)]
        for i in range(0, len(names), 16):
            lines.append("  wire " + ", ".join(names[i:i + 16]) + ";")
        for inst in insts:
            k0, f0 = inst[0]
            cell = fs[f0]
            pins = [f".{p}({c._name(x)})" for p, x in zip(cell.pins, c.used_inputs(k0))]
            pins += [f".{fs[f].output}(n{c.first + k})" for k, f in inst]
            lines.append(f"  {cell.cell} u{c.first + k0} ({', '.join(pins)});")
        for i, addr in enumerate(c.out):
            lines.append(f"  assign y[{i}] = {c._name(int(addr))};")
        lines.append("endmodule")
        return "\n".join(lines) + "\n"

    def to_generic(self) -> Netlist:
        """The same function as a netlist of generic gates (each node's function decomposed)."""
        fs = self.tables.cells.functions
        func: list[int] = []
        ins0: list[int] = []
        ins1: list[int] = []
        addr = {a: a for a in range(self.first)}
        first = self.first

        def gate(f: int, a: int, b: int = 0) -> int:
            func.append(f)
            ins0.append(a)
            ins1.append(b)
            return first + len(func) - 1

        act = self.active()
        for k in range(self.n_gates):
            if act[k]:
                xs = [addr[x] for x in self.used_inputs(k)]
                addr[self.first + k] = _synth(fs[int(self.func[k])].table, xs, gate)
        out = [addr[int(x)] if x < self.first or act[x - self.first] else 0 for x in self.out]
        net = Netlist(self.wa, self.wb, self.signed, np.array(func, dtype=np.int8), np.array(ins0, dtype=np.int32),
                      np.array(ins1, dtype=np.int32), np.array(out, dtype=np.int32))
        net.check()
        return net.compact()

    # ------------------------------------------------------------------ from Yosys
    @classmethod
    def from_yosys_json(cls, data: dict[str, Any], top: str, wa: int, wb: int, is_signed: bool, t: Tables,
                        source: str = "netlist") -> CellNetlist:
        """Read a flattened Yosys JSON netlist of the set's cells (as ``abc -liberty`` maps onto them)."""
        from evolve.netlist import port_addresses, topological_order

        mod = data.get("modules", {}).get(top)
        if mod is None:
            raise ConfigError(f"{source} has no module {top!r}")
        addr_of = port_addresses(mod, wa, wb, source, top)
        # nodes: (output net, function, input nets); a buffer is (net, -1, [net])
        nodes: list[tuple[Any, int, list[Any]]] = []
        for cname, cell in mod.get("cells", {}).items():
            conn = {k: v[0] for k, v in cell["connections"].items()}
            fns = [(i, f) for i, f in enumerate(t.cells.functions) if f.cell == cell["type"]]
            if t.cells.buffer and cell["type"] == t.cells.buffer[0]:
                _, pin_in, pin_out = t.cells.buffer
                nodes.append((conn[pin_out], -1, [conn[pin_in]]))
                continue
            if not fns:
                raise ConfigError(f"{source}: cell {cname} has type {cell['type']}, which is not in the cell "
                                  f"function set ({', '.join(sorted(t.cells.cells))})")
            for i, fn in fns:
                if fn.output in conn:
                    nodes.append((conn[fn.output], i, [conn[p] for p in fn.pins]))
        order = topological_order(nodes, addr_of, mod, source)
        func: list[int] = []
        ins: list[list[int]] = [[], [], []]
        first = 2 + wa + wb
        for i in order:
            y, f, srcs = nodes[i]
            xs = [addr_of[x] for x in srcs]
            if f < 0:  # a buffer is a wire
                addr_of[y] = xs[0]
                continue
            addr_of[y] = first + len(func)
            func.append(f)
            for s in range(3):
                ins[s].append(xs[s] if s < len(xs) else 0)
        out = []
        for i, bit in enumerate(mod["ports"]["y"]["bits"]):
            if bit not in addr_of:
                raise ConfigError(f"{source}: output y[{i}] is undriven")
            out.append(addr_of[bit])
        i0, i1, i2 = (np.array(x, dtype=np.int32) for x in ins)
        net = cls(wa, wb, is_signed, np.array(func, dtype=np.int8), i0, i1, i2, np.array(out, dtype=np.int32), t)
        net.check()
        return net


def from_arrays(wa: int, wb: int, is_signed: bool, parts: dict[str, np.ndarray], *, tables: Tables) -> CellNetlist:
    """A cell netlist from its arrays (``func``, ``in0``, ``in1``, ``in2``, ``out``), as a checkpoint holds them."""
    return CellNetlist(wa, wb, is_signed, parts["func"], parts["in0"], parts["in1"], parts["in2"], parts["out"],
                       tables)


def _synth(table: int, xs: list[int], gate: Any) -> int:
    """Generic gates computing the three-slot ``table`` of the addresses ``xs``; returns the result's address.

    Tries a two-input gate of literals, then ``G(literal, g(rest))`` for G in AND, OR, XOR, then a
    Shannon expansion on the last input.
    """
    n = len(xs)
    rows = [(table >> i) & 1 for i in range(1 << n)]
    if all(r == rows[0] for r in rows):
        return rows[0]
    for v in range(n):  # a single variable or its complement
        if all(rows[i] == (i >> v) & 1 for i in range(1 << n)):
            return xs[v]
        if all(rows[i] != (i >> v) & 1 for i in range(1 << n)):
            return gate(NOT, xs[v])
    if n == 2:
        t2 = sum(r << i for i, r in enumerate(rows))
        for neg_a, neg_b, neg_y in itertools.product((0, 1), repeat=3):
            for g, (two_tt) in ((AND, 0b1000), (OR, 0b1110), (XOR, 0b0110)):
                cand = 0
                for i in range(4):
                    a, b = (i & 1) ^ neg_a, ((i >> 1) & 1) ^ neg_b
                    cand |= (((two_tt >> (a | b << 1)) & 1) ^ neg_y) << i
                if cand == t2:
                    a = gate(NOT, xs[0]) if neg_a else xs[0]
                    b = gate(NOT, xs[1]) if neg_b else xs[1]
                    if neg_y:
                        return gate({AND: NAND, OR: NOR, XOR: XNOR}[g], a, b)
                    return gate(g, a, b)
    # f = G(literal of v, h(others)); h as a table over the remaining variables
    for v in range(n):
        rest = [s for s in range(n) if s != v]
        lo = [rows[i] for i in range(1 << n) if not (i >> v) & 1]  # in order of the rest's bits
        hi = [rows[i] for i in range(1 << n) if (i >> v) & 1]
        sub = [xs[s] for s in rest]

        def table_of(bits: list[int]) -> int:
            return sum(b << i for i, b in enumerate(bits))

        if all(b == 0 for b in lo):  # f = v AND h
            return gate(AND, xs[v], _synth(table_of(hi), sub, gate))
        if all(b == 0 for b in hi):  # f = !v AND h
            return gate(AND, gate(NOT, xs[v]), _synth(table_of(lo), sub, gate))
        if all(b == 1 for b in hi):  # f = v OR h
            return gate(OR, xs[v], _synth(table_of(lo), sub, gate))
        if all(b == 1 for b in lo):  # f = !v OR h
            return gate(OR, gate(NOT, xs[v]), _synth(table_of(hi), sub, gate))
        if all(x != y for x, y in zip(lo, hi)):  # f = v XOR h
            return gate(XOR, xs[v], _synth(table_of(lo), sub, gate))
    v = n - 1  # Shannon: f = v ? hi : lo
    sub = xs[:v]
    lo_t = sum(((table >> i) & 1) << i for i in range(1 << v))
    hi_t = sum(((table >> (i | 1 << v)) & 1) << i for i in range(1 << v))
    t0 = gate(AND, gate(NOT, xs[v]), _synth(lo_t, sub, gate))
    t1 = gate(AND, xs[v], _synth(hi_t, sub, gate))
    return gate(OR, t0, t1)
