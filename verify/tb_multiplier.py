"""cocotb bench for a combinational multiplier with ports ``a``, ``b``, ``y``.

It applies every vector of a vector file, records the product codes it reads back, writes them for
the flow to compare, and fails unless (1) every code equals the expected table bit for bit and (2) when
a goldenbrick table and a WCE limit are given, every |y - a*b| is within the limit.

Configuration (JSON at ``$AXF_BENCH``): ``vectors`` (.npz with ``a``, ``b`` operand codes and
``expected`` output codes), ``wa``, ``wb``, ``signed``, ``wce_limit`` (or null), ``period_ps`` (how
long each vector is held; 1000 by default), ``out`` (.npy for the simulated codes), ``summary`` (.json).
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import Timer

from core import golden


@cocotb.test()
async def vectors(dut):
    cfg = json.loads(open(os.environ["AXF_BENCH"], encoding="utf-8").read())
    data = np.load(cfg["vectors"])
    a, b, expected = data["a"], data["b"], data["expected"]
    wa, wb, is_signed = cfg["wa"], cfg["wb"], cfg["signed"]
    n = len(a)
    period = int(cfg.get("period_ps", 1000))
    got = np.full(n, -1, dtype=np.int64)  # -1: X or Z on y
    unknown = 0
    for i in range(n):
        dut.a.value = int(a[i])
        dut.b.value = int(b[i])
        await Timer(period, "ps")
        value = dut.y.value
        if value.is_resolvable:
            got[i] = value.to_unsigned()
        else:
            unknown += 1
    np.save(cfg["out"], got)
    bad = np.flatnonzero(got != expected)
    summary: dict[str, int | None] = {"vectors": n, "mismatches": len(bad), "unknown": unknown}
    wce = None
    if cfg.get("wce_limit") is not None:
        ok = got >= 0
        exact = golden.values(wa, is_signed)[a] * golden.values(wb, is_signed)[b]
        err = np.abs(golden.decode(got, wa + wb, is_signed) - exact)
        wce = int(err[ok].max()) if ok.any() else None
        summary.update({"wce": wce, "wce_limit": cfg["wce_limit"]})
    with open(cfg["summary"], "w", encoding="utf-8") as f:
        json.dump(summary, f)
    if len(bad):
        i = int(bad[0])
        raise AssertionError(f"{len(bad)} of {n} products differ from the expected table; first: "
                             f"a=0x{int(a[i]):x} b=0x{int(b[i]):x} y={int(got[i])} expected {int(expected[i])}")
    if wce is not None and wce > cfg["wce_limit"]:
        raise AssertionError(f"worst-case error {wce} exceeds the limit {cfg['wce_limit']}")
