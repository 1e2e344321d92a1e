"""LUT inference is bit-identical to the plain int64 loop, on every shape and every multiplier kind."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core import golden  # noqa: E402
from dnn import factor, fixtures, lutops, models, qnn  # noqa: E402
from dnn.mults import Multiplier  # noqa: E402

EXACT = golden.table(8, 8, True)


def _mult(kind: str) -> Multiplier:
    lut = {"exact": EXACT, "ba3": fixtures.broken_array(3), "ba6": fixtures.broken_array(6),
           "random": fixtures.lut_error(7, 40), "biased": fixtures.lut_error(8, 40, zero_exact=False)}[kind]
    return Multiplier(kind, lut, True)


@pytest.mark.parametrize("k", [1, 4, 8], ids=lambda k: f"k{k}")
def test_factorisation_is_exact_and_small(k):
    t = fixtures.broken_array(k)[:128] - EXACT[:128]
    f = factor.factorise(t, 8)
    assert f is not None and f.rank <= k
    assert np.array_equal(f.u @ f.v, t)


def test_factorisation_refuses_high_rank():
    t = fixtures.lut_error(3, 30) - EXACT
    assert factor.factorise(t, 8) is None


CONV_CASES = [
    # kind, (lo, hi), N, C, H, O, kernel, stride, padding
    ("exact", (-128, 127), 2, 3, 9, 4, 3, 1, 1),
    ("ba3", (-128, 127), 2, 3, 9, 4, 3, 1, 1),
    ("ba3", (0, 127), 2, 2, 8, 3, 5, 1, 2),
    ("ba6", (0, 127), 1, 4, 7, 5, 3, 2, 1),
    ("ba6", (-128, 127), 2, 1, 6, 2, 1, 1, 0),
    ("random", (0, 127), 2, 3, 7, 4, 3, 1, 1),
    ("random", (-128, 127), 1, 2, 8, 3, 3, 2, 0),
    ("biased", (0, 127), 2, 3, 7, 4, 3, 1, 1),
    ("biased", (0, 127), 2, 2, 8, 3, 5, 2, 2),
    ("biased", (-128, 127), 1, 2, 8, 3, 3, 1, 1),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}-a{c[1][0]}-k{c[6]}-s{c[7]}-p{c[8]}")
def test_conv_matches_reference(case):
    kind, (lo, hi), n, c, h, o, k, stride, pad = case
    rng = np.random.default_rng(1)
    m = _mult(kind)
    x = rng.integers(lo, hi + 1, size=(n, c, h, h))
    x[rng.random(x.shape) < 0.5] = 0  # as after ReLU
    x = torch.from_numpy(x)
    w = torch.from_numpy(rng.integers(-127, 128, size=(o, c, k, k)))
    g = torch.zeros(o, dtype=torch.long)
    got = lutops.conv2d_acc(x, w, (m,), g, a_lo=lo, a_hi=hi, stride=stride, padding=pad)
    ref = lutops.reference_acc(x.numpy(), w.numpy(), (m,), g.numpy(), a_lo=lo, a_hi=hi, stride=stride,
                               padding=pad)
    assert got.shape == ref.shape
    assert np.array_equal(got.double().numpy(), ref.astype(np.float64))


@pytest.mark.parametrize("kind", ["exact", "ba6", "random", "biased"])
def test_linear_matches_reference(kind):
    rng = np.random.default_rng(2)
    m = _mult(kind)
    x = rng.integers(-128, 128, size=(5, 37))
    x[rng.random(x.shape) < 0.5] = 0
    x = torch.from_numpy(x)
    w = torch.from_numpy(rng.integers(-127, 128, size=(6, 37)))
    g = torch.zeros(6, dtype=torch.long)
    got = lutops.linear_acc(x, w, (m,), g, a_lo=-128, a_hi=127)
    ref = lutops.reference_acc(x.numpy(), w.numpy(), (m,), g.numpy(), a_lo=-128, a_hi=127)
    assert np.array_equal(got.double().numpy(), ref.astype(np.float64))


def test_per_filter_multipliers_match_reference():
    rng = np.random.default_rng(3)
    ms = (_mult("ba3"), _mult("ba6"), _mult("random"), _mult("biased"))
    x = rng.integers(0, 128, size=(2, 3, 6, 6))
    x[rng.random(x.shape) < 0.5] = 0
    x = torch.from_numpy(x)
    w = torch.from_numpy(rng.integers(-127, 128, size=(6, 3, 3, 3)))
    g = torch.tensor([0, 1, 2, 1, 3, 3])
    got = lutops.conv2d_acc(x, w, ms, g, a_lo=0, a_hi=127, padding=1)
    ref = lutops.reference_acc(x.numpy(), w.numpy(), ms, g.numpy(), a_lo=0, a_hi=127, padding=1)
    assert np.array_equal(got.double().numpy(), ref.astype(np.float64))


@pytest.mark.parametrize("kind", ["ba6", "random"])
def test_large_sums_split_and_stay_exact(kind):
    """Extreme operands over a long reduction: float32 partial sums would round without splitting."""
    m = _mult(kind)
    x = torch.full((3, 3000), -128, dtype=torch.long)
    x[1] = 127
    w = torch.full((4, 3000), -127, dtype=torch.long)
    w[2] = 127
    g = torch.zeros(4, dtype=torch.long)
    prep = lutops.prepare(w, (m,), g, -128, 127)
    assert prep.chunks is None or prep.chunks > 1
    got = lutops.linear_apply(prep, x.float())
    ref = lutops.reference_acc(x.numpy(), w.numpy(), (m,), g.numpy(), a_lo=-128, a_hi=127)
    assert np.array_equal(got.double().numpy(), ref.astype(np.float64))


def test_unsigned_multiplier_uses_sign_magnitude_weights():
    v = np.arange(256)
    lut = np.outer(v, v) - (np.outer(v, v) & 7)  # drops the three low bits of every product
    m = Multiplier("u", lut, False)
    t = m.table(0, 255)
    assert t[200, -5 + 127] == -(lut[200, 5])
    assert t[3, 9 + 127] == lut[3, 9]


@pytest.mark.parametrize("granularity", ["layer", "filter"])
def test_network_fast_equals_reference_backend(granularity):
    torch.manual_seed(0)
    net = models.LeNet5().eval()
    x = torch.rand(3, 1, 28, 28)
    qnn.calibrate(net, [x])
    mults = [_mult("ba3"), _mult("ba6"), _mult("random")]
    assignment = {}
    for i, (name, layer) in enumerate(qnn.qlayers(net)):
        assignment[name] = (mults[i % 3] if granularity == "layer"
                            else [mults[(i + o) % 3] for o in range(layer.out_features)])
    qnn.assign(net, assignment)
    with torch.no_grad():
        qnn.set_mode(net, "lut")
        fast = net(x)
        qnn.set_mode(net, "lut", backend="reference")
        ref = net(x)
    assert torch.equal(fast, ref)


def test_straight_through_gradient_is_the_exact_one():
    """LUT forward, exact fake-quantised backward: gradients equal the QAT layer's, values do not."""
    torch.manual_seed(0)
    layer = qnn.QConv2d(2, 4, 3, padding=1)
    x0 = torch.rand(2, 2, 6, 6)
    r = torch.randn(2, 4, 6, 6)
    qnn.calibrate(layer, [x0])
    layer.assign(_mult("ba6"))
    values, grads = {}, {}
    for mode in ("qat", "lut"):
        layer.mode = mode
        layer.zero_grad()
        x = x0.clone().requires_grad_(True)
        y = layer(x)
        (y * r).sum().backward()
        values[mode] = y.detach()
        grads[mode] = (x.grad.clone(), layer.conv.weight.grad.clone())
    with torch.no_grad():
        plain = layer(x0)
    assert torch.equal(values["lut"], plain)
    assert not torch.equal(values["lut"], values["qat"])
    assert torch.equal(grads["lut"][0], grads["qat"][0])
    assert torch.equal(grads["lut"][1], grads["qat"][1])


