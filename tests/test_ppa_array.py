"""PPA of clocked designs: VCD activity over a window, OpenSTA power of sequential cells, and the
hierarchical area, delay and power of a small array."""

from __future__ import annotations

import pytest

import tech
from conftest import need_tools
from core.run import RunDir
from ppa import activity, sta, yosys
from ppa import array as parr
from rtl_gen import array as arr
from verify import array as varray

VCD = """$date today $end
$timescale 1ps $end
$scope module top $end
$var wire 1 ! clk $end
$scope module core $end
$var wire 1 " \\pod0.sa.x $end
$var wire 3 # v [2:0] $end
$var wire 1 ! clk $end
$scope module \\_5_ $end
$var wire 1 $ inner $end
$upscope $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
$dumpvars
x"
bxxx #
1!
0$
$end
#500
0!
0"
b000 #
#1000
1!
1"
b101 #
1$
#1500
0!
#2000
1!
0"
b1 #
#2500
0!
#3000
1!
1"
b11 #
"""


def test_measure_window_counts_only_inside_the_window(tmp_path):
    path = tmp_path / "a.vcd"
    path.write_text(VCD)
    act = activity.measure_window(path, "top.core", 1000, 3000, 2)
    assert set(act) == {"pod0.sa.x", "v[0]", "v[1]", "v[2]", "clk"}  # not the cell-model scope below core
    assert act["clk"] == (2.0, 0.5)
    # x: 0 -> 1 at 1000 (inside), 1 -> 0 at 2000; the change at 3000 is outside [1000, 3000)
    assert act["pod0.sa.x"] == (1.0, 0.5)
    # v: 000 -> 101 at 1000, -> 001 at 2000: bit 0 stays 1, bit 2 toggles twice, bit 1 never
    assert act["v[0]"] == (0.5, 1.0) and act["v[2]"] == (1.0, 0.5) and act["v[1]"] == (0.0, 0.0)
    # settling from X is not a toggle
    early = activity.measure_window(path, "top.core", 0, 1000, 1)
    assert early["pod0.sa.x"] == (0.0, 0.0) and early["v[0]"][0] == 0.0


REG = """module regs (clk, d, q);
  input clk;
  input [7:0] d;
  output reg [7:0] q;
  reg [7:0] r;
  always @(posedge clk) begin r <= d; q <= r; end
endmodule
"""


@pytest.fixture(scope="module")
def regs(tmp_path_factory):
    need_tools("yosys", "sta")
    run = RunDir.create(tmp_path_factory.mktemp("regs") / "run")
    src = run.path / "regs.v"
    src.write_text(REG)
    t = tech.load("osu018")
    mapped = yosys.map_hierarchical(run, [src], "regs", t, run.path / "regs_osu018.v", clock_period_ps=10000)
    return run, mapped, t


@pytest.mark.tools
def test_idle_registers_still_burn_clock_power(regs):
    """OpenSTA gives a clock pin the clock's activity whatever -global says: sixteen flip-flops whose data
    never change draw exactly that clock-pin power (the old rule, which scales each instance by its
    output's activity, would call them free), and toggling data adds to it."""
    run, mapped, t = regs
    nets = {n for n in mapped.cell_types} | {"clk"}
    idle_act = {f"{x}[{i}]": (0.0, 0.0) for x in ("d", "q", "r") for i in range(8)} | {"clk": (2.0, 0.5)}
    idle_act |= {n: (0.0, 0.0) for n in nets if n not in idle_act}
    idle = sta.analyse(run, mapped.verilog, "regs", t, clock_period_ns=10, activity=idle_act, clock_port="clk",
                       step="sta_idle")
    busy = sta.analyse(run, mapped.verilog, "regs", t, clock_period_ns=10, clock_port="clk", step="sta_busy",
                       activity={k: (0.5 if k != "clk" else 2.0, 0.5) for k in idle_act})
    flops = sum(n for c, n in mapped.cells.items() if c.startswith("DFF"))
    assert flops == 16
    assert idle.power_clock_w == pytest.approx(busy.power_clock_w) and idle.power_clock_w > 0
    assert idle.power_dynamic_w == pytest.approx(idle.power_clock_w)  # nothing but the clock pins
    assert busy.power_dynamic_w > 1.2 * idle.power_dynamic_w
    # each flip-flop's clock part is its dynamic power at zero global activity; the old rule gives 0 here
    per_flop = idle.power_clock_w / flops
    assert all(idle.instance_power_w[i] == pytest.approx(per_flop + idle.instances[i][3]) for i in idle.instances)


