"""``flow.py accel`` end to end: the files it writes, and one-line errors that leave nothing behind."""

from __future__ import annotations

import csv
import json

import pytest
from _accel_runs import mult_run

import flow


def _run(args, capsys):
    code = flow.main(["accel", *map(str, args)])
    return code, capsys.readouterr()


def test_accel_writes_its_reports(tmp_path, capsys):
    run = mult_run(tmp_path)
    asg = tmp_path / "assign.json"
    asg.write_text(json.dumps({"conv1": str(run), "fc1": [str(run)] * 60 + ["exact"] * 60}), encoding="utf-8")
    out = tmp_path / "out"
    code, _ = _run(["--net", "lenet5", "--array", "8x8", "--pods", "2", "--dataflow", "os", "--assign", asg,
                    "--dram-bw", "8", "--run-dir", out], capsys)
    assert code == 0
    for name in ("layers.csv", "report.json", "report.md", "layers.png", "config.json"):
        assert (out / name).is_file(), name
    with open(out / "layers.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["layer"] for r in rows] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    for col in ("m", "k", "n", "cycles", "utilization", "sram_a_reads_words", "dram_a_bytes", "energy_dram_pj",
                "energy_sram_pj", "energy_compute_pj", "split"):
        assert col in rows[0]
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["cycles"] == sum(int(r["cycles"]) for r in rows)
    assert rep["energy_total_pj"] == pytest.approx(sum(float(r["energy_total_pj"]) for r in rows))
    assert rep["energy_ratio"] < 1
    assert rep["stall_cycles"] > 0  # 8 bytes per cycle is short for two pods
    assert rows[0]["multiplier"] == "trunc4" and rows[2]["multiplier"].startswith("trunc4:0.500")


def test_accel_scalesim_topology(tmp_path, capsys):
    topo = tmp_path / "net.csv"
    topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides,\nConv1, 18, 18, 3, 3, 4, 8, 1,\nConv2, 16, 16, 3, 3, 8, 16, 2,\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _ = _run(["--net", topo, "--array", "8x8", "--cycle-model", "scalesim", "--ifmap-kb", "1",
                    "--filter-kb", "1", "--ofmap-kb", "1", "--run-dir", out], capsys)
    assert code == 0
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["net"] == "net" and rep["cycle_model"] == "scalesim" and rep["layers"] == 2


BAD = [
    (["--net", "alexnet9"], r"NET must be a built-in network"),
    (["--dataflow", "rs"], r"DATAFLOW must be one of the listed choices, not 'rs' \(choices: ws, os, is\)"),
    (["--array", "0x8"], r"ARRAY must be ROWSxCOLS with positive sizes"),
    (["--pods", "0"], r"PODS must be a positive integer, not 0"),
    (["--sparsity", "1"], r"SPARSITY must be in \[0, 1\), not 1.0"),
    (["--sparsity", "0.5", "--cycle-model", "scalesim"], r"block sparsity needs --cycle-model rtl"),
    (["--mult", "{tmp}/nothing"], r"multiplier run directory .*nothing does not exist"),
    (["--mult", "{tmp}/empty"], r"has no report.json"),
    (["--assign", "{tmp}/bad.json"], r"names layer 'conv7', which the network lacks"),
    (["--sparsity-method", "l1", "--sparsity", "0.3"], r"SPARSITY_METHOD l1 ranks blocks by their weights"),
]


@pytest.mark.parametrize("args,message", BAD, ids=["net", "dataflow", "array", "pods", "sparsity", "sparse_scalesim",
                                                    "no_run", "no_report", "assign_layer", "norm_without_weights"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text(json.dumps({"conv7": "exact"}), encoding="utf-8")
    out = tmp_path / "out"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, cap = _run(["--net", "lenet5", "--array", "8x8", *args, "--run-dir", out] if "--net" not in args
                     else [*args, "--run-dir", out], capsys)
    assert code == 2
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert __import__("re").search(message, lines[0]), lines[0]
    assert not out.exists()


def test_existing_run_is_kept(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("x", encoding="utf-8")
    code, cap = _run(["--net", "lenet5", "--array", "8x8", "--run-dir", out], capsys)
    assert code == 2 and "already exists" in cap.err
    assert (out / "keep").read_text(encoding="utf-8") == "x"
    code, _ = _run(["--net", "lenet5", "--array", "8x8", "--run-dir", out, "--overwrite"], capsys)
    assert code == 0 and not (out / "keep").exists()


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        flow.main(["accel", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--net", "--array", "--pods", "--dataflow", "--assign", "--sparsity", "--cycle-model"):
        assert opt in text
