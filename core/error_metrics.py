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


APP_SUFFIX = "_app"


def weighted(y: np.ndarray, p: np.ndarray, w: np.ndarray, n: int) -> dict[str, float]:
    """WMED-style metrics of outputs ``y`` against ``p`` with every input pair weighted by ``w`` (the
    operand distribution, summing to 1): the ``*_app`` figures of :mod:`core.metrics`. ``wce_app`` is the
    largest error over the pairs the distribution can produce (weight > 0)."""
    d = (y - p).astype(np.float64)
    ad = np.abs(d)
    w = np.asarray(w, dtype=np.float64) / float(np.sum(w))
    nz = p != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(nz, ad / np.where(nz, np.abs(p), 1), 0.0)
    wnz = float(w[nz].sum())
    mae = float(np.dot(w, ad))
    return {"wce_app": int(ad[w > 0].max()) if (w > 0).any() else 0, "mae_app": mae, "mae_app_pct": 100.0 * mae / n,
            "mse_app": float(np.dot(w, d * d)), "bias_app": float(np.dot(w, d)),
            "er_app": 100.0 * float(w[ad > 0].sum()), "mred_app": 100.0 * float(np.dot(w, rel)) / wnz if wnz else 0.0}
