"""Block-sparse LUT inference computes only the kept blocks' products, bit for bit: against the int64 loop
that skips the same products, and against the dense LUT engine on the same masked weights (for
multipliers whose products with a zero weight are zero); every path (whole products gathered, error
gathered beside a convolution, factor convolution), block sizes with ragged edges, several tiles."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core import golden  # noqa: E402
from dnn import fixtures, kernels, lutops, models, qnn, sparsity  # noqa: E402
from dnn.mults import Multiplier  # noqa: E402

EXACT = golden.table(8, 8, True)
pytestmark = pytest.mark.usefixtures("one_thread")


def _mult(kind: str) -> Multiplier:
    lut = {"exact": EXACT, "ba3": fixtures.broken_array(3), "evolved": fixtures.lut_error(7, 40),
           "biased": fixtures.lut_error(8, 40, zero_exact=False),  # T[a, 0] != 0: skipping differs from dense
           "wide": fixtures.lut_error(5, 20000)}[kind]  # whole products beyond int16: error gathered
    return Multiplier(kind, lut, True)


PATHS = {"exact": "conv", "ba3": "conv", "evolved": "gather", "biased": "gather", "wide": "conv+gather"}


def _kept(o: int, c: int, block: int, seed: int, ratio: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.ones((-(-o // block), -(-c // block)), bool)
    m.ravel()[rng.permutation(m.size)[:int(ratio * m.size)]] = False
    return sparsity.expand(m, block, o, c)


def _zero_weight_product_is_zero(m: Multiplier, lo: int, hi: int) -> bool:
    from dnn.mults import W_MAX

    return not m.table(lo, hi)[:, W_MAX].any()


def _variants(prep: lutops.Prepared, kept: np.ndarray, k_per_c: int) -> list[lutops.Prepared]:
    """The layer as prepared, and on a gathered path both with and without the sparse gather."""
    if prep.err_table is None:
        return [prep]
    sparse = lutops._sparse_gather(lutops.channel_runs(kept), prep.err_table, k_per_c)
    return [dataclasses.replace(prep, sparse_gather=None), dataclasses.replace(prep, sparse_gather=sparse)]


CONV_CASES = [
    # kind, (lo, hi), N, C, H, O, kernel, stride, padding, block, ptile
    ("evolved", (0, 127), 2, 16, 12, 16, 3, 1, 1, 8, None),  # ResNet-20's first stage in small
    ("evolved", (0, 127), 2, 64, 5, 64, 3, 1, 1, 8, None),  # its last stage: runs of many filters
    ("evolved", (-128, 127), 2, 20, 9, 40, 3, 2, 1, 8, 64),  # ragged in both, segments over LANES, tiles
    ("evolved", (0, 127), 1, 9, 7, 13, 3, 1, 0, 4, 32),  # ragged, odd positions per tile: half runs
    ("evolved", (0, 127), 3, 6, 10, 16, 5, 1, 2, 3, 48),  # block 3: ragged everywhere
    ("evolved", (0, 127), 2, 32, 6, 48, 1, 1, 0, 16, None),  # 1x1, block 16 (one segment of a whole vector)
    ("biased", (-128, 127), 2, 8, 6, 17, 3, 1, 1, 2, 32),
    ("biased", (0, 127), 2, 16, 6, 40, 3, 1, 1, 8, None),
    ("wide", (0, 127), 2, 12, 7, 24, 3, 1, 1, 4, 32),
    ("wide", (-128, 127), 1, 16, 6, 16, 3, 2, 1, 8, None),
    ("exact", (-128, 127), 2, 8, 7, 12, 3, 1, 1, 4, None),
    ("ba3", (0, 127), 2, 6, 8, 16, 5, 1, 2, 4, None),
]


def _ids(c):
    return f"{c[0]}-{c[1][0]}-c{c[3]}-o{c[5]}-k{c[6]}-s{c[7]}-b{c[9]}" + (f"-t{c[10]}" if c[10] else "")


@pytest.mark.parametrize("case", CONV_CASES, ids=_ids)
def test_sparse_conv_is_bit_exact(case):
    kind, (lo, hi), n, c, h, o, k, stride, pad, block, ptile = case
    rng = np.random.default_rng(11)
    m = _mult(kind)
    kept = _kept(o, c, block, 3)
    x = rng.integers(lo, hi + 1, size=(n, c, h, h))
    x[rng.random(x.shape) < 0.4] = 0
    w = rng.integers(-127, 128, size=(o, c, k, k)) * kept[:, :, None, None]
    g = torch.zeros(o, dtype=torch.long)
    ref = lutops.reference_acc(x, w, (m,), g.numpy(), a_lo=lo, a_hi=hi, stride=stride, padding=pad, kept=kept)
    prep = lutops.prepare(torch.from_numpy(w), (m,), g, lo, hi, kept=kept)
    assert prep.path == PATHS[kind]
    if ptile is not None:
        prep = dataclasses.replace(prep, ptile=ptile)
    xt = torch.from_numpy(x).float()
    dense = lutops.conv2d_apply(lutops.prepare(torch.from_numpy(w), (m,), g, lo, hi), xt, stride=stride,
                                padding=pad)
    for p in _variants(prep, kept, k * k):
        got = lutops.conv2d_apply(p, xt, stride=stride, padding=pad)
        assert np.array_equal(got.double().numpy(), ref.astype(np.float64))
        if _zero_weight_product_is_zero(m, lo, hi):  # skipping a zero weight's products changes nothing
            assert got.dtype == dense.dtype and torch.equal(got, dense)


@pytest.mark.parametrize("kind", ["evolved", "biased", "wide", "ba3"])
@pytest.mark.parametrize("block", [8, 5], ids=lambda b: f"b{b}")
def test_sparse_linear_is_bit_exact(kind, block):
    rng = np.random.default_rng(6)
    m = _mult(kind)
    o, kk = 30, 44
    kept = _kept(o, kk, block, 7)
    x = rng.integers(-128, 128, size=(7, kk))
    w = rng.integers(-127, 128, size=(o, kk)) * kept
    g = torch.zeros(o, dtype=torch.long)
    ref = lutops.reference_acc(x, w, (m,), g.numpy(), a_lo=-128, a_hi=127, kept=kept)
    prep = lutops.prepare(torch.from_numpy(w), (m,), g, -128, 127, kept=kept)
    dense = lutops.linear_apply(lutops.prepare(torch.from_numpy(w), (m,), g, -128, 127), torch.from_numpy(x).float())
    for p in _variants(prep, kept, 1):
        got = lutops.linear_apply(p, torch.from_numpy(x).float())
        assert np.array_equal(got.double().numpy(), ref.astype(np.float64))
        if _zero_weight_product_is_zero(m, -128, 127):
            assert torch.equal(got, dense)


def test_per_filter_multipliers_sparse_is_bit_exact():
    """Two multipliers (groups) in one sparse layer, on the whole-product path."""
    rng = np.random.default_rng(2)
    mults = (_mult("evolved"), Multiplier("other", fixtures.lut_error(3, 60), True))
    o, c = 24, 16
    kept = _kept(o, c, 8, 1)
    g = torch.from_numpy(rng.integers(0, 2, size=o))
    x = rng.integers(0, 128, size=(2, c, 6, 6))
    w = rng.integers(-127, 128, size=(o, c, 3, 3)) * kept[:, :, None, None]
    prep = lutops.prepare(torch.from_numpy(w), mults, g, 0, 127, kept=kept)
    assert prep.path == "gather" and prep.sparse_gather is not None
    got = lutops.conv2d_apply(prep, torch.from_numpy(x).float(), padding=1)
    ref = lutops.reference_acc(x, w, mults, g.numpy(), a_lo=0, a_hi=127, padding=1, kept=kept)
    assert np.array_equal(got.double().numpy(), ref.astype(np.float64))


# ------------------------------------------------------------------ the work is the kept blocks'
@pytest.mark.parametrize("o, c, block", [(64, 64, 8), (40, 20, 8), (16, 16, 8), (13, 9, 4)],
                         ids=lambda v: str(v))
def test_sparse_gather_holds_only_kept_products(o, c, block):
    """The sparse gather's tables hold a row per kept (filter, input position) and lanes for no dropped
    filter beyond vector padding; on the whole-product path no convolution is left."""
    kept = _kept(o, c, block, 5)
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(o, c, 3, 3)) * kept[:, :, None, None]
    prep = lutops.prepare(torch.from_numpy(w), (_mult("evolved"),), torch.zeros(o, dtype=torch.long), 0, 127,
                          kept=kept)
    assert prep.path == "gather" and prep.weight is None
    if prep.sparse_gather is None:  # the estimate found the sparse gather no cheaper than the dense one
        assert lutops.sparse_work(lutops.channel_runs(kept), 9) >= lutops.DENSE_SHARE * 9 * c * prep.err_table.shape[2] / 16
        return
    _, _, k0s, k1s, fps, soff, sfil, slen, _ = prep.sparse_gather
    kept_pairs = 0
    for r in range(len(k0s)):
        filters = int(slen[soff[r]:soff[r + 1]].sum())
        assert fps[r] == kernels.run_width(filters)  # compacted: at most a vector's padding
        chans = range(k0s[r] // 9, k1s[r] // 9)
        for s in range(soff[r], soff[r + 1]):
            assert kept[sfil[s]:sfil[s] + slen[s], chans].all()
        kept_pairs += filters * len(chans)
    assert kept_pairs == int(kept.sum())


@pytest.mark.parametrize("filters", [8, 24, 40, 56])
def test_a_run_of_an_odd_number_of_half_vectors_is_bit_exact(filters):
    """A run keeping 8, 24, 40 or 56 filters has that many lanes (whole vectors and one half vector), not
    whole vectors only, and its sums are the int64 loop's."""
    o, c = 64, 16
    kept = np.zeros((o, c), bool)
    kept[:filters, :8] = True  # input block 0: the first filters; block 1: all of them
    kept[:, 8:] = True
    rng = np.random.default_rng(filters)
    x = rng.integers(0, 128, size=(2, c, 7, 7))
    w = rng.integers(-127, 128, size=(o, c, 3, 3)) * kept[:, :, None, None]
    m, g = _mult("evolved"), torch.zeros(o, dtype=torch.long)
    ref = lutops.reference_acc(x, w, (m,), g.numpy(), a_lo=0, a_hi=127, padding=1, kept=kept)
    prep = _variants(lutops.prepare(torch.from_numpy(w), (m,), g, 0, 127, kept=kept), kept, 9)[1]
    assert list(prep.sparse_gather[4]) == [filters, o]
    got = lutops.conv2d_apply(prep, torch.from_numpy(x).float(), padding=1)
    assert np.array_equal(got.double().numpy(), ref.astype(np.float64))


