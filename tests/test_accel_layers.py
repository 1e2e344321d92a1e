"""Layers as GEMMs, the built-in networks and SCALE-Sim topology files."""

from __future__ import annotations

import pytest

from accel_models import networks
from accel_models.layers import ConvGeom, conv, fc, matmul
from core.errors import ConfigError

# MACs and weights of the well-known networks (torchvision / thop figures, batch 1)
KNOWN = {
    "lenet5": (416_520, 61_470),
    "resnet20": (40_551_040, 268_336),
    "resnet18": (1_814_073_344, 11_678_912),
    "resnet50": (4_089_184_256, 25_502_912),
    "vgg11": (7_609_090_048, 132_851_392),
    "vgg16": (15_470_264_320, 138_344_128),
    "mobilenetv2": (300_774_272, 3_469_760),
    "bert-base": (931_135_488, 7_274_496),
}


@pytest.mark.parametrize("name", list(KNOWN), ids=list(KNOWN))
def test_builtin_network_macs_and_weights(name):
    _, layers = networks.load(name)
    assert (sum(layer.macs for layer in layers), sum(layer.weights for layer in layers)) == KNOWN[name]
    assert len({layer.name for layer in layers}) == len(layers)


CONVS = [
    # (in_hw, in_c, out_c, kernel, stride, pad, groups) -> (m, k, n, groups)
    ((32, 3, 16, 3, 1, 1, 1), (1024, 27, 16, 1)),
    ((224, 3, 64, 7, 2, 3, 1), (12544, 147, 64, 1)),
    ((56, 64, 128, 1, 2, 0, 1), (784, 64, 128, 1)),
    ((17, 8, 8, 3, 2, 0, 1), (64, 72, 8, 1)),  # floor((17 - 3) / 2) + 1 = 8
    ((112, 32, 32, 3, 1, 1, 32), (12544, 9, 1, 32)),  # depthwise
    ((14, 64, 128, 3, 1, 1, 4), (196, 144, 32, 4)),  # grouped
]


@pytest.mark.parametrize("args,gemm", CONVS, ids=["same3x3", "stem7x7s2", "proj1x1s2", "valid_s2",
                                                   "depthwise", "grouped"])
def test_conv_as_gemm(args, gemm):
    hw, cin, cout, k, s, p, g = args
    layer = conv("c", hw, cin, cout, k, stride=s, pad=p, groups=g)
    assert (layer.m, layer.k, layer.n, layer.groups) == gemm
    assert layer.macs == layer.conv.out_h * layer.conv.out_w * cout * cin // g * k * k


def test_fc_and_matmul_shapes():
    assert (fc("f", 512, 1000, batch=4).m, fc("f", 512, 1000).k) == (4, 512)
    att = matmul("s", 128, 64, 128, groups=12)
    assert (att.m, att.k, att.n, att.groups, att.filters) == (128, 64, 128, 12, 1536)


@pytest.mark.parametrize("kwargs,message", [
    (dict(in_h=4, in_w=4, in_c=3, out_c=4, kh=3, kw=3, groups=2), r"^GROUPS must divide"),
    (dict(in_h=2, in_w=2, in_c=1, out_c=1, kh=5, kw=5), r"^kernel 5x5 is larger"),
    (dict(in_h=0, in_w=2, in_c=1, out_c=1, kh=1, kw=1), r"^IN_H must be a positive integer, not 0"),
], ids=["groups", "kernel", "size"])
def test_bad_conv_geometry(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ConvGeom(**kwargs)


def test_unknown_network_is_one_line_error():
    with pytest.raises(ConfigError, match=r"^NET must be a built-in network.*\(choices: lenet5, resnet20"):
        networks.load("resnet1000")


def test_read_conv_topology_with_depthwise(tmp_path):
    path = tmp_path / "net.csv"
    path.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides,\nConv1, 224, 224, 3, 3, 3, 32, 2,\nConv2_DP, 112, 112, 3, 3, 32, 1, 1,\n"
                    "Conv3, 18, 18, 3, 3, 6, 20, 2, 1,\n", encoding="utf-8")
    layers = networks.read_topology(path)
    assert [(x.name, x.m, x.k, x.n, x.groups) for x in layers] == [
        ("Conv1", 112 * 112, 27, 32, 1),  # SCALE-Sim's ceil((224 - 3 + 2) / 2) = 112
        ("Conv2_DP", 110 * 110, 9, 1, 32),
        ("Conv3", 9 * 16, 54, 20, 1),  # ceil((18 - 3 + 2) / 2) = 9 rows, stride 1 across: 16 columns
    ]
    assert layers[2].scalesim == (18, 18, 3, 3, 6, 20, 2, 1)


def test_read_gemm_topology(tmp_path):
    path = tmp_path / "mnk.csv"
    path.write_text("Layer, M, N, K,\nfc1, 128, 64, 256,\n", encoding="utf-8")
    (layer,) = networks.read_topology(path)
    assert (layer.m, layer.k, layer.n, layer.scalesim) == (128, 256, 64, (128, 256, 1, 256, 1, 64, 1, 1))


@pytest.mark.parametrize("text,message", [
    ("Layer name, H,\nc1, 8, x, 3, 3, 1, 1, 1,\n", r"net.csv:2: 'x' is not an integer"),
    ("Layer name, H,\nc1, 8, 8, 3,\n", r"a convolution row needs"),
    ("Layer name, H,\n", r"has no layers"),
], ids=["not_int", "short", "empty"])
def test_bad_topology(tmp_path, text, message):
    path = tmp_path / "net.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        networks.read_topology(path)


def test_write_then_read_topology_round_trip(tmp_path):
    _, layers = networks.load("resnet20")
    path = tmp_path / "r20.csv"
    networks.write_topology(layers, path)
    back = networks.read_topology(path)
    assert [(x.k, x.n) for x in back] == [(x.k, x.n) for x in layers]
    # SCALE-Sim's ceil((H - R + S) / S) exceeds PyTorch's size exactly where (H + 2p - R) % S != 0
    for x, y in zip(layers, back):
        g = x.conv
        if g is None:
            assert y.m == x.m
            continue
        remainder = (g.in_h + 2 * g.pad_h - g.kh) % g.stride_h != 0
        assert (y.m == (g.out_h + 1) ** 2) if remainder else (y.m == x.m), x.name


def test_torch_model_extraction(tmp_path):
    torch = pytest.importorskip("torch")
    from accel_models import torch_extract

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 8 * 8, 10))
    layers, weights = torch_extract.extract(model, (2, 3, 16, 16))
    assert [(x.name, x.m, x.k, x.n, x.groups) for x in layers] == [
        ("0", 2 * 256, 27, 8, 1), ("2", 2 * 64, 9, 1, 8), ("4", 2, 512, 10, 1)]
    assert weights["4"].shape == (10, 512)
