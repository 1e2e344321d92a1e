"""The evolution's model: netlist views, the bit-parallel evaluator and the mutation operators.

The evaluator is checked against an independent byte-per-vector simulation on random circuits, and
its incremental evaluation against evaluation from scratch along random mutation walks.
"""

from __future__ import annotations

import numpy as np
import pytest

from core import golden
from core.errors import ConfigError
from evolve import cgp, kernels
from evolve.evaluator import Evaluator, reference_outputs
from evolve.netlist import FUNCS, NOT, Netlist


def random_netlist(wa: int, wb: int, signed: bool, gates: int, rng: np.random.Generator) -> Netlist:
    first = 2 + wa + wb
    func = rng.integers(0, len(FUNCS), size=gates).astype(np.int8)
    in0 = np.array([rng.integers(0, first + k) for k in range(gates)], dtype=np.int32)
    in1 = np.array([rng.integers(0, first + k) for k in range(gates)], dtype=np.int32)
    out = rng.integers(first, first + gates, size=wa + wb).astype(np.int32)
    out[rng.integers(0, wa + wb)] = rng.integers(0, first)  # an output wired to an input or constant
    return Netlist(wa, wb, signed, func, in0, in1, out)


SHAPES = [(2, 2, True, 20), (3, 4, False, 60), (5, 5, True, 120), (8, 8, True, 300), (9, 8, False, 200)]
IDS = ["2x2s", "3x4u", "5x5s", "8x8s", "9x8u-sampled"]


@pytest.mark.parametrize("wa, wb, signed, gates", SHAPES, ids=IDS)
def test_evaluator_matches_reference_simulation(wa, wb, signed, gates):
    rng = np.random.default_rng(wa * 100 + wb)
    net = random_netlist(wa, wb, signed, gates, rng)
    ev = Evaluator(wa, wb, signed, net.n_addr, samples=4096, seed=3, chunk_words=2)
    ref = reference_outputs(net, ev.vectors)
    assert np.array_equal(ev.outputs(net), ref)
    wce, act = ev.load_parent(net)
    assert wce == int(np.abs(ref - ev.exact).max())
    assert np.array_equal(act, net.active())
    errors = ev.errors(net)
    assert errors.wce == wce and errors.sampled == (wa + wb > 16)


@pytest.mark.parametrize("wa, wb, signed, gates", SHAPES[:4], ids=IDS[:4])
def test_incremental_evaluation_equals_evaluation_from_scratch(wa, wb, signed, gates):
    """Along a random walk of mutations, every child's incremental WCE equals a fresh simulation's."""
    rng = np.random.default_rng(7)
    parent = random_netlist(wa, wb, signed, gates, rng)
    ev = Evaluator(wa, wb, signed, parent.n_addr, children=2, chunk_words=2)
    _, act = ev.load_parent(parent)
    cum = np.cumsum(cgp.DEFAULT_OPS)
    weights = np.ones(len(FUNCS))
    dirty = np.zeros(parent.n_addr, dtype=np.bool_)
    for step in range(120):
        child = parent.copy()
        kernels.mutate(child.func, child.in0, child.in1, child.out, child.first, act, rng, cum, len(FUNCS))
        child.check()
        got, cost, depth, cact, order = kernels.assess(
            child.func, child.in0, child.in1, child.out, parent.func, parent.in0, parent.in1, child.first,
            weights, 1 << 30, np.inf, ev.valid, dirty, ev.store, ev.n_chunks, ev.n_addr, 1, ev.ex, ev.nb,
            signed, 1 << 62)
        expected = int(np.abs(reference_outputs(child) - ev.exact).max())
        assert got == expected, f"step {step}"
        assert depth == child.depth() and cost == cact.sum()
        if step % 2 == 0:  # accept every other child: the cache must follow
            ev.commit(order, dirty, 1, cact)
            parent, act = child, cact
    assert ev.load_parent(parent)[0] == int(np.abs(reference_outputs(parent) - ev.exact).max())


def test_early_exit_reports_a_violation():
    rng = np.random.default_rng(1)
    net = random_netlist(4, 4, True, 50, rng)
    ev = Evaluator(4, 4, True, net.n_addr)
    wce, act = ev.load_parent(net)
    dirty = np.zeros(net.n_addr, dtype=np.bool_)
    changed = np.ones(net.n_gates, dtype=np.bool_)
    got, _ = ev.check_child(net, changed, act, 1, dirty, stop_above=wce - 1)
    assert got > wce - 1


