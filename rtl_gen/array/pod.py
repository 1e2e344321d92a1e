"""One pod: the tile sequencer, the feeders and the output unit around one systolic array."""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.array.geometry import Geometry, addr_bits, bits_for
from rtl_gen.array.mult import MultSpec
from rtl_gen.array.systolic import SystolicArray

IDLE, NEXT, PH_A, PH_B = 0, 1, 2, 3  # pod phases; PH_A = LOAD (ws) / COMPUTE (os), PH_B = STREAM / DRAIN


def mem_ports(g: Geometry) -> dict[str, wiring.Member]:
    """One pod's ports to its buffers: A banks (one per row), B and C banks (one per column)."""
    R, C = g.rows, g.cols
    aa, ba, ca = addr_bits(g.a_depth), addr_bits(g.b_depth), addr_bits(g.c_depth)
    return {
        "a_raddr": Out(aa).array(R), "a_ren": Out(1).array(R), "a_rdata": In(g.wa).array(R),
        "b_raddr": Out(ba).array(C), "b_ren": Out(1).array(C), "b_rdata": In(g.wb).array(C),
        "c_raddr": Out(ca).array(C), "c_ren": Out(1).array(C), "c_rdata": In(g.acc_bits).array(C),
        "c_waddr": Out(ca).array(C), "c_we": Out(1).array(C), "c_wdata": Out(g.acc_bits).array(C),
    }


def share_ports(g: Geometry) -> dict[str, wiring.Member]:
    """What the controller tells a pod (sampled with ``go``) and the GEMM sizes it holds during RUN."""
    mw, kw, nw = bits_for(g.m_max), bits_for(g.k_max), bits_for(g.n_max)
    tw = bits_for(max(g.mt_max, g.kb, g.nb))
    sw = bits_for(max(g.pods, 1))
    lw = max(mw, kw)
    extra: dict[str, wiring.Member] = {"skip": In(g.skip_bits)} if g.tile_skip else {}
    return {
        **extra,
        "go": In(1), "busy": Out(1),
        "m": In(mw), "k": In(kw), "n": In(nw),
        "o_count": In(tw), "u_count": In(tw),  # tiles of the outer / inner loop
        "o0": In(tw), "o_step": In(sw), "u0": In(tw), "u_step": In(sw),
        "base": In(lw), "size": In(lw),  # ws: first row m0 and rows mp; os: first k0 and length kp
    }


