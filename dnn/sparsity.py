"""Block-sparse networks: per-layer masks of BxB weight blocks, trained to zero and kept there.

The method of 8x8 weight-block sparsity training: from a trained network, each layer's weights
``(out, in, kh, kw)`` (a linear layer's ``(out, in)``) are cut into blocks of ``block`` output channels x
``block`` input channels, the kernel's ``kh x kw`` inside each block (edge blocks are smaller). The
blocks with the lowest norm (``l1``, ``l2`` or variance of their weights, per weight so that smaller edge
blocks are not preferred) are zeroed at a target ratio,
``floor(ratio * blocks)`` per layer, and the mask ``Gamma`` (one boolean per block, ``True`` = kept) is
applied in every forward pass, ``Gamma * W``, in float, QAT and LUT modes alike; the stored weights of
zeroed blocks are set to zero too. Retraining with the mask fixed cannot revive them: their gradient is
``Gamma * dL/d(Gamma W) = 0`` and Adam moves a weight whose gradient was always zero by exactly zero.
Quantisation-aware training and approximation-aware fine-tuning (:mod:`dnn.train`) run the same forward,
so they keep the mask. Norms are taken on the weights the multipliers see (batch norm folded in).

The first layer is excluded by default (as in the work this follows: its few input channels make its
blocks dear in accuracy and cheap in work). ``ratios`` gives one ratio per layer.

Skipping: LUT inference (:func:`dnn.lutops.prepare` with ``kept``) computes no product of a zero block,
as an array that skips the block's tiles does; :func:`accel_masks` turns the masks into the layout of
``flow.py accel --masks`` (blocks over the GEMM's reduction ``(in, kh, kw)`` x output channels), which a
block of ``block`` input channels covers exactly in ``kh * kw`` consecutive reduction blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core import config as cfg
from core.errors import ConfigError, must
from dnn import qnn

NORMS = ("l1", "l2", "var")
FIRST = "first"  # in an exclusion list: the network's first layer
NONE = "none"  # an exclusion list of its own: no layer excluded


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def weight(layer: qnn.QLayer) -> torch.Tensor:
    """The layer's weights as its multipliers see them (batch norm folded, mask applied)."""
    with torch.no_grad():
        return layer.params()[0].detach()


def channels(layer: qnn.QLayer) -> tuple[int, int]:
    w = layer.raw_weight()
    return int(w.shape[0]), int(w.shape[1])


def check_block(block: int) -> None:
    if not isinstance(block, int) or block < 1:
        raise must("SPARSITY_BLOCK", "a positive integer", block)


def mask_shape(name: str, layer: qnn.QLayer, block: int) -> tuple[int, int]:
    """``(ceil(out / block), ceil(in / block))``; a block larger than the layer is refused, naming it."""
    check_block(block)
    o, c = channels(layer)
    if block > max(o, c):
        raise ConfigError(f"SPARSITY_BLOCK must be at most {max(o, c)} for layer {name} ({o} output x {c} "
                          f"input channels), not {block!r}")
    return _ceil(o, block), _ceil(c, block)


def block_scores(w: np.ndarray, block: int, norm: str) -> np.ndarray:
    """Per-block L1 norm, L2 norm or variance of weights ``(out, in, ...)``, per weight of the block (edge
    blocks have fewer)."""
    if norm not in NORMS:
        raise must("SPARSITY_NORM", "one of the listed choices", norm, NORMS)
    w = np.asarray(w, dtype=np.float64)
    o, c = w.shape[:2]
    s = int(np.prod(w.shape[2:], dtype=np.int64))
    ob, cb = _ceil(o, block), _ceil(c, block)
    padded = np.zeros((ob * block, cb * block, s))
    padded[:o, :c] = w.reshape(o, c, s)
    present = np.zeros((ob * block, cb * block, s))
    present[:o, :c] = 1
    blocks = padded.reshape(ob, block, cb, block, s)
    count = present.reshape(ob, block, cb, block, s).sum(axis=(1, 3, 4))
    # per weight (mean |w|, root mean square), so that an edge block is not zeroed for being small; for
    # whole blocks this ranks as the L1 and L2 norms do
    if norm == "l1":
        return np.abs(blocks).sum(axis=(1, 3, 4)) / count
    if norm == "l2":
        return np.sqrt((blocks ** 2).sum(axis=(1, 3, 4)) / count)
    mean = blocks.sum(axis=(1, 3, 4)) / count
    return (blocks ** 2).sum(axis=(1, 3, 4)) / count - mean ** 2


