"""Switching activity: operand streams, gate-level simulation to a VCD, and toggle counts per net.

Operands are drawn uniformly by default, or from a histogram file: a CSV with a header and columns
``value,count`` (one distribution for both operands) or ``value,count_a,count_b``. Values are operand
values (signed for a signed multiplier); counts are non-negative weights.

Each operand pair is held for one clock period. The simulation uses the cells' Verilog models with
their specify-block delays (Icarus ``-gspecify``), so glitches are counted as switching, as a power
tool reading the VCD of a timing simulation would. Activity of a net = transitions / operand pairs
(transitions per clock period); duty = share of time at 1.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from core.errors import ConfigError
from verify import golden


def read_histogram(path: Path, wa: int, wb: int, is_signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities over operand codes (a, b) from a histogram CSV."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise ConfigError(f"cannot read operand histogram {path}: {exc.strerror}") from None
    if not rows:
        raise ConfigError(f"operand histogram {path} has no rows")
    cols = set(rows[0])
    if cols == {"value", "count"}:
        keys = ("count", "count")
    elif cols == {"value", "count_a", "count_b"}:
        keys = ("count_a", "count_b")
    else:
        raise ConfigError(f"operand histogram {path} must have columns value,count or value,count_a,count_b, "
                          f"not {','.join(rows[0])}")
    probs = []
    for width, key in ((wa, keys[0]), (wb, keys[1])):
        vals = golden.values(width, is_signed)
        lo, hi = int(vals.min()), int(vals.max())
        p = np.zeros(1 << width)
        for n, row in enumerate(rows, start=2):
            try:
                v, c = int(row["value"]), float(row[key])
            except (TypeError, ValueError):
                raise ConfigError(f"operand histogram {path} line {n}: value must be an integer and "
                                  f"{key} a number, not {row['value']!r}, {row[key]!r}") from None
            if c < 0:
                raise ConfigError(f"operand histogram {path} line {n}: {key} must be >= 0, not {c}")
            if v < lo or v > hi:
                if c > 0:
                    raise ConfigError(f"operand histogram {path} line {n}: value must be in {lo}..{hi} for "
                                      f"a {width}-bit {'signed' if is_signed else 'unsigned'} operand, not {v}")
                continue
            p[v & ((1 << width) - 1)] += c
        if p.sum() <= 0:
            raise ConfigError(f"operand histogram {path}: {key} has no positive count")
        probs.append(p / p.sum())
    return probs[0], probs[1]


def operand_stream(wa: int, wb: int, n: int, rng: np.random.Generator,
                   probs: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` operand code pairs, uniform or from per-operand probabilities."""
    if probs is None:
        return (rng.integers(0, 1 << wa, size=n, dtype=np.int64),
                rng.integers(0, 1 << wb, size=n, dtype=np.int64))
    return (rng.choice(1 << wa, size=n, p=probs[0]).astype(np.int64),
            rng.choice(1 << wb, size=n, p=probs[1]).astype(np.int64))


def vcd_wrapper(top: str, wa: int, wb: int, vcd: Path) -> str:
    """A top module around ``top`` that dumps every net of it into ``vcd``."""
    return f"""module axf_vcd_top (a, b, y);
  input [{wa - 1}:0] a;
  input [{wb - 1}:0] b;
  output [{wa + wb - 1}:0] y;
  {top} dut (.a(a), .b(b), .y(y));
  initial begin
    $dumpfile("{vcd}");
    $dumpvars(0, dut);
  end
endmodule
"""


def measure(vcd_path: Path, scope: str, n_vectors: int, period_ps: int) -> dict[str, tuple[float, float]]:
    """Per-net (transitions per vector, duty) from a VCD; bits of a vector become ``name[i]`` nets.

    Only changes between known values count: the first settling from X at time 0 is not a toggle.
    """
    from vcdvcd import VCDVCD

    vcd = VCDVCD(str(vcd_path), store_tvs=True)
    t_end = n_vectors * period_ps
    out: dict[str, tuple[float, float]] = {}
    prefix = scope + "."
    for name in vcd.references_to_ids:
        if not name.startswith(prefix) or "." in name[len(prefix):]:
            continue  # outside the design, or a signal inside a cell model
        local = name[len(prefix):]
        sig = vcd[name]
        width = int(sig.size)
        base = local.split("[")[0]
        for bit in range(width):
            key = f"{base}[{bit}]" if width > 1 else local
            out[key] = _bit_activity(sig.tv, width, bit, t_end, n_vectors)
    return out


def _bit_activity(tv: list, width: int, bit: int, t_end: int, n_vectors: int) -> tuple[float, float]:
    toggles = 0
    high = 0
    prev_t, prev = 0, ""
    for t, value in tv:
        if t >= t_end:
            break
        # VCD drops leading zeros of a vector value; x/z extend as themselves
        value = value.rjust(width, value[0] if value[0] in "xzXZ" else "0")
        b = value[width - 1 - bit]
        if prev == "1":
            high += t - prev_t
        if b in "01" and prev in "01" and prev and b != prev:
            toggles += 1
        prev_t, prev = t, b
    if prev == "1":
        high += t_end - prev_t
    return toggles / n_vectors, high / t_end if t_end else 0.0
