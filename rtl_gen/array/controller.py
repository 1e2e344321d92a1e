"""The top controller: the pods, their shares of a GEMM and the REDUCE unit (:class:`ArrayCore`)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.array.geometry import Geometry, bits_for
from rtl_gen.array.mult import MultSpec
from rtl_gen.array.pod import Pod, mem_ports

S_IDLE, S_SETUP, S_RUN, S_REDUCE, S_DONE = range(5)


class ArrayCore(wiring.Component):
    """The top controller, the pods and the REDUCE unit: everything of :class:`MultiPodArray` but the
    buffers and the host's buffer ports (this is what is synthesised for area, delay and power).

    Ports: ``start``, ``m``, ``k``, ``n``, ``split`` (sampled with ``start`` while idle), ``busy``,
    ``done`` (see :class:`MultiPodArray`), ``split_q`` and ``m_size`` (the split and ceil(M/P) of the
    GEMM run last, for the host's read-address decoder), and per pod ``p`` the buffer ports
    ``<a|b|c>_raddr[p][bank]`` / ``_ren`` / ``_rdata`` (synchronous read: data the cycle after the
    address) and ``c_waddr[p][bank]`` / ``c_we`` / ``c_wdata`` (written at the end of the cycle).
    """

    def __init__(self, g: Geometry, mult: MultSpec, pe_module: str):
        self.g, self.mult, self.pe_module = g, mult, pe_module
        mw, kw, nw = bits_for(g.m_max), bits_for(g.k_max), bits_for(g.n_max)
        P = g.pods
        sig: dict[str, wiring.Member] = {
            "start": In(1), "m": In(mw), "k": In(kw), "n": In(nw), "split": In(2),
            "busy": Out(1), "done": Out(1), "split_q": Out(2), "m_size": Out(mw),
        }
        if g.tile_skip:
            sig["skip"] = In(g.skip_bits)
        for name, member in mem_ports(g).items():
            sig[name] = member.array(P)
        super().__init__(sig)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        g = self.g
        P, R, C = g.pods, g.rows, g.cols
        pods = [Pod(g, self.mult, self.pe_module) for _ in range(P)]
        for p, pod in enumerate(pods):
            m.submodules[f"pod{p}"] = pod

        state = Signal(3)
        mq, kq, nq = Signal(len(self.m)), Signal(len(self.k)), Signal(len(self.n))
        split = Signal(2)
        m.d.comb += [self.busy.eq((state == S_SETUP) | (state == S_RUN) | (state == S_REDUCE)),
                     self.done.eq(state == S_DONE), self.split_q.eq(split)]
        with m.If(((state == S_IDLE) | (state == S_DONE)) & self.start):
            m.d.sync += [mq.eq(self.m), kq.eq(self.k), nq.eq(self.n), split.eq(self.split), state.eq(S_SETUP)]
        skipq = Signal(g.skip_bits) if g.tile_skip else None
        if skipq is not None:
            with m.If(((state == S_IDLE) | (state == S_DONE)) & self.start):
                m.d.sync += skipq.eq(self.skip)

        # SETUP: every pod's share (RTL_TIMING.md section 5), sampled by the pods with go
        tw = len(pods[0].o0)
        mt, kt, nt = Signal(tw), Signal(tw), Signal(tw)
        mt_c = (mq + (R - 1)) // R
        kt_c = (kq + (R - 1)) // R
        nt_c = (nq + (C - 1)) // C
        m_size = Signal(len(self.m))
        k_size = (kq + (P - 1)) // P
        m_size_c = (mq + (P - 1)) // P
        m.d.comb += self.m_size.eq(m_size)
        if P == 1:  # every split is the same schedule
            sp_n, sp_m, sp_k = Const(1), Const(0), Const(0)
        else:
            sp_n, sp_m, sp_k = (split == 0) | (split == 3), split == 1, split == 2
        launched = Signal(P)
        work = []
        for p, pod in enumerate(pods):
            m.d.comb += [pod.m.eq(mq), pod.k.eq(kq), pod.n.eq(nq)]
            if skipq is not None:  # K-tiles beyond K count as skipped
                m.d.comb += pod.skip.eq(skipq | Cat(*[kt_c <= t for _ in range(g.nb) for t in range(g.kb)]))
            if g.dataflow == "ws":  # outer: N panels, inner: K-tiles, rows base .. base+size-1
                m.d.comb += [pod.o_count.eq(nt), pod.u_count.eq(kt)]
                m0 = p * m_size_c
                has = Mux(sp_n, p < nt_c, Mux(sp_m, m0 < mq, p < kt_c))
                m.d.comb += [
                    pod.o0.eq(Mux(sp_n, p, 0)), pod.o_step.eq(Mux(sp_n, P, 1)),
                    pod.u0.eq(Mux(sp_k, p, 0)), pod.u_step.eq(Mux(sp_k, P, 1)),
                    pod.base.eq(Mux(sp_m, m0, 0)),
                    pod.size.eq(Mux(sp_m, Mux(mq - m0 < m_size_c, mq - m0, m_size_c), mq)),
                ]
            else:  # outer: M-tiles, inner: N panels, reduction base .. base+size-1
                m.d.comb += [pod.o_count.eq(mt), pod.u_count.eq(nt)]
                k0 = p * k_size
                has = Mux(sp_n, p < nt_c, Mux(sp_m, p < mt_c, k0 < kq))
                m.d.comb += [
                    pod.o0.eq(Mux(sp_m, p, 0)), pod.o_step.eq(Mux(sp_m, P, 1)),
                    pod.u0.eq(Mux(sp_n, p, 0)), pod.u_step.eq(Mux(sp_n, P, 1)),
                    pod.base.eq(Mux(sp_k, k0, 0)),
                    pod.size.eq(Mux(sp_k, Mux(kq - k0 < k_size, kq - k0, k_size), kq)),
                ]
            work.append(has)
            m.d.comb += pod.go.eq((state == S_SETUP) & has)
        with m.If(state == S_SETUP):
            m.d.sync += [mt.eq(mt_c), kt.eq(kt_c), nt.eq(nt_c), m_size.eq(m_size_c), launched.eq(Cat(*work)),
                         state.eq(S_RUN)]

        # RUN: leave at the edge of the first cycle in which every pod is idle (the SYNC cycle)
        with m.If((state == S_RUN) & ~Cat(*[pod.busy for pod in pods]).any()):
            m.d.sync += state.eq(Mux(sp_k, S_REDUCE, S_DONE))

        for p, pod in enumerate(pods):
            for r in range(R):
                m.d.comb += [self.a_raddr[p][r].eq(pod.a_raddr[r]), self.a_ren[p][r].eq(pod.a_ren[r]),
                             pod.a_rdata[r].eq(self.a_rdata[p][r])]
            for c in range(C):
                m.d.comb += [self.b_raddr[p][c].eq(pod.b_raddr[c]), self.b_ren[p][c].eq(pod.b_ren[c]),
                             pod.b_rdata[c].eq(self.b_rdata[p][c]), pod.c_rdata[c].eq(self.c_rdata[p][c])]
                m.d.comb += [self.c_raddr[p][c].eq(pod.c_raddr[c]), self.c_ren[p][c].eq(pod.c_ren[c]),
                             self.c_waddr[p][c].eq(pod.c_waddr[c]), self.c_we[p][c].eq(pod.c_we[c]),
                             self.c_wdata[p][c].eq(pod.c_wdata[c])]
        if P > 1:
            self._reduce(m, state, mq, nq, nt, launched, pods)
        return m

    def _reduce(self, m: Module, state: Signal, mq: Signal, nq: Signal, nt: Signal, launched: Signal,
                pods: list[Pod]) -> None:
        """REDUCE (split k, several pods): cycle q reads row q // Nt, panel q % Nt of every launched pod's C
        bank; cycle q + 1 writes their sum to pod 0's bank. Overrides the pods' C ports while in REDUCE."""
        g = self.g
        P, C = g.pods, g.cols
        tw = len(nt)
        ca = len(self.c_raddr[0][0])
        r_row, r_pan = Signal(len(self.m)), Signal(tw)
        r_issue = (state == S_REDUCE) & (r_row < mq)
        r_addr = Signal(ca)
        m.d.comb += r_addr.eq(r_row * g.nb + r_pan)
        w_valid, w_addr, w_cols = Signal(), Signal(ca), Signal(C)
        m.d.sync += [w_valid.eq(r_issue), w_addr.eq(r_addr),
                     w_cols.eq(Cat(*[r_pan * C + c < nq for c in range(C)]))]
        with m.If(state == S_SETUP):
            m.d.sync += [r_row.eq(0), r_pan.eq(0)]
        with m.If(r_issue):
            with m.If(r_pan + 1 == nt):
                m.d.sync += [r_pan.eq(0), r_row.eq(r_row + 1)]
            with m.Else():
                m.d.sync += r_pan.eq(r_pan + 1)
        with m.If((state == S_REDUCE) & ~r_issue):
            m.d.sync += state.eq(S_DONE)  # the cycle that writes the last sum
        with m.If(state == S_REDUCE):
            for c in range(C):
                for p in range(P):
                    m.d.comb += [self.c_raddr[p][c].eq(r_addr), self.c_ren[p][c].eq(r_issue)]
                total = sum((Mux(launched[q], self.c_rdata[q][c], 0) for q in range(P)), Const(0, 1))
                m.d.comb += [self.c_waddr[0][c].eq(w_addr), self.c_we[0][c].eq(w_valid & w_cols[c]),
                             self.c_wdata[0][c].eq(total)]

