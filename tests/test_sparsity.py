"""Block sparsity: masks by norm, per-layer ratios, the mask in every forward pass and through retraining,
LUT inference that skips zero blocks bit for bit, masks read by the accelerator model, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _dnn_runs import dnn_argv  # noqa: E402

from core import golden  # noqa: E402
from core.errors import ConfigError  # noqa: E402
from dnn import fixtures, lutops, models, qnn, sparsity  # noqa: E402
from dnn.data import Data  # noqa: E402
from dnn.mults import Multiplier  # noqa: E402

EXACT = golden.table(8, 8, True)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _mult(kind: str) -> Multiplier:
    lut = {"exact": EXACT, "ba3": fixtures.broken_array(3), "random": fixtures.lut_error(7, 40),
           "biased": fixtures.lut_error(8, 40, zero_exact=False)}[kind]
    return Multiplier(kind, lut, True)


def _lenet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.build("lenet5", 1, 28, 10)


def _tiny_data(n: int = 64) -> Data:
    g = torch.Generator().manual_seed(3)
    x = torch.rand((n, 1, 28, 28), generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return Data("tiny", x, y, x[:16], y[:16], 10, "tiny")


# ------------------------------------------------------------------ masks by norm
@pytest.mark.parametrize("norm", sparsity.NORMS)
def test_scores_rank_blocks_by_norm(norm):
    w = np.zeros((4, 4, 3, 3))
    rng = np.random.default_rng(1)
    w[:2, :2] = rng.normal(0, 0.01, (2, 2, 3, 3))  # the weakest block
    w[:2, 2:] = rng.normal(0, 1.0, (2, 2, 3, 3))
    w[2:, :2] = rng.normal(0, 2.0, (2, 2, 3, 3))
    w[2:, 2:] = rng.normal(0, 3.0, (2, 2, 3, 3))
    s = sparsity.block_scores(w, 2, norm)
    blocks = w.reshape(2, 2, 2, 2, 9).transpose(0, 2, 1, 3, 4).reshape(2, 2, -1)
    want = {"l1": np.abs(blocks).mean(-1), "l2": np.sqrt((blocks ** 2).mean(-1)), "var": blocks.var(-1)}[norm]
    assert np.allclose(s, want)
    assert np.argmin(s) == 0


def test_edge_blocks_scored_on_their_own_weights():
    w = np.ones((3, 5))
    s = sparsity.block_scores(w, 2, "var")
    assert s.shape == (2, 3) and np.allclose(s, 0.0)  # a padded edge block would show variance
    assert np.allclose(sparsity.block_scores(w, 2, "l1"), 1.0)  # per weight: edge blocks are not preferred


def test_derive_zeroes_lowest_blocks_at_ratio():
    model = _lenet()
    fc1 = dict(qnn.qlayers(model))["fc1"]
    masks = sparsity.derive(model, {"fc1": 0.5}, block=8, norm="l2")
    m = masks["fc1"]
    assert m.shape == (15, 50)
    assert (~m).sum() == int(np.floor(0.5 * m.size))
    s = sparsity.block_scores(fc1.fc.weight.detach().numpy(), 8, "l2")
    assert s[~m].max() <= s[m].min()


# ------------------------------------------------------------------ ratios per layer, first layer excluded
def test_ratio_per_layer_and_first_layer_excluded():
    names = [n for n, _ in qnn.qlayers(_lenet())]
    r = sparsity.ratios(names, 0.5, {"fc2": 0.25})
    assert r == {"conv2": 0.5, "fc1": 0.5, "fc2": 0.25, "fc3": 0.5}


def test_first_layer_masked_when_not_excluded():
    names = [n for n, _ in qnn.qlayers(_lenet())]
    assert "conv1" in sparsity.ratios(names, 0.5, exclude=())


# ------------------------------------------------------------------ the mask in the forward pass
def test_forward_applies_mask_in_every_mode():
    model = _lenet()
    data = _tiny_data()
    from dnn import train

    train.calibrate(model, data, 32)
    masks = sparsity.derive(model, {"conv2": 0.5, "fc1": 0.5}, block=8)
    sparsity.apply(model, masks, 8)
    conv2 = dict(qnn.qlayers(model))["conv2"]
    assert sparsity.zeros_kept(model)
    x = data.x_test[:4]
    with torch.no_grad():
        conv2.conv.weight.add_(1.0)  # revive the zeroed weights in storage: Gamma * W must still drop them
    for mode in ("float", "qat"):
        qnn.set_mode(model, mode)
        got = model(x)
        ref_model = _lenet()
        ref_model.load_state_dict({k: v for k, v in model.state_dict().items() if "weight_mask" not in k})
        qnn.set_mode(ref_model, mode)
        with torch.no_grad():
            for n, layer in qnn.qlayers(ref_model):
                src = dict(qnn.qlayers(model))[n]
                if src.weight_mask is not None:
                    w = layer.raw_weight()
                    w.mul_(src._gamma(w))
        assert torch.allclose(got, ref_model(x))


def test_retraining_keeps_zeros_and_changes_kept_weights():
    model = _lenet()
    data = _tiny_data()
    qnn.set_mode(model, "float")
    masks = sparsity.derive(model, sparsity.ratios([n for n, _ in qnn.qlayers(model)], 0.5), block=8)
    sparsity.apply(model, masks, 8)
    before = dict(qnn.qlayers(model))["fc1"].fc.weight.detach().clone()
    sparsity.retrain(model, data, 1, 1e-2, 16, seed=1)
    after = dict(qnn.qlayers(model))["fc1"].fc.weight.detach()
    assert sparsity.zeros_kept(model)
    assert not torch.equal(before, after)


def test_qat_and_approximate_finetuning_keep_mask():
    from dnn import train

    model = _lenet()
    data = _tiny_data()
    train.calibrate(model, data, 32)
    sparsity.apply(model, sparsity.derive(model, {"fc1": 0.5, "conv2": 0.5}, block=8), 8)
    qnn.set_mode(model, "qat")
    sparsity.retrain(model, data, 1, 1e-2, 16, seed=1)
    assert sparsity.zeros_kept(model)
    qnn.assign(model, qnn.uniform(model, _mult("biased")))
    qnn.set_mode(model, "lut")
    train.finetune(model, data, 1, 1e-2, 16, 1, data.x_test[:8], data.y_test[:8])
    assert sparsity.zeros_kept(model)


# ------------------------------------------------------------------ LUT inference skips zero blocks
def _kept(o: int, c: int, block: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.random((-(-o // block), -(-c // block))) < 0.5
    m.flat[0] = True
    return sparsity.expand(m, block, o, c)


def _both_gathers(prep: lutops.Prepared, kept: np.ndarray, k_per_c: int) -> list[lutops.Prepared]:
    """The layer with the dense gather over zeroed rows and with the sparse gather, whichever prepare chose."""
    if prep.plan.kind != "gather":
        return [prep]
    sparse = lutops._sparse_gather(lutops.channel_runs(kept), prep.err_table, k_per_c)
    return [dataclasses.replace(prep, sparse_gather=None), dataclasses.replace(prep, sparse_gather=sparse)]


SKIP_CASES = [
    # kind, (lo, hi), N, C, H, O, kernel, stride, padding, block
    ("exact", (-128, 127), 2, 8, 7, 12, 3, 1, 1, 4),
    ("ba3", (0, 127), 2, 6, 8, 16, 5, 1, 2, 4),
    ("random", (0, 127), 2, 9, 7, 20, 3, 2, 1, 4),
    ("biased", (-128, 127), 1, 8, 6, 17, 3, 1, 0, 2),
    ("biased", (0, 127), 2, 16, 6, 40, 3, 1, 1, 8),
    ("random", (0, 127), 1, 8, 5, 12, 3, 1, 0, 4),  # 9 output positions: an odd tile of half runs
]


@pytest.mark.parametrize("case", SKIP_CASES, ids=lambda c: f"{c[0]}-c{c[3]}-o{c[5]}-k{c[6]}-b{c[9]}")
def test_lut_conv_skip_is_bit_exact(case):
    kind, (lo, hi), n, c, h, o, k, stride, pad, block = case
    rng = np.random.default_rng(4)
    m = _mult(kind)
    kept = _kept(o, c, block, 5)
    x = rng.integers(lo, hi + 1, size=(n, c, h, h))
    x[rng.random(x.shape) < 0.5] = 0
    w = rng.integers(-127, 128, size=(o, c, k, k)) * kept[:, :, None, None]
    g = torch.zeros(o, dtype=torch.long)
    ref = lutops.reference_acc(x, w, (m,), g.numpy(), a_lo=lo, a_hi=hi, stride=stride, padding=pad, kept=kept)
    for prep in _both_gathers(lutops.prepare(torch.from_numpy(w), (m,), g, lo, hi, kept=kept), kept, k * k):
        got = lutops.conv2d_apply(prep, torch.from_numpy(x).float(), stride=stride, padding=pad)
        assert np.array_equal(got.double().numpy(), ref.astype(np.float64))
    if kind != "biased":  # T[a, 0] = 0: skipping equals the dense reference on the masked weights
        dense = lutops.reference_acc(x, w, (m,), g.numpy(), a_lo=lo, a_hi=hi, stride=stride, padding=pad)
        assert np.array_equal(ref, dense)


@pytest.mark.parametrize("kind", ["exact", "ba3", "random", "biased"])
def test_lut_linear_skip_is_bit_exact(kind):
    rng = np.random.default_rng(6)
    m = _mult(kind)
    kept = _kept(24, 40, 8, 7)
    x = rng.integers(-128, 128, size=(5, 40))
    w = rng.integers(-127, 128, size=(24, 40)) * kept
    g = torch.zeros(24, dtype=torch.long)
    ref = lutops.reference_acc(x, w, (m,), g.numpy(), a_lo=-128, a_hi=127, kept=kept)
    for prep in _both_gathers(lutops.prepare(torch.from_numpy(w), (m,), g, -128, 127, kept=kept), kept, 1):
        got = lutops.linear_apply(prep, torch.from_numpy(x).float())
        assert np.array_equal(got.double().numpy(), ref.astype(np.float64))
    if kind != "biased":
        assert np.array_equal(ref, lutops.reference_acc(x, w, (m,), g.numpy(), a_lo=-128, a_hi=127))


@pytest.mark.parametrize("kind", ["ba3", "biased"])
def test_sparse_network_lut_matches_reference_backend(kind):
    from dnn import train

    model = _lenet()
    data = _tiny_data()
    train.calibrate(model, data, 32)
    qnn.set_mode(model, "qat")
    sparsity.apply(model, sparsity.derive(model, {"conv2": 0.5, "fc1": 0.5, "fc2": 0.5}, block=8), 8)
    qnn.assign(model, qnn.uniform(model, _mult(kind)))
    outs = []
    with torch.no_grad():
        for backend in ("fast", "reference"):
            qnn.set_mode(model, "lut", backend=backend)
            outs.append(model(data.x_test[:3]))
    assert torch.equal(*outs)


# ------------------------------------------------------------------ masks for the accelerator model
def test_accel_reads_masks_of_the_trained_network(tmp_path):
    from accel_models import networks
    from accel_models import sparsity as accel_sparsity

    model = _lenet()
    masks = sparsity.derive(model, sparsity.ratios([n for n, _ in qnn.qlayers(model)], 0.5), block=8)
    sparsity.apply(model, masks, 8)
    sparsity.save(tmp_path / "masks.npz", model)
    _, layers = networks.load("lenet5")
    got = accel_sparsity.load(tmp_path / "masks.npz", layers, 8)
    assert sorted(got) == ["conv2", "fc1", "fc2", "fc3"]
    by_name = {layer.name: layer for layer in layers}
    for name, layer in qnn.qlayers(model):
        if name not in got:
            continue
        w = sparsity.weight(layer).numpy()
        zero = accel_sparsity.block_scores(accel_sparsity.weight_matrix(by_name[name], w), 8, "l1") == 0
        # a block the accelerator keeps holds a kept weight; one it drops holds none
        assert np.array_equal(~got[name], zero | ~got[name])
        kept_w = accel_sparsity.kept_weights(got[name], by_name[name], 8)[0]
        assert kept_w == int(layer.weight_mask.reshape(layer.weight_mask.shape[0], -1).sum()) * (
            w[0].size // layer.weight_mask.shape[1])


def test_flow_accel_masks_cut_cycles(tmp_path):
    from accel_models.evaluation import AccelConfig, evaluate

    model = _lenet()
    sparsity.apply(model, sparsity.derive(model, sparsity.ratios([n for n, _ in qnn.qlayers(model)], 0.5),
                                          block=8), 8)
    sparsity.save(tmp_path / "masks.npz", model)
    dense = evaluate(AccelConfig(net="lenet5", array="8x8"))
    sparse = evaluate(AccelConfig(net="lenet5", array="8x8", masks=tmp_path / "masks.npz"))
    assert sparse.perfs[0].layer.name == "conv1"
    assert sparse.perfs[0].cycles == dense.perfs[0].cycles  # the first layer stays dense
    for s, d in zip(sparse.perfs[1:], dense.perfs[1:]):
        assert s.macs < d.macs and s.cycles < d.cycles and s.dram_b_bytes < d.dram_b_bytes


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5], ids=["neg", "one", "above"])
def test_ratio_outside_range_refused(ratio):
    with pytest.raises(ConfigError, match=r"^SPARSITY_RATIO must be in \[0, 1\), not "):
        sparsity.ratios(["a", "b"], ratio)


def test_block_below_one_refused():
    with pytest.raises(ConfigError, match=r"^SPARSITY_BLOCK must be a positive integer, not 0$"):
        sparsity.derive(_lenet(), {"fc1": 0.5}, block=0)


def test_block_larger_than_layer_names_layer():
    with pytest.raises(ConfigError, match=r"^SPARSITY_BLOCK must be at most 84 for layer fc3 \(10 output x 84 "
                                          r"input channels\), not 100$"):
        sparsity.derive(_lenet(), {"fc3": 0.5}, block=100)


def test_mask_shape_mismatch_refused():
    model = _lenet()
    with pytest.raises(ConfigError, match=r"^mask of layer fc1 must have shape \(15, 50\) for 8x8 blocks, not "
                                          r"\(15, 49\)$"):
        sparsity.apply(model, {"fc1": np.ones((15, 49), bool)}, 8)
    assert dict(qnn.qlayers(model))["fc1"].weight_mask is None


def test_mask_of_unknown_layer_refused():
    with pytest.raises(ConfigError, match=r"^masks name layer 'fc9', which the network lacks"):
        sparsity.apply(_lenet(), {"fc9": np.ones((1, 1), bool)}, 8)


def test_masked_layer_in_exclusion_list_refused():
    with pytest.raises(ConfigError, match=r"^layer conv1 is given sparsity ratio 0.5 but is in the exclusion list"):
        sparsity.ratios(["conv1", "fc"], 0.5, {"conv1": 0.5})


# ------------------------------------------------------------------ flow.py dnn --sparsity-ratios
def test_flow_dnn_joint_search(tmp_path):
    import flow

    assert flow.main(dnn_argv(tmp_path, "--sparsity-ratios", "0", "0.5", "--sparsity-block", "4",
                               "--sparsity-epochs", "1")) == 0
    run = tmp_path / "run"
    rep = json.loads((run / "report.json").read_text())["sparsity"]
    assert [t["ratio"] for t in rep["table"]] == [0.0, 0.5]
    sparse = rep["table"][1]
    assert sparse["layer_ratios"] == {"conv2": 0.5, "fc1": 0.5, "fc2": 0.5, "fc3": 0.5}
    assert sparse["density"]["conv1"] == 1.0 and all(v < 0.75 for k, v in sparse["density"].items() if k != "conv1")
    # skipped blocks cost nothing: the sparse exact network costs its kept MACs only
    macs = json.loads((run / "report.json").read_text())["macs"]
    assert rep["table"][0]["exact_energy_pj"] == pytest.approx(sum(macs.values()))  # 1 pJ per exact product
    assert sparse["exact_energy_pj"] == pytest.approx(sum(n * sparse["density"][k] for k, n in macs.items()),
                                                      abs=len(macs))
    with np.load(run / "sparsity" / "r0.5" / "masks.npz") as m:
        assert sorted(m.files) == ["conv2", "fc1", "fc2", "fc3"]
    ch = rep["chosen"]
    assert ch is not None and ch["ratio"] in (0.0, 0.5)
    assert "Block sparsity" in (run / "report.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (("--sparsity-ratios", "0.5", "1.0"), "SPARSITY_RATIOS must be in [0, 1), not 1.0"),
    (("--sparsity-ratios", "0.5", "--sparsity-block", "0"), "SPARSITY_BLOCK must be a positive integer, not 0"),
    (("--sparsity-ratios", "0.5", "--sparsity-block", "200"), "SPARSITY_BLOCK must be at most 16 for layer conv2 (16 output x 6 input channels), not 200"),
    (("--sparsity-ratios", "0.5", "--sparsity-exclude", "conv9"), "SPARSITY_EXCLUDE must be layers of the network"),
], ids=["ratio", "block0", "block-large", "exclude"])
def test_flow_dnn_sparsity_bad_input(tmp_path, capsys, extra, message):
    import flow

    assert flow.main(dnn_argv(tmp_path, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_flow_dnn_per_layer_ratios(tmp_path):
    """After the uniform ratios, mixes raise one layer at a time from the cheapest uniform set with an
    answer: each mix differs from the set it grew from in one layer, zeroes other blocks than it (no
    network retrained twice), and the joint answer is the cheapest of all."""
    import flow

    assert flow.main(dnn_argv(tmp_path, "--sparsity-ratios", "0", "0.25", "0.5", "0.75", "--sparsity-block", "4",
                              "--sparsity-epochs", "1")) == 0
    run = tmp_path / "run"
    rep = json.loads((run / "report.json").read_text())["sparsity"]
    uniform = [t for t in rep["table"][1:] if len(set(t["layer_ratios"].values())) == 1
               and set(t["layer_ratios"].values()) == {t["ratio"]}]
    assert [t["ratio"] for t in uniform] == [0.25, 0.5, 0.75]
    mixes = rep["table"][1 + len(uniform):]
    with_answer = [t for t in uniform if t["best"] is not None]
    if with_answer:
        start = min(with_answer, key=lambda t: t["best"]["energy_pj"])
        previous = start["layer_ratios"]
        for t in mixes:
            assert t["ratio"] == start["ratio"]
            raised = [n for n in t["layer_ratios"] if t["layer_ratios"][n] != previous[n]]
            assert len(raised) == 1 and t["layer_ratios"][raised[0]] > previous[raised[0]]
            if t["best"] is not None and t["best"]["energy_pj"] < start["best"]["energy_pj"]:
                previous = t["layer_ratios"]
    else:
        assert mixes == []
    dirs = [d for d in (run / "sparsity").iterdir() if d.is_dir()]
    assert len(dirs) == len(rep["table"]) - 1
    masks = []
    for d in dirs:
        with np.load(d / "masks.npz") as m:
            masks.append({k: m[k].tobytes() for k in m.files})
    assert len({json.dumps({k: v.hex() for k, v in m.items()}, sort_keys=True) for m in masks}) == len(masks)
    bests = [t["best"]["energy_pj"] for t in rep["table"] if t["best"] is not None]
    if rep["chosen"] is not None:
        assert rep["chosen"]["energy_pj"] == min(bests)


def test_per_layer_raises_one_layer_at_a_time_while_cheaper():
    """The greedy over layer ratios (retraining replaced by an energy of kept MACs, fc1 losing the budget
    above 0.5): from the cheapest uniform set, layers of most MACs first, a mix that zeroes the same
    blocks is not retrained (conv2 has 2 blocks: 0.75 zeroes the one 0.5 does), a layer stops at its first
    dearer or failed mix, and an accepted raise is kept for the next layers."""
    from types import SimpleNamespace

    from dnn import joint

    model = _lenet()
    qnn.set_mode(model, "qat")
    macs = {"conv1": 117600, "conv2": 240000, "fc1": 48000, "fc2": 10080, "fc3": 840}

    def answer(layer_ratios):
        if layer_ratios.get("fc1", 0) > 0.5:
            return None
        energy = sum(m * (1 - layer_ratios.get(n, 0.0)) for n, m in macs.items())
        return SimpleNamespace(cost=SimpleNamespace(energy_pj=energy, area=1.0), accuracy=0.9)

    class Greedy(joint._Joint):
        def ratio_set(self, r, layer_ratios):
            self.calls.append(dict(layer_ratios))
            b = answer(layer_ratios)
            row = {"ratio": r, "layer_ratios": dict(layer_ratios)}
            if b is not None:
                self.candidates.append(("mix", b, None, row))
            return b

    conf = SimpleNamespace(sparsity_block=8, sparsity_norm="l2")
    j = Greedy(conf, model, None, SimpleNamespace(macs=macs), [], 0.9, Path("."), lambda _m: None)
    j.calls = []
    names = list(macs)
    for r in (0.25, 0.5):
        lr = sparsity.ratios(names, r)
        j.candidates.append((f"r{r:g}", answer(lr), None, {"ratio": r, "layer_ratios": lr}))
    joint._per_layer(j, [0.25, 0.5, 0.75])
    half = sparsity.ratios(names, 0.5)
    assert j.calls == [{**half, "fc1": 0.75}, {**half, "fc2": 0.75}, {**half, "fc2": 0.75, "fc3": 0.75}]


def test_flow_dnn_joint_search_finetunes_in_the_loop(tmp_path):
    """--finetune-in-loop applies to each ratio's network as to the dense one, and the joint answer and the
    approximation-only one are judged on the fine-tuned accuracies where there are any."""
    import flow

    argv = dnn_argv(tmp_path, "--sparsity-ratios", "0", "0.5", "--sparsity-block", "4", "--sparsity-epochs", "1",
                    "--finetune-in-loop", "2", "--max-acc-loss", "0.01")
    for opt, value in (("--epochs", "4"), ("--train-limit", "1000"), ("--finetune-epochs", "1")):
        argv[argv.index(opt) + 1] = value
    assert flow.main(argv) == 0
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    sparse = rep["sparsity"]["table"][1]
    assert 1 <= sparse["finetuned_in_loop"] <= 2 and rep["finetuned_in_loop"] <= 2
    chosen = rep["sparsity"]["chosen"]
    if chosen is not None and chosen["ratio"] > 0:
        assert (tmp_path / "run" / "sparsity" / "masks.npz").is_file()
