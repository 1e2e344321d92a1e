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
import io
import math
from pathlib import Path

import numpy as np

from core import golden
from core.errors import ConfigError
from core.tables import read_text


def read_histogram(path: Path, wa: int, wb: int, is_signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities over operand codes (a, b) from a histogram CSV.

    Every way the file can be wrong (unreadable, binary, not UTF-8, wrong columns, a value that is not
    an integer or a count that is not a finite number >= 0) is a :class:`ConfigError` naming the file.
    """
    text = read_text(path, "operand histogram")
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ConfigError(f"operand histogram {path} must be CSV, not malformed text ({exc})") from None
    if not rows:
        raise ConfigError(f"operand histogram {path} has no rows")
    header = [h for h in rows[0] if h is not None]
    cols = set(header)
    if cols == {"value", "count"} and len(header) == 2:
        keys = ("count", "count")
    elif cols == {"value", "count_a", "count_b"} and len(header) == 3:
        keys = ("count_a", "count_b")
    else:
        raise ConfigError(f"operand histogram {path} must have columns value,count or value,count_a,count_b, "
                          f"not {','.join(header)}")
    probs = []
    for width, key in ((wa, keys[0]), (wb, keys[1])):
        vals = golden.values(width, is_signed)
        lo, hi = int(vals.min()), int(vals.max())
        p = np.zeros(1 << width)
        for n, row in enumerate(rows, start=2):
            if None in row:
                raise ConfigError(f"operand histogram {path} line {n}: must have {len(header)} columns, "
                                  f"not {len(header) + len(row[None])}")
            raw_v, raw_c = row["value"], row[key]
            try:
                v, c = int(str(raw_v).strip()), float(str(raw_c).strip())
            except (TypeError, ValueError):
                raise ConfigError(f"operand histogram {path} line {n}: value must be an integer and "
                                  f"{key} a number, not {raw_v!r}, {raw_c!r}") from None
            if not math.isfinite(c) or c < 0:
                raise ConfigError(f"operand histogram {path} line {n}: {key} must be a finite number >= 0, "
                                  f"not {raw_c.strip()!r}")
            if v < lo or v > hi:
                if c > 0:
                    raise ConfigError(f"operand histogram {path} line {n}: value must be in {lo}..{hi} for "
                                      f"a {width}-bit {'signed' if is_signed else 'unsigned'} operand, not {v}")
                continue
            with np.errstate(over="ignore"):  # a sum too large for a float is refused just below
                p[v & ((1 << width) - 1)] += c
        with np.errstate(over="ignore"):
            total = float(p.sum())
        if not total > 0:
            raise ConfigError(f"operand histogram {path}: {key} has no positive count")
        if not math.isfinite(total) or not np.isfinite(p).all():
            raise ConfigError(f"operand histogram {path}: {key} must sum to a finite number, not {total}")
        probs.append(p / total)
    return probs[0], probs[1]


DNN_OPERANDS = Path("operands") / "all.csv"  # what a flow.py dnn run writes: activations a, weights b


def read_operands(spec: str, wa: int, wb: int, is_signed: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """The operand distribution ``--operands`` names: ``uniform`` (None), a histogram CSV, or a ``flow.py dnn``
    run directory, whose ``operands/all.csv`` holds its INT8 layers' activations (a) and weights (b)."""
    if spec == "uniform":
        return None
    path = Path(spec)
    if path.is_dir():
        if not (path / DNN_OPERANDS).is_file():
            raise ConfigError(f"OPERANDS must be 'uniform', a histogram CSV or a flow.py dnn run directory holding "
                              f"{DNN_OPERANDS}, not the directory {spec!r}")
        path = path / DNN_OPERANDS
    return read_histogram(path, wa, wb, is_signed)


def operand_stream(wa: int, wb: int, n: int, rng: np.random.Generator,
                   probs: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` operand code pairs, uniform or from per-operand probabilities."""
    if probs is None:
        return (rng.integers(0, 1 << wa, size=n, dtype=np.int64),
                rng.integers(0, 1 << wb, size=n, dtype=np.int64))
    return (rng.choice(1 << wa, size=n, p=probs[0]).astype(np.int64),
            rng.choice(1 << wb, size=n, p=probs[1]).astype(np.int64))


POWER_SALT = 0x90E7
"""Mixed into the run's seed for the power stream, so it is independent of the other seeded draws."""


def power_stream(wa: int, wb: int, n: int, seed: int,
                 probs: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` operand code pairs of a run's power simulations, drawn from ``seed``.

    The one definition: the exact and the evolved design of ``evolve`` and the design of ``ppa`` are
    all simulated on this stream, so their powers compare like for like.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, POWER_SALT]))
    return operand_stream(wa, wb, n, rng, probs)


