"""DNN layers as GEMMs: the shapes every accelerator model in this package works on.

A layer computes ``groups`` independent GEMMs ``C[m, n] = sum_k A[m, k] * B[k, n]``:

- **convolution** (im2col): ``m`` = output pixels x batch, ``k`` = kernel height x width x input
  channels per group, ``n`` = output channels per group; ``groups`` is the convolution's groups
  (depthwise: groups = channels, k = kh*kw, n = 1);
- **fully connected**: ``m`` = batch (or tokens), ``k`` = input features, ``n`` = output features;
- **matmul** (attention): ``m x k`` times ``k x n``, ``groups`` = batch x heads.

``A`` is the activation operand (SCALE-Sim's *ifmap*), ``B`` the weight operand (*filter*) and
``C`` the output (*ofmap*). Convolutions keep their geometry (:class:`ConvGeom`) because SCALE-Sim's
memory traffic depends on the im2col address pattern, not only on the GEMM shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError, must

KINDS = ("conv", "fc", "matmul")


def _positive(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise must(what, "a positive integer", value)
    return value


@dataclass(frozen=True)
class ConvGeom:
    """Geometry of a 2-D convolution (NCHW, batch folded into ``m``); a 1-D one has ``in_h = kh = 1``.

    ``dil_h``/``dil_w`` are PyTorch's dilation: the kernel spans ``dil * (k - 1) + 1`` input pixels but
    still has ``kh * kw`` taps, so only the output size (``m``) changes, not ``k``.
    """

    in_h: int
    in_w: int
    in_c: int
    out_c: int
    kh: int
    kw: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    groups: int = 1
    batch: int = 1
    dil_h: int = 1
    dil_w: int = 1

    def __post_init__(self) -> None:
        for name in ("in_h", "in_w", "in_c", "out_c", "kh", "kw", "stride_h", "stride_w", "groups",
                     "batch", "dil_h", "dil_w"):
            _positive(name.upper(), getattr(self, name))
        for name in ("pad_h", "pad_w"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise must(name.upper(), "a non-negative integer", value)
        if self.in_c % self.groups or self.out_c % self.groups:
            raise ConfigError(f"GROUPS must divide the input and output channels, not {self.groups!r} "
                              f"(channels {self.in_c} -> {self.out_c})")
        if self.span_h > self.in_h + 2 * self.pad_h or self.span_w > self.in_w + 2 * self.pad_w:
            raise ConfigError(f"kernel {self.span_h}x{self.span_w} is larger than the padded input "
                              f"{self.in_h + 2 * self.pad_h}x{self.in_w + 2 * self.pad_w}")

    @property
    def span_h(self) -> int:
        """Input rows one output pixel reads (the dilated kernel height)."""
        return self.dil_h * (self.kh - 1) + 1

    @property
    def span_w(self) -> int:
        return self.dil_w * (self.kw - 1) + 1

    @property
    def out_h(self) -> int:
        return (self.in_h + 2 * self.pad_h - self.span_h) // self.stride_h + 1

    @property
    def out_w(self) -> int:
        return (self.in_w + 2 * self.pad_w - self.span_w) // self.stride_w + 1

    def scalesim_row(self) -> tuple[int, int, int, int, int, int, int, int]:
        """The SCALE-Sim topology row of one group: padded ifmap H, W, filter H, W, channels, filters,
        strides (SCALE-Sim has no padding field; users write the padded input size).

        SCALE-Sim has no dilation either: a dilated convolution is given as its GEMM (SCALE-Sim's own
        M, N, K form: an ``out pixels x K`` ifmap with ``1 x K`` filters), same M, K and N, so the
        scalesim model sees the right shape but not the dilated im2col address pattern."""
        if self.dil_h > 1 or self.dil_w > 1:
            m, k = self.out_h * self.out_w, self.kh * self.kw * (self.in_c // self.groups)  # one image
            return (m, k, 1, k, 1, self.out_c // self.groups, 1, 1)
        return (self.in_h + 2 * self.pad_h, self.in_w + 2 * self.pad_w, self.kh, self.kw,
                self.in_c // self.groups, self.out_c // self.groups, self.stride_h, self.stride_w)


@dataclass(frozen=True)
class Layer:
    """One layer as ``groups`` GEMMs of ``m x k`` by ``k x n``."""

    name: str
    kind: str
    m: int
    k: int
    n: int
    groups: int = 1
    conv: ConvGeom | None = None
    # a SCALE-Sim topology row given as such (conv format), kept verbatim for the scalesim model
    scalesim: tuple[int, int, int, int, int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a layer needs a name")
        if self.kind not in KINDS:
            raise must("layer kind", "one of the listed choices", self.kind, KINDS)
        for name in ("m", "k", "n", "groups"):
            _positive(f"{name.upper()} of layer {self.name}", getattr(self, name))

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the whole layer."""
        return self.groups * self.m * self.k * self.n

    @property
    def filters(self) -> int:
        """Output channels (weight columns) over all groups: the unit of a per-filter assignment."""
        return self.groups * self.n

    @property
    def weights(self) -> int:
        return self.groups * self.k * self.n

    def describe(self) -> str:
        g = f" x{self.groups}" if self.groups > 1 else ""
        return f"{self.kind} {self.m}x{self.k}x{self.n}{g}"


