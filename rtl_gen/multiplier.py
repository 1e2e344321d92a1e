"""Exact multipliers as Amaranth components.

``Multiplier(wa, wb, signed=True)`` has ports ``a`` (wa bits), ``b`` (wb bits) and ``y`` (wa+wb bits):
``y = a * b``, combinational (latency 0). Signed operands and product are two's complement; the
product always fits in wa+wb bits, so nothing is truncated.
"""

from __future__ import annotations

from amaranth import Module, signed, unsigned
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from core.config import MAX_WIDTH, MIN_WIDTH, check_width

__all__ = ["MAX_WIDTH", "MIN_WIDTH", "Multiplier", "check_widths", "design_name", "to_verilog"]


def design_name(wa: int, wb: int, is_signed: bool) -> str:
    """``mul8s`` for 8x8 signed, ``mul8x4u`` for 8x4 unsigned (ArithsGen/EvoApprox naming)."""
    dims = f"{wa}" if wa == wb else f"{wa}x{wb}"
    return f"mul{dims}{'s' if is_signed else 'u'}"


def check_widths(wa: int, wb: int) -> None:
    check_width("BITS", wa)
    check_width("BITS_B", wb)


class Multiplier(wiring.Component):
    """Exact combinational multiplier.

    Ports: ``a`` in, wa bits; ``b`` in, wb bits; ``y`` out, wa+wb bits. Latency: 0 cycles.
    """

    def __init__(self, wa: int = 8, wb: int = 8, *, signed_: bool = True):
        try:
            check_widths(wa, wb)
        except ValueError:
            self._MustUse__silence = True  # a rejected component was never meant to be elaborated
            raise
        self.wa, self.wb, self.is_signed = wa, wb, bool(signed_)
        shape = signed if self.is_signed else unsigned
        super().__init__({"a": In(shape(wa)), "b": In(shape(wb)), "y": Out(shape(wa + wb))})

    @property
    def name(self) -> str:
        return design_name(self.wa, self.wb, self.is_signed)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.d.comb += self.y.eq(self.a * self.b)
        return m


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog of ``component`` as a top module called ``name`` (through Amaranth's back end only)."""
    return verilog.convert(component, name=name, emit_src=False)
