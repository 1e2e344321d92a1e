"""Realistic operands for array power: INT8 activations and weights of a trained network.

The power of an array depends on what its multipliers see. :data:`rtl_gen.operands.SHIPPED` is a
histogram of the INT8 operands of LeNet-5 trained by the flow on Fashion-MNIST (``dnn.train``: float training, calibration,
quantisation-aware training): ``count_a`` counts the activation codes entering every quantised
layer over 2,000 test images, ``count_b`` the weight codes of every layer (batch norm folded), in the
CSV format of :func:`ppa.activity.read_histogram`. It is the default operand distribution of
``flow.py array`` for 8-bit signed multipliers. Regenerate it (needs the DNN level: ``make dnn-setup``)::

    OMP_NUM_THREADS=1 python -m dnn.operands --net lenet5 --data fashion --epochs 4 \
        --out rtl_gen/data/lenet5_fashion_int8.csv

(4 float epochs on the 60,000 training images, one QAT epoch: 88.6 % INT8 test accuracy.)
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from rtl_gen.operands import SHIPPED


def layer_histograms(model: Any, x: Any, batch: int = 250, signed: bool = True
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per quantised layer: counts of the activation codes it sees on the images ``x`` (operand ``a``)
    and of its weight codes (operand ``b``, batch norm folded), over the values -128 .. 127 (signed
    multipliers) or 0 .. 255 (unsigned ones, which see the weights' magnitudes)."""
    import torch

    from dnn import qnn

    layers = list(qnn.qlayers(model))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, layer in layers:
        w, _ = layer.params()
        codes = layer.weight_codes(w, layer.weight_scale(w)).to(torch.int64).flatten().numpy()
        codes = codes + 128 if signed else np.abs(codes)
        out[name] = (np.zeros(256, dtype=np.int64), np.bincount(codes, minlength=256))
        layer.keep_input = True
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):
                model(x[i:i + batch])
                for name, layer in layers:
                    if layer.last_input is not None:
                        codes = layer.act_codes(layer.last_input).to(torch.int64).flatten().numpy()
                        out[name][0][:] += np.bincount(codes + 128 if signed else codes, minlength=256)
    finally:
        for _, layer in layers:
            layer.keep_input = False
            layer.last_input = None
    return out


def histogram_csv(acts: np.ndarray, weights: np.ndarray, signed: bool = True) -> str:
    """The CSV :func:`ppa.activity.read_histogram` reads: ``value,count_a,count_b`` for -128 .. 127
    (signed) or 0 .. 255 (unsigned); ``acts[i]`` and ``weights[i]`` count value ``i - 128`` or ``i``."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["value", "count_a", "count_b"])
    lo = -128 if signed else 0
    for i in range(256):
        writer.writerow([lo + i, int(acts[i]), int(weights[i])])
    return buf.getvalue()


def merged(hists: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """All layers' counts summed: what every multiplier of the network sees together."""
    acts = np.zeros(256, dtype=np.int64)
    weights = np.zeros(256, dtype=np.int64)
    for a, w in hists.values():
        acts += a
        weights += w
    return acts, weights


def network_histogram(net: str, data_name: str, out: Path, *, images: int = 2000, train_images: int = 60000,
                      epochs: int = 4, cache_dir: Path | None = None) -> Path:
    """Count the activation and weight codes a trained INT8 network feeds its multipliers."""
    from dnn import data as dnn_data
    from dnn import train

    data = dnn_data.load(data_name, train_limit=train_images)
    model, info = train.trained(train.Recipe(net, epochs=epochs), data, cache_dir, progress=print)
    print(f"{net} on {data_name}: INT8 (QAT) accuracy {info['qat_accuracy']:.4f}")
    model.eval()
    acts, weights = merged(layer_histograms(model, data.x_test[:images]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(histogram_csv(acts, weights), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="lenet5")
    parser.add_argument("--data", default="fashion")
    parser.add_argument("--images", type=int, default=2000, help="test images whose activations are counted")
    parser.add_argument("--train-images", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=SHIPPED)
    args = parser.parse_args(argv)
    print(network_histogram(args.net, args.data, args.out, images=args.images, train_images=args.train_images,
                            epochs=args.epochs, cache_dir=args.cache_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
