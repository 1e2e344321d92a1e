"""The power objective and the errors under the application (issue 14 items 1 and 2).

The evaluator's switching energy against a hand count and against a plain numpy simulation, its
incremental form along a random walk, the weighted error sums against numpy, ``--cost power`` and
``--mae-limit``/``--bias-limit`` end to end, and bad distribution files and limits as one-line errors.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_evolve_model import random_netlist

from conftest import need_tools
from core import golden
from core.error_metrics import weighted
from core.errors import ConfigError
from evolve import app, cgp, kernels
from evolve.evaluator import Evaluator, reference_outputs
from evolve.netlist import AND, FUNCS, Netlist
from ppa import activity

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--power-vectors", "200", "--jobs", "1", "--epoch", "200", "--quiet"]


def flow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flow.py"), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900, stdin=subprocess.DEVNULL, env={**os.environ})


def one_line_error(proc: subprocess.CompletedProcess, pattern: str) -> None:
    import re

    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.match(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def energy():
    import tech

    try:
        return app.gate_energy(tech.load("osu018"))
    except ConfigError as exc:
        pytest.skip(str(exc))


# ------------------------------------------------------------------------------------------ the energy
def test_liberty_energy_tables_are_read(energy):
    """Every generic gate has a positive internal energy per toggle and an input capacitance (OSU018: pF, V)."""
    for f, gate in enumerate(FUNCS):
        assert energy.n_pts[f] >= 2 and (energy.energy[f, :energy.n_pts[f]] > 0).all(), gate
        assert 0.001 < energy.pin_cap[f, 0] < 0.1, gate
    assert energy.half_v2 == pytest.approx(0.5 * 1.8 ** 2)
    assert energy.per_toggle("XOR", 0.02) > energy.per_toggle("NAND", 0.02)  # a bigger cell costs more


def test_cost_of_a_known_netlist_is_the_hand_count(energy):
    """y0 = a0 AND b0, every other output bit 0: the cost is its toggles x one toggle's energy / transitions."""
    import tech

    wa = wb = 2
    first = 2 + wa + wb
    net = Netlist(wa, wb, False, np.array([AND], dtype=np.int8), np.array([2], dtype=np.int32),
                  np.array([4], dtype=np.int32), np.array([first, 0, 0, 0], dtype=np.int32))
    a = np.array([0, 1, 1, 0, 1, 3, 3])
    b = np.array([1, 1, 0, 1, 1, 1, 2])
    # a0 & b0 over the stream: 0 1 0 0 1 1 0 -> 4 toggles over 6 transitions
    t = tech.load("osu018")
    load_pf = t.default_load * t.cap_pf  # it drives one primary output, nothing else
    per_toggle = t.toggle_energy("AND").at(load_pf / t.cap_pf) + 0.5 * t.voltage ** 2 * load_pf
    assert app.power_cost(net, energy, app.stream_vectors(a, b, wb)) == pytest.approx(4 * per_toggle / 6)


SHAPES = [(2, 2, True, 20), (3, 4, False, 60), (5, 5, True, 120), (8, 8, True, 300)]
IDS = ["2x2s", "3x4u", "5x5s", "8x8s"]


@pytest.mark.parametrize("glitch", [0.0, 0.25], ids=["zero-delay", "glitch"])
@pytest.mark.parametrize("wa, wb, signed, gates", SHAPES, ids=IDS)
def test_power_cost_matches_the_numpy_reference(energy, wa, wb, signed, gates, glitch):
    rng = np.random.default_rng(wa * 10 + wb)
    net = random_netlist(wa, wb, signed, gates, rng)
    a, b = activity.power_stream(wa, wb, 777, seed=5)  # 777: the last word is partly padding
    stream = app.stream_vectors(a, b, wb)
    assert app.power_cost(net, energy, stream, glitch) == pytest.approx(
        app.reference_power_cost(net, energy, stream, glitch), rel=1e-12)
    if glitch:  # the glitch term is there, and counts only transitions beyond the zero-delay ones
        assert app.power_cost(net, energy, stream, glitch) > app.power_cost(net, energy, stream)


