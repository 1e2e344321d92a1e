"""``flow.py rtl``: an exact multiplier as Verilog (a stage that writes one file, not a run directory)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import stage
from core.config import check_width, option
from core.errors import ConfigError, must
from core.run import write_text
from rtl_gen.architectures import ARCHITECTURES, multiplier
from rtl_gen.multiplier import design_name, to_verilog


@dataclass(frozen=True)
class RtlConfig:
    bits: int = option(8, help="operand width of a (and of b unless --bits-b is given)")
    bits_b: int | None = option(None, help="operand width of b (default: --bits)")
    signed: bool = option(True, help="two's-complement operands; --no-signed for unsigned")
    arch: str = option("array", choices=ARCHITECTURES, help="architecture: array (Yosys builds a*b), booth "
                       "(radix 4), wallace or dadda (trees of full and half adders written bit by bit)")
    out: Path | None = option(None, help="output file (default: <design>.v in the current directory)")
    overwrite: bool = option(False, help="replace the output file if it exists")

    def __post_init__(self) -> None:
        check_width("BITS", self.bits)
        check_width("BITS_B", self.bits_b)

    @property
    def wb(self) -> int:
        return self.bits if self.bits_b is None else self.bits_b


class RtlStage(stage.Stage):
    """The exact RTL of one multiplier; its one output is ``--out`` (no run directory, no config.json)."""

    name = "rtl"
    Config = RtlConfig
    outputs = ("<design>.v",)
    renamed = (("--wa", "--bits"), ("--wb", "--bits-b"))

    def execute(self, cfg: Any, *, given: Any = None, progress: bool = True) -> dict[str, Any]:
        name = design_name(cfg.bits, cfg.wb, cfg.signed)
        out = cfg.out or Path(f"{name}.v")
        if out.is_dir():
            raise must("OUT", "a file name", f"{out} (a directory)")
        if out.exists() and not cfg.overwrite:
            raise ConfigError(f"{out} already exists (use --overwrite to replace it)")
        write_text(out, to_verilog(multiplier(cfg.arch, cfg.bits, cfg.wb, signed_=cfg.signed), name))
        return {"design": name, "arch": cfg.arch, "wa": cfg.bits, "wb": cfg.wb, "signed": cfg.signed,
                "verilog": str(out)}

    def summary(self, cfg: Any, report: dict[str, Any]) -> str:
        return report["verilog"]


STAGE = RtlStage()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    stage.add_arguments(parser, STAGE)


def main(args: argparse.Namespace) -> int:
    return stage.main(STAGE, args)
