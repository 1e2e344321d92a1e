"""Multipliers as the DNN level sees them: a product table and the costs its run measured.

A multiplier is a run directory of the spine (``runs/<design>/<tag>/``) holding ``lut.npy`` (int32,
``lut[a_code, b_code]``, the activation is operand ``a``) and ``report.json`` (``wa``, ``wb``,
``signed``, ``area``, ``power_w``, ``energy_pj``, ... and ``exact`` with the exact design's costs), or
the word ``exact``: the exact 8x8 product, costed from the ``exact`` entry of the other multipliers'
reports.

INT8 quantisation (symmetric, zero point 0) maps values to operand codes:

* signed multipliers: activations in [-128, 127], weights in [-127, 127], both as two's-complement codes;
* unsigned multipliers: activations in [0, 255] (the network's inputs and activations must then be
  non-negative), weights in sign-magnitude: the multiplier sees |w| in [0, 127] and the sign is applied
  to its product.

Either way :meth:`Multiplier.table` gives the *effective* table ``T[a - a_lo, w + 127]`` (int64) over
activation values ``a_lo .. a_hi`` and weight values ``-127 .. 127``: what one product contributes to
an accumulator.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import golden, multrun
from core.errors import ConfigError
from core.multrun import MultiplierRun

BITS = 8  # the quantisation width
W_MAX = (1 << (BITS - 1)) - 1  # weights are symmetric: -127 .. 127
N_WCODES = 2 * W_MAX + 1
EXACT = "exact"
NO_MULTS = "MULTS must name at least one approximate multiplier run directory (exact is always a candidate)"


@dataclass(frozen=True, eq=False)
class Multiplier:
    """One candidate multiplier: its product table, signedness and the costs from its report."""

    name: str
    lut: np.ndarray = field(repr=False)  # (256, 256) int64, lut[a_code, b_code]
    signed: bool
    path: Path | None = None
    report: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_exact(self) -> bool:
        return bool(np.array_equal(self.lut, golden.table(BITS, BITS, self.signed)))

    @functools.cached_property
    def digest(self) -> str:
        """A short hash of the table: identical tables share caches and plans."""
        return hashlib.sha1(np.ascontiguousarray(self.lut, dtype=np.int64).tobytes()
                            + bytes([self.signed])).hexdigest()[:16]

    def act_range(self, non_negative: bool) -> tuple[int, int]:
        """The activation values this multiplier's quantisation produces."""
        if not self.signed:
            return 0, (1 << BITS) - 1
        return (0 if non_negative else -(1 << (BITS - 1))), (1 << (BITS - 1)) - 1

    def table(self, a_lo: int, a_hi: int) -> np.ndarray:
        """Effective products ``T[a - a_lo, w + W_MAX]`` for activations a_lo..a_hi, weights -127..127."""
        return _effective(self, a_lo, a_hi)

    def cost(self, key: str) -> float | None:
        """A cost figure of this multiplier from its report (``area``, ``power_w``, ``energy_pj``...)."""
        value = self.report.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@functools.lru_cache(maxsize=64)
def _effective_cached(digest: str, lut_bytes: bytes, signed: bool, a_lo: int, a_hi: int) -> np.ndarray:
    lut = np.frombuffer(lut_bytes, dtype=np.int64).reshape(1 << BITS, 1 << BITS)
    a = np.arange(a_lo, a_hi + 1)
    w = np.arange(-W_MAX, W_MAX + 1)
    if signed:
        out = lut[(a & 0xFF)[:, None], (w & 0xFF)[None, :]]
    else:
        out = lut[a[:, None], np.abs(w)[None, :]] * np.sign(w)[None, :]
    out = np.ascontiguousarray(out, dtype=np.int64)
    out.flags.writeable = False
    return out


def _effective(m: Multiplier, a_lo: int, a_hi: int) -> np.ndarray:
    return _effective_cached(m.digest, np.ascontiguousarray(m.lut, dtype=np.int64).tobytes(), m.signed,
                             a_lo, a_hi)