def conv(name: str, in_hw: int | tuple[int, int], in_c: int, out_c: int, kernel: int | tuple[int, int],
         stride: int = 1, pad: int | None = None, groups: int = 1, batch: int = 1) -> Layer:
    """A convolution layer; ``pad`` defaults to ``kernel // 2`` ("same" for odd kernels)."""
    h, w = (in_hw, in_hw) if isinstance(in_hw, int) else in_hw
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    ph, pw = (kh // 2, kw // 2) if pad is None else (pad, pad)
    geom = ConvGeom(h, w, in_c, out_c, kh, kw, stride, stride, ph, pw, groups, batch)
    return conv_from_geom(name, geom)


def conv_from_geom(name: str, geom: ConvGeom) -> Layer:
    m = geom.batch * geom.out_h * geom.out_w
    if geom.out_h < 1 or geom.out_w < 1:
        raise ConfigError(f"layer {name}: the convolution has no output pixels")
    return Layer(name, "conv", m, geom.kh * geom.kw * (geom.in_c // geom.groups), geom.out_c // geom.groups,
                 geom.groups, geom)


def fc(name: str, in_features: int, out_features: int, batch: int = 1) -> Layer:
    return Layer(name, "fc", batch, in_features, out_features)


def matmul(name: str, m: int, k: int, n: int, groups: int = 1) -> Layer:
    return Layer(name, "matmul", m, k, n, groups)


def scalesim_out(size: int, filt: int, stride: int) -> int:
    """SCALE-Sim's output size, ``ceil((size - filt + stride) / stride)`` (PyTorch: floor, one less when
    ``(size - filt) % stride != 0``)."""
    return -(-(size - filt + stride) // stride)


def scalesim_conv(name: str, ifmap_h: int, ifmap_w: int, filt_h: int, filt_w: int, channels: int,
                  filters: int, stride_h: int, stride_w: int, groups: int = 1) -> Layer:
    """A layer given as a SCALE-Sim convolution row (padding already in the ifmap size).

    The GEMM follows SCALE-Sim's own output size, ``ceil((H - R + S) / S)``, so that the scalesim
    cycle model sees exactly what SCALE-Sim sees.
    """
    row = (ifmap_h, ifmap_w, filt_h, filt_w, channels, filters, stride_h, stride_w)
    for what, v in zip(("IFMAP height", "IFMAP width", "filter height", "filter width", "channels",
                        "filters", "stride height", "stride width"), row):
        _positive(f"{what} of layer {name}", v)
    if filt_h > ifmap_h or filt_w > ifmap_w:
        raise ConfigError(f"layer {name}: filter {filt_h}x{filt_w} is larger than the ifmap {ifmap_h}x{ifmap_w}")
    oh, ow = scalesim_out(ifmap_h, filt_h, stride_h), scalesim_out(ifmap_w, filt_w, stride_w)
    return Layer(name, "conv", oh * ow, filt_h * filt_w * channels, filters, groups, None, row)
