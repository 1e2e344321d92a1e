"""PyTorch models in ``flow.py accel``: what is counted (checked against PyTorch's own output shapes),
what is listed as not modelled, TorchScript files and ``module:factory`` from the current directory."""

from __future__ import annotations

import json
import sys
import warnings

import pytest

import flow
from accel_models import networks

torch = pytest.importorskip("torch")
nn = torch.nn
from accel_models import torch_extract  # noqa: E402


def _save_script(model, path) -> None:
    """A TorchScript file as a user has it (torch.jit.script warns that it is deprecated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(path))


def _true_conv_macs(model, shape) -> dict[str, int]:
    """MACs of every Conv1d/Conv2d from the shapes PyTorch produced: output elements x taps per output."""
    macs: dict[str, int] = {}

    def hook(name):
        def f(mod, _inputs, out):
            taps = mod.in_channels // mod.groups
            for k in mod.kernel_size:
                taps *= k
            macs[name] = out.numel() * taps
        return f

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, nn.Conv1d | nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(*shape))
    for h in handles:
        h.remove()
    return macs


def test_dilation_counts_the_real_output(tmp_path):
    model = nn.Sequential(nn.Conv2d(32, 32, 3, padding=2, dilation=2), nn.Conv2d(32, 16, 3, stride=2, dilation=(1, 3)))
    (a, b), _ = torch_extract.extract(model, (1, 32, 16, 16))
    assert (a.m, a.k, a.n) == (256, 288, 32)  # 16x16 out, not 18x18 = 324
    assert a.conv is not None and (a.conv.dil_h, a.conv.dil_w) == (2, 2)
    truth = _true_conv_macs(model, (1, 32, 16, 16))
    assert {"0": a.macs, "1": b.macs} == truth


def test_dilated_conv_reaches_the_scalesim_model_as_its_gemm():
    from accel_models import scalesim

    (layer,), _ = torch_extract.extract(nn.Conv2d(32, 32, 3, padding=2, dilation=2), (2, 32, 16, 16))
    row = networks.scalesim_row(layer)
    assert row == (256, 288, 1, 288, 1, 32, 1, 1)  # SCALE-Sim has no dilation: its M, N, K form, one image
    g = scalesim.geometry(row)
    assert g.m * g.k * g.n * networks.scalesim_repeats(layer) == layer.macs == 2 * 256 * 288 * 32


@pytest.mark.parametrize("padding,mode", [("same", "zeros"), (2, "reflect")], ids=["same", "reflect"])
def test_string_padding_and_padding_modes(padding, mode):
    model = nn.Conv2d(3, 4, 3, padding=padding, dilation=2, padding_mode=mode)
    (layer,), _ = torch_extract.extract(model, (1, 3, 16, 16))
    assert (layer.m, layer.k, layer.n) == (256, 27, 4)
    assert layer.macs == _true_conv_macs(model, (1, 3, 16, 16))[""]


def test_conv1d_is_a_conv_of_height_one():
    model = nn.Sequential(nn.Conv1d(4, 8, 5, stride=2, padding=1, dilation=2), nn.ReLU(), nn.Conv1d(8, 8, 3, groups=4))
    ex = torch_extract.extract_all(model, (2, 4, 50))
    out1 = (50 + 2 - 2 * 4 - 1) // 2 + 1
    assert [(x.name, x.kind, x.m, x.k, x.n, x.groups) for x in ex.layers] == [
        ("0", "conv", 2 * out1, 20, 8, 1), ("2", "conv", 2 * (out1 - 2), 6, 2, 4)]
    assert {x.name: x.macs for x in ex.layers} == _true_conv_macs(model, (2, 4, 50))
    assert ex.weights["0"].shape == (8, 4, 1, 5) and not ex.not_modelled


class Functional(nn.Module):
    """Matmuls with no nn.Linear: a parameter on either side, two activations, batched and bmm."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Parameter(torch.randn(16, 24))
        self.back = nn.Parameter(torch.randn(16, 24))
        self.head = nn.Linear(24, 5)

    def forward(self, x):  # x: (4, 10, 16)
        y = x @ self.proj  # (4, 10, 24): mm over 40 rows
        s = torch.matmul(y, y.transpose(1, 2))  # (4, 10, 10): bmm, groups 4
        c = torch.bmm(s, y)  # (4, 10, 24)
        z = torch.matmul(self.back, c[0].t())  # W @ X: (16, 10)
        return self.head(c) + z.sum()