def test_unit_delay_glitches_of_a_hand_circuit():
    """y = a XOR (NOT a) is always 1 at zero delay; under unit delay, when a switches the XOR sees the new a
    beside the old NOT a for one step: one glitch (two toggles) per switch of a, and NOT a toggles once."""
    from evolve.netlist import XOR
    net = Netlist(1, 1, False, np.array([FUNCS.index("NOT"), XOR]), np.array([2, 2]), np.array([2, 4]),
                  np.array([5, 5]))
    vals = app.node_values(net, np.array([0, 2, 2, 0, 2], dtype=np.int64))  # a = 0 1 1 0 1: three switches
    vals[2] = [0, 1, 1, 0, 1]
    assert np.array_equal(vals[5], [1, 1, 1, 1, 1])
    g = app.unit_delay_glitches(net, vals)
    assert g[4] == 0 and g[5] == 6


def _random_walk(parent, energy, mutate, steps: int, seed: int, mse: bool = True) -> None:
    """Along a random walk of mutations (every other child accepted), each child's incremental power cost, its
    nodes' toggles and its weighted error sums equal the numpy reference's (gates or cells alike)."""
    wa, wb, signed = parent.wa, parent.wb, parent.signed
    rng = np.random.default_rng(seed)
    a, b = activity.power_stream(wa, wb, 300, seed=2)
    stream = app.stream_vectors(a, b, wb)
    pa, pb = rng.random(1 << wa), rng.random(1 << wb)
    probs = (pa / pa.sum(), pb / pb.sum())
    ev = Evaluator(wa, wb, signed, parent.n_addr, children=2, chunk_words=2)
    ob = app.ObjectiveSpec(wa, wb, signed, stream=stream, energy=energy, probs=probs, mae_limit=1e12,
                           mse_limit=1e18 if mse else None, glitch=0.25).build(ev, parent.n_addr, 2)
    weights = np.ones(len(energy.names))
    _, act, cost, sums = ob.load_parent(parent, weights)
    assert cost == pytest.approx(app.reference_power_cost(parent, energy, stream, 0.25), rel=1e-12)
    w = app.pair_weights(wa, wb, probs)
    dirty = np.zeros(parent.n_addr, dtype=np.bool_)
    for step in range(steps):
        child = parent.copy()
        mutate(child, act, rng)
        wce, cost, _, cact, order, sums = ob.assess(child, parent, weights, 1 << 30, np.inf, dirty, 1, 1 << 62)
        d = (reference_outputs(child) - ev.exact).astype(np.float64)
        assert wce == int(np.abs(d).max()), f"step {step}"
        assert cost == pytest.approx(app.reference_power_cost(child, energy, stream, 0.25), rel=1e-12), f"step {step}"
        vals = app.node_values(child, stream)[child.first + order]
        assert np.array_equal(ob.ctog[1][order], np.count_nonzero(np.diff(vals, axis=1), axis=1)), f"step {step}"
        assert sums[0] == pytest.approx(float(np.dot(w, np.abs(d))), rel=1e-9, abs=1e-12), f"step {step}"
        assert sums[1] == pytest.approx(float(np.dot(w, d)), rel=1e-9, abs=1e-9), f"step {step}"
        assert sums[2] == (pytest.approx(float(np.dot(w, d * d)), rel=1e-9, abs=1e-9) if mse else 0.0), f"step {step}"
        if step % 2 == 0:
            ob.commit(order, dirty, 1, cact)
            parent, act = child, cact


def _mutate_gates(net, act, rng):
    kernels.mutate(net.func, net.in0, net.in1, net.out, net.first, act, rng, np.cumsum(cgp.DEFAULT_OPS), len(FUNCS))


@pytest.mark.parametrize("wa, wb, signed, gates", SHAPES, ids=IDS)
def test_incremental_power_and_weighted_errors_equal_a_fresh_simulation(energy, wa, wb, signed, gates):
    rng = np.random.default_rng(3)
    _random_walk(random_netlist(wa, wb, signed, gates, rng), energy, _mutate_gates, 60, 3, mse=gates < 200)


# ------------------------------------------------------------------------------------------ cells
def _cell_tables(spec: str):
    from evolve import cellnet
    from tech import cells

    return cellnet.tables(cells.load(tech_load(spec)))


def tech_load(spec: str):
    import tech

    return tech.load(spec)


