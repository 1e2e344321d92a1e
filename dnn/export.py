"""Product tables for other emulators, each in the layout the consuming tool's own code reads.

``adapt``     two C headers for AdaPT (PyTorch approximate inference, C++ kernels). AdaPT's kernels
              ``#include "axx_mults/<AXX_MULT>.h"`` and read a constant array named ``lut`` as
              ``lut[(uint8_t)x][(uint8_t)y]``: indexed by the operands' 8-bit codes (two's complement for
              signed), exactly like AdaPT's own ``mul8s_acc.h``. Its convolution kernel passes the weight
              first (``lut[weight][activation]``), its linear kernel the activation first
              (``lut[activation][weight]``), so there is one header per operand order:
              ``<name>_linear.h`` (``lut[a_code][w_code]`` = ``lut.npy``, for ``AdaPT_Linear``) and
              ``<name>_conv2d.h`` (``lut[w_code][a_code]`` = ``lut.npy.T``, for ``AdaPT_Conv2d``); pass
              ``axx_mult='<name>_linear'`` / ``'<name>_conv2d'`` to the layers. Entries are int32 products.
``tfapprox``  ``<name>.bin`` for TFApprox (TensorFlow approximate layers). TFApprox quantises both operands
              to unsigned codes 0..255 (``q = round((x - min) / scale)``), reads the file as 65,536
              native (little-endian) ``uint16`` and takes entry ``(q_act << 8) | q_filter`` as the product
              of the two *unsigned* codes; its default table is ``(i >> 8) * (i & 255)``.
              An unsigned multiplier is written as it is (``lut[q_a, q_w]``). A signed multiplier is
              converted to TFApprox's offset-binary arithmetic: with ``a = q_a - 128``, ``w = q_w - 128``,
              entry ``(q_a << 8) | q_w`` holds ``lut(a, w) + 128 q_a + 128 q_w - 16384``, which is
              ``q_a q_w`` plus the multiplier's error ``lut(a, w) - a w``. TFApprox's output is then the
              exact product plus that error, which is the signed hardware's result exactly when the
              quantisation range puts the zero point at 128 (``min = -128 scale``, the symmetric INT8
              range). A table whose converted entries leave 0..65535 cannot be given to TFApprox: that is
              an error naming the multiplier, never a wrapped value.
``npy``       ``<name>.npy``: int32, ``lut[a_code, b_code]``, the run's ``lut.npy``.
``csv``       ``<name>.csv``: ``a,b,y`` by operand value, the run's ``lut.csv``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from core.errors import ConfigError, must
from dnn.mults import Multiplier

FORMATS = ("adapt", "tfapprox", "npy", "csv")
DEFAULT_FORMATS = ("adapt", "npy", "csv")
ADAPT_KERNELS = {"linear": "lut[activation][weight]", "conv2d": "lut[weight][activation]"}


def c_name(name: str) -> str:
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return ident if ident and not ident[0].isdigit() else "m_" + ident


def _values(signed: bool) -> np.ndarray:
    codes = np.arange(256, dtype=np.int64)
    return np.where(codes >= 128, codes - 256, codes) if signed else codes


def _check_8x8(m: Multiplier) -> None:
    if m.lut.shape != (256, 256):
        raise must(f"the table of multiplier {m.name}", "256x256 (8x8 bits)", m.lut.shape)


def write_adapt(m: Multiplier, folder: Path) -> list[Path]:
    """``<name>_linear.h`` and ``<name>_conv2d.h``: ``const int32_t lut[256][256]`` in code order."""
    _check_8x8(m)
    ident = c_name(m.name)
    out = []
    for kernel, order in ADAPT_KERNELS.items():
        table = m.lut if kernel == "linear" else m.lut.T
        guard = f"AXFLOW_{ident.upper()}_{kernel.upper()}_H"
        lines = [
            f"/* {m.name}: 8x8 {'signed' if m.signed else 'unsigned'} approximate multiplier, exported by axflow",
            f" * for AdaPT's {kernel} kernel (axx_mult='{ident}_{kernel}'): {order}, both indexed by the",
            " * operands' 8-bit codes as the kernel does, lut[(uint8_t)x][(uint8_t)y]. */",
            f"#ifndef {guard}", f"#define {guard}", "#include <stdint.h>",
            "const int32_t lut[256][256] = {",
        ]
        lines += ["  {" + ", ".join(map(str, row.tolist())) + "}," for row in table.astype(np.int64)]
        lines += ["};", f"#endif /* {guard} */", ""]
        path = folder / f"{ident}_{kernel}.h"
        path.write_text("\n".join(lines), encoding="utf-8")
        out.append(path)
    return out


def tfapprox_table(m: Multiplier) -> np.ndarray:
    """The 65,536 entries TFApprox reads, ``t[(q_a << 8) | q_w]`` (int64, before the uint16 cast).

    Raises :class:`ConfigError` when an entry does not fit TFApprox's unsigned 16 bits.
    """
    _check_8x8(m)
    lut = m.lut.astype(np.int64)
    if m.signed:
        q = np.arange(256, dtype=np.int64)
        codes = (q - 128) & 0xFF  # the two's-complement code of operand value q - 128
        table = lut[np.ix_(codes, codes)] + 128 * q[:, None] + 128 * q[None, :] - 16384
    else:
        table = lut
    bad = (table < 0) | (table > 0xFFFF)
    if bad.any():
        qa, qw = (int(v) for v in np.argwhere(bad)[0])
        kind = "signed (converted to TFApprox's unsigned offset-binary codes)" if m.signed else "unsigned"
        operands = f"a={qa - 128}, w={qw - 128}" if m.signed else f"a={qa}, w={qw}"
        raise ConfigError(f"TFApprox table entries of {kind} multiplier {m.name} must be in 0..65535, not "
                          f"{int(table[qa, qw])} ({operands}); export it without tfapprox")
    return table.reshape(-1)


def write_tfapprox(m: Multiplier, path: Path) -> Path:
    tfapprox_table(m).astype("<u2").tofile(path)
    return path


def write_npy(m: Multiplier, path: Path) -> Path:
    np.save(path, m.lut.astype(np.int32))
    return path


def write_csv(m: Multiplier, path: Path) -> Path:
    vals = _values(m.signed).tolist()
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "y"])
        for i, row in enumerate(m.lut.astype(np.int64).tolist()):
            w.writerows(zip([vals[i]] * len(row), vals, row))
    return path


def check(m: Multiplier, formats: tuple[str, ...]) -> None:
    """Raise the error :func:`export` would raise, without writing anything."""
    for f in formats:
        if f not in FORMATS:
            raise must("EXPORT", "one of the listed choices", f, FORMATS)
    _check_8x8(m)
    if "tfapprox" in formats:
        tfapprox_table(m)


def export(m: Multiplier, folder: Path, formats: tuple[str, ...] = DEFAULT_FORMATS) -> list[Path]:
    check(m, formats)
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    ident = c_name(m.name)
    if "adapt" in formats:
        out += write_adapt(m, folder)
    if "tfapprox" in formats:
        out.append(write_tfapprox(m, folder / f"{ident}.bin"))
    if "npy" in formats:
        out.append(write_npy(m, folder / f"{ident}.npy"))
    if "csv" in formats:
        out.append(write_csv(m, folder / f"{ident}.csv"))
    return out
