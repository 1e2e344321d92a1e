"""Ctrl-C in a joint sparsity search (``flow.py dnn --sparsity-ratios``): the run directory keeps a
resumable checkpoint (each ratio's retrained network, sealed by its ``network.json``, and its evaluations
a line each), what had finished stays byte for byte, and ``--resume`` reuses it (no retraining, no
evaluation made twice) and ends where an uninterrupted run ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from _dnn_runs import dnn_argv

RATIOS = ("--sparsity-ratios", "0", "0.25", "0.5", "--sparsity-block", "4", "--sparsity-epochs", "1")
pytestmark = pytest.mark.usefixtures("one_thread")


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted((run / "sparsity").rglob("*")) if p.is_file()}


def _interrupt_search(monkeypatch, at_call: int, after_rows: int) -> None:
    """Ctrl-C in the ``at_call``-th ratio's search, right after its ``after_rows``-th new evaluation."""
    from dnn import joint

    real = joint._searched
    calls = []

    def searched(conf, net, ev_r, *args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            log, rows = ev_r.progress, []

            def progress(res):
                log(res)
                rows.append(res)
                if len(rows) == after_rows:
                    raise KeyboardInterrupt

            ev_r.progress = progress
        return real(conf, net, ev_r, *args, **kwargs)

    monkeypatch.setattr(joint, "_searched", searched)


def _count_retraining(monkeypatch) -> list[float]:
    from dnn import sparsity

    real, seen = sparsity.retrain, []

    def retrain(net, *args, **kwargs):
        seen.append(sparsity.density(net))
        return real(net, *args, **kwargs)

    monkeypatch.setattr(sparsity, "retrain", retrain)
    return seen


def _sparsity(run: Path) -> dict:
    rep = json.loads((run / "report.json").read_text())["sparsity"]
    return {k: rep[k] for k in ("table", "chosen", "approximation_only")}


def test_ctrl_c_mid_search_resumes_to_the_uninterrupted_answer(tmp_path, monkeypatch):
    import flow

    assert flow.main(dnn_argv(tmp_path, *RATIOS, run="whole")) == 0  # the answer without an interruption
    # a block-sparse network's evaluations are paired with the dense exact INT8, the budget's baseline
    rep = json.loads((tmp_path / "whole" / "report.json").read_text())
    n = rep["eval_images"]
    for line in (tmp_path / "whole" / "sparsity" / "r0.5" / "evaluations.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert row["lost"] - row["gained"] == round((rep["baseline_accuracy"] - row["accuracy"]) * n)
    _interrupt_search(monkeypatch, at_call=2, after_rows=2)
    assert flow.main(dnn_argv(tmp_path, *RATIOS)) == 130
    run = tmp_path / "run"
    assert not (run / "report.json").exists()
    first, second = run / "sparsity" / "r0.25", run / "sparsity" / "r0.5"
    for d in (first, second):  # both networks retrained and sealed; the second's search cut short
        assert json.loads((d / "network.json").read_text())["settings"]["block"] == 4
        assert (d / "model.pt").is_file() and (d / "masks.npz").is_file()
    done = (first / "evaluations.jsonl").read_text().splitlines()
    cut = (second / "evaluations.jsonl").read_text().splitlines()
    assert len(cut) == 2 and all(json.loads(line) for line in cut)
    kept = _files(run)
    monkeypatch.undo()
    retrained = _count_retraining(monkeypatch)
    assert flow.main(["dnn", "--resume", "--run-dir", str(run)]) == 0
    assert retrained == []  # both networks reloaded from their checkpoints
    assert (first / "evaluations.jsonl").read_text().splitlines() == done  # nothing evaluated again
    again = (second / "evaluations.jsonl").read_text().splitlines()
    assert again[:2] == cut and len(again) > 2
    assert len({json.dumps(json.loads(line)["multipliers"]) for line in again}) == len(again)
    for name in ("r0.25/model.pt", "r0.25/masks.npz", "r0.25/network.json", "r0.5/model.pt"):
        assert _files(run)[f"sparsity/{name}"] == kept[f"sparsity/{name}"]
    assert _sparsity(run) == _sparsity(tmp_path / "whole")


def test_ctrl_c_while_retraining_keeps_earlier_results(tmp_path, monkeypatch):
    """A finished run resumed with one more ratio, interrupted while that ratio retrains: the earlier report
    and every earlier file stay as they were, the unfinished network is not sealed; the next --resume
    retrains only it."""
    import flow
    from dnn import sparsity

    two = ("--sparsity-ratios", "0", "0.5", "--sparsity-block", "4", "--sparsity-epochs", "1")
    assert flow.main(dnn_argv(tmp_path, *two)) == 0
    run = tmp_path / "run"
    report, before = (run / "report.json").read_bytes(), _files(run)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sparsity, "retrain", interrupted)
    assert flow.main(["dnn", "--resume", "--run-dir", str(run), *RATIOS[:4]]) == 130
    assert (run / "report.json").read_bytes() == report
    after = _files(run)
    assert {k: after[k] for k in before} == before
    assert not (run / "sparsity" / "r0.25" / "network.json").exists()
    monkeypatch.undo()
    retrained = _count_retraining(monkeypatch)
    assert flow.main(["dnn", "--resume", "--run-dir", str(run), *RATIOS[:4]]) == 0
    assert len(retrained) == 1 and retrained[0]["fc1"] < 1.0  # only the new ratio's network
    rep = json.loads((run / "report.json").read_text())["sparsity"]
    assert [t["ratio"] for t in rep["table"]] == [0.0, 0.25, 0.5]


def test_with_an_accelerator_skipped_blocks_cost_no_multiplier_energy(tmp_path):
    """--accel in a joint search: a block-sparse network's points carry the accelerator's energy and the
    multiplier energy of the products it computes (a skipped block costs nothing), as without --accel."""
    pytest.importorskip("accel_models.api")
    import flow

    conf = tmp_path / "accel.json"
    conf.write_text(json.dumps({"net": "lenet5", "array": "8x8", "pods": 1, "dataflow": "ws"}))
    two = ("--sparsity-ratios", "0", "0.5", "--sparsity-block", "4", "--sparsity-epochs", "1",
           "--no-sparsity-per-layer")
    for name, extra in (("plain", ()), ("accel", ("--accel", str(conf), "--objective", "mult"))):
        assert flow.main(dnn_argv(tmp_path, *two, *extra, run=name)) == 0
    rows = {}
    for name in ("plain", "accel"):
        log = tmp_path / name / "sparsity" / "r0.5" / "evaluations.jsonl"
        rows[name] = {json.dumps(r["multipliers"]): r for r in map(json.loads, log.read_text().splitlines())}
    dense = json.loads((tmp_path / "accel" / "report.json").read_text())["exact_mult_energy_pj"]
    same = set(rows["plain"]) & set(rows["accel"])
    assert same
    for key in same:
        plain, accel = rows["plain"][key], rows["accel"][key]
        assert accel["mult_energy_pj"] == pytest.approx(plain["mult_energy_pj"])
        assert accel["mult_energy_pj"] < dense
        assert accel["energy_pj"] == accel["mult_energy_pj"] and accel["accel_energy_pj"] > 0
