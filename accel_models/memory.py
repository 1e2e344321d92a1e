"""DRAM traffic and bandwidth stalls for the ``rtl`` cycle model (an analytical model, not part of the RTL).

Each pod has three SRAMs (ifmap = A, filter = B, ofmap = C) of the configured sizes and runs the tile
order of RTL_TIMING.md (ws: N panels outer, K-tiles inner; os: M-tiles outer, N panels inner). An
operand is fetched from DRAM once when the data the loop nest reuses fits in its SRAM, otherwise once
per pass of the loop that reuses it:

=========  ======================================================  =========================================
operand    ws (weight stationary)                                   os (output stationary)
=========  ======================================================  =========================================
A          the pod's whole A fits: once; else once per N panel      an R-row A tile fits: once; else once per
                                                                    N panel
B          once (each weight tile is loaded once)                   the pod's whole B fits: once; else once
                                                                    per M-tile
C          one panel of partial sums (m x C acc words) fits:        written once
           written once; else every K-tile after the first
           reads and writes the partial sums (acc width)
=========  ======================================================  =========================================

The RTL streams all of a pod's M rows through every ws tile, so a panel of partial sums (m x C
accumulator words) spills when it exceeds the ofmap SRAM; an M-blocked schedule would avoid that, but it
is not the schedule of the RTL this model describes. Outputs go to DRAM in ``word_bytes`` (requantised),
partial sums in ``psum_bytes``. With a split over K
the partial results stay on chip for REDUCE when they fit, else they make one round trip to DRAM.

Stalls: the SRAMs are double-buffered and the pods share ``dram_bw`` bytes per cycle equally. A pod
first waits for its first tile's operands (prologue), then computes while the rest streams:
``busy = prologue + max(compute, transfer - prologue)``; stalls are ``busy - compute``. A bandwidth of 0
means unlimited (no stalls), like SCALE-Sim's estimate-bandwidth mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rtl_gen.rtl_cycles import PodWork, RtlRun


@dataclass(frozen=True)
class MemConfig:
    ifmap_kb: int = 64
    filter_kb: int = 64
    ofmap_kb: int = 64
    dram_bw: int = 0  # bytes per cycle shared by all pods; 0 = unlimited
    word_bytes: int = 1
    psum_bytes: int = 4


@dataclass(frozen=True)
class PodTraffic:
    """DRAM bytes of one pod and the cycles it is busy (compute plus bandwidth stalls)."""

    a_read: int = 0
    b_read: int = 0
    c_write: int = 0
    c_read: int = 0
    busy: int = 0
    stall: int = 0

    @property
    def total(self) -> int:
        return self.a_read + self.b_read + self.c_write + self.c_read


@dataclass(frozen=True)
class Traffic:
    pods: tuple[PodTraffic, ...]
    reduce_read: int = 0
    reduce_write: int = 0
    reduce_stall: int = 0

    @property
    def a_read(self) -> int:
        return sum(p.a_read for p in self.pods)

    @property
    def b_read(self) -> int:
        return sum(p.b_read for p in self.pods)

    @property
    def c_write(self) -> int:
        return sum(p.c_write for p in self.pods) + self.reduce_write

    @property
    def c_read(self) -> int:
        return sum(p.c_read for p in self.pods) + self.reduce_read

    @property
    def total(self) -> int:
        return self.a_read + self.b_read + self.c_write + self.c_read


def pod_traffic(run: RtlRun, work: PodWork, mem: MemConfig, weight_bytes: int | None = None) -> PodTraffic:
    """DRAM bytes and busy cycles of one pod of ``run`` (``weight_bytes``: B bytes when compressed)."""
    if work.tiles == 0:
        return PodTraffic()
    R, C = run.rows, run.cols
    wb, pb = mem.word_bytes, mem.psum_bytes
    sa, sb, sc = mem.ifmap_kb * 1024, mem.filter_kb * 1024, mem.ofmap_kb * 1024
    k_split = run.reduce > 0
    outputs = 0 if k_split else work.m * work.n * wb
    if run.dataflow in ("ws", "is"):
        # is runs the ws schedule on the transposed GEMM: the weights stream, the activations stay
        ws = run.dataflow == "ws"
        s_reads, st_reads = (work.a_reads, work.b_reads) if ws else (work.b_reads, work.a_reads)
        rows_streamed, cols = (work.m, work.n) if ws else (work.n, work.m)
        s_cap = sa if ws else sb
        s_once = s_reads // max(1, work.panels) * wb  # one panel's worth of the streamed operand
        if not ws and weight_bytes is not None:
            s_once = weight_bytes
        streamed = s_once if s_once <= s_cap else s_once * max(1, work.panels)
        stationary = st_reads * wb if (weight_bytes is None or not ws) else weight_bytes
        if rows_streamed * min(C, cols) * pb <= sc:
            c_w, c_r = outputs, 0
        else:  # partial sums make a round trip per extra K-tile
            c_r = work.c_reads * pb
            c_w = work.c_reads * pb + outputs
        first = min(R, work.k) * min(C, cols) * wb + rows_streamed * min(R, work.k) * wb
        a, b = (streamed, stationary) if ws else (stationary, streamed)
    else:
        tile_a = min(R, work.m) * work.k * wb
        a = work.m * work.k * wb if tile_a <= sa else work.a_reads * wb
        whole_b = work.k * work.n * wb
        b_once = whole_b if weight_bytes is None else weight_bytes
        b = b_once if whole_b <= sb else b_once * max(1, work.m_tiles)
        c_w, c_r = outputs, 0
        first = tile_a + work.k * min(C, work.n) * wb
    total = a + b + c_w + c_r
    busy = work.cycles
    if mem.dram_bw > 0:
        bw = mem.dram_bw / max(1, run.active_pods)
        pro = math.ceil(first / bw)
        busy = pro + max(work.cycles, math.ceil(total / bw) - pro)
    return PodTraffic(a, b, c_w, c_r, busy, busy - work.cycles)


def traffic(run: RtlRun, mem: MemConfig, weight_bytes: list[int | None] | None = None) -> Traffic:
    pods = tuple(pod_traffic(run, w, mem, None if weight_bytes is None else weight_bytes[i])
                 for i, w in enumerate(run.pods))
    red_r = red_w = red_stall = 0
    if run.reduce:
        partial = run.m * run.n * mem.psum_bytes
        if partial > mem.ofmap_kb * 1024:
            red_r = run.active_pods * partial  # partials were spilled: read them back
            pods = tuple(PodTraffic(p.a_read, p.b_read, p.c_write + (partial if p.busy else 0), p.c_read,
                                    p.busy, p.stall) for p in pods)
        red_w = run.m * run.n * mem.word_bytes
        if mem.dram_bw > 0:
            red_stall = max(0, math.ceil((red_r + red_w) / mem.dram_bw) - run.reduce)
    return Traffic(pods, red_r, red_w, red_stall)


def layer_cycles(run: RtlRun, t: Traffic) -> tuple[int, int]:
    """(compute cycles, cycles with bandwidth stalls) of one GEMM run."""
    compute = run.cycles
    busy = max(p.busy for p in t.pods)
    return compute, 1 + busy + 1 + run.reduce + t.reduce_stall