@pytest.mark.parametrize("net", ["vgg", "resnet20"])
def test_deeper_networks_fast_equals_reference(net):
    torch.manual_seed(1)
    model = models.build(net, 1, 28, 10).eval()
    x = torch.rand(1, 1, 28, 28)
    qnn.calibrate(model, [torch.rand(4, 1, 28, 28)])
    qnn.assign(model, qnn.uniform(model, _mult("ba3")))
    with torch.no_grad():
        qnn.set_mode(model, "lut")
        fast = model(x)
        qnn.set_mode(model, "lut", backend="reference")
        ref = model(x)
    assert torch.equal(fast, ref)


@pytest.mark.parametrize("o", [3, 16, 32, 64, 70])
def test_gather_filter_widths_and_tiles(o):
    """Filter counts that are 1, 2, 4 and 5 vectors of lanes (padded), over more positions than a tile."""
    from dnn import kernels

    rng = np.random.default_rng(o)
    m = _mult("biased")
    x = rng.integers(0, 128, size=(2, 2, 30, 30))
    x[rng.random(x.shape) < 0.5] = 0
    x = torch.from_numpy(x)
    w = torch.from_numpy(rng.integers(-127, 128, size=(o, 2, 3, 3)))
    g = torch.zeros(o, dtype=torch.long)
    prep = lutops.prepare(w, (m,), g, 0, 127)
    assert prep.plan.kind == "gather" and prep.err_table.shape[2] == kernels.padded(o)
    assert 2 * 28 * 28 > prep.ptile
    got = lutops.conv2d_apply(prep, x.float().contiguous(memory_format=torch.channels_last))  # a strided input
    ref = lutops.reference_acc(x.numpy(), w.numpy(), (m,), g.numpy(), a_lo=0, a_hi=127)
    assert np.array_equal(got.double().numpy(), ref.astype(np.float64))


