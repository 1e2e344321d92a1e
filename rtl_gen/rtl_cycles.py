"""The ``rtl`` cycle model: the exact start-to-done cycle count of the arrays of ``rtl_gen/``.

This is the timing contract written down in ``accel_models/RTL_TIMING.md``; read that first. In short,
``MultiPodArray(pods=P, rows=R, cols=C, dataflow)`` runs one GEMM ``C[M x N] = A[M x K] B[K x N]`` as

    cycles = 1 (SETUP) + max over pods of T_pod + 1 (SYNC) + T_reduce

where each pod runs its share of the tiles back to back:

    ws tile = 1 (NEXT) + R (LOAD weights) + (m + R + C - 1) (STREAM)  = m + 2R + C
    os tile = 1 (NEXT) + (k + R + C - 2) (COMPUTE) + R (DRAIN)         = k + 2R + C - 1

(``m`` = the rows the pod streams, ``k`` = the reduction length the pod streams) and
``T_reduce = M * ceil(N / C) + 1`` only when the K dimension is split over more than one pod.
Work is split over pods by output columns (``n``: N-tiles round-robin), output rows (``m``) or the
reduction (``k``); see :func:`plan`. Everything here is a pure function of the configuration.

``is`` is not an RTL dataflow: it is modelled as the ws array running the transposed GEMM
``C^T = B^T A^T`` (the activations become the stationary operand), which the ws RTL does exactly.

Block sparsity (an analytical extension; the RTL has no sparse controller) enters as the effective
reduction length of each N panel (``k_eff``): ws skips whole K-tiles of zero weight block-rows in a
panel, os streams only the non-zero block-rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import must

DATAFLOWS = ("ws", "os", "is")
SPLITS = ("n", "m", "k")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def ws_tile_cycles(m: int, rows: int, cols: int) -> int:
    """One weight-stationary tile streaming ``m`` rows: NEXT + LOAD + STREAM."""
    return 1 + rows + (m + rows + cols - 1)


def os_tile_cycles(k: int, rows: int, cols: int) -> int:
    """One output-stationary tile reducing over ``k``: NEXT + COMPUTE + DRAIN."""
    return 1 + (k + rows + cols - 2) + rows


def reduce_cycles(m: int, n: int, cols: int) -> int:
    """Summing the pods' partial results into pod 0: one C-wide row per cycle, plus one for the last write."""
    return m * ceil_div(n, cols) + 1


def _count(n: int, p: int, pods: int) -> int:
    """How many of the indices ``0 .. n-1`` are congruent to ``p`` modulo ``pods`` (round-robin share)."""
    return max(0, ceil_div(n - p, pods))


def _chunk(total: int, p: int, pods: int) -> int:
    """Length of contiguous chunk ``p`` when ``total`` is cut into ``pods`` chunks of ceil(total/pods)."""
    size = ceil_div(total, pods)
    return max(0, min(size, total - p * size))


@dataclass(frozen=True)
class PodWork:
    """What one pod does: its tiles and cycles, the part of the GEMM it covers, its buffer accesses.

    SRAM counts are the elements the schedule of RTL_TIMING.md moves (padding zeros are generated, not
    read): ``a_reads``/``b_reads`` operand words, ``c_writes``/``c_reads`` accumulator words (a ws
    K-tile after the pod's first one in a panel reads the old partial sum before writing it back).
    """

    tiles: int = 0
    cycles: int = 0
    macs: int = 0
    m: int = 0  # GEMM rows the pod covers
    k: int = 0  # reduction length the pod covers (the longest over its panels)
    n: int = 0  # output columns the pod covers
    panels: int = 0  # N panels the pod visits
    m_tiles: int = 0  # os: M-tiles per panel the pod visits
    a_reads: int = 0
    b_reads: int = 0
    c_writes: int = 0
    c_reads: int = 0
    k_tiles: int = 0  # ws: the most K-tiles the pod runs in one panel


