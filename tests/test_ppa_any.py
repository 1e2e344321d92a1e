"""``flow.py ppa`` on other people's multipliers: EvoApproxLib-style files (ports A, B, O, gate-level
assigns, submodules), any port names, and one-line errors for the user's mistakes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, need_tools
from core.errors import ConfigError
from ppa import cli


def evo_style(n: int = 4, name: str = "mul4u_T1", ports: tuple[str, str, str] = ("A", "B", "O")) -> str:
    """An unsigned n x n array multiplier in EvoApproxLib's style: partial products as gate-level
    ``assign``s, rows added by instances of a full-adder submodule; ``A[0] & B[0]`` is left out, so the
    product is off by one exactly when both low bits are 1 (WCE 1, error rate 1/4)."""
    pa, pb, po = ports
    body = [f"  wire pp_{i}_{j};\n  assign pp_{i}_{j} = {pa}[{j}] & {pb}[{i}];" for i in range(n) for j in range(n)
            if (i, j) != (0, 0)]
    body.append("  wire pp_0_0;\n  assign pp_0_0 = 1'b0;")
    count = 0

    def fa(x: str, y: str, c: str) -> tuple[str, str]:
        nonlocal count
        count += 1
        body.append(f"  wire sig_s{count}, sig_c{count};\n"
                    f"  fa U{count} (.A({x}), .B({y}), .CI({c}), .S(sig_s{count}), .CO(sig_c{count}));")
        return f"sig_s{count}", f"sig_c{count}"

    acc = [f"pp_0_{j}" for j in range(n)]
    out = [acc.pop(0)]
    for i in range(1, n):
        carry, new = "1'b0", []
        for j in range(n):
            s, carry = fa(acc[j] if j < len(acc) else "1'b0", f"pp_{i}_{j}", carry)
            new.append(s)
        new.append(carry)
        out.append(new[0])
        acc = new[1:]
    out += acc
    body += [f"  assign {po}[{k}] = {sig};" for k, sig in enumerate(out)]
    return ("// EvoApproxLib-style test multiplier: gate-level assigns and a full-adder submodule\n"
            "module fa (A, B, CI, S, CO);\n  input A, B, CI;\n  output S, CO;\n  wire X;\n"
            "  assign X = A ^ B;\n  assign S = X ^ CI;\n  assign CO = (A & B) | (X & CI);\nendmodule\n\n"
            f"module {name} ({pa}, {pb}, {po});\n  input [{n - 1}:0] {pa};\n  input [{n - 1}:0] {pb};\n"
            f"  output [{2 * n - 1}:0] {po};\n" + "\n".join(body) + "\nendmodule\n")


def _cfg(tmp_path: Path, source: Path, top: str, **kw) -> cli.PpaConfig:
    return cli.PpaConfig(verilog=source, top=top, bits=kw.pop("bits", 4), signed=kw.pop("signed", False),
                         power_vectors=200, run_dir=tmp_path / "run", **kw)


@pytest.fixture
def evo_file(tmp_path) -> Path:
    path = tmp_path / "mul4u_T1.v"
    path.write_text(evo_style())
    return path


@pytest.mark.tools
@pytest.mark.sim
def test_evoapproxlib_style_hierarchical_multiplier(tmp_path, evo_file):
    """Ports A, B, O detected; nets inside the full-adder instances get their measured activity; the error
    is the known one; the area is what the same ABC script gives the design as written."""
    need_tools("yosys", "iverilog", "sta")
    import tech
    from core.run import RunDir
    from ppa import yosys

    r = cli.characterise(_cfg(tmp_path, evo_file, "mul4u_T1"))
    assert r["ports"] == {"a": "A", "b": "B", "y": "O"}
    assert (r["wce"], r["er"], r["mae"]) == (1, 25.0, 0.25)  # er in %
    assert r["power_w"] > 0 and r["delay_ns"] > 0 and 0.5 < r["area_ratio"] < 1.2
    act = json.loads((tmp_path / "run" / "sim_build" / "power_design" / "activity.json").read_text())
    assert any(re.fullmatch(r"U\d+\.CO", n) for n in act)  # a net of a full-adder instance, U12.CO
    run = RunDir.create(tmp_path / "direct")
    direct = yosys.map_to_cells(run, [evo_file], "mul4u_T1", tech.load("osu018"), run.path / "d.v")
    assert r["area"] == pytest.approx(direct.area) and r["cells"] == direct.n_cells


@pytest.mark.tools
@pytest.mark.sim
def test_ports_named_on_the_command_line(tmp_path):
    """``--ports x,w,p`` through flow.py itself: exit 0 and the same error figures."""
    need_tools("yosys", "iverilog", "sta")
    src = tmp_path / "m.v"
    src.write_text(evo_style(name="m_xwp", ports=("x", "w", "p")))
    proc = subprocess.run([sys.executable, str(ROOT / "flow.py"), "ppa", "--verilog", str(src), "--top", "m_xwp",
                           "--ports", "x,w,p", "--bits", "4", "--no-signed", "--power-vectors", "100",
                           "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT,
                          stdin=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "run" / "report.json").read_text())
    assert r["ports"] == {"a": "x", "b": "w", "y": "p"} and r["wce"] == 1


BAD = {
    "top": (dict(top="mul4u_T2"), r"^TOP must be a module of .*mul4u_T1\.v, not 'mul4u_T2' \(modules: fa, mul4u_T1\)$"),
    "ports": (dict(ports="a,b,y"), r"^module mul4u_T1 of .* must have ports input a\[4\], input b\[4\], output y\[8\] "
                                   r"\(from --bits, --bits-b and --ports\), not input A\[4\], input B\[4\], "
                                   r"output O\[8\]$"),
    "bits": (dict(bits=8), r"^module mul4u_T1 of .* must have ports input A\[8\], input B\[8\], output O\[16\] "),
    "ports-format": (dict(ports="A,B"), r"^PORTS must be three port names separated by commas \(operand a, "
                                        r"operand b, product\), not 'A,B'$"),
}


@pytest.mark.tools
@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_user_mistakes_are_config_errors(tmp_path, evo_file, case):
    need_tools("yosys")
    kw, message = dict(BAD[case][0]), BAD[case][1]
    with pytest.raises(ConfigError, match=message):
        cli.characterise(_cfg(tmp_path, evo_file, kw.pop("top", "mul4u_T1"), **kw))
    assert not (tmp_path / "run").exists()  # checked before the run directory is made


@pytest.mark.tools
@pytest.mark.parametrize("case", ["syntax", "undefined", "no-ports", "clocked"])
def test_bad_designs_are_config_errors(tmp_path, case):
    need_tools("yosys")
    src = tmp_path / "m.v"
    text = {
        "syntax": "module m (a, b, y);\n  input [3:0] a;\n  input [3:0] b;\n  output [7:0] y\n  assign y = a*b;\nendmodule\n",
        "undefined": "module m (A, B, O);\n  input [3:0] A;\n  input [3:0] B;\n  output [7:0] O;\n"
                     "  half U1 (.A(A), .B(B), .O(O));\nendmodule\n",
        "no-ports": "module m (p, q, r);\n  input [3:0] p;\n  input [3:0] q;\n  output [7:0] r;\n"
                    "  assign r = p*q;\nendmodule\n",
        "clocked": "module m (a, b, y, clk);\n  input clk;\n  input [3:0] a;\n  input [3:0] b;\n  output reg [7:0] y;\n"
                   "  always @(posedge clk) y <= a*b;\nendmodule\n",
    }[case]
    src.write_text(text)
    message = {
        "syntax": r"^VERILOG .*m\.v must be Verilog that Yosys reads, not a file where it stops with: .*m\.v:5: ",
        "undefined": r"^module m of .*m\.v instantiates half, which .*m\.v does not define$",
        "no-ports": r"^PORTS must be given for module m of .*m\.v: it has neither a, b, y nor A, B, O "
                    r"\(its ports: p, q, r\)$",
        "clocked": r"^module m of .*m\.v must have ports input a\[4\], input b\[4\], output y\[8\] .*, "
                   r"not input a\[4\], input b\[4\], output y\[8\], input clk\[1\]$",
    }[case]
    with pytest.raises(ConfigError, match=message):
        cli.characterise(_cfg(tmp_path, src, "m"))


@pytest.mark.tools
def test_a_wrong_top_is_one_line_and_exit_2(tmp_path, evo_file):
    need_tools("yosys")
    proc = subprocess.run([sys.executable, str(ROOT / "flow.py"), "ppa", "--verilog", str(evo_file), "--top", "nope",
                           "--bits", "4", "--run-dir", str(tmp_path / "run")], capture_output=True, text=True,
                          cwd=ROOT, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: TOP must be a module of {evo_file}, not 'nope' "
                                                "(modules: fa, mul4u_T1)"]

