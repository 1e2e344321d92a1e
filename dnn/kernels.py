"""Compiled kernels for the error part of LUT products whose error table has high rank.

``conv_error`` sums, for every output position and filter, the error-table entries of all the products
that make it up, reading activations straight from the padded input (no im2col copy) and skipping
activations whose table row is zero for every weight (0 after ReLU: the caller's tables hold
``E[a, w] - E[0, w]`` and start the accumulators at the filters' sums of ``E[0, w]``). The table is
laid out ``[k, a, o]`` so that one product position adds a contiguous row over all filters, which the
compiler vectorises; entries are int16 when they fit, accumulators int32 when the layer's bound allows.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def conv_error(x, table, live, kh, kw, stride, a_lo, out, cblock):  # pragma: no cover - compiled
    """x (N, C, H, W) int16 activation values (already padded); table (C*kh*kw, Da, O);
    live (Da,) bool; out (N, Ho, Wo, O) accumulators holding their start values. Input channels are
    taken ``cblock`` at a time, so that their part of the table stays in the L2 cache while every
    output position is visited."""
    n, c, _, _ = x.shape
    ho, wo, o = out.shape[1], out.shape[2], out.shape[3]
    ks = np.empty(cblock * kh * kw, np.int64)  # the live products of one position: (k, a) pairs,
    As = np.empty(cblock * kh * kw, np.int64)  # collected without branches, then summed
    for c0 in range(0, c, cblock):
        c1 = min(c, c0 + cblock)
        for b in range(n):
            for oy in range(ho):
                for ox in range(wo):
                    m = 0
                    for ci in range(c0, c1):
                        for i in range(kh):
                            for j in range(kw):
                                a = x[b, ci, oy * stride + i, ox * stride + j] - a_lo
                                ks[m] = (ci * kh + i) * kw + j
                                As[m] = a
                                m += live[a]
                    acc = out[b, oy, ox]
                    for t in range(m):
                        row = table[ks[t], As[t]]
                        for f in range(o):
                            acc[f] += row[f]
    return out


@njit(cache=True)
def linear_error(x, table, live, a_lo, out, kblock):  # pragma: no cover - compiled
    """x (N, K) int16 activation values; table (K, Da, O); out (N, O) accumulators holding their start
    values; ``kblock`` inputs at a time (see :func:`conv_error`)."""
    n, k = x.shape
    o = out.shape[1]
    for k0 in range(0, k, kblock):
        k1 = min(k, k0 + kblock)
        for b in range(n):
            acc = out[b]
            for kk in range(k0, k1):
                a = x[b, kk] - a_lo
                if live[a]:
                    row = table[kk, a]
                    for f in range(o):
                        acc[f] += row[f]
    return out


TABLE_BLOCK_BYTES = 256 << 10  # the part of a table one pass keeps hot: half of a 512 KiB L2


def block(table, per: int = 1) -> int:
    """How many table slices of ``per`` rows of k fit in TABLE_BLOCK_BYTES (at least one)."""
    slice_bytes = table.shape[1] * table.shape[2] * table.itemsize * per
    return max(1, TABLE_BLOCK_BYTES // max(1, slice_bytes))


def table_dtype(err_max: float) -> type:
    return np.int16 if err_max < (1 << 15) else np.int32


def acc_dtype(bound: float) -> type:
    return np.int32 if bound < (1 << 31) else np.int64
