"""LUT-exact integer convolution and matrix product: every product is ``T[a, w]`` of a multiplier.

``conv2d_acc`` / ``linear_acc`` return the int32-style accumulators (as exact float64 integers) of a
layer whose products come from one multiplier per output channel (``group[o]`` indexes ``mults``).
They never approximate: the result equals :func:`reference_acc`, a plain int64 loop over every
product, bit for bit.

How it is fast. Each table is split into the exact product and an error table, ``T = a*w + E``. ``E``
restricted to the activation values a layer produces is factorised exactly over the integers,
``E = U V`` (:mod:`dnn.factor`); then ``sum_k T[a_k, w_k] = sum_k a_k w_k + sum_j sum_k U_j(a_k) V_j(w_k)``
is one ordinary convolution whose input has ``1 + r`` channels per input channel (``a``, ``U_1(a)``,
...) and whose weights hold ``w``, ``V_1(w)``, .... All operands are integers, so float32 arithmetic
is exact while every partial sum stays below 2**24; the reduction is split into channel groups
(a grouped convolution, summed in float64) whenever a bound computed from the actual weights says it
might not. Error tables of broken-array multipliers have ranks of a few, those of evolved multipliers
far more. Above rank MAX_RANK (where this stops paying), products are gathered instead by a compiled
loop (:mod:`dnn.kernels`) over a per-layer table of ``X[a, w_k] - X[0, w_k]`` rows, added as 16-lane
vectors, the ``X[0, w_k]`` parts being a constant of each filter; still exact. X is the whole product
table T where its entries fit int16 (the ``"gather"`` path: no convolution at all, the rows widened into
int32 accumulators as they are added), else the error table E, gathered in int16 runs whose length a
bound from the table's largest entry makes overflow-free, beside a convolution of the exact part
(``"conv+gather"``).

Zero padding feeds activation 0 through the multiplier, as a hardware array streaming padded data does.

Block sparsity (``kept``, :mod:`dnn.sparsity`): the products of dropped (filter, input channel) pairs are
not computed, as an array that skips all-zero weight tiles does not compute them (so a multiplier whose
``T[a, 0]`` is not 0 adds nothing for them either): their transformed weights and their gather-table
rows are zero, and their ``X[0, w]`` parts are left out of the constants. The gather then skips them:
input channels are taken in runs of consecutive channels that keep the same filters (a block of input
channels), and each run adds only its kept filters' rows, compacted to whole vectors
(:func:`dnn.kernels.conv_gather_runs`), where that is less work than the dense gather
(:func:`sparse_work`). On the ``"gather"`` path (evolved multipliers) that is all the layer computes, so
its work follows the kept blocks. The convolution of factor plans (exact and low-rank multipliers)
stays one dense convolution over zeroed weights: grouped convolutions per block of filters and
convolutions per run of input channels (with their sums) were measured slower than one large one.
:func:`reference_acc` skips the same products.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from dnn import factor
from dnn.mults import N_WCODES, W_MAX, Multiplier

MAX_RANK = 3  # above this the error part is gathered: the measured crossover on LeNet-5 / ResNet-20 (dnn.bench)
F32_EXACT = float(1 << 24)


@dataclass(frozen=True)
class Plan:
    """How a set of multipliers (one per filter group) is evaluated for activations a_lo..a_hi."""

    a_lo: int
    a_hi: int
    kind: str  # "factor" (exact product + rank-r error, one convolution) or "gather"
    rank: int
    tin: Any  # torch (Da, 1 + rank) float32: a, U_1(a), ..., U_r(a)
    tin_max: np.ndarray  # (1 + rank,) max |tin| per channel
    v: Any  # torch (G, 1 + rank, 255) float32: w, V_1(w), ...
    err: Any  # numpy (G, Da, 255) int64 gather plans: error tables less their a = 0 row, E[a, w] - E[0, w]
    err_max: np.ndarray  # (G,) max |E| per group
    term_max: np.ndarray  # (G, 255): max over activations of sum_j |tin[a, j]| |v[g, j, w]|
    err_zero: np.ndarray | None = None  # (G, 255) int64 gather plans: E[0, w] (zeros when 0 is not an activation)
    whole: np.ndarray | None = None  # (G, Da, 255) int64: T[a, w] - T[0, w], whole products (None: 0 is no activation)
    whole_zero: np.ndarray | None = None  # (G, 255) int64: T[0, w]

    @property
    def channels(self) -> int:
        return 1 + self.rank


def plan_for(mults: tuple[Multiplier, ...], a_lo: int, a_hi: int) -> Plan:
    """The evaluation plan for these per-group multipliers (cached by table contents)."""
    return _plan(tuple(m.digest for m in mults), a_lo, a_hi, _Tables(mults))


class _Tables:
    """Carries the multipliers into the cached planner without making them part of the cache key."""

    def __init__(self, mults: tuple[Multiplier, ...]):
        self.mults = mults

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Tables)


@functools.lru_cache(maxsize=256)
def _plan(digests: tuple[str, ...], a_lo: int, a_hi: int, tables: _Tables) -> Plan:
    import torch

    a = np.arange(a_lo, a_hi + 1, dtype=np.int64)
    w = np.arange(-W_MAX, W_MAX + 1, dtype=np.int64)
    exact = np.outer(a, w)
    errs = np.stack([m.table(a_lo, a_hi) - exact for m in tables.mults])  # (G, Da, 255)
    err_max = np.abs(errs).reshape(len(errs), -1).max(axis=1)
    stacked = errs.transpose(1, 0, 2).reshape(len(a), -1)  # rows: activations; columns: (group, weight)
    f = factor.factorise(stacked, MAX_RANK) if stacked.any() else factor.Factors(
        np.zeros((len(a), 0), np.int64), np.zeros((0, stacked.shape[1]), np.int64))
    whole: np.ndarray | None = None
    whole_zero: np.ndarray | None = None
    if a_lo <= 0 <= a_hi:
        tabs = errs + exact[None]
        whole_zero = tabs[:, -a_lo, :].copy()
        whole = tabs - whole_zero[:, None, :]
    if f is not None:
        tin = np.concatenate([a[:, None], f.u], axis=1)
        v = np.concatenate([np.broadcast_to(w, (len(errs), 1, N_WCODES)),
                            f.v.reshape(f.rank, len(errs), N_WCODES).transpose(1, 0, 2)], axis=1)
        if np.abs(tin).max() < F32_EXACT and np.abs(v).max() < F32_EXACT:
            return Plan(a_lo, a_hi, "factor", f.rank, torch.from_numpy(tin.astype(np.float32)),
                        np.abs(tin).max(axis=0).astype(np.float64), torch.from_numpy(v.astype(np.float32)),
                        None, err_max, _term_max(tin, v), None, whole, whole_zero)
    tin = a[:, None].astype(np.float32)
    v = np.broadcast_to(w.astype(np.float32), (len(errs), 1, N_WCODES)).copy()
    # E[a, w] = E[0, w] + (E[a, w] - E[0, w]): the first part is a constant of each filter (padding feeds 0
    # too), the second is zero for a = 0.
    zero_row = errs[:, -a_lo, :].copy() if a_lo <= 0 <= a_hi else np.zeros((len(errs), N_WCODES), np.int64)
    rest = errs - zero_row[:, None, :]
    return Plan(a_lo, a_hi, "gather", 0, torch.from_numpy(tin), np.abs(tin).max(axis=0).astype(np.float64),
                torch.from_numpy(v), rest, err_max, _term_max(tin, v), zero_row, whole, whole_zero)


def _term_max(tin: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Largest sum of |terms| one product adds to a partial sum, per group and weight value."""
    return np.einsum("aj,gjw->gaw", np.abs(tin).astype(np.float64), np.abs(v).astype(np.float64)).max(axis=1)


