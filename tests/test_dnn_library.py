"""``flow.py dnn --library``: a catalogue of ``flow.py library`` as candidates, its bad inputs, and the
operand histograms a dnn run exports for the next library (read as ``ppa.activity`` reads them)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import flow  # noqa: E402
from core import golden  # noqa: E402
from core.multrun import MultiplierRun  # noqa: E402
from dnn import fixtures  # noqa: E402
from ppa import activity  # noqa: E402

COSTS = {"eps0.01-seed1": (3, 900.0, 0.9), "eps0.05-seed1": (6, 700.0, 0.65)}
LAYERS = ["conv1", "conv2", "fc1", "fc2", "fc3"]


def _library(root: Path) -> Path:
    """A library directory as evolve.library writes it: members/<name>/ run directories and library.json
    (rows with kind, name, eps, seed, the figures and the member's absolute run_dir)."""
    lib = root / "lib"
    rows = []
    for name, (k, area, energy) in COSTS.items():
        run = fixtures.write_run(lib / "members" / name, fixtures.broken_array(k), {
            "area": area, "energy_pj": energy, "power_w": energy * 1e-4, "clock_period_ns": 10.0,
            "exact": {"area": 1000.0, "power_w": 1e-4, "delay_ns": 3.0}})
        rows.append({"kind": "member", "name": name, "eps": float(name[3:7]), "seed": 1, "area": area,
                     "energy_pj": energy, "verified": True, "dominated": False, "build": "new",
                     "run_dir": str(run.resolve())})
    rows.append({"kind": "reference", "name": "mul8s_ref", "run_dir": str(lib / "references" / "mul8s_ref")})
    catalogue = {"settings": {"bits": 8, "signed": True}, "design": "mul8s", "tech": "osu018",
                 "cluster": {"scheduler": "local"}, "complete": True, "not_built": [], "failed": [],
                 "pareto_planes": [], "rows": rows}
    (lib / "library.json").write_text(json.dumps(catalogue, indent=2), encoding="utf-8")
    with open(lib / "library.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["kind", "name", "run_dir"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return lib


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    return ["dnn", "--net", "lenet5", "--data", "digits", "--epochs", "2", "--eval-images", "120",
            "--representatives", "6", "--threads", "1", "--finetune-epochs", "0", "--run-dir",
            str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--max-acc-loss", "0.02", *extra]


def test_library_members_are_candidates_and_operands_are_exported(tmp_path):
    lib = _library(tmp_path)
    assert flow.main(_argv(tmp_path, "--library", str(lib), "--method", "hawx")) == 0
    run = tmp_path / "run"
    rep = json.loads((run / "report.json").read_text())
    paths = [m["path"] for m in rep["multipliers"]]
    assert paths[0] == "exact"
    assert sorted(paths[1:]) == sorted(str((lib / "members" / n).resolve()) for n in COSTS)
    # the histograms, read the way flow.py library --operands reads them (ppa.activity.read_histogram)
    counts = {}
    for name in [*LAYERS, "all"]:
        path = run / "operands" / f"{name}.csv"
        pa, pb = activity.read_histogram(path, 8, 8, True)
        assert pa.sum() == pytest.approx(1.0) and pb.sum() == pytest.approx(1.0)
        with open(path, newline="") as f:
            counts[name] = {int(r["value"]): (int(r["count_a"]), int(r["count_b"])) for r in csv.DictReader(f)}
    assert sorted(counts["all"]) == list(range(-128, 128))
    for v in range(-128, 128):
        assert counts["all"][v] == tuple(sum(counts[n][v][i] for n in LAYERS) for i in (0, 1))
    # activations are the first operand: conv1 sees 120 images x 8x8 pixels x 5x5 taps x 6 filters
    # (padding zeros included) of non-negative inputs; weights stay in -127 .. 127
    conv1_a = sum(a for a, _ in counts["conv1"].values())
    assert conv1_a > 0 and all(a == 0 for v, (a, _) in counts["conv1"].items() if v < 0)
    assert counts["all"][-128][1] == 0
    assert sum(b for _, b in counts["fc3"].values()) == rep["macs"]["fc3"]


def _unsigned(lib: Path) -> None:
    path = lib / "members" / "eps0.05-seed1"
    report = json.loads((path / "report.json").read_text())
    MultiplierRun.write(path, {**report, "signed": False}, lut=golden.table(8, 8, False))


def _narrow(lib: Path) -> None:
    path = lib / "members" / "eps0.05-seed1"
    report = json.loads((path / "report.json").read_text())
    MultiplierRun.write(path, {**report, "wa": 4, "wb": 4}, lut=golden.table(4, 4, True))


def _no_catalogue(lib: Path) -> None:
    (lib / "library.json").unlink()


def _missing_member(lib: Path) -> None:
    import shutil

    shutil.rmtree(lib / "members" / "eps0.05-seed1")


BAD = {
    "no-catalogue": (_no_catalogue, r"^error: LIBRARY .*/lib has no library\.json \(build it with flow\.py library"),
    "unsigned-member": (_unsigned, r"^error: library .*/lib member eps0\.05-seed1 is a 8x8 unsigned multiplier; the "
                                   r"network's INT8 quantisation needs 8x8 signed ones$"),
    "narrow-member": (_narrow, r"^error: library .*/lib member eps0\.05-seed1 is a 4x4 signed multiplier"),
    "missing-member": (_missing_member, r"^error: library .*/lib member eps0\.05-seed1: its run directory "
                                        r".*/members/eps0\.05-seed1 does not exist$"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_library_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    spoil, message = BAD[case]
    lib = _library(tmp_path)
    spoil(lib)
    assert flow.main(_argv(tmp_path, "--library", str(lib))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.match(message, err), err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_nsga2_method_writes_its_pareto_set(tmp_path):
    lib = _library(tmp_path)
    argv = _argv(tmp_path, "--library", str(lib), "--method", "nsga2", "--generations", "2", "--population", "6")
    assert flow.main(argv) == 0
    run = tmp_path / "run"
    rep = json.loads((run / "report.json").read_text())
    assert set(rep["methods"]) == {"hawx-layer", "nsga2"}  # HAWX runs to seed it
    front = json.loads((run / "nsga2_pareto.json").read_text())
    assert front and {"accuracy", "energy_pj", "area", "assignment", "choice"} <= set(front[0])
    with open(run / "nsga2_pareto.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(front)
    best = rep["methods"]["nsga2"]["best"]
    assert rep["baseline_accuracy"] - best["accuracy"] <= 0.02 + 1e-12
    feasible = [p["energy_pj"] for p in front if rep["baseline_accuracy"] - p["accuracy"] <= 0.02 + 1e-12]
    assert best["energy_pj"] == min(feasible)
    assert best["energy_pj"] <= rep["methods"]["hawx-layer"]["best"]["energy_pj"]
    with open(run / "nsga2_log.csv", newline="") as f:
        assert [int(r["gen"]) for r in csv.DictReader(f)] == [0, 1, 2]


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_operand_histograms_match_the_multipliers_codes(tmp_path, signed):
    """Unsigned multipliers see activations 0..255 and the weights' magnitudes: the histogram says so."""
    from dnn import data, operands, qnn, train

    d = data.load("digits")
    model, _ = train.trained(train.Recipe("lenet5", epochs=1, qat_epochs=1, seed=1), d, None)
    qnn.set_signed(model, signed)
    hists = operands.layer_histograms(model, d.x_test[:40], signed=signed)
    path = tmp_path / "all.csv"
    path.write_text(operands.histogram_csv(*operands.merged(hists), signed), encoding="utf-8")
    pa, pb = activity.read_histogram(path, 8, 8, signed)
    assert pa.sum() == pytest.approx(1.0) and pb.sum() == pytest.approx(1.0)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["value"]) for r in rows] == list(range(-128, 128) if signed else range(256))
    if not signed:  # magnitudes 0..127 only
        assert all(int(r["count_b"]) == 0 for r in rows if int(r["value"]) > 127)
