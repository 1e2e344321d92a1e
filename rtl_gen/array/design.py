"""The Verilog of one configuration, module by module, with every module name under one prefix."""

from __future__ import annotations

import hashlib
import re
from dataclasses import astuple, dataclass, replace
from pathlib import Path

from amaranth.back import verilog

from core.errors import ConfigError, must
from core.verilog import TIMESCALE, explanation, waived
from rtl_gen.array.controller import ArrayCore
from rtl_gen.array.geometry import Geometry
from rtl_gen.array.mult import MultSpec
from rtl_gen.array.pe import ProcessingElement
from rtl_gen.array.top import MultiPodArray

PARTS = ("mult", "pe", "core", "top")
# Lint waivers of array.v (Amaranth's back end writes the Verilog; these are properties of its output)
ARRAY_WAIVERS = {
    "WIDTH": "Amaranth's Verilog back end leaves operand extension and truncation to Verilog's rules "
             "(e.g. a 2-bit state compared with 1'h1); the semantics are Amaranth's, verified cycle-exactly",
    "UNUSEDSIGNAL": "the back end keeps intermediate wires and unused bits of its cells (e.g. the high "
                    "bits of a sum that is truncated)",
    "LITENDIAN": "a zero-width signal (the pod index of a one-pod array) is written [-1:0]; it is never read",
    "DECLFILENAME": "array.v holds every module of the array, none of them named array",
    "UNSIGNED": "with one PE row or column a loop bound is 0 and a comparison such as cnt < 0 is constantly "
                "false, as the schedule wants",
    "CASEINCOMPLETE": "a read-back multiplexer decodes only the (pod, bank) codes that exist; its output is "
                      "set to 0 before the case, so the other codes read 0",
}
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOP_ATTR = re.compile(r"^\(\*\s*top\s*=\s*1\s*\*\)\s*\n", re.M)


def _rename_modules(text: str, mapping: dict[str, str]) -> str:
    """``text`` with every module named in ``mapping`` renamed, definitions and instantiations."""
    for old, new in mapping.items():
        text = re.sub(rf"(?<![\w$\\.'`]){re.escape(old)}(?![\w$])", new, text)
    return text


@dataclass(frozen=True)
class Design:
    """The Verilog of one configuration, module by module (each through Amaranth's back end).

    Every module name starts with ``prefix`` (by default the geometry's name and a hash of the
    configuration and the multiplier's Verilog), so two arrays, or an array and the ``approx.v`` its
    multiplier came from, live in one design: the multiplier is shipped under the prefix too
    (``<prefix>_mult``, its Verilog otherwise unchanged). Only the top carries ``(* top = 1 *)``.
    """

    geometry: Geometry
    mult: MultSpec
    top: str
    core: str
    pe: str
    modules: tuple[tuple[str, str], ...]  # (part, Verilog) in dependency order: mult, pe, core, top
    mult_module: str = ""  # the multiplier's name inside this design

    def text(self, parts: tuple[str, ...] = PARTS) -> str:
        # each part in its own waivers: a shipped approx.v switches its own waivers on again at its end
        body = "\n".join(waived(v, ARRAY_WAIVERS, explain=False) for part, v in self.modules if part in parts)
        return "\n".join([TIMESCALE, *explanation(ARRAY_WAIVERS), body])

    def write(self, path: Path, parts: tuple[str, ...] = PARTS) -> Path:
        path.write_text(self.text(parts), encoding="utf-8")
        return path


def default_prefix(g: Geometry, mult: MultSpec) -> str:
    """``<geometry name>_<hash>``: the hash covers every setting of ``g`` and the multiplier's Verilog."""
    fields = astuple(g) if g.tile_skip else astuple(g)[:-1]  # names of arrays without the option unchanged
    h = hashlib.sha256(repr(fields).encode() + b"\0" + mult.verilog.encode()).hexdigest()[:8]
    return f"{g.name}_{h}"


def generate(g: Geometry, mult: MultSpec, prefix: str | None = None) -> Design:
    """Verilog of the multiplier, the PE, the core (controller, pods, arrays) and the top with its buffers.

    ``prefix``: the top's name and the start of every other module's (default :func:`default_prefix`).
    """
    if (mult.wa, mult.wb, mult.signed) != (g.wa, g.wb, g.signed):
        raise ConfigError(f"the multiplier {mult.label} is {mult.wa}x{mult.wb} "
                          f"{'signed' if mult.signed else 'unsigned'}, the array "
                          f"{g.wa}x{g.wb} {'signed' if g.signed else 'unsigned'}")
    if prefix is None:
        prefix = default_prefix(g, mult)
    elif not isinstance(prefix, str) or not IDENTIFIER.fullmatch(prefix):
        raise must("PREFIX", "a Verilog identifier (letters, digits and _, not starting with a digit)", prefix)
    top = prefix
    pe_name, core_name, mult_name = f"{top}_pe", f"{top}_core", f"{top}_mult"
    defined = re.findall(r"^\s*module\s+([A-Za-z_][\w$]*)", mult.verilog, re.M)
    mapping = {m: (mult_name if m == mult.module else f"{mult_name}_{m}") for m in defined}
    shipped = replace(mult, module=mult_name, verilog=_rename_modules(_TOP_ATTR.sub("", mult.verilog), mapping))
    pe = verilog.convert(ProcessingElement(g.dataflow, shipped, g.acc_bits), name=pe_name, emit_src=False)
    core = verilog.convert(ArrayCore(g, shipped, pe_name), name=core_name, emit_src=False)
    top_v = verilog.convert(MultiPodArray(g, shipped, core_module=core_name, pe_module=pe_name), name=top,
                            emit_src=False)
    header = (f"// {mult_name}: the PE multiplier "
              f"({'exact, Amaranth' if mult.exact else f'evolved, {mult.module} from {mult.run_dir}/approx.v'}; "
              "module names prefixed, nothing else changed)\n")
    return Design(g, mult, top, core_name, pe_name,
                  (("mult", header + shipped.verilog), ("pe", _TOP_ATTR.sub("", pe)),
                   ("core", _TOP_ATTR.sub("", core)), ("top", top_v)), mult_name)
