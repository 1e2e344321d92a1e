"""Yosys: synthesis to generic gates (the seed of evolution) and mapping onto a technology's cells.

Exposes :func:`available`, :func:`version` and :func:`run`, plus the two scripts the flow uses.
Area is never scraped from text: Yosys 0.23's ``stat -json`` gives cell counts, and the area is
those counts times the Liberty areas (a test checks that this equals Yosys' own "Chip area").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core import tools
from core.errors import ConfigError
from core.run import RunDir
from tech import Technology

GENERIC_GATES = "AND,NAND,OR,NOR,XOR,XNOR"  # NOT is always available to abc -g


def available() -> bool:
    return tools.YOSYS.available()


def version() -> str:
    return tools.YOSYS.version()


def run(run_dir: RunDir, script: str, *, step: str, cwd: Path | None = None) -> Path:
    """Run a Yosys script (written next to the logs) and return the log path."""
    exe = tools.YOSYS.require()
    cwd = Path(cwd or run_dir.path)
    script_path = run_dir.logs / f"{step}.ys"
    script_path.write_text(script, encoding="utf-8")
    return run_dir.run("yosys", [exe, "-s", str(script_path.resolve())], step=step, cwd=cwd)


def _q(path: Path) -> str:
    text = str(Path(path).resolve())
    if any(c in text for c in ' "\\;'):
        raise ConfigError(f"path {text!r} contains a space, quote, backslash or ';', which Yosys scripts "
                          "cannot carry")
    return text


def synth_generic(run_dir: RunDir, sources: list[Path], top: str, out_json: Path, out_verilog: Path,
                  *, step: str = "synth") -> Path:
    """Synthesise RTL to a flat netlist of generic gates (AND NAND OR NOR XOR XNOR NOT)."""
    reads = "\n".join(f"read_verilog -sv {_q(s)}" for s in sources)
    script = f"""{reads}
hierarchy -check -top {top}
synth -flatten -top {top}
abc -g {GENERIC_GATES}
opt_clean -purge
check -assert
write_json {_q(out_json)}
write_verilog -noattr {_q(out_verilog)}
"""
    return run(run_dir, script, step=step)


def read_gates(run_dir: RunDir, source: Path, out_json: Path, out_verilog: Path, *,
               step: str = "read_seed") -> str:
    """Read a user's gate-level Verilog as fine-grained gate cells without optimising it; returns its top.

    Nothing is simplified, so a combinational loop or an undriven output survives for the netlist
    reader to report.
    """
    script = f"""read_verilog -sv {_q(source)}
hierarchy -auto-top
proc
flatten
techmap
opt_clean
write_json {_q(out_json)}
write_verilog -noattr {_q(out_verilog)}
"""
    run(run_dir, script, step=step)
    data = json.loads(out_json.read_text())
    tops = [name for name, mod in data.get("modules", {}).items() if str(mod.get("attributes", {}).get("top", "0"))
            .strip("0") != ""]
    if len(tops) != 1:
        raise ConfigError(f"{source} must define exactly one top module, not {len(tops)}")
    return tops[0]


@dataclass(frozen=True)
class Mapped:
    """A design mapped onto a technology's cells."""

    verilog: Path
    cells: dict[str, int]
    area: float

    @property
    def n_cells(self) -> int:
        return sum(self.cells.values())


def map_to_cells(run_dir: RunDir, sources: list[Path], top: str, tech: Technology, out_verilog: Path,
                 *, step: str = "map", delay_target_ps: int | None = None) -> Mapped:
    """Synthesise and map onto the technology with ABC; area = cell counts x Liberty areas.

    ``delay_target_ps``: map for this delay instead, with ABC told the output load and input drive
    OpenSTA uses (``abc -constr``, which also lets it buffer and size gates), trading area for speed.
    """
    reads = "\n".join(f"read_verilog -sv {_q(s)}" for s in sources)
    stat_json = run_dir.path / f"{out_verilog.stem}.stat.json"
    lib = _q(tech.liberty)
    timed = ""
    if delay_target_ps:
        constr = run_dir.path / f"{out_verilog.stem}.constr"
        constr.write_text(f"set_driving_cell {tech.gates['NOT'].cell}\nset_load {tech.default_load}\n",
                          encoding="utf-8")
        timed = f" -constr {_q(constr)} -D {delay_target_ps}"
    script = f"""read_liberty -lib {lib}
{reads}
hierarchy -check -top {top}
synth -flatten -top {top}
abc -liberty {lib}{timed}
opt_clean -purge
check -assert
tee -q -o {_q(stat_json)} stat -json
stat -liberty {lib}
write_verilog -noattr -noexpr {_q(out_verilog)}
"""
    run(run_dir, script, step=step)
    return Mapped(out_verilog, *_area(stat_json, top, tech))


def _area(stat_json: Path, top: str, tech: Technology) -> tuple[dict[str, int], float]:
    data = json.loads(stat_json.read_text())
    mod = data["modules"].get("\\" + top) or data["modules"].get(top)
    counts: dict[str, int] = {k: int(v) for k, v in mod["num_cells_by_type"].items()}
    lib = tech.cell_areas
    unknown = [c for c in counts if c not in lib]
    if unknown:
        raise ConfigError(f"mapped netlist uses {unknown[0]}, which is not a cell of {tech.liberty}")
    return counts, float(sum(lib[c] * n for c, n in counts.items()))
