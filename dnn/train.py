"""Training: float training, calibration, quantisation-aware training, approximation-aware fine-tuning.

:func:`trained` returns a network trained by the flow and cached on disk, keyed by everything that
determines it (net, data fingerprint, epochs, learning rate, batch, seed), so a second run of the flow
reuses it. The pipeline is the one CircuitsDNA uses for ResNet-20: float training, INT8
quantisation-aware training (fake quantisation, straight-through rounding), then, for a chosen
assignment of approximate multipliers, fine-tuning with the LUT products in the forward pass and the
exact product's gradient in the backward pass.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dnn import models, qnn
from dnn.data import Data

CACHE_FORMAT = 2


@dataclass(frozen=True)
class Recipe:
    """How a network is trained (everything that goes into the cache key)."""

    net: str
    epochs: int = 4
    qat_epochs: int = 1
    lr: float = 2e-3
    batch: int = 64
    seed: int = 1
    calib_images: int = 512


class Checkpoint:
    """The training state of one cached network after its last finished epoch (``<network>.pt.partial``,
    replaced atomically), so that a killed training continues where it stopped."""

    def __init__(self, path: Path):
        self.path = path
        self.extra: dict[str, Any] = {}
        self.saved: dict[str, Any] | None = None
        if path.is_file():  # written whole or not at all (renamed into place)
            self.saved = torch.load(path, map_location="cpu", weights_only=True)

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        try:
            torch.save({**state, **self.extra}, tmp)
            os.replace(tmp, self.path)
        finally:  # a full disk leaves the last whole checkpoint and no partial file
            tmp.unlink(missing_ok=True)
        self.saved = None  # what this run holds in memory is newer


def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Which images the model classifies right in its current mode (a bool per image)."""
    was = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(x[i:i + batch]).argmax(dim=1) == y[i:i + batch])
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Top-1 accuracy in the model's current mode."""
    return int(correct(model, x, y, batch).sum()) / max(1, len(x))


