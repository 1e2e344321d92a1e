"""INT8-quantised Conv2d / Linear whose products can come from approximate multipliers.

Each :class:`QLayer` has three modes:

``float``  the ordinary fp32 layer (training from scratch, calibration);
``qat``    fake-quantised: weights per output channel (symmetric, scale max|w|/127), activations per
           tensor with a calibrated scale; rounding passes gradients straight through (STE);
``lut``    integer inference: every product is a multiplier table entry (:mod:`dnn.lutops`), one
           multiplier per filter; under autograd the forward value is the LUT result while the gradient
           is the exact fake-quantised layer's (a straight-through estimator of the approximate product).

Batch normalisation that follows a convolution is folded into it in ``qat`` and ``lut`` modes (with
its running statistics, which are frozen there), so the multiplier sees the weights the hardware holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dnn import lutops
from dnn.mults import W_MAX, Multiplier

MODES = ("float", "qat", "lut")


class QLayer(nn.Module):
    """State shared by quantised convolutions and linear layers."""

    out_features: int
    act_max: torch.Tensor
    act_min: torch.Tensor
    calibrated: torch.Tensor
    group: torch.Tensor
    weight_mask: torch.Tensor | None

    def _init_q(self, out: int) -> None:
        self.mode = "float"
        self.backend = "fast"  # or "reference": the int64 loop (tests, checks)
        self.signed = True  # multipliers' signedness: signed INT8 or unsigned activations
        self.register_buffer("act_max", torch.zeros(()))
        self.register_buffer("act_min", torch.zeros(()))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))
        self.observing = False
        self.mults: tuple[Multiplier, ...] = ()
        self.register_buffer("group", torch.zeros(out, dtype=torch.long), persistent=False)
        self.last_input: torch.Tensor | None = None
        self.keep_input = False
        # block sparsity (dnn.sparsity): Gamma, per (output, input channel), applied as Gamma * W
        self.register_buffer("weight_mask", None)
        self.block_mask: np.ndarray | None = None
        self.mask_block = 0

    def set_weight_mask(self, kept: torch.Tensor | None, block_mask: np.ndarray | None, block: int = 0) -> None:
        """Fix ``kept`` (out, in) bool as the weight mask (None: dense); the stored weights of dropped
        (filter, input channel) pairs are zeroed."""
        self.weight_mask = None if kept is None else kept.bool()
        self.block_mask = block_mask
        self.mask_block = block if kept is not None else 0
        if kept is not None:
            with torch.no_grad():
                w = self.raw_weight()
                w.mul_(self._gamma(w))

    def raw_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def _gamma(self, w: torch.Tensor) -> torch.Tensor:
        assert self.weight_mask is not None
        return self.weight_mask.reshape(*self.weight_mask.shape, *([1] * (w.dim() - 2))).to(w.dtype)

    def masked(self, w: torch.Tensor) -> torch.Tensor:
        """``Gamma * W``: the weights with the zeroed blocks' entries held at zero."""
        return w if self.weight_mask is None else w * self._gamma(w)

    def kept(self) -> np.ndarray | None:
        """(out, in) bool: which (filter, input channel) products are computed; None when dense."""
        return None if self.weight_mask is None else self.weight_mask.numpy()

    # -------------------------------------------------------------- quantisation parameters
    @property
    def non_negative(self) -> bool:
        return bool(self.act_min >= 0)

    def act_range(self) -> tuple[int, int]:
        if not self.signed:
            return 0, 255
        return (0 if self.non_negative else -128), 127

    def act_scale(self) -> torch.Tensor:
        _, hi = self.act_range()
        return torch.clamp(self.act_max, min=1e-8) / hi

    def observe(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            lo, hi = x.min(), x.abs().max()
            if not bool(self.calibrated):
                self.act_max.copy_(hi)
                self.act_min.copy_(lo)
                self.calibrated.fill_(True)
            else:
                self.act_max.copy_(torch.maximum(self.act_max, hi))
                self.act_min.copy_(torch.minimum(self.act_min, lo))

    def act_codes(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.act_range()
        return torch.clamp(torch.round(x / self.act_scale()), lo, hi)

    def fake_act(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.act_range()
        s = self.act_scale()
        xc = torch.clamp(x, lo * s, hi * s)
        return xc + (torch.round(xc / s) * s - xc).detach()

    @staticmethod
    def weight_scale(w: torch.Tensor) -> torch.Tensor:
        return torch.clamp(w.detach().abs().reshape(w.shape[0], -1).max(dim=1).values, min=1e-12) / W_MAX

    @staticmethod
    def weight_codes(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (w.dim() - 1)
        return torch.clamp(torch.round(w.detach() / scale.reshape(shape)), -W_MAX, W_MAX)

    @staticmethod
    def fake_weight(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (w.dim() - 1)
        s = scale.reshape(shape)
        return w + (torch.clamp(torch.round(w / s), -W_MAX, W_MAX) * s - w).detach()

    # -------------------------------------------------------------- multipliers
    def assign(self, mults: Multiplier | list[Multiplier] | tuple[Multiplier, ...]) -> None:
        """One multiplier for the whole layer, or one per output channel (filter)."""
        if isinstance(mults, Multiplier):
            self.mults = (mults,)
            self.group = torch.zeros(self.out_features, dtype=torch.long)
            return
        per_filter = list(mults)
        if len(per_filter) != self.out_features:
            raise ValueError(f"{len(per_filter)} multipliers for {self.out_features} filters")
        distinct: dict[str, int] = {}
        uniq: list[Multiplier] = []
        group = []
        for m in per_filter:
            if m.digest not in distinct:
                distinct[m.digest] = len(uniq)
                uniq.append(m)
            group.append(distinct[m.digest])
        self.mults = tuple(uniq)
        self.group = torch.tensor(group, dtype=torch.long)

    def per_filter(self) -> list[Multiplier]:
        return [self.mults[int(g)] for g in self.group]

    # -------------------------------------------------------------- forward
    def params(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def exact_op(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def lut_acc(self, prep: lutops.Prepared, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def lut_forward(self, prep: lutops.Prepared, x: torch.Tensor, mul: torch.Tensor,
                    bias: torch.Tensor | None) -> torch.Tensor | None:
        """The layer's LUT output in one fused pass where its path has one (else None): what
        :meth:`forward` computes from :meth:`lut_acc`, bit for bit."""
        return None

    def prepared(self, w: torch.Tensor, scale: torch.Tensor) -> lutops.Prepared:
        """The weights prepared for LUT products, recomputed only when weights or multipliers change."""
        lo, hi = self.act_range()
        key = (tuple((p.data_ptr(), p._version) for p in self.parameters()),
               tuple((b.data_ptr(), b._version) for b in self.buffers()),
               tuple(m.digest for m in self.mults), tuple(self.group.tolist()), lo, hi)
        cached = getattr(self, "_prep", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        prep = lutops.prepare(self.weight_codes(w, scale), self.mults, self.group, lo, hi, kept=self.kept())
        self._prep = (key, prep)
        return prep

    def reference(self, prep: lutops.Prepared, codes: torch.Tensor, wcodes: torch.Tensor,
                  **conv: int) -> torch.Tensor:
        lo, hi = self.act_range()
        acc = lutops.reference_acc(codes.long().numpy(), wcodes.long().numpy(), self.mults,
                                   self.group.numpy(), a_lo=lo, a_hi=hi, kept=self.kept(), **conv)
        return torch.from_numpy(acc).to(torch.float32 if prep.acc_bound < lutops.F32_EXACT else torch.float64)

    def float_forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keep_input:
            self.last_input = x
        if self.observing:
            self.observe(x)
        if self.mode == "float":
            return self.float_forward(x)
        w, b = self.params()
        scale = self.weight_scale(w)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.mode == "qat" or not self.mults:
            y = self.exact_op(self.fake_act(x), self.fake_weight(w, scale))
            return y if b is None else y + b.reshape(shape)
        prep = self.prepared(w, scale)
        straight_through = torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)
        if not straight_through and self.backend != "reference":
            wide = prep.acc_bound >= lutops.F32_EXACT
            dt = torch.float64 if wide else torch.float32
            fused = self.lut_forward(prep, x.detach(), self.act_scale().to(dt) * scale.to(dt), b)
            if fused is not None:
                return fused
        codes = self.act_codes(x.detach())
        acc = self.lut_acc(prep, codes)
        y_lut = (acc * (self.act_scale().to(acc.dtype) * scale.to(acc.dtype)).reshape(shape)).float()
        if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
            y_exact = self.exact_op(self.fake_act(x), self.fake_weight(w, scale))
            y = y_exact + (y_lut - y_exact).detach()
        else:
            y = y_lut
        return y if b is None else y + b.reshape(shape)


class QConv2d(QLayer):
    """A convolution (optionally with the batch norm that follows it) in float, QAT or LUT mode."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, bn: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=bias and not bn)
        self.bn = nn.BatchNorm2d(cout) if bn else None
        self.out_features = cout
        self._init_q(cout)

    def raw_weight(self) -> torch.Tensor:
        return self.conv.weight

    def float_forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        y = F.conv2d(x, self.masked(c.weight), c.bias, c.stride, c.padding, c.dilation, c.groups)
        return self.bn(y) if self.bn is not None else y

    def params(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        w, b = self.masked(self.conv.weight), self.conv.bias
        if self.bn is None:
            return w, b
        bn = self.bn
        assert bn.running_var is not None and bn.running_mean is not None
        k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        b0 = b if b is not None else torch.zeros_like(bn.running_mean)
        return w * k.reshape(-1, 1, 1, 1), bn.bias + (b0 - bn.running_mean) * k

    def exact_op(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, stride=self.conv.stride, padding=self.conv.padding)

    def lut_acc(self, prep: lutops.Prepared, codes: torch.Tensor) -> torch.Tensor:
        stride, padding = self.conv.stride[0], self.conv.padding
        pad = int(padding[0]) if isinstance(padding, tuple) else 0
        if self.backend == "reference":
            w, _ = self.params()
            return self.reference(prep, codes, self.weight_codes(w, self.weight_scale(w)), stride=stride,
                                  padding=pad)
        return lutops.conv2d_apply(prep, codes, stride=stride, padding=pad)

    def lut_forward(self, prep: lutops.Prepared, x: torch.Tensor, mul: torch.Tensor,
                    bias: torch.Tensor | None) -> torch.Tensor | None:
        padding = self.conv.padding
        pad = int(padding[0]) if isinstance(padding, tuple) else 0
        return lutops.conv2d_forward(prep, x, self.act_scale(), mul, bias, stride=self.conv.stride[0], padding=pad)

    def macs(self, out_hw: tuple[int, int]) -> int:
        c = self.conv
        return c.in_channels * c.out_channels * c.kernel_size[0] * c.kernel_size[1] * out_hw[0] * out_hw[1]


class QLinear(QLayer):
    """A fully connected layer in float, QAT or LUT mode."""

    def __init__(self, fin: int, fout: int, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(fin, fout, bias=bias)
        self.out_features = fout
        self._init_q(fout)

    def raw_weight(self) -> torch.Tensor:
        return self.fc.weight

    def float_forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.masked(self.fc.weight), self.fc.bias)

    def params(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.masked(self.fc.weight), self.fc.bias

    def exact_op(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.linear(x, w)

    def lut_acc(self, prep: lutops.Prepared, codes: torch.Tensor) -> torch.Tensor:
        if self.backend == "reference":
            w, _ = self.params()
            return self.reference(prep, codes, self.weight_codes(w, self.weight_scale(w)))
        return lutops.linear_apply(prep, codes)


# ------------------------------------------------------------------ whole-network helpers
def qlayers(model: nn.Module) -> Iterator[tuple[str, QLayer]]:
    """The quantised layers of a model in forward order, with their dotted names."""
    for name, mod in model.named_modules():
        if isinstance(mod, QLayer):
            yield name, mod


def set_mode(model: nn.Module, mode: str, *, backend: str = "fast") -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    for _, layer in qlayers(model):
        layer.mode = mode
        layer.backend = backend
    # batch-norm statistics are frozen once quantised: the folded weights must not drift
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d) and mode != "float":
            mod.eval()


def set_signed(model: nn.Module, signed: bool) -> None:
    for _, layer in qlayers(model):
        layer.signed = signed


def assign(model: nn.Module, assignment: dict[str, Any]) -> None:
    """Give each layer its multiplier (a :class:`Multiplier`) or per-filter multipliers (a list)."""
    layers = dict(qlayers(model))
    for name, value in assignment.items():
        layers[name].assign(value)


def calibrate(model: nn.Module, batches: Iterator[torch.Tensor] | list[torch.Tensor]) -> None:
    """Record each layer's activation range (max |x|, min x) over the given inputs, in float mode."""
    prev = {name: layer.mode for name, layer in qlayers(model)}
    for _, layer in qlayers(model):
        layer.calibrated.fill_(False)
        layer.observing = True
        layer.mode = "float"
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for x in batches:
            model(x)
    for name, layer in qlayers(model):
        layer.observing = False
        layer.mode = prev[name]
    model.train(was_training)


def uniform(model: nn.Module, mult: Multiplier) -> dict[str, Multiplier]:
    return {name: mult for name, _ in qlayers(model)}


def to_numpy_codes(t: torch.Tensor) -> np.ndarray:
    return t.detach().long().numpy()