def ratios(names: Sequence[str], ratio: float, per_layer: Mapping[str, float] | None = None,
           exclude: Sequence[str] = (FIRST,)) -> dict[str, float]:
    """Each layer's ratio of zero blocks: ``per_layer`` where given, else ``ratio``; the layers in ``exclude``
    (``first`` = the network's first layer) stay dense. Layers of ratio 0 are left out (dense)."""
    per_layer = dict(per_layer or {})
    for name, r in [("SPARSITY_RATIO", ratio), *((f"sparsity ratio of layer {n}", v) for n, v in per_layer.items())]:
        cfg.check_range(name, r, 0.0, 1.0, hi_open=True)
    excluded = set()
    for n in exclude:
        if n == NONE:
            continue
        if n == FIRST:
            excluded.add(names[0])
        elif n not in names:
            raise must("SPARSITY_EXCLUDE", "layers of the network, 'first' or 'none'", n, list(names))
        else:
            excluded.add(n)
    for n in per_layer:
        if n not in names:
            raise must("sparsity layer", "a layer of the network", n, list(names))
        if n in excluded:
            raise ConfigError(f"layer {n} is given sparsity ratio {per_layer[n]:g} but is in the exclusion list "
                              "SPARSITY_EXCLUDE (the first layer is excluded by default)")
    out = {}
    for n in names:
        r = per_layer.get(n, ratio)
        if n not in excluded and r > 0:
            out[n] = float(r)
    return out


def derive(model: nn.Module, layer_ratios: Mapping[str, float], block: int = 8, norm: str = "l2"
           ) -> dict[str, np.ndarray]:
    """Masks ``(ceil(out/B), ceil(in/B))`` (True = kept) zeroing the ``floor(ratio * blocks)`` blocks of
    lowest norm of each named layer (ties: the first in row-major order)."""
    layers = dict(qnn.qlayers(model))
    masks = {}
    for name, r in layer_ratios.items():
        if name not in layers:
            raise must("sparsity layer", "a layer of the network", name, list(layers))
        cfg.check_range(f"sparsity ratio of layer {name}", r, 0.0, 1.0, hi_open=True)
        shape = mask_shape(name, layers[name], block)
        scores = block_scores(weight(layers[name]).numpy(), block, norm)
        mask = np.ones(shape, dtype=bool)
        zero = int(np.floor(r * mask.size))
        mask.ravel()[np.argsort(scores.ravel(), kind="stable")[:zero]] = False
        masks[name] = mask
    return masks


def expand(mask: np.ndarray, block: int, out: int, cin: int) -> np.ndarray:
    """The per-(output, input channel) kept matrix of a block mask."""
    return np.repeat(np.repeat(np.asarray(mask, dtype=bool), block, axis=0), block, axis=1)[:out, :cin]


def apply(model: nn.Module, masks: Mapping[str, np.ndarray], block: int) -> None:
    """Fix the masks in the network: ``Gamma * W`` in every forward pass, zeroed blocks' weights set to 0.
    Layers not named become dense again. Mask names and shapes are checked before anything changes."""
    layers = dict(qnn.qlayers(model))
    check_block(block)
    for name, mask in masks.items():
        if name not in layers:
            raise ConfigError(f"masks name layer {name!r}, which the network lacks (layers: {', '.join(layers)})")
        want = mask_shape(name, layers[name], block)
        if np.asarray(mask).shape != want:
            raise ConfigError(f"mask of layer {name} must have shape {want} for {block}x{block} blocks, not "
                              f"{tuple(np.asarray(mask).shape)}")
    for name, layer in layers.items():
        if name not in masks:
            layer.set_weight_mask(None, None)
            continue
        o, c = channels(layer)
        kept = expand(masks[name], block, o, c)
        layer.set_weight_mask(torch.from_numpy(kept), np.asarray(masks[name], dtype=bool).copy(), block)


