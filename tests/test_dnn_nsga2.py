"""NSGA-II assignment search (``--method nsga2``): deterministic per seed, within the budget, no worse
than the heuristics it is seeded with, and against exhaustive search on a space small enough to enumerate."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deap")

from _dnn_runs import small_lenet_and_runs  # noqa: E402

from dnn import cli, cost, mults, search, sensitivity  # noqa: E402

BUDGET = 0.02


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """LeNet-5 trained briefly on digits, the fixture multipliers' run directories and 120 test images."""
    torch.set_num_threads(1)
    model, d, runs = small_lenet_and_runs(tmp_path_factory.mktemp("mults"))
    return model, d, runs


def _evaluator(net, runs):
    model, d, _ = net
    cands = mults.load_all(runs)
    ev = search.Evaluator(model, d.x_test[:120], d.y_test[:120], cands, cost.MultiplierCost(cands),
                          cli._macs(model, d))
    return ev, ev(ev.exact(), "baseline").accuracy


def test_nsga2_is_deterministic_per_seed(net):
    runs = net[2]
    out = []
    for _ in range(2):
        ev, _ = _evaluator(net, runs)
        seen = search.nsga2(ev, [], generations=3, population=8, seed=7)
        out.append([(r.choice, r.accuracy, r.cost.energy_pj) for r in seen])
    assert out[0] == out[1]
    ev, _ = _evaluator(net, runs)
    other = [(r.choice, r.accuracy, r.cost.energy_pj) for r in search.nsga2(ev, [], 3, 8, seed=8)]
    assert other != out[0]


def test_nsga2_keeps_budget_and_beats_its_seeds(net):
    model, d, runs = net
    ev, baseline = _evaluator(net, runs)
    scores = sensitivity.hawx(model, d.x_train[:16], d.y_train[:16], ev.mults)
    hawx = search.best(search.hawx(ev, scores, baseline, BUDGET, "layer"), baseline, BUDGET)
    assert hawx is not None
    seen = search.nsga2(ev, [hawx.choice], generations=4, population=12, seed=1)
    assert seen[0].choice == hawx.choice  # the seed is the first individual
    front = search.pareto(list({r.choice: r for r in seen}.values()))
    chosen = search.best(front, baseline, BUDGET)
    assert chosen is not None and baseline - chosen.accuracy <= BUDGET + 1e-12
    assert chosen.cost.energy_pj <= hawx.cost.energy_pj


def test_nsga2_finds_the_exhaustive_answer_on_a_small_space(net):
    runs = net[2][1:]  # exact and ba6 on five layers: 32 assignments
    ev, baseline = _evaluator(net, runs)
    seen = search.nsga2(ev, [], generations=6, population=8, seed=3)
    distinct = list({r.choice: r for r in seen}.values())
    assert len(distinct) < 32  # it finds the answer without enumerating the space (22 of 32 here)
    everything = search.exhaustive(ev, max_evals=32)
    truth = search.best(search.pareto(everything), baseline, BUDGET)
    found = search.best(search.pareto(distinct), baseline, BUDGET)
    assert truth is not None and found is not None
    assert found.cost.energy_pj == pytest.approx(truth.cost.energy_pj)
    # every point of the exhaustive Pareto set NSGA-II evaluated is on its own Pareto set too
    ours = {r.choice for r in search.pareto(distinct)}
    assert {r.choice for r in search.pareto(everything) if r.choice in {s.choice for s in distinct}} <= ours
