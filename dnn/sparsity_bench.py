"""Block-sparsity benchmarks (``flow.py bench --suite sparsity``; also part of the ``dnn`` suite).

``accuracy``   Table I's shape: exact INT8 test accuracy of LeNet-5 / MNIST (full mode: also ResNet-20 /
               Fashion-MNIST) per ratio of zero 8x8 blocks (first layer dense), after pruning and after
               retraining with the masks fixed, against the dense network.
``lut_speed``  LUT inference time of the 50 % block-sparse network against the same network run dense
               (the same masked weights, no block skipped), on the same multiplier, one thread.
``kernel_speed`` where that time goes: per 3x3 layer of ResNet-20 (one of each width), the dense gather
               kernel, the same kernel on half the filters (what halving the lanes alone saves) and the
               block-sparse kernel, on the layer's own tables and inputs.
``joint``      ``flow.py dnn --sparsity-ratios 0 0.25 0.5 0.75`` (uniform ratios, then mixes of layer ratios
               from the cheapest one) on LeNet-5 / MNIST at <= 1 % loss: multiplier
               energy of the joint answer against the best approximation-only assignment of the same search,
               with accelerator energy and time from ``accel_models``.

Retraining runs on the shared CPUs, so epochs are few (``EPOCHS``, ``RESNET_RETRAIN``); the rows say how
many. ResNet-20 is the network ``flow.py dnn --net resnet20 --data fashion --train-limit 60000 --epochs 8``
trains, from the same cache: the full benchmark trains it when it is not cached (8 + 1 epochs on 59,000
images).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from core.bench import row
from core.run import runs_root

CACHE = runs_root() / "dnn" / "models"
EPOCHS = 3  # retraining epochs per ratio (float, then one QAT epoch; masks fixed)
# ResNet-20 / Fashion-MNIST as `flow.py dnn --net resnet20 --data fashion --train-limit 60000 --epochs 8`
# trains it (the same cached network: 59,000 training images, 1,000 held out as the validation split)
RESNET_TRAIN = 60000
RESNET_EPOCHS = 8
RESNET_VAL = 1000
RESNET_RETRAIN = 3  # float epochs of retraining with the masks fixed
BLOCK = 8
REPS = 15  # paired rounds of the LUT timing
JOINT_RATIOS = (0.0, 0.25, 0.5, 0.75)
FINETUNE_IN_LOOP = 2  # fine-tunes of the dense search and of each ratio set's (the same search on both)
FINETUNE_EPOCHS = 1


def _data(name: str, train_limit: int, held_out: int) -> Any:
    """A data set as ``flow.py dnn`` holds it: ``held_out`` training images set aside as the validation split
    (none: every training image), so that both use one cached network."""
    from dnn import data as dnn_data

    data = dnn_data.load(name, split_seed=0, train_limit=train_limit)
    return dnn_data.hold_out(data, held_out, seed=0) if held_out else data


def resnet_data() -> Any:
    """Fashion-MNIST as ``flow.py dnn --data fashion --train-limit 60000`` holds it: 1,000 training images set
    aside as the validation split."""
    return _data("fashion", RESNET_TRAIN, RESNET_VAL)


def resnet_recipe() -> Any:
    from dnn import train

    return train.Recipe("resnet20", epochs=RESNET_EPOCHS)


def _sparse(model: Any, ratio: float, block: int = BLOCK) -> Any:
    from dnn import qnn, sparsity

    net = copy.deepcopy(model)
    qnn.set_mode(net, "qat")
    names = [n for n, _ in qnn.qlayers(net)]
    sparsity.apply(net, sparsity.derive(net, sparsity.ratios(names, ratio), block, "l2"), block)
    return net


def _exact_acc(model: Any, x: Any, y: Any) -> float:
    from dnn import qnn, train
    from dnn.mults import exact

    qnn.assign(model, qnn.uniform(model, exact(True)))
    qnn.set_mode(model, "lut")
    return train.accuracy(model, x, y)


def _macs(model: Any, data: Any) -> dict[str, int]:
    from dnn.cli import _macs as macs

    return macs(model, data)


def accuracy(quick: bool = False) -> list[dict[str, Any]]:
    """Exact INT8 test accuracy per block-sparsity ratio, pruned and retrained."""
    if quick:
        return table("lenet5", "mnist", 4, (0.5,), 1)
    return (table("lenet5", "mnist", 4, (0.25, 0.5, 0.75), EPOCHS)
            + table("resnet20", "fashion", RESNET_EPOCHS, (0.5,), RESNET_RETRAIN, train_limit=RESNET_TRAIN,
                    held_out=RESNET_VAL, threads=2))


def table(net: str, data_name: str, base_epochs: int, ratios: tuple[float, ...], epochs: int,
          train_limit: int = 10000, held_out: int = 0, threads: int = 1) -> list[dict[str, Any]]:
    """One network's rows: the dense exact INT8 accuracy, then per ratio the pruned and retrained one, on the
    whole test split. ``held_out`` training images are set aside as ``flow.py dnn`` sets aside its validation
    split, so that both use one cached network; ``threads`` only sets the training's speed."""
    import torch

    from dnn import qnn, sparsity, train

    rows = []
    was = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        data = _data(data_name, train_limit, held_out)
        recipe = train.Recipe(net, epochs=base_epochs)
        model, _ = train.trained(recipe, data, CACHE)
        dense = _exact_acc(copy.deepcopy(model), data.x_test, data.y_test)
        rows.append(row(f"sparsity.accuracy.{net}_{data_name}.r0", 100 * dense, "%", None,
                        f"dense exact INT8, {len(data.x_test)} test images; trained on {len(data.x_train)} images, "
                        f"{base_epochs} float + 1 QAT epochs"))
        for r in ratios:
            net_r = _sparse(model, r)
            pruned = _exact_acc(copy.deepcopy(net_r), data.x_test, data.y_test)
            qnn.set_mode(net_r, "qat")
            sparsity.retrain(net_r, data, epochs, recipe.lr, recipe.batch, recipe.seed)
            after = _exact_acc(net_r, data.x_test, data.y_test)
            dens = sparsity.density(net_r)
            macs = _macs(net_r, data)
            kept = sum(macs[n] * dens[n] for n in macs) / sum(macs.values())
            rows.append(row(f"sparsity.accuracy.{net}_{data_name}.r{r:g}", 100 * after, "%", 100 * dense,
                            f"{BLOCK}x{BLOCK} blocks, first layer dense, l2; pruned {100 * pruned:.2f} %, "
                            f"retrained {epochs} float + 1 QAT epochs; loss {100 * (dense - after):.2f} points; MACs kept "
                            f"{kept:.3f}"))
    finally:
        torch.set_num_threads(was)
    return rows


