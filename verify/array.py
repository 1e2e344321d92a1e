"""Verification of the arrays: GEMMs on Icarus through the host interface, against a LUT-based reference.

The reference computes ``Cout = A x B`` with every product looked up in the PE multiplier's table
(exact: the goldenbrick table ``a*b``; evolved: its ``lut.npy``) and the sums wrapped to the
accumulator width, which is exactly what the hardware is specified to compute. The expected cycle
count of every GEMM is the ``rtl`` model's (:func:`rtl_gen.rtl_cycles.gemm_cycles`); the bench
(:mod:`verify.tb_array`) fails on any difference in either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError
from core.run import RunDir
from rtl_gen import rtl_cycles
from verify import sim


@dataclass(frozen=True)
class Gemm:
    """One test GEMM: ``C[m x n] = A[m x k] B[k x n]`` with a pod split (RTL_TIMING.md section 5)."""

    name: str
    m: int
    k: int
    n: int
    split: str = "n"
    # tile skipping (a ws array generated with tile_skip): skip[i][j] for K-tile i, N panel j; the bench
    # zeroes B in skipped tiles, leaves their products out of the reference and expects ``cycles`` (the
    # caller's model of the sparse schedule)
    skip: tuple[tuple[bool, ...], ...] | None = None
    cycles: int | None = None

    @property
    def shape(self) -> str:
        return f"{self.m}x{self.k}x{self.n}"


def parse_shape(text: str) -> tuple[int, int, int]:
    """``'64x64x64'`` -> (M, K, N)."""
    parts = str(text).lower().split("x")
    try:
        m, k, n = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"a GEMM shape must be MxKxN with positive integers, not {text!r}") from None
    if min(m, k, n) < 1:
        raise ConfigError(f"a GEMM shape must be MxKxN with positive integers, not {text!r}")
    return m, k, n


def default_gemms(rows: int, cols: int, pods: int) -> list[Gemm]:
    """Square, tall, wide, K not a multiple of the array, M and N smaller than the array, one small
    GEMM; with several pods the ragged GEMM once per split."""
    R, C = rows, cols
    out = [
        Gemm("square", 2 * R, 2 * R, 2 * C),
        Gemm("tall", 4 * R + 1, R, max(1, C - 1)),
        Gemm("wide", max(1, R - 1), R + 1, 3 * C + 1),
        Gemm("k_ragged", R + 1, 2 * R + 1, C),
        Gemm("small", max(1, R - 1), 1, max(1, C - 1)),
    ]
    if pods > 1:
        out += [Gemm(f"ragged_split_{s}", 2 * R + 1, 2 * R + 3, 2 * C * pods + 1, s) for s in rtl_cycles.SPLITS]
    return out


def reference(A: np.ndarray, B: np.ndarray, lut: np.ndarray, acc_bits: int) -> np.ndarray:
    """Result codes of ``A x B`` (operand codes) with products from ``lut``, modulo 2^acc_bits."""
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    out = np.zeros((A.shape[0], B.shape[1]), dtype=np.int64)
    step = max(1, (1 << 22) // max(1, A.shape[1] * B.shape[1]))
    for i0 in range(0, A.shape[0], step):
        block = A[i0:i0 + step]
        out[i0:i0 + step] = lut[block[:, :, None], B[None, :, :]].sum(axis=1)
    return out & ((1 << acc_bits) - 1)


def tile_runs(skip: tuple[tuple[bool, ...], ...], k: int, n: int, rows: int, cols: int) -> np.ndarray:
    """(k, n) bool: the products a tile-skipping array computes (tiles not skipped)."""
    runs = ~np.asarray(skip, dtype=bool)
    return np.repeat(np.repeat(runs, rows, axis=0), cols, axis=1)[:k, :n]


def skip_word(skip: tuple[tuple[bool, ...], ...], kb: int) -> int:
    """The ``skip`` port value: bit ``panel * kb + k_tile``."""
    word = 0
    for i, row in enumerate(skip):
        for j, s in enumerate(row):
            if s:
                word |= 1 << (j * kb + i)
    return word


def sparse_reference(A: np.ndarray, B: np.ndarray, lut: np.ndarray, acc_bits: int, runs: np.ndarray) -> np.ndarray:
    """:func:`reference` with only the products of kept tiles (``runs`` (k, n)) summed."""
    A = np.asarray(A, dtype=np.int64)
    prods = lut[A[:, :, None], np.asarray(B, dtype=np.int64)[None, :, :]] * runs[None]
    return prods.sum(axis=1) & ((1 << acc_bits) - 1)


def operands(m: int, k: int, n: int, wa: int, wb: int, rng: np.random.Generator,
             probs: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Operand codes of A (m x k) and B (k x n): uniform, or drawn from per-operand code probabilities."""
    if probs is None:
        return (rng.integers(0, 1 << wa, size=(m, k), dtype=np.int64),
                rng.integers(0, 1 << wb, size=(k, n), dtype=np.int64))
    return (rng.choice(1 << wa, size=(m, k), p=probs[0]).astype(np.int64),
            rng.choice(1 << wb, size=(k, n), p=probs[1]).astype(np.int64))


