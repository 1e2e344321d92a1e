"""Fine-tuning in the loop, the validation split, both energies with --accel, and their bad inputs."""

from __future__ import annotations

import csv
import gzip
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import flow  # noqa: E402
from dnn import data, fixtures, loop, mults, qnn, train  # noqa: E402

COSTS = {3: (900.0, 0.9), 6: (700.0, 0.65)}
RECIPE = {"epochs": 2, "qat_epochs": 1, "seed": 1}


def _runs(root: Path) -> list[str]:
    return [str(fixtures.write_run(root / f"ba{k}", fixtures.broken_array(k), {
        "area": area, "energy_pj": energy, "power_w": energy * 1e-4, "clock_period_ns": 10.0,
        "exact": {"area": 1000.0, "power_w": 1e-4, "delay_ns": 3.0}})) for k, (area, energy) in COSTS.items()]


def _argv(tmp_path: Path, *extra: str, data_set: str = "digits") -> list[str]:
    return ["dnn", "--net", "lenet5", "--data", data_set, "--epochs", "2", "--eval-images", "120",
            "--representatives", "6", "--ig-steps", "4", "--threads", "1", "--run-dir", str(tmp_path / "run"),
            "--cache-dir", str(tmp_path / "cache"), *extra]


def _idx(path: Path, arr: np.ndarray) -> None:
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes())


