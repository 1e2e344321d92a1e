"""Yosys: synthesis to generic gates (the seed of evolution) and mapping onto a technology's cells.

Exposes :func:`available`, :func:`version` and :func:`run`, plus the two scripts the flow uses.
Area is never scraped from text: Yosys 0.23's ``stat -json`` gives cell counts, and the area is
those counts times the Liberty areas (a test checks that this equals Yosys' own "Chip area").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
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


def read_modules(source: Path, *, option: str = "VERILOG") -> dict:
    """The modules of ``source`` as Yosys reads them (``write_json`` of the unelaborated design).

    Reading happens before a run exists, in a temporary directory; a file Yosys cannot read is the
    user's mistake, reported as one line naming ``option`` and Yosys' own message."""
    import subprocess
    import tempfile

    exe = tools.YOSYS.require()
    with tempfile.TemporaryDirectory(prefix="axf_read_") as tmp:
        out = Path(tmp) / "design.json"
        script = Path(tmp) / "read.ys"
        script.write_text(f"read_verilog -sv {_q(source)}\nproc\nwrite_json {_q(out)}\n", encoding="utf-8")
        proc = subprocess.run([exe, "-q", "-s", str(script)], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, check=False, timeout=600)
        if proc.returncode != 0 or not out.is_file():
            lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            why = next((ln for ln in lines if "ERROR" in ln), lines[-1] if lines else "no output")
            raise ConfigError(f"{option} {source} must be Verilog that Yosys reads, not a file where it stops "
                              f"with: {why.replace('ERROR: ', '')}")
        return json.loads(out.read_text())["modules"]


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
                 *, step: str = "map", delay_target_ps: int | None = None, liberty: Path | None = None,
                 out_json: Path | None = None) -> Mapped:
    """Synthesise and map onto the technology with ABC; area = cell counts x Liberty areas.

    ``delay_target_ps``: map for this delay instead, with ABC told the output load and input drive
    OpenSTA uses (``abc -constr``, which also lets it buffer and size gates), trading area for speed.
    ``liberty``: map with this Liberty instead of the technology's (the same cells, some ``dont_use``);
    ``out_json``: also write the mapped netlist as Yosys JSON.
    """
    reads = "\n".join(f"read_verilog -sv {_q(s)}" for s in sources)
    stat_json = run_dir.path / f"{out_verilog.stem}.stat.json"
    lib = _q(liberty or tech.liberty)
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
""" + (f"write_json {_q(out_json)}\n" if out_json else "")
    run(run_dir, script, step=step)
    _timescale(out_verilog)
    return Mapped(out_verilog, *_area(stat_json, top, tech))


def cell_area(run_dir: RunDir, verilog: Path, top: str, tech: Technology, *, step: str = "area") -> Mapped:
    """The area of a netlist of the technology's cells as it is, read by Yosys with the Liberty (nothing
    is synthesised or mapped): cell counts x Liberty areas."""
    stat_json = run_dir.path / f"{verilog.stem}.stat.json"
    lib = _q(tech.liberty)
    script = f"""read_liberty -lib {lib}
read_verilog -sv {_q(verilog)}
hierarchy -check -top {top}
check -assert
tee -q -o {_q(stat_json)} stat -json
stat -liberty {lib}
"""
    run(run_dir, script, step=step)
    return Mapped(verilog, *_area(stat_json, top, tech))


def _timescale(verilog: Path) -> None:
    """Start a netlist Yosys wrote with the flow's timescale, so it drops in beside files that have one."""
    from core.verilog import TIMESCALE

    verilog.write_text(TIMESCALE + "\n" + verilog.read_text(encoding="utf-8"), encoding="utf-8")


def _area(stat_json: Path, top: str, tech: Technology) -> tuple[dict[str, int], float]:
    data = json.loads(stat_json.read_text())
    mod = data["modules"].get("\\" + top) or data["modules"].get(top)
    counts: dict[str, int] = {k: int(v) for k, v in mod["num_cells_by_type"].items()}
    lib = tech.cell_areas
    unknown = [c for c in counts if c not in lib]
    if unknown:
        raise ConfigError(f"mapped netlist uses {unknown[0]}, which is not a cell of {tech.liberty}")
    return counts, float(sum(lib[c] * n for c, n in counts.items()))


