"""The ws array with tile skipping: all-zero weight tiles are not run, in the cycles of accel_models' sparse
schedule, and their products (which an offset multiplier makes non-zero) are not added."""

from __future__ import annotations

import numpy as np
import pytest
from _array_fixtures import offset_run

from accel_models import sparsity as accel_sparsity
from accel_models.layers import fc
from accel_models.memory import MemConfig
from accel_models.model import Accelerator, Hardware
from conftest import need_tools
from core.errors import ConfigError
from core.run import RunDir
from rtl_gen import array as arr
from rtl_gen import rtl_cycles
from verify import array as varray


def _skip(mask: np.ndarray, k: int, n: int, rows: int, cols: int, block: int) -> tuple[tuple[bool, ...], ...]:
    """skip[i][j]: K-tile i of panel j holds no kept block (block a multiple of rows: one block-row)."""
    out = []
    for i in range(rtl_cycles.ceil_div(k, rows)):
        br = i * rows // block
        out.append(tuple(not mask[0, br, j * cols // block: rtl_cycles.ceil_div(min(n, (j + 1) * cols), block)].any()
                         for j in range(rtl_cycles.ceil_div(n, cols))))
    return tuple(out)


def _masks(k: int, n: int, block: int, seed: int) -> dict[str, np.ndarray]:
    kb, nb = rtl_cycles.ceil_div(k, block), rtl_cycles.ceil_div(n, block)
    rng = np.random.default_rng(seed)
    random = rng.random((1, kb, nb)) < 0.5
    random[0, 0, 0] = True
    dead = random.copy()
    dead[0, :, -1] = False  # the last block column (its panels) keeps nothing
    return {"random": random, "dead_panel": dead, "dense": np.ones((1, kb, nb), bool)}


CASES = [(4, 4, 1, 4, 5, 20, 9), (4, 4, 1, 8, 6, 24, 12), (2, 2, 2, 4, 3, 12, 9)]


@pytest.mark.tools
@pytest.mark.sim
@pytest.mark.parametrize("rows,cols,pods,block,m,k,n", CASES, ids=[f"{c[0]}x{c[1]}-p{c[2]}-b{c[3]}" for c in CASES])
def test_tile_skipping_array_runs_in_the_models_sparse_cycles(tmp_path, rows, cols, pods, block, m, k, n):
    need_tools("yosys", "iverilog")
    spec = arr.evolved_multiplier(offset_run(tmp_path / "mult"))  # T[a, 0] = 3: a computed zero tile shows
    hw = Hardware(rows, cols, pods, "ws", "n", "rtl", MemConfig(), block)
    layer = fc("gemm", k, n, batch=m)
    gemms = []
    for name, mask in _masks(k, n, block, seed=rows + block).items():
        perf = Accelerator(hw).layer(layer, mask)
        keff = accel_sparsity.k_eff(mask, layer, cols, block, "ws")[0]
        assert perf.compute_cycles == rtl_cycles.plan(m, k, n, rows=rows, cols=cols, dataflow="ws", pods=pods,
                                                      split="n", k_eff=list(keff)).cycles
        gemms.append(varray.Gemm(name, m, k, n, "n", _skip(mask, k, n, rows, cols, block), perf.compute_cycles))
    g = arr.Geometry(rows, cols, pods, "ws", 4, 4, True, 32, m, k, n, tile_skip=True)
    d = arr.generate(g, spec)
    run = RunDir.create(tmp_path / "run")
    res = varray.run(run, name="verify", sources=[d.write(run.path / "array.v")], top=d.top, geometry=g,
                     lut=spec.lut(), gemms=gemms, seed=5)
    assert res.bench.passed, res.bench.messages
    by = {r.gemm.name: r for r in res.gemms}
    assert sorted(by) == ["dead_panel", "dense", "random"]
    for r in res.gemms:
        assert r.cycles == r.gemm.cycles and r.mismatches == 0, r.gemm.name
    assert by["dense"].cycles == rtl_cycles.gemm_cycles(m, k, n, rows=rows, cols=cols, dataflow="ws", pods=pods)
    assert by["random"].cycles < by["dense"].cycles and by["dead_panel"].cycles < by["random"].cycles


def test_tile_skipping_needs_ws():
    with pytest.raises(ConfigError, match=r"^DATAFLOW must be ws with tile skipping"):
        arr.Geometry(2, 2, 1, "os", 4, 4, True, tile_skip=True)


def test_array_without_tile_skipping_has_no_skip_port():
    g = arr.Geometry(2, 2, 1, "ws", 4, 4, True)
    spec = arr.exact_multiplier(4, 4, True)
    assert arr.default_prefix(g, spec) != arr.default_prefix(arr.Geometry(2, 2, 1, "ws", 4, 4, True, tile_skip=True),
                                                               spec)
    assert "skip" not in arr.generate(g, spec).text()


@pytest.mark.tools
@pytest.mark.sim
def test_flow_array_tile_skip(tmp_path):
    """`flow.py array --tile-skip`: every test GEMM dense and with half its tiles skipped, all cycle-exact."""
    import json

    import flow

    need_tools("iverilog")
    run = tmp_path / "arr"
    assert flow.main(["array", "--rows", "2", "--cols", "2", "--no-ppa", "--quiet", "--tile-skip",
                      "--shapes", "3x5x4", "4x8x6", "--run-dir", str(run)]) == 0
    v = json.loads((run / "report.json").read_text())["verification"]
    names = [g["name"] for g in v["gemms"]]
    assert names == ["shape_3x5x4_n", "shape_4x8x6_n", "shape_3x5x4_n_skip", "shape_4x8x6_n_skip"]
    assert v["passed"] and all(g["cycles_match"] and g["mismatches"] == 0 for g in v["gemms"])
    cyc = {g["name"]: g["cycles"] for g in v["gemms"]}
    assert cyc["shape_4x8x6_n_skip"] < cyc["shape_4x8x6_n"]
    assert flow.main(["array", "--dataflow", "os", "--tile-skip", "--no-ppa", "--quiet",
                      "--run-dir", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