def test_merge_and_compact_keep_the_function():
    rng = np.random.default_rng(5)
    net = random_netlist(4, 4, False, 80, rng)
    # duplicate some gates so there is something to merge
    net.func[40:50], net.in0[40:50], net.in1[40:50] = net.func[20:30], net.in0[20:30], net.in1[20:30]
    net.out[:4] = net.first + np.arange(40, 44)
    before = reference_outputs(net)
    merged = net.copy()
    kernels.merge_equivalent(merged.func, merged.in0, merged.in1, merged.out, merged.first)
    compact = net.compact()
    assert np.array_equal(reference_outputs(merged), before)
    assert np.array_equal(reference_outputs(compact), before)
    assert compact.n_gates == compact.active().sum() <= net.active().sum()
    again = compact.compact()  # compacting is idempotent, unused NOT inputs included
    assert np.array_equal(again.func, compact.func) and np.array_equal(reference_outputs(again), before)


@pytest.mark.parametrize("op", range(kernels.N_OPS), ids=list(kernels.OP_NAMES))
def test_every_operator_keeps_the_genome_feed_forward(op):
    rng = np.random.default_rng(op)
    net = random_netlist(4, 4, True, 100, rng)
    net.func[10:20], net.in0[10:20], net.in1[10:20] = net.func[0:10], net.in0[0:10], net.in1[0:10]
    weights = np.zeros(kernels.N_OPS)
    weights[op] = 1.0
    cum = np.cumsum(weights)
    applied = 0
    for _ in range(50):
        child = net.copy()
        act = net.active()
        got = kernels.mutate(child.func, child.in0, child.in1, child.out, child.first, act, rng, cum, len(FUNCS))
        child.check()
        if got >= 0:
            assert got == op
            applied += 1
            net = child
    assert applied > 0


def test_spare_gates_are_inactive_and_harmless():
    rng = np.random.default_rng(2)
    net = random_netlist(3, 3, True, 40, rng).compact()
    grown = cgp.with_spares(net, 0.5, np.random.default_rng(0))
    assert grown.n_gates == net.n_gates + round(0.5 * net.n_gates)
    assert grown.active().sum() == net.n_gates
    assert np.array_equal(reference_outputs(grown), reference_outputs(net))


def test_views_round_trip(tmp_path):
    rng = np.random.default_rng(9)
    net = random_netlist(3, 3, True, 30, rng)
    back = Netlist.from_json(net.to_json())
    assert np.array_equal(reference_outputs(back), reference_outputs(net))
    text = net.to_verilog("m_test", header="hello")
    assert text.startswith("// hello\n`timescale 1ns / 1ps\n") and "\nmodule m_test (a, b, y);\n" in text
    assert "endmodule\n/* verilator lint_on DECLFILENAME */\n" in text
    assert ".model m_test" in net.to_blif("m_test")


def _yosys_like(cells: dict, y_bits: list) -> dict:
    return {"modules": {"top": {
        "ports": {"a": {"direction": "input", "bits": [2, 3]}, "b": {"direction": "input", "bits": [4, 5]},
                  "y": {"direction": "output", "bits": y_bits}},
        "cells": cells, "netnames": {"w": {"bits": [10]}, "v": {"bits": [11]}}}}}


def test_combinational_loop_is_reported():
    cells = {"g1": {"type": "$_AND_", "connections": {"A": [2], "B": [11], "Y": [10]}},
             "g2": {"type": "$_OR_", "connections": {"A": [10], "B": [3], "Y": [11]}}}
    with pytest.raises(ConfigError, match=r"^netlist has a combinational loop through net [wv]$"):
        Netlist.from_yosys_json(_yosys_like(cells, [10, 11, 2, 3]), "top", 2, 2, True)


def test_undriven_output_is_reported():
    cells = {"g1": {"type": "$_AND_", "connections": {"A": [2], "B": [4], "Y": [10]}}}
    with pytest.raises(ConfigError, match=r"^netlist: output y\[2\] is undriven$"):
        Netlist.from_yosys_json(_yosys_like(cells, [10, "0", "x", 3]), "top", 2, 2, True)


def test_exotic_cells_are_rewritten_into_generic_gates():
    cells = {"m": {"type": "$_MUX_", "connections": {"A": [2], "B": [3], "S": [4], "Y": [10]}},
             "n": {"type": "$_ANDNOT_", "connections": {"A": [10], "B": [5], "Y": [11]}}}
    net = Netlist.from_yosys_json(_yosys_like(cells, [10, 11, "1", "0"]), "top", 2, 2, False)
    a, b = golden.vector_codes(2, 2)
    a0, a1, b0, b1 = a & 1, a >> 1, b & 1, b >> 1
    mux = np.where(b0 == 1, a1, a0)
    expected = mux | ((mux & (1 - b1)) << 1) | (1 << 2)
    assert np.array_equal(reference_outputs(net), expected)
    assert NOT in net.func
