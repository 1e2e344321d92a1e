"""A cycle-by-cycle behavioural model of ``MultiPodArray`` exactly as RTL_TIMING.md describes it.

It steps every register of every PE, the pods' tile sequencers and the top controller one clock at a
time, computes ``Cout`` with the PE multiplier given as a product table, and counts cycles from
``start`` to ``done``. It is slow (pure Python, for small shapes) and exists to show that the timing
contract is consistent and implementable: its cycle count must equal :func:`rtl_cycles.gemm_cycles`
and its result the table-based GEMM (``tests/test_accel_rtl.py``). The issue-5 benches can use it as
a golden model for both values and cycles.

Operands are integer *codes* indexing the product table ``lut[a_code, b_code]`` (for the exact
multiplier, pass the values and ``lut=None``). Padding carries a valid bit of 0 and a PE only adds a
product when both its operands are valid, so a table with non-zero entries for zero operands (an
approximate multiplier) cannot leak into the sums.
"""

from __future__ import annotations

import numpy as np

from rtl_gen.rtl_cycles import ceil_div


class _Mult:
    def __init__(self, lut: np.ndarray | None):
        self.lut = lut

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.lut is None:
            return a.astype(np.int64) * b.astype(np.int64)
        return self.lut[a, b].astype(np.int64)


def _feed(n: int, value) -> tuple[np.ndarray, np.ndarray]:
    """Values and valid bits of ``n`` feeder lanes; ``value(i)`` is None for an invalid lane."""
    vals = np.zeros(n, dtype=np.int64)
    valid = np.zeros(n, dtype=bool)
    for i in range(n):
        v = value(i)
        if v is not None:
            vals[i], valid[i] = v, True
    return vals, valid


class _Pod:
    """One pod: an R x C array, its tile sequencer and its C bank."""

    def __init__(self, A: np.ndarray, B: np.ndarray, R: int, C: int, dataflow: str, mult: _Mult, mask: int):
        self.A, self.B, self.R, self.C, self.df, self.mult, self.mask = A, B, R, C, dataflow, mult, mask
        M, N = A.shape[0], B.shape[1]
        self.bank = np.zeros((M, N), dtype=np.int64)
        self.written = np.zeros((M, N), dtype=bool)
        self.tiles: list[tuple] = []
        self.phase = "IDLE"
        self.count = 0
        # PE registers: activation (and os: weight) pipeline with valid bits, weights, partial sums
        self.a = np.zeros((R, C), dtype=np.int64)
        self.av = np.zeros((R, C), dtype=bool)
        self.b = np.zeros((R, C), dtype=np.int64)
        self.bv = np.zeros((R, C), dtype=bool)
        self.w = np.zeros((R, C), dtype=np.int64)
        self.wv = np.zeros((R, C), dtype=bool)
        self.p = np.zeros((R, C), dtype=np.int64)
        self.acc = np.zeros((R, C), dtype=np.int64)

    @property
    def busy(self) -> bool:
        return self.phase != "IDLE"

    def launch(self, tiles: list[tuple]) -> None:
        self.tiles = list(tiles)
        if self.tiles:
            self.phase, self.count = "NEXT", 0

    def step(self) -> None:
        """One clock cycle; the phase register changes at the end of the cycle."""
        if self.phase == "IDLE":
            return
        getattr(self, "_" + self.df + "_" + self.phase.lower())()
        self.count += 1

    # --- weight stationary: tile = (m0, m, k0, first, n0) --------------------------------------

    def _ws_next(self) -> None:
        self.tile = self.tiles.pop(0)
        self.phase, self.count = "LOAD", -1

    def _ws_load(self) -> None:
        _m0, _m, k0, _first, n0 = self.tile
        R, C = self.R, self.C
        l = self.count  # noqa: E741 - the document's name for the LOAD cycle
        k = k0 + R - 1 - l
        row = np.zeros(C, dtype=np.int64)
        valid = np.zeros(C, dtype=bool)
        if k < self.B.shape[0]:
            cols = min(C, self.B.shape[1] - n0)
            row[:cols] = self.B[k, n0:n0 + cols]
            valid[:cols] = True
        self.w[1:], self.wv[1:] = self.w[:-1].copy(), self.wv[:-1].copy()
        self.w[0], self.wv[0] = row, valid
        if l == R - 1:
            self.phase, self.count = "STREAM", -1

    def _ws_stream(self) -> None:
        m0, m, k0, first, n0 = self.tile
        R, C = self.R, self.C
        t = self.count
        # the output unit takes what the bottom row registered in the previous cycle
        for c in range(C):
            i = t - R - c
            n = n0 + c
            if 0 <= i < m and n < self.bank.shape[1]:
                old = 0 if first else self.bank[m0 + i, n]
                self.bank[m0 + i, n] = (old + self.p[R - 1, c]) & self.mask
                self.written[m0 + i, n] = True
        # skewed feed at the left edge: row r gets A[m0 + t - r][k0 + r]
        K = self.A.shape[1]
        feed, fv = _feed(R, lambda r: self.A[m0 + t - r, k0 + r] if 0 <= t - r < m and k0 + r < K else None)
        a_in = np.concatenate([feed[:, None], self.a[:, :-1]], axis=1)
        av_in = np.concatenate([fv[:, None], self.av[:, :-1]], axis=1)
        p_in = np.concatenate([np.zeros((1, C), dtype=np.int64), self.p[:-1]], axis=0)
        prod = np.where(av_in & self.wv, self.mult(a_in, self.w), 0)
        self.p = (p_in + prod) & self.mask
        self.a, self.av = a_in, av_in
        if t == m + R + C - 2:
            self.phase = "NEXT" if self.tiles else "IDLE"
            self.count = -1

    # --- output stationary: tile = (m0, n0, k0, k) ----------------------------------------------

    def _os_next(self) -> None:
        self.tile = self.tiles.pop(0)
        self.phase, self.count = "COMPUTE", -1

    def _os_compute(self) -> None:
        m0, n0, k0, k = self.tile
        R, C = self.R, self.C
        t = self.count
        M, N = self.A.shape[0], self.B.shape[1]
        # row r gets A[m0 + r][k0 + t - r], column c gets B[k0 + t - c][n0 + c]
        fa, fav = _feed(R, lambda r: self.A[m0 + r, k0 + t - r] if 0 <= t - r < k and m0 + r < M else None)
        fb, fbv = _feed(C, lambda c: self.B[k0 + t - c, n0 + c] if 0 <= t - c < k and n0 + c < N else None)
        a_in = np.concatenate([fa[:, None], self.a[:, :-1]], axis=1)
        av_in = np.concatenate([fav[:, None], self.av[:, :-1]], axis=1)
        b_in = np.concatenate([fb[None, :], self.b[:-1]], axis=0)
        bv_in = np.concatenate([fbv[None, :], self.bv[:-1]], axis=0)
        self.acc = (self.acc + np.where(av_in & bv_in, self.mult(a_in, b_in), 0)) & self.mask
        self.a, self.av, self.b, self.bv = a_in, av_in, b_in, bv_in
        if t == k + R + C - 3:
            self.phase, self.count = "DRAIN", -1

    def _os_drain(self) -> None:
        m0, n0, _k0, _k = self.tile
        R, C = self.R, self.C
        d = self.count
        i = m0 + R - 1 - d
        for c in range(C):
            n = n0 + c
            if i < self.bank.shape[0] and n < self.bank.shape[1]:
                self.bank[i, n] = self.acc[R - 1, c]
                self.written[i, n] = True
        self.acc[1:] = self.acc[:-1].copy()
        self.acc[0] = 0
        if d == R - 1:
            self.phase = "NEXT" if self.tiles else "IDLE"
            self.count = -1