def test_dense_and_sparse_gather_share_their_rows():
    """The compacted tables are the dense table's rows of the kept filters (nothing recomputed)."""
    o, c = 32, 24
    kept = _kept(o, c, 8, 9)
    rng = np.random.default_rng(4)
    w = rng.integers(-127, 128, size=(o, c, 3, 3)) * kept[:, :, None, None]
    prep = lutops.prepare(torch.from_numpy(w), (_mult("evolved"),), torch.zeros(o, dtype=torch.long), 0, 127,
                          kept=kept)
    tables, toff, k0s, k1s, fps, soff, sfil, slen, slane = prep.sparse_gather
    da = prep.err_table.shape[1]
    for r in range(len(k0s)):
        t = tables[toff[r]:toff[r] + (k1s[r] - k0s[r]) * da * fps[r]].reshape(k1s[r] - k0s[r], da, fps[r])
        for s in range(soff[r], soff[r + 1]):
            lanes = t[:, :, slane[s]:slane[s] + slen[s]]
            assert np.array_equal(lanes, prep.err_table[k0s[r]:k1s[r], :, sfil[s]:sfil[s] + slen[s]])


# ------------------------------------------------------------------ networks
@pytest.mark.parametrize("kind", ["evolved", "biased", "wide", "exact"])
def test_sparse_resnet_block_network_is_bit_exact(kind):
    """A small ResNet-20 at 50 % 8x8 blocks (first layer dense): fast LUT == the int64 loop skipping the
    same products; and, where a zero weight's product is zero, == the dense LUT engine on the same
    masked weights."""
    torch.manual_seed(3)
    model = models.build("resnet20", 1, 12, 10)
    x = torch.rand(2, 1, 12, 12)
    qnn.calibrate(model, [torch.rand(4, 1, 12, 12)])
    qnn.set_mode(model, "qat")
    names = [n for n, _ in qnn.qlayers(model)]
    sparsity.apply(model, sparsity.derive(model, sparsity.ratios(names, 0.5), 8), 8)
    dense = copy.deepcopy(model)
    sparsity.apply(dense, {}, 8)  # the same zeroed weights, nothing skipped
    m = _mult(kind)
    outs = []
    with torch.no_grad():
        for net, backend in ((model, "fast"), (model, "reference"), (dense, "fast")):
            qnn.assign(net, qnn.uniform(net, m))
            qnn.set_mode(net, "lut", backend=backend)
            outs.append(net(x))
    assert torch.equal(outs[0], outs[1])
    if _zero_weight_product_is_zero(m, -128, 127):
        assert torch.equal(outs[0], outs[2])
    used = {layer._prep[1].path for _, layer in qnn.qlayers(model)}
    assert used == {PATHS[kind]}


