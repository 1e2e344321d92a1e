"""The accelerator: the core, its buffers and the host interface (:class:`MultiPodArray`)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, ResetSignal, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.array.controller import ArrayCore
from rtl_gen.array.geometry import Geometry, addr_bits, bits_for
from rtl_gen.array.hierarchy import instance, template
from rtl_gen.array.mult import MultSpec


class MultiPodArray(wiring.Component):
    """A GEMM accelerator: ``pods`` systolic arrays of ``rows x cols`` PEs, their buffers and a controller.

    ``Cout[M x N] = A[M x K] x B[K x N]`` for any 1 <= M <= m_max, K <= k_max, N <= n_max; ``Cout`` is the
    exact sum of the products the PE multipliers return, modulo 2^acc_bits. Timing: RTL_TIMING.md.

    Host ports (all sampled at the rising edge of ``clk``; ``rst`` is synchronous):

    ============================ ====== ==================================================================
    port                         dir    latency / rule
    ============================ ====== ==================================================================
    a_we, a_row, a_col, a_data   in     ``A[a_row][a_col] <= a_data`` at the edge where a_we = 1, one
                                        element per cycle, only while idle (ignored while busy); every
                                        pod's copy is written
    b_we, b_row, b_col, b_data   in     the same for ``B[b_row][b_col]``
    m, k, n                      in     GEMM size, 1 <= m <= m_max etc.; sampled with ``start``
    split                        in     0 = n, 1 = m, 2 = k (section 5), sampled with ``start``; with one
                                        pod every split is the same schedule (3 acts as 0)
    start                        in     sampled while idle (``busy`` = 0); ignored while busy
    busy                         out    registered; 1 from the edge that samples ``start`` until ``done``
    done                         out    registered; rises ``rtl_cycles.gemm_cycles(...)`` edges after the
                                        edge that sampled ``start``, stays 1 until the next ``start``
    c_row, c_col                 in     read address of ``Cout``
    c_data                       out    ``Cout[c_row][c_col]`` one cycle after the address (registered);
                                        valid while ``done`` = 1 (acc_bits wide, two's complement)
    ============================ ====== ==================================================================

    Buffers (synchronous-read RAMs, per pod): A in ``rows`` banks (ws: by k mod R, os: by m mod R),
    B and C in ``cols`` banks (by n mod C); ``buffer_bits`` of the geometry gives their capacity.
    """

    def __init__(self, g: Geometry, mult: MultSpec, *, core_module: str, pe_module: str):
        self.g, self.mult, self.core_module, self.pe_module = g, mult, core_module, pe_module
        mw, kw, nw = bits_for(g.m_max), bits_for(g.k_max), bits_for(g.n_max)
        ra, ka, na = addr_bits(g.m_max), addr_bits(g.k_max), addr_bits(g.n_max)
        super().__init__({
            "a_we": In(1), "a_row": In(ra), "a_col": In(ka), "a_data": In(g.wa),
            "b_we": In(1), "b_row": In(ka), "b_col": In(na), "b_data": In(g.wb),
            "m": In(mw), "k": In(kw), "n": In(nw), "split": In(2), "start": In(1),
            "busy": Out(1), "done": Out(1),
            "c_row": In(ra), "c_col": In(na), "c_data": Out(g.acc_bits),
            **({"skip": In(g.skip_bits)} if g.tile_skip else {}),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        g = self.g
        P, R, C = g.pods, g.rows, g.cols
        core = template(ArrayCore(g, self.mult, self.pe_module))
        conn: dict[str, Signal] = {}
        for path, member, _ in core.signature.flatten(core):
            name = "__".join(str(p) for p in path)
            shape = member.shape
            conn[name] = Signal(shape, name=f"core_{name}")
        for name in ("start", "m", "k", "n", "split", *(("skip",) if g.tile_skip else ())):
            m.d.comb += conn[name].eq(getattr(self, name))
        m.d.comb += [self.busy.eq(conn["busy"]), self.done.eq(conn["done"])]
        m.submodules.core = instance(self.core_module, core, conn)
        busy = conn["busy"]
        rst = ResetSignal()  # buffers are read during reset, so their outputs are never undefined

        # host write decode (ws: A banked by column, os: by row)
        if g.dataflow == "ws":
            a_bank, a_addr = self.a_col % R, self.a_row * g.kb + self.a_col // R
        else:
            a_bank, a_addr = self.a_row % R, (self.a_row // R) * g.k_max + self.a_col
        b_bank, b_addr = self.b_col % C, self.b_row * g.nb + self.b_col // C
        c_bank, c_addr = self.c_col % C, self.c_row * g.nb + self.c_col // C

        # host read: which pod holds Cout[c_row][c_col] (RTL_TIMING.md section 5)
        c_pod = Signal(range(P))
        if P > 1:
            split, m_size = conn["split_q"], conn["m_size"]
            by_m = (sum((self.c_row >= p * m_size for p in range(1, P)), Const(0, 1)) if g.dataflow == "ws"
                    else (self.c_row // R) % P)
            m.d.comb += c_pod.eq(Mux(split == 1, by_m, Mux(split == 2, 0, (self.c_col // C) % P)))
        sel_pod, sel_bank = Signal(range(P)), Signal(range(C))
        m.d.sync += [sel_pod.eq(c_pod), sel_bank.eq(c_bank)]
        c_words = []
        for p in range(P):
            for r in range(R):
                mem = memory.Memory(shape=unsigned(g.wa), depth=g.a_depth, init=[])
                m.submodules[f"a_p{p}_b{r}"] = mem
                wp, rp = mem.write_port(), mem.read_port()
                m.d.comb += [wp.addr.eq(a_addr), wp.data.eq(self.a_data), wp.en.eq(self.a_we & ~busy & (a_bank == r)),
                             rp.addr.eq(conn[f"a_raddr__{p}__{r}"]), rp.en.eq(conn[f"a_ren__{p}__{r}"] | rst),
                             conn[f"a_rdata__{p}__{r}"].eq(rp.data)]
            for c in range(C):
                mem = memory.Memory(shape=unsigned(g.wb), depth=g.b_depth, init=[])
                m.submodules[f"b_p{p}_b{c}"] = mem
                wp, rp = mem.write_port(), mem.read_port()
                m.d.comb += [wp.addr.eq(b_addr), wp.data.eq(self.b_data), wp.en.eq(self.b_we & ~busy & (b_bank == c)),
                             rp.addr.eq(conn[f"b_raddr__{p}__{c}"]), rp.en.eq(conn[f"b_ren__{p}__{c}"] | rst),
                             conn[f"b_rdata__{p}__{c}"].eq(rp.data)]
                mem = memory.Memory(shape=unsigned(g.acc_bits), depth=g.c_depth, init=[])
                m.submodules[f"c_p{p}_b{c}"] = mem
                wp, rp = mem.write_port(), mem.read_port()
                m.d.comb += [wp.addr.eq(conn[f"c_waddr__{p}__{c}"]), wp.data.eq(conn[f"c_wdata__{p}__{c}"]),
                             wp.en.eq(conn[f"c_we__{p}__{c}"]),
                             rp.addr.eq(Mux(busy, conn[f"c_raddr__{p}__{c}"], c_addr)),
                             rp.en.eq(Mux(busy, conn[f"c_ren__{p}__{c}"], 1)),
                             conn[f"c_rdata__{p}__{c}"].eq(rp.data)]
                c_words.append((p, c, rp.data))
        with m.Switch(Cat(sel_bank, sel_pod)):
            for p, c, word in c_words:
                with m.Case(c | (p << len(sel_bank))):
                    m.d.comb += self.c_data.eq(word)
        return m