def exact(signed: bool = True, report: dict[str, Any] | None = None) -> Multiplier:
    """The exact 8x8 multiplier; its costs are the ``exact`` entry of another multiplier's report."""
    return Multiplier(EXACT, golden.table(BITS, BITS, signed), signed, None, dict(report or {}))


def check_lut(lut: Any, where: str) -> np.ndarray:
    """The table as int64 after checking it is an 8x8 product table of integers."""
    if not isinstance(lut, np.ndarray):
        raise ConfigError(f"{where} must hold a numpy array, not {type(lut).__name__}")
    if lut.dtype.kind not in "iu":
        raise ConfigError(f"{where} must have an integer dtype (int32), not {lut.dtype}")
    if lut.shape != (1 << BITS, 1 << BITS):
        raise ConfigError(f"{where} must have shape (256, 256) for an 8x8 multiplier, not {lut.shape}")
    return lut.astype(np.int64)


def load(spec: str | Path) -> Multiplier:
    """A multiplier from a run directory (``lut.npy`` + ``report.json``), or ``exact``."""
    if str(spec) == EXACT:
        return exact(True)
    path = Path(spec)
    if not path.is_dir():
        raise ConfigError(f"multiplier {str(spec)!r} must be a run directory with lut.npy and report.json "
                          "or the word 'exact'")
    run = MultiplierRun.load(path, need=(multrun.LUT,))
    wa, wb, signed, report, lut_path = run.wa, run.wb, run.signed, run.report, path / multrun.LUT
    if wa < BITS or wb < BITS:
        raise ConfigError(f"multiplier {path} is {wa}x{wb} bits, narrower than the {BITS}-bit quantisation "
                          f"(an {BITS}x{BITS} multiplier is needed)")
    if wa != BITS or wb != BITS:
        raise ConfigError(f"multiplier {path} is {wa}x{wb} bits; the DNN level quantises to {BITS} bits "
                          f"and needs an {BITS}x{BITS} multiplier")
    try:
        raw = np.load(lut_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{lut_path} is not a readable .npy array: {exc}") from None
    if raw.dtype != np.int32:
        raise ConfigError(f"{lut_path} must have dtype int32, not {raw.dtype}")
    lut = check_lut(raw, str(lut_path))
    name = f"{report['design']}/{path.name}" if report.get("design") else path.name
    return Multiplier(str(name), lut, bool(signed), path.resolve(), report)


def load_all(specs: list[str] | tuple[str, ...]) -> list[Multiplier]:
    """The candidate multipliers, ``exact`` first; all must share signedness."""
    if not specs:
        raise ConfigError(NO_MULTS)
    loaded = [load(s) for s in specs if str(s) != EXACT]
    signs = {m.signed for m in loaded}
    if len(signs) > 1:
        names = ", ".join(f"{m.name} ({'signed' if m.signed else 'unsigned'})" for m in loaded)
        raise ConfigError(f"MULTS must all be signed or all unsigned, not a mix: {names}")
    signed = signs.pop() if signs else True
    exact_report: dict[str, Any] = next(
        (m.report["exact"] for m in loaded if isinstance(m.report.get("exact"), dict)), {})
    ref = exact(signed, _exact_costs(exact_report, loaded))
    all_names = [m.name for m in loaded]
    dupes = sorted({n for n in all_names if all_names.count(n) > 1})
    if dupes:
        # two runs with the same tag under different designs keep their full path as the name
        loaded = [Multiplier(str(m.path), m.lut, m.signed, m.path, m.report) if m.name in dupes else m
                  for m in loaded]
    return [ref, *loaded]


def _exact_costs(exact_report: dict[str, Any], loaded: list[Multiplier]) -> dict[str, Any]:
    out = dict(exact_report)
    period = next((m.report.get("clock_period_ns") for m in loaded if m.report.get("clock_period_ns")), None)
    if "energy_pj" not in out and isinstance(out.get("power_w"), (int, float)) and period:
        out["energy_pj"] = float(out["power_w"]) * float(period) * 1e3  # W x ns = nJ; x1e3 = pJ
    out.setdefault("area_ratio", 1.0)
    out.setdefault("power_ratio", 1.0)
    out.setdefault("wce", 0)
    out.setdefault("mae", 0.0)
    return out
