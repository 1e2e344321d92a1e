"""Multiplier run directories for the array tests, made under the test's own temporary directory.

``offset_run``: a hand-written 4-bit multiplier whose every product is ``a*b + offset`` (so a zero
operand gives ``offset``, not 0): an array that pads with zeros instead of masking invalid lanes gets
wrong sums with it. ``evolved_run``: a real (small) evolved multiplier made by ``flow.py evolve``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core import golden
from core.multrun import MultiplierRun

ROOT = Path(__file__).resolve().parent.parent


def offset_run(path: Path, *, bits: int = 4, offset: int = 3, signed: bool = True, name: str | None = None,
               ports: tuple[int, int, int] | None = None) -> Path:
    """A run directory of the documented shape for ``y = a*b + offset`` (``ports`` overrides the widths
    declared in approx.v, to make a mismatching one)."""
    module = name or f"mul{bits}{'s' if signed else 'u'}_ax_offset{offset}"
    wa, wb, wy = ports or (bits, bits, 2 * bits)
    sgn = "signed " if signed else ""
    verilog = (
        f"// a*b + {offset}: every product is off by {offset}, zero operands included\n"
        f"module {module} (a, b, y);\n  input [{wa - 1}:0] a;\n  input [{wb - 1}:0] b;\n  output [{wy - 1}:0] y;\n"
        f"  wire {sgn}[{wa - 1}:0] sa = a;\n  wire {sgn}[{wb - 1}:0] sb = b;\n"
        f"  wire {sgn}[{wy - 1}:0] p = sa * sb;\n  assign y = p + {offset};\nendmodule\n")
    lut = golden.table(bits, bits, signed) + offset
    report = {"design": f"mul{bits}{'s' if signed else 'u'}", "module": module, "wa": bits, "wb": bits,
              "signed": signed, "eps": 0.05, "wce": offset, "area_ratio": 1.0, "power_ratio": 1.0}
    MultiplierRun.write(path, report, lut=lut, verilog=verilog)
    return path


def evolved_run(path: Path, *, bits: int = 4, eps: float = 0.05, generations: int = 500) -> Path:
    """A small multiplier evolved, verified and characterised by the flow itself."""
    proc = subprocess.run([sys.executable, str(ROOT / "flow.py"), "evolve", "--bits", str(bits), "--eps", str(eps),
                           "--generations", str(generations), "--budget", "0", "--power-vectors", "200",
                           "--run-dir", str(path), "--quiet"], capture_output=True, text=True, cwd=ROOT,
                          timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return path
