"""The budget with a confidence margin (``--confidence Z``): every result carries its paired counts against
exact INT8 on the evaluation images, the margin is Z x the loss's paired standard error, and the budget
is applied to the loss plus that margin, by the search, the fine-tuning loop and a resumed run alike."""

from __future__ import annotations

import json
import math
import random
import re

import pytest

torch = pytest.importorskip("torch")

from _dnn_runs import dnn_argv, small_lenet_and_runs  # noqa: E402

import flow  # noqa: E402
from dnn import cli, cost, loop, mults, search, train  # noqa: E402


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    torch.set_num_threads(1)
    return small_lenet_and_runs(tmp_path_factory.mktemp("mults"))


def _evaluator(net, z=0.0):
    model, d, runs = net
    cands = mults.load_all(runs)
    return search.Evaluator(model, d.x_test[:150], d.y_test[:150], cands, cost.MultiplierCost(cands),
                            cli._macs(model, d), confidence=z)


@pytest.mark.parametrize("seed", range(6))
def test_paired_se_is_the_standard_error_of_the_per_image_differences(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 400)
    diffs = [rng.choice((-1, 0, 0, 0, 1)) for _ in range(n)]
    lost, gained = diffs.count(1), diffs.count(-1)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / n
    assert search.paired_se(lost, gained, n) == pytest.approx(math.sqrt(var / n), abs=1e-12)
    assert search.paired_se(0, 0, n) == 0.0 and search.paired_se(3, 1, 0) == 0.0


def test_every_result_is_paired_with_exact_int8_on_the_same_images(net):
    ev = _evaluator(net, z=1.5)
    baseline = ev(ev.exact(), "baseline")
    assert (baseline.lost, baseline.gained, baseline.margin) == (0, 0, 0.0)
    n = len(ev.x)
    for c in [(1,) * len(ev.names), (2,) * len(ev.names), (2,) + (0,) * (len(ev.names) - 1)]:
        r = ev(c, "check")
        assert r.lost - r.gained == round((baseline.accuracy - r.accuracy) * n)
        assert r.margin == pytest.approx(1.5 * search.paired_se(r.lost, r.gained, n))
    assert ev(ev.exact(), "again") is baseline
    # the reference is what exact INT8 classifies right, whatever was evaluated before it
    late = _evaluator(net)
    late((2,) * len(ev.names), "first")
    assert torch.equal(late.exact_correct(), ev.exact_correct())


def test_the_margin_decides_what_meets_the_budget(net):
    ev = _evaluator(net, z=2.0)
    baseline = ev(ev.exact(), "baseline").accuracy
    r = ev((2,) * len(ev.names), "check")
    loss = baseline - r.accuracy
    assert r.margin > 0
    assert search.feasible(r, baseline, loss + r.margin)
    assert not search.feasible(r, baseline, loss + r.margin / 2)  # met by the loss alone, not with the margin
    plain = _evaluator(net)(r.choice, "check")
    assert plain.margin == 0.0 and search.feasible(plain, baseline, loss)
    assert search.best([r], baseline, loss + r.margin / 2) is None


def test_a_resumed_run_recomputes_the_margin_at_its_own_confidence(net, tmp_path):
    log = tmp_path / "evaluations.jsonl"
    ev = _evaluator(net)

    def record(res):
        with log.open("a") as f:
            f.write(json.dumps(search.row(res, ev, ev.mults)) + "\n")

    ev.progress = record
    ev(ev.exact(), "baseline")
    first = ev((2,) * len(ev.names), "check")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows[1]["lost"] == first.lost and rows[1]["gained"] == first.gained
    old = dict(rows[1])
    del old["lost"], old["gained"]  # a row logged before the paired counts: evaluated again
    log.write_text("".join(json.dumps(r) + "\n" for r in (rows[0], rows[1], old)))
    again = _evaluator(net, z=1.0)
    assert search.reload(again, log, again.mults) == 2
    r = again.results[first.choice]
    assert (r.lost, r.gained) == (first.lost, first.gained)
    assert r.margin == pytest.approx(search.paired_se(r.lost, r.gained, len(again.x)))


