"""The multiplier of every PE (:class:`MultSpec`): the exact one, or the evolved one of a multiplier run."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from core import golden, multrun, tools
from core.errors import ConfigError, must
from core.multrun import MultiplierRun
from core.tables import read_lut
from rtl_gen.multiplier import MAX_WIDTH, MIN_WIDTH, Multiplier, design_name


@dataclass(frozen=True)
class MultSpec:
    """The multiplier of every PE: a Verilog module with ports ``a`` (wa), ``b`` (wb), ``y`` (wa+wb).

    ``lut`` is its product table indexed by operand codes (``lut[a_code, b_code]`` = product value);
    for the exact multiplier it is the goldenbrick table.
    """

    wa: int
    wb: int
    signed: bool
    module: str
    verilog: str = ""
    run_dir: Path | None = None  # None: the exact multiplier
    report: tuple[tuple[str, object], ...] = ()

    @property
    def exact(self) -> bool:
        return self.run_dir is None

    @property
    def label(self) -> str:
        return "exact" if self.exact else self.module

    def lut(self) -> np.ndarray:
        if self.exact:
            return golden.table(self.wa, self.wb, self.signed)
        assert self.run_dir is not None
        return read_lut(self.run_dir / "lut.npy", self.wa, self.wb, self.signed)

    def report_dict(self) -> dict:
        return dict(self.report)


def exact_multiplier(wa: int = 8, wb: int = 8, signed: bool = True) -> MultSpec:
    """The exact multiplier (``y = a * b``, Amaranth) as a PE multiplier."""
    for name, w in (("WA", wa), ("WB", wb)):
        if isinstance(w, bool) or not isinstance(w, int) or not MIN_WIDTH <= w <= MAX_WIDTH:
            raise must(name, f"an integer in {MIN_WIDTH}..{MAX_WIDTH}", w)
    name = design_name(wa, wb, signed)
    text = verilog.convert(Multiplier(wa, wb, signed_=signed), name=name, emit_src=False)
    return MultSpec(wa, wb, signed, name, text)


def _last_module(text: str) -> str | None:
    names = re.findall(r"^\s*module\s+(\\\S+|[A-Za-z_][\w$]*)", text, re.M)
    return names[-1] if names else None


def verilog_ports(path: Path, top: str) -> dict[str, tuple[str, int]]:
    """Direction and width of every port of ``top`` in ``path``, as Yosys reads them."""
    exe = tools.YOSYS.require()
    with tempfile.TemporaryDirectory(prefix="axf_ports_") as tmp:
        out = Path(tmp) / "ports.json"
        script = Path(tmp) / "ports.ys"
        script.write_text(f"read_verilog -sv {path.resolve()}\nhierarchy -top {top}\nwrite_json {out}\n",
                          encoding="utf-8")
        proc = subprocess.run([exe, "-q", "-s", str(script)], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(f"{path} cannot be read as Verilog: {last[0]}")
        data = json.loads(out.read_text())
    mod = data["modules"].get(top.lstrip("\\"))
    if mod is None:
        raise ConfigError(f"{path} does not define module {top}")
    return {name: (p["direction"], len(p["bits"])) for name, p in mod["ports"].items()}


def evolved_multiplier(run_dir: Path, *, wa: int | None = None, wb: int | None = None,
                       signed: bool | None = None) -> MultSpec:
    """The evolved multiplier of a run directory (``approx.v``, ``lut.npy``, ``report.json``).

    ``wa``, ``wb``, ``signed``: what the array's operands are; a run that disagrees is an error.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"MULT must be 'exact' or a multiplier run directory, not {str(run_dir)!r} "
                          "(no such directory)")
    run = MultiplierRun.load(run_dir, wa, wb, signed, need=(multrun.VERILOG, multrun.LUT))
    rwa, rwb, rsigned, rep = run.wa, run.wb, run.signed, run.report
    run.lut()  # checked now, not after the array is built
    text = run.verilog()
    top = _last_module(text)
    if top is None:
        raise ConfigError(f"{run_dir / 'approx.v'} defines no module")
    ports = verilog_ports(run_dir / "approx.v", top)
    want = {"a": ("input", rwa), "b": ("input", rwb), "y": ("output", rwa + rwb)}
    if ports != want:
        got = ", ".join(f"{d} {n}[{w}]" for n, (d, w) in sorted(ports.items()))
        need = ", ".join(f"{d} {n}[{w}]" for n, (d, w) in sorted(want.items()))
        raise ConfigError(f"module {top} in {run_dir / 'approx.v'} must have ports {need} (from report.json), "
                          f"not {got}")
    keep = ("design", "eps", "wce", "area", "area_ratio", "power_w", "power_ratio", "delay_ns", "tech",
            "clock_period_ns", "exact")
    report = tuple((k, rep[k]) for k in keep if k in rep)
    return MultSpec(rwa, rwb, rsigned, top.lstrip("\\"), text, run_dir.resolve(), report)


def load_multiplier(spec: str | Path, *, wa: int = 8, wb: int = 8, signed: bool = True,
                    widths_given: bool = False) -> MultSpec:
    """``'exact'`` or a run directory. With ``widths_given`` the array's widths must match the run's."""
    if str(spec) == "exact":
        return exact_multiplier(wa, wb, signed)
    if widths_given:
        return evolved_multiplier(Path(spec), wa=wa, wb=wb, signed=signed)
    return evolved_multiplier(Path(spec))

