"""What an assignment of multipliers costs: the narrow interface the search sees.

A :class:`CostModel` maps an assignment (each layer's multipliers, with the multiply-accumulates each
one performs) to energy and time, and a multiplier to its area and power. Two implementations:

:class:`MultiplierCost` (default)
    *multiplier* energy only: sum over layers of MACs x the energy per operation that each multiplier's
    run measured (``energy_pj`` of its ``report.json``, else ``power_w`` x ``clock_period_ns``). Time is
    not modelled (None). Area is the MAC-weighted mean multiplier area (um^2): the area per multiplier of
    an array whose processing elements are provisioned in proportion to the work each multiplier does.
:class:`AccelCost` (``--accel CONFIG``)
    energy and time of the whole accelerator from ``accel_models`` (XAI-Gen's multi-pod systolic model),
    which must be present in this checkout, beside the multiplier energy; the search minimises the
    accelerator's energy, or with ``objective="mult"`` (``--objective mult``) the multipliers' while every
    point still carries the accelerator's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.errors import ConfigError
from core.run import read_json
from dnn.mults import Multiplier

BITS = 8  # the network's INT8 quantisation
OBJECTIVES = ("mult", "accel")  # what the search minimises: multiplier or whole-accelerator energy


def objective(chosen: str, accel: Any) -> str:
    """What the search minimises for ``--objective chosen`` (auto: the accelerator's energy where an
    accelerator configuration ``accel`` is given, else the multipliers')."""
    if chosen == "auto":
        return "accel" if accel is not None else "mult"
    return chosen


@dataclass(frozen=True)
class Cost:
    """``energy_pj`` is what the search minimises: multiplier energy, or with ``--accel`` the whole
    accelerator's; ``mult_energy_pj`` is always the multiplier energy and ``accel_energy_pj`` the whole
    accelerator's (None without ``--accel``), so every point carries both."""

    energy_pj: float
    area: float
    time_s: float | None = None
    mult_energy_pj: float | None = None
    accel_energy_pj: float | None = None


# one layer's use of multipliers: (layer name, [(multiplier, MACs it performs), ...])
Usage = list[tuple[str, list[tuple[Multiplier, int]]]]


class CostModel(Protocol):
    name: str

    def multiplier(self, m: Multiplier) -> dict[str, float | None]: ...

    def cost(self, usage: Usage, assignment: dict[str, Any]) -> Cost: ...


def _energy(m: Multiplier) -> float:
    e = m.cost("energy_pj")
    if e is None:
        p, t = m.cost("power_w"), m.cost("clock_period_ns")
        if p is not None and t is not None:
            e = p * t * 1e3
    if e is None:
        raise ConfigError(f"multiplier {m.name} has no energy_pj (nor power_w and clock_period_ns) in its "
                          "report.json, so its energy cannot be costed")
    return e


def _area(m: Multiplier) -> float:
    a = m.cost("area")
    if a is None:
        raise ConfigError(f"multiplier {m.name} has no area in its report.json")
    return a


class MultiplierCost:
    """Multiplier energy (MACs x measured energy per operation) and MAC-weighted multiplier area."""

    name = "multiplier"

    def __init__(self, mults: list[Multiplier]):
        for m in mults:  # fail early, before any run directory is created
            _energy(m)
            _area(m)

    def multiplier(self, m: Multiplier) -> dict[str, float | None]:
        return {"area": _area(m), "power_w": m.cost("power_w"), "energy_pj": _energy(m)}

    def cost(self, usage: Usage, assignment: dict[str, Any] | None = None) -> Cost:
        del assignment  # the multiplier energy depends only on how many MACs each multiplier performs
        energy = 0.0
        area_w = 0.0
        macs = 0
        for _, parts in usage:
            for m, n in parts:
                energy += n * _energy(m)
                area_w += n * _area(m)
                macs += n
        return Cost(energy, area_w / max(1, macs), None, energy, None)


def check_array_run(path: Path | None, mults: list[Multiplier]) -> None:
    """The array run that gives ``P_pod`` must have been made with multipliers of the network's width
    (8x8) and of the candidates' signedness: its measured power is that of those PEs."""
    if path is None:
        return
    report = Path(path) / "report.json"
    if not report.is_file():
        return  # accel_models names a missing run or report in its own words
    data = read_json(report, "array run report")
    if not isinstance(data, dict):
        return
    wa, wb, signed = data.get("wa"), data.get("wb"), data.get("signed")
    want = mults[0].signed if mults else True
    kind = "signed" if want else "unsigned"
    if (wa, wb, signed) != (BITS, BITS, want):
        made = f"{wa}x{wb} {'signed' if signed else 'unsigned' if signed is not None else '(signedness unknown)'}"
        raise ConfigError(f"ACCEL array run {path} must be made with {BITS}x{BITS} {kind} multipliers (the "
                          f"network's INT8 quantisation and the candidates), not {made!r}")


class AccelCost:
    """Energy and time from ``accel_models`` (its ``api.Evaluator``) for the accelerator that ``config``
    describes (a JSON file with ``flow.py accel``'s settings, or an accel run's ``config.json``). The
    assignment is handed over in the ``assign.json`` format: ``{"layer": "RUN_DIR" | "exact" | [per
    filter]}``; the accelerator model must know the network's layers under the same names."""

    name = "accel"

    def __init__(self, config: Path, mults: list[Multiplier], layers: list[str], objective: str = "accel",
                 multipliers: Any = None):
        """``multipliers``: the cost model of the multiplier energy beside it (default
        :class:`MultiplierCost`; a block-sparse network passes its own)."""
        from accel_models import api

        if not config.is_file():
            raise ConfigError(f"ACCEL must be an accelerator configuration file, not {str(config)!r}")
        check_array_run(api.load_config(config).array_run, mults)
        runs = tuple(str(m.path) for m in mults if m.path is not None)
        self.model: Any = api.Evaluator(config, multipliers=runs)
        known = {getattr(layer, "name", None) for layer in self.model.layers}
        missing = [n for n in layers if n not in known]
        if missing:
            raise ConfigError(f"ACCEL models a network without layer {missing[0]!r}; its layers must be named "
                              "as the DNN level's (the net of the accelerator configuration must match --net)")
        self.fallback = multipliers if multipliers is not None else MultiplierCost(mults)
        self.objective = objective

    def multiplier(self, m: Multiplier) -> dict[str, float | None]:
        return self.fallback.multiplier(m)

    def cost(self, usage: Usage, assignment: dict[str, Any] | None = None) -> Cost:
        energy, time_s = self.model.evaluate(assignment or {})
        mult = self.fallback.cost(usage, assignment)
        target = mult.energy_pj if self.objective == "mult" else float(energy)
        return Cost(target, mult.area, float(time_s), mult.energy_pj, float(energy))
