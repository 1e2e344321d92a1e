"""The processing element: one multiplier instance, the valid mask, the accumulator adder, registers."""

from __future__ import annotations

from amaranth import Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from core.errors import must
from rtl_gen.array.geometry import DATAFLOWS
from rtl_gen.array.mult import MultSpec


class ProcessingElement(wiring.Component):
    """One PE: the multiplier module, valid-masked product, accumulator adder and pipeline registers.

    Both dataflows: ``a_in``/``av_in`` (activation and its valid bit) enter from the left and leave
    registered on ``a_out``/``av_out`` one cycle later (the data register only loads valid values).

    ``ws`` (weight stationary): ``w_in``/``wv_in`` shift into the weight register when ``load`` is 1
    (``w_out``/``wv_out`` feed the PE below); ``p_out <= p_in + (av_in & wv ? mult(a_in, w) : 0)``
    every cycle (latency 1, wrapping at ``acc_bits``).

    ``os`` (output stationary): ``b_in``/``bv_in`` enter from above and leave registered on
    ``b_out``/``bv_out``; the accumulator ``acc_out <= acc_out + (av_in & bv_in ? mult(a_in, b_in) : 0)``,
    or ``acc_out <= acc_in`` (the PE above's accumulator, 0 in row 0) when ``drain`` is 1.
    """

    def __init__(self, dataflow: str, mult: MultSpec, acc_bits: int = 32):
        if dataflow not in DATAFLOWS:
            raise must("DATAFLOW", "one of the listed choices", dataflow, DATAFLOWS)
        self.dataflow, self.mult, self.acc_bits = dataflow, mult, acc_bits
        wa, wb = mult.wa, mult.wb
        sig = {"a_in": In(wa), "av_in": In(1), "a_out": Out(wa), "av_out": Out(1)}
        if dataflow == "ws":
            sig.update({"w_in": In(wb), "wv_in": In(1), "w_out": Out(wb), "wv_out": Out(1), "load": In(1),
                        "p_in": In(acc_bits), "p_out": Out(acc_bits)})
        else:
            sig.update({"b_in": In(wb), "bv_in": In(1), "b_out": Out(wb), "bv_out": Out(1), "drain": In(1),
                        "acc_in": In(acc_bits), "acc_out": Out(acc_bits)})
        super().__init__(sig)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        wa, wb, acc = self.mult.wa, self.mult.wb, self.acc_bits
        a_reg = Signal(wa, reset_less=True)
        av_reg = Signal()
        with m.If(self.av_in):
            m.d.sync += a_reg.eq(self.a_in)
        m.d.sync += av_reg.eq(self.av_in)
        m.d.comb += [self.a_out.eq(a_reg), self.av_out.eq(av_reg)]
        y = Signal(wa + wb)
        prod = Signal(acc)
        if self.dataflow == "ws":
            w_reg = Signal(wb, reset_less=True)
            wv_reg = Signal()
            with m.If(self.load):
                m.d.sync += [w_reg.eq(self.w_in), wv_reg.eq(self.wv_in)]
            m.d.comb += [self.w_out.eq(w_reg), self.wv_out.eq(wv_reg)]
            b, valid = w_reg, self.av_in & wv_reg
        else:
            b_reg = Signal(wb, reset_less=True)
            bv_reg = Signal()
            with m.If(self.bv_in):
                m.d.sync += b_reg.eq(self.b_in)
            m.d.sync += bv_reg.eq(self.bv_in)
            m.d.comb += [self.b_out.eq(b_reg), self.bv_out.eq(bv_reg)]
            b, valid = self.b_in, self.av_in & self.bv_in
        m.submodules.mult = Instance(self.mult.module, i_a=self.a_in, i_b=b, o_y=y)
        ext = y.as_signed() if self.mult.signed else y
        m.d.comb += prod.eq(Mux(valid, ext, 0))
        if self.dataflow == "ws":
            p_reg = Signal(acc, reset_less=True)
            m.d.sync += p_reg.eq(self.p_in + prod)
            m.d.comb += self.p_out.eq(p_reg)
        else:
            acc_reg = Signal(acc)
            with m.If(self.drain):
                m.d.sync += acc_reg.eq(self.acc_in)
            with m.Else():
                m.d.sync += acc_reg.eq(acc_reg + prod)
            m.d.comb += self.acc_out.eq(acc_reg)
        return m

