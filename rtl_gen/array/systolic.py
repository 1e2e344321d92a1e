"""The systolic array: ``rows x cols`` instances of the PE module, wired for one dataflow."""

from __future__ import annotations

from amaranth import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.array.hierarchy import instance, template
from rtl_gen.array.mult import MultSpec
from rtl_gen.array.pe import ProcessingElement


class SystolicArray(wiring.Component):
    """``rows x cols`` PEs (instances of the PE module ``pe_module``), no buffers, no control.

    ``ws``: ports ``a_in[r]``/``av_in[r]`` (left edge, row r), ``w_in[c]``/``wv_in[c]`` and ``load``
    (weights shift down one row per cycle while ``load`` = 1; after R loads PE(r, c) holds what
    entered column c R-1-r loads earlier), ``p_out[c]`` (bottom of column c). Activations move one PE
    right per cycle and partial sums one PE down, so the sum over the rows for an activation row that
    enters row r at cycle t - r leaves ``p_out[c]`` registered at the end of cycle t + R - 1 + c.

    ``os``: ``a_in[r]``/``av_in[r]``, ``b_in[c]``/``bv_in[c]`` (top edge), ``drain``, ``acc_out[c]``
    (the bottom row's accumulators; with ``drain`` = 1 every accumulator takes the one above, row 0
    takes 0). PE(r, c) sees at cycle t what entered row r at t - c and column c at t - r.
    """

    def __init__(self, rows: int, cols: int, dataflow: str, mult: MultSpec, acc_bits: int = 32,
                 pe_module: str = "axf_pe"):
        self.rows, self.cols, self.dataflow, self.mult, self.acc_bits = rows, cols, dataflow, mult, acc_bits
        self.pe_module = pe_module
        wa, wb = mult.wa, mult.wb
        sig = {"a_in": In(wa).array(rows), "av_in": In(1).array(rows)}
        if dataflow == "ws":
            sig.update({"w_in": In(wb).array(cols), "wv_in": In(1).array(cols), "load": In(1),
                        "p_out": Out(acc_bits).array(cols)})
        else:
            sig.update({"b_in": In(wb).array(cols), "bv_in": In(1).array(cols), "drain": In(1),
                        "acc_out": Out(acc_bits).array(cols)})
        super().__init__(sig)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        R, C, acc = self.rows, self.cols, self.acc_bits
        pe = template(ProcessingElement(self.dataflow, self.mult, acc))
        ws = self.dataflow == "ws"
        # per-PE output signals
        a_out = [[Signal(self.mult.wa, name=f"a_{r}_{c}") for c in range(C)] for r in range(R)]
        av_out = [[Signal(name=f"av_{r}_{c}") for c in range(C)] for r in range(R)]
        v_out = [[Signal(self.mult.wb, name=f"{'w' if ws else 'b'}_{r}_{c}") for c in range(C)] for r in range(R)]
        vv_out = [[Signal(name=f"{'wv' if ws else 'bv'}_{r}_{c}") for c in range(C)] for r in range(R)]
        s_out = [[Signal(acc, name=f"{'p' if ws else 'acc'}_{r}_{c}") for c in range(C)] for r in range(R)]
        for r in range(R):
            for c in range(C):
                conn: dict[str, object] = {
                    "a_in": self.a_in[r] if c == 0 else a_out[r][c - 1],
                    "av_in": self.av_in[r] if c == 0 else av_out[r][c - 1],
                    "a_out": a_out[r][c], "av_out": av_out[r][c],
                }
                above_s = Const(0, acc) if r == 0 else s_out[r - 1][c]
                if ws:
                    conn.update({"w_in": self.w_in[c] if r == 0 else v_out[r - 1][c],
                                 "wv_in": self.wv_in[c] if r == 0 else vv_out[r - 1][c],
                                 "w_out": v_out[r][c], "wv_out": vv_out[r][c], "load": self.load,
                                 "p_in": above_s, "p_out": s_out[r][c]})
                else:
                    conn.update({"b_in": self.b_in[c] if r == 0 else v_out[r - 1][c],
                                 "bv_in": self.bv_in[c] if r == 0 else vv_out[r - 1][c],
                                 "b_out": v_out[r][c], "bv_out": vv_out[r][c], "drain": self.drain,
                                 "acc_in": above_s, "acc_out": s_out[r][c]})
                m.submodules[f"pe_{r}_{c}"] = instance(self.pe_module, pe, conn)
        out = self.p_out if ws else self.acc_out
        for c in range(C):
            m.d.comb += out[c].eq(s_out[R - 1][c])
        return m

