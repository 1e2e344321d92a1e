"""Goldenbrick tables: values, codes, closed-form bounds and the error normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from core import golden


@pytest.mark.parametrize("wa, wb, signed", [(2, 2, True), (3, 5, False), (8, 8, True), (8, 8, False), (4, 7, True)],
                         ids=["2x2s", "3x5u", "8x8s", "8x8u", "4x7s"])
def test_table_matches_python_products(wa, wb, signed):
    t = golden.table(wa, wb, signed)
    assert t.shape == (1 << wa, 1 << wb)
    rng = np.random.default_rng(0)
    for a, b in rng.integers(0, [1 << wa, 1 << wb], size=(50, 2)):
        va = a - (1 << wa) if signed and a >= 1 << (wa - 1) else a
        vb = b - (1 << wb) if signed and b >= 1 << (wb - 1) else b
        assert t[a, b] == va * vb
    assert np.abs(t).max() == golden.max_product(wa, wb, signed)


def test_codes_round_trip():
    vals = np.arange(-128, 128)
    assert np.array_equal(golden.decode(golden.encode(vals, 8), 8, True), vals)
    assert golden.encode(np.array([-1]), 16)[0] == 0xFFFF


def test_vector_numbering_matches_table_order():
    a, b = golden.vector_codes(3, 2)
    t = golden.table(3, 2, False)
    assert np.array_equal(t.ravel(), golden.values(3, False)[a] * golden.values(2, False)[b])


@pytest.mark.parametrize("eps, signed, limit", [(0.005, True, 81), (0.005, False, 327), (0.05, True, 819),
                                                (0.0001, True, 1)], ids=["s0.5%", "u0.5%", "s5%", "s0.01%"])
def test_wce_limit_is_floor_eps_n(eps, signed, limit):
    assert golden.norm(8, 8, True) == 16384 and golden.norm(8, 8, False) == 65536
    assert golden.wce_limit(eps, 8, 8, signed) == limit