@dataclass(frozen=True)
class MappedHier(Mapped):
    """A clocked design mapped module by module, then flattened with hierarchical instance names.

    ``cell_types``: instance name (``pod0.sa.pe_0_0.mult._12_``) -> library cell; ``modules``: the area
    of each module of the hierarchy on its own (its cells plus its submodules).
    """

    cell_types: dict[str, str] = field(default_factory=dict, repr=False)
    modules: dict[str, float] = field(default_factory=dict)


def map_hierarchical(run_dir: RunDir, sources: list[Path], top: str, tech: Technology, out_verilog: Path,
                     *, clock_period_ps: int, step: str = "map") -> MappedHier:
    """Synthesise a clocked design module by module (a module instantiated many times, such as a PE,
    is synthesised once), map flip-flops and logic onto the technology with ABC timed for the clock
    (``abc -constr -D``, which buffers and sizes gates inside each module), then flatten.

    Private names are enumerated before flattening, so every instance and net of the flat netlist is
    named by its place in the hierarchy (``<instance>.<instance>.<name>``): a gate-level simulation's
    VCD and OpenSTA name the same nets the same way, and power and area can be split by module.
    """
    reads = "\n".join(f"read_verilog -sv {_q(s)}" for s in sources)
    lib = _q(tech.liberty)
    stem = out_verilog.with_suffix("")
    stat_json, hier_json, flat_json = (Path(f"{stem}.{x}.json") for x in ("stat", "hier_stat", "cells"))
    constr = Path(f"{stem}.constr")
    constr.write_text(f"set_driving_cell {tech.gates['NOT'].cell}\nset_load {tech.default_load}\n", encoding="utf-8")
    script = f"""read_liberty -lib {lib}
{reads}
hierarchy -check -top {top}
synth -top {top}
dfflibmap -liberty {lib}
abc -liberty {lib} -constr {_q(constr)} -D {int(clock_period_ps)}
opt_clean -purge
stat -liberty {lib}
setattr -mod -unset top
tee -q -o {_q(hier_json)} stat -json
hierarchy -top {top}
rename -enumerate
flatten
opt_clean -purge
check -assert
tee -q -o {_q(stat_json)} stat -json
write_verilog -noattr -noexpr {_q(out_verilog)}
write_json {_q(flat_json)}
"""
    run(run_dir, script, step=step)
    _timescale(out_verilog)
    cells, area = _area(stat_json, top, tech)
    data = json.loads(flat_json.read_text())
    mod = data["modules"][top]
    types = {name: c["type"] for name, c in mod["cells"].items()}
    flat_json.unlink()  # large; the types it held are returned
    return MappedHier(out_verilog, cells, area, types, _module_areas(hier_json, tech))


def _module_areas(stat_json: Path, tech: Technology) -> dict[str, float]:
    """Area of every module with its submodules, from a hierarchical ``stat -json``."""
    # Yosys 0.23 leaves a comma after the last module when there is no top (it then prints no "design")
    text = re.sub(r",\s*}\s*$", "\n}\n", stat_json.read_text())
    data = json.loads(text)["modules"]
    names = {n.lstrip("\\"): n for n in data}
    memo: dict[str, float] = {}

    def area(name: str) -> float:
        if name not in memo:
            total = 0.0
            for cell, count in data[names[name]]["num_cells_by_type"].items():
                sub = cell.lstrip("\\")
                if sub not in names and cell not in tech.cell_areas:
                    raise ConfigError(f"mapped netlist uses {cell}, which is not a cell of {tech.liberty}")
                total += count * (area(sub) if sub in names else tech.cell_areas[cell])
            memo[name] = total
        return memo[name]

    return {n: area(n) for n in names}