def random_cells(wa: int, wb: int, signed: bool, n: int, seed: int, t):
    """A random cell netlist in which some adder outputs are siblings of an earlier node (the same adder,
    inputs permuted where its outputs are symmetric), so that shared instances occur."""
    from evolve import cellnet

    rng = np.random.default_rng(seed)
    first = 2 + wa + wb
    func = rng.integers(0, t.n, size=n)
    ins = np.array([[rng.integers(0, first + k) for k in range(n)] for _ in range(3)])
    for k in range(1, n):
        g = t.group[func[k]]
        if g >= 0 and rng.random() < 0.7:
            mates = [j for j in range(k) if t.group[func[j]] == g]
            if mates:
                j = int(rng.choice(mates))
                func[k] = next(f for f in range(t.n) if t.group[f] == g and f != func[j])
                ins[:, k] = rng.permutation(ins[:, j]) if t.gsym[g] else ins[:, j]
    out = rng.integers(first + n // 2, first + n, size=wa + wb)
    net = cellnet.CellNetlist(wa, wb, signed, func, ins[0], ins[1], ins[2], out, t)
    net.check()
    return net


CELL_SHAPES = [("osu018", 4, 4, True, 60, 1), ("osu018", 3, 5, False, 90, 2), ("osu018", 8, 8, True, 200, 3),
               ("gf180", 4, 4, True, 80, 4)]
CELL_IDS = ["osu018-4x4s", "osu018-3x5u", "osu018-8x8s", "gf180-4x4s"]


def _cell_case(name: str, request):
    spec = str(request.getfixturevalue("gf180_dir")) if name == "gf180" else name
    t = _cell_tables(spec)
    try:
        return t, app.cell_energy(tech_load(spec), t)
    except ConfigError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("glitch", [0.0, 0.25], ids=["zero-delay", "glitch"])
@pytest.mark.parametrize("name, wa, wb, signed, n, seed", CELL_SHAPES, ids=CELL_IDS)
def test_cell_power_cost_matches_the_numpy_reference(name, wa, wb, signed, n, seed, glitch, request):
    t, energy = _cell_case(name, request)
    net = random_cells(wa, wb, signed, n, seed, t)
    a, b = activity.power_stream(wa, wb, 777, seed=5)
    stream = app.stream_vectors(a, b, wb)
    assert app.power_cost(net, energy, stream, glitch) == pytest.approx(
        app.reference_power_cost(net, energy, stream, glitch), rel=1e-12)


@pytest.mark.parametrize("name, wa, wb, signed, n, seed", CELL_SHAPES, ids=CELL_IDS)
def test_incremental_power_and_weighted_errors_of_cells_equal_a_fresh_simulation(name, wa, wb, signed, n, seed,
                                                                                 request):
    t, energy = _cell_case(name, request)

    def mutate(net, act, rng):
        net.mutate(act, rng, np.cumsum(cgp.DEFAULT_OPS))

    _random_walk(random_cells(wa, wb, signed, n, seed, t), energy, mutate, 40 if wa + wb < 16 else 12, seed)


def test_cell_energy_is_each_output_pin_with_its_cell_s_own_pins():
    """A full adder's two outputs have their own internal energies (Liberty FAX1 pins YS and YC) and the cell's
    own input capacitances per pin; an inverter's is its only pin's."""
    from tech import liberty

    t = tech_load("osu018")
    tb = _cell_tables("osu018")
    e = app.cell_energy(t, tb)
    lib = liberty.read(t.liberty)
    ys, yc = e.names.index("FAX1.YS"), e.names.index("FAX1.YC")
    assert e.toggle(ys, 0.02) != e.toggle(yc, 0.02)
    assert e.toggle(ys, 0.0) == pytest.approx(t.output_energy("FAX1", "YS").at(0.0))
    pins = {p.name: p.capacitance for p in lib.cells["FAX1"].inputs}
    fs = tb.cells.functions
    assert list(e.pin_cap[ys]) == pytest.approx([pins[p] * t.cap_pf for p in fs[ys].pins])
    assert len(set(e.pin_cap[ys])) == 3  # A, B and C load differently
    inv = e.names.index("INVX1")
    assert e.pin_cap[inv, 1:].tolist() == [0.0, 0.0] and e.pin_cap[inv, 0] > 0


def test_an_adder_instance_loads_its_inputs_once():
    """Both outputs of one FAX1 on a0, a1, b0 (the carry's inputs permuted) load a0 with one A pin; a second adder
    on the same a0 (another instance) loads it again."""
    from evolve import cellnet

    tb = _cell_tables("osu018")
    e = app.cell_energy(tech_load("osu018"), tb)
    fs = [f.name for f in tb.cells.functions]
    s, c = fs.index("FAX1.YS"), fs.index("FAX1.YC")
    # nodes 6 = S(a0, a1, b0), 7 = C(a1, a0, b0): one adder; 8 = C(a0, b0, b1): another
    net = cellnet.CellNetlist(2, 2, False, [s, c, c], [2, 3, 2], [3, 2, 4], [4, 4, 5], [6, 7, 8, 0], tb)
    net.check()
    order = np.flatnonzero(net.active()).astype(np.int32)
    load = net.fanout(order, e.pin_cap, e.po_cap)[0]
    pa, pb, pc = e.pin_cap[s]
    assert load[2] == pytest.approx(pa + pa)  # the first adder's A, the second adder's A
    assert load[3] == pytest.approx(pb)  # the first adder's B (node 7 is its other output: no pins of its own)
    assert load[4] == pytest.approx(pc + pb)
    assert load[5] == pytest.approx(pc)
    assert load[6] == load[7] == load[8] == pytest.approx(e.po_cap)
    assert net.cell_counts() == {"FAX1": 2}
    _, idle_node, idle_func = net.fanout(order, e.pin_cap, e.po_cap)
    assert list(zip(idle_node, idle_func)) == [(2, s)]  # the second adder's sum is unused, and still switches


def test_an_unused_adder_output_still_switches():
    """A half adder used for its sum alone costs the sum's toggles x (the sum pin's energy at its load + the idle
    carry pin's internal energy, unloaded), as OpenSTA's power of the instance has it."""
    from evolve import cellnet

    tb = _cell_tables("osu018")
    e = app.cell_energy(tech_load("osu018"), tb)
    fs = [f.name for f in tb.cells.functions]
    ys, yc = fs.index("HAX1.YS"), fs.index("HAX1.YC")
    net = cellnet.CellNetlist(2, 2, False, [ys], [2], [4], [0], [6, 0, 0, 0], tb)
    a, b = np.array([0, 1, 1, 0, 1, 1, 0]), np.array([0, 0, 1, 1, 1, 0, 0])
    # a0 ^ b0 over the stream: 0 1 0 1 0 1 0: six toggles over six transitions
    per_toggle = e.toggle(ys, e.po_cap) + e.toggle(yc, 0.0)
    assert e.toggle(yc, 0.0) > 0
    assert app.power_cost(net, e, app.stream_vectors(a, b, 2)) == pytest.approx(6 * per_toggle / 6)


def test_weighted_metrics_under_a_point_distribution():
    """All weight on one pair: the weighted figures are that pair's error; uniform weights give the plain mean."""
    wa = wb = 3
    rng = np.random.default_rng(1)
    exact = np.outer(golden.values(wa, True), golden.values(wb, True)).ravel()
    y = exact + rng.integers(-3, 4, size=exact.size)
    pa, pb = np.zeros(8), np.zeros(8)
    pa[5], pb[2] = 1.0, 1.0
    w = app.pair_weights(wa, wb, (pa, pb))
    m = weighted(y, exact, w, 16)
    e = int(y[(5 << wb) | 2] - exact[(5 << wb) | 2])
    assert m["bias_app"] == e and m["mae_app"] == abs(e) and m["mse_app"] == e * e and m["wce_app"] == abs(e)
    u = weighted(y, exact, app.pair_weights(wa, wb, None), 16)
    assert u["mae_app"] == pytest.approx(np.abs(y - exact).mean()) and u["wce_app"] == np.abs(y - exact).max()


# ------------------------------------------------------------------------------------------ distributions
def _hist(path: Path, rows: list[list[object]], header: tuple[str, ...] = ("value", "count_a", "count_b")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_a_dnn_run_directory_is_read_as_its_operands(tmp_path):
    """``--operands DIR``: the operands/all.csv a ``flow.py dnn`` run writes (dnn.operands.histogram_csv)."""
    from dnn.operands import histogram_csv

    acts, weights = np.zeros(256, dtype=np.int64), np.zeros(256, dtype=np.int64)
    acts[128:140] = np.arange(12, 0, -1)  # activations 0..11 after a ReLU
    weights[120:137] = 3  # weights -8..8
    (tmp_path / "operands").mkdir()
    (tmp_path / "operands" / "all.csv").write_text(histogram_csv(acts, weights, True), encoding="utf-8")
    pa, pb = activity.read_operands(str(tmp_path), 8, 8, True)
    assert pa[0] == pytest.approx(12 / 78) and pa[11] == pytest.approx(1 / 78) and pa[255] == 0  # code of -1
    assert pb[(-8) & 255] == pytest.approx(1 / 17) and pb[9] == 0


@pytest.mark.parametrize("rows, header, pattern", [
    ([[0, 1, 2, 3]], ("value", "count_a", "count_b", "extra"),
     r"^error: operand histogram .* must have columns value,count or value,count_a,count_b, not "
     r"value,count_a,count_b,extra$"),
    ([[0, 1, 2], [1, 2]], ("value", "count_a", "count_b"), r"^error: operand histogram .* line 3: value must be an "
     r"integer and count_b a number, not '1', None$"),
    ([[0, -1, 2]], ("value", "count_a", "count_b"), r"^error: operand histogram .* line 2: count_a must be a finite "
     r"number >= 0, not '-1'$"),
    ([[0, "many", 2]], ("value", "count_a", "count_b"), r"^error: operand histogram .* line 2: value must be an "
     r"integer and count_a a number, not '0', 'many'$"),
], ids=["wrong-shape", "short-row", "negative", "non-numeric"])
def test_bad_distribution_files_are_one_line_errors(tmp_path, rows, header, pattern):
    path = _hist(tmp_path / "h.csv", rows, header)
    proc = flow("evolve", "--bits", "4", "--cost", "power", "--operands", str(path), "--run-dir", str(tmp_path / "run"))
    one_line_error(proc, pattern)
    assert not (tmp_path / "run").exists()


def test_a_directory_without_operands_is_refused(tmp_path):
    proc = flow("evolve", "--bits", "4", "--operands", str(tmp_path), "--run-dir", str(tmp_path / "run"))
    one_line_error(proc, r"^error: OPERANDS must be 'uniform', a histogram CSV or a flow.py dnn run directory "
                         r"holding operands/all.csv, not the directory ")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, pattern", [
    (["--mae-limit", "0"], r"^error: MAE_LIMIT must be in \(0, 1\), not 0\.0$"),
    (["--bias-limit", "1.5"], r"^error: BIAS_LIMIT must be in \(0, 1\), not 1\.5$"),
    (["--mae-limit", "none"], r"^error: MAE_LIMIT must be a number, not 'none'$"),
    (["--bits", "9", "--mae-limit", "0.01"], r"^error: MAE_LIMIT must be left out above 16 input bits .*, not 0\.01$"),
    (["--cost", "energy"], r"^error: COST must be one of the listed choices, not 'energy' "
                           r"\(choices: area, transistors, power\)$"),
    (["--mse-limit", "0"], r"^error: MSE_LIMIT must be in \(0, 1\), not 0\.0$"),
    (["--mse-limit", "1"], r"^error: MSE_LIMIT must be in \(0, 1\), not 1\.0$"),
    (["--mse-limit=-1e-4"], r"^error: MSE_LIMIT must be in \(0, 1\), not -0\.0001$"),
    (["--mse-limit", "nan"], r"^error: MSE_LIMIT must be a finite number, not nan$"),
    (["--mse-limit", "tiny"], r"^error: MSE_LIMIT must be a number, not 'tiny'$"),
    (["--bits", "9", "--mse-limit", "1e-5"], r"^error: MSE_LIMIT must be left out above 16 input bits .*, not 1e-05$"),
    (["--function-set", "cells", "--cost", "transistors"], r"^error: COST must be area or power with --function-set "
                                                            r"cells \(cells have no transistor counts\), not "
                                                            r"'transistors' \(choices: area, power\)$"),
], ids=["mae-zero", "bias-high", "mae-text", "mae-wide", "cost", "mse-zero", "mse-one", "mse-negative", "mse-nan",
        "mse-text", "mse-wide", "cells-transistors"])
