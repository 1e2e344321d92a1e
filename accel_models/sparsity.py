"""Block sparsity of the weights: masks, how they are derived, and what they skip.

The weight matrix of each group, ``B`` (``k x n``), is cut into ``block x block`` blocks (default 8x8;
edge blocks are smaller). A mask holds one boolean per block, ``True`` where the block is kept, shaped
``(groups, ceil(k/block), ceil(n/block))``. Masks come from a file (``--masks``: an ``.npz`` with one
array per layer name) or are derived at a target ratio of zero blocks per layer:

* ``l1``, ``l2``, ``var``: the blocks with the lowest L1 norm, L2 norm or variance of the weights are
  zeroed (weights from ``--weights``, an ``.npz`` in PyTorch layout: conv ``(out, in/groups, kh, kw)``,
  linear ``(out, in)``; the reduction index runs over ``(in, kh, kw)`` as ``torch.nn.Unfold`` orders it);
* ``random``: a seeded uniform choice of blocks, for when no weights are at hand.

What a mask skips (rtl model): a K block-row whose blocks are all zero across an N panel of the array
is not computed for that panel (ws: fewer K-tiles, os: a shorter reduction stream; is: only block-rows
zero across all of N), zero blocks are neither stored nor fetched from DRAM (a bitmap of one bit per
block is), and the compute energy follows the cycles. Attention matmuls have no weights and stay dense.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from accel_models.layers import Layer
from core.errors import ConfigError, must
from rtl_gen.rtl_cycles import ceil_div

METHODS = ("auto", "l1", "l2", "var", "random")


def shape(layer: Layer, block: int) -> tuple[int, int, int]:
    return layer.groups, ceil_div(layer.k, block), ceil_div(layer.n, block)


def weight_matrix(layer: Layer, w: np.ndarray) -> np.ndarray:
    """``(groups, k, n)`` weight matrices of a layer from its PyTorch-layout weight tensor."""
    w = np.asarray(w)
    g, k, n = layer.groups, layer.k, layer.n
    if w.ndim == 4 and w.shape[0] == g * n and int(np.prod(w.shape[1:])) == k:
        return w.reshape(g, n, k).transpose(0, 2, 1)
    if w.ndim == 2 and w.shape == (g * n, k):
        return w.reshape(g, n, k).transpose(0, 2, 1)
    raise ConfigError(f"weights of layer {layer.name} have shape {tuple(w.shape)}, expected "
                      f"({g * n}, {k}) or ({g * n}, in, kh, kw) in PyTorch layout")


def block_scores(mats: np.ndarray, block: int, method: str) -> np.ndarray:
    """Per-block L1, L2 or variance of ``(groups, k, n)`` matrices (edge blocks zero-padded)."""
    g, k, n = mats.shape
    kb, nb = ceil_div(k, block), ceil_div(n, block)
    padded = np.zeros((g, kb * block, nb * block), dtype=np.float64)
    padded[:, :k, :n] = mats
    count = np.zeros((kb * block, nb * block))
    count[:k, :n] = 1
    blocks = padded.reshape(g, kb, block, nb, block)
    cnt = count.reshape(kb, block, nb, block).sum(axis=(1, 3))
    if method == "l1":
        return np.abs(blocks).sum(axis=(2, 4))
    if method == "l2":
        return np.sqrt((blocks ** 2).sum(axis=(2, 4)))
    mean = blocks.sum(axis=(2, 4)) / cnt
    sq = (blocks ** 2).sum(axis=(2, 4)) / cnt
    return sq - mean ** 2


def derive(layers: list[Layer], ratio: float, block: int, method: str, weights: dict[str, np.ndarray] | None,
           seed: int) -> tuple[dict[str, np.ndarray], str]:
    """Masks zeroing ``floor(ratio * blocks)`` blocks of every weighted layer; returns them and the method used."""
    if method not in METHODS:
        raise must("SPARSITY_METHOD", "one of the listed choices", method, METHODS)
    if method == "auto":
        method = "l2" if weights is not None else "random"
    if method != "random" and weights is None:
        raise ConfigError(f"SPARSITY_METHOD {method} ranks blocks by their weights: give --weights FILE.npz "
                          "(or use --sparsity-method random)")
    rng = np.random.default_rng(seed)
    masks: dict[str, np.ndarray] = {}
    for layer in layers:
        if layer.kind == "matmul":
            continue
        g, kb, nb = shape(layer, block)
        n_zero = int(np.floor(ratio * kb * nb))
        if method == "random":
            scores = rng.random((g, kb, nb))
        else:
            assert weights is not None
            if layer.name not in weights:
                raise ConfigError(f"--weights has no array for layer {layer.name}")
            scores = block_scores(weight_matrix(layer, weights[layer.name]), block, method)
        mask = np.ones((g, kb, nb), dtype=bool)
        for gi in range(g):
            order = np.argsort(scores[gi].ravel(), kind="stable")[:n_zero]
            mask[gi].ravel()[order] = False
        masks[layer.name] = mask
    return masks, method


def load(path: Path, layers: list[Layer], block: int) -> dict[str, np.ndarray]:
    """Masks from an ``.npz`` (one boolean array per layer name, ``(groups, kb, nb)`` or ``(kb, nb)``)."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read masks {path}: {exc}") from None
    by_name = {layer.name: layer for layer in layers}
    masks = {}
    for name in data.files:
        if name not in by_name:
            raise ConfigError(f"masks {path} name layer {name!r}, which the network lacks")
        layer = by_name[name]
        want = shape(layer, block)
        arr = np.asarray(data[name]).astype(bool)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.shape != want:
            raise ConfigError(f"mask of layer {name} has shape {tuple(arr.shape)}, expected {want} for "
                              f"{block}x{block} blocks")
        masks[name] = arr
    return masks


def k_eff(mask: np.ndarray, layer: Layer, cols: int, block: int, dataflow: str) -> list[tuple[int, ...]]:
    """Per group, the reduction length the array still runs (per N panel; one value for ``is``)."""
    k = layer.k
    row_len = np.full(mask.shape[1], block)
    row_len[-1] = k - (mask.shape[1] - 1) * block
    out: list[tuple[int, ...]] = []
    for g in range(mask.shape[0]):
        if dataflow == "is":
            out.append((int(row_len[mask[g].any(axis=1)].sum()),))
            continue
        panels = []
        for j in range(ceil_div(layer.n, cols)):
            c0, c1 = j * cols, min(layer.n, (j + 1) * cols)
            rows = mask[g][:, c0 // block: ceil_div(c1, block)].any(axis=1)
            panels.append(int(row_len[rows].sum()))
        out.append(tuple(panels))
    return out


def kept_weights(mask: np.ndarray, layer: Layer, block: int) -> list[int]:
    """Per group, the weights in kept blocks (edge blocks counted at their true size)."""
    kb, nb = mask.shape[1:]
    rl = np.full(kb, block)
    rl[-1] = layer.k - (kb - 1) * block
    cl = np.full(nb, block)
    cl[-1] = layer.n - (nb - 1) * block
    sizes = np.outer(rl, cl)
    return [int(sizes[mask[g]].sum()) for g in range(mask.shape[0])]


def bitmap_bytes(mask: np.ndarray) -> int:
    return ceil_div(int(mask.shape[1] * mask.shape[2]), 8)
