"""Compiled kernels for the LUT products that are gathered from tables (:mod:`dnn.lutops`).

They sum, for every output position and filter, table entries of all the products that make it up,
reading activations straight from the padded input (no im2col copy). A table is laid out ``[k, a, o]``
(k: input position in the receptive field, a: activation index, o: filter), its filter axis padded to a
multiple of ``LANES`` so that one product position adds whole 16-lane vectors (:func:`add_lanes`). The
caller's tables hold ``X[a, w] - X[0, w]``, whose a = 0 row is zero, and start the accumulators at the
filters' sums of ``X[0, w]``; X is the error table E (the exact part convolved apart) or the whole
product table T.

``conv_error`` (error tables): output positions are taken ``ptile`` at a time; for each k the tile's
rows are added into a tile of narrow accumulators of the table's own dtype (int16 when the entries
fit), the k-slice of the table (``Da`` rows) staying in L1 and no addition waiting on another. After
every ``run`` values of k the narrow tile is added into the wide accumulators; ``run`` comes from the
table's largest entry (:func:`run_length`), so no narrow accumulator can overflow.

``conv_gather`` (whole products, which would leave int16 runs of 2): the same loop order into a tile of
wide (int32) accumulators, each int16 row widened by sign extension as it is added; the finished tile is
written as the float result. ``conv_gather_runs``: the same for a block-sparse layer, which adds only
the rows of the filters each run of input channels keeps (compacted to whole vectors, or half vectors),
so its work is that of the kept blocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

LANES = 16  # vector width of one table row step: 16 int16 = one 256-bit AVX2 register
PTILE = 256  # output positions per tile: the int16 tile of 64 filters is 32 KiB


def _widening(acc: Any, src: Any) -> tuple[int, int] | None:
    """(acc bits, src bits) when ``acc`` and ``src`` are arrays of signed integers and ``src``'s fit
    ``acc``'s (the intrinsics below widen by sign extension), else None (no such intrinsic)."""
    if not (isinstance(acc, types.Array) and isinstance(src, types.Array)):
        return None
    acc_type: Any = acc.dtype
    src_type: Any = src.dtype
    if not (acc_type in types.signed_domain and src_type in types.signed_domain
            and acc_type.bitwidth >= src_type.bitwidth):
        return None
    return int(acc_type.bitwidth), int(src_type.bitwidth)


