"""The whole ``flow.py dnn`` stage on a small network, and its parts on a trained one."""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import flow  # noqa: E402
from dnn import data, fixtures, mults, qnn, search, sensitivity, train  # noqa: E402

COSTS = {3: (900.0, 0.9), 6: (700.0, 0.65)}


def _runs(tmp_path):
    out = []
    for k, (area, energy) in COSTS.items():
        out.append(str(fixtures.write_run(tmp_path / f"ba{k}", fixtures.broken_array(k), {
            "area": area, "energy_pj": energy, "power_w": energy * 1e-4, "clock_period_ns": 10.0,
            "exact": {"area": 1000.0, "power_w": 1e-4, "delay_ns": 3.0}})))
    return out


@pytest.fixture(scope="module")
def small():
    """LeNet-5 trained briefly on digits (the flow's cache is not used)."""
    torch.set_num_threads(1)
    d = data.load("digits")
    model, info = train.trained(train.Recipe("lenet5", epochs=2, qat_epochs=1, seed=1), d, None)
    return model, d, info


def test_training_reaches_useful_accuracy(small):
    _, _, info = small
    assert info["float_accuracy"] > 0.7 and info["qat_accuracy"] > 0.7


def test_representatives_are_distinct(small):
    model, d, _ = small
    qnn.set_mode(model, "qat")
    idx = sensitivity.representatives(model, d.x_train[:300], 8, seed=0)
    assert len(set(idx.tolist())) == 8 and idx.max() < 300


def test_hawx_scores_rank_multipliers(small, tmp_path):
    model, d, _ = small
    cands = mults.load_all(_runs(tmp_path))
    scores = sensitivity.hawx(model, d.x_train[:16], d.y_train[:16], cands)
    for name, per in scores.layers.items():
        assert per[0] == 0.0
        assert 0 < per[1] < per[2], name  # ba3 disturbs less than ba6
        assert len(scores.filters[name][1]) == dict(qnn.qlayers(model))[name].out_features
    qnn.set_mode(model, "qat")


def test_conductance_is_normalised(small):
    model, d, _ = small
    qnn.set_mode(model, "qat")
    imp = sensitivity.conductance(model, d.x_train[:4], d.y_train[:4], steps=4)
    assert set(imp) == {n for n, _ in qnn.qlayers(model)}
    assert max(imp.values()) == 1.0 and min(imp.values()) > 0


def test_pareto_keeps_only_non_dominated():
    from dnn.cost import Cost

    rs = [search.Result((i,), acc, Cost(e, a), "x", i) for i, (acc, e, a) in
          enumerate([(0.9, 10, 5), (0.8, 12, 5), (0.95, 20, 5), (0.9, 10, 4), (0.7, 5, 9)])]
    front = search.pareto(rs)
    assert [r.order for r in front] == [4, 3, 2]


def test_flow_end_to_end(tmp_path):
    runs = _runs(tmp_path)
    run_dir = tmp_path / "run"
    argv = ["dnn", "--net", "lenet5", "--data", "digits", "--mults", *runs, "--method", "xai", "hawx",
            "exhaustive", "--granularity", "both", "--epochs", "2", "--eval-images", "120",
            "--representatives", "6", "--ig-steps", "4", "--threads", "1", "--run-dir", str(run_dir),
            "--cache-dir", str(tmp_path / "cache"), "--max-acc-loss", "0.02"]
    assert flow.main(argv) == 0
    rep = json.loads((run_dir / "report.json").read_text())
    layers = rep["layers"]
    assert layers == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert rep["methods"]["exhaustive"]["evaluations"] == 3 ** 5
    for name in ("xai", "hawx-layer", "hawx-filter"):
        assert rep["methods"][name]["evaluations"] < 3 ** 5
    chosen = rep["chosen"]
    assert rep["baseline_accuracy"] - chosen["accuracy"] <= 0.02 + 1e-12
    # the chosen assignment is the cheapest feasible one of everything evaluated
    with open(run_dir / "evaluations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == rep["evaluations"]
    feasible = [float(r["energy_pj"]) for r in rows if rep["baseline_accuracy"] - float(r["accuracy"]) <= 0.02]
    assert chosen["energy_pj"] == pytest.approx(min(feasible))
    assign = json.loads((run_dir / "assign.json").read_text())
    assert list(assign) == layers
    allowed = {"exact", *runs}
    assert all((v in allowed) if isinstance(v, str) else set(v) <= allowed for v in assign.values())
    # energies are MACs x per-operation energies from the reports
    per_op = {"exact": 1.0, "mul8s/ba3": 0.9, "mul8s/ba6": 0.65}
    expect = sum(rep["macs"][n] * per_op[m] for n, m in chosen["assignment"].items() if isinstance(m, str))
    if all(isinstance(m, str) for m in chosen["assignment"].values()):
        assert chosen["energy_pj"] == pytest.approx(expect)
    front = json.loads((run_dir / "pareto.json").read_text())
    assert front and all(a["energy_pj"] <= b["energy_pj"] for a, b in itertools.pairwise(front))
    assert (run_dir / "pareto.png").stat().st_size > 1000
    assert rep["finetune"]["epochs"] == 1
    for p in rep["exported_luts"]:
        assert (run_dir / p).is_file()
    # a second run must not overwrite silently; --resume reuses every evaluation
    assert flow.main(argv) == 2
    n_before = len((run_dir / "evaluations.jsonl").read_text().splitlines())
    assert flow.main([*argv, "--resume"]) == 0
    assert len((run_dir / "evaluations.jsonl").read_text().splitlines()) == n_before
    assert np.isclose(json.loads((run_dir / "report.json").read_text())["chosen"]["energy_pj"], chosen["energy_pj"])
