"""Multi-pod split choice, DRAM traffic and stalls, block sparsity, energy with PPA, assignments, HAWX."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _accel_runs import array_run, mult_run

from accel_models import assign, networks, sparsity
from accel_models.energy import EnergyParams, Library, load_array, load_multiplier
from accel_models.layers import conv, fc, matmul
from accel_models.memory import MemConfig
from accel_models.model import Accelerator, Evaluation, Hardware
from accel_models.scalesim import ScaleSimConfig, simulate_row
from core.errors import ConfigError


def _perf(layer, **hw):
    return Accelerator(Hardware(**hw)).layer(layer)


# --- pods and splits ----------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [fc("fc", 4096, 64), conv("c", 56, 64, 64, 3), fc("wide", 512, 4096, 8)],
                         ids=["fc_batch1", "conv", "fc_wide"])
def test_auto_split_is_the_fastest(layer):
    auto = _perf(layer, rows=32, cols=32, pods=4)
    each = {s: _perf(layer, rows=32, cols=32, pods=4, split=s).cycles for s in "nmk"}
    assert auto.cycles == min(each.values()) and each[auto.split] == auto.cycles


def test_split_choice_follows_the_layer_shape():
    # one token, few outputs, long reduction: only a K split keeps four pods busy
    assert _perf(fc("fc", 4096, 32), rows=32, cols=32, pods=4).split == "k"
    # many output columns: split them
    assert _perf(fc("fc", 256, 4096), rows=32, cols=32, pods=4).split == "n"


def test_four_pods_beat_one():
    layer = conv("c", 56, 64, 256, 1, pad=0)
    one, four = _perf(layer, rows=32, cols=32), _perf(layer, rows=32, cols=32, pods=4)
    assert four.cycles < one.cycles / 3 and four.macs == one.macs == layer.macs


# --- memory -------------------------------------------------------------------------------------

def test_operand_refetched_only_when_it_does_not_fit():
    layer = fc("fc", 1024, 512, batch=64)  # A = 64 KiB, 4 N panels on a 128-wide array
    big = _perf(layer, rows=128, cols=128, mem=MemConfig(ifmap_kb=64))
    small = _perf(layer, rows=128, cols=128, mem=MemConfig(ifmap_kb=32))
    assert big.dram_a_bytes == 64 * 1024
    assert small.dram_a_bytes == 4 * 64 * 1024


def test_partial_sums_spill_when_the_output_buffer_is_small():
    layer = fc("fc", 1024, 128, batch=512)  # 8 K-tiles; one panel of partial sums: 512 x 128 x 4 B
    fits = _perf(layer, rows=128, cols=128, mem=MemConfig(ofmap_kb=256))
    spills = _perf(layer, rows=128, cols=128, mem=MemConfig(ofmap_kb=64))
    assert (fits.dram_c_read_bytes, fits.dram_c_write_bytes) == (0, 512 * 128)
    assert spills.dram_c_read_bytes == 7 * 512 * 128 * 4


def test_bandwidth_stalls():
    layer = conv("c", 28, 128, 128, 3)
    free = _perf(layer, rows=16, cols=16)
    stalls = [_perf(layer, rows=16, cols=16, mem=MemConfig(dram_bw=bw)) for bw in (1, 4, 64)]
    assert free.stall_cycles == 0 and free.cycles == free.compute_cycles
    assert all(s.compute_cycles == free.compute_cycles for s in stalls)
    assert stalls[0].stall_cycles > stalls[1].stall_cycles > 0
    assert stalls[0].cycles >= math.ceil(stalls[0].dram_bytes / 1)  # one byte per cycle bounds the time


# --- the scalesim model inside the accelerator -----------------------------------------------

def test_scalesim_model_repeats_groups_and_images():
    layer = conv("dw", 16, 8, 8, 3, groups=8, batch=2)
    hw = dict(rows=8, cols=8, cycle_model="scalesim", mem=MemConfig(4, 4, 4))
    perf = _perf(layer, **hw)
    one = simulate_row((18, 18, 3, 3, 1, 1, 1, 1), ScaleSimConfig(8, 8, "ws", 4, 4, 4))
    assert perf.cycles == 16 * one.total_cycles
    assert perf.dram_a_bytes == 16 * one.ifmap_dram_reads
    assert perf.mapping_eff == one.mapping_eff


# --- sparsity -----------------------------------------------------------------------------------

def test_random_masks_hit_the_target_ratio():
    _, layers = networks.load("resnet20")
    masks, method = sparsity.derive(layers, 0.5, 8, "auto", None, seed=3)
    assert method == "random"
    for layer in layers:
        m = masks[layer.name]
        assert m.shape == sparsity.shape(layer, 8)
        assert (~m).sum() == m.shape[0] * int(np.floor(0.5 * m.shape[1] * m.shape[2]))


def test_norm_masks_zero_the_smallest_blocks():
    layer = fc("fc", 16, 16)
    w = np.ones((16, 16))
    w[:8, :8] = 0.01  # PyTorch layout (out, in): block (in 0-7, out 0-7) is the weakest
    w[8:, :8] = 5.0
    masks, method = sparsity.derive([layer], 0.25, 8, "l1", {"fc": w}, seed=0)
    assert method == "l1"
    assert masks["fc"][0].tolist() == [[False, True], [True, True]]


def test_block_sparsity_skips_tiles_and_weight_traffic():
    layer = conv("c", 14, 64, 64, 3)
    dense = _perf(layer, rows=8, cols=8)
    masks, _ = sparsity.derive([layer], 0.5, 8, "random", None, seed=1)
    sparse = Accelerator(Hardware(rows=8, cols=8)).layer(layer, masks["c"])
    # 8x8 blocks on an 8x8 array: every zero block is a skipped tile
    assert sparse.macs == layer.macs // 2
    assert sparse.cycles < 0.6 * dense.cycles
    assert sparse.dram_b_bytes < 0.6 * dense.dram_b_bytes
    assert sparse.weight_density == 0.5


def test_attention_matmuls_stay_dense():
    layer = matmul("scores", 128, 64, 128, groups=12)
    masks, _ = sparsity.derive([layer], 0.5, 8, "random", None, seed=1)
    assert masks == {}


def test_mask_file_shape_is_checked(tmp_path):
    layer = fc("fc", 16, 16)
    np.savez(tmp_path / "m.npz", fc=np.ones((3, 2), dtype=bool))
    with pytest.raises(ConfigError, match=r"^mask of layer fc has shape \(1, 3, 2\), expected \(1, 2, 2\)"):
        sparsity.load(tmp_path / "m.npz", [layer], 8)


# --- energy -------------------------------------------------------------------------------------

def _evaluation(tmp_path, layers, array=None, **hw):
    hw = Hardware(**hw)
    perfs = Accelerator(hw).prepare(layers)
    lib = Library()
    run = mult_run(tmp_path)
    lib.get(str(run))
    return Evaluation(hw, perfs, lib, EnergyParams(), array), str(run)


def test_xai_gen_energy_formula(tmp_path):
    layers = [conv("c", 14, 32, 32, 3)]
    ev, run = _evaluation(tmp_path, layers, rows=8, cols=8, pods=2)
    perf = ev.perfs[0]
    exact_pj = 4.0e-4 * 10.0 * 1e3  # exact.power_w x clock period
    per_pe = exact_pj * (1 + 0.5 + 1.0)
    e = ev.layer_energy({"c": (("exact", 1.0),)})[0]
    assert e.dram_pj == math.ceil(perf.dram_bytes / 8) * 8 * 160.0  # ceil(N_m / R) x E_M, R = 8 rows
    assert e.compute_pj == pytest.approx(sum(perf.pod_busy) * 64 * per_pe)
    approx = ev.layer_energy({"c": ((run, 1.0),)})[0]
    assert approx.compute_pj == pytest.approx(sum(perf.pod_busy) * 64 * (per_pe - exact_pj + 2.0))
    half = ev.layer_energy({"c": (("exact", 0.5), (run, 0.5))})[0]
    assert half.compute_pj == pytest.approx((e.compute_pj + approx.compute_pj) / 2)


def test_array_run_gives_p_pod(tmp_path):
    layers = [conv("c", 14, 32, 32, 3)]
    arr = load_array(array_run(tmp_path, rows=4, cols=4, pods=2, power_w=0.032))
    ev, run = _evaluation(tmp_path, layers, array=arr, rows=8, cols=8)
    per_pe = 0.032 * 10.0 * 1e3 / (2 * 16)  # measured, per PE and cycle
    busy = sum(ev.perfs[0].pod_busy)
    assert ev.layer_energy({"c": (("exact", 1.0),)})[0].compute_pj == pytest.approx(busy * 64 * per_pe)
    swapped = ev.layer_energy({"c": ((run, 1.0),)})[0].compute_pj
    assert swapped == pytest.approx(busy * 64 * (per_pe - 4.0 + 2.0))


def test_array_run_dataflow_must_match(tmp_path):
    arr = load_array(array_run(tmp_path, dataflow="os"))
    with pytest.raises(ConfigError, match=r"is os, but the modelled dataflow is ws$"):
        _evaluation(tmp_path, [fc("f", 8, 8)], array=arr, rows=8, cols=8)


@pytest.mark.parametrize("content,message", [
    (None, r"has no report.json \(no PPA report to read\)$"),
    ({"area": 1.0}, r"report.json lacks power_w, clock_period_ns, exact, which a multiplier PPA report must give$"),
    ({"area": 1.0, "power_w": -1, "clock_period_ns": 10, "exact": {"power_w": 1}},
     r"power_w must be a non-negative number, not -1$"),
], ids=["no_report", "missing_keys", "negative"])
def test_bad_multiplier_run(tmp_path, content, message):
    run = tmp_path / "run"
    run.mkdir()
    if content is not None:
        (run / "report.json").write_text(__import__("json").dumps(content), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_multiplier(run)


# --- assignments --------------------------------------------------------------------------------

def test_assignment_formats(tmp_path):
    run = str(mult_run(tmp_path))
    _, layers = networks.load("lenet5")
    lib = Library()
    data = {"*": "exact", "conv1": run, "conv2": [run] * 4 + ["exact"] * 12,
            "fc3": {"default": run, "filters": {"0": "exact", "1": "exact"}}}
    out = assign.parse(data, layers, lib)
    assert out["conv1"] == ((run, 1.0),)
    assert dict(out["conv2"]) == {run: 0.25, "exact": 0.75}
    assert dict(out["fc3"]) == {"exact": 0.2, run: 0.8}
    assert out["fc1"] == (("exact", 1.0),)


@pytest.mark.parametrize("data,message", [
    ({"conv9": "exact"}, r"^assignment names layer 'conv9', which the network lacks \(layers: conv1, conv2"),
    ({"conv2": ["exact"] * 3}, r"^assignment layer conv2 lists 3 filters, the layer has 16$"),
    ({"fc3": {"filters": {"12": "exact"}}}, r"^assignment layer fc3: filter 12 is outside 0..9$"),
    ({"fc3": 5}, r"^assignment layer fc3: expected a multiplier"),
    ({"conv1": "nowhere/run"}, r"^multiplier run directory nowhere/run does not exist$"),
], ids=["unknown_layer", "filter_count", "filter_index", "bad_type", "missing_run"])
def test_bad_assignment(data, message):
    _, layers = networks.load("lenet5")
    with pytest.raises(ConfigError, match=message):
        assign.parse(data, layers, Library())


def test_fast_reevaluation_agrees_with_the_layer_breakdown(tmp_path):
    _, layers = networks.load("resnet20")
    ev, run = _evaluation(tmp_path, layers, rows=16, cols=16, pods=2)
    a = {layer.name: ((run if i % 2 else "exact", 1.0),) for i, layer in enumerate(layers)}
    energy, seconds = ev.evaluate(a)
    assert energy == pytest.approx(sum(e.total_pj for e in ev.layer_energy(a)))
    assert seconds == pytest.approx(sum(p.cycles for p in ev.perfs) * 10e-9)
    assert energy < ev.evaluate({n: (("exact", 1.0),) for n in ev.names})[0]


def test_hawx_costs(tmp_path):
    run = str(mult_run(tmp_path, area=5000.0))
    layers = [fc("a", 64, 32), fc("b", 32, 16)]
    lib = Library()
    lib.get(run)
    params = EnergyParams()
    asg = {"a": ((run, 1.0),), "b": (("exact", 0.5), (run, 0.5))}
    h = assign.hawx(layers, asg, lib, params, pes=4, simd=16)
    base = params.pe_other_area_um2
    assert h["spatial"]["area_um2"] == pytest.approx(64 * (5000 + base) + 64 * (0.5 * (15000 + base)
                                                                            + 0.5 * (5000 + base)))
    assert h["spatial"]["latency_cycles"] == 2048 // 64 + 512 // 64
    assert h["spatial"]["interval_cycles"] == 2048 // 64
    assert h["temporal"]["vectors"] == sorted(["exact", run])
    assert h["temporal"]["area_um2"] == pytest.approx(64 * (5000 + base) + 64 * (15000 + base))
    assert h["temporal"]["cycles"] == 2048 // 64 + 256 // 64 + 256 // 64
    e_base = 1.5 * lib.exact.energy_pj
    assert h["spatial"]["energy_pj"] == pytest.approx((2048 + 256) * (2.0 + e_base) + 256 * (4.0 + e_base))


# --- the interface of the DNN search ------------------------------------------------------------

def test_api_evaluator_from_a_run_config(tmp_path):
    from accel_models.api import Evaluator, load_config

    run = str(mult_run(tmp_path))
    conf = tmp_path / "config.json"
    conf.write_text(__import__("json").dumps({"command": "accel", "settings": {"net": "lenet5", "array": "8x8",
                                               "pods": 2, "assign": None}, "tools": {}, "packages": {},
                                               "git_revision": "x"}), encoding="utf-8")
    ev = Evaluator(conf, multipliers=(run,))
    exact = ev.evaluate({})
    approx = ev.evaluate({"*": run})
    assert approx[0] < exact[0] and approx[1] == exact[1]
    assert ev.multiplier(run).area == 9000.0
    with pytest.raises(ConfigError, match=r"has unknown key 'arrays' \(valid keys: "):
        load_config({"arrays": "8x8"})
    late = Evaluator({"net": "lenet5", "array": "8x8"})
    with pytest.raises(ConfigError, match=r"was not known when the evaluation was built"):
        late.evaluate({"*": str(mult_run(tmp_path, name="late"))})


def test_api_evaluator_takes_the_callers_layers():
    from accel_models.api import Evaluator

    ev = Evaluator({"array": "4x4"}, layers=[fc("head", 16, 4)])
    assert [p.layer.name for p in ev.evaluation.perfs] == ["head"]
