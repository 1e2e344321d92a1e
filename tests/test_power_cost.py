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


@pytest.mark.parametrize("wa, wb, signed, gates", SHAPES, ids=IDS)
def test_power_cost_matches_the_numpy_reference(energy, wa, wb, signed, gates):
    rng = np.random.default_rng(wa * 10 + wb)
    net = random_netlist(wa, wb, signed, gates, rng)
    a, b = activity.power_stream(wa, wb, 777, seed=5)  # 777: the last word is partly padding
    stream = app.stream_vectors(a, b, wb)
    assert app.power_cost(net, energy, stream) == pytest.approx(app.reference_power_cost(net, energy, stream),
                                                                rel=1e-12)


@pytest.mark.parametrize("wa, wb, signed, gates", SHAPES, ids=IDS)
def test_incremental_power_and_weighted_errors_equal_a_fresh_simulation(energy, wa, wb, signed, gates):
    """Along a random walk of mutations (every other child accepted), each child's incremental power cost and
    weighted error sums equal the numpy reference's."""
    rng = np.random.default_rng(3)
    parent = random_netlist(wa, wb, signed, gates, rng)
    a, b = activity.power_stream(wa, wb, 300, seed=2)
    stream = app.stream_vectors(a, b, wb)
    pa, pb = rng.random(1 << wa), rng.random(1 << wb)
    probs = (pa / pa.sum(), pb / pb.sum())
    ev = Evaluator(wa, wb, signed, parent.n_addr, children=2, chunk_words=2)
    ob = app.ObjectiveSpec(wa, wb, signed, stream=stream, energy=energy, probs=probs, mae_limit=1e12).build(
        ev, parent.n_addr, 2)
    _, act, _, _ = ob.load_parent(parent, np.ones(len(FUNCS)))
    w = app.pair_weights(wa, wb, probs)
    cum = np.cumsum(cgp.DEFAULT_OPS)
    dirty = np.zeros(parent.n_addr, dtype=np.bool_)
    for step in range(60):
        child = parent.copy()
        kernels.mutate(child.func, child.in0, child.in1, child.out, child.first, act, rng, cum, len(FUNCS))
        wce, cost, _, cact, order, sums = ob.assess(child, parent, np.ones(len(FUNCS)), 1 << 30, np.inf, dirty, 1,
                                                    1 << 62)
        d = reference_outputs(child) - ev.exact
        assert wce == int(np.abs(d).max()), f"step {step}"
        assert cost == pytest.approx(app.reference_power_cost(child, energy, stream), rel=1e-12), f"step {step}"
        assert sums[0] == pytest.approx(float(np.dot(w, np.abs(d))), rel=1e-9, abs=1e-12), f"step {step}"
        assert sums[1] == pytest.approx(float(np.dot(w, d)), rel=1e-9, abs=1e-9), f"step {step}"
        if step % 2 == 0:
            ob.commit(order, dirty, 1, cact)
            parent, act = child, cact


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
], ids=["mae-zero", "bias-high", "mae-text", "mae-wide", "cost"])
def test_bad_limits_are_one_line_errors(tmp_path, args, pattern):
    proc = flow("evolve", *args, "--run-dir", str(tmp_path / "run"))
    one_line_error(proc, pattern)
    assert not (tmp_path / "run").exists()


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
    r = _evolve(tmp_path / "run", "--cost", "power", "--operands", str(skewed), "--no-descent", "--calibrate", "2")
    assert r["cost_objective"] == "power" and r["verification"]["passed"] and r["wce"] <= r["wce_limit"]
    assert r["power_cost"] < r["power_cost_exact"]
    net = Netlist.from_json(json.loads((tmp_path / "run" / "approx.json").read_text()))
    probs = activity.read_histogram(skewed, 4, 4, True)
    a, b = activity.power_stream(4, 4, 200, 3, probs)
    assert r["power_cost"] == pytest.approx(app.power_cost(net, energy, app.stream_vectors(a, b, 4)), rel=1e-12)
    cal = r["power_calibration"]
    assert len(cal["circuits"]) == 4 and [c["circuit"] for c in cal["circuits"][:2]] == ["exact", "result"]
    assert r["power_cost_correlation"] == cal["pearson"] and -1.0 <= cal["pearson"] <= 1.0
    for key in ("mae_app", "mse_app", "bias_app", "er_app", "wce_app"):
        assert key in r


@pytest.mark.tools
@pytest.mark.sim
def test_mae_and_bias_limits_are_enforced(tmp_path, skewed):
    """The same run with and without --mae-limit/--bias-limit: without them the weighted figures are beyond the
    limits (so the limits bind), with them they are within, while the WCE stays within its own limit."""
    free = _evolve(tmp_path / "free", "--operands", str(skewed))
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


def test_library_catalogue_has_both_error_sets_and_the_correlation():
    from evolve import library

    for key in ("mae", "mae_app", "bias", "bias_app", "mse", "mse_app", "power_cost", "power_w"):
        assert key in library.COLUMNS
    rows = [{"kind": "member", "power_cost": c, "power_w": p} for c, p in ((1.0, 2.0), (2.0, 4.1), (3.0, 5.9))]
    rows.append({"kind": "reference", "power_cost": None, "power_w": 9.0})  # a reference has no power cost
    assert library.power_cost_correlation(rows) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4.1, 5.9])[0, 1])
    assert library.power_cost_correlation(rows[:2]) is None  # two points say nothing