def test_functional_matmuls_are_counted_and_named():
    ex = torch_extract.extract_all(Functional(), (4, 10, 16))
    assert [(x.name, x.kind, x.m, x.k, x.n, x.groups) for x in ex.layers] == [
        ("proj", "fc", 40, 16, 24, 1),
        ("matmul", "matmul", 10, 24, 10, 4),
        ("matmul#1", "matmul", 10, 10, 24, 4),
        ("back", "fc", 10, 24, 16, 1),
        ("head", "fc", 40, 24, 5, 1),
    ]
    assert ex.weights["proj"].shape == (24, 16) and ex.weights["back"].shape == (16, 24)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.qkv = nn.Linear(32, 96)

    def forward(self, x):  # (2, 7, 32)
        y, _ = self.attn(x, x, x)
        q, k, v = self.qkv(y).view(2, 7, 3, 4, 8).permute(2, 0, 3, 1, 4)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def test_attention_module_and_sdpa():
    ex = torch_extract.extract_all(Attention(), (2, 7, 32))
    assert [(x.name, x.m, x.k, x.n, x.groups) for x in ex.layers] == [
        ("attn.in_proj", 14, 32, 96, 1), ("attn.scores", 7, 8, 7, 8), ("attn.context", 7, 7, 8, 8),
        ("attn.out_proj", 14, 32, 32, 1), ("qkv", 14, 32, 96, 1), ("scores", 7, 8, 7, 8), ("context", 7, 7, 8, 8)]


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c3 = nn.Conv3d(2, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.fc = nn.Linear(4 * 16 * 16, 3)

    def forward(self, x):  # (1, 2, 4, 8, 8)
        y = self.c3(x).mean(2)
        return self.fc(self.up(y).flatten(1))


def test_unmodelled_operations_are_listed_not_dropped():
    ex = torch_extract.extract_all(Mixed(), (1, 2, 4, 8, 8))
    assert [x.name for x in ex.layers] == ["fc"]
    assert [(e["name"], e["op"], e["why"]) for e in ex.not_modelled] == [
        ("c3.convolution", "aten.convolution", "3-D convolution"),
        ("up.convolution", "aten.convolution", "transposed 2-D convolution")]
    with pytest.warns(UserWarning, match=r"^operations not modelled \(no GEMM counted\): c3.convolution "):
        torch_extract.extract(Mixed(), (1, 2, 4, 8, 8))


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.gru = nn.GRU(16, 4)

    def forward(self, x):  # (2, 5, 8); the GRU reads it as 2 steps of a batch of 5
        y, _ = self.lstm(x)
        return self.gru(y)[0]


def test_recurrent_layers_are_counted_or_listed():
    ex = torch_extract.extract_all(Recurrent(), (2, 5, 8))
    for module in ("lstm", "gru"):
        counted = [x for x in ex.layers if x.name.startswith(module + ".")]
        listed = [e for e in ex.not_modelled if e["name"].startswith(module + ".")]
        assert counted or listed, module
    gru = [(x.m, x.k, x.n) for x in ex.layers if x.name.startswith("gru.")]
    if gru:  # input GEMM over both steps, then one hidden-state GEMM per step
        assert sum(m * k * n for m, k, n in gru) == 10 * 16 * 12 + 2 * 5 * 4 * 12


def test_torchscript_file_gives_the_same_layers(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=2, dilation=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))
    path = tmp_path / "net.pt"
    _save_script(model, path)
    eager, _ = torch_extract.extract(model, (1, 3, 8, 8))
    name, scripted = networks.load(str(path), input_shape=(1, 3, 8, 8))
    assert name == "net"
    assert [(x.name, x.m, x.k, x.n) for x in scripted] == [(x.name, x.m, x.k, x.n) for x in eager] == [
        ("0", 64, 27, 8), ("3", 1, 512, 10)]


def test_accel_cli_reports_what_is_not_modelled(tmp_path, capsys):
    path = tmp_path / "mixed.pt"
    _save_script(Mixed(), path)
    out = tmp_path / "out"
    code = flow.main(["accel", "--net", str(path), "--input-shape", "1,2,4,8,8", "--array", "8x8",
                      "--run-dir", str(out)])
    assert code == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["layers"] == 1
    assert [e["why"] for e in rep["not_modelled"]] == ["3-D convolution", "transposed 2-D convolution"]
    assert "## Not modelled" in (out / "report.md").read_text(encoding="utf-8")


def test_module_factory_from_the_current_directory(tmp_path, monkeypatch):
    pkg = tmp_path / "axflow_cwd_models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "nets.py").write_text("import torch\n\ndef small():\n    return torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3))\n",
                                 encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        name, layers = networks.load("axflow_cwd_models.nets:small", input_shape=(1, 2, 10))
    finally:
        for mod in ("axflow_cwd_models.nets", "axflow_cwd_models"):
            sys.modules.pop(mod, None)
    assert name == "axflow_cwd_models" and [(x.m, x.k, x.n) for x in layers] == [(8, 6, 3)]
    assert str(tmp_path) not in sys.path
