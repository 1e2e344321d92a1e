"""The gate netlist: one object, many views (Verilog, BLIF, JSON) and the evolution's genome.

A netlist is a feed-forward list of generic two-input gates (and NOT) over *addresses*::

    0            constant 0
    1            constant 1
    2 .. 2+wa-1  a[0] .. a[wa-1]
    ..  +wb      b[0] .. b[wb-1]
    first ..     gate k at address first + k

Gate ``k`` reads addresses below its own (``in0``, and ``in1`` unless it is a NOT); each output bit
``y[i]`` names one address. Gates that no output depends on are *inactive*: they cost nothing and
are where new logic comes from (Cartesian GP's neutral genes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError

FUNCS = ("AND", "NAND", "OR", "NOR", "XOR", "XNOR", "NOT")
AND, NAND, OR, NOR, XOR, XNOR, NOT = range(7)
ARITY = np.array([2, 2, 2, 2, 2, 2, 1], dtype=np.int8)
COMMUTATIVE = frozenset(range(6))
_VERILOG_PRIM = ("and", "nand", "or", "nor", "xor", "xnor", "not")
_BLIF_COVER = {AND: ["11 1"], NAND: ["0- 1", "-0 1"], OR: ["1- 1", "-1 1"], NOR: ["00 1"],
               XOR: ["01 1", "10 1"], XNOR: ["00 1", "11 1"], NOT: ["0 1"]}
JSON_FORMAT = "axflow-netlist"
NO_IDLE_NODES = np.zeros(0, dtype=np.int32)  # a gate netlist's idle outputs (:meth:`Netlist.fanout`): none
NO_IDLE_FUNCS = np.zeros(0, dtype=np.int8)


class Addresses:
    """The address space of a netlist of ``func``'s gates over operands ``a`` (``wa`` bits) and ``b``."""

    wa: int
    wb: int
    func: np.ndarray

    @property
    def n_inputs(self) -> int:
        return self.wa + self.wb

    @property
    def n_outputs(self) -> int:
        return self.wa + self.wb

    @property
    def first(self) -> int:
        """Address of the first gate."""
        return 2 + self.n_inputs

    @property
    def n_gates(self) -> int:
        return len(self.func)

    @property
    def n_addr(self) -> int:
        return self.first + self.n_gates


