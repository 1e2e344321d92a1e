"""The Verilog the flow writes drops into other people's designs: approx.v and array.v read together, two
evolved multipliers and several arrays in one top, elaborated by Yosys, Icarus and Verilator the way their
users run them (``hierarchy -check; check -assert``, ``iverilog -Wall``, ``verilator --lint-only -Wall``)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _array_fixtures import evolved_run, offset_run

from conftest import need_tools
from core.errors import ConfigError
from ppa import yosys
from rtl_gen import array as arr
from verify import array as varray


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
                          timeout=600)


def _geometry(rows: int, cols: int, pods: int, dataflow: str, mult: arr.MultSpec) -> arr.Geometry:
    gemms = varray.default_gemms(rows, cols, pods)
    return arr.Geometry(rows, cols, pods, dataflow, mult.wa, mult.wb, mult.signed, 32, max(g.m for g in gemms),
                        max(g.k for g in gemms), max(g.n for g in gemms))


def _yosys_modules(files: list[Path], top: str | None, tmp: Path) -> dict:
    """The modules Yosys keeps after ``hierarchy -check`` (``-auto-top`` when ``top`` is None)."""
    out = tmp / "design.json"
    reads = "; ".join(f"read_verilog -sv {f}" for f in files)
    hier = f"hierarchy -check -top {top}" if top else "hierarchy -check -auto-top"
    proc = _run(["yosys", "-q", "-p", f"{reads}; {hier}; proc; check -assert; write_json {out}"], tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())["modules"]


def _wrapper(name: str, instances: list[tuple[str, str]], modules: dict) -> str:
    """A top module instantiating each (module, instance), every port brought out as a top-level port, so
    that nothing is left unconnected or unread (Verilator -Wall checks the top too)."""
    ports, decls, insts = [], [], []
    for module, inst in instances:
        conns = []
        for port, p in modules[module]["ports"].items():
            w = len(p["bits"])
            sig = f"{inst}_{port}"
            ports.append(sig)
            decls.append(f"  {p['direction']} {f'[{w - 1}:0] ' if w > 1 else ''}{sig};")
            conns.append(f".{port}({sig})")
        insts.append(f"  {module} {inst} ({', '.join(conns)});")
    return "`timescale 1ns / 1ps\n" + "\n".join([f"module {name} ({', '.join(ports)});", *decls, *insts,
                                                  "endmodule"]) + "\n"


@pytest.fixture(scope="module")
def two_evolved(tmp_path_factory):
    """Two different multipliers evolved by the flow (4x4 signed, EPS 0.05 and 0.1)."""
    need_tools("yosys", "iverilog", "sta")
    base = tmp_path_factory.mktemp("evolved")
    runs = [evolved_run(base / "m05", eps=0.05), evolved_run(base / "m10", eps=0.1)]
    specs = [arr.evolved_multiplier(r) for r in runs]
    assert specs[0].module != specs[1].module
    return runs, specs


def _elaborate_together(tmp_path: Path, approx: list[tuple[Path, str]], designs: list[arr.Design]) -> None:
    """``approx`` (file, module) and ``designs`` instantiated in one top: no module defined twice, and
    Yosys, Icarus and Verilator elaborate it cleanly."""
    assert len({d.top for d in designs}) == len(designs)
    files = [f for f, _ in approx] + [d.write(tmp_path / f"array{i}.v") for i, d in enumerate(designs)]
    defined = [m for f in files for m in re.findall(r"^\s*module\s+(\S+?)\s*\(", f.read_text(), re.M)]
    assert len(defined) == len(set(defined))
    modules = {n: m for f in files for n, m in yosys.read_modules(f).items()}  # the ports of each
    top = "two_of_each"
    insts = [(m, f"m{i}") for i, (_, m) in enumerate(approx)] + [(d.top, f"arr{i}") for i, d in enumerate(designs)]
    files.append(tmp_path / f"{top}.v")
    files[-1].write_text(_wrapper(top, insts, modules))

    kept = _yosys_modules(files, top, tmp_path)
    assert {m for _, m in approx} | {top} | {d.top for d in designs} | {d.mult_module for d in designs} <= set(kept)
    iv = _run(["iverilog", "-Wall", "-g2012", "-o", str(tmp_path / "a.vvp"), "-s", top, *map(str, files)], tmp_path)
    assert iv.returncode == 0 and "warning" not in (iv.stdout + iv.stderr).lower(), iv.stdout + iv.stderr
    vl = _run(["verilator", "--lint-only", "-Wall", "--top-module", top, *map(str, files)], tmp_path)
    assert vl.returncode == 0, vl.stdout + vl.stderr


@pytest.mark.slow
@pytest.mark.tools
def test_two_multipliers_and_three_arrays_in_one_top(tmp_path, two_evolved):
    """Two arrays of the same geometry with different evolved multipliers, one of another geometry with the
    exact multiplier, and both approx.v files beside them."""
    need_tools("yosys", "iverilog", "verilator")
    runs, (m1, m2) = two_evolved
    exact = arr.exact_multiplier(4, 4, True)
    designs = [arr.generate(_geometry(2, 2, 1, "ws", m1), m1), arr.generate(_geometry(2, 2, 1, "ws", m2), m2),
               arr.generate(_geometry(2, 3, 2, "os", exact), exact)]
    _elaborate_together(tmp_path, [(runs[0] / "approx.v", m1.module), (runs[1] / "approx.v", m2.module)], designs)


@pytest.mark.tools
def test_arrays_with_hand_written_multipliers_in_one_top(tmp_path):
    """The same without evolving: two arrays whose multipliers differ (a*b+3, a*b+5) but share a geometry,
    and two exact arrays of different geometries (each ships its own copy of the exact multiplier)."""
    need_tools("yosys", "iverilog", "verilator")
    m3 = arr.evolved_multiplier(offset_run(tmp_path / "m3", offset=3))
    m5 = arr.evolved_multiplier(offset_run(tmp_path / "m5", offset=5))
    exact = arr.exact_multiplier(4, 4, True)
    designs = [arr.generate(_geometry(2, 2, 1, "ws", m), m) for m in (m3, m5)]
    designs += [arr.generate(_geometry(1, 1, 1, "ws", exact), exact), arr.generate(_geometry(2, 3, 2, "os", exact), exact)]
    _elaborate_together(tmp_path, [], designs)


@pytest.mark.slow
@pytest.mark.tools
def test_evolved_approx_v_is_clean_alone(tmp_path, two_evolved):
    need_tools("verilator", "iverilog")
    runs, specs = two_evolved
    text = (runs[0] / "approx.v").read_text()
    assert text.count("`timescale 1ns / 1ps") == 1 and "(* top" not in text
    for run, spec in zip(runs, specs):
        vl = _run(["verilator", "--lint-only", "-Wall", "--top-module", spec.module, str(run / "approx.v")], tmp_path)
        assert vl.returncode == 0, vl.stdout + vl.stderr


@pytest.mark.tools
@pytest.mark.parametrize("df,rows,cols,pods", [("ws", 2, 2, 1), ("os", 2, 3, 2), ("ws", 1, 1, 1)],
                         ids=["ws-2x2-p1", "os-2x3-p2", "ws-1x1-p1"])
def test_array_v_has_one_top_and_lints_clean(tmp_path, df, rows, cols, pods):
    """The real top is the only one with ``(* top = 1 *)``: ``hierarchy -auto-top`` keeps the whole array."""
    need_tools("yosys", "iverilog", "verilator")
    spec = arr.exact_multiplier(4, 4, True)
    d = arr.generate(_geometry(rows, cols, pods, df, spec), spec)
    path = d.write(tmp_path / "array.v")
    text = path.read_text()
    assert text.startswith("`timescale 1ns / 1ps\n") and len(re.findall(r"\(\*\s*top\s*=", text)) == 1
    modules = _yosys_modules([path], None, tmp_path)
    tops = [n for n, m in modules.items() if str(m["attributes"].get("top", "0")).strip("0")]
    assert tops == [d.top] and {d.pe, d.core, d.mult_module} <= set(modules)
    iv = _run(["iverilog", "-Wall", "-g2012", "-o", str(tmp_path / "a.vvp"), str(path)], tmp_path)
    assert iv.returncode == 0 and "warning" not in (iv.stdout + iv.stderr).lower(), iv.stdout + iv.stderr
    vl = _run(["verilator", "--lint-only", "-Wall", str(path)], tmp_path)  # no --top-module: there is one
    assert vl.returncode == 0, vl.stdout + vl.stderr
    for rule in arr.ARRAY_WAIVERS:  # every waiver is written in the file with its reason
        assert f"/* verilator lint_off {rule} */" in text and f"// {rule}: " in text


def test_module_names_depend_on_the_multiplier_and_the_configuration():
    exact = arr.exact_multiplier(4, 4, True)
    other = arr.MultSpec(4, 4, True, "mymul", exact.verilog.replace(exact.module, "mymul"))
    g = _geometry(2, 2, 1, "ws", exact)
    g32 = arr.Geometry(*[getattr(g, k) for k in ("rows", "cols", "pods", "dataflow", "wa", "wb", "signed")], 24,
                       g.m_max, g.k_max, g.n_max)
    names = {arr.default_prefix(g, exact), arr.default_prefix(g, other), arr.default_prefix(g32, exact)}
    assert len(names) == 3 and all(n.startswith("sa2x2_ws_") for n in names)
    assert arr.default_prefix(g, exact) == arr.default_prefix(g, arr.exact_multiplier(4, 4, True))


def test_prefix_names_every_module():
    spec = arr.exact_multiplier(4, 4, True)
    d = arr.generate(_geometry(2, 2, 2, "ws", spec), spec, prefix="acc0")
    names = re.findall(r"^module\s+\\?(\S+?)\s*\(", d.text(), re.M)
    assert d.top == "acc0" and names and all(n == "acc0" or n.startswith("acc0_") for n in names)


@pytest.mark.parametrize("prefix", ["0acc", "a-b", ""], ids=["digit", "dash", "empty"])
def test_prefix_must_be_an_identifier(prefix):
    spec = arr.exact_multiplier(4, 4, True)
    with pytest.raises(ConfigError, match=r"^PREFIX must be a Verilog identifier \(letters, digits and _, not "
                                          rf"starting with a digit\), not {re.escape(repr(prefix))}$"):
        arr.generate(_geometry(2, 2, 1, "ws", spec), spec, prefix=prefix)


@pytest.mark.tools
@pytest.mark.parametrize("seed", [3, 9], ids=["seed3", "seed9"])
def test_netlist_verilog_lints_clean(tmp_path, seed):
    """approx.v as Netlist.to_verilog writes it, for netlists that ignore some operand bits."""
    need_tools("verilator", "iverilog")
    from test_evolve_model import random_netlist

    net = random_netlist(3, 3, True, 30, np.random.default_rng(seed))
    path = tmp_path / "approx.v"
    path.write_text(net.to_verilog("m_ax_test", header="test"))
    vl = _run(["verilator", "--lint-only", "-Wall", str(path)], tmp_path)
    assert vl.returncode == 0, vl.stdout + vl.stderr
    iv = _run(["iverilog", "-Wall", "-o", str(tmp_path / "a.vvp"), str(path)], tmp_path)
    assert iv.returncode == 0 and "warning" not in (iv.stdout + iv.stderr).lower(), iv.stdout + iv.stderr


def test_prefix_option_is_checked_before_the_run():
    from rtl_gen.array_job import ArrayConfig

    with pytest.raises(ConfigError, match=r"^PREFIX must be a Verilog identifier .*, not 'my-array'$"):
        ArrayConfig(prefix="my-array")
    assert ArrayConfig(prefix="acc0").prefix == "acc0"
