"""How much each layer (or filter) matters, and how much a candidate multiplier would disturb it.

XAI-Gen importance: the layer conductance of each quantised layer (integrated gradients along the
straight line from a zero input, captum's ``LayerConductance``), summed in absolute value over the
layer's neurons and averaged over inputs, normalised so the most important layer has 1. What a
multiplier does to a layer is its relative deviation: sum |delta out| / sum |out| when only that layer
uses it (:func:`deviation`); XAI-Gen's score of (layer, multiplier) is importance x deviation.

HAWX scores: for every operation o (an output element of a layer) and every candidate multiplier,
|dL/do| x |delta out|, where the gradient comes from the exact quantised network and delta out is the
change of that layer's output when only that layer uses the candidate (its input held at the exact
network's): the first-order change of the loss. Scores are summed over the operations of a filter
(output channel) and of a layer, per input (averaged over the inputs), so that the model-level score of
an assignment, the sum of its layers' (filters') scores, estimates the loss it adds whatever the layers'
sizes. Both are computed over K representative inputs: k-means on the (mean, std) of each input's
first-layer activations, taking the input nearest each centre.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dnn import qnn
from dnn._torch import require_captum
from dnn.mults import Multiplier


def representatives(model: nn.Module, x: torch.Tensor, k: int, seed: int) -> np.ndarray:
    """Indices of K inputs chosen by k-means on (mean, std) of the first layer's activations."""
    from sklearn.cluster import KMeans

    _, first = next(qnn.qlayers(model))
    feats = []
    handle = first.register_forward_hook(lambda _m, _i, out: feats.append(
        torch.stack([out.flatten(1).mean(1), out.flatten(1).std(1)], dim=1)))
    try:
        with torch.no_grad():
            for i in range(0, len(x), 500):
                model(x[i:i + 500])
    finally:
        handle.remove()
    f = torch.cat(feats).numpy().astype(np.float64)
    k = min(k, len(x))
    f = (f - f.mean(axis=0)) / np.maximum(f.std(axis=0), 1e-12)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(f)
    chosen: list[int] = []
    for c in range(k):
        d = ((f - km.cluster_centers_[c]) ** 2).sum(axis=1)
        d[chosen] = np.inf
        chosen.append(int(np.argmin(d)))
    return np.asarray(chosen, dtype=np.int64)


def conductance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 16,
                progress: Callable[[str], Any] | None = None) -> dict[str, float]:
    """XAI-Gen layer importance from layer conductance (captum), max-normalised to 1."""
    attr = require_captum()
    model.eval()
    raw: dict[str, float] = {}
    for name, layer in qnn.qlayers(model):
        lc = attr.LayerConductance(model, layer)
        a = lc.attribute(x, baselines=torch.zeros_like(x), target=y, n_steps=steps,
                         internal_batch_size=max(1, min(len(x) * steps, 512)))
        raw[name] = float(a.detach().abs().flatten(1).sum(1).mean())
        if progress:
            progress(f"conductance of {name}: {raw[name]:.4g}")
    top = max(raw.values()) or 1.0
    return {k: v / top for k, v in raw.items()}


@dataclass
class HawxScores:
    """HAWX sensitivity: ``filters[layer][mult_index]`` (O,) and ``layers[layer][mult_index]``."""

    filters: dict[str, list[np.ndarray]]
    layers: dict[str, list[float]]

    def model(self, choice: dict[str, int]) -> float:
        return float(sum(self.layers[name][i] for name, i in choice.items()))


def _deltas(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, mults: list[Multiplier]
            ) -> Iterator[tuple[str, int, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """(layer, multiplier index, |delta out|, out, dL/dout or None) for every quantised layer and every
    candidate but the exact one (index 0): the change of the layer's output (N, O, ...) when only it uses
    the candidate, its input held at the exact network's. The gradient (of the summed cross entropy
    against ``y``) is taken when ``y`` is given."""
    layers = list(qnn.qlayers(model))
    qnn.assign(model, qnn.uniform(model, mults[0]))
    qnn.set_mode(model, "lut")
    model.eval()
    outs: dict[str, torch.Tensor] = {}
    hooks = []
    for name, layer in layers:
        layer.keep_input = True

        def keep(_m: nn.Module, _i: Any, out: torch.Tensor, name: str = name) -> None:
            if out.requires_grad:
                out.retain_grad()
            outs[name] = out

        hooks.append(layer.register_forward_hook(keep))
    try:
        if y is None:
            with torch.no_grad():
                model(x)
        else:
            xr = x.clone().requires_grad_(True)  # makes the LUT layers take the straight-through path
            F.cross_entropy(model(xr), y, reduction="sum").backward()
    finally:
        for h in hooks:
            h.remove()
    try:
        with torch.no_grad():
            for name, layer in layers:
                base = outs[name].detach()
                grad = outs[name].grad if y is not None else None
                assert layer.last_input is not None
                inp = layer.last_input.detach()
                for i, m in enumerate(mults):
                    if i:
                        layer.assign(m)
                        yield name, i, (layer(inp) - base).abs(), base, grad
                layer.assign(mults[0])
    finally:
        for _, layer in layers:
            layer.keep_input = False
            layer.last_input = None


def deviation(model: nn.Module, x: torch.Tensor, mults: list[Multiplier]) -> dict[str, list[float]]:
    """``[layer][mult_index]``: sum |delta out| / sum |out| of the layer when only it uses that
    multiplier (0 for the exact one, index 0), over inputs ``x``."""
    out: dict[str, list[float]] = {}
    for name, i, delta, base, _ in _deltas(model, x, None, mults):
        row = out.setdefault(name, [0.0] * len(mults))
        row[i] = float(delta.sum() / base.abs().sum().clamp(min=1e-12))
    return out


@dataclass
class XaiScores:
    """XAI-Gen: ``importance[layer]`` (conductance, max 1) and ``deviation[layer][mult_index]``."""

    importance: dict[str, float]
    deviation: dict[str, list[float]]

    def score(self, layer: str, m: int) -> float:
        return self.importance[layer] * self.deviation[layer][m]


def xai(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mults: list[Multiplier], steps: int = 16,
        progress: Callable[[str], Any] | None = None) -> XaiScores:
    """XAI-Gen's scores: the conductance (QAT mode, as the network trains) and the deviations (LUT mode)."""
    qnn.set_mode(model, "qat")
    importance = conductance(model, x, y, steps, progress)
    return XaiScores(importance, deviation(model, x, mults))


def hawx(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mults: list[Multiplier],
         progress: Callable[[str], Any] | None = None) -> HawxScores:
    """HAWX scores of every candidate multiplier in every layer (index 0 is exact: score 0)."""
    filters: dict[str, list[np.ndarray]] = {}
    for name, i, delta, _, grad in _deltas(model, x, y, mults):
        assert grad is not None
        fs = filters.setdefault(name, [np.zeros(delta.shape[1]) for _ in mults])
        # summed over each filter's operations, averaged over the inputs
        fs[i] = (grad.abs() * delta).transpose(0, 1).reshape(delta.shape[1], -1).sum(1).double().numpy() / len(x)
    per_layer = {name: [float(f.sum()) for f in fs] for name, fs in filters.items()}
    if progress:
        for name, per in per_layer.items():
            progress(f"HAWX scores of {name}: " + ", ".join(f"{v:.3g}" for v in per))
    return HawxScores(filters, per_layer)
