"""``flow.py array``: generate a systolic or multi-pod array, verify it cycle-exactly, and cost it.

Writes ``array.v`` (self-contained: multiplier, PE, core and top with buffers), runs the test GEMMs on
Icarus against the LUT reference and the ``rtl`` cycle model, then synthesises the core and measures
area, delay and power (gate-level timing simulation of a GEMM on realistic operands, OpenSTA). With an
evolved multiplier the same array with the exact multiplier is costed too, for the array-level saving.
"""

from __future__ import annotations

import argparse
import sys

from core import config
from rtl_gen import array_job
from rtl_gen.array_job import ArrayConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, ArrayConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
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
