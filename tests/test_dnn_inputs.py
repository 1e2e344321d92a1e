"""Bad input to the DNN level: one-line errors, non-zero exit, nothing touched."""

from __future__ import annotations

import gzip
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

import flow
from core.errors import ConfigError
from dnn import fixtures, mults

COSTS = {"area": 800.0, "energy_pj": 0.8, "power_w": 8e-5, "clock_period_ns": 10.0,
         "exact": {"area": 1000.0, "power_w": 1e-4, "delay_ns": 3.0}}


def _run(tmp_path: Path, name: str, lut: np.ndarray, **report) -> Path:
    path = fixtures.write_run(tmp_path / name, lut, COSTS)
    if report:
        data = json.loads((path / "report.json").read_text())
        data.update(report)
        (path / "report.json").write_text(json.dumps(data))
    return path


def test_loads_a_run_directory(tmp_path):
    m = mults.load(_run(tmp_path, "ba4", fixtures.broken_array(4)))
    assert m.signed and m.name == "mul8s/ba4" and m.cost("area") == 800.0
    assert np.array_equal(m.lut, fixtures.broken_array(4))


@pytest.mark.parametrize("case", ["shape", "dtype", "narrow", "wide", "missing", "nodir"])
def test_bad_multiplier(tmp_path, case):
    path = _run(tmp_path, "m", fixtures.broken_array(2))
    expected = {
        "shape": r"^.*lut\.npy must have shape \(256, 256\) for an 8x8 multiplier, not \(128, 256\)$",
        "dtype": r"^.*lut\.npy must have dtype int32, not float64$",
        "narrow": r"^multiplier .* is 6x8 bits, narrower than the 8-bit quantisation",
        "wide": r"^multiplier .* is 16x16 bits; the DNN level quantises to 8 bits",
        "missing": r"^multiplier run directory .* has no lut\.npy$",
        "nodir": r"^multiplier '.*nowhere' must be a run directory with lut\.npy and report\.json or the word",
    }[case]
    if case == "shape":
        np.save(path / "lut.npy", np.zeros((128, 256), np.int32))
    elif case == "dtype":
        np.save(path / "lut.npy", np.zeros((256, 256), np.float64))
    elif case == "narrow":
        _run(tmp_path, "m", fixtures.broken_array(2), wa=6)
    elif case == "wide":
        _run(tmp_path, "m", fixtures.broken_array(2), wa=16, wb=16)
    elif case == "missing":
        (path / "lut.npy").unlink()
    else:
        path = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=expected):
        mults.load(path)


def test_mixed_signedness_is_refused(tmp_path):
    a = _run(tmp_path, "s", fixtures.broken_array(2))
    b = _run(tmp_path, "u", np.outer(np.arange(256), np.arange(256)), signed=False)
    with pytest.raises(ConfigError, match=r"^MULTS must all be signed or all unsigned, not a mix"):
        mults.load_all([str(a), str(b)])


