"""Compiled kernels for the error part of LUT products whose error table has high rank.

``conv_error`` sums, for every output position and filter, the error-table entries of all the products
that make it up, reading activations straight from the padded input (no im2col copy) and skipping
activations whose error is zero for every weight (0 after ReLU, for most multipliers). The table is
laid out ``[k, a, o]`` so that one product position adds a contiguous row over all filters, which the
compiler vectorises; entries are int16 when they fit, accumulators int32 when the layer's bound allows.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def conv_error(x, table, live, kh, kw, stride, a_lo, out):  # pragma: no cover - compiled
    """x (N, C, H, W) int16 activation values (already padded); table (C*kh*kw, Da, O);
    live (Da,) bool; out (N, Ho, Wo, O) zeroed accumulators."""
    n, c, _, _ = x.shape
    ho, wo, o = out.shape[1], out.shape[2], out.shape[3]
    for b in range(n):
        for oy in range(ho):
            for ox in range(wo):
                acc = out[b, oy, ox]
                k = 0
                for ci in range(c):
                    for i in range(kh):
                        for j in range(kw):
                            a = x[b, ci, oy * stride + i, ox * stride + j] - a_lo
                            if live[a]:
                                row = table[k, a]
                                for f in range(o):
                                    acc[f] += row[f]
                            k += 1
    return out


@njit(cache=True)
def linear_error(x, table, live, a_lo, out):  # pragma: no cover - compiled
    """x (N, K) int16 activation values; table (K, Da, O); out (N, O) zeroed accumulators."""
    n, k = x.shape
    o = out.shape[1]
    for b in range(n):
        acc = out[b]
        for kk in range(k):
            a = x[b, kk] - a_lo
            if live[a]:
                row = table[kk, a]
                for f in range(o):
                    acc[f] += row[f]
    return out


def table_dtype(err_max: float) -> type:
    return np.int16 if err_max < (1 << 15) else np.int32


def acc_dtype(bound: float) -> type:
    return np.int32 if bound < (1 << 31) else np.int64
