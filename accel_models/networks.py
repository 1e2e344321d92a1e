"""Built-in networks as layer-shape tables, SCALE-Sim topology files, and the ``--net`` resolver.

Layer names follow the PyTorch module names of the usual implementations (torchvision for ResNet-18/50,
VGG and MobileNet-v2; Hugging Face BERT for the encoder layer), so an assignment written against a
PyTorch model names the same layers. Only layers that multiply are listed: convolutions, fully
connected layers and the attention matmuls; pooling, normalisation and activations are not GEMMs.

Input sizes: 28x28x1 for LeNet-5 (MNIST; conv1 padded by 2 as in the 32x32 original), 32x32x3 for
ResNet-20 (CIFAR-10, option-A identity shortcuts, so no projection convolutions), 224x224x3 for the
ImageNet networks; the BERT-base encoder layer takes ``seq_len`` tokens (default 128).
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from accel_models.layers import Layer, conv, fc, matmul, scalesim_conv
from core.errors import ConfigError, must


def lenet5(batch: int = 1) -> list[Layer]:
    return [
        conv("conv1", 28, 1, 6, 5, pad=2, batch=batch),
        conv("conv2", 14, 6, 16, 5, pad=0, batch=batch),
        fc("fc1", 16 * 5 * 5, 120, batch),
        fc("fc2", 120, 84, batch),
        fc("fc3", 84, 10, batch),
    ]


def resnet20(batch: int = 1) -> list[Layer]:
    layers = [conv("conv1", 32, 3, 16, 3, batch=batch)]
    size, ch = 32, 16
    for stage, width in enumerate((16, 32, 64), start=1):
        for block in range(3):
            stride = 2 if stage > 1 and block == 0 else 1
            prefix = f"layer{stage}.{block}"
            layers.append(conv(f"{prefix}.conv1", size, ch, width, 3, stride=stride, batch=batch))
            size //= stride
            layers.append(conv(f"{prefix}.conv2", size, width, width, 3, batch=batch))
            ch = width
    layers.append(fc("fc", 64, 10, batch))
    return layers


def _resnet_stem(batch: int) -> list[Layer]:
    return [conv("conv1", 224, 3, 64, 7, stride=2, pad=3, batch=batch)]


def resnet18(batch: int = 1) -> list[Layer]:
    layers = _resnet_stem(batch)
    size, ch = 56, 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            prefix = f"layer{stage}.{block}"
            layers.append(conv(f"{prefix}.conv1", size, ch, width, 3, stride=stride, batch=batch))
            out = size // stride
            layers.append(conv(f"{prefix}.conv2", out, width, width, 3, batch=batch))
            if stride != 1 or ch != width:
                layers.append(conv(f"{prefix}.downsample.0", size, ch, width, 1, stride=stride, pad=0,
                                   batch=batch))
            size, ch = out, width
    layers.append(fc("fc", 512, 1000, batch))
    return layers


def resnet50(batch: int = 1) -> list[Layer]:
    layers = _resnet_stem(batch)
    size, ch = 56, 64
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            prefix = f"layer{stage}.{block}"
            out_ch = width * 4
            layers.append(conv(f"{prefix}.conv1", size, ch, width, 1, pad=0, batch=batch))
            layers.append(conv(f"{prefix}.conv2", size, width, width, 3, stride=stride, batch=batch))
            out = size // stride
            layers.append(conv(f"{prefix}.conv3", out, width, out_ch, 1, pad=0, batch=batch))
            if block == 0:
                layers.append(conv(f"{prefix}.downsample.0", size, ch, out_ch, 1, stride=stride, pad=0,
                                   batch=batch))
            size, ch = out, out_ch
    layers.append(fc("fc", 2048, 1000, batch))
    return layers


def _vgg(cfg: list[int | str], batch: int) -> list[Layer]:
    layers: list[Layer] = []
    size, ch, index = 224, 3, 0
    for item in cfg:
        if item == "M":
            size //= 2
            index += 1
            continue
        assert isinstance(item, int)
        layers.append(conv(f"features.{index}", size, ch, item, 3, batch=batch))
        ch = item
        index += 2  # conv, relu
    layers += [fc("classifier.0", 512 * 7 * 7, 4096, batch), fc("classifier.3", 4096, 4096, batch),
               fc("classifier.6", 4096, 1000, batch)]
    return layers


def vgg11(batch: int = 1) -> list[Layer]:
    return _vgg([64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"], batch)


def vgg16(batch: int = 1) -> list[Layer]:
    return _vgg([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
                batch)


def mobilenetv2(batch: int = 1) -> list[Layer]:
    layers = [conv("features.0.0", 224, 3, 32, 3, stride=2, batch=batch)]
    size, ch, index = 112, 32, 1
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = ch * t
            prefix = f"features.{index}.conv"
            j = 0
            if t != 1:
                layers.append(conv(f"{prefix}.{j}.0", size, ch, hidden, 1, pad=0, batch=batch))
                j += 1
            layers.append(conv(f"{prefix}.{j}.0", size, hidden, hidden, 3, stride=stride, groups=hidden,
                               batch=batch))
            size //= stride
            layers.append(conv(f"{prefix}.{j + 1}", size, hidden, c, 1, pad=0, batch=batch))
            ch = c
            index += 1
    layers.append(conv(f"features.{index}.0", size, ch, 1280, 1, pad=0, batch=batch))
    layers.append(fc("classifier.1", 1280, 1000, batch))
    return layers


def bert_base_layer(batch: int = 1, seq_len: int = 128) -> list[Layer]:
    """One BERT-base encoder layer: hidden 768, 12 heads of 64, feed-forward 3072."""
    tokens, hidden, heads, ffn = batch * seq_len, 768, 12, 3072
    d = hidden // heads
    return [
        fc("attention.self.query", hidden, hidden, tokens),
        fc("attention.self.key", hidden, hidden, tokens),
        fc("attention.self.value", hidden, hidden, tokens),
        matmul("attention.self.scores", seq_len, d, seq_len, batch * heads),
        matmul("attention.self.context", seq_len, seq_len, d, batch * heads),
        fc("attention.output.dense", hidden, hidden, tokens),
        fc("intermediate.dense", hidden, ffn, tokens),
        fc("output.dense", ffn, hidden, tokens),
    ]


BUILTIN: dict[str, Callable[..., list[Layer]]] = {
    "lenet5": lenet5,
    "resnet20": resnet20,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "mobilenetv2": mobilenetv2,
    "bert-base": bert_base_layer,
}


def names() -> list[str]:
    return list(BUILTIN)


def load(spec: str, *, batch: int = 1, seq_len: int = 128, input_shape: tuple[int, ...] | None = None,
         topology_format: str = "auto") -> tuple[str, list[Layer]]:
    """Resolve ``--net``: a built-in name, a SCALE-Sim topology CSV, or a PyTorch model.

    A PyTorch model is a ``.pt``/``.pth`` file holding a whole module (or TorchScript), or
    ``package.module:factory`` naming a callable that returns one; ``input_shape`` is then required.
    Returns the network's name and its layers.
    """
    if spec in BUILTIN:
        if spec == "bert-base":
            return spec, bert_base_layer(batch, seq_len)
        return spec, BUILTIN[spec](batch)
    path = Path(spec)
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise ConfigError(f"topology file {spec} does not exist")
        return path.stem, read_topology(path, topology_format)
    if is_torch_spec(spec):
        from accel_models import torch_extract

        if input_shape is None:
            raise ConfigError("a PyTorch model needs --input-shape (e.g. 1,3,224,224)")
        return torch_extract.load(spec, input_shape)
    raise must("NET", "a built-in network, a SCALE-Sim topology .csv, a .pt model or module:factory", spec,
               names())


def is_torch_spec(spec: str) -> bool:
    """Whether ``--net`` names a PyTorch model (a .pt/.pth file or module:factory)."""
    path = Path(spec)
    return path.suffix.lower() in (".pt", ".pth") or (":" in spec and not path.exists())


# --- SCALE-Sim topology files ------------------------------------------------------------------

def read_topology(path: Path, fmt: str = "auto") -> list[Layer]:
    """Read a SCALE-Sim topology CSV the way SCALE-Sim v2 reads it (``scalesim/topology_utils.py``).

    SCALE-Sim skips the first line (the header) and blank lines, splits each line at commas and drops
    its last cell: rows end with a comma, and a trailing comment cell is ignored the same way.
    Convolution rows are then ``name, ifmap H, ifmap W, filter H, filter W, channels, filters, stride
    [, stride W]``, every cell an integer (numbers after the eighth are unused); the padding is already
    in the ifmap size. A name containing ``DP`` is a depthwise layer, which SCALE-Sim runs as one
    single-channel layer per channel (here: ``groups`` = channels). GEMM rows (``fmt='gemm'``, or
    ``'auto'`` with a header whose second column is ``M``) are ``name, M, N, K``; later cells are unused.

    Where this differs from SCALE-Sim it warns: a convolution row missing its last cell (SCALE-Sim
    cannot read it) is read with its last number; a name that appears twice (DeepBench files) is made
    unique as ``name#1``, because an assignment and ``layers.csv`` address layers by name.
    """
    if fmt not in ("auto", "conv", "gemm"):
        raise must("TOPOLOGY_FORMAT", "one of the listed choices", fmt, ("auto", "conv", "gemm"))
    from core.tables import read_text

    lines = read_text(path, "topology file").splitlines()
    if not lines:
        raise ConfigError(f"topology file {path} is empty")
    header = [h.strip().lower() for h in lines[0].split(",")]
    if fmt == "auto":
        fmt = "gemm" if len(header) > 1 and header[1] == "m" else "conv"
    layers: list[Layer] = []
    notes: list[str] = []
    for lineno, line in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in line.strip().split(",")]
        if not any(cells):  # a blank line, or a spreadsheet's row of empty cells
            continue
        name = cells[0]
        if not name:
            raise ConfigError(f"{path}:{lineno}: a layer needs a name in the first cell")
        if fmt == "gemm":
            if len(cells) < 4:
                raise ConfigError(f"{path}:{lineno}: a GEMM row needs name, M, N, K (layer {name})")
            m, n, k = (_cell(path, lineno, name, c) for c in cells[1:4])
            layers.append(_gemm_row(name, m, k, n))
            continue
        used = cells[1:-1]  # SCALE-Sim: row.split(',')[:-1]
        last_is_number = cells[-1].lstrip("+-").isdigit()
        if last_is_number and len(used) < 7:
            used = cells[1:]
            notes.append(f"line {lineno} ({name}) has no last cell, which SCALE-Sim needs (end the row with a "
                         "comma); its last number is read")
        elif last_is_number and len(used) == 7:
            notes.append(f"line {lineno} ({name}): SCALE-Sim ignores the last cell, so the stride width "
                         f"{cells[-1]} is not read (end the row with a comma)")
        values = [_cell(path, lineno, name, c) for c in used]
        if len(values) < 7:
            raise ConfigError(f"{path}:{lineno}: a convolution row needs name, ifmap H, W, filter H, W, "
                              f"channels, filters, stride (layer {name})")
        h, w, fh, fw, ch, nf, sh = values[:7]
        sw = values[7] if len(values) > 7 else sh
        if "DP" in name:
            layers.append(scalesim_conv(name, h, w, fh, fw, 1, nf, sh, sw, groups=ch))
        else:
            layers.append(scalesim_conv(name, h, w, fh, fw, ch, nf, sh, sw))
    if not layers:
        raise ConfigError(f"topology file {path} has no layers")
    layers = _unique(layers, notes)
    if notes:
        warnings.warn(f"topology file {path}: " + "; ".join(notes), stacklevel=2)
    return layers


def _cell(path: Path, lineno: int, name: str, cell: str) -> int:
    try:
        return int(cell)
    except ValueError:
        raise ConfigError(f"{path}:{lineno}: {cell!r} is not an integer (layer {name})") from None


def _unique(layers: list[Layer], notes: list[str]) -> list[Layer]:
    """Layers with distinct names: a repeated ``name`` becomes ``name#1``, ``name#2``, ..."""
    taken = {layer.name for layer in layers}
    seen: set[str] = set()
    out = []
    for layer in layers:
        if layer.name in seen:
            i = 1
            while f"{layer.name}#{i}" in taken:
                i += 1
            new = f"{layer.name}#{i}"
            taken.add(new)
            notes.append(f"layer name {layer.name!r} appears again, read as {new!r}")
            layer = replace(layer, name=new)
        seen.add(layer.name)
        out.append(layer)
    return out