class Pod(wiring.Component):
    """One pod: the tile sequencer, the feeders and output unit of RTL_TIMING.md section 4, one array.

    Tiles run back to back from the cycle after ``go`` until ``busy`` falls. Loops: ws - outer over
    N panels ``o``, inner over K-tiles ``u``, streaming rows ``base .. base+size-1``; os - outer over
    M-tiles ``o``, inner over N panels ``u``, reducing over ``base .. base+size-1``. Each loop starts at
    ``o0``/``u0`` and steps by ``o_step``/``u_step`` while below ``o_count``/``u_count``.
    """

    def __init__(self, g: Geometry, mult: MultSpec, pe_module: str):
        self.g, self.mult, self.pe_module = g, mult, pe_module
        super().__init__({**share_ports(g), **mem_ports(g)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        g = self.g
        m.submodules.sa = sa = SystolicArray(g.rows, g.cols, g.dataflow, self.mult, g.acc_bits, self.pe_module)
        if g.dataflow == "ws":
            self._ws(m, sa)
        else:
            self._os(m, sa)
        return m

    # shared sequencing: loop registers, phase, tile advance
    def _loops(self, m: Module) -> tuple[Signal, Signal, Signal, Signal, dict[str, Signal]]:
        g = self.g
        phase = Signal(2)
        cnt = Signal(bits_for(max(g.m_max, g.k_max) + g.rows + g.cols))
        tw = len(self.o0)
        o, u = Signal(tw), Signal(tw)
        q = {name: Signal(len(getattr(self, name)), name=f"{name}_q")
             for name in ("o0", "o_step", "u0", "u_step", "base", "size")}
        m.d.comb += self.busy.eq(phase != IDLE)
        with m.If((phase == IDLE) & self.go):
            m.d.sync += [sig.eq(getattr(self, name)) for name, sig in q.items()]
            m.d.sync += [o.eq(self.o0), u.eq(self.u0), phase.eq(NEXT)]
        return phase, cnt, o, u, q

    def _advance(self, m: Module, phase: Signal, o: Signal, u: Signal, q: dict[str, Signal]) -> None:
        """End of a tile: the next (o, u) in loop order, or IDLE."""
        u_next = u + q["u_step"]
        o_next = o + q["o_step"]
        with m.If(u_next < self.u_count):
            m.d.sync += [u.eq(u_next), phase.eq(NEXT)]
        with m.Elif(o_next < self.o_count):
            m.d.sync += [u.eq(q["u0"]), o.eq(o_next), phase.eq(NEXT)]
        with m.Else():
            m.d.sync += phase.eq(IDLE)

    @staticmethod
    def _chain(m: Module, n: int, addr0: object, valid0: object, width: int, name: str
               ) -> tuple[list[object], list[object]]:
        """Lane i issues what lane 0 issued i cycles earlier (the skew of the systolic feed)."""
        addrs: list[object] = [addr0]
        valids: list[object] = [valid0]
        for i in range(1, n):
            a = Signal(width, name=f"{name}_addr{i}")
            v = Signal(name=f"{name}_v{i}")
            m.d.sync += [a.eq(addrs[-1]), v.eq(valids[-1])]
            addrs.append(a)
            valids.append(v)
        return addrs, valids

    def _first_kept(self, m: Module, panel: Any, start: Any, name: str) -> tuple[Any, Signal]:
        """Tile skipping: whether panel ``panel`` runs a K-tile at or after ``start``, and the first one."""
        kt = self.g.kb
        bits = self.skip.bit_select(panel * kt, kt)
        kept = Signal(kt, name=f"{name}_kept")
        m.d.comb += kept.eq(Cat(*[~bits[t] & (start <= t) for t in range(kt)]))
        idx: Any = Const(kt - 1, len(self.u0))
        for t in reversed(range(kt)):
            idx = Mux(kept[t], t, idx)
        first = Signal(len(self.u0), name=f"{name}_idx")
        m.d.comb += first.eq(idx)
        return kept.any(), first

    def _advance_skip(self, m: Module, phase: Signal, o: Signal, u: Signal, q: dict[str, Signal]) -> None:
        """End of a tile with tile skipping: the next K-tile of this panel that is not skipped, else the
        first of the next panel (or its first K-tile, run with no valid weight, when it skips them all)."""
        o_next = o + q["o_step"]
        more, u_more = self._first_kept(m, o, u + 1, "adv_u")
        found, u_first = self._first_kept(m, o_next, q["u0"], "adv_o")
        with m.If(more):
            m.d.sync += [u.eq(u_more), phase.eq(NEXT)]
        with m.Elif(o_next < self.o_count):
            m.d.sync += [u.eq(Mux(found, u_first, q["u0"])), o.eq(o_next), phase.eq(NEXT)]
        with m.Else():
            m.d.sync += phase.eq(IDLE)

    def _ws(self, m: Module, sa: SystolicArray) -> None:
        g = self.g
        R, C, KB, NB = g.rows, g.cols, g.kb, g.nb
        phase, cnt, o, u, q = self._loops(m)
        j, i = o, u  # panel, K-tile
        dead = Signal()  # tile skipping: this panel skips every K-tile, so its first runs with no weight
        dead_now: Any = Const(0)
        if g.tile_skip:
            found0, u_first0 = self._first_kept(m, self.o0, self.u0, "go")
            with m.If((phase == IDLE) & self.go):
                m.d.sync += u.eq(Mux(found0, u_first0, self.u0))
        aa, ba, ca = len(self.a_raddr[0]), len(self.b_raddr[0]), len(self.c_raddr[0])
        first = Signal()
        kvalid = Signal(R)  # k0 + r < K
        cvalid = Signal(C)  # n0 + c < N
        b_addr = Signal(ba + 1)
        b_kk = Signal(bits_for(g.kb * R + R))
        bv = Signal(C)  # valid bits of the B data arriving this cycle
        a_addr0 = Signal(aa + 1)
        a_u = Signal(len(cnt))
        c_addr0 = Signal(ca + 1)

        # B reads: issued in NEXT (for LOAD l = 0) and in LOAD l = 0 .. R-2 (for l + 1)
        b_issue = Signal()
        b_issue_addr = Signal(ba + 1)
        b_issue_kk = Signal(len(b_kk))
        k0 = i * R
        n0 = j * C
        is_first: Any = i == q["u0"]
        if g.tile_skip:
            any_kept, u_first = self._first_kept(m, j, q["u0"], "panel")
            is_first = Mux(any_kept, i == u_first, 1)
            dead_now = Mux(phase == NEXT, ~any_kept, dead)
            with m.If(phase == NEXT):
                m.d.sync += dead.eq(~any_kept)
        with m.If(phase == NEXT):
            m.d.comb += [b_issue.eq(1), b_issue_kk.eq(k0 + R - 1), b_issue_addr.eq((k0 + R - 1) * NB + j)]
            m.d.sync += [
                first.eq(is_first),
                kvalid.eq(Cat(*[k0 + r < self.k for r in range(R)])),
                cvalid.eq(Cat(*[n0 + c < self.n for c in range(C)])),
                a_addr0.eq(q["base"] * KB + i), a_u.eq(0),
                c_addr0.eq(q["base"] * NB + j),
                cnt.eq(0), phase.eq(PH_A),
            ]
        with m.Elif((phase == PH_A) & (cnt < R - 1)):
            m.d.comb += [b_issue.eq(1), b_issue_kk.eq(b_kk), b_issue_addr.eq(b_addr)]
        col_ok = Cat(*[n0 + c < self.n for c in range(C)])  # valid in NEXT, where cvalid is being set
        b_cols = Mux(phase == NEXT, col_ok, cvalid)
        for c in range(C):
            m.d.comb += [self.b_raddr[c].eq(b_issue_addr), self.b_ren[c].eq(b_issue & (b_issue_kk < self.k)
                                                                              & b_cols[c] & ~dead_now)]
        m.d.sync += bv.eq(Cat(*self.b_ren))
        with m.If(b_issue):
            m.d.sync += [b_addr.eq(b_issue_addr - NB), b_kk.eq(b_issue_kk - 1)]

        # LOAD: weights shift down; the last LOAD cycle issues the first A reads
        m.d.comb += sa.load.eq(phase == PH_A)
        for c in range(C):
            m.d.comb += [sa.w_in[c].eq(self.b_rdata[c]), sa.wv_in[c].eq(bv[c])]
        with m.If(phase == PH_A):
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == R - 1):
                m.d.sync += [cnt.eq(0), phase.eq(PH_B)]

        # A feed: row 0 reads row m0 + t for STREAM cycle t in cycle t - 1; row r lags r cycles
        a_issue = ((phase == PH_A) & (cnt == R - 1)) | ((phase == PH_B) & (a_u < q["size"]))
        with m.If(a_issue):
            m.d.sync += [a_addr0.eq(a_addr0 + KB), a_u.eq(a_u + 1)]
        addrs, valids = self._chain(m, R, a_addr0, a_issue, aa + 1, "a")
        av = Signal(R)
        for r in range(R):
            m.d.comb += [self.a_raddr[r].eq(addrs[r]), self.a_ren[r].eq(valids[r] & kvalid[r])]
        m.d.sync += av.eq(Cat(*self.a_ren))
        for r in range(R):
            m.d.comb += [sa.a_in[r].eq(self.a_rdata[r]), sa.av_in[r].eq(av[r])]

        # output unit: column c writes row t - R - c in STREAM cycle t, its old value read in t - 1
        t1 = cnt + 1
        c_issue = (phase == PH_B) & (t1 >= R) & (t1 < q["size"] + R)
        with m.If(c_issue):
            m.d.sync += c_addr0.eq(c_addr0 + NB)
        caddrs, cvalids = self._chain(m, C, c_addr0, c_issue, ca + 1, "c")
        for c in range(C):
            wa_ = Signal(ca, name=f"c_wa{c}")
            we = Signal(name=f"c_we{c}")
            m.d.comb += [self.c_raddr[c].eq(caddrs[c]), self.c_ren[c].eq(cvalids[c] & cvalid[c] & ~first)]
            m.d.sync += [wa_.eq(caddrs[c]), we.eq(cvalids[c] & cvalid[c])]
            m.d.comb += [self.c_waddr[c].eq(wa_), self.c_we[c].eq(we),
                         self.c_wdata[c].eq(Mux(first, 0, self.c_rdata[c]) + sa.p_out[c])]

        with m.If(phase == PH_B):
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == q["size"] + (R + C - 2)):
                m.d.sync += cnt.eq(0)
                if g.tile_skip:
                    self._advance_skip(m, phase, o, u, q)
                else:
                    self._advance(m, phase, o, u, q)

    def _os(self, m: Module, sa: SystolicArray) -> None:
        g = self.g
        R, C, NB, KM = g.rows, g.cols, g.nb, g.k_max
        phase, cnt, o, u, q = self._loops(m)
        i, j = o, u  # M-tile, panel
        aa, ba, ca = len(self.a_raddr[0]), len(self.b_raddr[0]), len(self.c_raddr[0])
        rowv = Signal(R)  # m0 + r < M
        colv = Signal(C)  # n0 + c < N
        a_addr0 = Signal(aa + 1)
        b_addr0 = Signal(ba + 1)
        a_u = Signal(len(cnt))
        d_addr = Signal(ca + 1)
        d_row = Signal(bits_for(g.mt_max * R))
        m0 = i * R
        n0 = j * C

        # COMPUTE cycle t: row 0 reads A[m0][k0 + t], column 0 reads B[k0 + t][n0] in cycle t - 1
        issue = Signal()
        ia, ib = Signal(aa + 1), Signal(ba + 1)
        with m.If(phase == NEXT):
            m.d.comb += [issue.eq(1), ia.eq(i * KM + q["base"]), ib.eq(q["base"] * NB + j)]
            m.d.sync += [
                rowv.eq(Cat(*[m0 + r < self.m for r in range(R)])),
                colv.eq(Cat(*[n0 + c < self.n for c in range(C)])),
                d_addr.eq((m0 + R - 1) * NB + j), d_row.eq(m0 + R - 1),
                cnt.eq(0), phase.eq(PH_A),
            ]
        with m.Elif(phase == PH_A):
            m.d.comb += [issue.eq(a_u < q["size"]), ia.eq(a_addr0), ib.eq(b_addr0)]
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == q["size"] + (R + C - 3)):
                m.d.sync += [cnt.eq(0), phase.eq(PH_B)]
        with m.If(issue):
            m.d.sync += [a_addr0.eq(ia + 1), b_addr0.eq(ib + NB), a_u.eq(Mux(phase == NEXT, 1, a_u + 1))]
        # row 0 / column 0 of a tile are always inside the GEMM; further lanes check rowv/colv
        addrs, valids = self._chain(m, R, ia, issue, aa + 1, "a")
        baddrs, bvalids = self._chain(m, C, ib, issue, ba + 1, "b")
        av, bv = Signal(R), Signal(C)
        for r in range(R):
            ok = valids[r] if r == 0 else valids[r] & rowv[r]
            m.d.comb += [self.a_raddr[r].eq(addrs[r]), self.a_ren[r].eq(ok)]
        for c in range(C):
            ok = bvalids[c] if c == 0 else bvalids[c] & colv[c]
            m.d.comb += [self.b_raddr[c].eq(baddrs[c]), self.b_ren[c].eq(ok)]
        m.d.sync += [av.eq(Cat(*self.a_ren)), bv.eq(Cat(*self.b_ren))]
        for r in range(R):
            m.d.comb += [sa.a_in[r].eq(self.a_rdata[r]), sa.av_in[r].eq(av[r])]
        for c in range(C):
            m.d.comb += [sa.b_in[c].eq(self.b_rdata[c]), sa.bv_in[c].eq(bv[c])]

        # DRAIN cycle d: write the bottom row to C row m0 + R - 1 - d, shift the accumulators down
        m.d.comb += sa.drain.eq(phase == PH_B)
        for c in range(C):
            m.d.comb += [self.c_waddr[c].eq(d_addr), self.c_wdata[c].eq(sa.acc_out[c]),
                         self.c_we[c].eq((phase == PH_B) & colv[c] & (d_row < self.m)),
                         self.c_raddr[c].eq(0), self.c_ren[c].eq(0)]
        with m.If(phase == PH_B):
            m.d.sync += [cnt.eq(cnt + 1), d_addr.eq(d_addr - NB), d_row.eq(d_row - 1)]
            with m.If(cnt == R - 1):
                m.d.sync += cnt.eq(0)
                self._advance(m, phase, o, u, q)

