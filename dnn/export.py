"""Product tables for other emulators.

``adapt``     a C/C++ header in the style AdaPT (PyTorch approximate inference, C++ kernels) includes:
              ``static const int32_t <name>_lut[256][256]``, row = first operand (activation), column =
              second operand (weight). For a signed multiplier both are indexed by *value + 128*
              (row 0 is a = -128, row 128 is a = 0); for an unsigned one by the value. A macro
              ``<NAME>_MUL(a, b)`` does the indexing, so ``<NAME>_MUL(a, w)`` is the product the
              hardware computes. Entries are the product values (int32).
``tfapprox``  a raw binary table in the style TFApprox (TensorFlow approximate layers) loads:
              65,536 little-endian uint16, entry ``(a_code << 8) | b_code`` where codes are bit patterns
              (two's complement for signed operands), holding the 16-bit output pattern (two's
              complement for a signed product). Read it back with
              ``np.fromfile(path, "<u2").reshape(256, 256)`` (then ``.view("<i2")`` when signed).

Both carry the same numbers as ``lut.npy``; :func:`read_adapt` / :func:`read_tfapprox` parse them back
so a test can check the round trip.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from core.errors import ConfigError
from dnn.mults import Multiplier

FORMATS = ("adapt", "tfapprox")


def c_name(name: str) -> str:
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return ident if ident and not ident[0].isdigit() else "m_" + ident


def by_value(m: Multiplier) -> np.ndarray:
    """The table indexed by operand value (+128 when signed)."""
    if not m.signed:
        return m.lut.astype(np.int64)
    order = np.r_[128:256, 0:128]  # codes of values -128 .. 127
    return m.lut[np.ix_(order, order)].astype(np.int64)


def write_adapt(m: Multiplier, path: Path) -> Path:
    ident = c_name(m.name)
    table = by_value(m)
    off = 128 if m.signed else 0
    guard = f"AXFLOW_{ident.upper()}_H"
    lines = [
        f"/* {m.name}: 8x8 {'signed' if m.signed else 'unsigned'} approximate multiplier, exported by axflow.",
        f" * {ident}_lut[a + {off}][b + {off}] is the product of activation a and weight b. */",
        f"#ifndef {guard}", f"#define {guard}", "#include <stdint.h>",
        f"#define {ident.upper()}_SIGNED {int(m.signed)}",
        f"#define {ident.upper()}_MUL(a, b) ({ident}_lut[(a) + {off}][(b) + {off}])",
        f"static const int32_t {ident}_lut[256][256] = {{",
    ]
    for row in table:
        lines.append("  {" + ", ".join(str(int(v)) for v in row) + "},")
    lines += ["};", f"#endif /* {guard} */", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def read_adapt(path: Path) -> np.ndarray:
    """The 256x256 table of an exported header, indexed as in the header."""
    text = path.read_text(encoding="utf-8")
    body = text[text.index("] = {") + 5:text.rindex("};")]
    values = np.array([int(v) for v in re.findall(r"-?\d+", body)], dtype=np.int64)
    if values.size != 256 * 256:
        raise ConfigError(f"{path} does not hold a 256x256 table")
    return values.reshape(256, 256)


def write_tfapprox(m: Multiplier, path: Path) -> Path:
    lo, hi = (-(1 << 15), (1 << 15) - 1) if m.signed else (0, (1 << 16) - 1)
    if m.lut.min() < lo or m.lut.max() > hi:
        raise ConfigError(f"multiplier {m.name} has products outside 16 bits; the TFApprox format holds 16")
    (m.lut.astype(np.int64) & 0xFFFF).astype("<u2").tofile(path)
    return path


def read_tfapprox(path: Path, signed: bool) -> np.ndarray:
    raw = np.fromfile(path, dtype="<u2")
    if raw.size != 1 << 16:
        raise ConfigError(f"{path} must hold 65536 uint16 entries, not {raw.size}")
    table = raw.reshape(256, 256)
    return (table.view("<i2") if signed else table).astype(np.int64)


def export(m: Multiplier, folder: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    ident = c_name(m.name)
    if "adapt" in formats:
        out.append(write_adapt(m, folder / f"{ident}.h"))
    if "tfapprox" in formats:
        out.append(write_tfapprox(m, folder / f"{ident}.bin"))
    return out