@pytest.mark.tools
def test_clocked_delay_is_register_to_register(regs):
    run, mapped, t = regs
    r = sta.analyse(run, mapped.verilog, "regs", t, clock_period_ns=10, clock_port="clk", step="sta_delay")
    assert 0 < r.delay_ns < 2 and r.min_period_ns is not None and r.delay_ns < r.min_period_ns < 10


def test_blocks_follow_the_hierarchy():
    assert parr.block_of("pod1.sa.pe_3_2.mult._17_") == "mult"
    assert parr.block_of("pod0.sa.pe_0_0._3_") == "pe"
    assert parr.block_of("pod0._12_") == "pod"
    assert parr.block_of("_7_") == "control"


def small_design(bits: int = 4, pods: int = 1, dataflow: str = "ws"):
    pg = varray.Gemm("power", 8, 4, 4 * pods)
    g = arr.Geometry(2, 2, pods, dataflow, bits, bits, True, 32, pg.m, pg.k, pg.n)
    return arr.generate(g, arr.exact_multiplier(bits, bits, True)), pg


@pytest.mark.tools
@pytest.mark.sim
@pytest.mark.parametrize("which", ["osu018", "gf180"])
def test_small_array_ppa_adds_up(tmp_path, which, request):
    need_tools("yosys", "iverilog", "sta")
    t = tech.load(request.getfixturevalue("gf180_dir")) if which == "gf180" else tech.load("osu018")
    d, pg = small_design()
    run = RunDir.create(tmp_path / "run")
    # GF180's cell models give every arc 1 ns whatever the Liberty says: the simulation needs a longer clock
    r = parr.characterise(run, d, t, clock_period_ns=20.0, power_gemm=pg, probs=None, seed=1, tag="exact",
                          sim_period_ns=40.0 if which == "gf180" else None)
    assert r["power_gemm"]["passed"] and r["power_gemm"]["cycles"] == r["power_gemm"]["rtl_model_cycles"]
    assert sum(r["area_blocks"].values()) == pytest.approx(r["area"])
    assert sum(r["power_blocks"].values()) == pytest.approx(r["power_w"])
    assert r["area_blocks"]["mult"] == pytest.approx(4 * r["pe"]["mult_area"])
    # flattening removes what drives nothing (a_out of the last column): a PE in the array is at most the PE alone
    assert r["pe"]["area_in_array"] * 4 == pytest.approx(r["area_blocks"]["mult"] + r["area_blocks"]["pe"])
    assert 0.9 * r["pe"]["area"] < r["pe"]["area_in_array"] <= r["pe"]["area"]
    assert 0 < r["pe"]["mult_area_share"] < 1 and 0 < r["pe"]["mult_power_share"] < 1
    assert 0 < r["power_clock_w"] < r["power_dynamic_w"]
    assert 0 < r["delay_ns"] <= r["min_period_ns"] + 1e-6 < 20
    # the PE alone drives no wires out; but ABC's timed mapping of the core moves with the modules' names
    # (on GF180, renaming only the multiplier module takes the core from 16.60 to 15.06 ns, the PE alone
    # staying at 15.59 ns), so the PE alone may be a few per cent slower than the array
    assert 0 < r["pe"]["min_period_ns"] <= 1.05 * r["min_period_ns"] + 0.1
    # the multiplier inside the array is the multiplier mapped alone by the same script
    alone = yosys.map_hierarchical(run, [d.write(tmp_path / "m.v", ("mult",))], d.mult_module, t,
                                   run.path / "mult_alone.v", clock_period_ps=20000, step="map_alone")
    assert alone.area == pytest.approx(r["pe"]["mult_area"])
