"""The external tools: Yosys synthesis and mapping, OpenSTA timing and power, cocotb simulation, formal checks."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import tech
from conftest import need_tools
from core import golden
from core.errors import ConfigError
from core.run import RunDir
from evolve.netlist import Netlist
from ppa import activity, sta, yosys
from rtl_gen.multiplier import Multiplier, to_verilog
from verify import formal, sim
from verify.multiplier import vcd_wrapper

pytestmark = pytest.mark.tools


def make_design(run: RunDir, wa: int, wb: int, signed: bool) -> tuple[str, object]:
    name = f"mul{wa}x{wb}{'s' if signed else 'u'}"
    rtl = run.path / f"{name}.v"
    rtl.write_text(to_verilog(Multiplier(wa, wb, signed_=signed), name))
    return name, rtl


@pytest.fixture(scope="module")
def mul4(tmp_path_factory):
    need_tools("yosys")
    run = RunDir.create(tmp_path_factory.mktemp("mul4") / "run")
    name, rtl = make_design(run, 4, 4, True)
    yosys.synth_generic(run, [rtl], name, run.path / "seed.json", run.path / "seed.v")
    return run, name, rtl


def _chip_area(log) -> float:
    return float(re.findall(r"Chip area for (?:top )?module .*: ([\d.]+)", log.read_text())[-1])


@pytest.mark.parametrize("which", ["osu018", "gf180"])
def test_mapped_area_equals_yosys_chip_area(mul4, which, request):
    run, name, rtl = mul4
    t = tech.load(request.getfixturevalue("gf180_dir")) if which == "gf180" else tech.load("osu018")
    mapped = yosys.map_to_cells(run, [rtl], name, t, run.path / f"{name}_{which}.v", step=f"map_{which}")
    log = sorted(run.logs.glob(f"*_map_{which}.log"))[-1]
    assert mapped.area == pytest.approx(_chip_area(log), rel=1e-6)
    assert mapped.n_cells == sum(mapped.cells.values()) > 10
    assert all(c in t.cell_areas for c in mapped.cells)


def test_generic_seed_is_only_basic_gates_and_exact(mul4):
    run, name, _ = mul4
    net = Netlist.from_yosys_json(json.loads((run.path / "seed.json").read_text()), name, 4, 4, True)
    from evolve.evaluator import reference_outputs

    assert np.array_equal(reference_outputs(net), golden.table(4, 4, True).ravel())


def test_formal_equivalence_proves_and_refutes(mul4):
    run, name, rtl = mul4
    assert formal.equivalent(run, [rtl], name, [run.path / "seed.v"], name, step="eq_ok").proven
    text = (run.path / "seed.v").read_text()
    i = text.index(" & ")
    (run.path / "broken.v").write_text(text[:i] + " | " + text[i + 3:])
    assert not formal.equivalent(run, [rtl], name, [run.path / "broken.v"], name, step="eq_bad").proven


@pytest.mark.sim
def test_cocotb_bench_passes_the_exact_rtl_and_catches_a_bug(mul4):
    need_tools("iverilog", "vvp")
    run, name, rtl = mul4
    a, b = golden.vector_codes(4, 4)
    expected = golden.encode(golden.table(4, 4, True).ravel(), 8)
    np.savez(run.path / "v.npz", a=a, b=b, expected=expected)
    cfg = {"vectors": str(run.path / "v.npz"), "wa": 4, "wb": 4, "signed": True, "wce_limit": 0,
           "out": str(run.path / "out.npy")}
    good = sim.run_bench(run, name="good", sources=[rtl], toplevel=name, test_module="verify.tb_multiplier",
                         config=cfg, seed=1)
    assert good.passed and good.summary == {"vectors": 256, "mismatches": 0, "unknown": 0, "wce": 0, "wce_limit": 0}
    assert np.array_equal(np.load(run.path / "out.npy"), expected)
    text = (run.path / "seed.v").read_text()
    i = text.index(" ^ ")
    (run.path / "broken.v").write_text(text[:i] + " & " + text[i + 3:])
    bad = sim.run_bench(run, name="bad", sources=[run.path / "broken.v"], toplevel=name,
                        test_module="verify.tb_multiplier", config=cfg, seed=1)
    assert not bad.passed and bad.failures == 1 and bad.summary["mismatches"] > 0
    assert "products differ from the expected table" in bad.messages[0]
    commands = (run.path / "COMMANDS").read_text()
    assert "iverilog -o" in commands and "vvp -m" in commands


@pytest.mark.sim
def test_activity_counts_toggles_of_a_known_stream(mul4, tmp_path):
    need_tools("iverilog", "vvp")
    run, name, rtl = mul4
    a = np.array([0, 15, 15, 3, 0, 8, 7, 7], dtype=np.int64)
    b = np.array([0, 1, 15, 3, 12, 8, 7, 1], dtype=np.int64)
    expected = golden.encode(golden.table(4, 4, True)[a, b], 8)
    np.savez(run.path / "s.npz", a=a, b=b, expected=expected)
    vcd = run.path / "s.vcd"
    (run.path / "top.v").write_text(vcd_wrapper(name, 4, 4, vcd))
    res = sim.run_bench(run, name="stream", sources=[run.path / "top.v", rtl], toplevel="axf_vcd_top",
                        test_module="verify.tb_multiplier", seed=1, vcd=True,
                        config={"vectors": str(run.path / "s.npz"), "wa": 4, "wb": 4, "signed": True,
                                "wce_limit": None, "period_ps": 2000, "out": str(run.path / "o.npy")})
    assert res.passed
    act = activity.measure(vcd, "axf_vcd_top.dut", len(a), 2000)
    for port, codes, width in (("a", a, 4), ("b", b, 4), ("y", expected, 8)):
        for bit in range(width):
            bits = (codes >> bit) & 1
            assert act[f"{port}[{bit}]"][0] == pytest.approx(np.count_nonzero(np.diff(bits)) / len(a))
            assert act[f"{port}[{bit}]"][1] == pytest.approx(bits.mean())


def test_power_scales_with_measured_activity(mul4):
    need_tools("sta")
    run, name, rtl = mul4
    t = tech.load("osu018")
    mapped = yosys.map_to_cells(run, [rtl], name, t, run.path / "p.v", step="map_p")
    outs = set(re.findall(r"wire (_\w+_);", mapped.verilog.read_text())) | {f"y[{i}]" for i in range(8)}
    half = sta.analyse(run, mapped.verilog, name, t, clock_period_ns=10, step="sta_half",
                       activity={n: (0.5, 0.5) for n in outs})
    one = sta.analyse(run, mapped.verilog, name, t, clock_period_ns=10, step="sta_one",
                      activity={n: (1.0, 0.5) for n in outs})
    slow = sta.analyse(run, mapped.verilog, name, t, clock_period_ns=20, step="sta_slow",
                       activity={n: (1.0, 0.5) for n in outs})
    assert half.delay_ns > 0.1 and len(half.instances) == mapped.n_cells
    assert one.power_dynamic_w == pytest.approx(2 * half.power_dynamic_w, rel=1e-6)
    assert slow.power_dynamic_w == pytest.approx(one.power_dynamic_w / 2, rel=1e-6)
    assert one.power_leakage_w == half.power_leakage_w > 0
    assert one.energy_pj == pytest.approx(one.power_w * 10 * 1e3)


def test_missing_activity_is_an_error(mul4):
    need_tools("sta")
    run, name, rtl = mul4
    t = tech.load("osu018")
    mapped = yosys.map_to_cells(run, [rtl], name, t, run.path / "q.v", step="map_q")
    with pytest.raises(ConfigError, match=r"^no switching activity was measured for net "):
        sta.analyse(run, mapped.verilog, name, t, clock_period_ns=10, activity={"nothing": (1.0, 0.5)})


@pytest.mark.parametrize("text, message", [
    ("value,count\n0,1\n300,2\n", r"value must be in -128\.\.127 for a 8-bit signed operand, not 300"),
    ("v,c\n0,1\n", r"must have columns value,count or value,count_a,count_b, not v,c"),
    ("value,count\n0,-1\n", r"count must be a finite number >= 0, not '-1'"),
    ("value,count\n0,0\n", r"count has no positive count"),
], ids=["range", "columns", "negative", "empty"])
def test_bad_operand_histograms(tmp_path, text, message):
    (tmp_path / "h.csv").write_text(text)
    with pytest.raises(ConfigError, match=message):
        activity.read_histogram(tmp_path / "h.csv", 8, 8, True)


def test_histogram_shapes_the_operand_stream(tmp_path):
    (tmp_path / "h.csv").write_text("value,count_a,count_b\n-1,1,0\n5,0,3\n")
    pa, pb = activity.read_histogram(tmp_path / "h.csv", 4, 4, True)
    a, b = activity.operand_stream(4, 4, 100, np.random.default_rng(0), (pa, pb))
    assert set(a.tolist()) == {15} and set(b.tolist()) == {5}
