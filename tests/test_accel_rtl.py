"""The rtl cycle model: the numbers of RTL_TIMING.md, and a cycle-stepped model of the contract that
must agree with the closed forms in both cycles and results."""

from __future__ import annotations

import numpy as np
import pytest

from accel_models.rtl_reference import simulate
from core.errors import ConfigError
from rtl_gen import rtl_cycles
from rtl_gen.rtl_cycles import gemm_cycles, plan

WORKED = [  # RTL_TIMING.md section 7
    (dict(m=4, k=4, n=4, rows=4, cols=4, dataflow="ws"), 18),
    (dict(m=64, k=64, n=64, rows=8, cols=8, dataflow="ws"), 5634),
    (dict(m=64, k=64, n=64, rows=8, cols=8, dataflow="os"), 5570),
    (dict(m=5, k=6, n=9, rows=4, cols=4, dataflow="ws", pods=2, split="n"), 70),
    (dict(m=5, k=6, n=9, rows=4, cols=4, dataflow="os", pods=2, split="k"), 102),
]


@pytest.mark.parametrize("kw,cycles", WORKED, ids=["ws4x4", "ws8x8_64", "os8x8_64", "ws_2pods_n", "os_2pods_k"])
def test_worked_examples(kw, cycles):
    m, k, n = kw.pop("m"), kw.pop("k"), kw.pop("n")
    assert gemm_cycles(m, k, n, **kw) == cycles


def _lut_gemm(A, B, lut):
    prods = lut[A[:, :, None], B[None, :, :]]  # (M, K, N)
    return prods.sum(axis=1) & 0xFFFFFFFF


SHAPES = [(4, 4, 4), (5, 6, 9), (1, 3, 2), (9, 2, 3), (7, 13, 5), (3, 17, 1)]
CASES = [(df, shape, arr, pods, split)
         for df in ("ws", "os")
         for shape in SHAPES
         for arr in ((2, 3), (4, 4))
         for pods, split in ((1, "n"), (2, "n"), (2, "m"), (3, "k"), (2, "k"))]


@pytest.mark.parametrize("df,shape,arr,pods,split", CASES,
                         ids=[f"{d}-{s[0]}x{s[1]}x{s[2]}-{a[0]}x{a[1]}-p{p}{sp}" for d, s, a, p, sp in CASES])
def test_cycle_stepped_model_matches_contract(df, shape, arr, pods, split):
    """The behavioural array computes the table GEMM in exactly the contract's cycle count."""
    rng = np.random.default_rng(sum(shape) * 31 + pods)
    lut = rng.integers(-3000, 3000, size=(256, 256))  # an "approximate" table: lut[0, x] != 0
    M, K, N = shape
    A = rng.integers(0, 256, size=(M, K))
    B = rng.integers(0, 256, size=(K, N))
    out, cycles = simulate(A, B, rows=arr[0], cols=arr[1], dataflow=df, pods=pods, split=split, lut=lut)
    assert cycles == gemm_cycles(M, K, N, rows=arr[0], cols=arr[1], dataflow=df, pods=pods, split=split)
    assert np.array_equal(out, _lut_gemm(A, B, lut))


def test_one_pod_splits_are_the_same_schedule():
    for df in ("ws", "os", "is"):
        assert len({gemm_cycles(37, 50, 29, rows=8, cols=4, dataflow=df, split=s) for s in "nmk"}) == 1


def test_is_is_ws_on_the_transposed_gemm():
    assert gemm_cycles(37, 50, 29, rows=8, cols=4, dataflow="is", pods=3, split="m") == \
        gemm_cycles(29, 50, 37, rows=8, cols=4, dataflow="ws", pods=3, split="n")


@pytest.mark.parametrize("df", ["ws", "os", "is"])
@pytest.mark.parametrize("split", ["n", "m", "k"])
def test_every_mac_is_done_once_and_counts_add_up(df, split):
    run = plan(37, 50, 29, rows=8, cols=4, dataflow=df, pods=3, split=split)
    assert run.macs == 37 * 50 * 29
    a = sum(p.a_reads for p in run.pods)
    b = sum(p.b_reads for p in run.pods)
    if df == "ws":  # every N panel streams all of A once; each weight is loaded once (by every pod for m)
        assert (a, b) == (8 * 37 * 50, 50 * 29 * (3 if split == "m" else 1))
    if df == "os":  # every M-tile streams all of B once; every panel streams A once
        assert (a, b) == (8 * 37 * 50, 5 * 50 * 29)
    assert 0 < run.utilization <= 1


def test_more_pods_are_never_slower_with_the_best_split():
    best = [min(gemm_cycles(300, 500, 200, rows=16, cols=16, dataflow="ws", pods=p, split=s) for s in "nmk")
            for p in (1, 2, 4, 8)]
    assert best == sorted(best, reverse=True) and best[-1] < best[0] / 4


def test_k_split_pays_for_the_reduction():
    run = plan(1, 4096, 16, rows=16, cols=16, dataflow="ws", pods=4, split="k")
    assert run.reduce == 1 * 1 + 1
    assert run.cycles < gemm_cycles(1, 4096, 16, rows=16, cols=16, dataflow="ws", pods=4, split="n")


@pytest.mark.parametrize("df,fold_extra", [("ws", 2), ("os", None), ("is", 2)])
def test_relation_to_scalesim(df, fold_extra):
    """RTL_TIMING.md section 8: rtl = scalesim + 3 + 2 folds (ws, is), + 3 + (R + 1) folds (os)."""
    from accel_models.scalesim import ScaleSimConfig, simulate_row

    R, C, M, K, N = 8, 4, 37, 50, 29
    ss = simulate_row((M, K, 1, K, 1, N, 1, 1), ScaleSimConfig(R, C, df, 1024, 1024, 1024))
    assert ss.stall_cycles == 0
    sr, sc = {"ws": (K, N), "os": (M, N), "is": (K, M)}[df]
    folds = -(-sr // R) * -(-sc // C)
    extra = fold_extra if fold_extra is not None else R + 1
    assert gemm_cycles(M, K, N, rows=R, cols=C, dataflow=df) == ss.total_cycles + 3 + extra * folds


def test_sparse_panels_skip_k_tiles():
    dense = plan(64, 64, 16, rows=8, cols=8, dataflow="ws")
    sparse = plan(64, 64, 16, rows=8, cols=8, dataflow="ws", k_eff=[16, 64])
    assert dense.pods[0].tiles == 16 and sparse.pods[0].tiles == 2 + 8
    assert sparse.macs == 64 * (16 + 64) * 8


@pytest.mark.parametrize("kw,message", [
    (dict(rows=0, cols=4, dataflow="ws"), r"^ROWS must be a positive integer, not 0"),
    (dict(rows=4, cols=4, dataflow="xs"), r"^DATAFLOW must be one of the listed choices, not 'xs' "
                                          r"\(choices: ws, os, is\)"),
    (dict(rows=4, cols=4, dataflow="ws", split="q"), r"^SPLIT must be"),
], ids=["rows", "dataflow", "split"])
def test_bad_configuration(kw, message):
    with pytest.raises(ConfigError, match=message):
        rtl_cycles.plan(4, 4, 4, **kw)