def _tagged(root: Path, n_train: int = 400, n_test: int = 100) -> Path:
    """An MNIST-like IDX data set whose every image carries its own number in its last row (so an image
    is found again by content): the class is a bright 6x6 square in one of ten places."""
    rng = np.random.default_rng(0)
    folder = root / "tagged"
    folder.mkdir()
    for split, n, first in (("train", n_train, 0), ("t10k", n_test, n_train)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, c in enumerate(y):
            r, col = 2 + 8 * (c // 4), 2 + 8 * (c % 4)
            x[i, r:r + 6, col:col + 6] = 250
            x[i, 27, 0], x[i, 27, 1] = (first + i) // 256, (first + i) % 256
        _idx(folder / f"{split}-images-idx3-ubyte.gz", x)
        _idx(folder / f"{split}-labels-idx1-ubyte.gz", y)
    return folder


def _ids(x: torch.Tensor) -> set[int]:
    px = torch.round(x[:, 0, 27, :2] * 255).long()
    return set((px[:, 0] * 256 + px[:, 1]).tolist())


@pytest.fixture(scope="module")
def small():
    """LeNet-5 trained briefly on digits less a validation split of 120 training images."""
    torch.set_num_threads(1)
    d = data.hold_out(data.load("digits"), 120)
    model, _ = train.trained(train.Recipe("lenet5", **RECIPE), d, None)
    return model, d


def test_validation_split_comes_from_training_images_only(tmp_path):
    folder = _tagged(tmp_path)
    whole = data.load(str(folder))
    held = data.hold_out(whole, 60)
    assert len(held.x_val) == 60 and len(held.x_train) == 340
    val, kept, test = _ids(held.x_val), _ids(held.x_train), _ids(held.x_test)
    assert len(val) == 60 and not val & kept and not val & test and val | kept == _ids(whole.x_train)
    assert _ids(whole.x_train[torch.from_numpy(held.val_index)]) == val
    assert held.fingerprint != whole.fingerprint  # a network trained on the rest is cached apart


def test_search_evaluates_on_validation_and_reports_the_test_split(tmp_path):
    """The run's evaluation images are the validation split (its exact-INT8 accuracy there is the
    baseline), and report.json's test figures are the network's on every test image."""
    folder = _tagged(tmp_path)
    runs = _runs(tmp_path)
    assert flow.main(_argv(tmp_path, "--mults", *runs, "--method", "hawx", "--finetune-epochs", "0",
                           "--eval-images", "50", data_set=str(folder))) == 0
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert (splits["train"], splits["validation"], splits["evaluation"], splits["test"]) == (320, 80, 50, 100)
    assert rep["eval_split"] == "validation" and rep["eval_images"] == 50
    whole = data.load(str(folder))
    val_ids = _ids(whole.x_train[torch.tensor(splits["validation_index"])])
    assert not val_ids & _ids(whole.x_test)
    held = data.hold_out(whole, 80)
    model, info = train.trained(train.Recipe("lenet5", **RECIPE), held, tmp_path / "cache")
    assert info.get("cached")  # the very network the run trained
    qnn.assign(model, qnn.uniform(model, mults.exact(True)))
    qnn.set_mode(model, "lut")
    assert rep["baseline_accuracy"] == train.accuracy(model, held.x_val[:50], held.y_val[:50])
    assert rep["test"]["images"] == 100
    assert rep["test"]["exact_int8_accuracy"] == train.accuracy(model, held.x_test, held.y_test)
    assert rep["test"]["float_accuracy"] == info["float_accuracy"]
    assert rep["test"]["chosen_accuracy"] == pytest.approx(
        rep["test"]["exact_int8_accuracy"] - rep["test"]["chosen_loss_vs_exact_int8"])


def _approximate(model, runs):
    cand = mults.load_all(runs)
    qnn.assign(model, qnn.uniform(model, cand[-1]))
    qnn.set_mode(model, "lut")


def test_finetune_whose_every_epoch_hurts_returns_the_start_weights(small, tmp_path):
    model, d = small
    _approximate(model, _runs(tmp_path))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    before = train.accuracy(model, d.x_val, d.y_val)
    info = train.finetune(model, d, 2, 5.0, 64, 1, d.x_val, d.y_val)  # a learning rate that wrecks it
    hist = info["validation_accuracy"]
    assert hist[0] == before and len(hist) == 3 and all(a < before for a in hist[1:])  # every epoch lowers it
    assert info["best_epoch"] == 0 and info["validation_after"] == before
    now = model.state_dict()
    assert all(torch.equal(now[k], v) for k, v in start.items())
    assert train.accuracy(model, d.x_val, d.y_val) == before


def test_finetune_keeps_its_best_checkpoint(small, tmp_path):
    model, d = small
    _approximate(model, _runs(tmp_path))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    info = train.finetune(model, d, 3, 2e-4, 64, 1, d.x_val, d.y_val)
    hist = info["validation_accuracy"]
    assert info["validation_after"] == max(hist) >= hist[0]
    assert info["validation_after"] == hist[info["best_epoch"]]
    assert train.accuracy(model, d.x_val, d.y_val) == info["validation_after"]
    model.load_state_dict(start)


def test_promising_points_are_the_front_below_the_answer():
    from dnn.cost import Cost
    from dnn.search import Result

    rs = [Result((i,), acc, Cost(e, 1.0), "x", i) for i, (acc, e) in
          enumerate([(0.95, 10.0), (0.80, 2.0), (0.70, 3.0), (0.90, 5.0), (0.93, 8.0), (0.5, 1.0)])]
    # baseline 0.95, budget 0.02: cheapest feasible is energy 8; the front below it: 1, 2, 5
    assert [r.order for r in loop.promising(rs, 0.95, 0.02)] == [5, 1, 3]


def test_finetune_in_loop_applies_the_budget_to_tuned_networks(tmp_path):
    runs = _runs(tmp_path)
    assert flow.main(_argv(tmp_path, "--mults", *runs, "--method", "hawx", "--max-acc-loss", "0.005",
                           "--finetune-in-loop", "2", "--finetune-epochs", "1")) == 0
    run = tmp_path / "run"
    rep = json.loads((run / "report.json").read_text())
    with open(run / "finetuned.csv", newline="") as f:
        tuned = list(csv.DictReader(f))
    with open(run / "evaluations.csv", newline="") as f:
        untuned = {r["assignment"]: r for r in csv.DictReader(f)}
    assert 1 <= len(tuned) == rep["finetuned_in_loop"] <= 2
    search_best = rep["methods"]["hawx-layer"]["best"]
    for t in tuned:  # fine-tuned: never below its start on the validation images
        assert float(t["accuracy"]) >= float(t["accuracy_before"]) == float(untuned[t["assignment"]]["accuracy"])
        assert rep["baseline_accuracy"] - float(t["accuracy_before"]) > 0.005  # missed the budget untuned
        assert float(t["energy_pj"]) < search_best["energy_pj"]
    ok = [float(t["energy_pj"]) for t in tuned if rep["baseline_accuracy"] - float(t["accuracy"]) <= 0.005 + 1e-12]
    assert rep["chosen"]["energy_pj"] == pytest.approx(min([search_best["energy_pj"], *ok]))
    assert rep["methods"]["finetune-in-loop"]["evaluations"] == len(tuned)
    assert rep["finetune"]["in_loop"] == (rep["chosen"]["method"] == "finetune")
    assert (run / "model_finetuned.pt").is_file()


def test_an_interrupted_finetune_in_loop_resumes_to_the_uninterrupted_answer(tmp_path, monkeypatch, capsys):
    """Ctrl-C while the loop fine-tunes (dense network): exit 130, the search's evaluations are kept and no
    report is written; --resume evaluates nothing again and gives the answer a run without the interruption
    gives (the fine-tunes are seeded)."""
    runs = _runs(tmp_path)
    extra = ("--mults", *runs, "--method", "hawx", "--max-acc-loss", "0.005", "--finetune-in-loop", "2",
             "--finetune-epochs", "1")
    argv = _argv(tmp_path, *extra)
    real = train.finetune

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "finetune", interrupted)
    assert flow.main(argv) == 130
    run = tmp_path / "run"
    assert not (run / "report.json").exists() and not (run / "finetuned.csv").exists()
    searched = (run / "evaluations.jsonl").read_text().splitlines()
    assert searched
    monkeypatch.setattr(train, "finetune", real)
    assert flow.main([*argv, "--resume"]) == 0
    assert (run / "evaluations.jsonl").read_text().splitlines() == searched  # nothing evaluated twice
    plain = [a if a != str(run) else str(tmp_path / "plain") for a in argv]
    assert flow.main(plain) == 0
    rep, ref = (json.loads((d / "report.json").read_text()) for d in (run, tmp_path / "plain"))
    assert rep["finetuned_in_loop"] == ref["finetuned_in_loop"] >= 1
    assert rep["chosen"]["assignment"] == ref["chosen"]["assignment"]
    assert rep["chosen"]["accuracy"] == ref["chosen"]["accuracy"]
    assert (run / "finetuned.csv").read_text() == (tmp_path / "plain" / "finetuned.csv").read_text()


def test_accel_points_carry_both_energies(tmp_path):
    pytest.importorskip("accel_models.api")
    runs = _runs(tmp_path)
    conf = tmp_path / "accel.json"
    conf.write_text(json.dumps({"net": "lenet5", "array": "8x8", "pods": 1, "dataflow": "ws"}))
    assert flow.main(_argv(tmp_path, "--mults", *runs, "--method", "hawx", "--max-acc-loss", "0.05",
                           "--finetune-epochs", "0", "--accel", str(conf))) == 0
    run = tmp_path / "run"
    rep = json.loads((run / "report.json").read_text())
    per_op = {"exact": 1.0, "mul8s/ba3": 0.9, "mul8s/ba6": 0.65}
    for p in json.loads((run / "pareto.json").read_text()):
        assert p["accel_energy_pj"] == p["energy_pj"] > p["mult_energy_pj"] > 0
        assert p["mult_energy_pj"] == pytest.approx(sum(rep["macs"][n] * per_op[m] for n, m in p["assignment"].items()))
    assert rep["exact_mult_energy_pj"] == pytest.approx(sum(rep["macs"].values()) * 1.0)
    ch = rep["chosen"]
    assert rep["mult_energy_reduction"] == pytest.approx(rep["exact_mult_energy_pj"] / ch["mult_energy_pj"])
    assert rep["accel_energy_reduction"] == pytest.approx(rep["exact_accel_energy_pj"] / ch["accel_energy_pj"])
    assert rep["accel_energy_reduction"] > 1.0
    md = (run / "report.md").read_text()
    assert f"({rep['mult_energy_reduction']:.2f}x less than exact)" in md
    assert f"({rep['accel_energy_reduction']:.2f}x less than exact, accel_models)" in md


def test_the_multiplier_objective_with_an_accelerator_keeps_both_energies(tmp_path):
    """--objective mult --accel: the search minimises the multipliers' energy (energy_pj is theirs), and
    every point still carries the whole accelerator's."""
    pytest.importorskip("accel_models.api")
    runs = _runs(tmp_path)
    conf = tmp_path / "accel.json"
    conf.write_text(json.dumps({"net": "lenet5", "array": "8x8", "pods": 1, "dataflow": "ws"}))
    assert flow.main(_argv(tmp_path, "--mults", *runs, "--method", "hawx", "--max-acc-loss", "0.05",
                           "--finetune-epochs", "0", "--accel", str(conf), "--objective", "mult")) == 0
    run = tmp_path / "run"
    rep = json.loads((run / "report.json").read_text())
    assert rep["objective"] == "mult" and rep["cost_model"] == "accel"
    with open(run / "evaluations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        assert float(r["energy_pj"]) == float(r["mult_energy_pj"]) < float(r["accel_energy_pj"])
    assert rep["energy_reduction"] == pytest.approx(rep["mult_energy_reduction"])
    assert rep["accel_energy_reduction"] is not None
    assert "the search minimises the multipliers' energy" in (run / "report.md").read_text()


def _array_run(root: Path, wa: int, signed: bool = True) -> Path:
    """An array run directory's report.json, with the keys flow.py array writes (rtl_gen.array_job)."""
    path = root / f"array{wa}"
    path.mkdir()
    (path / "report.json").write_text(json.dumps({
        "design": f"sa4x4_ws_{wa}", "rows": 4, "cols": 4, "pods": 1, "dataflow": "ws", "wa": wa, "wb": wa,
        "signed": signed, "acc_bits": 32, "mult": {"label": "exact", "exact": True, "run_dir": None},
        "power_w": 0.01, "area": 2e5, "clock_period_ns": 10.0}))
    return path


BAD = {
    "array-run-width": (lambda t: ["--accel", str(_accel(t, _array_run(t, 4)))],
                        r"^error: ACCEL array run .*/array4 must be made with 8x8 signed multipliers \(the network's "
                        r"INT8 quantisation and the candidates\), not '4x4 signed'$"),
    "array-run-unsigned": (lambda t: ["--accel", str(_accel(t, _array_run(t, 8, signed=False)))],
                           r"^error: ACCEL array run .*/array8 must be made with 8x8 signed multipliers .* not "
                           r"'8x8 unsigned'$"),
    "finetune-in-loop-without-epochs": (lambda t: ["--finetune-in-loop", "2", "--finetune-epochs", "0"],
                                        r"^error: FINETUNE_EPOCHS must be at least 1 with FINETUNE_IN_LOOP .*, "
                                        r"not 0$"),
    "finetune-in-loop-negative": (lambda t: ["--finetune-in-loop", "-1"],
                                  r"^error: FINETUNE_IN_LOOP must be zero or a positive integer, not -1$"),
    "no-training-images": (lambda t: ["--finetune-in-loop", "2", "--train-limit", "4"],
                           r"^error: DATA digits must have at least 5 training images .*, not 4$"),
    "accel-objective-without-accel": (lambda t: ["--objective", "accel"],
                                      r"^error: OBJECTIVE accel needs --accel CONFIG .*without it the objective is "
                                      r"mult$"),
}


def _accel(root: Path, array_run: Path) -> Path:
    conf = root / "accel.json"
    conf.write_text(json.dumps({"net": "lenet5", "array": "4x4", "array_run": str(array_run)}))
    return conf


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    make, message = BAD[case]
    runs = _runs(tmp_path / "mults")
    assert flow.main(_argv(tmp_path, "--mults", *runs, *make(tmp_path))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.match(message, err), err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
