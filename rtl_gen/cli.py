"""``flow.py rtl``: an exact multiplier as Verilog."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from core import config
from core.config import option
from core.errors import ConfigError, must
from core.run import write_text
from rtl_gen.architectures import ARCHITECTURES, multiplier
from rtl_gen.multiplier import check_widths, design_name, to_verilog


@dataclass(frozen=True)
class RtlConfig:
    wa: int = option(8, help="width of operand a")
    wb: int | None = option(None, help="width of operand b (default: WA)")
    signed: bool = option(True, help="two's-complement operands; --no-signed for unsigned")
    arch: str = option("array", choices=ARCHITECTURES, help="architecture: array (Yosys builds a*b), booth "
                       "(radix 4), wallace or dadda (trees of full and half adders written bit by bit)")
    out: Path | None = option(None, help="output file (default: <design>.v in the current directory)")
    overwrite: bool = option(False, help="replace the output file if it exists")

    def __post_init__(self) -> None:
        check_widths(self.wa, self.wa if self.wb is None else self.wb)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, RtlConfig)


def main(args: argparse.Namespace) -> int:
    cfg = config.from_namespace(RtlConfig, args)
    wb = cfg.wa if cfg.wb is None else cfg.wb
    name = design_name(cfg.wa, wb, cfg.signed)
    out = cfg.out or Path(f"{name}.v")
    if out.is_dir():
        raise must("OUT", "a file name", f"{out} (a directory)")
    if out.exists() and not cfg.overwrite:
        raise ConfigError(f"{out} already exists (use --overwrite to replace it)")
    write_text(out, to_verilog(multiplier(cfg.arch, cfg.wa, wb, signed_=cfg.signed), name))
    print(out)
    return 0
