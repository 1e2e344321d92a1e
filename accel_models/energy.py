"""Energy and area: XAI-Gen's multi-pod energy with P_pod from our own PPA runs.

Per layer (XAI-Gen, Eq. for the multi-pod TPU-v4-like accelerator)::

    E = ceil(N_m / R) * E_M  +  sum over pods of cl * T * P_pod

``N_m`` is the layer's DRAM traffic in words, ``R`` the words one DRAM access delivers (by default the
pod's row count, one word per array row, as in XAI-Gen's notation; ``--access-words``), ``E_M`` the
energy of one such access, ``cl`` the cycles a pod is busy on the layer, the cycles it waits for DRAM
included (it stays clocked; a pod without work is clock-gated),
``T`` the clock period and ``P_pod`` the pod's power. SRAM accesses are reported as a third component.

``P_pod`` comes from, in this order:

1. an **array run directory** (issue 5, ``--array-run``): its ``report.json`` ``power_w`` measured on
   the array at ``clock_period_ns``, divided by its pods (and scaled per PE when its rows x cols differ
   from the modelled pod). A layer assigned a different multiplier swaps that multiplier's measured
   energy per operation for the array's one.
2. **composed** from multiplier run directories: per PE and cycle, the multiplier's measured
   ``energy_pj`` (the exact multiplier: ``exact.power_w x clock_period_ns`` from the same run's report)
   plus the non-multiplier part of a PE, ``(acc_ratio + reg_ratio) x`` the exact multiplier's energy:

   - ``acc_ratio`` = 0.5: a 32-bit accumulator adder against an 8-bit multiplier, 0.1 pJ / 0.2 pJ
     (M. Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm figures);
   - ``reg_ratio`` = 1.0: the PE's pipeline registers (activation, weight, partial sum), taken as one
     small register-file access per MAC, which Eyeriss measures at about the energy of a MAC (Y.-H. Chen,
     J. Emer, V. Sze, "Eyeriss", ISCA 2016, normalised energy table).

   Without any PPA run the exact multiplier is taken as 0.2 pJ (Horowitz 2014, 8-bit multiply).

Defaults for memory (Horowitz 2014, 45 nm): DRAM 160 pJ per byte (1.3 nJ per 64-bit access, the low
end of his 1.3-2.6 nJ), SRAM 2.5 pJ per byte (20 pJ per 64-bit access of a 32 KB array). Area of the
non-multiplier part of a PE: 8448 um^2 (OSU018 Liberty: 48 DFFPOSX1 flip-flops of 96 um^2 for the
operand and partial-sum registers, 32 FAX1 full adders of 120 um^2 for the accumulator).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import multrun
from core.errors import ConfigError

DRAM_PJ_PER_BYTE = 160.0
SRAM_PJ_PER_BYTE = 2.5
EXACT_MULT_PJ = 0.2
ACC_RATIO = 0.5
REG_RATIO = 1.0
PE_OTHER_AREA_UM2 = 8448.0
DEFAULT_CLOCK_NS = 10.0

MULT_KEYS = ("area", "power_w", "clock_period_ns", "exact")
ARRAY_KEYS = ("power_w", "area", "rows", "cols", "pods", "dataflow", "clock_period_ns")


def _report(run_dir: Path, what: str) -> dict[str, Any]:
    path = Path(run_dir) / "report.json"
    if not Path(run_dir).is_dir():
        raise ConfigError(f"{what} run directory {run_dir} does not exist")
    if not path.is_file():
        raise ConfigError(f"{what} run directory {run_dir} has no report.json (no PPA report to read)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    return data


def _missing(data: dict[str, Any], keys: tuple[str, ...], path: Path, what: str) -> None:
    missing = [k for k in keys if data.get(k) is None]
    if missing:
        raise ConfigError(f"{path}/report.json lacks {', '.join(missing)}, which a {what} PPA report must give")


def _number(data: dict[str, Any], key: str, path: Path) -> float:
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ConfigError(f"{path}/report.json: {key} must be a non-negative number, not {v!r}")
    return float(v)


@dataclass(frozen=True)
class Multiplier:
    """The PPA of one multiplier: measured energy per operation and area."""

    name: str  # "exact" or the run directory as given
    energy_pj: float
    area: float | None
    path: str | None = None
    delay_ns: float | None = None
    wce: float | None = None
    mae: float | None = None


@dataclass(frozen=True)
class MultiplierRun:
    """A multiplier run directory: the evolved multiplier and the exact one of the same flow."""

    approx: Multiplier
    exact: Multiplier
    clock_ns: float
    tech: str | None


def load_multiplier(run_dir: str | Path) -> MultiplierRun:
    """Read a multiplier run's ``report.json``; a missing report or key is a one-line error."""
    path = Path(run_dir)
    if path.is_dir() and not (path / multrun.REPORT).is_file():
        raise ConfigError(f"multiplier run directory {path} has no report.json (no PPA report to read)")
    data = multrun.read_report(path)
    _missing(data, MULT_KEYS, path, "multiplier")
    clock = _number(data, "clock_period_ns", path)
    power = _number(data, "power_w", path)
    energy = float(data["energy_pj"]) if data.get("energy_pj") is not None else power * clock * 1e3
    exact = data["exact"]
    if not isinstance(exact, dict) or exact.get("power_w") is None:
        raise ConfigError(f"{path}/report.json: exact must be an object with power_w (the exact multiplier's PPA)")
    e_power = _number(exact, "power_w", path)
    e_area = float(exact["area"]) if exact.get("area") is not None else None
    approx = Multiplier(str(run_dir), energy, _number(data, "area", path), str(path.resolve()),
                        data.get("delay_ns"), data.get("wce"), data.get("mae"))
    return MultiplierRun(approx, Multiplier("exact", e_power * clock * 1e3, e_area, None, exact.get("delay_ns")),
                         clock, data.get("tech"))