def lut_speed(quick: bool = False) -> list[dict[str, Any]]:
    """Sparse (50 %, zero blocks skipped) against dense LUT inference of the same weights and multiplier:
    the median of ``REPS`` paired ratios of CPU time (:func:`dnn.bench.paired`), beside the best times."""
    import torch

    from core.multrun import latest as latest_multiplier_run
    from dnn import data as dnn_data
    from dnn import fixtures, models, qnn, sparsity, train
    from dnn.bench import paired
    from dnn.mults import Multiplier, exact, load

    kinds = {"exact": exact(True), "rank2": Multiplier("rank2", fixtures.broken_array(2), True),
             "full-rank": Multiplier("full-rank", fixtures.lut_error(1, 30), True)}
    for eps in (0.005, 0.05):
        run_dir = latest_multiplier_run(runs_root(), eps)
        if run_dir is not None:
            kinds[f"evolved-eps{eps:g}"] = load(run_dir)
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mnist = None if quick else dnn_data.load("mnist")
        for net, batch in (("lenet5", 256), ("resnet20", 64)):
            if mnist is None:
                torch.manual_seed(0)
                batch = 8
                model = models.build(net, 1, 28, 10)
                x = torch.rand(batch, 1, 28, 28)
                qnn.calibrate(model, [x])
                inputs = "untrained, random images"
            elif net == "resnet20":
                fashion = resnet_data()
                model, _ = train.trained(resnet_recipe(), fashion, CACHE)
                x = fashion.x_test[:batch].float()
                inputs = "trained (not retrained), Fashion-MNIST test images"
            else:
                model, _ = train.trained(train.Recipe(net), mnist, CACHE)
                x = mnist.x_test[:batch].float()
                inputs = "trained (not retrained), MNIST test images"
            sparse = _sparse(model, 0.5)
            dense = copy.deepcopy(sparse)
            sparsity.apply(dense, {}, BLOCK)  # the same zeroed weights, nothing skipped
            for kind, m in kinds.items():
                for net_ in (dense, sparse):
                    qnn.assign(net_, qnn.uniform(net_, m))
                    qnn.set_mode(net_, "lut")
                with torch.no_grad():
                    qnn.set_mode(sparse, "lut", backend="reference")
                    ref = sparse(x[:2])
                    qnn.set_mode(sparse, "lut")
                    same = torch.equal(sparse(x[:2]), ref)
                    t_dense, t_sparse, ratio = paired(_call(dense, x), _call(sparse, x), 1 if quick else REPS)
                preps = [layer._prep[1] for _, layer in qnn.qlayers(sparse)]
                paths = ", ".join(f"{p} {sum(q.path == p for q in preps)}" for p in ("conv", "conv+gather", "gather")
                                  if any(q.path == p for q in preps))
                used = sum(q.sparse_gather is not None for q in preps)
                rows.append(row(f"sparsity.lut_time.{net}.{kind}", ratio, "x", None,
                                f"median of {1 if quick else REPS} paired ratios sparse/dense of CPU time (best "
                                f"{1e3 * t_sparse:.1f} ms sparse, {1e3 * t_dense:.1f} ms dense); 50 % {BLOCK}x{BLOCK} "
                                f"blocks (first layer dense) skipped vs the same weights dense; batch {batch}, "
                                f"{inputs}, 1 thread; bit-exact vs the int64 loop skipping the same products: "
                                f"{'yes' if same else 'NO'}; layers by path: {paths}; sparse gather in {used}"))
    finally:
        torch.set_num_threads(threads)
    return rows