def test_a_fine_tuned_result_is_paired_on_the_evaluation_images(net):
    model, d, _ = net
    ev = _evaluator(net, z=1.0)
    ev(ev.exact(), "baseline")
    tuner = loop.Tuner(model, ev, d, 1, 2e-4, 64, 1)
    choice = (2,) * len(ev.names)
    t = tuner(choice)
    model.load_state_dict(t.state)
    right = train.correct(model, ev.x, ev.y)
    model.load_state_dict(tuner.start)
    ref = ev.exact_correct()
    assert t.result.accuracy == t.info["validation_after"] == int(right.sum()) / len(ev.x)
    assert (t.result.lost, t.result.gained) == (int((ref & ~right).sum()), int((~ref & right).sum()))
    assert t.result.margin == pytest.approx(search.paired_se(t.result.lost, t.result.gained, len(ev.x)))


def test_the_report_states_the_confidence_and_the_test_loss_with_its_error(tmp_path):
    assert flow.main(dnn_argv(tmp_path, "--confidence", "1")) == 0
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    assert rep["confidence"] == 1.0
    t = rep["test"]
    n = t["images"]
    assert t["chosen_lost"] - t["chosen_gained"] == round(t["chosen_loss_vs_exact_int8"] * n)
    assert t["chosen_loss_se"] == pytest.approx(search.paired_se(t["chosen_lost"], t["chosen_gained"], n))
    ch = rep["chosen"]
    assert rep["baseline_accuracy"] - ch["accuracy"] + ch["loss_se"] <= rep["max_acc_loss"] + 1e-12
    md = (tmp_path / "run" / "report.md").read_text()
    assert "+ 1 x its paired standard error" in md and "paired standard error" in md


@pytest.mark.parametrize("bad", ["-0.5", "11", "abc"])
def test_a_confidence_outside_its_range_is_one_line(tmp_path, capsys, bad):
    assert flow.main(dnn_argv(tmp_path, "--confidence", bad)) != 0
    err = capsys.readouterr().err.strip()
    assert "CONFIDENCE" in err.upper() and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_selection_images_pick_the_checkpoint_and_the_evaluation_images_judge_it(net):
    """--select-images: the fine-tune keeps its best checkpoint on images of its own; the result is the
    tuned network's accuracy on the evaluator's images, paired there."""
    model, d, _ = net
    ev = _evaluator(net, z=1.0)
    ev(ev.exact(), "baseline")
    sel = (d.x_test[150:230], d.y_test[150:230])
    tuner = loop.Tuner(model, ev, d, 2, 2e-4, 64, 1, select=sel)
    t = tuner((2,) * len(ev.names))
    assert t.info["validation_images"] == 80
    model.load_state_dict(t.state)
    right = train.correct(model, ev.x, ev.y)
    assert train.accuracy(model, *sel) == t.info["validation_after"] == max(t.info["validation_accuracy"])
    model.load_state_dict(tuner.start)
    assert t.result.accuracy == int(right.sum()) / len(ev.x)


def test_the_selection_split_follows_the_evaluation_images(tmp_path):
    assert flow.main(dnn_argv(tmp_path, "--select-images", "30", "--finetune-epochs", "1", "--train-limit", "500")) == 0
    run = tmp_path / "run"
    splits = json.loads((run / "splits.json").read_text())
    rep = json.loads((run / "report.json").read_text())
    assert splits["evaluation"] == 60 and splits["selection"] == 30 and rep["select_images"] == 30
    assert rep["finetune"]["validation_images"] == 30
    assert "picked on 30 other validation images" in (run / "report.md").read_text()


def test_a_selection_split_larger_than_the_validation_split_is_one_line(tmp_path, capsys):
    assert flow.main(dnn_argv(tmp_path, "--select-images", "5000")) == 2
    err = capsys.readouterr().err.strip()
    assert re.match(r"^error: SELECT_IMAGES 5000 needs that many validation images after the EVAL_IMAGES 60, "
                    r"but the validation split holds \d+: ", err) and "\n" not in err
    assert not (tmp_path / "run").exists()