@dataclass(frozen=True)
class ArrayPPA:
    """An array run directory (issue 5): measured power of a whole array with one multiplier."""

    path: str
    power_w: float
    area: float
    rows: int
    cols: int
    pods: int
    dataflow: str
    clock_ns: float
    mult: str  # "exact" or a multiplier run directory


def load_array(run_dir: str | Path) -> ArrayPPA:
    path = Path(run_dir)
    data = _report(path, "array")
    _missing(data, ARRAY_KEYS, path, "array")
    mult = data.get("mult", data.get("multiplier"))
    if mult is None:
        raise ConfigError(f"{path}/report.json lacks mult (the multiplier the array was built with)")
    dims = []
    for key in ("rows", "cols", "pods"):
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{path}/report.json: {key} must be a positive integer, not {v!r}")
        dims.append(v)
    if isinstance(mult, dict):
        mult = mult.get("run_dir") or mult.get("name") or "exact"
    return ArrayPPA(str(path), _number(data, "power_w", path), _number(data, "area", path), dims[0], dims[1],
                    dims[2], str(data["dataflow"]), _number(data, "clock_period_ns", path), str(mult))


@dataclass(frozen=True)
class EnergyParams:
    dram_pj_per_byte: float = DRAM_PJ_PER_BYTE
    sram_pj_per_byte: float = SRAM_PJ_PER_BYTE
    access_words: int | None = None  # words per DRAM access (XAI-Gen's R); None: the pod's rows
    acc_ratio: float = ACC_RATIO
    reg_ratio: float = REG_RATIO
    pe_other_area_um2: float = PE_OTHER_AREA_UM2
    acc_bytes: int = 4  # width of an accumulator word in the C buffer


@dataclass
class Library:
    """Every multiplier an evaluation may use, looked up by name ("exact" or a run directory)."""

    mults: dict[str, Multiplier] = field(default_factory=dict)
    clock_ns: float | None = None
    sources: list[str] = field(default_factory=list)
    frozen: bool = False  # set once an evaluation depends on the exact reference

    def __post_init__(self) -> None:
        if "exact" not in self.mults:
            self.mults["exact"] = Multiplier("exact", EXACT_MULT_PJ, None)
            self.sources.append("exact multiplier: default 0.2 pJ (Horowitz 2014, 8-bit multiply, 45 nm); "
                                "no multiplier run directory given")

    def add_run(self, run_dir: str | Path) -> Multiplier:
        key = str(run_dir)
        if key in self.mults:
            return self.mults[key]
        run = load_multiplier(run_dir)
        if self.mults["exact"].area is None:
            if self.frozen:
                raise ConfigError(f"multiplier run {key} was not known when the evaluation was built, which "
                                  "used the default exact multiplier; give every run directory up front")
            # the first measured run defines the exact reference (same technology, same flow)
            self.mults["exact"] = run.exact
            self.sources = [s for s in self.sources if not s.startswith("exact multiplier: default")]
            self.sources.append(f"exact multiplier: exact PPA of {key} ({run.tech or 'unknown technology'})")
            self.clock_ns = self.clock_ns or run.clock_ns
        self.mults[key] = run.approx
        return run.approx

    def get(self, name: str) -> Multiplier:
        if name == "exact" or name in self.mults:
            return self.mults[name]
        return self.add_run(name)

    @property
    def exact(self) -> Multiplier:
        return self.mults["exact"]


@dataclass(frozen=True)
class PodPower:
    """Energy per pod-cycle (pJ) as a function of the multiplier in its PEs."""

    rows: int
    cols: int
    base_pj: float  # per pod-cycle, everything but the multipliers
    ref_mult_pj: float  # multiplier energy already inside base_pj (array runs), else 0
    source: str

    def per_cycle(self, mult_pj: float) -> float:
        return self.base_pj + self.rows * self.cols * (mult_pj - self.ref_mult_pj)


def pod_power(rows: int, cols: int, pods: int, dataflow: str, lib: Library, params: EnergyParams,
              array: ArrayPPA | None) -> PodPower:
    """How much energy one pod spends per busy cycle (composed or from an array run)."""
    if array is not None:
        if array.dataflow != dataflow:
            raise ConfigError(f"array run {array.path} is {array.dataflow}, but the modelled dataflow is "
                              f"{dataflow}")
        per_pe = array.power_w * array.clock_ns * 1e3 / (array.pods * array.rows * array.cols)
        mult = lib.get(array.mult)
        scaled = "" if (array.rows, array.cols) == (rows, cols) else \
            f", scaled per PE from {array.rows}x{array.cols}"
        return PodPower(rows, cols, per_pe * rows * cols, mult.energy_pj,
                        f"P_pod from array run {array.path} ({array.power_w:g} W over {array.pods} pod(s) "
                        f"at {array.clock_ns:g} ns{scaled}; multiplier {array.mult})")
    other = (params.acc_ratio + params.reg_ratio) * lib.exact.energy_pj
    return PodPower(rows, cols, rows * cols * other, 0.0,
                    f"P_pod composed per PE: multiplier energy_pj + {params.acc_ratio:g} (accumulator) + "
                    f"{params.reg_ratio:g} (registers) x exact multiplier {lib.exact.energy_pj:.4g} pJ")