def test_activation_range_checked_on_the_fused_pass():
    m = _mult("evolved")
    w = torch.ones((16, 2, 3, 3), dtype=torch.long)
    kept = np.zeros((16, 2), bool)
    kept[:8, 0] = True
    prep = lutops.prepare(w * torch.from_numpy(kept)[:, :, None, None], (m,), torch.zeros(16, dtype=torch.long),
                          0, 127, kept=kept)
    x = torch.zeros((1, 2, 4, 4))
    x[0, 1, 2, 2] = -3
    with pytest.raises(ValueError, match=r"^activation codes span -3\.\.0, outside the plan's 0\.\.127$"):
        lutops.conv2d_apply(prep, x, padding=1)


@pytest.mark.parametrize(("c", "sparse", "bias", "signed"), [
    (16, False, True, False), (16, True, True, False), (16, True, False, True),
    (256, False, True, True),  # sums beyond float32's integers: float64 accumulators, then scaled
], ids=["dense", "sparse", "sparse-nobias-signed", "wide-sums"])
def test_fused_forward_equals_the_accumulator_path(c, sparse, bias, signed):
    """The gather path's one-pass forward (activations quantised as they are converted, sums scaled and
    biased as they are written) == quantising in torch, the accumulators, then scale and bias in torch:
    bit for bit, with codes on rounding ties and beyond the range clamped."""
    torch.manual_seed(5)
    layer = qnn.QConv2d(c, 24, 3, padding=1, bias=bias)
    calib = torch.rand(2, c, 6, 6) * (2 if signed else 1) - (1 if signed else 0)
    qnn.calibrate(layer, [calib])
    if sparse:
        layer.set_weight_mask(torch.from_numpy(_kept(24, c, 8, 1)), None, 8)
    layer.assign(_mult("evolved"))
    layer.mode = "lut"
    x = calib * 1.3  # beyond the calibrated range: clamped
    s = float(layer.act_scale())
    x[0, 0, 0, :4] = torch.tensor([0.5, 1.5, 2.5, -2.5]) * s  # ties: round half to even
    w, b = layer.params()
    scale = layer.weight_scale(w)
    with torch.no_grad():
        prep = layer.prepared(w, scale)
        assert prep.path == "gather" and (prep.sparse_gather is not None) == sparse
        assert (prep.acc_bound >= lutops.F32_EXACT) == (c == 256)
        fused = layer(x)
        acc = layer.lut_acc(prep, layer.act_codes(x))
        y = (acc * (layer.act_scale().to(acc.dtype) * scale.to(acc.dtype)).reshape(1, -1, 1, 1)).float()
        y = y if b is None else y + b.reshape(1, -1, 1, 1)
    assert fused.dtype == torch.float32 and fused.is_contiguous()
    assert torch.equal(fused, y)


def test_tiles_are_sized_by_the_accumulators_the_reduction_adds_into():
    """Dense and one-stretch runs add into the tile of all filters; other runs into their compacted lanes."""
    m = _mult("evolved")
    w = torch.ones((32, 16, 3, 3), dtype=torch.long)

    def prep(kept):
        return lutops.prepare(w * torch.from_numpy(kept)[:, :, None, None], (m,), torch.zeros(32, dtype=torch.long),
                              0, 127, kept=kept)

    dense = lutops.prepare(w, (m,), torch.zeros(32, dtype=torch.long), 0, 127)
    assert dense.ptile == kernels.tile_positions(32, 4) == 192
    one = np.zeros((32, 16), bool)
    one[8:16, :] = True  # every input channel keeps filters 8-15: one stretch, added into the tile
    assert prep(one).sparse_gather is not None and prep(one).ptile == kernels.tile_positions(32, 4)
    split = np.zeros((32, 16), bool)
    split[0:8, :] = split[16:24, :] = True  # two stretches: 16 compacted lanes
    assert prep(split).sparse_gather is not None and prep(split).ptile == kernels.tile_positions(16, 4) == 256
