"""Verification of a multiplier's shipped Verilog by simulation against a table.

One entry point, :func:`simulate`, used for every check of the flow: exact RTL against the goldenbrick
table, an evolved netlist against the evolution model's table (bit for bit) and against the WCE limit,
and the timing simulations that also record switching activity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import golden
from core.run import RunDir
from core.verilog import TIMESCALE
from verify import sim


@dataclass(frozen=True)
class Shape:
    wa: int
    wb: int
    signed: bool

    @property
    def nb(self) -> int:
        return self.wa + self.wb

    def exact_codes(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Goldenbrick product codes of operand codes ``a``, ``b``."""
        return golden.encode(golden.values(self.wa, self.signed)[a] * golden.values(self.wb, self.signed)[b], self.nb)


def corner_codes(width: int, is_signed: bool) -> np.ndarray:
    """Operand codes always worth simulating: 0, +-1, the extremes and their neighbours, +-powers of two."""
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    vals = {0, 1, lo, hi, lo + 1, hi - 1}
    for k in range(width):
        vals |= {1 << k, (1 << k) - 1, -(1 << k), -(1 << k) + 1}
    return np.array(sorted(v & ((1 << width) - 1) for v in vals if lo <= v <= hi), dtype=np.int64)


def vectors(shape: Shape, seed: int, samples: int = 1 << 16, exhaustive_bits: int = 16,
            extra: list[int] | tuple[int, ...] | np.ndarray = ()) -> tuple[np.ndarray, np.ndarray, bool]:
    """Every operand pair up to ``exhaustive_bits`` input bits; else a seeded random sample, every pair
    of corner operands (:func:`corner_codes`) and the vectors ``extra`` (numbered ``(a << wb) | b``)."""
    if shape.nb <= exhaustive_bits:
        a, b = golden.vector_codes(shape.wa, shape.wb)
        return a, b, False
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xBE7C]))
    ca, cb = corner_codes(shape.wa, shape.signed), corner_codes(shape.wb, shape.signed)
    v = np.concatenate([rng.integers(0, 1 << shape.nb, size=samples, dtype=np.int64),
                        ((ca[:, None] << shape.wb) | cb[None, :]).ravel(), np.asarray(extra, dtype=np.int64)])
    a, b = golden.vector_codes(shape.wa, shape.wb, v)
    return a, b, True


def simulate(run: RunDir, name: str, sources: list[Path], top: str, shape: Shape, a: np.ndarray, b: np.ndarray,
             expected: np.ndarray, *, wce_limit: int | None, seed: int, period_ps: int = 1000,
             vcd: Path | None = None, timing: bool = False) -> sim.BenchResult:
    """Apply operand codes ``a``, ``b`` to ``top`` and compare ``y`` with ``expected`` codes bit for bit;
    with ``wce_limit`` also check |y - a*b| against it.

    ``vcd``: dump every net of ``top`` there (the design is wrapped in a top that does so).
    ``timing``: simulate the cells' specify-block delays (each vector is held ``period_ps``).
    """
    bench_dir = run.path / "sim_build" / name
    bench_dir.mkdir(parents=True, exist_ok=True)
    np.savez(bench_dir / "vectors.npz", a=a, b=b, expected=expected)
    toplevel = top
    if vcd is not None:
        wrapper = bench_dir / "vcd_top.v"
        wrapper.write_text(vcd_wrapper(top, shape.wa, shape.wb, vcd), encoding="utf-8")
        sources = [wrapper, *sources]
        toplevel = "axf_vcd_top"
    return sim.run_bench(run, name=name, sources=sources, toplevel=toplevel, test_module="verify.tb_multiplier",
                         seed=seed, vcd=vcd is not None, build_args=("-gspecify",) if timing else (),
                         config={"vectors": str(bench_dir / "vectors.npz"), "wa": shape.wa, "wb": shape.wb,
                                 "signed": shape.signed, "wce_limit": wce_limit, "period_ps": period_ps,
                                 "out": str(bench_dir / "simulated.npy")})


def vcd_wrapper(top: str, wa: int, wb: int, vcd: Path) -> str:
    """A top module around ``top`` that dumps every net of it into ``vcd``."""
    return f"""{TIMESCALE}
module axf_vcd_top (a, b, y);
  input [{wa - 1}:0] a;
  input [{wb - 1}:0] b;
  output [{wa + wb - 1}:0] y;
  {top} dut (.a(a), .b(b), .y(y));
  initial begin
    $dumpfile("{vcd}");
    $dumpvars(0, dut);
  end
endmodule
"""


def simulated_codes(run: RunDir, name: str) -> np.ndarray:
    """The product codes a bench read back from the simulator (-1 where y was X or Z)."""
    return np.load(run.path / "sim_build" / name / "simulated.npy")
