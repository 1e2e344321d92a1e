"""Layers (and weights) of a PyTorch model, found by running it once on a zero input.

Torch is optional: it is imported here, inside functions, and only when a model is given. Forward
hooks record every ``nn.Conv2d`` and ``nn.Linear`` (with the shapes they actually see) and the two
matmuls of every ``nn.MultiheadAttention``; layer names are the modules' qualified names, the names an
assignment uses.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from accel_models.layers import ConvGeom, Layer, conv_from_geom, fc, matmul
from core.errors import ConfigError


def _torch() -> Any:
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise ConfigError("torch is not installed: run make dnn-setup (needed to read a PyTorch model)") from None


def _model(spec: str) -> Any:
    torch = _torch()
    path = Path(spec)
    if path.suffix.lower() in (".pt", ".pth"):
        if not path.is_file():
            raise ConfigError(f"model file {spec} does not exist")
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception:  # not TorchScript: try a pickled module
            try:
                obj = torch.load(str(path), map_location="cpu", weights_only=False)
            except Exception as exc:  # any unpickling failure is the user's file
                raise ConfigError(f"cannot load PyTorch model {spec}: {exc}") from None
        if not isinstance(obj, torch.nn.Module):
            raise ConfigError(f"{spec} holds a {type(obj).__name__}, not a whole nn.Module (save the model, "
                              "not only its state_dict)")
        return obj
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {spec}: {exc}") from None
    obj = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    if not isinstance(obj, torch.nn.Module):
        raise ConfigError(f"{spec} did not give an nn.Module")
    return obj


def extract(model: Any, input_shape: tuple[int, ...]) -> tuple[list[Layer], dict[str, np.ndarray]]:
    """The GEMM layers of ``model`` for one input of ``input_shape``, and their weights (PyTorch layout)."""
    torch = _torch()
    nn = torch.nn
    layers: list[Layer] = []
    weights: dict[str, np.ndarray] = {}
    hooks = []

    def conv_hook(name: str):
        def hook(mod: Any, inputs: tuple, _out: Any) -> None:
            x = inputs[0]
            if isinstance(mod.padding, str):
                raise ConfigError(f"layer {name}: padding={mod.padding!r} is not supported; give integers")
            geom = ConvGeom(int(x.shape[-2]), int(x.shape[-1]), mod.in_channels, mod.out_channels,
                            mod.kernel_size[0], mod.kernel_size[1], mod.stride[0], mod.stride[1],
                            mod.padding[0], mod.padding[1], mod.groups, int(x.shape[0]) if x.dim() == 4 else 1)
            layers.append(conv_from_geom(name, geom))
            weights[name] = mod.weight.detach().cpu().numpy()
        return hook

    def linear_hook(name: str):
        def hook(mod: Any, inputs: tuple, _out: Any) -> None:
            x = inputs[0]
            rows = int(np.prod(x.shape[:-1])) if x.dim() > 1 else 1
            layers.append(fc(name, mod.in_features, mod.out_features, rows))
            weights[name] = mod.weight.detach().cpu().numpy()
        return hook

    def mha_hook(name: str):
        def hook(mod: Any, inputs: tuple, _out: Any) -> None:
            q, k = inputs[0], inputs[1]
            batch_first = getattr(mod, "batch_first", False)
            lq = int(q.shape[1] if batch_first else q.shape[0])
            lk = int(k.shape[1] if batch_first else k.shape[0])
            b = int(q.shape[0] if batch_first else q.shape[1]) if q.dim() == 3 else 1
            e = mod.embed_dim
            d = e // mod.num_heads
            # the projections run inside F.multi_head_attention_forward, not through Linear modules
            layers.append(fc(f"{name}.in_proj", e, 3 * e, b * lq))
            if mod.in_proj_weight is not None:
                weights[f"{name}.in_proj"] = mod.in_proj_weight.detach().cpu().numpy()
            layers.append(matmul(f"{name}.scores", lq, d, lk, b * mod.num_heads))
            layers.append(matmul(f"{name}.context", lq, lk, d, b * mod.num_heads))
            layers.append(fc(f"{name}.out_proj", e, e, b * lq))
            weights[f"{name}.out_proj"] = mod.out_proj.weight.detach().cpu().numpy()
        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook(name)))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(linear_hook(name)))
        elif isinstance(mod, nn.MultiheadAttention):
            hooks.append(mod.register_forward_hook(mha_hook(name)))
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(*input_shape))
    except ConfigError:
        raise
    except Exception as exc:  # the model rejected the input shape
        raise ConfigError(f"the model does not run on an input of shape {input_shape}: {exc}") from None
    finally:
        for h in hooks:
            h.remove()
    if not layers:
        raise ConfigError("the model has no Conv2d, Linear or MultiheadAttention layers")
    # a module called twice (weight sharing) becomes two layers with distinct names
    seen: dict[str, int] = {}
    unique = []
    for layer in layers:
        count = seen.get(layer.name, 0)
        seen[layer.name] = count + 1
        unique.append(layer if count == 0 else Layer(f"{layer.name}#{count}", layer.kind, layer.m, layer.k,
                                                     layer.n, layer.groups, layer.conv))
    return unique, weights


def load(spec: str, input_shape: tuple[int, ...]) -> tuple[str, list[Layer]]:
    layers, _ = extract(_model(spec), input_shape)
    return Path(spec.partition(":")[0]).stem or spec, layers


def load_with_weights(spec: str, input_shape: tuple[int, ...]) -> tuple[str, list[Layer], dict[str, np.ndarray]]:
    layers, weights = extract(_model(spec), input_shape)
    return Path(spec.partition(":")[0]).stem or spec, layers, weights
