"""Reading a product table (``lut.npy``) another command wrote, or a user's text file: every way it can be
wrong is one line.

A table is an integer array of shape ``(2**wa, 2**wb)`` indexed by operand codes, each entry a product
value that fits the multiplier's ``wa + wb`` output bits (signed or unsigned).
"""

from __future__ import annotations

import tokenize
from pathlib import Path

import numpy as np

from core.errors import ConfigError


def read_text(path: Path, what: str) -> str:
    """The text of a user's file (``what`` names it in errors): unreadable, binary or non-UTF-8 files are
    one-line :class:`ConfigError`s naming it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise ConfigError(f"{what} {path} must be a CSV text file, not binary")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} must be UTF-8 CSV text, not binary") from None


def read_lut(path: Path, wa: int, wb: int, signed: bool | None = None) -> np.ndarray:
    """The table in ``path`` as int64; a missing, truncated, non-integer, misshapen or out-of-range one
    raises :class:`ConfigError` naming the file. ``signed=None`` skips the range check."""
    path = Path(path)
    corrupt = f"product table {path} must be a whole .npy array, not a truncated or corrupt file"
    try:
        with open(path, "rb") as f:
            # the header first: its shape and dtype are checked before any data is read (or allocated)
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"version {version}")
            except (ValueError, EOFError, SyntaxError, TypeError, KeyError, UnicodeDecodeError,
                    tokenize.TokenError) as exc:
                raise ConfigError(f"{corrupt} ({_first_line(exc)})") from None
            if dtype.kind not in "iu" or dtype.fields is not None or dtype.hasobject:
                raise ConfigError(f"product table {path} must have an integer dtype (int32), not {dtype}")
            if tuple(shape) != (1 << wa, 1 << wb):
                raise ConfigError(f"product table {path} must have shape {(1 << wa, 1 << wb)}, not {tuple(shape)}")
            count = int(np.prod(shape))
            data = f.read(count * dtype.itemsize + 1)
    except FileNotFoundError:
        raise ConfigError(f"product table {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read product table {path}: {exc.strerror or exc}") from None
    if len(data) != count * dtype.itemsize:
        raise ConfigError(f"{corrupt} ({len(data)} bytes of data, not {count * dtype.itemsize})")
    raw = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    lut = raw.astype(np.int64)
    if signed is not None and lut.size:
        nb = wa + wb
        lo, hi = (-(1 << (nb - 1)), (1 << (nb - 1)) - 1) if signed else (0, (1 << nb) - 1)
        bad = (lut < lo) | (lut > hi)
        if bad.any():
            i, j = (int(x) for x in np.argwhere(bad)[0])
            raise ConfigError(f"product table {path} must hold {nb}-bit {'signed' if signed else 'unsigned'} "
                              f"products in {lo}..{hi}, not {int(lut[i, j])} at [{i}, {j}]")
    return lut


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
