#!/usr/bin/env python3
"""axflow: an open flow for approximate arithmetic hardware.

One subcommand per stage (:mod:`core.stage`). Each stage's ``cli`` module derives its options from the
stage's typed configuration and calls :meth:`core.stage.Stage.execute`; only this
file turns the project's exceptions into exit codes, so a user mistake is one line on stderr and a
non-zero exit, never a traceback. Exit codes: 1 other, 2 settings and input files, 3 a missing tool,
4 a tool failure, 5 a failed verification, 6 the file system (read-only, full, a missing directory),
130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from core.errors import DiskError, FlowError, ToolError

# name -> (module with add_arguments(parser) and main(args) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "rtl": ("rtl_gen.cli", "generate an exact multiplier as Verilog (Amaranth)"),
    "array": ("rtl_gen.cli_array", "generate a systolic / multi-pod array with a (evolved) multiplier in every PE, "
                                   "verify it cycle-exactly and measure its area, delay and power"),
    "evolve": ("evolve.cli", "evolve an approximate multiplier under a worst-case-error limit, "
                             "then verify and characterise it"),
    "sweep": ("evolve.sweep", "evolve over a grid of EPS values and plot cost and error against EPS"),
    "library": ("evolve.library", "build a library of approximate multipliers over a grid of EPS and seeds on Dask, "
                                  "with a catalogue and Pareto plots"),
    "verify": ("verify.cli", "re-verify a run directory: simulate its shipped Verilog against its tables"),
    "ppa": ("ppa.cli", "area, delay and power of a Verilog design on a technology"),
    "accel": ("accel_models.cli", "time, traffic and energy of a network on a (multi-pod) systolic accelerator "
                                  "with a multiplier assignment"),
    "dnn": ("dnn.cli", "assign approximate multipliers to a network's layers under an accuracy budget "
                       "(LUT-exact INT8 inference, sensitivity, search, fine-tuning)"),
    "bench": ("evolve.bench", "benchmarks: evaluation speed and search quality, side by side"),
}


def build_parser(chosen: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flow.py", description=__doc__.splitlines()[0],
        epilog="Run 'flow.py COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    try:
        args = parser.parse_args(argv)  # an option's old spelling is refused here, naming the new one
        try:
            return int(importlib.import_module(COMMANDS[args.command][0]).main(args) or 0)
        except OSError as err:  # read-only or full disk, a missing directory: the path and the reason
            raise DiskError(err) from err
    except FlowError as err:
        print(f"error: {err}", file=sys.stderr)
        if isinstance(err, ToolError) and os.environ.get("AXFLOW_VERBOSE"):
            print(err.details(), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
