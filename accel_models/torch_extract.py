"""Layers (and weights) of a PyTorch model, found by running it once on a zero input.

Torch is optional: it is imported here, inside functions, and only when a model is given. The model runs
under a ``TorchDispatchMode``, which sees every ATen operation after PyTorch's own decompositions, so
modules, functional calls (``F.conv1d``, ``torch.matmul``, ``@``, ``bmm``, ``einsum``) and TorchScript
files (``torch.jit.load``) are all seen the same way:

- ``aten.convolution`` of 1-D and 2-D convolutions (stride, padding, dilation, groups): a conv layer
  (a 1-D one has height 1);
- ``aten.mm``/``addmm`` (``nn.Linear``, ``x @ W``): an fc layer when one operand is a parameter,
  otherwise a matmul of two activations; ``aten.bmm``/``baddbmm`` (batched ``@``, ``einsum``): a
  matmul with ``groups`` = batch; ``mv``/``dot`` likewise;
- ``aten._scaled_dot_product_*`` (``F.scaled_dot_product_attention``): its two matmuls.

``nn.MultiheadAttention`` modules are taken whole (in-projection, the two attention matmuls,
out-projection), because PyTorch's inference fast path runs them as one fused operation.

A GEMM that multiplies by a parameter is named after it (``features.0.weight`` -> ``features.0``,
``attn.in_proj_weight`` -> ``attn.in_proj``), the names an assignment uses; a product of two
activations is named after the module that runs it (``blocks.0.matmul``; TorchScript has no module
calls to follow, there it is ``matmul``). A module run twice gives ``name#1``, ``name#2``.
Operations that multiply but are not modelled (3-D and transposed convolutions, fused attention or
recurrent kernels outside a MultiheadAttention module, ...) are returned in ``not_modelled``: never
dropped silently.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accel_models.layers import ConvGeom, Layer, conv_from_geom, fc, matmul
from core.errors import ConfigError

# ATen operations that multiply but have no GEMM model here (seen after decomposition)
UNMODELLED = frozenset({
    "_native_multi_head_attention", "_transformer_encoder_layer_fwd", "mkldnn_rnn_layer",
    "_thnn_fused_lstm_cell", "_thnn_fused_gru_cell", "lstm", "gru", "rnn_tanh", "rnn_relu",
    "mkldnn_convolution", "_convolution", "convolution_overrideable", "conv_tbc", "cudnn_convolution",
    "miopen_convolution", "mkldnn_linear", "_int_mm", "_weight_int8pack_mm",
    # composite operations, normally decomposed before the mode sees them
    "linear", "matmul", "einsum", "tensordot",
})
SDPA = frozenset({"_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                  "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
                  "_scaled_dot_product_attention_math"})


@dataclass
class Extraction:
    """What one run of the model showed: the GEMM layers, their weights, and what is not modelled."""

    layers: list[Layer]
    weights: dict[str, np.ndarray]
    not_modelled: list[dict[str, str]] = field(default_factory=list)


def _torch() -> Any:
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise ConfigError("torch is not installed: run make dnn-setup (needed to read a PyTorch model)") from None


def _import(module_name: str) -> Any:
    """Import ``module_name`` with the current directory on the path, as ``python -m`` would have it."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        importlib.invalidate_caches()
        return importlib.import_module(module_name)
    finally:
        if added:
            sys.path.remove(cwd)