@dataclass(frozen=True)
class RtlRun:
    """The start-to-done schedule of one GEMM on a ``pods x rows x cols`` array."""

    dataflow: str
    split: str
    rows: int
    cols: int
    pods: tuple[PodWork, ...]
    reduce: int
    m: int = 0
    n: int = 0

    @property
    def run(self) -> int:
        return max(p.cycles for p in self.pods)

    @property
    def cycles(self) -> int:
        """Cycles from the edge that samples ``start`` to the first edge after which ``done`` is high."""
        return 1 + self.run + 1 + self.reduce

    @property
    def macs(self) -> int:
        return sum(p.macs for p in self.pods)

    @property
    def active_pods(self) -> int:
        return sum(1 for p in self.pods if p.tiles)

    @property
    def reduce_reads(self) -> int:
        """Accumulator words REDUCE reads (one per pod with work per output)."""
        return self.active_pods * self.m * self.n if self.reduce else 0

    @property
    def reduce_writes(self) -> int:
        return self.m * self.n if self.reduce else 0

    @property
    def utilization(self) -> float:
        return self.macs / (self.cycles * len(self.pods) * self.rows * self.cols)


def plan(m: int, k: int, n: int, *, rows: int, cols: int, dataflow: str, pods: int = 1, split: str = "n",
         k_eff: Sequence[int] | None = None) -> RtlRun:
    """The schedule of ``C[m x n] = A[m x k] B[k x n]``.

    ``k_eff`` (one entry per N panel of ``cols`` columns; for ``is`` one entry for the whole GEMM) is
    the reduction length left after block sparsity; ``None`` means dense (``k`` everywhere).
    """
    for what, v in (("M", m), ("K", k), ("N", n), ("ROWS", rows), ("COLS", cols), ("PODS", pods)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise must(what, "a positive integer", v)
    if dataflow not in DATAFLOWS:
        raise must("DATAFLOW", "one of the listed choices", dataflow, DATAFLOWS)
    if split not in SPLITS:
        raise must("SPLIT", "one of the listed choices", split, SPLITS)
    if dataflow == "is":
        # the ws array on the transposed GEMM: rows <-> columns of the output swap roles
        t_split = {"n": "m", "m": "n", "k": "k"}[split]
        if k_eff is not None:
            # the weights are now the streamed operand: only K block-rows that are zero in every output
            # column can be skipped, so the caller passes one length for the whole GEMM
            if len(k_eff) != 1:
                raise ValueError("for the is dataflow k_eff holds one reduction length")
            k_eff = [k_eff[0]] * ceil_div(m, cols)
        t = plan(n, k, m, rows=rows, cols=cols, dataflow="ws", pods=pods, split=t_split, k_eff=k_eff)
        # in the transposed run A and B swap places
        swapped = tuple(PodWork(**{**p.__dict__, "a_reads": p.b_reads, "b_reads": p.a_reads,
                                   "m": p.n, "n": p.m}) for p in t.pods)
        return RtlRun("is", split, rows, cols, swapped, t.reduce, m, n)
    n_panels = ceil_div(n, cols)
    if k_eff is None:
        keff = [k] * n_panels
    else:
        if len(k_eff) != n_panels:
            raise ValueError(f"k_eff has {len(k_eff)} panels, the GEMM has {n_panels}")
        keff = [min(k, max(0, int(x))) for x in k_eff]
    widths = [min(cols, n - j * cols) for j in range(n_panels)]
    pod_fn = _ws_pod if dataflow == "ws" else _os_pod
    work = tuple(pod_fn(p, pods, split, m, keff, widths, rows, cols) for p in range(pods))
    red = reduce_cycles(m, n, cols) if split == "k" and pods > 1 else 0
    return RtlRun(dataflow, split, rows, cols, work, red, m, n)


def _ws_panel(m: int, kk: int, w: int, nk: int) -> tuple[int, int, int, int]:
    """SRAM words of ``nk`` K-tiles covering ``kk`` reduction rows of a ``w``-wide panel, ``m`` rows."""
    return m * kk, kk * w, nk * m * w, (nk - 1) * m * w


def _ws_pod(p: int, pods: int, split: str, m: int, keff: list[int], widths: list[int], rows: int,
            cols: int) -> PodWork:
    panels = range(len(widths))
    if split in ("n", "m"):
        mine = [j for j in panels if j % pods == p] if split == "n" else list(panels)
        mp = m if split == "n" else _chunk(m, p, pods)
        if not mine or mp == 0:
            return PodWork()
        tiles = a = b = cw = cr = nk_max = 0
        for j in mine:
            nk = max(1, ceil_div(keff[j], rows))
            da, db, dcw, dcr = _ws_panel(mp, keff[j], widths[j], nk)
            tiles, a, b, cw, cr = tiles + nk, a + da, b + db, cw + dcw, cr + dcr
            nk_max = max(nk_max, nk)
        return PodWork(tiles, tiles * ws_tile_cycles(mp, rows, cols), sum(mp * keff[j] * widths[j] for j in mine),
                       mp, max(keff[j] for j in mine), sum(widths[j] for j in mine), len(mine), 0, a, b, cw, cr,
                       nk_max)
    tiles = a = b = cw = cr = macs = kcov = n_cov = n_pan = nk_max = 0
    for j in panels:
        nk = max(1, ceil_div(keff[j], rows))
        share = _count(nk, p, pods)
        if share == 0:
            continue
        # reduction rows of the pod's K-tiles in this panel (the last K-tile may be partial)
        covered = sum(max(0, min(rows, keff[j] - i * rows)) for i in range(p, nk, pods))
        da, db, dcw, dcr = _ws_panel(m, covered, widths[j], share)
        tiles, a, b, cw, cr = tiles + share, a + da, b + db, cw + dcw, cr + dcr
        macs += m * covered * widths[j]
        kcov = max(kcov, covered)
        n_cov += widths[j]
        n_pan += 1
        nk_max = max(nk_max, share)
    if tiles == 0:
        return PodWork()
    return PodWork(tiles, tiles * ws_tile_cycles(m, rows, cols), macs, m, kcov, n_cov, n_pan, 0, a, b, cw, cr,
                   nk_max)


def _os_pod(p: int, pods: int, split: str, m: int, keff: list[int], widths: list[int], rows: int,
            cols: int) -> PodWork:
    panels = range(len(widths))
    m_tiles = ceil_div(m, rows)
    if split == "n":
        mine = [j for j in panels if j % pods == p]
        if not mine:
            return PodWork()
        kmine = {j: keff[j] for j in mine}
        mt, mp = m_tiles, m
    elif split == "m":
        mine_m = [i for i in range(m_tiles) if i % pods == p]
        if not mine_m:
            return PodWork()
        mine = list(panels)
        kmine = {j: keff[j] for j in mine}
        mt, mp = len(mine_m), sum(min(rows, m - i * rows) for i in mine_m)
    else:
        # each panel's reduction is cut into contiguous chunks; a panel that is entirely zero still
        # runs on pod 0 so that its outputs are written
        kmine = {j: _chunk(keff[j], p, pods) for j in panels}
        mine = [j for j in panels if kmine[j] > 0 or (p == 0 and keff[j] == 0)]
        if not mine:
            return PodWork()
        mt, mp = m_tiles, m
    cyc = sum(mt * os_tile_cycles(kmine[j], rows, cols) for j in mine)
    return PodWork(mt * len(mine), cyc, sum(mp * kmine[j] * widths[j] for j in mine), mp,
                   max(kmine[j] for j in mine), sum(widths[j] for j in mine), len(mine), mt,
                   sum(mp * kmine[j] for j in mine), sum(mt * kmine[j] * widths[j] for j in mine),
                   sum(mp * widths[j] for j in mine), 0, 0)


def gemm_cycles(m: int, k: int, n: int, *, rows: int, cols: int, dataflow: str, pods: int = 1,
                split: str = "n") -> int:
    """Start-to-done cycles of one dense GEMM: the number the cocotb benches of the RTL must see."""
    return plan(m, k, n, rows=rows, cols=cols, dataflow=dataflow, pods=pods, split=split).cycles
