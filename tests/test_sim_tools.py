"""cocotb's runner runs the ``iverilog`` and ``vvp`` the flow found (``IVERILOG``, ``VVP``), not PATH's."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import need_tools
from core import golden
from core.errors import ToolError
from core.run import RunDir
from rtl_gen.multiplier import Multiplier, to_verilog
from verify import sim
from verify.multiplier import Shape, simulate

pytestmark = [pytest.mark.tools, pytest.mark.sim]


def _script(path, body: str):
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return path


@pytest.fixture
def configured(tmp_path, monkeypatch):
    """IVERILOG and VVP point at wrappers that log their calls; PATH's iverilog and vvp always fail."""
    need_tools("iverilog", "vvp")
    real = {t: shutil.which(t) for t in ("iverilog", "vvp")}
    calls = tmp_path / "calls.txt"
    wrap, broken = tmp_path / "wrap", tmp_path / "broken"
    wrap.mkdir()
    broken.mkdir()
    for tool, path in real.items():
        _script(wrap / f"my-{tool}", f'echo "{tool} $*" >> {calls}\nexec {path} "$@"\n')
        _script(broken / tool, f'echo "PATH {tool} $*" >> {calls}\nexit 97\n')
    monkeypatch.setenv("IVERILOG", str(wrap / "my-iverilog"))
    monkeypatch.setenv("VVP", str(wrap / "my-vvp"))
    monkeypatch.setenv("PATH", f"{broken}{os.pathsep}{os.environ['PATH']}")
    return calls


def _design(run: RunDir, text: str | None = None):
    rtl = run.path / "mul2s.v"
    rtl.write_text(text if text is not None else to_verilog(Multiplier(2, 2, signed_=True), "mul2s"))
    return rtl


def test_bench_runs_the_configured_iverilog_and_vvp(tmp_path, configured):
    run = RunDir.create(tmp_path / "run")
    shape = Shape(2, 2, True)
    a, b = golden.vector_codes(2, 2)
    res = simulate(run, "exact", [_design(run)], "mul2s", shape, a, b, shape.exact_codes(a, b), wce_limit=0, seed=1)
    assert res.passed and res.summary["vectors"] == 16
    calls = configured.read_text().splitlines()
    assert any(c.startswith("iverilog -o ") for c in calls)
    assert any(c.startswith("vvp -m ") for c in calls)
    assert not [c for c in calls if c.startswith("PATH ")]
    commands = (run.path / "COMMANDS").read_text().splitlines()
    assert any("/wrap/my-iverilog -o " in c for c in commands) and any("/wrap/my-vvp -m " in c for c in commands)


def test_a_build_error_is_iverilog_s_tool_error(tmp_path, configured):
    run = RunDir.create(tmp_path / "run")
    rtl = _design(run, "module mul2s(input [1:0] a, input [1:0] b, output [3:0] y);\n  assign y = a * ;\nendmodule\n")
    with pytest.raises(ToolError, match=r"^iverilog failed with exit code [1-9]\d* \(log: .*_sim_bad_build\.log\)"):
        sim.run_bench(run, name="bad", sources=[rtl], toplevel="mul2s", test_module="verify.tb_multiplier",
                      config={"vectors": "none"}, seed=1)
    assert "PATH " not in configured.read_text()
