"""The heuristics' assignment search (``--method xai hawx``): the path along the lower convex hull of
(total score, energy), the boundary search along it, and the scores it stands on."""

from __future__ import annotations

import itertools
import random

import pytest

torch = pytest.importorskip("torch")

from _dnn_runs import small_lenet_and_runs  # noqa: E402

from dnn import cli, cost, mults, search, sensitivity  # noqa: E402
from dnn.cost import Cost  # noqa: E402


def _totals(items, picks):
    return (sum(next(o for o in opts if o[0] == m)[1] for opts, m in zip(items, picks)),
            sum(next(o for o in opts if o[0] == m)[2] for opts, m in zip(items, picks)))


def _walk(items):
    current = search.first_options(items)
    yield list(current)
    for k, m in search.upgrades(items):
        current[k] = m
        yield list(current)


@pytest.mark.parametrize("seed", range(6))
def test_the_path_walks_the_lower_convex_hull(seed):
    rng = random.Random(seed)
    items = [[(0, 0.0, 10.0)] + [(m, rng.uniform(0, 5), rng.uniform(0, 12)) for m in range(1, 4)]
             for _ in range(4)]
    points = {tuple(p): _totals(items, p) for p in itertools.product(range(4), repeat=4)}
    walk = [_totals(items, p) for p in _walk(items)]
    assert walk[0][0] == min(s for s, _ in points.values())
    assert walk[-1][1] == pytest.approx(min(e for _, e in points.values()))  # ends at the least energy
    for (s1, e1), (s2, e2) in itertools.pairwise(walk):
        assert s2 >= s1 and e2 < e1  # every step adds score and saves energy
    low = min(points.values())
    for (s1, e1), (s2, e2) in itertools.pairwise(walk):  # each step is an edge of the lower convex hull:
        lam = (e1 - e2) / (s2 - s1)  # at its own price both ends minimise energy + price x score
        floor = min(pe + lam * ps for ps, pe in points.values())
        assert e1 + lam * s1 == pytest.approx(floor) and e2 + lam * s2 == pytest.approx(floor)
    assert walk[0] == pytest.approx(low)


def test_dominated_options_are_never_taken():
    items = [[(0, 0.0, 10.0), (1, 1.0, 4.0), (2, 2.0, 6.0), (3, 3.0, 5.0)],  # 2 and 3 cost more than 1
             [(0, 0.0, 10.0), (1, 1.0, 9.0), (2, 2.0, 2.0)]]  # 1 is above the chord from 0 to 2
    assert search.upgrades(items) == [(0, 1), (1, 2)]  # 6 saved per unit of score, then 4
    assert search.first_options(items) == [0, 0]


class _Accuracy:
    """An evaluator over a path of integers: accuracy falls by 0.01 per step, the budget is given."""

    def __init__(self, accuracy):
        self.accuracy = accuracy
        self.calls = []

    def __call__(self, choice, method):
        self.calls.append(choice)
        return search.Result(choice, self.accuracy(choice), Cost(energy_pj=-float(choice), area=0.0), method,
                             len(self.calls))


@pytest.mark.parametrize("last_ok", [0, 1, 7, 19, 20])
def test_the_boundary_search_finds_the_last_step_within_budget(last_ok):
    path = list(range(21))
    ev = _Accuracy(lambda c: 1.0 - (0.0 if c <= last_ok else 0.5))
    seen = search.boundary(ev, path, 1.0, 0.01, "hawx")
    best = search.best(seen, 1.0, 0.01)
    assert best is not None and best.choice == last_ok
    assert len(ev.calls) <= 6  # the last first, then log2(21) halvings


# ------------------------------------------------------------------ on a real network
@pytest.fixture(scope="module")
def net(tmp_path_factory):
    torch.set_num_threads(1)
    model, d, runs = small_lenet_and_runs(tmp_path_factory.mktemp("mults"))
    cands = mults.load_all(runs)
    ev = search.Evaluator(model, d.x_test[:120], d.y_test[:120], cands, cost.MultiplierCost(cands),
                          cli._macs(model, d))
    return model, d, ev


def test_hawx_scores_add_up_over_filters(net):
    model, d, ev = net
    scores = sensitivity.hawx(model, d.x_train[:16], d.y_train[:16], ev.mults)
    for name, per in scores.layers.items():
        for m, v in enumerate(per):
            assert v == pytest.approx(float(scores.filters[name][m].sum()))
        assert per[0] == 0.0 and 0 < per[1] < per[2]


def test_deviation_is_relative_and_ranks_multipliers(net):
    model, d, ev = net
    dev = sensitivity.deviation(model, d.x_train[:16], ev.mults)
    assert set(dev) == set(ev.names)
    for name, per in dev.items():
        assert per[0] == 0.0 and 0 < per[1] < per[2] < 1.0, name  # ba3 disturbs less than ba6


@pytest.mark.parametrize("granularity", ["layer", "filter"])
def test_hawx_stops_at_a_boundary_of_its_path(net, granularity):
    """The answer is feasible and the next assignment along the path is not (or there is none)."""
    model, d, ev = net
    baseline = ev(ev.exact(), "baseline").accuracy
    budget = 0.02
    scores = sensitivity.hawx(model, d.x_train[:16], d.y_train[:16], ev.mults)
    seen = search.hawx(ev, scores, baseline, budget, granularity)
    best = search.best(seen, baseline, budget)
    assert best is not None
    path = search._layer_path(ev, lambda n, m: scores.layers[n][m]) if granularity == "layer" else None
    if path is not None:
        i = list(path).index(best.choice)
        assert i == len(path) - 1 or not search.feasible(ev(path[i + 1], "check"), baseline, budget)
    assert len({r.choice for r in seen}) <= 2 + (len(ev.names) * 2 * (1 if granularity == "layer" else 120)
                                                 ).bit_length()


def test_xai_uses_importance_and_deviation(net):
    model, d, ev = net
    baseline = ev(ev.exact(), "baseline").accuracy
    scores = sensitivity.xai(model, d.x_train[:8], d.y_train[:8], ev.mults, steps=4)
    assert max(scores.importance.values()) == 1.0
    seen = search.xai(ev, scores, baseline, 0.02)
    best = search.best(seen, baseline, 0.02)
    assert best is not None and best.cost.energy_pj < ev.cost(ev.exact()).energy_pj


def test_the_layer_energies_are_costed_once_per_evaluator(net):
    """XAI-Gen and HAWX both walk paths over :func:`search.energies`: the cost model (accel_models with
    --accel, seconds a call on a large network) is asked for each layer and multiplier once."""
    model, _, ev = net
    calls = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner
            self.name = inner.name

        def cost(self, usage, assign):
            calls.append(1)
            return self.inner.cost(usage, assign)

    counted = search.Evaluator(model, ev.x, ev.y, ev.mults, Counting(ev.costs), ev.macs)
    first = search.energies(counted)
    assert len(calls) == 1 + len(ev.names) * (len(ev.mults) - 1)
    assert search.energies(counted) is first and len(calls) == 1 + len(ev.names) * (len(ev.mults) - 1)
    assert first == search.energies(ev)