def _chunks(bound_oc: np.ndarray, limit: float = F32_EXACT) -> int | None:
    """Fewest equal groups of input channels whose partial sums all stay below ``limit``.

    ``bound_oc`` (O, C) float64: the worst |partial sum| each input channel adds to each output.
    """
    c = bound_oc.shape[1]
    for n in range(1, c + 1):
        if c % n:
            continue
        if float(bound_oc.reshape(bound_oc.shape[0], n, c // n).sum(axis=2).max()) < limit:
            return n
    return None


@dataclass(frozen=True)
class Prepared:
    """A layer's weights turned into what :func:`conv2d_apply` / :func:`linear_apply` need; computed once
    per (weights, multipliers) and reused for every input.

    ``path``: ``"conv"`` (factor plans: one convolution does every product), ``"conv+gather"`` (the
    exact part convolved, the error part gathered from ``err_table``) or ``"gather"`` (the whole products
    gathered from ``err_table``, no convolution: gather plans whose ``T[a, w] - T[0, w]`` fit int16)."""

    plan: Plan
    weight: Any  # float32 (O * chunks, C * R / chunks, *k) or float64 (O, C * R, *k) when chunks is None;
    #              None on the "gather" path
    chunks: int | None  # None: float64 arithmetic
    out: int
    pad_in_conv: bool  # U(0) == 0, so the convolution's own zero padding is right
    err_table: Any  # gathered paths: numpy (K, Da, Op) int16/int32, X_g(o)[a, w[o, k]] - X_g(o)[0, w[o, k]]
    #                 with X = E ("conv+gather") or T ("gather"), filters padded with zero columns to
    #                 Op = kernels.padded(O)
    err_acc: Any  # gathered paths: numpy accumulator dtype
    err_const: Any  # gathered paths: numpy (Op,) sum over k of X_g(o)[0, w[o, k]], where the accumulators start
    acc_bound: float  # max |accumulator| over all inputs (decides float32 or float64 results)
    err_run: int = 1  # "conv+gather": k summed in the table's dtype before widening (kernels.run_length)
    sparse_gather: tuple[np.ndarray, ...] | None = None  # block-sparse layers: conv_gather_runs' arguments
    path: str = "conv"
    kernel: tuple[int, ...] = ()  # (kh, kw) of a convolution, () of a matrix product
    ptile: int = 256  # output positions per tile of the wide-accumulator kernels (kernels.tile_positions)


def channel_runs(kept: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """(c0, c1, kept filters) for each run of consecutive input channels with the same kept filters;
    runs that keep no filter are left out."""
    out = []
    c = kept.shape[1]
    start = 0
    for ci in range(1, c + 1):
        if ci == c or not np.array_equal(kept[:, ci], kept[:, start]):
            f = np.flatnonzero(kept[:, start])
            if len(f):
                out.append((start, ci, f))
            start = ci
    return out


def _transformed_weights(plan: Plan, w_codes: Any, group: Any) -> tuple[Any, np.ndarray]:
    """Weights (O, C, R, *k) float32 and the (O, C) partial-sum bound."""
    import torch

    o = w_codes.shape[0]
    rest = tuple(w_codes.shape[1:])
    r = plan.channels
    idx = (w_codes.reshape(o, 1, -1).long() + W_MAX).expand(o, r, -1)
    wt = torch.gather(plan.v[group], 2, idx).reshape(o, r, *rest).transpose(1, 2).contiguous()
    per_w = plan.term_max[group.numpy()]  # (O, 255)
    codes = w_codes.reshape(o, -1).long().numpy() + W_MAX
    bound = np.take_along_axis(per_w, codes, axis=1).reshape(o, rest[0], -1).sum(axis=2)
    return wt, bound


@dataclass(frozen=True)
class _Gathered:
    """One layer's gather table: what :class:`Prepared` holds of it."""

    table: np.ndarray
    const: np.ndarray
    acc: Any
    run: int


def _gather_table(rest: np.ndarray, zero: np.ndarray, gi: np.ndarray, wf: np.ndarray,
                  kept_k: np.ndarray | None) -> _Gathered:
    """``table[k, a, o] = rest[g(o), a, w[o, k]]`` (dropped pairs: zero rows), its filters padded to whole
    vectors; the accumulators start at ``sum_k zero[g(o), w[o, k]]`` over kept pairs, and their dtype
    comes from a bound over the layer's own weights: ``|start| + sum_k max_a |rest[g(o), a, w[o, k]]|``."""
    from dnn import kernels

    o, k = wf.shape
    op = kernels.padded(o)
    entries = rest[gi[None, :, None], np.arange(rest.shape[1])[None, None, :], wf.T[:, :, None]]  # (K, O, Da)
    if kept_k is not None:
        entries = entries * kept_k.T[:, :, None]
    top = np.abs(entries).max(axis=2)  # (K, O)
    table: np.ndarray = np.zeros((k, rest.shape[1], op), kernels.table_dtype(float(top.max(initial=0))))
    table[:, :, :o] = entries.transpose(0, 2, 1)
    zero_part = np.take_along_axis(zero[gi], wf, axis=1)
    if kept_k is not None:
        zero_part = zero_part * kept_k
    const = zero_part.sum(axis=1)
    acc = kernels.acc_dtype(float((np.abs(const) + top.sum(axis=0)).max(initial=0)))
    const = np.concatenate([const, np.zeros(op - o, np.int64)]).astype(acc)
    return _Gathered(table, const, acc, kernels.run_length(table))


def _folds(plan: Plan, gi: np.ndarray, wf: np.ndarray) -> bool:
    """The whole products of this layer's weights fit an int16 gather table (no convolution needed)."""
    if plan.kind != "gather" or plan.whole is None:
        return False
    used = np.zeros(plan.whole.shape[::2], dtype=bool)  # (G, 255)
    used[gi[:, None], wf] = True
    top = np.abs(plan.whole).max(axis=1)  # (G, 255)
    return float(top[used].max(initial=0)) < (1 << 15)


def prepare(w_codes: Any, mults: tuple[Multiplier, ...], group: Any, a_lo: int, a_hi: int,
            kept: np.ndarray | None = None) -> Prepared:
    """Prepare integer weights ``w_codes`` (O, C, kh, kw) or (O, K) for LUT products; ``kept`` (O, C) bool
    names the (filter, input channel) pairs whose products are computed (None: all)."""
    import torch

    from dnn import kernels

    plan = plan_for(mults, a_lo, a_hi)
    group = torch.as_tensor(group, dtype=torch.long)
    w_codes = torch.as_tensor(w_codes)
    if kept is not None:
        kept = np.asarray(kept, dtype=bool)
        if kept.shape != tuple(w_codes.shape[:2]):
            raise ValueError(f"kept must have shape {tuple(w_codes.shape[:2])}, not {kept.shape}")
        if kept.all():
            kept = None
    wt, bound = _transformed_weights(plan, w_codes, group)
    if kept is not None:
        bound = np.where(kept, bound, 0.0)
        wt = wt * torch.from_numpy(kept).reshape(*kept.shape, *([1] * (wt.dim() - 2))).to(wt.dtype)
    o, c, r = wt.shape[0], wt.shape[1], wt.shape[2]
    kernel = tuple(wt.shape[3:])
    s = int(np.prod(kernel, dtype=np.int64))
    k = c * s
    wf = w_codes.reshape(o, -1).long().numpy() + W_MAX  # (O, K)
    gi = group.numpy()
    kept_k = None if kept is None else np.repeat(kept, s, axis=1)  # (O, K)
    path = "conv"
    gathered: _Gathered | None = None
    err_bound = 0.0
    if plan.kind == "gather":
        assert plan.err_zero is not None
        # the bound of the result's dtype (float32 or float64) is the one of the exact part convolved and
        # the error part gathered, whichever path computes it, so that no path changes a result's dtype
        err_bound = float(np.abs((np.take_along_axis(plan.err_zero[gi], wf, axis=1)
                                  * (1 if kept_k is None else kept_k)).sum(axis=1)).max(initial=0))
        err_bound += float(np.abs(plan.err).max(initial=0)) * k
        if _folds(plan, gi, wf):
            assert plan.whole is not None and plan.whole_zero is not None
            path, gathered = "gather", _gather_table(plan.whole, plan.whole_zero, gi, wf, kept_k)
        else:
            path, gathered = "conv+gather", _gather_table(plan.err, plan.err_zero, gi, wf, kept_k)
    acc_bound = float(bound.sum(axis=1).max(initial=0.0)) + err_bound
    pad_ok = bool((plan.tin[a0_index(plan)] == 0).all()) if plan.a_lo <= 0 <= plan.a_hi else False
    chunks = _chunks(bound)
    weight: Any = None
    if path != "gather":
        flat = wt.reshape(o, c * r, *kernel)
        if chunks is None:
            weight = flat.double()
        elif chunks == 1:
            weight = flat
        else:
            weight = (flat.reshape(o, chunks, c * r // chunks, *kernel).transpose(0, 1)
                      .reshape(chunks * o, c * r // chunks, *kernel).contiguous())
    if gathered is None:
        return Prepared(plan, weight, chunks, o, pad_ok, None, None, None, acc_bound, kernel=kernel)
    sparse = None
    if kept is not None:
        runs = channel_runs(kept)
        if sparse_work(runs, s) < DENSE_SHARE * k * gathered.table.shape[2] / kernels.LANES:
            sparse = _sparse_gather(runs, gathered.table, s)
    ptile = kernels.tile_positions(_reduced_lanes(gathered.table.shape[2], sparse), np.dtype(gathered.acc).itemsize)
    return Prepared(plan, weight, chunks, o, pad_ok, gathered.table, gathered.acc, gathered.const, acc_bound,
                    gathered.run, sparse, path, kernel, ptile)


def _reduced_lanes(op: int, sparse: tuple[np.ndarray, ...] | None) -> int:
    """Lanes per position of the accumulators a gather's reduction adds into: the tile of all ``op``
    filters (dense, and the runs of one stretch of filters, which add into it directly), or a run's
    compacted lanes (the others: :func:`dnn.kernels.conv_gather_runs`)."""
    if sparse is None:
        return op
    fps, soff = sparse[4], sparse[5]
    stretches = np.diff(soff)
    return max(op if (stretches == 1).any() else 0, int(fps[stretches > 1].max(initial=0)))


DENSE_SHARE = 0.85  # the sparse gather is taken when its estimated work is below this share of the dense one
HALF_COST = 0.45  # a half-run row (one HALF-lane vector) against a whole LANES-lane one (0.34-0.42 in a microbenchmark)


def sparse_work(runs: list[tuple[int, int, np.ndarray]], k_per_c: int) -> float:
    """Estimated vector additions per output position of the sparse gather: each run's rows over its
    compacted filters (whole vectors, and a half vector costing HALF_COST whole ones), plus adding its filters into the output (about a vector per segment of consecutive filters)."""
    from dnn import kernels

    work = 0.0
    for c0, c1, f in runs:
        lanes = kernels.run_width(len(f))
        per_row = lanes // kernels.LANES + (HALF_COST if lanes % kernels.LANES else 0.0)
        segments = _segments(f)
        direct = len(segments) == 1 and segments[0][0] == 0  # (when its lanes are all filters': no adding)
        work += (c1 - c0) * k_per_c * per_row + (0 if direct else 1 + len(segments))
    return work


def _segments(f: np.ndarray) -> list[tuple[int, int, int]]:
    """(first filter, count, first lane) of each stretch of consecutive filters in ``f``."""
    out = []
    i = 0
    while i < len(f):
        j = i
        while j + 1 < len(f) and f[j + 1] == f[j] + 1:
            j += 1
        out.append((int(f[i]), j - i + 1, i))
        i = j + 1
    return out


def _sparse_gather(runs: list[tuple[int, int, np.ndarray]], err_table: np.ndarray, k_per_c: int
                   ) -> tuple[np.ndarray, ...]:
    """The table arguments of :func:`dnn.kernels.conv_gather_runs`: each run's slice of the gather table
    with its kept filters compacted to whole vectors, concatenated; where each run's table starts, its
    reduction range and lanes; its segments of consecutive filters."""
    from dnn import kernels

    parts, toff, k0s, k1s, fps = [], [0], [], [], []
    soff, sfil, slen, slane = [0], [], [], []
    for c0, c1, f in runs:
        sub = err_table[c0 * k_per_c:c1 * k_per_c][:, :, f]
        table = np.zeros((*sub.shape[:2], kernels.run_width(len(f))), err_table.dtype)
        table[:, :, :len(f)] = sub
        parts.append(table.reshape(-1))
        toff.append(toff[-1] + table.size)
        k0s.append(c0 * k_per_c)
        k1s.append(c1 * k_per_c)
        fps.append(table.shape[2])
        for first, count, lane in _segments(f):
            sfil.append(first)
            slen.append(count)
            slane.append(lane)
        soff.append(len(sfil))
    i64 = np.int64
    return (np.concatenate(parts), np.array(toff[:-1], i64), np.array(k0s, i64), np.array(k1s, i64),
            np.array(fps, i64), np.array(soff, i64), np.array(sfil, i64), np.array(slen, i64),
            np.array(slane, i64))


def a0_index(plan: Plan) -> int:
    return -plan.a_lo


def _result(acc: Any, prep: Prepared) -> Any:
    """float32 when every accumulator is an exact float32 integer, else float64."""
    import torch

    if prep.acc_bound < F32_EXACT:
        return acc.float() if acc.dtype != torch.float32 else acc
    return acc.double()


def conv2d_apply(prep: Prepared, x_codes: Any, *, stride: int = 1, padding: int = 0) -> Any:
    """Accumulators (N, O, Ho, Wo) of a LUT convolution of integer-valued ``x_codes`` (float tensor)."""
    import torch
    import torch.nn.functional as F

    plan = prep.plan
    if prep.path == "gather":
        kh, kw = prep.kernel
        _, _, h, wd = x_codes.shape
        h, wd = h + 2 * padding, wd + 2 * padding
        acc = _gathered(prep, _activations(x_codes, plan, padding), kh, kw, stride,
                        ((h - kh) // stride + 1, (wd - kw) // stride + 1))
        return _result(acc, prep)
    r = plan.channels
    conv_pad = padding
    if padding and not prep.pad_in_conv:
        x_codes = F.pad(x_codes, (padding,) * 4, value=0.0)
        conv_pad = 0
    n, c, h, wd = x_codes.shape
    if r == 1:
        xt = x_codes.contiguous(memory_format=torch.channels_last)
    else:
        idx = x_codes.permute(0, 2, 3, 1).reshape(-1).to(torch.int32) - plan.a_lo
        xt = torch.index_select(plan.tin, 0, idx).reshape(n, h, wd, c * r).permute(0, 3, 1, 2)
    with torch.backends.nnpack.flags(enabled=False):  # NNPACK may pick Winograd, which rounds
        if prep.chunks is None:
            acc = F.conv2d(xt.double(), prep.weight, stride=stride, padding=conv_pad)
        elif prep.chunks == 1:
            acc = F.conv2d(xt, prep.weight, stride=stride, padding=conv_pad)
        else:
            out = F.conv2d(xt, prep.weight, stride=stride, padding=conv_pad, groups=prep.chunks)
            acc = out.reshape(n, prep.chunks, prep.out, *out.shape[2:]).sum(dim=1, dtype=torch.float64)
    if prep.path == "conv+gather":
        kh, kw = prep.kernel
        err = _gathered(prep, _activations(x_codes, plan, conv_pad), kh, kw, stride, tuple(acc.shape[2:]))
        acc = _add(acc, err, prep)
    return _result(acc, prep)


def conv2d_forward(prep: Prepared, x: Any, act_scale: Any, mul: Any, bias: Any, *, stride: int = 1,
                   padding: int = 0) -> Any:
    """The output (N, O, Ho, Wo) of a LUT convolution of float32 activations ``x`` in one pass each way,
    where the whole products are gathered (path ``gather``, float32 ``x``; else None): the activations quantised
    (``act_scale``) into the int16 array the kernels read, and the sums scaled by ``mul`` (O,) (float32
    or float64: the accumulators' type) plus ``bias`` (O,) float32 or None, as they are written. Bit for
    bit what ``QLayer.forward`` computes from :func:`conv2d_apply`'s accumulators."""
    import torch

    from dnn import kernels

    if prep.path != "gather" or x.dtype != torch.float32:
        return None
    plan = prep.plan
    kh, kw = prep.kernel
    n, c, h, wd = x.shape
    xq = np.empty((n, c, h + 2 * padding, wd + 2 * padding), np.int16)
    kernels.quantise16(x.detach().numpy(), np.float32(act_scale), plan.a_lo, plan.a_hi, padding, xq)
    h, wd = h + 2 * padding, wd + 2 * padding
    wide = prep.acc_bound >= F32_EXACT
    add = bias.detach().numpy() if bias is not None else np.zeros(prep.out, np.float32)
    return _gathered(prep, xq, kh, kw, stride, ((h - kh) // stride + 1, (wd - kw) // stride + 1),
                     (mul.detach().numpy().astype(np.float64), add.astype(np.float32), 2 if wide else 1))


def _gathered(prep: Prepared, x: np.ndarray, kh: int, kw: int, stride: int, out_hw: tuple[int, ...],
              scaled: tuple[np.ndarray, np.ndarray, int] | None = None) -> Any:
    """The gathered sums (N, O, Ho, Wo) of activations ``x`` (N, C, H, W) int16, padded: float32 / float64
    as the result will be, or the integer accumulators of the narrow kernel (a view). ``scaled``: (mul,
    add, mode) of :func:`kernels._tile_out`, applied as they are written (float32)."""
    import torch

    from dnn import kernels

    plan = prep.plan
    if prep.sparse_gather is None and prep.path == "conv+gather":
        err = np.empty((x.shape[0], *out_hw, prep.err_const.shape[0]), dtype=prep.err_acc)
        err[...] = prep.err_const
        kernels.conv_error(x, prep.err_table, plan.a_lo, kh, kw, stride, err, prep.err_run, kernels.PTILE)
        return torch.from_numpy(err[..., :prep.out]).permute(0, 3, 1, 2)
    mul, add, mode = scaled if scaled is not None else (_ONE, _ZERO, 0)
    dtype = np.float32 if mode or prep.acc_bound < F32_EXACT else np.float64
    res = np.empty((x.shape[0], prep.out, *out_hw), dtype)
    if prep.sparse_gather is not None:
        runs: Any = kernels.conv_gather_runs
        runs(x, *prep.sparse_gather, plan.a_hi - plan.a_lo + 1, plan.a_lo, kh, kw, stride, prep.err_const, res,
             prep.ptile, mul, add, mode)
    else:
        kernels.conv_gather(x, prep.err_table, plan.a_lo, kh, kw, stride, prep.err_const, res, prep.ptile, mul,
                            add, mode)
    return torch.from_numpy(res)


_ONE = np.ones(1, np.float64)  # mul and add of an unscaled result (mode 0 reads neither)
_ZERO = np.zeros(1, np.float32)


def _activations(x_codes: Any, plan: Plan, pad: int = 0) -> np.ndarray:
    """The activation codes, zero padded by ``pad``, as the contiguous int16 array the gather kernels read
    (one pass). The kernels index their tables with them unchecked, so their range is checked here."""
    from dnn import kernels

    n, c, h, w = x_codes.shape
    out = np.empty((n, c, h + 2 * pad, w + 2 * pad), np.int16)
    lo, hi = kernels.codes16(x_codes.detach().numpy(), pad, out)
    if x_codes.numel() and (lo < plan.a_lo or hi > plan.a_hi):
        raise ValueError(f"activation codes span {int(lo)}..{int(hi)}, outside the plan's {plan.a_lo}..{plan.a_hi}")
    return out


def _add(acc: Any, err: Any, prep: Prepared) -> Any:
    """Exact part plus error part, in float32 when the total's bound allows, else float64."""
    if prep.acc_bound < F32_EXACT:
        return acc.float() + err.float()
    return acc.double() + err.double()


def linear_apply(prep: Prepared, x_codes: Any) -> Any:
    """Accumulators (N, O) of a LUT matrix product of integer-valued ``x_codes`` (N, K) (float tensor)."""
    import torch

    plan = prep.plan
    n, k = x_codes.shape
    if prep.path == "gather":  # a 1x1 convolution of (N, K, 1, 1)
        return _result(_gathered(prep, _activations(x_codes.reshape(n, k, 1, 1), plan), 1, 1, 1, (1, 1))[..., 0, 0],
                       prep)
    r = plan.channels
    if r == 1:
        xt = x_codes
    else:
        idx = x_codes.reshape(-1).to(torch.int32) - plan.a_lo
        xt = torch.index_select(plan.tin, 0, idx).reshape(n, k * r)
    if prep.chunks is None:
        acc = xt.double() @ prep.weight.t()
    elif prep.chunks == 1:
        acc = xt @ prep.weight.t()
    else:
        ch = prep.chunks
        ws = prep.weight.reshape(ch, prep.out, -1).transpose(1, 2)  # (chunks, K R / chunks, O)
        acc = torch.bmm(xt.reshape(n, ch, -1).transpose(0, 1), ws).sum(dim=0, dtype=torch.float64)
    if prep.path == "conv+gather":
        acc = _add(acc, _gathered(prep, _activations(x_codes.reshape(n, k, 1, 1), plan), 1, 1, 1, (1, 1))[..., 0, 0],
                   prep)
    return _result(acc, prep)


def conv2d_acc(x_codes: Any, w_codes: Any, mults: tuple[Multiplier, ...], group: Any, *, a_lo: int,
               a_hi: int, stride: int = 1, padding: int = 0) -> Any:
    """One-shot LUT convolution (prepare + apply)."""
    prep = prepare(w_codes, mults, group, a_lo, a_hi)
    return conv2d_apply(prep, x_codes.float(), stride=stride, padding=padding)


def linear_acc(x_codes: Any, w_codes: Any, mults: tuple[Multiplier, ...], group: Any, *, a_lo: int,
               a_hi: int) -> Any:
    """One-shot LUT matrix product (prepare + apply)."""
    prep = prepare(w_codes, mults, group, a_lo, a_hi)
    return linear_apply(prep, x_codes.float())


def reference_acc(x_codes: np.ndarray, w_codes: np.ndarray, mults: tuple[Multiplier, ...],
                  group: np.ndarray, *, a_lo: int, a_hi: int, stride: int = 1, padding: int = 0,
                  kept: np.ndarray | None = None) -> np.ndarray:
    """The plain int64 loop: one table look-up per product, summed. 4-D input: convolution; 2-D: linear.
    ``kept`` (O, C) bool: only the products of kept (filter, input channel) pairs are summed."""
    x = np.asarray(x_codes, dtype=np.int64)
    w = np.asarray(w_codes, dtype=np.int64)
    tables = [m.table(a_lo, a_hi) for m in mults]
    linear = x.ndim == 2
    if linear:
        x = x[:, :, None, None]
        w = w[:, :, None, None]
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    acc = np.zeros((n, o, ho, wo), dtype=np.int64)
    for oc in range(o):
        t = tables[int(group[oc])]
        for ci in range(c):
            if kept is not None and not kept[oc, ci]:
                continue
            for i in range(kh):
                for j in range(kw):
                    a = x[:, ci, i:i + stride * ho:stride, j:j + stride * wo:stride]
                    acc[:, oc] += t[a - a_lo, w[oc, ci, i, j] + W_MAX]
    return acc[:, :, 0, 0] if linear else acc