CLI_CASES = {
    "net": (["--net", "alexnet"], r"^error: NET must be one of the listed choices, not 'alexnet' "
                                  r"\(choices: lenet5, vgg, resnet20\)$"),
    "data": (["--data", "cifar99"], r"^error: DATA must be a data set name or an existing folder, not 'cifar99' "
                                    r"\(choices: digits, mnist, fashion\)$"),
    "method": (["--method", "random"], r"^error: METHOD must be one of the listed choices, not 'random' "
                                       r"\(choices: xai, hawx, nsga2, exhaustive\)$"),
    "budget-high": (["--max-acc-loss", "1.5"], r"^error: MAX_ACC_LOSS must be in \(0, 1\), not 1\.5$"),
    "budget-zero": (["--max-acc-loss", "0"], r"^error: MAX_ACC_LOSS must be in \(0, 1\), not 0\.0$"),
    "population": (["--method", "nsga2", "--population", "1"], r"^error: POPULATION must be an integer >= 2, "
                                                              r"not 1$"),
    "generations": (["--generations", "-1"], r"^error: GENERATIONS must be zero or a positive integer, not -1$"),
    "library": (["--library", "nowhere"], r"^error: LIBRARY must be a library directory built by flow\.py library, "
                                          r"not 'nowhere'$"),
    "no-mults": ([], r"^error: MULTS must name at least one approximate multiplier run directory \(exact is always "
                r"a candidate\)$"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_input(tmp_path, capsys, case):
    pytest.importorskip("torch")
    argv, pattern = CLI_CASES[case]
    run_dir = tmp_path / "run"
    code = flow.main(["dnn", *argv, "--run-dir", str(run_dir), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert re.match(pattern, err), err
    assert not run_dir.exists()


def test_cli_without_torch(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    code = flow.main(["dnn", "--mults", "exact", "--run-dir", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: torch is not installed: run make dnn-setup"
    assert not (tmp_path / "run").exists()


def _idx(path: Path, arr: np.ndarray) -> None:
    head = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())


def test_idx_folder_like_torchvision(tmp_path):
    pytest.importorskip("torch")
    from dnn import data

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _idx(raw / "train-images-idx3-ubyte.gz", rng.integers(0, 256, size=(20, 28, 28)))
    _idx(raw / "train-labels-idx1-ubyte.gz", np.arange(20) % 10)
    _idx(raw / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, size=(10, 28, 28)))
    _idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(10))
    d = data.load(str(tmp_path))
    assert tuple(d.x_train.shape) == (20, 1, 28, 28) and tuple(d.x_test.shape) == (10, 1, 28, 28)
    assert d.classes == 10 and float(d.x_train.max()) <= 1.0


def test_image_folder(tmp_path):
    pytest.importorskip("torch")
    from PIL import Image

    from dnn import data

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("cat", "dog", "eel"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, size=(12, 12, 3)).astype(np.uint8)).save(
                    tmp_path / split / cls / f"{i}.png")
    d = data.load(str(tmp_path))
    assert tuple(d.x_train.shape) == (12, 3, 12, 12) and d.classes == 3
    assert sorted(d.y_test.tolist()) == [0, 0, 1, 1, 2, 2]


def test_empty_folder_is_refused(tmp_path):
    pytest.importorskip("torch")
    from dnn import data

    with pytest.raises(ConfigError, match=r"^DATA folder .* holds neither IDX files nor class folders"):
        data.load(str(tmp_path))


def test_accel_costs_the_chosen_assignment(tmp_path, capsys):
    """With --accel, every candidate is costed by accel_models on the configured accelerator: the report's
    energy of the chosen assignment is what accel_models itself says of assign.json."""
    pytest.importorskip("torch")
    from accel_models import api

    runs = [str(_run(tmp_path, f"ba{k}", fixtures.broken_array(k))) for k in (3, 6)]
    conf = tmp_path / "accel.json"
    conf.write_text(json.dumps({"net": "lenet5", "array": "8x8", "pods": 2, "dataflow": "ws"}))
    out = tmp_path / "out"
    code = flow.main(["dnn", "--mults", *runs, "--accel", str(conf), "--epochs", "1", "--finetune-epochs", "0",
                      "--method", "hawx", "xai", "--run-dir", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["cost_model"] == "accel" and report["chosen"] is not None
    ev = api.Evaluator(conf, multipliers=tuple(runs))
    energy, time_s = ev.evaluate(json.loads((out / "assign.json").read_text()))
    assert report["chosen"]["energy_pj"] == pytest.approx(energy)
    assert report["chosen"]["time_s"] == pytest.approx(time_s)
    assert report["exact_energy_pj"] == pytest.approx(ev.evaluate({})[0])


def test_accel_for_another_network_is_refused(tmp_path, capsys):
    pytest.importorskip("torch")
    run = _run(tmp_path, "ba4", fixtures.broken_array(4))
    conf = tmp_path / "accel.json"
    conf.write_text(json.dumps({"net": "vgg11", "array": "8x8"}))
    code = flow.main(["dnn", "--mults", str(run), "--accel", str(conf), "--epochs", "1", "--run-dir",
                      str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    assert capsys.readouterr().err.strip().startswith("error: ACCEL models a network without layer 'conv1'")

