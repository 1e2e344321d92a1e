"""The cell function set (``--function-set cells``): Liberty functions as truth tables, the three-input
evaluator against a plain reference, mutation, the shipped cell netlist read back by Yosys, end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tech
from conftest import need_tools
from core import golden
from core.errors import ConfigError
from core.run import RunDir
from evolve import cellnet, cgp
from evolve.evaluator import Evaluator, reference_outputs
from tech import cells, liberty

ROOT = Path(__file__).resolve().parent.parent
GF = "gf180mcu_fd_sc_mcu9t5v0__"


def _table(fn, n: int) -> int:
    """Three-slot truth table of a Python predicate of n inputs (slot s = bit s of the row)."""
    return sum(1 << i for i in range(8) if fn(*(((i >> s) & 1) == 1 for s in range(n))))


OSU = [
    ("OAI21X1", lambda a, b, c: not ((a or b) and c), 3),
    ("AOI21X1", lambda a, b, c: not ((a and b) or c), 3),
    ("MUX2X1", lambda a, b, s: not ((s and a) or (not s and b)), 3),
    ("NAND3X1", lambda a, b, c: not (a and b and c), 3),
    ("FAX1.YS", lambda a, b, c: a ^ b ^ c, 3),
    ("FAX1.YC", lambda a, b, c: (a and b) or (b and c) or (a and c), 3),
    ("HAX1.YC", lambda a, b: a and b, 2),
    ("XNOR2X1", lambda a, b: not (a ^ b), 2),
    ("INVX1", lambda a: not a, 1),
]
GF180 = [
    (GF + "aoi21_1", lambda a1, a2, b: not ((a1 and a2) or b), 3),
    (GF + "oai21_1", lambda a1, a2, b: not ((a1 or a2) and b), 3),
    (GF + "mux2_1", lambda i0, i1, s: i1 if s else i0, 3),
    (GF + "xor3_1", lambda a, b, c: a ^ b ^ c, 3),
    (GF + "xnor3_1", lambda a, b, c: not (a ^ b ^ c), 3),
    (GF + "addf_1.CO", lambda a, b, c: (a and b) or (a and c) or (b and c), 3),
    (GF + "and3_1", lambda a, b, c: a and b and c, 3),
    (GF + "nor2_1", lambda a, b: not (a or b), 2),
]


def _cellset(name: str, request: pytest.FixtureRequest) -> cells.CellSet:
    spec = str(request.getfixturevalue("gf180_dir")) if name == "gf180" else name
    return cells.load(tech.load(spec))


@pytest.mark.parametrize("cell, fn, n", OSU, ids=[c for c, _, _ in OSU])
def test_osu018_functions_from_liberty(cell, fn, n):
    cs = cells.load(tech.load("osu018"))
    f = next(f for f in cs.functions if f.name == cell)
    assert f.arity == n and f.table == _table(fn, n)


@pytest.mark.parametrize("cell, fn, n", GF180, ids=[c[len(GF):] for c, _, _ in GF180])
def test_gf180_functions_from_liberty(cell, fn, n, gf180_dir):
    cs = cells.load(tech.load(gf180_dir))
    f = next(f for f in cs.functions if f.name == cell)
    assert f.arity == n and f.table == _table(fn, n)


@pytest.mark.parametrize("name", ["osu018", "gf180"])
def test_set_leaves_out_buffers_tristates_and_wide_cells(name, request):
    cs = _cellset(name, request)
    lib = liberty.read(cs.liberty)
    for f in cs.functions:
        cell = lib.cells[f.cell]
        assert 1 <= len(cell.inputs) <= 3 and not cell.sequential and not cell.dont_use
        assert all(p.three_state is None for p in cell.outputs)
        assert f.area == cell.area
    tables = [(f.arity, f.table) for f in cs.functions if f.group < 0]
    assert len(tables) == len(set(tables))  # one cell per function: the smallest
    assert cs.buffer is not None and cs.buffer[0] not in cs.cells
    groups = [f for f in cs.functions if f.group >= 0]
    assert len(groups) == 4 and len(cs.groups) == 2  # half and full adder, two outputs each


def test_restricted_liberty_keeps_only_the_set(tmp_path):
    cs = cells.load(tech.load("osu018"))
    lib = liberty.read(cells.restricted_liberty(cs, tmp_path / "r.lib"))
    usable = {c.name for c in lib.cells.values() if not c.dont_use}
    assert usable == set(cs.cells) | {cs.buffer[0]}


# ------------------------------------------------------------------ evaluation
def _tables(name: str = "osu018") -> cellnet.Tables:
    return cellnet.tables(cells.load(tech.load(name)))


def random_net(wa: int, wb: int, is_signed: bool, n: int, seed: int, t: cellnet.Tables) -> cellnet.CellNetlist:
    rng = np.random.default_rng(seed)
    first = 2 + wa + wb
    func = rng.integers(0, t.n, size=n)
    ins = [np.array([rng.integers(0, first + k) for k in range(n)]) for _ in range(3)]
    out = rng.integers(first + n // 2, first + n, size=wa + wb)
    net = cellnet.CellNetlist(wa, wb, is_signed, func, *ins, out, t)
    net.check()
    return net


def slow_outputs(net: cellnet.CellNetlist) -> np.ndarray:
    """Output values by plain simulation, one byte per vector, each node by its truth table."""
    assert hasattr(net, "tables")
    return reference_outputs(net)


SHAPES = [(4, 4, True, 60, 1), (3, 5, False, 80, 2), (5, 5, True, 120, 3)]


@pytest.mark.parametrize("wa, wb, signed, n, seed", SHAPES, ids=["4x4s", "3x5u", "5x5s"])
def test_three_input_evaluator_matches_reference(wa, wb, signed, n, seed):
    net = random_net(wa, wb, signed, n, seed, _tables())
    expect = slow_outputs(net)
    ev = Evaluator(wa, wb, signed, net.n_addr)
    assert np.array_equal(ev.outputs(net), expect)
    wce, _ = ev.load_parent(net)
    exact = golden.table(wa, wb, signed).ravel()
    assert wce == int(np.abs(expect - exact).max())


@pytest.mark.parametrize("wa, wb, signed, n, seed", SHAPES, ids=["4x4s", "3x5u", "5x5s"])
def test_generic_view_computes_the_same(wa, wb, signed, n, seed):
    net = random_net(wa, wb, signed, n, seed, _tables())
    assert np.array_equal(reference_outputs(net.to_generic()), slow_outputs(net))


@pytest.mark.parametrize("name", ["osu018", "gf180"])
def test_incremental_evaluation_of_mutants_is_exact(name, request):
    t = cellnet.tables(_cellset(name, request))
    parent = random_net(4, 4, True, 80, 7, t)
    ev = Evaluator(4, 4, True, parent.n_addr, children=1)
    _, act = ev.load_parent(parent)
    rng = np.random.default_rng(5)
    cum = np.cumsum(cgp.DEFAULT_OPS)
    dirty = np.zeros(parent.n_addr, dtype=np.bool_)
    exact = golden.table(4, 4, True).ravel()
    for _ in range(60):
        child = parent.copy()
        child.mutate(act, rng, cum)
        child.check()
        wce, cost, _, _, _ = child.assess(parent, t.area, 1 << 30, np.inf, ev, dirty, 1, 1 << 62)
        assert wce == int(np.abs(slow_outputs(child) - exact).max())
        assert cost == pytest.approx(child.area())


def test_mutation_keeps_arity_and_order():
    """Every mutant reads only earlier addresses in the slots its function reads, and after folding a
    node reads no constant or repeated input where a smaller cell of the set computes the same."""
    t = _tables()
    net = random_net(4, 4, True, 100, 11, t)
    rng = np.random.default_rng(3)
    cum = np.cumsum(cgp.DEFAULT_OPS)
    ops = set()
    for _ in range(400):
        act = net.active()
        ops.add(net.mutate(act, rng, cum))
        net.check()
        for k in np.flatnonzero(net.active()):
            used = net.used_inputs(int(k))
            assert len(used) == t.arity[net.func[k]] and all(x < net.first + k for x in used)
    assert ops == set(range(6))
    merged = net.compact()
    for k in range(merged.n_gates):
        f = merged.tables.cells.functions[int(merged.func[k])]
        used = merged.used_inputs(k)
        if f.name in ("NAND2X1", "NOR2X1", "XOR2X1"):  # reducible by every constant and by a repeat
            assert min(used) > 1 and len(set(used)) == 2


def test_adder_outputs_on_the_same_inputs_are_one_cell():
    t = _tables()
    fs = [f.name for f in t.cells.functions]
    s, c, x = fs.index("FAX1.YS"), fs.index("FAX1.YC"), fs.index("XOR2X1")
    # y0 = S(a0, a1, b0), y1 = C(b0, a0, a1) (the same inputs, permuted), y2 = C(a0, a1, b1)
    func = [s, c, c, x]
    in0, in1, in2 = [2, 4, 2, 8], [3, 2, 3, 10], [4, 3, 5, 0]
    out = [8, 9, 10, 11, 0, 0]
    net = cellnet.CellNetlist(2, 4, False, func, in0, in1, in2, out, t)
    net.check()
    area = dict((f.name, f.area) for f in t.cells.functions)
    assert net.area() == 2 * area["FAX1.YS"] + area["XOR2X1"]
    assert net.cell_counts() == {"FAX1": 2, "XOR2X1": 1}
    v = net.to_cell_verilog("m")
    assert v.count("FAX1 ") == 2 and ".YS(n8), .YC(n9)" in v


# ------------------------------------------------------------------ the shipped netlist, read by Yosys
def _shipped(tmp_path: Path, t: tech.Technology, seed: int) -> tuple[RunDir, cellnet.CellNetlist]:
    tb = cellnet.tables(cells.load(t))
    net = random_net(4, 4, True, 70, seed, tb).compact()
    run = RunDir.create(tmp_path / "run")
    return run, net


@pytest.mark.tools
@pytest.mark.parametrize("name, seed", [("osu018", 21), ("osu018", 22), ("gf180", 23)],
                         ids=["osu018-a", "osu018-b", "gf180"])
def test_cell_verilog_equals_generic_view_and_costs_its_area(tmp_path, name, seed, request):
    need_tools("yosys")
    from ppa import yosys
    from verify import formal

    t = tech.load(str(request.getfixturevalue("gf180_dir")) if name == "gf180" else name)
    run, net = _shipped(tmp_path, t, seed)
    cell_v = run.write_text(f"m_{t.name}.v", net.to_cell_verilog("m"))
    gen_v = run.write_text("m.v", net.to_generic().to_verilog("m"))
    eq = formal.equivalent(run, [gen_v], "m", [cell_v], "m", step="eq", gate_liberty=t.liberty)
    assert eq.proven
    assert yosys.cell_area(run, cell_v, "m", t).area == pytest.approx(net.area())


@pytest.mark.tools
def test_a_wrong_cell_netlist_fails_the_equivalence(tmp_path):
    need_tools("yosys")
    from verify import formal

    t = tech.load("osu018")
    run, net = _shipped(tmp_path, t, 21)
    gen_v = run.write_text("m.v", net.to_generic().to_verilog("m"))
    bad = net.copy()
    k = int(np.flatnonzero(bad.tables.arity[bad.func] == 2)[-1])
    bad.func[k] = [f.name for f in bad.tables.cells.functions].index(
        "NOR2X1" if bad.tables.cells.functions[int(bad.func[k])].name != "NOR2X1" else "NAND2X1")
    assert not np.array_equal(slow_outputs(bad), slow_outputs(net))  # the change is visible
    cell_v = run.write_text("bad.v", bad.to_cell_verilog("m"))
    assert not formal.equivalent(run, [gen_v], "m", [cell_v], "m", step="eq", gate_liberty=t.liberty).proven


def _two_node_cell_verilog(tmp_path, funcs, in0, in1, in2):
    """A 2x2 cell netlist of two nodes (n6, n7) driving y[0], y[1], written as OSU018 cell Verilog."""
    tb = _tables()
    fs = [f.name for f in tb.cells.functions]
    net = cellnet.CellNetlist(2, 2, False, [fs.index(f) for f in funcs], in0, in1, in2, [6, 7, 0, 0], tb)
    net.check()
    run = RunDir.create(tmp_path / "run")
    return run, run.write_text("m_osu018.v", net.to_cell_verilog("m"))


@pytest.mark.tools
def test_an_adder_with_an_unused_output_is_powered(tmp_path):
    """OpenSTA's power of a cell netlist in which a half adder's carry is left unconnected (an output used
    alone, as the search ships it): every instance is powered by the activity of the net it drives."""
    need_tools("sta")
    from ppa import sta

    run, v = _two_node_cell_verilog(tmp_path, ("HAX1.YS", "NAND2X1"), [2, 4], [4, 3], [0, 0])
    assert "HAX1" in v.read_text() and ".YC(" not in v.read_text()
    res = sta.analyse(run, v, "m", tech.load("osu018"), clock_period_ns=10, step="sta_ha",
                      activity={n: (0.5, 0.5) for n in ("n6", "n7", "y[0]", "y[1]", "y[2]", "y[3]")})
    assert len(res.instances) == 2 and res.instances["u6"][0] == ("n6",)
    assert res.power_dynamic_w > 0


@pytest.mark.tools
def test_a_full_adder_is_powered_by_both_outputs(tmp_path):
    """A cell with two connected outputs (a full adder's sum and carry) is one instance whose power at unit
    activity holds both outputs' parts: it is scaled by the mean of the two nets' activities, not by
    whichever output OpenSTA lists last (regression: an idle carry made a busy sum cost nothing)."""
    need_tools("sta")
    from ppa import sta

    run, v = _two_node_cell_verilog(tmp_path, ("FAX1.YS", "FAX1.YC"), [2, 2], [3, 3], [4, 4])
    assert v.read_text().count("FAX1 ") == 1
    act = {f"y[{i}]": (0.0, 0.5) for i in range(4)}
    powers = {}
    for ys, yc in ((0.6, 0.0), (0.0, 0.6), (0.6, 0.6)):
        res = sta.analyse(run, v, "m", tech.load("osu018"), clock_period_ns=10, step=f"sta_fa_{ys}_{yc}",
                          activity={**act, "n6": (ys, 0.5), "n7": (yc, 0.5)})
        (inst, (nets, i, s, leak),), = res.instances.items()
        assert sorted(nets) == ["n6", "n7"]
        powers[ys, yc] = res.instance_power_w[inst] - leak
        assert powers[ys, yc] == pytest.approx((ys + yc) / 2 * (i + s))
    assert powers[0.6, 0.0] > 0 and powers[0.0, 0.6] > 0  # either output alone busy costs power
    assert powers[0.6, 0.6] == pytest.approx(2 * powers[0.6, 0.0])


@pytest.mark.tools
def test_an_output_net_named_with_a_comma_is_one_net(tmp_path):
    """Verilog's escaped identifiers may hold a comma: each connected output is its own line of the STA's
    report, so a full adder whose sum drives ``\\s,um`` is scaled by that net's activity and its carry's
    (regression: the nets were joined by commas and split again, into two nets that do not exist)."""
    need_tools("sta")
    from ppa import sta

    run, v = _two_node_cell_verilog(tmp_path, ("FAX1.YS", "FAX1.YC"), [2, 2], [3, 3], [4, 4])
    text = v.read_text()
    assert re.search(r"\bn6\b", text)
    v.write_text(re.sub(r"\bn6\b", lambda _: "\\s,um ", text), encoding="utf-8")
    act = {f"y[{i}]": (0.0, 0.5) for i in range(4)}
    res = sta.analyse(run, v, "m", tech.load("osu018"), clock_period_ns=10, step="sta_fa_comma",
                      activity={**act, "s,um": (0.6, 0.5), "n7": (0.2, 0.5)})
    (inst, (nets, i, s, leak),), = res.instances.items()
    assert sorted(nets) == ["n7", "s,um"]
    assert res.instance_power_w[inst] - leak == pytest.approx(0.4 * (i + s))


# ------------------------------------------------------------------ the job
def test_bad_function_set_is_a_one_line_error():
    from evolve.job import EvolveConfig

    with pytest.raises(ConfigError, match=r"^COST must be area or power with --function-set cells"):
        EvolveConfig(function_set="cells", cost="transistors")


def test_bad_function_set_on_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "flow.py"), "evolve", "--function-set", "luts",
                           "--run-dir", str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "gates" in proc.stderr and "cells" in proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.tools
@pytest.mark.sim
def test_function_set_cells_end_to_end(tmp_path):
    """A short run in cells ships a netlist whose WCE is proven, whose approx_<tech>.v is the search's
    cost to the unit of area, and whose cost agrees with the shipped area over its trail."""
    need_tools("yosys", "iverilog", "vvp", "sta")
    d = tmp_path / "mul4s"
    proc = subprocess.run([sys.executable, str(ROOT / "flow.py"), "evolve", "--function-set", "cells", "--bits", "4",
                           "--eps", "0.05", "--generations", "3000", "--budget", "0", "--epoch", "100", "--jobs",
                           "1", "--power-vectors", "200", "--quiet", "--run-dir", str(d)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((d / "report.json").read_text())
    assert r["function_set"] == "cells" and r["verification"]["passed"]
    assert r["wce_proof"]["method"] == "exhaustive" and r["wce_proof"]["wce"] == r["wce"] <= r["wce_limit"] == 3
    assert r["verification"]["benches"]["formal_approx_vs_mapped"]["proven"]
    shipped = r["verification"]["benches"]["approx_mapped"]  # approx_osu018.v simulated with the cell models
    assert shipped["sources"][0] == "approx_osu018.v" and shipped["passed"] and shipped["wce"] == r["wce"]
    assert r["area"] == pytest.approx(r["search_cost"])
    ca = r["cost_area"]
    assert ca["search_cost"] == pytest.approx(ca["area"])
    if r["cost_area_correlation"] is not None:
        assert r["cost_area_correlation"] == pytest.approx(1.0)
    # the product table is the generic view's, whose WCE is the proven one
    lut = np.load(d / "lut.npy")
    assert int(np.abs(lut - golden.table(4, 4, True)).max()) == r["wce"]
