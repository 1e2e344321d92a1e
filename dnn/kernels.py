"""Compiled kernel for the error part of LUT products whose error table has high rank.

``conv_error`` sums, for every output position and filter, the error-table entries of all the products
that make it up, reading activations straight from the padded input (no im2col copy). The table is laid
out ``[k, a, o]`` (k: input position in the receptive field, a: activation index, o: filter), its filter
axis padded to a multiple of ``LANES`` so that one product position adds whole 16-lane vectors
(:func:`add_lanes`, one AVX2 operation each for int16). The caller's tables hold ``E[a, w] - E[0, w]``,
whose a = 0 row is zero, and start the accumulators at the filters' sums of ``E[0, w]``.

Loop order: output positions are taken ``ptile`` at a time; for each k the tile's rows are added into a
tile of narrow accumulators of the table's own dtype (int16 when the entries fit), the k-slice of the
table (``Da`` rows) staying in L1 and no addition waiting on another. After every ``run`` values of k
the narrow tile is added into the wide accumulators; ``run`` comes from the table's largest entry
(:func:`run_length`), so no narrow accumulator can overflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

LANES = 16  # vector width of one table row step: 16 int16 = one 256-bit AVX2 register
PTILE = 256  # output positions per tile: the int16 tile of 64 filters is 32 KiB


def _add_lanes(typingctx: Any, acc: Any, i: Any, src: Any, j: Any) -> Any:  # pragma: no cover - compiled
    """``acc.flat[i:i + LANES] += src.flat[j:j + LANES]`` as one LLVM vector operation, ``src`` widened by
    sign extension to ``acc``'s signed integer type. No bounds checks: the caller keeps both in range."""
    if not (isinstance(acc, types.Array) and isinstance(src, types.Array)):
        return None
    acc_type: Any = acc.dtype
    src_type: Any = src.dtype
    if not (acc_type in types.signed_domain and src_type in types.signed_domain
            and acc_type.bitwidth >= src_type.bitwidth):
        return None
    acc_bits, src_bits = int(acc_type.bitwidth), int(src_type.bitwidth)
    sig = types.void(acc, i, src, j)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        acc_v, i_v, src_v, j_v = args
        a = context.make_array(signature.args[0])(context, builder, acc_v)
        s = context.make_array(signature.args[2])(context, builder, src_v)
        i_v = context.cast(builder, i_v, signature.args[1], types.intp)
        j_v = context.cast(builder, j_v, signature.args[3], types.intp)
        vs = ir.VectorType(ir.IntType(src_bits), LANES)
        va = ir.VectorType(ir.IntType(acc_bits), LANES)
        ps = builder.bitcast(builder.gep(s.data, [j_v]), vs.as_pointer())
        pa = builder.bitcast(builder.gep(a.data, [i_v]), va.as_pointer())
        v = builder.load(ps, align=src_bits // 8)
        if acc_bits > src_bits:
            v = builder.sext(v, va)
        builder.store(builder.add(builder.load(pa, align=acc_bits // 8), v), pa, align=acc_bits // 8)
        return context.get_dummy_value()

    return sig, codegen


add_lanes: Any = intrinsic(_add_lanes)
HALF = LANES // 2  # a run of at most HALF filters: two output positions share one vector


def _add_halves(typingctx: Any, acc: Any, i: Any, src: Any, j0: Any, j1: Any) -> Any:  # pragma: no cover
    """``acc.flat[i:i + LANES] += src.flat[j0:j0 + HALF] ++ src.flat[j1:j1 + HALF]``: two half rows (two
    output positions of a run of at most HALF filters) in one vector addition; same integer type."""
    if not (isinstance(acc, types.Array) and isinstance(src, types.Array) and acc.dtype == src.dtype
            and acc.dtype in types.signed_domain):
        return None
    bits = int(acc.dtype.bitwidth)
    sig = types.void(acc, i, src, j0, j1)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        acc_v, i_v, src_v, j0_v, j1_v = args
        a = context.make_array(signature.args[0])(context, builder, acc_v)
        s = context.make_array(signature.args[2])(context, builder, src_v)
        i_v = context.cast(builder, i_v, signature.args[1], types.intp)
        j0_v = context.cast(builder, j0_v, signature.args[3], types.intp)
        j1_v = context.cast(builder, j1_v, signature.args[4], types.intp)
        vh = ir.VectorType(ir.IntType(bits), HALF)
        vf = ir.VectorType(ir.IntType(bits), LANES)
        lo = builder.load(builder.bitcast(builder.gep(s.data, [j0_v]), vh.as_pointer()), align=bits // 8)
        hi = builder.load(builder.bitcast(builder.gep(s.data, [j1_v]), vh.as_pointer()), align=bits // 8)
        both = builder.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(ir.IntType(32), LANES), list(range(LANES))))
        pa = builder.bitcast(builder.gep(a.data, [i_v]), vf.as_pointer())
        builder.store(builder.add(builder.load(pa, align=bits // 8), both), pa, align=bits // 8)
        return context.get_dummy_value()

    return sig, codegen


add_halves: Any = intrinsic(_add_halves)


@njit(inline="always", boundscheck=False, error_model="numpy")
def _add_rows(acc, tf, xf, base, pn, off, tk, op):  # pragma: no cover - compiled
    """For each position q < pn of the tile: acc row q += table row of activation ``xf[base[q] + off]``
    (flat table offset ``tk + x * op``). Unrolled for 1, 2 and 4 vectors of filters; unsigned indices
    spare numba's negative-index wraparound."""
    if op == LANES:
        for q in range(pn):
            add_lanes(acc, q * LANES, tf, tk + xf[np.uint64(base[q] + off)] * LANES)
    elif op == 2 * LANES:
        for q in range(pn):
            r = tk + xf[np.uint64(base[q] + off)] * (2 * LANES)
            add_lanes(acc, q * (2 * LANES), tf, r)
            add_lanes(acc, q * (2 * LANES) + LANES, tf, r + LANES)
    elif op == 4 * LANES:
        for q in range(pn):
            r = tk + xf[np.uint64(base[q] + off)] * (4 * LANES)
            add_lanes(acc, q * (4 * LANES), tf, r)
            add_lanes(acc, q * (4 * LANES) + LANES, tf, r + LANES)
            add_lanes(acc, q * (4 * LANES) + 2 * LANES, tf, r + 2 * LANES)
            add_lanes(acc, q * (4 * LANES) + 3 * LANES, tf, r + 3 * LANES)
    elif op == HALF:  # runs of at most HALF filters: two positions per vector (the tile holds an even count)
        for q in range(0, pn, 2):
            add_halves(acc, q * HALF, tf, tk + xf[np.uint64(base[q] + off)] * HALF,
                       tk + xf[np.uint64(base[q + 1] + off)] * HALF)
    else:
        for q in range(pn):
            r = tk + xf[np.uint64(base[q] + off)] * op
            for f0 in range(0, op, LANES):
                add_lanes(acc, q * op + f0, tf, r + f0)


@njit(inline="always", boundscheck=False, error_model="numpy")
def _tile_bases(base, p0, pn, ho, wo, c, h, w, stride):  # pragma: no cover - compiled
    """base[q]: offset in x of the receptive field of output position p0 + q (N, Ho, Wo order)."""
    for q in range(pn):
        b, r = divmod(p0 + q, ho * wo)
        oy, ox = divmod(r, wo)
        base[q] = (b * c * h + oy * stride) * w + ox * stride


@njit(cache=True, boundscheck=False, error_model="numpy")
def conv_error(x, table, a_lo, kh, kw, stride, out, run, ptile):  # pragma: no cover - compiled
    """x (N, C, H, W) int16 activation values (already padded; a matrix product is a 1x1 convolution of
    (N, K, 1, 1)); table (C*kh*kw, Da, Op) int16/int32 with Op a multiple of LANES; out (N, Ho, Wo, Op)
    int32/int64 accumulators holding their start values. ``run``: how many k the narrow (table dtype)
    tile accumulates before it is added into ``out``; ``ptile``: output positions per tile."""
    n, c, h, w = x.shape
    nk, da, op = table.shape
    ho, wo = out.shape[1], out.shape[2]
    npos = n * ho * wo
    of = out.reshape(-1)
    tf = table.reshape(-1)
    xf = x.reshape(-1)
    base = np.empty(ptile, np.int64)  # offset in x of each tile position's receptive field
    acc = np.empty(ptile * op, table.dtype)
    for p0 in range(0, npos, ptile):
        pn = min(npos, p0 + ptile) - p0
        _tile_bases(base, p0, pn, ho, wo, c, h, w, stride)
        for k0 in range(0, nk, run):
            acc[:pn * op] = 0
            for k in range(k0, min(nk, k0 + run)):
                ci, ij = divmod(k, kh * kw)
                i, j = divmod(ij, kw)
                _add_rows(acc, tf, xf, base, pn, (ci * h + i) * w + j, (k * da - a_lo) * op, op)
            for q in range(pn):
                for f0 in range(0, op, LANES):
                    add_lanes(of, (p0 + q) * op + f0, acc, q * op + f0)
    return out


def padded(o: int) -> int:
    """Filters rounded up to whole vectors of LANES."""
    return -(-o // LANES) * LANES


def run_width(f: int) -> int:
    """Lanes of a run of ``f`` kept filters in :func:`conv_error_runs`: HALF, or whole vectors."""
    return HALF if f <= HALF else padded(f)


def table_dtype(err_max: float) -> type:
    return np.int16 if err_max < (1 << 15) else np.int32


def acc_dtype(bound: float) -> type:
    return np.int32 if bound < (1 << 31) else np.int64


def run_length(table: np.ndarray) -> int:
    """How many rows of ``table`` can be summed in its own dtype without overflow: each k adds one row,
    so ``run`` k add at most ``run * max|table|`` to any accumulator."""
    top = max(int(table.max(initial=0)), -int(table.min(initial=0)))  # no |.| in the dtype: it could overflow
    return max(1, int(np.iinfo(table.dtype).max) // max(1, top))


@njit(cache=True, boundscheck=False, error_model="numpy")
def conv_error_runs(x, tables, toff, k0s, k1s, fps, fidx, foff, runs, da, a_lo, kh, kw, stride, out,
                    ptile):  # pragma: no cover - compiled
    """:func:`conv_error` for a block-sparse layer: the reduction is cut into runs of input positions
    ``k0s[r]..k1s[r]-1`` (whole input channels) that feed the same filters ``fidx[foff[r]:foff[r+1]]``.
    Run ``r``'s table is ``tables[toff[r]:]`` laid out ``(k1s[r] - k0s[r], da, fps[r])``, its kept filters
    compacted and padded to ``fps[r]`` lanes (``HALF`` for runs of at most HALF filters, whose rows two
    output positions add in one vector: a run of one out-block of 8 filters costs half a dense row);
    ``runs[r]`` k are summed in the table's dtype before widening. Runs are the outer loop, so one run's
    table (kept small by the caller) stays in cache over every tile of positions. Positions of other
    runs' filters are never touched: their products are not computed."""
    n, c, h, w = x.shape
    ho, wo, op = out.shape[1], out.shape[2], out.shape[3]
    npos = n * ho * wo
    of = out.reshape(-1)
    xf = x.reshape(-1)
    nr = len(k0s)
    fmax = 0
    for r in range(nr):
        fmax = max(fmax, fps[r])
    base = np.empty(ptile + 1, np.int64)
    acc = np.empty((ptile + 1) * fmax, tables.dtype)
    wide = np.empty((ptile + 1) * fmax, out.dtype)
    for r in range(nr):  # runs outside: one run's table (a block of input channels) stays in cache
        fp = fps[r]
        f_lo, f_hi = foff[r], foff[r + 1]
        for p0 in range(0, npos, ptile):
            pn = min(npos, p0 + ptile) - p0
            _tile_bases(base, p0, pn, ho, wo, c, h, w, stride)
            if pn % 2:  # a half run adds positions in pairs: the odd last one reads a copy of its neighbour
                base[pn] = base[pn - 1]
            pe = pn + pn % 2
            wide[:pe * fp] = 0
            for kk in range(k0s[r], k1s[r], runs[r]):
                acc[:pe * fp] = 0
                for k in range(kk, min(k1s[r], kk + runs[r])):
                    ci, ij = divmod(k, kh * kw)
                    i, j = divmod(ij, kw)
                    _add_rows(acc, tables, xf, base, pe, (ci * h + i) * w + j,
                              toff[r] + ((k - k0s[r]) * da - a_lo) * fp, fp)
                for t in range(0, pe * fp, LANES):  # pe * fp is a multiple of LANES
                    add_lanes(wide, t, acc, t)
            for q in range(pn):
                o = (p0 + q) * op
                for f in range(f_hi - f_lo):
                    of[o + fidx[f_lo + f]] += wide[q * fp + f]
    return out