def _large_error(spread: int) -> Multiplier:
    """Products off by +spread (random sign per weight code) for every non-zero activation: narrow
    accumulators overflow unless the run length bounds them."""
    rng = np.random.default_rng(9)
    err = np.zeros_like(EXACT)
    err[1:, :] = spread * rng.choice([-1, 1], size=(1, EXACT.shape[1]))
    err[1:, :] += rng.integers(-3, 4, size=(EXACT.shape[0] - 1, EXACT.shape[1]))
    return Multiplier(f"large{spread}", EXACT + err, True)


@pytest.mark.parametrize("spread", [3000, 20000, 40000])
def test_gather_narrow_runs_do_not_overflow(spread):
    """Entries near the int16 limit (short runs, or the int32 table beyond it); the same inputs summed in
    one run of the table's dtype do wrap around, so the runs are what keep the result exact."""
    from dnn import kernels

    rng = np.random.default_rng(4)
    m = _large_error(spread)
    x = torch.from_numpy(rng.integers(1, 128, size=(2, 4, 6, 6)))
    w = torch.from_numpy(np.full((16, 4, 3, 3), 5))
    g = torch.zeros(16, dtype=torch.long)
    prep = lutops.prepare(w, (m,), g, 0, 127)
    assert prep.plan.kind == "gather"
    top = int(np.abs(prep.err_table.astype(np.int64)).max())
    assert prep.err_run * top <= np.iinfo(prep.err_table.dtype).max < (prep.err_run + 1) * top
    assert prep.err_table.dtype == (np.int16 if spread < 32768 else np.int32)
    got = lutops.conv2d_apply(prep, x.float(), padding=1)
    ref = lutops.reference_acc(x.numpy(), w.numpy(), (m,), g.numpy(), a_lo=0, a_hi=127, padding=1)
    assert np.array_equal(got.double().numpy(), ref.astype(np.float64))
    if prep.err_table.dtype == np.int16:
        assert prep.err_run < prep.err_table.shape[0]
        xp = torch.nn.functional.pad(x, (1,) * 4).to(torch.int16).numpy()
        one_run = np.zeros((2, 6, 6, 16), prep.err_acc)
        kernels.conv_error(xp, prep.err_table, 0, 3, 3, 1, one_run, prep.err_table.shape[0], kernels.PTILE)
        bounded = np.zeros_like(one_run)
        kernels.conv_error(xp, prep.err_table, 0, 3, 3, 1, bounded, prep.err_run, kernels.PTILE)
        assert not np.array_equal(one_run, bounded)


def test_gather_refuses_activations_outside_the_plan():
    """The gather kernel indexes its table unchecked: codes outside the planned range are refused first."""
    m = _mult("random")
    x = torch.full((1, 1, 4, 4), 128)
    w = torch.ones((2, 1, 3, 3), dtype=torch.long)
    with pytest.raises(ValueError, match=r"^activation codes span 128\.\.128, outside the plan's 0\.\.127$"):
        lutops.conv2d_acc(x, w, (m,), torch.zeros(2, dtype=torch.long), a_lo=0, a_hi=127)
