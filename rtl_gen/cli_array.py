"""``flow.py array``: generate a systolic or multi-pod array, verify it cycle-exactly, and cost it.

Writes ``array.v`` (self-contained: multiplier, PE, core and top with buffers), runs the test GEMMs on
Icarus against the LUT reference and the ``rtl`` cycle model, then synthesises the core and measures
area, delay and power (gate-level timing simulation of a GEMM on realistic operands, OpenSTA). With an
evolved multiplier the same array with the exact multiplier is costed too, for the array-level saving.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import config
from core.config import option
from core.errors import ConfigError, must
from rtl_gen import array as arr

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ArrayConfig:
    rows: int = option(8, help="PE rows of each array")
    cols: int = option(8, help="PE columns of each array")
    pods: int = option(1, help="arrays (pods) sharing the GEMM")
    dataflow: str = option("ws", help="weight stationary or output stationary", choices=arr.DATAFLOWS)
    mult: str = option("exact", help="the PE multiplier: 'exact' or a multiplier run directory (its approx.v, "
                                     "lut.npy and report.json)")
    bits: int | None = option(None, help="operand width of a (and of b unless --bits-b): 8 for exact; "
                                         "an evolved multiplier's own when not given")
    bits_b: int | None = option(None, help="operand width of b (default: --bits)")
    signed: bool | None = option(None, help="two's-complement operands (default: signed for exact, the "
                                            "multiplier's own otherwise); --no-signed for unsigned")
    acc_bits: int = option(32, help="accumulator width (sums wrap modulo 2^ACC_BITS)")
    shapes: tuple[str, ...] = option(("standard",), help="test GEMMs: 'standard' (square, tall, wide, K not a "
                                     "multiple of the array, M and N smaller than it; every split with "
                                     "several pods) and/or MxKxN[:SPLIT], e.g. 64x64x64 or 9x30x17:k")
    seed: int = option(1, help="random seed of the test operands")
    ppa: bool = option(True, help="synthesise and measure area, delay and power; --no-ppa only verifies")
    compare_exact: bool = option(True, help="with an evolved multiplier, cost the exact-multiplier array too "
                                            "(the array-level saving)")
    tech: str = option("osu018", help="technology")
    clock_period: float | None = option(None, unit="ns", help="clock period of synthesis, timing and power; at "
                                        "least the exact array's minimum period (default: derived, 1.25 x the "
                                        "minimum period of the slower core rounded up to a whole ns)")
    sim_period: float | None = option(None, unit="ns", help="clock period of the gate-level power simulation "
                                      "(default: CLOCK_PERIOD, longer when the cell models are slower than the "
                                      "Liberty, e.g. GF180's 1 ns per arc)")
    operands: str = option("auto", help="operands of the power GEMM: 'auto' (INT8 activations and weights of "
                                        "LeNet-5 on Fashion-MNIST for 8-bit signed operands, else uniform), "
                                        "'uniform', or a histogram CSV (value,count or value,count_a,count_b)")
    power_shape: str = option("auto", help="GEMM of the power simulation: MxKxN[:SPLIT]; 'auto' is "
                                           "(8 ROWS)x(2 ROWS)x(2 COLS PODS)")
    prefix: str | None = option(None, help="name of the top module and start of every other module's name in "
                                           "array.v (default: <array>_<hash of the configuration and the "
                                           "multiplier>)")
    run_dir: Path | None = option(None, help="run directory (default: runs/<array>/<mult>)")
    overwrite: bool = option(False, help="replace an existing run directory")

    def __post_init__(self) -> None:
        for name in ("bits", "bits_b"):
            w = getattr(self, name)
            if w is not None and not arr.MIN_WIDTH <= w <= arr.MAX_WIDTH:
                raise must(name.upper(), f"an operand width in {arr.MIN_WIDTH}..{arr.MAX_WIDTH}", w)
        if self.clock_period is not None and self.clock_period <= 0:
            raise must("CLOCK_PERIOD", "> 0 ns", self.clock_period)
        if self.sim_period is not None and self.sim_period <= 0:
            raise must("SIM_PERIOD", "> 0 ns", self.sim_period)
        if self.sim_period is not None and self.clock_period is not None and self.sim_period < self.clock_period:
            raise must("SIM_PERIOD", f">= CLOCK_PERIOD ({self.clock_period:g} ns)", self.sim_period)
        for s in self.shapes:
            if s != "standard":
                gemm(s, "shape")
        if self.power_shape != "auto":
            gemm(self.power_shape, "power")
        if self.prefix is not None and not arr.IDENTIFIER.fullmatch(self.prefix):
            raise must("PREFIX", "a Verilog identifier (letters, digits and _, not starting with a digit)",
                       self.prefix)
        if self.operands not in ("auto", "uniform") and not Path(self.operands).is_file():
            raise must("OPERANDS", "'auto', 'uniform' or an existing histogram CSV", self.operands)


def gemm(text: str, name: str) -> Any:
    """``MxKxN[:split]`` as a :class:`verify.array.Gemm`."""
    from verify.array import Gemm, parse_shape

    shape, _, split = str(text).partition(":")
    split = split or "n"
    if split not in arr.SPLITS:
        raise must("SHAPES" if name == "shape" else "POWER_SHAPE", "MxKxN with an optional :SPLIT of n, m or k",
                   text)
    try:
        m, k, n = parse_shape(shape)
    except ConfigError:
        raise must("SHAPES" if name == "shape" else "POWER_SHAPE", "MxKxN with positive integers and an "
                   "optional :SPLIT (n, m or k)", text) from None
    return Gemm(f"{name}_{m}x{k}x{n}_{split}", m, k, n, split)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, ArrayConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from rtl_gen import array_job

    cfg = config.from_namespace(ArrayConfig, args)
    report = array_job.run(cfg, progress=not args.quiet)
    v = report["verification"]
    line = (f"{report['design']} with {report['mult']['label']}: {v['gemms_passed']}/{len(v['gemms'])} GEMMs "
            f"correct, cycles {'equal' if v['cycles_match'] else 'DIFFER from'} the rtl model")
    if "area" in report:
        line += (f"; area {report['area']:.6g} um^2, power {report['power_w'] * 1e3:.4g} mW, "
                 f"min period {report['min_period_ns']:.4g} ns (clock {report['clock_period_ns']:g} ns)")
    if report.get("savings"):
        s = report["savings"]
        line += (f"; array area ratio {s['area_ratio']:.4f} (multiplier {s['multiplier_level']['area_ratio']:.4f}), "
                 f"power ratio {s['power_ratio']:.4f}")
    print(f"{line}; {report['run_dir']}/report.md", file=sys.stdout)
    return 0
