"""SCALE-Sim topology files are read as SCALE-Sim v2 reads them: the reference below re-implements
``scalesim/topology_utils.py`` (``load_arrays_conv``/``load_arrays_gemm``, ``append_topo_arrays`` and
``topo_calc_hyperparams``) and each file's GEMMs must match it layer by layer."""

from __future__ import annotations

import math
import warnings

import pytest

from accel_models import networks


def scalesim_layers(text: str, gemm: bool = False) -> list[tuple[str, int, int, int]]:
    """(name, M, K, N) per layer as SCALE-Sim computes them (a depthwise layer: one per channel)."""
    arrays = []
    for i, row in enumerate(text.splitlines()):
        row = row.strip()
        if i == 0 or row == "":
            continue
        elems = row.split(",")[:-1]
        name = elems[0].strip()
        if gemm:
            m, n, k = (e.strip() for e in elems[1:4])
            arrays.append((name, [name, m, k, 1, k, 1, n, 1, 1]))
        elif "DP" in name:
            arrays += [(name + f"Channel_{c}", [*elems[:5], "1", *elems[6:]]) for c in range(int(elems[5]))]
        else:
            arrays.append((name, elems))
    out = []
    for name, el in arrays:  # append_topo_arrays: the stride height doubles as width when one is given
        a: list = [name]
        for j in range(1, len(el)):
            a.append(int(str(el[j]).strip()))
            if j == 7 and len(el) < 9:
                a.append(a[-1])
        oh, ow = math.ceil((a[1] - a[3] + a[7]) / a[7]), math.ceil((a[2] - a[4] + a[8]) / a[8])
        out.append((a[0], oh * ow, a[3] * a[4] * a[5], a[6]))
    return out


def _ours(layers) -> list[tuple[str, int, int, int]]:
    out = []
    for x in layers:
        if x.groups > 1:
            out += [(f"{x.name}Channel_{c}", x.m, x.k, x.n) for c in range(x.groups)]
        else:
            out.append((x.name, x.m, x.k, x.n))
    return out


# SCALE-Sim v2's topologies/mlperf/DeepSpeech2.csv, spaces and trailing blank cells included
DEEPSPEECH2 = """Layer, IFMAP Width, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1,700,161,41,11,1,32,2,
Conv2,341,79,21,11,32,32,2,
BatchRNN1,672,2560,1,2560,1,4,1, 
BatchRNN2,2560,2560,1,2560,1,4,1, 
FC,1,2560,1,2560,1,29,1,"""  # noqa: W291

COMMENTED = """Layer name, IFMAP H, IFMAP W, Filter H, Filter W, Channels, Num Filter, Stride H, Stride W, comment
conv1, 34, 34, 3, 3, 3, 16, 1, 1, stem conv
conv2_DP, 18, 18, 3, 3, 16, 1, 2, 2, depthwise
conv3, 9, 9, 1, 1, 16, 32, 1, 1, pointwise
"""

DEEPBENCH = """Layer, IFMAP H, IFMAP W, Filter H, Filter W, Channels, Num Filter, Strides,
conv, 112, 112, 3, 3, 64, 64, 1,
conv, 56, 56, 3, 3, 128, 128, 1,
conv, 28, 28, 3, 3, 256, 256, 1,
conv#1, 7, 7, 1, 1, 8, 8, 1,
"""


@pytest.mark.parametrize("text", [DEEPSPEECH2, COMMENTED], ids=["deepspeech2", "comment_cell"])
def test_as_scalesim_reads_it(tmp_path, text):
    path = tmp_path / "net.csv"
    path.write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers = networks.read_topology(path)
    assert _ours(layers) == scalesim_layers(text)


def test_rows_of_empty_cells_are_blank_lines(tmp_path):
    path = tmp_path / "net.csv"
    path.write_text(COMMENTED + ",,,,,,,,,\n\n", encoding="utf-8")
    assert _ours(networks.read_topology(path)) == scalesim_layers(COMMENTED)


def test_duplicate_names_are_made_unique_with_a_warning(tmp_path):
    path = tmp_path / "deepbench.csv"
    path.write_text(DEEPBENCH, encoding="utf-8")
    with pytest.warns(UserWarning, match=r"layer name 'conv' appears again, read as 'conv#2'"):
        layers = networks.read_topology(path)
    assert [x.name for x in layers] == ["conv", "conv#2", "conv#3", "conv#1"]
    assert [(m, k, n) for _, m, k, n in _ours(layers)] == [(m, k, n) for _, m, k, n in scalesim_layers(DEEPBENCH)]


def test_gemm_rows_without_trailing_comma(tmp_path):
    text = "Layer,M,N,K\n1,2048,4096,32\n2,32,2048,4096\n1,8,8,8\n"  # SCALE-Sim's GEMM_mnk/gnmt.csv style
    path = tmp_path / "gnmt.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.warns(UserWarning, match=r"layer name '1' appears again"):
        layers = networks.read_topology(path)
    assert [(x.name, x.m, x.k, x.n) for x in layers] == [("1", 2048, 32, 4096), ("2", 32, 4096, 2048),
                                                        ("1#1", 8, 8, 8)]


def test_gemm_rows_as_scalesim_reads_them(tmp_path):
    text = "Layer, M, N, K,\nqkv, 128, 2304, 768, # comment\nproj, 128, 768, 768,\n"
    path = tmp_path / "mnk.csv"
    path.write_text(text, encoding="utf-8")
    layers = networks.read_topology(path)
    assert _ours(layers) == scalesim_layers(text, gemm=True) == [("qkv", 128, 768, 2304), ("proj", 128, 768, 768)]


def test_stride_width_without_trailing_comma_is_ignored_like_scalesim(tmp_path):
    text = "Layer, H, W, R, S, C, M, Sh, Sw\nc1, 18, 18, 3, 3, 6, 20, 2, 1\n"
    path = tmp_path / "net.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.warns(UserWarning, match=r"SCALE-Sim ignores the last cell, so the stride width 1 is not read"):
        (layer,) = networks.read_topology(path)
    assert _ours([layer]) == scalesim_layers(text) == [("c1", 81, 54, 20)]


def test_row_scalesim_cannot_read_is_read_with_a_warning(tmp_path):
    path = tmp_path / "net.csv"
    path.write_text("Layer, H, W, R, S, C, M, S\nc1, 18, 18, 3, 3, 6, 20, 2\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"line 2 \(c1\) has no last cell, which SCALE-Sim needs"):
        (layer,) = networks.read_topology(path)
    assert (layer.m, layer.k, layer.n) == (81, 54, 20)


def test_accel_cli_runs_a_deepbench_topology(tmp_path, capsys):
    import json

    import flow

    path = tmp_path / "deepbench.csv"
    path.write_text(DEEPBENCH, encoding="utf-8")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=r"appears again"):
        code = flow.main(["accel", "--net", str(path), "--array", "8x8", "--cycle-model", "scalesim",
                          "--run-dir", str(out)])
    assert code == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["layers"] == 4 and rep["macs"] == sum(m * k * n for _, m, k, n in scalesim_layers(DEEPBENCH))