def _epochs(model: nn.Module, data: Data, epochs: int, lr: float, batch: int, gen: torch.Generator,
            progress: Callable[[str], Any] | None, what: str,
            after_epoch: Callable[[int], Any] | None = None,
            checkpoint: Checkpoint | None = None) -> None:
    """``epochs`` epochs of Adam under a one-cycle schedule. With ``checkpoint``, the whole training state
    (weights, optimiser, schedule, the shuffling generator) is saved after every epoch, and a saved state
    of the same phase is continued from: an interrupted run ends with the weights an uninterrupted one
    reaches."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    n = len(data.x_train)
    steps = max(1, epochs * ((n + batch - 1) // batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    first = 0
    if checkpoint is not None and checkpoint.saved is not None and checkpoint.saved["phase"] == what:
        saved = checkpoint.saved
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimiser"])
        sched.load_state_dict(saved["schedule"])
        gen.set_state(saved["generator"])
        first = saved["epoch"]
        if progress and first:
            progress(f"{what}: continuing after epoch {first}/{epochs} from {checkpoint.path}")
    model.train()
    freeze_bn = any(layer.mode != "float" for _, layer in qnn.qlayers(model))
    for epoch in range(first, epochs):
        if freeze_bn:
            for mod in model.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.eval()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if checkpoint is not None:
            checkpoint.save({"phase": what, "epoch": epoch + 1, "model": model.state_dict(),
                             "optimiser": opt.state_dict(), "schedule": sched.state_dict(),
                             "generator": gen.get_state()})
        if progress:
            progress(f"{what} epoch {epoch + 1}/{epochs}: loss {total / n:.4f}")
        if after_epoch is not None:
            after_epoch(epoch + 1)
            model.train()


def calibrate(model: nn.Module, data: Data, images: int) -> None:
    """Re-estimate batch-norm statistics (their running averages are what gets folded into the
    quantised weights), then record each layer's activation range."""
    x = data.x_train[:images]
    batches = [x[i:i + 256] for i in range(0, len(x), 256)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if norms:
        was = model.training
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration images
        model.train()
        with torch.no_grad():
            for b in batches:
                model(b)
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        model.train(was)
    qnn.calibrate(model, batches)


def key(recipe: Recipe, data: Data) -> str:
    text = json.dumps({"format": CACHE_FORMAT, **asdict(recipe), "data": data.fingerprint,
                       "shape": list(data.shape), "classes": data.classes}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def build(recipe: Recipe, data: Data) -> nn.Module:
    c, h, _ = data.shape
    return models.build(recipe.net, c, h, data.classes)


def trained(recipe: Recipe, data: Data, cache_dir: Path | None,
            progress: Callable[[str], Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A float-trained, calibrated, QAT-trained network (mode ``qat``), from the cache when possible."""
    torch.manual_seed(recipe.seed)
    model = build(recipe, data)
    path = cache_dir / f"{recipe.net}-{key(recipe, data)}.pt" if cache_dir else None
    if path is not None and path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        qnn.set_mode(model, "qat")
        return model, dict(state["info"], cached=str(path))
    gen = torch.Generator().manual_seed(recipe.seed)
    checkpoint = Checkpoint(path.with_name(path.name + ".partial")) if path is not None else None
    qnn.set_mode(model, "float")
    if checkpoint is not None and checkpoint.saved is not None and checkpoint.saved["phase"] == "QAT":
        float_acc = checkpoint.saved["float_accuracy"]
    else:
        _epochs(model, data, recipe.epochs, recipe.lr, recipe.batch, gen, progress, "float", checkpoint=checkpoint)
        calibrate(model, data, recipe.calib_images)
        float_acc = accuracy(model, data.x_test, data.y_test)
    qnn.set_mode(model, "qat")
    if recipe.qat_epochs:
        if checkpoint is not None:
            checkpoint.extra = {"float_accuracy": float_acc}
        _epochs(model, data, recipe.qat_epochs, recipe.lr / 10, recipe.batch, gen, progress, "QAT",
                checkpoint=checkpoint)
    info = {"float_accuracy": float_acc, "qat_accuracy": accuracy(model, data.x_test, data.y_test),
            "recipe": asdict(recipe), "data": data.name, "data_fingerprint": data.fingerprint}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        torch.save({"model": model.state_dict(), "info": info}, tmp)
        os.replace(tmp, path)
        if checkpoint is not None:
            checkpoint.path.unlink(missing_ok=True)
    return model, info


def finetune(model: nn.Module, data: Data, epochs: int, lr: float, batch: int, seed: int,
             x_val: torch.Tensor, y_val: torch.Tensor,
             progress: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Approximation-aware fine-tuning of a model already in ``lut`` mode with its multipliers assigned:
    LUT products forward, the exact product's gradient backward (straight-through), on the training
    images of ``data``.

    The best checkpoint by accuracy on the validation images ``x_val``/``y_val`` (held out from the
    training images, never test images) is kept, the starting weights included: an epoch must raise
    that accuracy to replace them, so the network returned is never worse on them than the one given.
    Returns the accuracies per epoch (0 = the start) and the epoch kept."""
    gen = torch.Generator().manual_seed(seed)
    start = accuracy(model, x_val, y_val)
    history = [start]
    best: dict[str, Any] = {"epoch": 0, "accuracy": start, "state": copy.deepcopy(model.state_dict())}

    def keep_best(epoch: int) -> None:
        acc = accuracy(model, x_val, y_val)
        history.append(acc)
        if acc > best["accuracy"]:
            best.update(epoch=epoch, accuracy=acc, state=copy.deepcopy(model.state_dict()))

    _epochs(model, data, epochs, lr, batch, gen, progress, "approximation-aware", keep_best)
    model.load_state_dict(best["state"])
    model.eval()
    return {"epochs": epochs, "validation_accuracy": history, "best_epoch": best["epoch"],
            "validation_before": start, "validation_after": best["accuracy"], "validation_images": len(x_val)}