def measure(vcd_path: Path, scope: str, n_vectors: int, period_ps: int) -> dict[str, tuple[float, float]]:
    """Per-net (transitions per vector, duty) of the nets declared in ``scope`` over ``n_vectors`` periods;
    bits of a vector become ``name[i]`` nets.

    A design with submodules is mapped flat, its nets keeping their hierarchical names as escaped
    identifiers (``\\dut.U12.CO``): they are declared in ``scope`` and count like any other net (the
    backslash dropped, as the netlist's readers name them); the nested scopes are the cells' own models.
    Only changes between known values count: the first settling from X at time 0 is not a toggle.
    """
    return measure_window(vcd_path, scope, 0, n_vectors * period_ps, n_vectors)


_TIME_UNITS_PS = {"fs": 1e-3, "ps": 1.0, "ns": 1e3, "us": 1e6, "ms": 1e9, "s": 1e12}


def _vcd_name(ref: str) -> str:
    """A VCD reference as the netlist names it: escaped identifiers lose their backslash."""
    return ref[1:] if ref.startswith("\\") else ref


def measure_window(vcd_path: Path, scope: str, t0_ps: int, t1_ps: int, n_cycles: int
                   ) -> dict[str, tuple[float, float]]:
    """Per-net (transitions per clock cycle, duty) of the nets declared directly in ``scope`` (a dotted
    path of VCD scopes, e.g. ``top.core``), counted over the window ``[t0_ps, t1_ps)`` of ``n_cycles``
    clock cycles.

    Streams the file once and keeps one state per signal, so a gate-level VCD of a whole array (tens of
    millions of changes) needs little memory. Bits of a vector become ``name[i]``; escaped identifiers
    lose their backslash, so names match a flattened netlist's (``pod0.sa.pe_0_0.mult._12_``). Only
    changes between known values count (settling from X is not a toggle); the value a signal has when
    the window opens counts towards its duty.
    """
    if n_cycles <= 0 or t1_ps <= t0_ps:
        raise ValueError("the activity window must be non-empty")
    want = scope.split(".")
    stack: list[str] = []
    sigs: dict[str, list[tuple[str, int, int]]] = {}  # id -> [(name, width, lsb)]
    scale = 1.0
    with open(vcd_path, encoding="utf-8", errors="replace") as f:
        tokens: list[str] = []
        for line in f:
            tokens += line.split()
            if not tokens or tokens[-1] != "$end":
                if tokens and tokens[0] == "$enddefinitions":
                    break
                continue
            kind = tokens[0]
            if kind == "$scope":
                stack.append(tokens[2])
            elif kind == "$upscope":
                stack.pop()
            elif kind == "$timescale":
                text = "".join(tokens[1:-1])
                num = "".join(c for c in text if c.isdigit()) or "1"
                scale = int(num) * _TIME_UNITS_PS[text[len(num):]]
            elif kind == "$var" and stack == want:
                width, code, ref = int(tokens[2]), tokens[3], tokens[4]
                lsb = 0
                if len(tokens) > 6 and tokens[5].startswith("["):
                    rng = tokens[5].strip("[]").split(":")
                    lsb = min(int(rng[0]), int(rng[-1]))
                sigs.setdefault(code, []).append((_vcd_name(ref), width, lsb))
            elif kind == "$enddefinitions":
                tokens = []
                break
            tokens = []
        width_of = {code: entries[0][1] for code, entries in sigs.items()}
        # one slot per signal bit: last value, time it took it (clamped to the window), toggles, time at 1
        slot: dict[str, int] = {}
        n = 0
        for code, w in width_of.items():
            slot[code] = n
            n += w
        last = ["x"] * n
        since = [0.0] * n
        toggles = [0] * n
        high = [0.0] * n
        scalar = {c: slot[c] for c, w in width_of.items() if w == 1}
        vector = {c: (slot[c], w) for c, w in width_of.items() if w > 1}
        t = 0.0
        lo, hi = float(t0_ps), float(t1_ps)
        inside = False
        now = lo
        for line in f:
            c0 = line[0]
            if c0 == "#":
                t = int(line[1:]) * scale
                if t >= hi:
                    break
                inside = t >= lo
                now = t if inside else lo
                continue
            if c0 == "b" or c0 == "B":
                value, code = line[1:].split()
                sv = vector.get(code)
                if sv is None:
                    continue
                base, w = sv
                value = value.lower()
                if len(value) < w:
                    value = value.rjust(w, value[0] if value[0] in "xz" else "0")
                bits = [(base + i, value[w - 1 - i]) for i in range(w)]
            elif c0 in "01xzXZ":
                i = scalar.get(line[1:].rstrip())
                if i is None:
                    continue
                bits = [(i, c0.lower())]
            else:
                continue
            for i, b in bits:
                a = last[i]
                if a == b:
                    continue
                if a == "1":
                    high[i] += now - since[i]
                if inside and (a == "0" or a == "1") and (b == "0" or b == "1"):
                    toggles[i] += 1
                last[i] = b
                since[i] = now
    out: dict[str, tuple[float, float]] = {}
    span = hi - lo
    for code, entries in sigs.items():
        for i in range(width_of[code]):
            k = slot[code] + i
            h = high[k] + (hi - since[k] if last[k] == "1" else 0.0)
            act = (toggles[k] / n_cycles, h / span)
            for name, width, lsb in entries:
                out[f"{name}[{lsb + i}]" if width > 1 else name] = act
    return out
