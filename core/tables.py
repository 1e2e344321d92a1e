"""Reading a product table (``lut.npy``) another command wrote: every way it can be wrong is one line.

A table is an integer array of shape ``(2**wa, 2**wb)`` indexed by operand codes, each entry a product
value that fits the multiplier's ``wa + wb`` output bits (signed or unsigned).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from core.errors import ConfigError


def read_lut(path: Path, wa: int, wb: int, signed: bool | None = None) -> np.ndarray:
    """The table in ``path`` as int64; a missing, truncated, non-integer, misshapen or out-of-range one
    raises :class:`ConfigError` naming the file. ``signed=None`` skips the range check."""
    path = Path(path)
    try:
        raw = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"product table {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read product table {path}: {exc.strerror or exc}") from None
    except (ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ConfigError(f"product table {path} must be a whole .npy array, not a truncated or corrupt file "
                          f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(raw, np.ndarray):  # an .npz archive
        raw.close()
        raise ConfigError(f"product table {path} must be a .npy array, not an .npz archive")
    if raw.dtype.kind not in "iu" or raw.dtype.fields is not None:
        raise ConfigError(f"product table {path} must have an integer dtype (int32), not {raw.dtype}")
    if raw.shape != (1 << wa, 1 << wb):
        raise ConfigError(f"product table {path} must have shape {(1 << wa, 1 << wb)}, not {raw.shape}")
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
