"""Goldenbrick tables: the one place where expected products are computed.

Operand *codes* are bit patterns: a code ``c`` of a ``w``-bit signed operand stands for the
two's-complement value of ``c``; an unsigned code is its own value. Tables are indexed by codes:
``table[a_code, b_code] = value(a) * value(b)``. Input vectors are numbered ``v = (a_code << wb) | b_code``,
so ``table.ravel()[v]`` is the product of vector ``v``. The evolution's evaluator, the cocotb
benches and every WCE check read these functions.
"""

from __future__ import annotations

import math

import numpy as np


def values(width: int, is_signed: bool) -> np.ndarray:
    """The value of every code ``0 .. 2**width - 1`` (int64)."""
    codes = np.arange(1 << width, dtype=np.int64)
    if is_signed:
        codes = np.where(codes >= 1 << (width - 1), codes - (1 << width), codes)
    return codes


def decode(codes: np.ndarray, width: int, is_signed: bool) -> np.ndarray:
    """Values of ``width``-bit output codes (int64)."""
    codes = np.asarray(codes, dtype=np.int64) & ((1 << width) - 1)
    if is_signed:
        codes = np.where(codes >= 1 << (width - 1), codes - (1 << width), codes)
    return codes


def encode(vals: np.ndarray, width: int) -> np.ndarray:
    """Codes (bit patterns) of values in ``width`` bits, two's complement for negatives."""
    return np.asarray(vals, dtype=np.int64) & ((1 << width) - 1)


def table(wa: int, wb: int, is_signed: bool) -> np.ndarray:
    """The exact product table, shape ``(2**wa, 2**wb)``, int64."""
    t = np.outer(values(wa, is_signed), values(wb, is_signed))
    bound = max_product(wa, wb, is_signed)
    assert int(np.abs(t).max()) <= bound, "closed-form bound on |a*b| violated"
    return t


def max_product(wa: int, wb: int, is_signed: bool) -> int:
    """max |a*b|: 2**(wa+wb-2) signed (reached by the two most negative operands), else (2**wa-1)(2**wb-1)."""
    if is_signed:
        return 1 << (wa + wb - 2)
    return ((1 << wa) - 1) * ((1 << wb) - 1)


def norm(wa: int, wb: int, is_signed: bool) -> int:
    """N, the error normalisation of EvoApproxLib and CircuitsDNA: 2**(wa+wb-2) signed, 2**(wa+wb) unsigned."""
    return 1 << (wa + wb - 2) if is_signed else 1 << (wa + wb)


def wce_limit(eps: float, wa: int, wb: int, is_signed: bool) -> int:
    """The largest worst-case error allowed: floor(EPS * N)."""
    return math.floor(eps * norm(wa, wb, is_signed) + 1e-9)


def vector_codes(wa: int, wb: int, vectors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Operand codes of vectors ``v = (a << wb) | b`` (all of them by default)."""
    if vectors is None:
        vectors = np.arange(1 << (wa + wb), dtype=np.int64)
    vectors = np.asarray(vectors, dtype=np.int64)
    return vectors >> wb, vectors & ((1 << wb) - 1)