def masks_of(model: nn.Module) -> dict[str, np.ndarray]:
    """The block masks fixed in a network (layers without one are dense)."""
    return {n: layer.block_mask for n, layer in qnn.qlayers(model) if layer.block_mask is not None}


def block_of(model: nn.Module) -> int | None:
    blocks = {layer.mask_block for _, layer in qnn.qlayers(model) if layer.block_mask is not None}
    return blocks.pop() if len(blocks) == 1 else None


def accel_mask(mask: np.ndarray, layer: qnn.QLayer, block: int) -> np.ndarray:
    """A block mask in ``accel_models.sparsity``'s layout ``(1, ceil(K/B), ceil(out/B))``, K = in * kh * kw:
    reduction block ``kb`` lies inside input-channel block ``kb // (kh * kw)``."""
    w = layer.raw_weight()
    c = int(w.shape[1])
    s = int(np.prod(w.shape[2:], dtype=np.int64))
    kb = _ceil(c * s, block)
    rows = np.minimum(np.arange(kb) * block // (block * s), mask.shape[1] - 1)
    return np.asarray(mask, dtype=bool).T[rows][None]


def accel_masks(model: nn.Module) -> dict[str, np.ndarray]:
    layers = dict(qnn.qlayers(model))
    return {n: accel_mask(m, layers[n], layers[n].mask_block) for n, m in masks_of(model).items()}


def save(path: Path, model: nn.Module) -> None:
    """``masks.npz``: one boolean array per masked layer, as ``flow.py accel --masks`` reads it."""
    import io

    from core.run import write_bytes

    buf = io.BytesIO()
    arrays: dict[str, Any] = accel_masks(model)
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


def density(model: nn.Module) -> dict[str, float]:
    """Share of each layer's weights in kept blocks (1.0 for dense layers)."""
    out = {}
    for n, layer in qnn.qlayers(model):
        out[n] = 1.0 if layer.weight_mask is None else float(layer.weight_mask.float().mean())
    return out


def kept_filters(model: nn.Module) -> dict[str, np.ndarray]:
    """Per layer, each filter's share of kept weights (all ones for dense layers)."""
    out = {}
    for n, layer in qnn.qlayers(model):
        o, _ = channels(layer)
        out[n] = (np.ones(o) if layer.weight_mask is None
                  else layer.weight_mask.reshape(o, -1).float().mean(dim=1).numpy().astype(np.float64))
    return out


def zeros_kept(model: nn.Module) -> bool:
    """Every weight of every zeroed block is exactly zero."""
    for _, layer in qnn.qlayers(model):
        if layer.weight_mask is None:
            continue
        w = layer.raw_weight()
        m = layer.weight_mask.reshape(layer.weight_mask.shape[0], layer.weight_mask.shape[1],
                                      *([1] * (w.dim() - 2)))
        if bool((w.detach() * (~m)).abs().sum() != 0):
            return False
    return True


def retrain(model: nn.Module, data: Any, epochs: int, lr: float, batch: int, seed: int,
            progress: Callable[[str], Any] | None = None, calib_images: int = 512) -> None:
    """Retrain with the masks fixed, as the network was trained: ``epochs`` float epochs at ``lr`` (batch
    norm learning again, for the network that lost blocks), calibration (batch-norm statistics and
    activation ranges re-estimated), then one quantisation-aware epoch at ``lr / 10``; the network ends in
    QAT mode. Without batch norm and activation ranges of its own the float phase is still what recovers
    the accuracy; every phase runs ``Gamma * W``."""
    from dnn import train

    gen = torch.Generator().manual_seed(seed)
    qnn.set_mode(model, "float")
    train._epochs(model, data, epochs, lr, batch, gen, progress, "block-sparse")
    train.calibrate(model, data, calib_images)
    qnn.set_mode(model, "qat")
    train._epochs(model, data, 1, lr / 10, batch, gen, progress, "block-sparse QAT")
