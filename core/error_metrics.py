"""Error metrics of a multiplier's outputs against the exact products (``error__*`` in :mod:`core.metrics`).

One function computes them all from one pair of arrays, so the evolution, ``flow.py ppa`` and the
benches report the same figures the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Errors:
    """Error metrics of a netlist against the exact table, all from one simulation."""

    wce: int
    mae: float
    mse: float
    er: float
    mred: float
    bias: float
    smape: float
    n: int  # normalisation N
    sampled: bool

    def as_report(self) -> dict[str, float | int | bool]:
        return {
            "wce": self.wce, "wce_pct": 100.0 * self.wce / self.n,
            "mae": self.mae, "mae_pct": 100.0 * self.mae / self.n, "er": 100.0 * self.er,
            "mred": 100.0 * self.mred, "bias": self.bias, "nmed": 100.0 * self.mae / self.n,
            "smape": 100.0 * self.smape, "mse": self.mse,
        }


def errors_of(y: np.ndarray, p: np.ndarray, n: int, sampled: bool) -> Errors:
    """Metrics of outputs ``y`` against exact products ``p`` (both int64 values)."""
    d = y - p
    ad = np.abs(d)
    nz = p != 0
    denom = np.abs(y) + np.abs(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        smape = np.where(denom > 0, ad / np.where(denom > 0, denom, 1), 0.0)
        mred = float(np.mean(ad[nz] / np.abs(p[nz]))) if nz.any() else 0.0
    return Errors(wce=int(ad.max()), mae=float(ad.mean()), mse=float(np.mean(d.astype(np.float64) ** 2)),
                  er=float(np.mean(d != 0)), mred=mred, bias=float(d.mean()), smape=float(smape.mean()),
                  n=n, sampled=sampled)
