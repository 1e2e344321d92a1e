"""Formal equivalence of two combinational designs with Yosys.

The two designs are joined in a miter (``miter -equiv``), ABC's fraiging (inside Yosys) merges the
internal nodes it proves equal, and Yosys' SAT solver proves the miter's assertion. Fraiging alone
turns the 8x8 multiplier proof from minutes of plain SAT into seconds; both steps are sound, and a
wrong netlist fails the proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import ToolError
from core.run import RunDir
from ppa import yosys

PROOF_FAILED = "Called with -verify and proof did fail!"


@dataclass(frozen=True)
class Equivalence:
    proven: bool
    log: Path

    def as_report(self) -> dict:
        return {"proven": self.proven, "method": "yosys miter + abc fraig + sat", "log": self.log.name}


def equivalent(run_dir: RunDir, gold: list[Path], gold_top: str, gate: list[Path], gate_top: str, *,
               step: str = "formal", gate_liberty: Path | None = None) -> Equivalence:
    """Prove that ``gate_top`` computes the same outputs as ``gold_top`` for every input.

    ``gate_liberty``: the gate netlist is made of this library's cells, whose functions come from it.
    """
    q = yosys._q
    cells = [f"read_liberty -ignore_miss_func {q(gate_liberty)}"] if gate_liberty else []
    script = "\n".join(
        cells + [f"read_verilog -sv {q(s)}" for s in gold] + [f"rename {gold_top} axf_gold"]
        + [f"read_verilog -sv {q(s)}" for s in gate] + [f"rename {gate_top} axf_gate"]
        + ["proc", "miter -equiv -flatten -make_assert axf_gold axf_gate axf_miter", "hierarchy -top axf_miter",
           "flatten", "synth -top axf_miter", "abc -g AND -script +strash;fraig;strash;", "opt_clean",
           "sat -verify -prove-asserts -show-ports axf_miter"]) + "\n"
    try:
        log = yosys.run(run_dir, script, step=step)
    except ToolError as err:
        if err.log is not None and PROOF_FAILED in err.log.read_text(errors="replace"):
            return Equivalence(False, err.log)
        raise
    return Equivalence(True, log)