@dataclass(frozen=True)
class GemmResult:
    gemm: Gemm
    cycles: int
    expected_cycles: int
    mismatches: int
    macs: int
    utilization: float
    t_start_ps: int
    t_done_ps: int

    @property
    def passed(self) -> bool:
        return self.cycles == self.expected_cycles and self.mismatches == 0

    def as_report(self) -> dict[str, Any]:
        g = self.gemm
        return {"name": g.name, "shape": g.shape, "split": g.split, "cycles": self.cycles,
                "rtl_model_cycles": self.expected_cycles, "cycles_match": self.cycles == self.expected_cycles,
                "mismatches": self.mismatches, "macs": self.macs, "utilization": self.utilization,
                "passed": self.passed}


@dataclass(frozen=True)
class ArrayBench:
    bench: sim.BenchResult
    gemms: tuple[GemmResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.bench.passed and len(self.gemms) > 0 and all(g.passed for g in self.gemms)


def dump_module(top: str, scope: str, vcd: Path) -> str:
    """A second simulation root that dumps every net under ``<top>.<scope>`` into ``vcd``."""
    return f"""module axf_dump;
  initial begin
    $dumpfile("{vcd}");
    $dumpvars(0, {top}.{scope});
  end
endmodule
"""


def run(run: RunDir, *, name: str, sources: list[Path], top: str, geometry: Any, lut: np.ndarray,
        gemms: list[Gemm], seed: int, probs: tuple[np.ndarray, np.ndarray] | None = None,
        period_ps: int = 10000, vcd: Path | None = None, vcd_scope: str = "core",
        timing: bool = False) -> ArrayBench:
    """Run ``gemms`` on the array ``top`` built from ``sources``; operands uniform or from ``probs``.

    ``vcd``: dump every net under ``<top>.<vcd_scope>`` there. ``timing``: simulate the cells'
    specify-block delays (gate-level netlists).
    """
    g = geometry
    build = run.path / "sim_build" / name
    build.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA77A]))
    entries: list[dict[str, Any]] = []
    for idx, gm in enumerate(gemms):
        if gm.m > g.m_max or gm.k > g.k_max or gm.n > g.n_max:
            raise ConfigError(f"GEMM {gm.shape} does not fit the buffers ({g.m_max}x{g.k_max}x{g.n_max})")
        A, B = operands(gm.m, gm.k, gm.n, g.wa, g.wb, rng, probs)
        extra: dict[str, Any] = {}
        if gm.skip is not None:
            if not getattr(g, "tile_skip", False) or gm.cycles is None:
                raise ConfigError(f"GEMM {gm.name} skips tiles: it needs an array with tile_skip and its cycles")
            runs = tile_runs(gm.skip, gm.k, gm.n, g.rows, g.cols)
            B = np.where(runs, B, 0)  # a skipped tile's weights are zero
            C = sparse_reference(A, B, lut, g.acc_bits, runs)
            extra["skip"] = skip_word(gm.skip, g.kb)
            cycles = gm.cycles
        else:
            C = reference(A, B, lut, g.acc_bits)
            cycles = rtl_cycles.gemm_cycles(gm.m, gm.k, gm.n, rows=g.rows, cols=g.cols, dataflow=g.dataflow,
                                             pods=g.pods, split=gm.split)
        data = build / f"gemm{idx}_{gm.name}.npz"
        np.savez(data, A=A, B=B, C=C)
        entries.append({"name": gm.name, "m": gm.m, "k": gm.k, "n": gm.n,
                        "split": rtl_cycles.SPLITS.index(gm.split), "cycles": cycles, "data": str(data),
                        "out": str(build / f"gemm{idx}_{gm.name}_got.npy"), **extra})
    build_args: list[str] = ["-gspecify"] if timing else []
    if vcd is not None:
        dump = build / "axf_dump.v"
        dump.write_text(dump_module(top, vcd_scope, vcd), encoding="utf-8")
        sources = [*sources, dump]
        build_args += ["-s", "axf_dump"]
    res = sim.run_bench(run, name=name, sources=sources, toplevel=top, test_module="verify.tb_array",
                        config={"period_ps": period_ps, "acc_bits": g.acc_bits, "gemms": entries},
                        seed=seed, build_args=tuple(build_args), vcd=vcd is not None)
    measured = {r["name"]: r for r in res.summary.get("gemms", [])}
    out = []
    for gm, e in zip(gemms, entries):
        r = measured.get(gm.name)
        if r is None:
            continue
        macs = gm.m * gm.k * gm.n
        cyc = int(r["cycles"])
        out.append(GemmResult(gm, cyc, int(e["cycles"]), int(r["mismatches"]), macs,
                              macs / (cyc * g.pods * g.rows * g.cols) if cyc > 0 else 0.0,
                              int(r["t_start_ps"]), int(r["t_done_ps"])))
    return ArrayBench(res, tuple(out))
