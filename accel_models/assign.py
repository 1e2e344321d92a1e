"""Multiplier assignments (per layer or per filter) and HAWX-style spatial/temporal accelerator costs.

An assignment is JSON, the interface the DNN search writes::

    {
      "*": "exact",                                  # optional default for layers not listed
      "conv1": "runs/mul8s/eps0.005-seed1",           # one multiplier for the whole layer
      "layer1.0.conv1": ["exact", "runs/...", ...],  # one entry per filter (output channel)
      "fc": {"default": "exact", "filters": {"0": "runs/...", "7": "runs/..."}}
    }

A multiplier is ``"exact"`` or a multiplier run directory (relative paths are taken from the current
directory, else from the JSON file's directory). Filters of a layer are its output channels over all
groups; with a per-filter assignment the PE columns that hold a filter use its multiplier, so a layer's
multiplier energy is the filter-weighted mean (each filter occupies one column for the same time).

HAWX costs (hardware-aware search of approximate DNNs) for the same assignment, from per-block base
power and area; a block is ``pes x simd`` multiply-accumulate lanes:

* **spatial**: every layer has a block of its own, its lanes split among the layer's multipliers in
  proportion to its filters; area is the sum over layers, a layer takes ``ceil(macs / lanes)`` cycles
  and the layer pipeline's interval is its slowest layer;
* **temporal**: one block (compute vector) per distinct multiplier, shared by all layers in time; area
  is one block per multiplier used, time the sum over layers and multipliers of ``ceil(macs / lanes)``.

Per lane, area and energy are the multiplier's measured figures plus the base of the PE's
non-multiplier logic (``energy.py``: accumulator and registers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accel_models.energy import EnergyParams, Library
from accel_models.layers import Layer
from accel_models.model import LayerMults
from core.errors import ConfigError


def _resolve_path(value: Any, where: str, base: Path | None) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: a multiplier must be \"exact\" or a run directory, not {value!r}")
    if value == "exact":
        return value
    path = Path(value)
    if not path.is_absolute() and not path.exists() and base is not None and (base / path).exists():
        return str(base / path)
    return value


def _shares(names: list[str]) -> LayerMults:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return tuple((n, c / len(names)) for n, c in counts.items())


def parse(data: Any, layers: list[Layer], lib: Library, *, default: str = "exact",
          base: Path | None = None, source: str = "assignment",
          resolved: dict[str, str] | None = None) -> dict[str, LayerMults]:
    """Check an assignment against the network and the PPA reports; return each layer's multiplier shares.

    ``resolved`` caches how multiplier names map to run directories across calls (a search that
    evaluates thousands of assignments resolves each path once)."""
    cache: dict[str, str] = {} if resolved is None else resolved

    def _resolve(value: Any, where: str, base: Path | None) -> str:
        if isinstance(value, str) and value in cache:
            return cache[value]
        out = _resolve_path(value, where, base)
        lib.get(out)
        cache[value] = out
        return out

    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a JSON object mapping layer names to multipliers")
    by_name = {layer.name: layer for layer in layers}
    unknown = [k for k in data if k != "*" and k not in by_name]
    if unknown:
        shown = ", ".join(list(by_name)[:8]) + (", ..." if len(by_name) > 8 else "")
        raise ConfigError(f"{source} names layer {unknown[0]!r}, which the network lacks (layers: {shown})")
    fallback = _resolve(data.get("*", default), f"{source} '*'", base)
    out: dict[str, LayerMults] = {}
    for layer in layers:
        entry = data.get(layer.name, fallback)
        where = f"{source} layer {layer.name}"
        if isinstance(entry, str):
            out[layer.name] = ((_resolve(entry, where, base), 1.0),)
            continue
        if isinstance(entry, list):
            if len(entry) != layer.filters:
                raise ConfigError(f"{where} lists {len(entry)} filters, the layer has {layer.filters}")
            names = [_resolve(v, where, base) for v in entry]
        elif isinstance(entry, dict):
            extra = set(entry) - {"default", "filters"}
            if extra:
                raise ConfigError(f"{where} has unknown key {sorted(extra)[0]!r} (valid keys: default, filters)")
            dflt = _resolve(entry.get("default", fallback), where, base)
            names = [dflt] * layer.filters
            filters = entry.get("filters", {})
            if isinstance(filters, list):
                if len(filters) != layer.filters:
                    raise ConfigError(f"{where} lists {len(filters)} filters, the layer has {layer.filters}")
                names = [_resolve(v, where, base) for v in filters]
            elif isinstance(filters, dict):
                for key, v in filters.items():
                    try:
                        idx = int(key)
                    except ValueError:
                        raise ConfigError(f"{where}: filter index {key!r} is not an integer") from None
                    if not 0 <= idx < layer.filters:
                        raise ConfigError(f"{where}: filter {idx} is outside 0..{layer.filters - 1}")
                    names[idx] = _resolve(v, where, base)
            else:
                raise ConfigError(f"{where}: filters must be a list or an object of index -> multiplier")
        else:
            raise ConfigError(f"{where}: expected a multiplier, a list per filter or an object, not {entry!r}")
        out[layer.name] = _shares(names)
    return out


def load(path: Path, layers: list[Layer], lib: Library, *, default: str = "exact") -> dict[str, LayerMults]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"assignment file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"assignment file {path} is not readable JSON: {exc}") from None
    return parse(data, layers, lib, default=default, base=Path(path).parent, source=f"assignment {path}")


def uniform(layers: list[Layer], lib: Library, mult: str) -> dict[str, LayerMults]:
    lib.get(mult)
    return {layer.name: ((mult, 1.0),) for layer in layers}


def hawx(layers: list[Layer], assignment: Mapping[str, LayerMults], lib: Library, params: EnergyParams,
         pes: int, simd: int) -> dict[str, Any]:
    """Spatial and temporal accelerator costs of an assignment (see the module docstring)."""
    lanes = pes * simd
    e_base = (params.acc_ratio + params.reg_ratio) * lib.exact.energy_pj
    a_base = params.pe_other_area_um2
    used: dict[str, float] = {}
    area_sp: float | None = 0.0
    energy = 0.0
    latency = 0
    interval = 0
    temporal_cycles = 0
    for layer in layers:
        mults = assignment.get(layer.name, (("exact", 1.0),))
        cyc = -(-layer.macs // lanes)
        latency += cyc
        interval = max(interval, cyc)
        for name, share in mults:
            m = lib.get(name)
            energy += layer.macs * share * (m.energy_pj + e_base)
            if area_sp is not None:
                area_sp = None if m.area is None else area_sp + lanes * share * (m.area + a_base)
            temporal_cycles += -(-round(layer.macs * share) // lanes)
            used[name] = used.get(name, 0.0) + layer.macs * share
    area_t: float | None = 0.0
    for name in used:
        m = lib.get(name)
        area_t = None if (area_t is None or m.area is None) else area_t + lanes * (m.area + a_base)
    return {
        "pes": pes, "simd": simd,
        "spatial": {"lanes_per_layer": lanes, "area_um2": area_sp, "latency_cycles": latency,
                    "interval_cycles": interval, "energy_pj": energy},
        "temporal": {"lanes_per_vector": lanes, "vectors": sorted(used), "area_um2": area_t,
                     "cycles": temporal_cycles, "energy_pj": energy},
        "mac_share": {name: v / sum(used.values()) for name, v in sorted(used.items())},
    }
