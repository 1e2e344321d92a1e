"""Exact multipliers of several architectures, as Amaranth components written bit by bit.

Every component has the ports of :class:`rtl_gen.multiplier.Multiplier`: ``a`` (wa bits), ``b`` (wb bits),
``y`` (wa+wb bits) = a*b, signed (two's complement) or unsigned, combinational (latency 0).

- ``array``: :class:`~rtl_gen.multiplier.Multiplier` itself (``y = a * b``; Yosys builds the adder).
- ``wallace``: AND partial products (modified Baugh-Wooley ones for signed operands) reduced by a Wallace
  tree (every column, every stage: full adders on groups of three bits, a half adder on a pair left over),
  then a ripple-carry adder.
- ``dadda``: the same partial products, reduced by Dadda's schedule (heights 2, 3, 4, 6, 9, ...; only as
  many full and half adders as bring each column down to the next height), then a ripple-carry adder.
- ``booth``: radix-4 (modified) Booth recoding of ``b`` (an unsigned ``b`` is recoded as a wb+1-bit signed
  number), one partial product per digit in {-2, -1, 0, 1, 2} negated by inversion plus a correction bit,
  sign extension replaced by inverted sign bits and one constant; reduced by a Dadda tree and a
  ripple-carry adder.

The adders are explicit XOR/AND/OR of single bits, never ``+``, so that Yosys' ``synth`` finds no
``$add``/``$mul`` to rebuild with its own multiplier (its ``alumacc`` only works on such cells) and the
generic-gate netlist keeps the architecture. The bit-level construction is written once over a small set
of operations (:class:`BitOps`), so the same code builds the Amaranth netlist and evaluates on numpy
arrays (:func:`evaluate`), with constants folded in both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from amaranth import Module, Signal
from amaranth.hdl import Value

from core.errors import must
from rtl_gen.multiplier import Multiplier

ARCHITECTURES = ("array", "booth", "wallace", "dadda")

Bit = Any  # an int 0/1 (a constant) or a backend value of one bit


class BitOps:
    """Single-bit operations with constant folding; subclasses give the operations on non-constants."""

    def xor(self, x: Bit, y: Bit) -> Bit:
        if isinstance(x, int) and isinstance(y, int):
            return x ^ y
        if isinstance(x, int):
            x, y = y, x
        if isinstance(y, int):
            return self.not_(x) if y else x
        return self._xor(x, y)

    def and_(self, x: Bit, y: Bit) -> Bit:
        if isinstance(x, int):
            x, y = y, x
        if isinstance(y, int):
            return x if y else 0
        return self._and(x, y)

    def or_(self, x: Bit, y: Bit) -> Bit:
        if isinstance(x, int):
            x, y = y, x
        if isinstance(y, int):
            return 1 if y else x
        return self._or(x, y)

    def not_(self, x: Bit) -> Bit:
        return 1 - x if isinstance(x, int) else self._not(x)

    def wire(self, x: Bit, name: str) -> Bit:
        """``x`` as a named net (the Amaranth backend makes a signal of it)."""
        return x

    def half(self, x: Bit, y: Bit, name: str) -> tuple[Bit, Bit]:
        """Half adder: (sum, carry)."""
        return self.wire(self.xor(x, y), f"{name}_s"), self.wire(self.and_(x, y), f"{name}_c")

    def full(self, x: Bit, y: Bit, z: Bit, name: str) -> tuple[Bit, Bit]:
        """Full adder: (sum, carry) = (x ^ y ^ z, x&y | z&(x^y))."""
        p = self.xor(x, y)
        return (self.wire(self.xor(p, z), f"{name}_s"),
                self.wire(self.or_(self.and_(x, y), self.and_(z, p)), f"{name}_c"))

    def _xor(self, x: Any, y: Any) -> Any:
        return x ^ y

    def _and(self, x: Any, y: Any) -> Any:
        return x & y

    def _or(self, x: Any, y: Any) -> Any:
        return x | y

    def _not(self, x: Any) -> Any:
        return ~x


class _NumpyOps(BitOps):
    def _not(self, x: Any) -> Any:
        return x ^ 1


class _AmaranthOps(BitOps):
    def __init__(self, m: Module):
        self.m = m

    def wire(self, x: Bit, name: str) -> Bit:
        if isinstance(x, int):
            return x
        s = Signal(name=name)
        self.m.d.comb += s.eq(x)
        return s


Columns = list[list[Bit]]


def _operand(bits: list[Bit], is_signed: bool):
    """Bit k of an operand extended to any k (sign- or zero-extended; 0 below bit 0)."""
    def bit(k: int) -> Bit:
        if k < 0:
            return 0
        if k < len(bits):
            return bits[k]
        return bits[-1] if is_signed else 0
    return bit


def _add_constant(cols: Columns, value: int) -> None:
    for k in range(len(cols)):
        if value >> k & 1:
            cols[k].append(1)


def and_array(ops: BitOps, a: list[Bit], b: list[Bit], is_signed: bool) -> Columns:
    """Partial products a_i b_j by column; for signed operands the modified Baugh-Wooley form:
    the products with one sign bit inverted, and 2^(m-1) + 2^(n-1) + 2^(m+n-1) added (mod 2^(m+n))."""
    m, n = len(a), len(b)
    cols: Columns = [[] for _ in range(m + n)]
    for i in range(m):
        for j in range(n):
            p = ops.and_(a[i], b[j])
            if is_signed and (i == m - 1) != (j == n - 1):
                p = ops.not_(p)
            cols[i + j].append(p)
    if is_signed:
        _add_constant(cols, ((1 << (m - 1)) + (1 << (n - 1)) + (1 << (m + n - 1))) % (1 << (m + n)))
    return cols


def booth_radix4(ops: BitOps, a: list[Bit], b: list[Bit], is_signed: bool) -> Columns:
    """Radix-4 Booth partial products by column.

    Digit i of b, from bits (b[2i+1], b[2i], b[2i-1]), is d = -2 b[2i+1] + b[2i] + b[2i-1] in {-2..2};
    its partial product d*a is a w-bit two's-complement value (w = wa+1 for a signed a, wa+2 for an
    unsigned one), formed as (|d|*a) XOR neg plus neg at the digit's weight. Its sign bit enters inverted
    and the constant -2^(w-1) per digit, summed over the digits, is added once (mod 2^(wa+wb)).
    """
    m, n = len(a), len(b)
    width = m + n
    ab, bb = _operand(a, is_signed), _operand(b, is_signed)
    w = m + 1 if is_signed else m + 2
    digits = (n + 1) // 2 if is_signed else (n + 2) // 2
    cols: Columns = [[] for _ in range(width)]
    const = 0
    for i in range(digits):
        b2, b1, b0 = bb(2 * i + 1), bb(2 * i), bb(2 * i - 1)
        one = ops.wire(ops.xor(b1, b0), f"bo{i}_one")
        two = ops.wire(ops.or_(ops.and_(b2, ops.and_(ops.not_(b1), ops.not_(b0))),
                               ops.and_(ops.not_(b2), ops.and_(b1, b0))), f"bo{i}_two")
        neg = b2
        for k in range(w):
            if 2 * i + k >= width:
                break
            x = ops.xor(ops.or_(ops.and_(one, ab(k)), ops.and_(two, ab(k - 1))), neg)
            cols[2 * i + k].append(ops.wire(ops.not_(x) if k == w - 1 else x, f"pp{i}_{k}"))
        cols[2 * i].append(neg)
        const -= 1 << (2 * i + w - 1)
    _add_constant(cols, const % (1 << width))
    return cols


def _drop_zeros(cols: Columns) -> Columns:
    return [[x for x in col if not (isinstance(x, int) and x == 0)] for col in cols]


def wallace(ops: BitOps, cols: Columns) -> Columns:
    """Wallace reduction to at most two bits per column."""
    cols = _drop_zeros(cols)
    stage = 0
    while max(map(len, cols), default=0) > 2:
        nxt: Columns = [[] for _ in cols]
        for k, col in enumerate(cols):
            q = 0
            while len(col) - q >= 3:
                s, c = ops.full(col[q], col[q + 1], col[q + 2], f"w{stage}_{k}_{q}")
                nxt[k].append(s)
                if k + 1 < len(cols):
                    nxt[k + 1].append(c)
                q += 3
            if len(col) - q == 2:
                s, c = ops.half(col[q], col[q + 1], f"w{stage}_{k}_{q}")
                nxt[k].append(s)
                if k + 1 < len(cols):
                    nxt[k + 1].append(c)
                q += 2
            nxt[k].extend(col[q:])
        cols, stage = nxt, stage + 1
    return cols


def dadda(ops: BitOps, cols: Columns) -> Columns:
    """Dadda reduction to at most two bits per column."""
    cols = _drop_zeros(cols)
    heights = [2]
    while heights[-1] < max(map(len, cols), default=0):
        heights.append(heights[-1] * 3 // 2)
    for stage, d in enumerate(reversed(heights[:-1])):
        nxt: Columns = [[] for _ in cols]
        for k, col in enumerate(cols):
            q = 0
            # the column's height in the next stage: what is left here, the sums, the carries coming in
            while len(col) - q + len(nxt[k]) > d:
                over = len(col) - q + len(nxt[k]) - d
                if over >= 2 and len(col) - q >= 3:
                    s, c = ops.full(col[q], col[q + 1], col[q + 2], f"d{stage}_{k}_{q}")
                    q += 3
                else:
                    s, c = ops.half(col[q], col[q + 1], f"d{stage}_{k}_{q}")
                    q += 2
                nxt[k].append(s)
                if k + 1 < len(cols):
                    nxt[k + 1].append(c)
            nxt[k].extend(col[q:])
        cols = nxt
    return cols


def ripple(ops: BitOps, cols: Columns) -> list[Bit]:
    """Ripple-carry addition of columns of at most two bits: the product bits, LSB first."""
    out: list[Bit] = []
    carry: Bit = 0
    for k, col in enumerate(cols):
        bits = [x for x in [*col, carry] if not (isinstance(x, int) and x == 0)]
        if len(bits) > 3:
            raise AssertionError(f"column {k} holds {len(bits)} bits after reduction")
        if len(bits) == 3:
            s, carry = ops.full(bits[0], bits[1], bits[2], f"r{k}")
        elif len(bits) == 2:
            s, carry = ops.half(bits[0], bits[1], f"r{k}")
        else:
            s, carry = (bits[0] if bits else 0), 0
        out.append(s)
    return out


def product_bits(arch: str, ops: BitOps, a: list[Bit], b: list[Bit], is_signed: bool) -> list[Bit]:
    """The wa+wb bits of a*b built by architecture ``arch`` (not ``array``) from operand bits, LSB first."""
    if arch == "booth":
        return ripple(ops, dadda(ops, booth_radix4(ops, a, b, is_signed)))
    if arch == "wallace":
        return ripple(ops, wallace(ops, and_array(ops, a, b, is_signed)))
    if arch == "dadda":
        return ripple(ops, dadda(ops, and_array(ops, a, b, is_signed)))
    raise must("ARCH", "a bit-level architecture", arch, ARCHITECTURES[1:])


def evaluate(arch: str, wa: int, wb: int, is_signed: bool, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The product codes (wa+wb-bit patterns) the architecture computes for operand codes ``a``, ``b``."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    ab = [(a >> i) & 1 for i in range(wa)]
    bb = [(b >> j) & 1 for j in range(wb)]
    y = np.zeros(np.broadcast(a, b).shape, dtype=np.int64)
    for k, bit in enumerate(product_bits(arch, _NumpyOps(), ab, bb, is_signed)):
        y |= np.asarray(bit, dtype=np.int64) << k
    return y


class _BitLevel(Multiplier):
    arch = ""

    def elaborate(self, platform: object) -> Module:
        m = Module()
        ops = _AmaranthOps(m)
        a = [self.a[i] for i in range(self.wa)]
        b = [self.b[j] for j in range(self.wb)]
        bits = product_bits(self.arch, ops, a, b, self.is_signed)
        m.d.comb += self.y.eq(_cat(bits))
        return m


def _cat(bits: list[Bit]) -> Value:
    from amaranth import C, Cat

    return Cat(*(C(x, 1) if isinstance(x, int) else x for x in bits))


class BoothMultiplier(_BitLevel):
    """Exact radix-4 Booth multiplier (Dadda tree, ripple-carry adder). Ports as :class:`Multiplier`."""

    arch = "booth"


class WallaceMultiplier(_BitLevel):
    """Exact Wallace-tree multiplier (Baugh-Wooley for signed, ripple-carry adder). Ports as :class:`Multiplier`."""

    arch = "wallace"


class DaddaMultiplier(_BitLevel):
    """Exact Dadda-tree multiplier (Baugh-Wooley for signed, ripple-carry adder). Ports as :class:`Multiplier`."""

    arch = "dadda"


COMPONENTS: dict[str, type[Multiplier]] = {"array": Multiplier, "booth": BoothMultiplier,
                                           "wallace": WallaceMultiplier, "dadda": DaddaMultiplier}


def multiplier(arch: str, wa: int, wb: int, *, signed_: bool) -> Multiplier:
    """The exact multiplier of architecture ``arch`` (one of :data:`ARCHITECTURES`)."""
    if arch not in COMPONENTS:
        raise must("ARCH", "one of the listed architectures", arch, ARCHITECTURES)
    return COMPONENTS[arch](wa, wb, signed_=signed_)