def test_bad_limits_are_one_line_errors(tmp_path, args, pattern):
    proc = flow("evolve", *args, "--run-dir", str(tmp_path / "run"))
    one_line_error(proc, pattern)
    assert not (tmp_path / "run").exists()


def test_uphill_defaults_by_objective_and_a_given_one_wins():
    """The power cost has no plateaus, so its search drifts with a wider threshold; a given --uphill is kept."""
    from evolve.job import UPHILL, EvolveConfig

    assert EvolveConfig().uphill_gates == UPHILL["area"] == 1.0
    assert EvolveConfig(cost="transistors").uphill_gates == 1.0
    assert EvolveConfig(cost="power").uphill_gates == UPHILL["power"] > 1.0
    assert EvolveConfig(cost="power", uphill=0.0).uphill_gates == 0.0
    assert EvolveConfig(uphill=3.0).uphill_gates == 3.0
    one_line_error(flow("evolve", "--uphill=-1", "--run-dir", "/nonexistent/x"),
                   r"^error: UPHILL must be >= 0 gates, not -1\.0$")


def test_glitch_weight_reaches_the_search_only_under_power_and_a_bad_one_is_refused():
    """--glitch weights the unit-delay glitch energy of the power objective (the digest tells the costs apart,
    and a zero weight keeps the digest runs had before it); outside [0, 4] it is a one-line error."""
    from evolve.job import EvolveConfig

    assert EvolveConfig().glitch == app.GLITCH > 0
    stream = np.arange(10, dtype=np.int64)
    specs = [app.ObjectiveSpec(2, 2, True, stream=stream, glitch=g) for g in (0.0, 0.25, 0.5)]
    assert len({s.digest for s in specs}) == 3
    assert app.ObjectiveSpec(2, 2, True, stream=stream).digest == specs[0].digest
    one_line_error(flow("evolve", "--glitch=5", "--run-dir", "/nonexistent/x"),
                   r"^error: GLITCH must be in \[0(\.0)?, 4(\.0)?\], not 5\.0$")