KERNEL_LAYERS = ("layer1.0.conv1", "layer2.1.conv1", "layer3.1.conv1")  # 16, 32 and 64 filters, stride 1


def kernel_speed(quick: bool = False) -> list[dict[str, Any]]:
    """The gather kernels of single layers, best of ``REPS`` calls each, one thread: the dense layer
    (``kernels.conv_gather``), the same kernel on the first half of its filters (its tables and
    accumulators cut to those lanes) and the 50 % block-sparse layer (``kernels.conv_gather_runs``), each on
    the layer's prepared tables and its quantised inputs. ResNet-20 is the trained network where it is
    cached (its zero blocks are the ones ``lut_speed`` skips), else calibrated but untrained (a kernel's time
    depends on which blocks are zero, not on the weights' values), so no training runs here. Quick mode:
    LeNet-5's conv2 on 8 images."""
    from functools import partial

    import numpy as np
    import torch

    from dnn import data as dnn_data
    from dnn import fixtures, kernels, models, qnn, sparsity, train
    from dnn.bench import _best_of
    from dnn.mults import Multiplier

    net, layers, batch = ("lenet5", ("conv2",), 8) if quick else ("resnet20", KERNEL_LAYERS, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        torch.manual_seed(0)
        images = dnn_data.load("digits", split_seed=0) if quick else resnet_data()
        x = images.x_test[:batch].float()
        recipe = resnet_recipe()
        trained = not quick and (CACHE / f"{recipe.net}-{train.key(recipe, images)}.pt").is_file()
        if trained:
            model, _ = train.trained(recipe, images, CACHE)
        else:
            model = models.build(net, 1, 28, 10)
            qnn.calibrate(model, [x])
        sparse = _sparse(model, 0.5)
        dense = copy.deepcopy(sparse)
        sparsity.apply(dense, {}, BLOCK)
        mult = Multiplier("full-rank", fixtures.lut_error(1, 30), True)
        inputs: dict[str, Any] = {}
        hooks = [layer.register_forward_pre_hook(lambda mod, inp, n=n: inputs.__setitem__(n, inp[0].detach()))
                 for n, layer in qnn.qlayers(dense)]
        for n_ in (dense, sparse):
            qnn.assign(n_, qnn.uniform(n_, mult))
            qnn.set_mode(n_, "lut")
            n_.eval()
            with torch.no_grad():
                n_(x)  # prepares every layer's tables (and, on the dense one, records its inputs)
            for h in hooks:
                h.remove()
            hooks = []
        for name in layers:
            ld: Any = dict(qnn.qlayers(dense))[name]
            ls: Any = dict(qnn.qlayers(sparse))[name]
            pd, ps = ld._prep[1], ls._prep[1]
            assert pd.path == "gather" and ps.sparse_gather is not None, name
            plan, (kh, kw), pad, stride = pd.plan, pd.kernel, ld.conv.padding[0], ld.conv.stride[0]
            xin = inputs[name]
            n, c, h, w = xin.shape
            xq = np.empty((n, c, h + 2 * pad, w + 2 * pad), np.int16)
            kernels.quantise16(xin.numpy(), np.float32(ld.act_scale()), plan.a_lo, plan.a_hi, pad, xq)
            ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
            half = pd.err_table.shape[2] // 2
            mul, add = np.ones(pd.out), np.zeros(pd.out, np.float32)
            out, out_half = np.empty((n, pd.out, ho, wo), np.float32), np.empty((n, half, ho, wo), np.float32)
            t_half = np.ascontiguousarray(pd.err_table[:, :, :half])
            c_half = np.ascontiguousarray(pd.err_const[:half])
            da = plan.a_hi - plan.a_lo + 1
            runs: Any = kernels.conv_gather_runs  # numba's typing of its signature is not mypy's
            t_dense, t_lanes, t_sparse = _best_of([
                partial(kernels.conv_gather, xq, pd.err_table, plan.a_lo, kh, kw, stride, pd.err_const, out,
                        pd.ptile, mul, add, 1),
                partial(kernels.conv_gather, xq, t_half, plan.a_lo, kh, kw, stride, c_half, out_half, pd.ptile,
                        mul, add, 1),
                partial(runs, xq, *ps.sparse_gather, da, plan.a_lo, kh, kw, stride,
                        ps.err_const, out, ps.ptile, mul, add, 1)], 2 if quick else REPS)
            kept = ps.sparse_gather[4]
            where = (f"{net} ({'trained' if trained else 'untrained, calibrated'}) {name}: {pd.out} filters, "
                     f"{c} inputs, batch {batch}; dense {1e3 * t_dense:.2f} ms; "
                     f"block-sparse runs keep {sorted(set(kept.tolist()))} lanes")
            rows.append(row(f"sparsity.kernel_time.{net}.{name}.half_lanes", t_lanes, "s", t_dense,
                            f"the dense kernel on {half} of the filters; {where}"))
            rows.append(row(f"sparsity.kernel_time.{net}.{name}.sparse", t_sparse, "s", t_dense,
                            f"50 % {BLOCK}x{BLOCK} blocks skipped; {where}"))
    finally:
        torch.set_num_threads(threads)
    return rows


def _call(model: Any, x: Any) -> Any:
    return lambda: model(x)


def _accel_config(folder: Path) -> Path:
    path = folder / "accel.json"
    path.write_text(json.dumps({"net": "lenet5", "array": "16x16", "dataflow": "ws"}), encoding="utf-8")
    return path


def joint(quick: bool = False) -> list[dict[str, Any]]:
    """The joint search on LeNet-5 / MNIST against approximation only, with accelerator energy and time."""
    from core import config as cfg
    from dnn import cli
    from dnn.bench import candidates

    if quick:
        return [row("sparsity.joint.lenet5_mnist", float("nan"), "x", None, "not run in quick mode")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dirs, source, _ = candidates(Path(tmp))
        for cost in ("multiplier", "accel"):
            conf = cfg.from_dict(cli.DnnConfig, {
                "net": "lenet5", "data": "mnist", "mults": tuple(dirs), "method": ("hawx", "nsga2"),
                "granularity": "layer", "max_acc_loss": 0.01, "run_dir": Path(tmp) / f"run-{cost}",
                "finetune_epochs": FINETUNE_EPOCHS, "finetune_in_loop": FINETUNE_IN_LOOP, "eval_images": 1000,
                "representatives": 32, "ig_steps": 16, "threads": 1,
                "cache_dir": CACHE, "sparsity_ratios": JOINT_RATIOS, "sparsity_epochs": EPOCHS,
                "accel": _accel_config(Path(tmp)) if cost == "accel" else None})
            rep = cli.run(conf, quiet=True)
            keep = os.environ.get("AXFLOW_DNN_BENCH_KEEP")
            if keep:
                import shutil

                shutil.copytree(Path(tmp) / f"run-{cost}", Path(keep) / f"sparsity-{cost}", dirs_exist_ok=True)
            sp = rep["sparsity"]
            ch, ao = sp["chosen"], sp["approximation_only"]
            what = "multiplier energy" if cost == "multiplier" else "accelerator energy (accel_models, 16x16 ws)"
            mix = ", ".join(f"{n} {q:g}" for n, q in (ch or {}).get("layer_ratios", {}).items())
            note = (f"{what}; joint answer ratio {ch['ratio']:g} ({mix}), accuracy {ch['accuracy']:.4f} vs dense exact "
                    f"{rep['baseline_accuracy']:.4f} on {rep['eval_images']} images; approximation only "
                    f"{ao['energy_reduction']:.2f}x, joint {ch['energy_reduction']:.2f}x vs the dense exact "
                    f"network; {len(dirs)} {source}; retrained {EPOCHS} float + 1 QAT epochs per ratio set; fine-tuned in the "
                    f"loop: {FINETUNE_IN_LOOP} assignments of {FINETUNE_EPOCHS} epoch per network") if ch and ao else "none"
            rows.append(row(f"sparsity.joint.lenet5_mnist.{cost}.energy_vs_approximation_only",
                            sp.get("energy_vs_approximation_only") or float("nan"), "x", None, note))
            if cost == "accel" and ch and ch.get("time_s") and ao and ao.get("time_s"):
                rows.append(row("sparsity.joint.lenet5_mnist.accel.time_vs_approximation_only",
                                ao["time_s"] / ch["time_s"], "x", None,
                                f"time {1e6 * ch['time_s']:.2f} us vs {1e6 * ao['time_s']:.2f} us (accel_models)"))
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return accuracy(quick) + lut_speed(quick) + kernel_speed(quick) + joint(quick)


if __name__ == "__main__":
    import sys

    parts = {"accuracy": accuracy, "lut_speed": lut_speed, "kernel_speed": kernel_speed, "joint": joint}
    chosen = [a for a in sys.argv[1:] if a in parts] or list(parts)
    for name in chosen:
        for r in parts[name](quick="--quick" in sys.argv):
            print(json.dumps(r), flush=True)