@dataclass
class Netlist(Addresses):
    """A gate netlist with operand widths ``wa``, ``wb`` and a ``wa+wb``-bit output ``y``."""

    wa: int
    wb: int
    signed: bool
    func: np.ndarray  # int8, one per gate
    in0: np.ndarray  # int32 addresses
    in1: np.ndarray
    out: np.ndarray  # int32 address per output bit

    def __post_init__(self) -> None:
        self.func = np.ascontiguousarray(self.func, dtype=np.int8)
        self.in0 = np.ascontiguousarray(self.in0, dtype=np.int32)
        self.in1 = np.ascontiguousarray(self.in1, dtype=np.int32)
        self.out = np.ascontiguousarray(self.out, dtype=np.int32)

    # ------------------------------------------------------------------ structure
    def copy(self) -> Netlist:
        return Netlist(self.wa, self.wb, self.signed, self.func.copy(), self.in0.copy(), self.in1.copy(),
                       self.out.copy())

    def check(self) -> None:
        """Raise ``ValueError`` unless every gate reads only earlier addresses and outputs are in range."""
        idx = np.arange(self.n_gates) + self.first
        if np.any((self.func < 0) | (self.func >= len(FUNCS))):
            raise ValueError("gate function out of range")
        if np.any(self.in0 < 0) or np.any(self.in0 >= idx):
            raise ValueError("a gate reads an address that is not before it")
        two = ARITY[self.func] == 2
        if np.any(self.in1[two] < 0) or np.any(self.in1[two] >= idx[two]):
            raise ValueError("a gate reads an address that is not before it")
        if len(self.out) != self.n_outputs or np.any(self.out < 0) or np.any(self.out >= self.n_addr):
            raise ValueError("output address out of range")

    def active(self) -> np.ndarray:
        """Boolean mask over gates: True where some output depends on the gate."""
        from evolve import kernels

        return kernels.active_mask(self.func, self.in0, self.in1, self.out, self.first)

    def weighted_cost(self, weights: np.ndarray, act: np.ndarray | None = None) -> float:
        """Sum of ``weights[function]`` over the active gates (the search's cost)."""
        from evolve import kernels

        act = self.active() if act is None else act
        return float(kernels.gate_cost(self.func, act, np.asarray(weights, dtype=np.float64)))

    def used_inputs(self, k: int) -> list[int]:
        """The addresses gate ``k`` reads."""
        return [int(self.in0[k])] + ([int(self.in1[k])] if ARITY[self.func[k]] == 2 else [])

    # ------------------------------------------------------------------ search interface
    # The operations the search needs, here on generic gates (:mod:`evolve.kernels`); the cell netlist
    # (:mod:`evolve.cellnet`) has the same ones on its three-input nodes.
    def simulate(self, st: np.ndarray, n_chunks: int, n_addr: int) -> np.ndarray:
        """Compute the active gates into buffer 0 of an evaluator's store; returns the active mask."""
        from evolve import kernels

        act = self.active()
        kernels.simulate_full(self.func, self.in0, self.in1, act, self.first, st, n_chunks, n_addr)
        return act

    def fanout(self, order: np.ndarray, pin_cap: np.ndarray, po_cap: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The load every address drives (:func:`evolve.kernels.fanout_load`): the input capacitances
        ``pin_cap[function, slot]`` of the active gates ``order`` reading it, ``po_cap`` per output; and the
        idle outputs of multi-output cells (none: a gate has one output)."""
        from evolve import kernels

        return (kernels.fanout_load(self.func, self.in0, self.in1, self.out, self.first, order, pin_cap, po_cap),
                NO_IDLE_NODES, NO_IDLE_FUNCS)

    def assess(self, parent: Netlist, weights: np.ndarray, max_depth: int, cost_cap: float, ev: Any,
               dirty: np.ndarray, buf: int, stop_above: int) -> tuple:
        """:func:`evolve.kernels.assess` of this child against ``parent`` in evaluator ``ev``."""
        from evolve import kernels

        return kernels.assess(self.func, self.in0, self.in1, self.out, parent.func, parent.in0, parent.in1,
                              self.first, weights, max_depth, cost_cap, ev.valid, dirty, ev.store, ev.n_chunks,
                              ev.n_addr, buf, ev.ex, ev.nb, ev.signed, stop_above)

    def mutate(self, act: np.ndarray, rng: np.random.Generator, cum: np.ndarray) -> int:
        from evolve import kernels

        return int(kernels.mutate(self.func, self.in0, self.in1, self.out, self.first, act, rng, cum, len(FUNCS)))

    def redirect(self, addr: int, to: int) -> None:
        """Make every reader of ``addr`` read ``to`` instead, then fold what became trivial (in place)."""
        from evolve import kernels

        k = addr - self.first
        for arr in (self.in0, self.in1):
            tail = arr[k + 1:]
            tail[tail == addr] = to
        self.out[self.out == addr] = to
        kernels.fold_constants(self.func, self.in0, self.in1, self.out, self.first)

    def with_spares(self, spare: float, rng: np.random.Generator) -> Netlist:
        return with_spares(self, spare, rng)

    def compact(self) -> Netlist:
        """The same function with inactive gates dropped and structurally equal gates merged."""
        from evolve import kernels

        func, in0, in1, out = (a.copy() for a in (self.func, self.in0, self.in1, self.out))
        kernels.merge_equivalent(func, in0, in1, out, self.first)
        act = kernels.active_mask(func, in0, in1, out, self.first)
        remap = np.arange(self.n_addr, dtype=np.int32)
        keep = np.flatnonzero(act)
        remap[self.first + keep] = self.first + np.arange(len(keep), dtype=np.int32)
        kf = func[keep]
        # a NOT's second input is unused: clear it, it may name a gate that was dropped
        k1 = np.where(kf == NOT, 0, remap[np.where(func[keep] == NOT, 0, in1[keep])])
        return Netlist(self.wa, self.wb, self.signed, kf, remap[in0[keep]], k1, remap[out])

    def depth(self) -> int:
        """Logic depth in gates of the active netlist (0 when outputs are wires or constants)."""
        from evolve import kernels

        return int(kernels.depth(self.func, self.in0, self.in1, self.out, self.first))

    def gate_counts(self) -> dict[str, int]:
        act = self.active()
        counts = np.bincount(self.func[act], minlength=len(FUNCS))
        return {FUNCS[i]: int(c) for i, c in enumerate(counts) if c}

    def cost(self, weights: dict[str, float]) -> float:
        """Sum of per-gate weights over the active gates (cell areas or transistor counts)."""
        return float(sum(weights[g] * n for g, n in self.gate_counts().items()))

    def digest(self) -> str:
        """A short hash of the compacted structure: equal netlists give equal digests."""
        c = self.compact()
        h = hashlib.sha256()
        for arr in (np.array([c.wa, c.wb, int(c.signed)], dtype=np.int32), c.func, c.in0, c.in1, c.out):
            h.update(arr.tobytes())
        return h.hexdigest()[:10]

    # ------------------------------------------------------------------ names
    def addr_name(self, addr: int) -> str:
        return address_name(addr, self.wa, self.first)

    # ------------------------------------------------------------------ views
    def to_verilog(self, module: str, header: str = "") -> str:
        """A self-contained module of Verilog gate primitives with ports ``a``, ``b``, ``y``.

        The file drops into other tools' designs: the flow's `` `timescale ``, no top attribute (the
        module is a part of someone's design), clean under ``verilator --lint-only -Wall``, with the one
        waiver it can need (operand bits the circuit ignores) written in the file with its reason.
        """
        from core.verilog import TIMESCALE, waived

        c = self.compact()
        lines = []
        if header:
            lines += [f"// {h}" if h else "//" for h in header.splitlines()]
        lines.append(TIMESCALE)
        body = [
            f"module {module} (a, b, y);",
            f"  input [{c.wa - 1}:0] a;",
            f"  input [{c.wb - 1}:0] b;",
            f"  output [{c.n_outputs - 1}:0] y;",
        ]
        if c.n_gates:
            names = [f"n{c.first + k}" for k in range(c.n_gates)]
            for i in range(0, len(names), 16):
                body.append("  wire " + ", ".join(names[i:i + 16]) + ";")
        for k in range(c.n_gates):
            f = int(c.func[k])
            ins = [c.addr_name(int(c.in0[k]))]
            if ARITY[f] == 2:
                ins.append(c.addr_name(int(c.in1[k])))
            body.append(f"  {_VERILOG_PRIM[f]} g{c.first + k} (n{c.first + k}, {', '.join(ins)});")
        for i, addr in enumerate(c.out):
            body.append(f"  assign y[{i}] = {c.addr_name(int(addr))};")
        body.append("endmodule")
        reasons = {"DECLFILENAME": "the flow names the file approx.v, whatever the module is called"}
        read = set(c.out.tolist()) | set(c.in0.tolist()) | set(c.in1[ARITY[c.func] == 2].tolist())
        ignored = [c.addr_name(x) for x in range(2, c.first) if x not in read]
        if ignored:
            reasons["UNUSEDSIGNAL"] = ("an approximate multiplier may ignore operand bits (here "
                                       f"{', '.join(ignored)}); the ports keep the operands' widths")
        return "\n".join(lines) + "\n" + waived("\n".join(body) + "\n", reasons)

    def to_blif(self, model: str) -> str:
        c = self.compact()
        ins = [f"a[{i}]" for i in range(c.wa)] + [f"b[{i}]" for i in range(c.wb)]
        outs = [f"y[{i}]" for i in range(c.n_outputs)]

        def name(addr: int) -> str:
            if addr < 2:
                return f"$const{addr}"
            return ins[addr - 2] if addr < c.first else f"n{addr}"

        lines = [f".model {model}", ".inputs " + " ".join(ins), ".outputs " + " ".join(outs),
                 ".names $const0", ".names $const1", "1"]
        for k in range(c.n_gates):
            f = int(c.func[k])
            srcs = [name(int(c.in0[k]))] + ([name(int(c.in1[k]))] if ARITY[f] == 2 else [])
            lines.append(".names " + " ".join(srcs) + f" n{c.first + k}")
            lines += _BLIF_COVER[f]
        for i, addr in enumerate(c.out):
            lines += [f".names {name(int(addr))} {outs[i]}", "1 1"]
        lines.append(".end")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": JSON_FORMAT, "version": 1, "wa": self.wa, "wb": self.wb, "signed": self.signed,
            "functions": list(FUNCS),
            "gates": [[FUNCS[int(f)], int(a), int(b) if ARITY[f] == 2 else None]
                      for f, a, b in zip(self.func, self.in0, self.in1)],
            "outputs": [int(x) for x in self.out],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Netlist:
        if data.get("format") != JSON_FORMAT:
            raise ConfigError(f"netlist JSON format must be {JSON_FORMAT!r}, not {data.get('format')!r}")
        gates = data["gates"]
        func = [FUNCS.index(g[0]) for g in gates]
        n = cls(int(data["wa"]), int(data["wb"]), bool(data["signed"]), np.array(func, dtype=np.int8),
                np.array([g[1] for g in gates], dtype=np.int32),
                np.array([g[2] if g[2] is not None else 0 for g in gates], dtype=np.int32),
                np.array(data["outputs"], dtype=np.int32))
        n.check()
        return n

    # ------------------------------------------------------------------ from Yosys
    @classmethod
    def from_yosys_json(cls, data: dict[str, Any], top: str, wa: int, wb: int, is_signed: bool,
                        source: str = "netlist") -> Netlist:
        """Read a flattened Yosys JSON netlist of fine-grained gate cells ($_AND_, $_NOT_, ...).

        $_ANDNOT_, $_ORNOT_, $_MUX_ and $_BUF_ are rewritten into the generic gates. A combinational
        loop, an undriven output bit or a port of the wrong width is a one-line error.
        """
        modules = data.get("modules", {})
        if top not in modules:
            raise ConfigError(f"{source} has no module {top!r} (modules: {', '.join(modules) or 'none'})")
        mod = modules[top]
        addr_of = port_addresses(mod, wa, wb, source, top)

        # Expand every cell into generic gates driving its output net: (out_net, func, [in nets]).
        gates: list[tuple[Any, int, list[Any]]] = []
        tmp = 0

        def fresh() -> str:
            nonlocal tmp
            tmp += 1
            return f"$tmp{tmp}"

        for cname, cell in mod.get("cells", {}).items():
            t = cell["type"]
            conn = {k: v[0] for k, v in cell["connections"].items()}
            simple = {"$_AND_": AND, "$_NAND_": NAND, "$_OR_": OR, "$_NOR_": NOR, "$_XOR_": XOR,
                      "$_XNOR_": XNOR}
            if t in simple:
                gates.append((conn["Y"], simple[t], [conn["A"], conn["B"]]))
            elif t == "$_NOT_":
                gates.append((conn["Y"], NOT, [conn["A"]]))
            elif t == "$_BUF_":
                gates.append((conn["Y"], -1, [conn["A"]]))
            elif t in ("$_ANDNOT_", "$_ORNOT_"):
                nb = fresh()
                gates.append((nb, NOT, [conn["B"]]))
                gates.append((conn["Y"], AND if t == "$_ANDNOT_" else OR, [conn["A"], nb]))
            elif t == "$_MUX_":  # Y = S ? B : A
                ns, t0, t1 = fresh(), fresh(), fresh()
                gates += [(ns, NOT, [conn["S"]]), (t0, AND, [conn["A"], ns]), (t1, AND, [conn["B"], conn["S"]]),
                          (conn["Y"], OR, [t0, t1])]
            else:
                raise ConfigError(f"{source}: cell {cname} has type {t}, which is not a basic gate "
                                  "(supported: $_AND_ $_NAND_ $_OR_ $_NOR_ $_XOR_ $_XNOR_ $_NOT_ $_BUF_ "
                                  "$_ANDNOT_ $_ORNOT_ $_MUX_)")
        order = topological_order(gates, addr_of, mod, source)

        func: list[int] = []
        in0: list[int] = []
        in1: list[int] = []
        first = 2 + wa + wb
        for i in order:
            y, f, ins = gates[i]
            srcs = [addr_of[x] for x in ins]
            if f == -1:  # a buffer is a wire
                addr_of[y] = srcs[0]
                continue
            addr_of[y] = first + len(func)
            func.append(f)
            in0.append(srcs[0])
            in1.append(srcs[1] if len(srcs) > 1 else 0)
        out = []
        for i, bit in enumerate(mod["ports"]["y"]["bits"]):
            if bit not in addr_of:
                raise ConfigError(f"{source}: output y[{i}] is undriven")
            out.append(addr_of[bit])
        n = cls(wa, wb, is_signed, np.array(func, dtype=np.int8), np.array(in0, dtype=np.int32),
                np.array(in1, dtype=np.int32), np.array(out, dtype=np.int32))
        n.check()
        return n


def with_spares(net: Any, spare: float, rng: np.random.Generator, n_spare: int | None = None) -> Any:
    """The netlist (of gates or of cells) with ``round(spare * gates)`` inactive gates inserted at random
    positions.

    A spare gate reads addresses before it (so it is valid if activated later) and nothing reads it; its
    function is any but NOT (a gate netlist) or any of the set (a cell netlist). ``n_spare``: this many
    spare gates instead.
    """
    n_spare = round(spare * net.n_gates) if n_spare is None else n_spare
    if n_spare <= 0:
        return net.copy()
    total = net.n_gates + n_spare
    is_spare = np.zeros(total, dtype=bool)
    is_spare[rng.choice(total, size=n_spare, replace=False)] = True
    remap = np.arange(net.n_addr, dtype=np.int32)
    real = np.flatnonzero(~is_spare)
    remap[net.first:] = net.first + real
    parts = [p for p in ("in0", "in1", "in2") if hasattr(net, p)]
    n_funcs = net.tables.n if hasattr(net, "tables") else len(FUNCS) - 1
    func = np.empty(total, dtype=np.int8)
    func[real] = net.func
    ins = {p: np.empty(total, dtype=np.int32) for p in parts}
    for p in parts:
        ins[p][real] = remap[getattr(net, p)]
    for k in np.flatnonzero(is_spare):
        a = net.first + k
        func[k] = rng.integers(0, n_funcs)
        for p in parts:
            ins[p][k] = rng.integers(0, a)
    grown = dataclasses.replace(net, func=func, out=remap[net.out], **ins)
    grown.check()
    return grown


def address_name(addr: int, wa: int, first: int) -> str:
    """The Verilog name of an address: a constant, an operand bit or gate ``n<addr>``'s wire."""
    if addr == 0:
        return "1'b0"
    if addr == 1:
        return "1'b1"
    if addr < 2 + wa:
        return f"a[{addr - 2}]"
    if addr < first:
        return f"b[{addr - 2 - wa}]"
    return f"n{addr}"


def port_addresses(mod: dict[str, Any], wa: int, wb: int, source: str, top: str) -> dict[Any, int]:
    """The addresses of a Yosys JSON module's constants and operand bits; its ports ``a``, ``b``, ``y`` are
    checked (a missing port or one of the wrong width is a one-line error)."""
    ports = mod.get("ports", {})
    for port, width, direction in (("a", wa, "input"), ("b", wb, "input"), ("y", wa + wb, "output")):
        p = ports.get(port)
        if p is None or p.get("direction") != direction:
            raise ConfigError(f"{source}: module {top} must have {direction} port {port!r}")
        if len(p["bits"]) != width:
            raise ConfigError(f"{source}: port {port} must be {width} bits wide, not {len(p['bits'])}")
    addr_of: dict[Any, int] = {"0": 0, "1": 1}
    for i, bit in enumerate(ports["a"]["bits"]):
        addr_of[bit] = 2 + i
    for i, bit in enumerate(ports["b"]["bits"]):
        addr_of[bit] = 2 + wa + i
    return addr_of


def topological_order(gates: list[tuple[Any, int, list[Any]]], addr_of: dict[Any, int], mod: dict[str, Any],
                      source: str) -> list[int]:
    """Kahn's algorithm over (output net, function, input nets): an order where every input is produced
    earlier. A net with two drivers, a net read but never driven, or a loop is a one-line error."""
    net_names = _net_names(mod)
    driver: dict[Any, int] = {}
    for i, (y, _, _) in enumerate(gates):
        if y in addr_of or y in driver:
            raise ConfigError(f"{source}: net {net_names.get(y, y)} has more than one driver")
        driver[y] = i
    indeg = [0] * len(gates)
    users: dict[int, list[int]] = defaultdict(list)
    for i, (_, _, ins) in enumerate(gates):
        for x in ins:
            if x in driver:
                indeg[i] += 1
                users[driver[x]].append(i)
            elif x not in addr_of:
                raise ConfigError(f"{source}: net {net_names.get(x, x)} is read but never driven")
    ready = [i for i, d in enumerate(indeg) if d == 0]
    order = []
    while ready:
        i = ready.pop()
        order.append(i)
        for u in users[i]:
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
    if len(order) != len(gates):
        stuck = next(i for i, d in enumerate(indeg) if d > 0)
        raise ConfigError(f"{source} has a combinational loop through net "
                          f"{net_names.get(gates[stuck][0], gates[stuck][0])}")
    return order


def _net_names(mod: dict[str, Any]) -> dict[Any, str]:
    names: dict[Any, str] = {}
    for name, info in mod.get("netnames", {}).items():
        bits = info.get("bits", [])
        for i, bit in enumerate(bits):
            if bit not in names or not name.startswith("$"):
                names[bit] = name if len(bits) == 1 else f"{name}[{i}]"
    return names


def load(path: Path) -> Netlist:
    try:
        return Netlist.from_json(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read netlist {path}: {exc}") from None
