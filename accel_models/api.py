"""The narrow interface other stages use: an accelerator configuration in, energy and time per
multiplier assignment out.

``Evaluator(config, layers)`` takes the settings of ``flow.py accel`` (a dict, a JSON file with the same
keys as the command's options, or a run's ``config.json``) and the network's layers (default: the
configuration's ``net``), runs the cycle model once, and then answers

* ``evaluate(assignment)`` -> ``(energy_pj, time_s)`` for an assignment in the JSON format of
  ``assign.py`` (``{"layer": "RUN_DIR or exact" | [per filter] | {...}}``), in microseconds;
* ``multiplier(run_dir)`` -> the PPA of a multiplier run (area, energy per operation), from its
  ``report.json``.

Pass every multiplier run directory the search may use as ``multipliers``: the first one fixes the exact
multiplier's reference PPA (same flow, same technology) before any energy is computed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accel_models import assign
from accel_models.energy import Multiplier
from accel_models.evaluation import AccelConfig, evaluate
from accel_models.layers import Layer
from accel_models.model import LayerMults
from core import config as cfgmod
from core.errors import ConfigError


def load_config(source: AccelConfig | Mapping[str, Any] | str | Path) -> AccelConfig:
    if isinstance(source, AccelConfig):
        return source
    name = "accelerator configuration"
    if not isinstance(source, Mapping):
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"accelerator configuration {path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"accelerator configuration {path} is not readable JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"accelerator configuration {path} must hold a JSON object")
        name = f"accelerator configuration {path}"
        source = data
    if "settings" in source and "command" in source:  # a run's config.json: its settings
        if source["command"] != "accel" or not isinstance(source["settings"], Mapping):
            raise ConfigError(f"{name} must be the config.json of an accel run, not of {source['command']!r}")
        source = source["settings"]
    data = {k: v for k, v in source.items() if v is not None}
    return cfgmod.from_dict(AccelConfig, data, source=name)


class Evaluator:
    """Energy and time of a network on one accelerator, for any multiplier assignment."""

    def __init__(self, config: AccelConfig | Mapping[str, Any] | str | Path, layers: list[Layer] | None = None,
                 multipliers: tuple[str | Path, ...] = ()):
        self.config = load_config(config)
        result = evaluate(self.config, layers=layers, multipliers=tuple(str(m) for m in multipliers))
        self.layers = result.layers
        self.evaluation = result.evaluation
        self.lib = result.evaluation.lib
        self._resolved: dict[str, str] = {}

    def shares(self, assignment: Mapping[str, Any]) -> dict[str, LayerMults]:
        return assign.parse(dict(assignment), self.layers, self.lib, default=self.config.mult,
                            resolved=self._resolved)

    def evaluate(self, assignment: Mapping[str, Any]) -> tuple[float, float]:
        """(energy in pJ, time in s) of one inference under ``assignment``."""
        return self.evaluation.evaluate(self.shares(assignment))

    def multiplier(self, run_dir: str | Path) -> Multiplier:
        return self.lib.get(str(run_dir))
