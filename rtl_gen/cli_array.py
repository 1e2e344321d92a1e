"""``flow.py array``: generate a systolic or multi-pod array, verify it cycle-exactly, and cost it.

Writes ``array.v`` (self-contained: multiplier, PE, core and top with buffers), runs the test GEMMs on
Icarus against the LUT reference and the ``rtl`` cycle model, then synthesises the core and measures
area, delay and power (gate-level timing simulation of a GEMM on realistic operands, OpenSTA). With an
evolved multiplier the same array with the exact multiplier is costed too, for the array-level saving.
The stage is :class:`rtl_gen.array_job.ArrayStage`.
"""

from __future__ import annotations

import argparse

from core import stage
from rtl_gen.array_job import STAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    stage.add_arguments(parser, STAGE)


def main(args: argparse.Namespace) -> int:
    return stage.main(STAGE, args)