def _gemm_row(name: str, m: int, k: int, n: int) -> Layer:
    # SCALE-Sim's GEMM mode: ifmap M x K (filter 1 x K), 1 channel, N filters, stride 1
    return Layer(name, "matmul", m, k, n, 1, None, (m, k, 1, k, 1, n, 1, 1))


def write_topology(layers: list[Layer], path: Path) -> None:
    """Write layers as a SCALE-Sim convolution topology (GEMMs as 1 x K filters over an M x K ifmap).

    Grouped layers are written once per group (SCALE-Sim has no groups); a convolution's batch is
    SCALE-Sim's batch of 1 (run it once per image).
    """
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
                      "Channels", "Num Filter", "Strides", ""])
        for layer in layers:
            row = scalesim_row(layer)
            for g in range(layer.groups):
                name = layer.name if layer.groups == 1 else f"{layer.name}_g{g}"
                out.writerow([name, *row[:7], ""])


def scalesim_row(layer: Layer) -> tuple[int, int, int, int, int, int, int, int]:
    """The SCALE-Sim topology row of one group and one image of ``layer``."""
    if layer.scalesim is not None:
        return layer.scalesim
    if layer.conv is not None:
        return layer.conv.scalesim_row()
    return (layer.m, layer.k, 1, layer.k, 1, layer.n, 1, 1)


def scalesim_repeats(layer: Layer) -> int:
    """How many SCALE-Sim layer runs make up ``layer``: one per group and (convolutions) per image."""
    return layer.groups * (layer.conv.batch if layer.conv is not None else 1)