def _model(spec: str) -> Any:
    torch = _torch()
    path = Path(spec)
    if path.suffix.lower() in (".pt", ".pth"):
        if not path.is_file():
            raise ConfigError(f"model file {spec} does not exist")
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript; the user's file is still one
                warnings.simplefilter("ignore", DeprecationWarning)
                obj = torch.jit.load(str(path), map_location="cpu")
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
        factory = getattr(_import(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {spec}: {exc}") from None
    obj = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    if not isinstance(obj, torch.nn.Module):
        raise ConfigError(f"{spec} did not give an nn.Module")
    return obj


def _layer_name(param: str) -> str:
    """``a.b.weight`` -> ``a.b``; ``a.in_proj_weight`` -> ``a.in_proj``; anything else unchanged."""
    if param.endswith(".weight"):
        return param[: -len(".weight")]
    if param.endswith("_weight"):
        return param[: -len("_weight")]
    return param


def _shape(t: Any) -> str:
    return "x".join(str(int(d)) for d in t.shape) if hasattr(t, "shape") else repr(t)


class _Recorder:
    """State shared by the dispatch mode and the module hooks of one extraction."""

    def __init__(self, torch: Any, model: Any) -> None:
        self.torch = torch
        self.params: dict[int, str] = {}
        for name, p in model.named_parameters():
            self.params.setdefault(p.untyped_storage().data_ptr(), name)
        self.stack: list[str] = []
        self.suppress = 0
        self.layers: list[Layer] = []
        self.weights: dict[str, np.ndarray] = {}
        self.not_modelled: list[dict[str, str]] = []

    def param(self, t: Any) -> str | None:
        if not isinstance(t, self.torch.Tensor) or t.layout != self.torch.strided:
            return None
        return self.params.get(t.untyped_storage().data_ptr())

    def context(self, what: str) -> str:
        where = self.stack[-1] if self.stack else ""
        return f"{where}.{what}" if where else what

    def skip(self, op: str, args: tuple, why: str = "") -> None:
        shapes = ", ".join(_shape(a) for a in args if hasattr(a, "shape"))
        entry = {"name": self.context(op), "op": f"aten.{op}", "shapes": shapes}
        if why:
            entry["why"] = why
        if entry not in self.not_modelled:
            self.not_modelled.append(entry)

    def record(self, op: str, args: tuple) -> None:
        if op == "convolution":
            self.conv(args)
        elif op in ("mm", "addmm", "_addmm_activation"):
            a, b = (args[0], args[1]) if op == "mm" else (args[1], args[2])
            self.gemm(a, b)
        elif op in ("bmm", "baddbmm"):
            a, b = (args[0], args[1]) if op == "bmm" else (args[1], args[2])
            self.layers.append(matmul(self.context("matmul"), int(a.shape[1]), int(a.shape[2]), int(b.shape[2]),
                                      int(a.shape[0])))
        elif op in ("mv", "addmv"):
            mat, vec = (args[0], args[1]) if op == "mv" else (args[1], args[2])
            self.gemm(vec.reshape(1, -1), mat.t())
        elif op in ("dot", "vdot"):
            self.layers.append(matmul(self.context("matmul"), 1, int(args[0].shape[0]), 1))
        elif op in SDPA:
            self.sdpa(op, args)
        elif op in UNMODELLED:
            self.skip(op, args)

    def conv(self, args: tuple) -> None:
        x, w, _bias, stride, padding, dilation, transposed, _out_pad, groups = args[:9]
        nd = w.dim() - 2
        if transposed or nd not in (1, 2):
            self.skip("convolution", args, f"{'transposed ' if transposed else ''}{nd}-D convolution")
            return
        pname = self.param(w)
        name = _layer_name(pname) if pname else self.context("conv")
        batch = int(x.shape[0]) if x.dim() == nd + 2 else 1
        in_c, out_c = int(x.shape[-nd - 1]), int(w.shape[0])
        if nd == 1:
            geom = ConvGeom(1, int(x.shape[-1]), in_c, out_c, 1, int(w.shape[-1]), 1, int(stride[0]), 0,
                            int(padding[0]), int(groups), batch, 1, int(dilation[0]))
        else:
            geom = ConvGeom(int(x.shape[-2]), int(x.shape[-1]), in_c, out_c, int(w.shape[-2]), int(w.shape[-1]),
                            int(stride[0]), int(stride[1]), int(padding[0]), int(padding[1]), int(groups), batch,
                            int(dilation[0]), int(dilation[1]))
        self.layers.append(conv_from_geom(name, geom))
        weight = w.detach().cpu().numpy()
        self.weights.setdefault(name, weight.reshape(weight.shape[0], weight.shape[1], 1, -1) if nd == 1 else weight)

    def gemm(self, a: Any, b: Any) -> None:
        pa, pb = self.param(a), self.param(b)
        if pb and not pa:  # activation x weight
            name = _layer_name(pb)
            self.layers.append(fc(name, int(a.shape[1]), int(b.shape[1]), int(a.shape[0])))
            self.weights.setdefault(name, b.detach().t().cpu().numpy())
        elif pa and not pb:  # W @ X: the same GEMM transposed, X^T W^T
            name = _layer_name(pa)
            self.layers.append(fc(name, int(a.shape[1]), int(a.shape[0]), int(b.shape[1])))
            self.weights.setdefault(name, a.detach().cpu().numpy())
        else:
            self.layers.append(matmul(self.context("matmul"), int(a.shape[0]), int(a.shape[1]), int(b.shape[1])))

    def sdpa(self, op: str, args: tuple) -> None:
        q, k, v = args[:3]
        if q.dim() < 2 or k.dim() != q.dim() or v.dim() != q.dim():
            self.skip(op, args, "attention operands of different ranks")
            return
        groups = int(np.prod(q.shape[:-2])) if q.dim() > 2 else 1
        lq, e, lk, ev = int(q.shape[-2]), int(q.shape[-1]), int(k.shape[-2]), int(v.shape[-1])
        self.layers.append(matmul(self.context("scores"), lq, e, lk, groups))
        self.layers.append(matmul(self.context("context"), lq, lk, ev, groups))

    def mha(self, name: str, mod: Any, inputs: tuple) -> None:
        q, k = inputs[0], inputs[1]
        batch_first = getattr(mod, "batch_first", False)
        lq = int(q.shape[1] if batch_first else q.shape[0])
        lk = int(k.shape[1] if batch_first else k.shape[0])
        b = int(q.shape[0] if batch_first else q.shape[1]) if q.dim() == 3 else 1
        e = mod.embed_dim
        d = e // mod.num_heads
        self.layers.append(fc(f"{name}.in_proj", e, 3 * e, b * lq))
        if mod.in_proj_weight is not None:
            self.weights[f"{name}.in_proj"] = mod.in_proj_weight.detach().cpu().numpy()
        self.layers.append(matmul(f"{name}.scores", lq, d, lk, b * mod.num_heads))
        self.layers.append(matmul(f"{name}.context", lq, lk, d, b * mod.num_heads))
        self.layers.append(fc(f"{name}.out_proj", e, e, b * lq))
        self.weights[f"{name}.out_proj"] = mod.out_proj.weight.detach().cpu().numpy()


def _mode(torch: Any, rec: _Recorder) -> Any:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            if not rec.suppress:
                rec.record(func.overloadpacket.__name__, args)
            return out

    return Mode()


def _hooks(torch: Any, model: Any, rec: _Recorder) -> list:
    """Module pre/post hooks: the name of the module running (for activation matmuls) and whole MHAs."""
    if isinstance(model, torch.jit.ScriptModule):
        return []  # TorchScript modules take no hooks; the parameters still name the GEMMs
    handles = []
    for name, mod in model.named_modules():
        is_mha = isinstance(mod, torch.nn.MultiheadAttention)

        def pre(_mod: Any, _inputs: tuple, name: str = name, is_mha: bool = is_mha) -> None:
            rec.stack.append(name)
            rec.suppress += is_mha

        def post(mod: Any, inputs: tuple, _out: Any, name: str = name, is_mha: bool = is_mha) -> None:
            rec.stack.pop()
            if is_mha:
                rec.suppress -= 1
                if not rec.suppress:
                    rec.mha(name, mod, inputs)

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    return handles


def extract_all(model: Any, input_shape: tuple[int, ...]) -> Extraction:
    """The GEMM layers of ``model`` for one input of ``input_shape``, their weights (PyTorch layout: a
    1-D convolution's as ``out x in x 1 x k``) and the multiplying operations not modelled."""
    torch = _torch()
    rec = _Recorder(torch, model)
    handles = _hooks(torch, model, rec)
    try:
        model.eval()
        with torch.no_grad(), _mode(torch, rec):
            model(torch.zeros(*input_shape))
    except ConfigError:
        raise
    except Exception as exc:  # the model rejected the input shape
        raise ConfigError(f"the model does not run on an input of shape {input_shape}: {exc}") from None
    finally:
        for h in handles:
            h.remove()
    if not rec.layers:
        missing = "; not modelled: " + ", ".join(e["op"] for e in rec.not_modelled) if rec.not_modelled else ""
        raise ConfigError(f"the model has no convolution, linear or matmul operations{missing}")
    # a module called twice (weight sharing) becomes two layers with distinct names
    seen: dict[str, int] = {}
    unique = []
    for layer in rec.layers:
        count = seen.get(layer.name, 0)
        seen[layer.name] = count + 1
        unique.append(layer if count == 0 else Layer(f"{layer.name}#{count}", layer.kind, layer.m, layer.k,
                                                     layer.n, layer.groups, layer.conv))
    return Extraction(unique, rec.weights, rec.not_modelled)


def extract(model: Any, input_shape: tuple[int, ...]) -> tuple[list[Layer], dict[str, np.ndarray]]:
    """:func:`extract_all` without the list of operations not modelled (a warning names them)."""
    ex = extract_all(model, input_shape)
    _warn(ex)
    return ex.layers, ex.weights


def _warn(ex: Extraction) -> None:
    if ex.not_modelled:
        warnings.warn("operations not modelled (no GEMM counted): "
                      + ", ".join(f"{e['name']} ({e['op']})" for e in ex.not_modelled), stacklevel=3)


def _net_name(spec: str) -> str:
    return Path(spec.partition(":")[0]).stem or spec


def load(spec: str, input_shape: tuple[int, ...]) -> tuple[str, list[Layer]]:
    layers, _ = extract(_model(spec), input_shape)
    return _net_name(spec), layers


def load_full(spec: str, input_shape: tuple[int, ...]) -> tuple[str, Extraction]:
    """The network's name and everything :func:`extract_all` found."""
    return _net_name(spec), extract_all(_model(spec), input_shape)
