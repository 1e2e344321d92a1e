"""cocotb bench for ``MultiPodArray`` (rtl_gen/array/top.py): GEMMs through the host interface, cycle-counted.

For each GEMM of the configuration it writes A and B through the host ports (one element per cycle),
pulses ``start``, counts the edges from the one that samples ``start`` (edge 0) to the first edge
after which ``done`` reads 1, then reads every ``Cout`` word back (one address per cycle, data one
cycle later) and compares it with the expected codes. It fails unless every word matches and every
cycle count equals the one expected (the ``rtl`` model's prediction).

Inputs change on falling clock edges and outputs are read there, so nothing races the rising edge.

Configuration (JSON at ``$AXF_BENCH``): ``period_ps``, ``acc_bits``, ``gemms``: a list of objects with
``name``, ``m``, ``k``, ``n``, ``split`` (0 n, 1 m, 2 k), ``cycles`` (expected), optionally ``skip`` (the
``skip`` port of a tile-skipping array), ``data`` (.npz with
``A`` and ``B`` operand codes and ``C`` expected result codes modulo 2^acc_bits), ``out`` (.npy for
the codes read back: -1 where c_data was X or Z); ``summary`` (.json): per GEMM the cycles counted,
the mismatches, and the simulation times (ps) of edge 0 and of the edge that raised ``done``.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge
from cocotb.utils import get_sim_time


async def _fall(dut, n: int = 1) -> None:
    if n == 1:
        await FallingEdge(dut.clk)
    elif n > 1:
        await ClockCycles(dut.clk, n, rising=False)


async def _load(dut, prefix: str, matrix: np.ndarray) -> None:
    we, row, col, data = (getattr(dut, f"{prefix}_{x}") for x in ("we", "row", "col", "data"))
    we.value = 1
    for (i, j), v in np.ndenumerate(matrix):
        row.value, col.value, data.value = i, j, int(v)
        await _fall(dut)
    we.value = 0


async def _count(dut, expected: int, period: int) -> tuple[int, float, float]:
    """Pulse start; return (cycles, time of edge 0, time of the done edge) in ps."""
    dut.start.value = 1
    await _fall(dut)
    t0 = get_sim_time("ps") - period // 2  # edge 0 sampled start
    dut.start.value = 0
    # done is monotonic until the next start: skip to just before the expected edge, then step
    cycles = 0
    if expected > 1:
        await _fall(dut, expected - 1)
        cycles = expected - 1
        if str(dut.done.value) == "1":  # it rose early: count from here is meaningless, report the minimum
            return -1, t0, get_sim_time("ps") - period // 2
    limit = 4 * expected + 64
    while cycles < limit:
        await _fall(dut)
        cycles += 1
        if str(dut.done.value) == "1":
            return cycles, t0, get_sim_time("ps") - period // 2
    return 0, t0, get_sim_time("ps")


async def _read(dut, m: int, n: int) -> np.ndarray:
    """The address set at a falling edge is sampled at the next rising edge; the word is there after it."""
    got = np.full((m, n), -1, dtype=np.int64)
    for i in range(m):
        for j in range(n):
            dut.c_row.value, dut.c_col.value = i, j
            await _fall(dut)
            got[i, j] = _word(dut.c_data.value)
    return got


def _word(value) -> int:
    return value.to_unsigned() if value.is_resolvable else -1


@cocotb.test()
async def gemms(dut):
    cfg = json.loads(open(os.environ["AXF_BENCH"], encoding="utf-8").read())
    period = int(cfg["period_ps"])
    cocotb.start_soon(Clock(dut.clk, period, unit="ps").start())  # type: ignore[arg-type]
    for name in ("a_we", "b_we", "start", "a_row", "a_col", "a_data", "b_row", "b_col", "b_data", "m", "k",
                 "n", "split", "c_row", "c_col"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await _fall(dut, 3)
    dut.rst.value = 0
    await _fall(dut)
    results = []
    failures = []
    for g in cfg["gemms"]:
        data = np.load(g["data"])
        A, B, C = data["A"], data["B"], data["C"]
        await _load(dut, "a", A)
        await _load(dut, "b", B)
        dut.m.value, dut.k.value, dut.n.value, dut.split.value = g["m"], g["k"], g["n"], g["split"]
        if "skip" in g or hasattr(dut, "skip"):  # tile skipping: the K-tiles of each N panel not run
            dut.skip.value = int(g.get("skip", 0))
        cycles, t0, t1 = await _count(dut, int(g["cycles"]), period)
        got = await _read(dut, g["m"], g["n"]) if cycles > 0 else np.full(C.shape, -1, dtype=np.int64)
        np.save(g["out"], got)
        bad = np.argwhere(got != C)
        res = {"name": g["name"], "cycles": cycles, "expected_cycles": int(g["cycles"]),
               "mismatches": len(bad), "unknown": int((got < 0).sum()), "t_start_ps": t0, "t_done_ps": t1}
        results.append(res)
        if cycles != int(g["cycles"]):
            what = "never" if cycles == 0 else ("before the expected edge" if cycles < 0 else f"after {cycles}")
            failures.append(f"{g['name']}: done rose {what} cycles, the rtl model predicts {g['cycles']}")
        if len(bad):
            i, j = (int(x) for x in bad[0])
            failures.append(f"{g['name']}: {len(bad)} of {C.size} results differ from the reference; first "
                            f"C[{i}][{j}] = {int(got[i, j])}, expected {int(C[i, j])}")
    with open(cfg["summary"], "w", encoding="utf-8") as f:
        json.dump({"gemms": results}, f)
    if failures:
        raise AssertionError("; ".join(failures))
