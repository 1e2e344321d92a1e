"""How much each layer (or filter) matters, two ways.

XAI-Gen importance: the layer conductance of each quantised layer (integrated gradients along the
straight line from a zero input, captum's ``LayerConductance``), summed in absolute value over the
layer's neurons and averaged over inputs, normalised so the most important layer has 1.

HAWX scores: for every operation o (an output element of a layer) and every candidate multiplier,
|dL/do| x |delta out|, where the gradient comes from the exact quantised network and delta out is the
change of that layer's output when only that layer uses the candidate (its input held at the exact
network's). Scores are averaged in absolute value to filter level (per output channel) and layer level;
the model-level score of an assignment is the sum of its layers' scores. They are computed over K
representative inputs: k-means on the (mean, std) of each input's first-layer activations, taking the
input nearest each centre.
"""

from __future__ import annotations

from collections.abc import Callable
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


def hawx(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mults: list[Multiplier],
         progress: Callable[[str], Any] | None = None) -> HawxScores:
    """HAWX scores of every candidate multiplier in every layer (index 0 is exact: score 0)."""
    layers = list(qnn.qlayers(model))
    qnn.assign(model, qnn.uniform(model, mults[0]))
    qnn.set_mode(model, "lut")
    model.eval()
    outs: dict[str, torch.Tensor] = {}
    hooks = []
    for name, layer in layers:
        layer.keep_input = True

        def keep(_m: nn.Module, _i: Any, out: torch.Tensor, name: str = name) -> None:
            out.retain_grad()
            outs[name] = out

        hooks.append(layer.register_forward_hook(keep))
    try:
        xr = x.clone().requires_grad_(True)  # makes the LUT layers take the straight-through path
        loss = F.cross_entropy(model(xr), y, reduction="sum")
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    filters: dict[str, list[np.ndarray]] = {}
    per_layer: dict[str, list[float]] = {}
    with torch.no_grad():
        for name, layer in layers:
            grad = outs[name].grad
            assert grad is not None and layer.last_input is not None
            base = outs[name].detach()
            inp = layer.last_input.detach()
            fs: list[np.ndarray] = []
            for m in mults:
                if m is mults[0]:
                    fs.append(np.zeros(layer.out_features))
                    continue
                layer.assign(m)
                delta = (layer(inp) - base).abs()
                score = (grad.abs() * delta).transpose(0, 1).reshape(layer.out_features, -1).mean(1)
                fs.append(score.double().numpy())
            layer.assign(mults[0])
            layer.keep_input = False
            layer.last_input = None
            filters[name] = fs
            per_layer[name] = [float(f.mean()) for f in fs]
            if progress:
                progress(f"HAWX scores of {name}: " + ", ".join(f"{s:.3g}" for s in per_layer[name]))
    return HawxScores(filters, per_layer)
