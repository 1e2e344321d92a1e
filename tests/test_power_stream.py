"""The power simulations' operand stream: one definition for evolve, ppa and the exact reference."""

from __future__ import annotations

import numpy as np
import pytest

from ppa import activity


@pytest.mark.parametrize("probs", [None, "skewed"], ids=["uniform", "histogram"])
def test_power_stream_is_the_salted_seed_stream(probs):
    p = (np.eye(16)[3] * 0.5 + 1 / 32, np.full(16, 1 / 16)) if probs else None
    a, b = activity.power_stream(4, 4, 64, 7, p)
    ra, rb = activity.operand_stream(4, 4, 64, np.random.default_rng(np.random.SeedSequence([7, 0x90E7])), p)
    assert np.array_equal(a, ra) and np.array_equal(b, rb)


def test_power_stream_depends_on_the_seed():
    assert not np.array_equal(activity.power_stream(8, 8, 64, 1)[0], activity.power_stream(8, 8, 64, 2)[0])