def _vector_add(context: Any, builder: Any, signature: Any, args: Any, rows: Any, lanes: int = LANES) -> Any:
    """``acc.flat[i:i + lanes] += rows(s, bits)``: ``rows`` loads the source vector from array ``s`` (the
    third argument) and the fifth and later arguments; it is sign extended to ``acc``'s type and added."""
    acc_bits = int(signature.args[0].dtype.bitwidth)
    src_bits = int(signature.args[2].dtype.bitwidth)
    a = context.make_array(signature.args[0])(context, builder, args[0])
    s = context.make_array(signature.args[2])(context, builder, args[2])
    i_v = context.cast(builder, args[1], signature.args[1], types.intp)
    rest = [context.cast(builder, v, t, types.intp) for v, t in zip(args[3:], signature.args[3:])]
    v = rows(s, src_bits, *rest)
    va = ir.VectorType(ir.IntType(acc_bits), lanes)
    if acc_bits > src_bits:
        v = builder.sext(v, va)
    pa = builder.bitcast(builder.gep(a.data, [i_v]), va.as_pointer())
    builder.store(builder.add(builder.load(pa, align=acc_bits // 8), v), pa, align=acc_bits // 8)
    return context.get_dummy_value()


def _load(builder: Any, s: Any, bits: int, j: Any, lanes: int) -> Any:
    vs = ir.VectorType(ir.IntType(bits), lanes)
    return builder.load(builder.bitcast(builder.gep(s.data, [j]), vs.as_pointer()), align=bits // 8)


def _add_lanes(typingctx: Any, acc: Any, i: Any, src: Any, j: Any) -> Any:  # pragma: no cover - compiled
    """``acc.flat[i:i + LANES] += src.flat[j:j + LANES]`` as one LLVM vector operation, ``src`` widened by
    sign extension to ``acc``'s signed integer type. No bounds checks: the caller keeps both in range."""
    if _widening(acc, src) is None:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return _vector_add(context, builder, signature, args,
                           lambda s, bits, j: _load(builder, s, bits, j, LANES))

    return types.void(acc, i, src, j), codegen


add_lanes: Any = intrinsic(_add_lanes)
HALF = LANES // 2  # a run of at most HALF filters adds half vectors


def _add_half(typingctx: Any, acc: Any, i: Any, src: Any, j: Any) -> Any:  # pragma: no cover - compiled
    """``acc.flat[i:i + HALF] += src.flat[j:j + HALF]``: the row of a run of at most HALF filters as one
    vector of HALF lanes (8 int32 lanes: one AVX2 register, the int16 row widened by one load), ``src``
    widened by sign extension to ``acc``'s signed integer type. No bounds checks."""
    if _widening(acc, src) is None:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return _vector_add(context, builder, signature, args,
                           lambda s, bits, j: _load(builder, s, bits, j, HALF), HALF)

    return types.void(acc, i, src, j), codegen


add_half: Any = intrinsic(_add_half)


def _add_first(typingctx: Any, acc: Any, i: Any, src: Any, j: Any, count: Any) -> Any:  # pragma: no cover
    """``acc.flat[i:i + count] += src.flat[j:j + count]`` for ``count <= LANES``, as one vector addition of
    ``src.flat[j:j + LANES]`` (widened to ``acc``'s type) whose lanes from ``count`` on are zero: the other
    lanes of ``acc`` are read and written back unchanged. No bounds checks: the caller keeps
    ``acc.flat[i:i + LANES]`` and ``src.flat[j:j + LANES]`` in range."""
    if _widening(acc, src) is None:
        return None
    vi = ir.VectorType(ir.IntType(64), LANES)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        def first(s: Any, bits: int, j: Any, n: Any) -> Any:
            splat = builder.insert_element(ir.Constant(vi, None), n, ir.Constant(ir.IntType(32), 0))
            splat = builder.shuffle_vector(splat, ir.Constant(vi, None), ir.Constant(ir.VectorType(
                ir.IntType(32), LANES), [0] * LANES))
            keep = builder.icmp_signed("<", ir.Constant(vi, list(range(LANES))), splat)
            vs = ir.VectorType(ir.IntType(bits), LANES)
            return builder.select(keep, _load(builder, s, bits, j, LANES), ir.Constant(vs, None))

        return _vector_add(context, builder, signature, args, first)

    return types.void(acc, i, src, j, count), codegen


add_first: Any = intrinsic(_add_first)


@njit(inline="always", boundscheck=False, error_model="numpy")
def _add_rows(acc, tf, xf, base, pn, off, tk, op):  # pragma: no cover - compiled
    """For each position q < pn of the tile: acc row q += table row of activation ``xf[base[q] + off]``
    (flat table offset ``tk + x * op``; the rows of acc ``op`` wide)."""
    _add_rows_at(acc, 0, op, tf, xf, base, pn, off, tk, op)


@njit(inline="always", boundscheck=False, error_model="numpy")
def _add_rows_at(acc, a0, stride, tf, xf, base, pn, off, tk, op):  # pragma: no cover - compiled
    """:func:`_add_rows` into the rows of ``acc`` from flat offset ``a0`` on, ``stride`` apart (a run's
    ``op`` lanes into the tile of all filters, from the run's first filter on). Unrolled for 1 to 4 vectors
    of filters and the odd multiples of a half vector below 4; unsigned indices spare numba's
    negative-index wraparound."""
    if op == LANES:
        for q in range(pn):
            add_lanes(acc, a0 + q * stride, tf, tk + xf[np.uint64(base[q] + off)] * LANES)
    elif op == 2 * LANES:
        for q in range(pn):
            r = tk + xf[np.uint64(base[q] + off)] * (2 * LANES)
            add_lanes(acc, a0 + q * stride, tf, r)
            add_lanes(acc, a0 + q * stride + LANES, tf, r + LANES)
    elif op == 4 * LANES:
        for q in range(pn):
            r = tk + xf[np.uint64(base[q] + off)] * (4 * LANES)
            add_lanes(acc, a0 + q * stride, tf, r)
            add_lanes(acc, a0 + q * stride + LANES, tf, r + LANES)
            add_lanes(acc, a0 + q * stride + 2 * LANES, tf, r + 2 * LANES)
            add_lanes(acc, a0 + q * stride + 3 * LANES, tf, r + 3 * LANES)
    elif op == HALF:  # runs of at most HALF filters: a half vector per position
        for q in range(pn):
            add_half(acc, a0 + q * stride, tf, tk + xf[np.uint64(base[q] + off)] * HALF)
    elif op == LANES + HALF:  # the widths of block-sparse runs, unrolled as the dense ones are
        for q in range(pn):
            r = tk + xf[np.uint64(base[q] + off)] * op
            add_lanes(acc, a0 + q * stride, tf, r)
            add_half(acc, a0 + q * stride + LANES, tf, r + LANES)
    elif op == 2 * LANES + HALF:
        for q in range(pn):
            r = tk + xf[np.uint64(base[q] + off)] * op
            add_lanes(acc, a0 + q * stride, tf, r)
            add_lanes(acc, a0 + q * stride + LANES, tf, r + LANES)
            add_half(acc, a0 + q * stride + 2 * LANES, tf, r + 2 * LANES)
    elif op == 3 * LANES:
        for q in range(pn):
            r = tk + xf[np.uint64(base[q] + off)] * op
            add_lanes(acc, a0 + q * stride, tf, r)
            add_lanes(acc, a0 + q * stride + LANES, tf, r + LANES)
            add_lanes(acc, a0 + q * stride + 2 * LANES, tf, r + 2 * LANES)
    elif op == 3 * LANES + HALF:
        for q in range(pn):
            r = tk + xf[np.uint64(base[q] + off)] * op
            add_lanes(acc, a0 + q * stride, tf, r)
            add_lanes(acc, a0 + q * stride + LANES, tf, r + LANES)
            add_lanes(acc, a0 + q * stride + 2 * LANES, tf, r + 2 * LANES)
            add_half(acc, a0 + q * stride + 3 * LANES, tf, r + 3 * LANES)
    else:  # whole vectors, and a half vector last where op is an odd multiple of HALF (sparse runs)
        whole = op - op % LANES
        for q in range(pn):
            r = tk + xf[np.uint64(base[q] + off)] * op
            for f0 in range(0, whole, LANES):
                add_lanes(acc, a0 + q * stride + f0, tf, r + f0)
            if whole < op:
                add_half(acc, a0 + q * stride + whole, tf, r + whole)


@njit(inline="always", boundscheck=False, error_model="numpy")
def _tile_bases(base, p0, pn, ho, wo, c, h, w, stride):  # pragma: no cover - compiled
    """base[q]: offset in x of the receptive field of output position p0 + q (N, Ho, Wo order), counted
    on from the first position's (one division per tile)."""
    b, r = divmod(p0, ho * wo)
    oy, ox = divmod(r, wo)
    for q in range(pn):
        base[q] = (b * c * h + oy * stride) * w + ox * stride
        ox += 1
        if ox == wo:
            ox = 0
            oy += 1
            if oy == ho:
                oy = 0
                b += 1


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
    """Lanes of a run of ``f`` kept filters in :func:`conv_gather_runs`: a multiple of HALF (whole vectors
    and at most one half vector)."""
    return -(-f // HALF) * HALF


def table_dtype(err_max: float) -> type:
    return np.int16 if err_max < (1 << 15) else np.int32


def acc_dtype(bound: float) -> type:
    return np.int32 if bound < (1 << 31) else np.int64


def run_length(table: np.ndarray) -> int:
    """How many rows of ``table`` can be summed in its own dtype without overflow: each k adds one row,
    so ``run`` k add at most ``run * max|table|`` to any accumulator."""
    top = max(int(table.max(initial=0)), -int(table.min(initial=0)))  # no |.| in the dtype: it could overflow
    return max(1, int(np.iinfo(table.dtype).max) // max(1, top))


def tile_positions(lanes: int, itemsize: int) -> int:
    """Output positions per tile of the wide-accumulator kernels: the accumulators the reduction adds
    into (``lanes`` of ``itemsize`` bytes per position) take at most TILE_BYTES, which leaves the rest of
    L1 to the table's k-slice; an even count between 32 and 256."""
    return max(32, min(256, TILE_BYTES // max(1, lanes * itemsize))) // 2 * 2


# measured on ResNet-20's layers (16, 32 and 64 filters, dense and 50 % block-sparse): the best tile was
# 256, 192 and 96 positions dense, within a few per cent of this rule sparse; 32 KiB was 4-12 % slower
TILE_BYTES = 24576


@njit(inline="always", boundscheck=False, error_model="numpy")
def _zero_border(out, b, ci, pad, h, w):  # pragma: no cover - compiled
    """The ``pad`` wide zero border of plane (b, ci) of ``out`` (N, C, h + 2 pad, w + 2 pad)."""
    for i in range(pad):
        out[b, ci, i, :] = 0
        out[b, ci, h + 2 * pad - 1 - i, :] = 0
    for i in range(pad, pad + h):
        out[b, ci, i, :pad] = 0
        out[b, ci, i, pad + w:] = 0


@njit(cache=True, boundscheck=False, error_model="numpy")
def codes16(x, pad, out):  # pragma: no cover - compiled
    """``out`` (N, C, H + 2 pad, W + 2 pad) int16 = ``x`` (N, C, H, W) float, any strides, zero padded, in
    one pass; returns the least and the largest value of ``x`` (the caller checks them against the
    table's range before a kernel indexes it unchecked)."""
    n, c, h, w = x.shape
    lo, hi = np.inf, -np.inf
    for b in range(n):
        for ci in range(c):
            _zero_border(out, b, ci, pad, h, w)
            for i in range(h):
                row = out[b, ci, pad + i]
                src = x[b, ci, i]
                for j in range(w):
                    v = src[j]
                    lo = min(lo, v)
                    hi = max(hi, v)
                    row[pad + j] = np.int16(v)
    return lo, hi


@njit(cache=True, boundscheck=False, error_model="numpy")
def quantise16(x, scale, lo, hi, pad, out):  # pragma: no cover - compiled
    """``out`` (N, C, H + 2 pad, W + 2 pad) int16 = the activation codes of ``x`` (N, C, H, W) float32, any
    strides, zero padded: clamp(round half to even(x / scale), lo, hi), each step in float32 as
    ``QLayer.act_codes`` computes it (``scale`` a float32), in one pass."""
    n, c, h, w = x.shape
    flo, fhi = np.float32(lo), np.float32(hi)
    for b in range(n):
        for ci in range(c):
            _zero_border(out, b, ci, pad, h, w)
            for i in range(h):
                row = out[b, ci, pad + i]
                src = x[b, ci, i]
                for j in range(w):
                    v = np.rint(src[j] / scale)
                    row[pad + j] = np.int16(min(max(v, flo), fhi))


@njit(inline="always", boundscheck=False, error_model="numpy")
def _tile_out(res, p0, pn, tile, op, mul, add, scaled):  # pragma: no cover - compiled
    """res (N, O, Ho, Wo), positions p0..p0+pn-1 (N, Ho, Wo order) of every filter = the tile's
    accumulators, each filter's positions written contiguously. ``scaled`` 0: converted to res's float
    type; 1: float32(acc) x mul[f] + add[f] in float32; 2: float32(float64(acc) x mul[f]) + add[f] (the
    scale a layer applies to float32 / float64 accumulators, then its bias, as ``QLayer.forward`` rounds
    them)."""
    o = res.shape[1]
    hw = res.shape[2] * res.shape[3]
    rf = res.reshape(-1)
    q = 0
    while q < pn:
        b, pos = divmod(p0 + q, hw)
        m = min(pn - q, hw - pos)  # this image's positions in the tile
        for f in range(o):
            d, s = (b * o + f) * hw + pos, q * op + f
            if scaled == 1:
                mf, af = np.float32(mul[f]), np.float32(add[f])
                for t in range(m):
                    rf[d + t] = np.float32(tile[s + t * op]) * mf + af
            elif scaled == 2:
                md, af = np.float64(mul[f]), np.float32(add[f])
                for t in range(m):
                    rf[d + t] = np.float32(np.float64(tile[s + t * op]) * md) + af
            else:
                for t in range(m):
                    rf[d + t] = tile[s + t * op]
        q += m


@njit(cache=True, boundscheck=False, error_model="numpy")
def conv_gather(x, table, a_lo, kh, kw, stride, const, res, ptile, mul, add, scaled):  # pragma: no cover - compiled
    """:func:`conv_error` without narrow accumulators: per tile of ``ptile`` output positions, a tile of
    accumulators of ``const``'s dtype (int32/int64) starts at ``const`` (Op,), every table row is added
    to it widened by sign extension, and the finished tile is written to ``res`` (N, O, Ho, Wo) float32 /
    float64 (exact: the caller's bound says the sums fit), or scaled and biased (:func:`_tile_out`). No
    run length bounds the table's entries, so tables of whole products (the exact part folded in, up to
    2**15) cost no more than error tables."""
    n, c, h, w = x.shape
    nk, da, op = table.shape
    ho, wo = res.shape[2], res.shape[3]
    npos = n * ho * wo
    tf = table.reshape(-1)
    xf = x.reshape(-1)
    base = np.empty(ptile, np.int64)
    tile = np.empty(ptile * op, const.dtype)
    for p0 in range(0, npos, ptile):
        pn = min(npos, p0 + ptile) - p0
        _tile_bases(base, p0, pn, ho, wo, c, h, w, stride)
        for q in range(pn):
            tile[q * op:(q + 1) * op] = const
        for k in range(nk):
            ci, ij = divmod(k, kh * kw)
            i, j = divmod(ij, kw)
            _add_rows(tile, tf, xf, base, pn, (ci * h + i) * w + j, (k * da - a_lo) * op, op)
        _tile_out(res, p0, pn, tile, op, mul, add, scaled)
    return res


@njit(cache=True, boundscheck=False, error_model="numpy")
def conv_gather_runs(x, tables, toff, k0s, k1s, fps, soff, sfil, slen, slane, da, a_lo, kh, kw, stride,
                     const, res, ptile, mul, add, scaled):  # pragma: no cover - compiled
    """:func:`conv_gather` for a block-sparse layer: the reduction is cut into runs of input positions
    ``k0s[r]..k1s[r]-1`` (whole input channels) that feed the same filters. Run ``r``'s table is
    ``tables[toff[r]:]`` laid out ``(k1s[r] - k0s[r], da, fps[r])``: its kept filters compacted and padded
    to ``fps[r]`` lanes, a multiple of HALF (whole vectors, then a half vector where HALF divides it
    oddly). Its kept filters are the segments ``soff[r]..soff[r+1]-1``: ``slen[s]`` consecutive
    filters from ``sfil[s]`` on, in lanes ``slane[s]..``. Per tile of positions (their receptive fields
    computed once), a run of one stretch of filters adds its rows straight into the tile of all filters
    from its first filter on; any other run sums its rows into a tile of its compacted lanes, then adds
    each segment into the tile of all filters (one vector addition per LANES filters). Filters a run does
    not keep are never touched: their products are not computed."""
    n, c, h, w = x.shape
    ho, wo = res.shape[2], res.shape[3]
    op = const.shape[0]
    npos = n * ho * wo
    xf = x.reshape(-1)
    nr = len(k0s)
    fmax = 0
    for r in range(nr):
        fmax = max(fmax, fps[r])
    base = np.empty(ptile, np.int64)
    acc = np.empty(ptile * fmax + LANES, const.dtype)  # LANES spare: a segment adds a whole vector
    tile = np.empty(ptile * op + LANES, const.dtype)
    for p0 in range(0, npos, ptile):
        pn = min(npos, p0 + ptile) - p0
        _tile_bases(base, p0, pn, ho, wo, c, h, w, stride)
        for q in range(pn):
            tile[q * op:(q + 1) * op] = const
        for r in range(nr):
            fp = fps[r]
            if soff[r + 1] - soff[r] == 1:
                # one stretch of consecutive filters: the run's rows go straight into the tile from its first
                # filter on (lanes past its kept filters are zero in the table: they add nothing to the next
                # filters, or to the next position's first ones, or to the tile's spare lanes)
                a0 = sfil[soff[r]]
                for k in range(k0s[r], k1s[r]):
                    ci, ij = divmod(k, kh * kw)
                    i, j = divmod(ij, kw)
                    _add_rows_at(tile, a0, op, tables, xf, base, pn, (ci * h + i) * w + j,
                                 toff[r] + ((k - k0s[r]) * da - a_lo) * fp, fp)
                continue
            acc[:pn * fp] = 0
            for k in range(k0s[r], k1s[r]):
                ci, ij = divmod(k, kh * kw)
                i, j = divmod(ij, kw)
                _add_rows(acc, tables, xf, base, pn, (ci * h + i) * w + j,
                          toff[r] + ((k - k0s[r]) * da - a_lo) * fp, fp)
            for q in range(pn):
                o, a = q * op, q * fp
                for s in range(soff[r], soff[r + 1]):
                    for f in range(0, slen[s], LANES):
                        add_first(tile, o + sfil[s] + f, acc, a + slane[s] + f, min(LANES, slen[s] - f))
        _tile_out(res, p0, pn, tile, op, mul, add, scaled)
    return res
