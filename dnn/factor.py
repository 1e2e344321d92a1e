"""Exact integer low-rank factorisation of product tables.

A product table restricted to the activation codes a layer can produce, ``T[a, w]``, is written as
``T = U @ V`` with *integer* ``U`` (codes x r) and ``V`` (r x columns). Because both factors are
integers, a convolution of ``U(activations)`` with ``V(weights)`` in floating point is exact as long
as every partial sum stays below 2**24 (float32), which :func:`float32_safe` checks. This turns a table
look-up per product into ``r`` ordinary multiply-accumulates per product, which is what makes LUT
inference run at close to the speed of the exact network.

The factors come from an integer echelon basis of the table's row lattice (rows reduced by extended
Euclid steps), so every row is an integer combination of the basis: no rounding anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_LIMIT = 1 << 40  # give up (the caller falls back to gathering) before int64 could overflow


@dataclass(frozen=True)
class Factors:
    """``table == u @ v`` exactly; ``u`` is (rows, rank) and ``v`` is (rank, columns), both int64."""

    u: np.ndarray
    v: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.u.shape[1])


def _echelon(m: np.ndarray, max_rank: int) -> tuple[np.ndarray, list[int]] | None:
    """Integer row-echelon basis of the row lattice of ``m``, or None when its rank exceeds ``max_rank``."""
    rows = [r for r in m.astype(np.int64) if r.any()]
    basis: list[np.ndarray] = []
    pivots: list[int] = []
    col = 0
    n = m.shape[1]
    while rows and col < n:
        live = [r for r in rows if r[col] != 0]
        if not live:
            col += 1
            continue
        rest = [r for r in rows if r[col] == 0]
        while len(live) > 1:
            live.sort(key=lambda r: abs(int(r[col])))
            p = live[0]
            nxt = [p]
            for r in live[1:]:
                q = int(r[col]) // int(p[col])
                r = r - q * p
                if np.abs(r).max(initial=0) >= _LIMIT:
                    return None
                if r[col] != 0:
                    nxt.append(r)
                elif r.any():
                    rest.append(r)
            live = nxt
        p = live[0]
        if p[col] < 0:
            p = -p
        basis.append(p)
        pivots.append(col)
        if len(basis) > max_rank:
            return None
        rows = rest
        col += 1
    if not basis:
        return np.zeros((0, n), dtype=np.int64), []
    return np.stack(basis), pivots


def factorise(table: np.ndarray, max_rank: int = 64) -> Factors | None:
    """Exact integer factors of ``table`` with the lattice rank as inner size, or None if it is larger
    than ``max_rank`` (or the integers grow too large to be useful).

    Two constructions are tried and the one with the smaller worst-case term (max over entries of
    sum_j |U_j| |V_j|, which sets how soon float32 sums must be split) is kept: a basis made of the
    table's own rows when every other row is an integer combination of them (typical of multipliers
    that drop or alter partial products), and an integer echelon basis of the row lattice (always
    exists). Both are then improved by pairwise size reduction.
    """
    table = np.asarray(table, dtype=np.int64)
    found = [f for f in (_row_basis(table, max_rank), _lattice(table, max_rank)) if f is not None]
    if not found:
        return None
    return min((_reduce(f) for f in found), key=_term)


def _term(f: Factors) -> float:
    if f.rank == 0:
        return 0.0
    return float((np.abs(f.u).astype(np.float64) @ np.abs(f.v).astype(np.float64)).max())


def _reduce(f: Factors, rounds: int = 4) -> Factors:
    """Unimodular pairwise updates (V_i -= q V_j, U_j += q U_i) while they lower the worst term."""
    u, v = f.u.copy(), f.v.copy()
    best = _term(Factors(u, v))
    for _ in range(rounds):
        improved = False
        for i in range(v.shape[0]):
            for j in range(v.shape[0]):
                if i == j or not v[j].any():
                    continue
                q0 = int(np.round(np.dot(v[i], v[j]) / max(1, np.dot(v[j], v[j]))))
                for q in {q0, 1, -1} - {0}:
                    nv, nu = v.copy(), u.copy()
                    nv[i] = v[i] - q * v[j]
                    nu[:, j] = u[:, j] + q * u[:, i]
                    t = _term(Factors(nu, nv))
                    if t < best:
                        u, v, best, improved = nu, nv, t, True
                        break
        if not improved:
            break
    return Factors(u, v)


def _row_basis(table: np.ndarray, max_rank: int) -> Factors | None:
    """Rows of the table itself as the basis, if every row is an integer combination of them."""
    order = np.argsort(np.abs(table).sum(axis=1), kind="stable")
    chosen: list[int] = []
    for i in order:
        if not table[i].any():
            continue
        trial = table[[*chosen, i]].astype(np.float64)
        if np.linalg.matrix_rank(trial) > len(chosen):
            chosen.append(int(i))
            if len(chosen) > max_rank:
                return None
    if not chosen:
        return Factors(np.zeros((table.shape[0], 0), np.int64), np.zeros((0, table.shape[1]), np.int64))
    basis = table[chosen]
    coef, *_ = np.linalg.lstsq(basis.T.astype(np.float64), table.T.astype(np.float64), rcond=None)
    u = np.round(coef.T).astype(np.int64)
    if np.abs(u).max(initial=0) >= _LIMIT or not np.array_equal(u @ basis, table):
        return None
    return Factors(u, basis.copy())


def _lattice(table: np.ndarray, max_rank: int) -> Factors | None:
    found = _echelon(table, max_rank)
    if found is None:
        return None
    basis, pivots = found
    # size-reduce each basis row against the later ones, which keeps the coefficients small
    for j in range(len(pivots) - 1, -1, -1):
        for i in range(j):
            q = int(np.floor(basis[i, pivots[j]] / basis[j, pivots[j]] + 0.5))
            if q:
                basis[i] = basis[i] - q * basis[j]
    u = np.zeros((table.shape[0], len(pivots)), dtype=np.int64)
    residual = table.copy()
    for j, p in enumerate(pivots):
        piv = basis[j, p]
        col = residual[:, p]
        if np.any(col % piv):
            return None  # cannot happen for a lattice basis; kept as a guard
        u[:, j] = col // piv
        residual -= np.outer(u[:, j], basis[j])
    if residual.any():
        return None
    return Factors(u=u, v=basis)


def float32_safe(u: np.ndarray, v_abs_sums: np.ndarray) -> bool:
    """True when every partial sum of sum_k sum_j U_j(a_k) V_j(w_k) is an integer below 2**24.

    ``v_abs_sums[j, o]`` is sum over the reduction of |V_j(w)| for output ``o``; the bound is
    sum_j max|U_j| * v_abs_sums[j, o] for the worst output.
    """
    bound = (np.abs(u).max(axis=0).astype(np.float64)[:, None] * v_abs_sums).sum(axis=0)
    return bool(bound.max(initial=0.0) < 2.0**24)
