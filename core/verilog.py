"""What every Verilog file axflow writes shares: the flow's timescale and documented lint waivers.

Verilator refuses a design in which some files carry a `` `timescale `` and others do not
(TIMESCALEMOD), and Icarus warns; so every file starts with the timescale of the flow's own
simulations (``verify.sim.TIMESCALE``). A waiver is a ``/* verilator lint_off RULE */`` with its
reason written above it, switched on again at the end of the file so that it never leaks into the
next file of a compilation.
"""

from __future__ import annotations

TIMESCALE = "`timescale 1ns / 1ps"


def waived(body: str, reasons: dict[str, str], *, explain: bool = True) -> str:
    """``body`` between the lint_off and lint_on of every rule in ``reasons`` (rule -> why it is waived);
    ``explain=False`` leaves the reasons out (a file that wraps several parts explains them once)."""
    if not reasons:
        return body
    head = explanation(reasons) if explain else []
    head += [f"/* verilator lint_off {rule} */" for rule in reasons]
    tail = [f"/* verilator lint_on {rule} */" for rule in reasons]
    return "\n".join(head) + "\n" + body.rstrip("\n") + "\n" + "\n".join(tail) + "\n"


def explanation(reasons: dict[str, str]) -> list[str]:
    """Comment lines giving the reason of every waived rule."""
    return (["// Lint waivers for `verilator --lint-only -Wall`, each with its reason:"]
            + [f"// {rule}: {why}" for rule, why in reasons.items()])