def _tiles(p: int, P: int, split: str, df: str, M: int, K: int, N: int, R: int, C: int) -> list[tuple]:
    """The tile list of pod ``p`` in the order of RTL_TIMING.md section 5."""
    Nt, Kt, Mt = ceil_div(N, C), ceil_div(K, R), ceil_div(M, R)
    out: list[tuple] = []
    if df == "ws":
        m0, m = 0, M
        panels, ktiles = list(range(Nt)), list(range(Kt))
        if split == "n":
            panels = [j for j in panels if j % P == p]
        elif split == "m":
            size = ceil_div(M, P)
            m0, m = p * size, max(0, min(size, M - p * size))
            if m == 0:
                return []
        else:
            ktiles = [i for i in ktiles if i % P == p]
        for j in panels:
            for idx, i in enumerate(ktiles):
                out.append((m0, m, i * R, idx == 0, j * C))
        return out
    mtiles, panels = list(range(Mt)), list(range(Nt))
    k0, k = 0, K
    if split == "n":
        panels = [j for j in panels if j % P == p]
    elif split == "m":
        mtiles = [i for i in mtiles if i % P == p]
    else:
        size = ceil_div(K, P)
        k0, k = p * size, max(0, min(size, K - p * size))
        if k == 0:
            return []
    return [(i * R, j * C, k0, k) for i in mtiles for j in panels]


def simulate(A: np.ndarray, B: np.ndarray, *, rows: int, cols: int, dataflow: str, pods: int = 1,
             split: str = "n", lut: np.ndarray | None = None, acc_bits: int = 32) -> tuple[np.ndarray, int]:
    """Run ``Cout = A x B`` on the behavioural array; returns (``Cout`` modulo 2^acc_bits, cycles)."""
    if dataflow not in ("ws", "os"):
        raise ValueError("the RTL arrays are ws or os")
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    M, K = A.shape
    N = B.shape[1]
    mask = (1 << acc_bits) - 1
    mult = _Mult(lut)
    P = pods
    pod = [_Pod(A, B, rows, cols, dataflow, mult, mask) for _ in range(P)]
    # edge 0 samples start; cycle 1 is SETUP, at whose end the pods with work are launched
    cycle = 1
    plans = [_tiles(p, P, split, dataflow, M, K, N, rows, cols) for p in range(P)]
    for p in range(P):
        pod[p].launch(plans[p])
    state = "RUN"
    while True:
        cycle += 1
        if state == "RUN":
            if not any(x.busy for x in pod):
                state = "REDUCE" if split == "k" and P > 1 else "DONE"  # this was the SYNC cycle
                q = 0
            for x in pod:
                x.step()
        elif state == "REDUCE":
            Nt = ceil_div(N, cols)
            # cycle q reads (row, panel) q from every pod that had work; cycle q + 1 writes the sum
            if q >= 1:
                i, j = divmod(q - 1, Nt)
                cs = slice(j * cols, min(N, (j + 1) * cols))
                total = sum(x.bank[i, cs] for x, plan in zip(pod, plans) if plan)
                pod[0].bank[i, cs] = total & mask
            if q == M * Nt:
                state = "DONE"
            q += 1
        if state == "DONE":
            break
    if split == "k" and P > 1:
        out = pod[0].bank
    else:
        out = np.zeros((M, N), dtype=np.int64)
        for x in pod:
            out[x.written] = x.bank[x.written]
    return out & mask, cycle