@pytest.mark.parametrize("command, value", [("sweep", "0"), ("library", "1.5")], ids=["sweep", "library"])
def test_a_bad_mse_limit_of_a_sweep_or_library_is_a_one_line_error(tmp_path, command, value):
    """Every member's configuration is checked before anything runs: nothing is written."""
    proc = flow(command, "--bits", "4", "--mse-limit", value, "--run-dir", str(tmp_path / "out"))
    one_line_error(proc, rf"^error: MSE_LIMIT must be in \(0, 1\), not {float(value)!r}$")
    assert not (tmp_path / "out").exists()


def test_mse_limit_is_in_the_sweep_and_library_fingerprints():
    from evolve import library, sweep

    for stage in (sweep.STAGE, library.STAGE):
        assert {"mae_limit", "bias_limit", "mse_limit"} <= set(stage.fingerprint), stage.name


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def skewed(tmp_path_factory) -> Path:
    """A 4-bit operand histogram: a small and positive, b near zero."""
    path = tmp_path_factory.mktemp("hist") / "h4.csv"
    return _hist(path, [[v, max(0, 8 - abs(v - 2)) ** 2, 16 if v in (-1, 0, 1) else 1] for v in range(-8, 8)])


def _evolve(d: Path, *args: str) -> dict:
    need_tools("yosys", "iverilog", "vvp", "sta")
    proc = flow("evolve", "--bits", "4", "--eps", "0.05", "--generations", "3000", "--budget", "0", "--seed", "3",
                "--run-dir", str(d), *QUICK, *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads((d / "report.json").read_text())


@pytest.mark.tools
@pytest.mark.sim
def test_cost_power_end_to_end(tmp_path, skewed, energy):
    """``--cost power`` on a tiny budget: verified, cheaper in the objective than the exact seed, the power cost
    measured on the very stream OpenSTA's power was (recomputed here from the shipped netlist), and calibrated."""
    # --uphill 1: a strict threshold makes every small gain a new best, so the trajectory has circuits to
    # calibrate on at this size (under power's default of 4 a 4x4 search finds its best in a step or two)
    r = _evolve(tmp_path / "run", "--cost", "power", "--operands", str(skewed), "--no-descent", "--calibrate", "2",
                "--uphill", "1")
    assert r["cost_objective"] == "power" and r["verification"]["passed"] and r["wce"] <= r["wce_limit"]
    assert r["power_cost"] < r["power_cost_exact"]
    net = Netlist.from_json(json.loads((tmp_path / "run" / "approx.json").read_text()))
    probs = activity.read_histogram(skewed, 4, 4, True)
    a, b = activity.power_stream(4, 4, 200, 3, probs)
    assert r["power_cost"] == pytest.approx(app.power_cost(net, energy, app.stream_vectors(a, b, 4), app.GLITCH),
                                             rel=1e-12)
    cal = r["power_calibration"]
    assert len(cal["circuits"]) == 4 and [c["circuit"] for c in cal["circuits"][:2]] == ["exact", "result"]
    assert r["power_cost_correlation"] == cal["pearson"] and -1.0 <= cal["pearson"] <= 1.0
    for key in ("mae_app", "mse_app", "bias_app", "er_app", "wce_app"):
        assert key in r


@pytest.mark.tools
@pytest.mark.sim
def test_a_power_run_from_before_the_glitch_term_resumes_without_it(tmp_path, skewed):
    """A run stored before --glitch existed has no GLITCH in its config.json: --resume takes the value it ran
    with (0, no glitch term), not today's default, whose objective its checkpoint does not belong to."""
    d = tmp_path / "old"
    _evolve(d, "--cost", "power", "--operands", str(skewed), "--no-descent", "--glitch", "0", "--generations", "1000")
    conf = json.loads((d / "config.json").read_text())
    del conf["settings"]["glitch"]
    (d / "config.json").write_text(json.dumps(conf))
    proc = flow("evolve", "--resume", "--generations", "1500", "--run-dir", str(d), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((d / "config.json").read_text())["settings"]["glitch"] == 0.0
    assert json.loads((d / "report.json").read_text())["generations"] == 1500


@pytest.mark.tools
@pytest.mark.sim
def test_mae_and_bias_limits_are_enforced(tmp_path, skewed, free_run):
    """The same run with and without --mae-limit/--bias-limit: without them the weighted figures are beyond the
    limits (so the limits bind), with them they are within, while the WCE stays within its own limit."""
    free = free_run
    mae_limit, bias_limit = 0.004, 0.002
    held = _evolve(tmp_path / "held", "--operands", str(skewed), "--mae-limit", str(mae_limit),
                   "--bias-limit", str(bias_limit))
    n = held["norm"]
    assert free["mae_app"] > mae_limit * n and abs(free["bias_app"]) > bias_limit * n
    assert held["mae_app"] <= mae_limit * n and abs(held["bias_app"]) <= bias_limit * n
    assert held["wce"] <= held["wce_limit"] and held["verification"]["passed"]
    assert held["mae_limit"] == mae_limit and held["bias_limit"] == bias_limit
    # the uniform figures are reported beside the weighted ones, and differ under a skewed distribution
    assert held["mae"] != held["mae_app"]


@pytest.fixture(scope="module")
def free_run(tmp_path_factory, skewed) -> dict:
    """The 4x4 run without application limits that the limited runs are compared with."""
    return _evolve(tmp_path_factory.mktemp("free") / "run", "--operands", str(skewed))


@pytest.mark.tools
@pytest.mark.sim
def test_mse_limit_is_enforced(tmp_path, skewed, free_run):
    """--mse-limit binds: the run without it ends beyond it; with it the weighted MSE is within MSE_LIMIT x N^2
    (and reported), while the WCE stays within its own limit."""
    mse_limit = 2e-4
    held = _evolve(tmp_path / "held", "--operands", str(skewed), "--mse-limit", str(mse_limit))
    n2 = held["norm"] ** 2
    assert free_run["mse_app"] > mse_limit * n2
    assert held["mse_app"] <= mse_limit * n2 and held["mse_limit"] == mse_limit
    assert held["wce"] <= held["wce_limit"] and held["verification"]["passed"]
    assert held["mae_limit"] is None and held["bias_limit"] is None
    assert "the search held them to mse_limit 0.0002 x N^2" in (tmp_path / "held" / "report.md").read_text()


@pytest.mark.tools
@pytest.mark.sim
def test_cells_with_power_and_limits_end_to_end(tmp_path, skewed):
    """``--function-set cells --cost power`` with an MAE limit, calibrated: verified, within its limits, cheaper
    in its objective than the exact cell seed, its power cost recomputed from the shipped cells
    (approx_cells.json) with the cells' own energies, and a power cost that correlates with OpenSTA's power on
    the cells as they ship."""
    from evolve import cellnet

    mae_limit = 0.01
    d = tmp_path / "run"
    # --uphill 1, as in test_cost_power_end_to_end: a trajectory of new bests to calibrate on at this size
    r = _evolve(d, "--function-set", "cells", "--cost", "power", "--operands", str(skewed), "--calibrate", "4",
                "--mae-limit", str(mae_limit), "--uphill", "1")
    assert r["function_set"] == "cells" and r["cost_objective"] == "power" and r["verification"]["passed"]
    assert r["wce"] <= r["wce_limit"] and r["mae_app"] <= mae_limit * r["norm"]
    assert r["power_cost"] < r["power_cost_exact"]
    tb = _cell_tables("osu018")
    net = cellnet.CellNetlist.from_json(json.loads((d / "approx_cells.json").read_text()), tb)
    probs = activity.read_histogram(skewed, 4, 4, True)
    a, b = activity.power_stream(4, 4, 200, 3, probs)
    stream = app.stream_vectors(a, b, 4)
    energy = app.cell_energy(tech_load("osu018"), tb)
    assert r["power_cost"] == pytest.approx(app.power_cost(net, energy, stream, app.GLITCH), rel=1e-12)
    assert r["power_cost"] == pytest.approx(app.reference_power_cost(net, energy, stream, app.GLITCH), rel=1e-12)
    cal = r["power_calibration"]
    assert [c["circuit"] for c in cal["circuits"][:2]] == ["exact", "result"] and len(cal["circuits"]) >= 4
    assert all((d / "calibration" / f"{c['circuit']}_osu018.v").is_file() for c in cal["circuits"][2:])
    # the exact design is the most expensive in both; along the short trajectory the differences are within
    # what the zero-delay cost does not see (glitches), so the correlation is positive, not near 1 (0.79 here)
    assert r["power_cost_correlation"] == cal["pearson"] and cal["pearson"] > 0.5
    exact, *evolved = cal["circuits"]
    assert all(exact["power_cost"] > c["power_cost"] and exact["power_w"] > c["power_w"] for c in evolved)


def test_library_draws_power_against_the_mae_under_non_uniform_operands(tmp_path, skewed):
    """With --operands a histogram the catalogue has the power_mae_app plane (its flags follow the rows, its plot
    is drawn); uniform, the plane is left out and its column empty."""
    from evolve import library
    from evolve.library import APP_PLANE, PLANES, dominated

    rows = [(0.5, 0.3, 2.6), (0.4, 0.35, 1.5), (0.6, 0.25, 2.5), (0.7, 0.5, 3.0)]  # (mae, mae_app, power_w)
    for operands in (str(skewed), "uniform"):
        cfg = library.LibraryConfig(bits=4, seeds=(1,), eps=(0.01, 0.02, 0.05, 0.1), operands=operands)
        plan = library.members(cfg)
        done = {library.member_name(m.eps, m.seed): {
            "wce": 3 + i, "wce_limit": 4 + i, "mae": mae, "mae_app": mae_app, "power_w": p, "area": 100.0 - i,
            "verification": {"passed": True}, "wce_proof": {"method": "exhaustive"}, "_build": "new"}
            for i, (m, (mae, mae_app, p)) in enumerate(zip(plan, rows))}
        where = tmp_path / operands.replace("/", "_")
        where.mkdir()
        cat = library._catalogue(where, where, cfg, {}, plan, [], done, [])
        names = [p["name"] for p in cat["pareto_planes"]]
        got = [r.get("dominated_power_mae_app") for r in cat["rows"]]
        if operands == "uniform":
            assert names == [p for p, _, _ in PLANES] and got == [None] * 4
            assert not (where / "power_vs_mae_app.png").exists()
            continue
        assert names == [p for p, _, _ in (*PLANES, APP_PLANE)]
        assert got == dominated([(m, p) for _, m, p in rows], ("mae_app", "power_w")) == [True, False, False, True]
        assert (where / "power_vs_mae_app.png").stat().st_size > 1000
        for r in cat["rows"]:
            assert r["dominated"] == all(r[f"dominated_{p}"] for p in names)
        with open(where / "library.csv", newline="") as f:
            assert "dominated_power_mae_app" in next(csv.reader(f))


def test_library_catalogue_has_both_error_sets_and_the_correlation():
    from evolve import library

    for key in ("mae", "mae_app", "bias", "bias_app", "mse", "mse_app", "power_cost", "power_w"):
        assert key in library.COLUMNS
    rows = [{"kind": "member", "power_cost": c, "power_w": p} for c, p in ((1.0, 2.0), (2.0, 4.1), (3.0, 5.9))]
    rows.append({"kind": "reference", "power_cost": None, "power_w": 9.0})  # a reference has no power cost
    assert library.power_cost_correlation(rows) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4.1, 5.9])[0, 1])
    assert library.power_cost_correlation(rows[:2]) is None  # two points say nothing
