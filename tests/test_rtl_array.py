"""Systolic and multi-pod arrays: generation, and cocotb benches on Icarus that check every result
against the LUT reference and every cycle count against the ``rtl`` model of accel_models."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from _array_fixtures import offset_run

from conftest import need_tools
from core.errors import ConfigError
from core.run import RunDir
from rtl_gen import array as arr
from rtl_gen import rtl_cycles
from verify import array as varray


def geometry(rows=2, cols=3, pods=1, dataflow="ws", bits=4, gemms=(), **kw):
    sized = list(gemms) or varray.default_gemms(rows, cols, pods)
    return arr.Geometry(rows, cols, pods, dataflow, bits, bits, kw.pop("signed", True), kw.pop("acc_bits", 32),
                        max(g.m for g in sized), max(g.k for g in sized), max(g.n for g in sized))


@pytest.mark.parametrize("kw,message", [
    (dict(rows=0), r"^ROWS must be a positive integer, not 0$"),
    (dict(cols=33), r"^COLS must be at most 32 \(the gate-level PPA of a larger array takes hours here\), not 33$"),
    (dict(rows=16, cols=16, pods=2), r"^ROWS x COLS x PODS must be at most 256 processing elements, not 512: "),
    (dict(dataflow="is"), r"^DATAFLOW must be one of the listed choices, not 'is' \(choices: ws, os\)$"),
    (dict(acc_bits=7), r"^ACC_BITS must be in 8\.\.64 \(at least the product width\), not 7$"),
], ids=["rows", "cols", "pes", "dataflow", "acc"])
def test_bad_geometry(kw, message):
    with pytest.raises(ConfigError, match=message):
        geometry(**kw)


def test_verilog_is_self_contained_with_one_pe_and_the_multiplier(tmp_path):
    mult = offset_run(tmp_path / "m")
    need_tools("yosys", "iverilog")
    spec = arr.evolved_multiplier(mult)
    d = arr.generate(geometry(rows=3, cols=2, pods=2), spec)
    text = d.text()
    modules = re.findall(r"^module\s+(\S+?)\s*\(", text, re.M)
    assert modules.count(d.mult_module) == 1 and modules.count(d.pe) == 1 and modules.count(d.top) == 1
    assert spec.module not in modules  # shipped under the array's prefix, so approx.v can be read beside it
    assert (mult / "approx.v").read_text().replace(spec.module, d.mult_module) in text  # otherwise verbatim
    assert len(re.findall(rf"^\s*{d.pe}\s+\S+\s*\(", text, re.M)) == 3 * 2 * 2  # one instance per PE
    out = d.write(tmp_path / "array.v")
    proc = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.out"), "-s", d.top, str(out)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_array_operands_must_match_the_multiplier(tmp_path):
    spec = arr.exact_multiplier(4, 4, True)
    with pytest.raises(ConfigError, match=r"^the multiplier exact is 4x4 signed, the array 8x8 signed$"):
        arr.generate(geometry(bits=8), spec)


@pytest.mark.parametrize("ports,message", [
    ((4, 4, 9), r"^module mul4s_ax_offset3 in .*approx\.v must have ports input a\[4\], input b\[4\], "
                r"output y\[8\] \(from report\.json\), not input a\[4\], input b\[4\], output y\[9\]$"),
    ((5, 4, 8), r"^module mul4s_ax_offset3 in .*approx\.v must have ports input a\[4\]"),
], ids=["y", "a"])
def test_evolved_multiplier_ports_must_match_its_report(tmp_path, ports, message):
    need_tools("yosys")
    run = offset_run(tmp_path / "m", ports=ports)
    with pytest.raises(ConfigError, match=message):
        arr.evolved_multiplier(run)


def test_run_directory_without_approx_v(tmp_path):
    run = offset_run(tmp_path / "m")
    (run / "approx.v").unlink()
    with pytest.raises(ConfigError, match=r"^multiplier run directory .* has no approx\.v$"):
        arr.evolved_multiplier(run)


def test_masking_matters_for_the_offset_multiplier():
    """Zero padding would change the sums of a multiplier with lut[0, x] != 0: the benches below can fail."""
    table = arr.exact_multiplier(4, 4, True).lut() + 3
    rng = np.random.default_rng(0)
    A, B = rng.integers(0, 16, size=(3, 5)), rng.integers(0, 16, size=(5, 2))
    masked = varray.reference(A, B, table, 32)
    # a 2-row array padding K = 5 up to 6 with zero operands adds lut[0][0] once per output
    padded = varray.reference(np.pad(A, ((0, 0), (0, 1))), np.pad(B, ((0, 1), (0, 0))), table, 32)
    assert np.array_equal(padded, (masked + 3) & 0xFFFFFFFF)


CASES = [  # (dataflow, rows, cols, pods, multiplier)
    ("ws", 2, 3, 1, "exact"), ("os", 2, 3, 1, "exact"),
    ("ws", 3, 2, 2, "offset"), ("os", 2, 3, 2, "offset"),
    ("ws", 2, 2, 3, "exact"), ("os", 3, 2, 3, "offset"),
]


@pytest.mark.tools
@pytest.mark.sim
@pytest.mark.parametrize("df,rows,cols,pods,which", CASES,
                         ids=[f"{c[0]}-{c[1]}x{c[2]}-p{c[3]}-{c[4]}" for c in CASES])
def test_gemms_match_the_lut_reference_in_the_rtl_model_cycles(tmp_path, df, rows, cols, pods, which):
    """Square, tall, wide, ragged K, M/N below the array, and with several pods every split."""
    need_tools("yosys", "iverilog")
    spec = arr.exact_multiplier(4, 4, True) if which == "exact" else arr.evolved_multiplier(offset_run(tmp_path / "m"))
    gemms = varray.default_gemms(rows, cols, pods)
    g = geometry(rows, cols, pods, df, gemms=gemms)
    d = arr.generate(g, spec)
    run = RunDir.create(tmp_path / "run")
    res = varray.run(run, name="verify", sources=[d.write(run.path / "array.v")], top=d.top, geometry=g,
                     lut=spec.lut(), gemms=gemms, seed=rows * 10 + pods)
    assert res.bench.passed, res.bench.messages
    assert [r.gemm.name for r in res.gemms] == [g.name for g in gemms]
    for r in res.gemms:
        predicted = rtl_cycles.gemm_cycles(r.gemm.m, r.gemm.k, r.gemm.n, rows=rows, cols=cols, dataflow=df,
                                           pods=pods, split=r.gemm.split)
        assert r.cycles == predicted, r.gemm
        assert r.mismatches == 0, r.gemm
    assert {r.gemm.split for r in res.gemms} == ({"n", "m", "k"} if pods > 1 else {"n"})


@pytest.mark.tools
@pytest.mark.sim
@pytest.mark.parametrize("seed", [7, 8], ids=["seed7", "seed8"])
def test_unsigned_operands_and_other_seeds(tmp_path, seed):
    need_tools("yosys", "iverilog")
    spec = arr.evolved_multiplier(offset_run(tmp_path / "m", signed=False, offset=5))
    gemms = [varray.Gemm("a", 5, 7, 3), varray.Gemm("b", 1, 9, 4, "k")]
    g = geometry(2, 2, 2, "ws", gemms=gemms, signed=False)
    d = arr.generate(g, spec)
    run = RunDir.create(tmp_path / "run")
    res = varray.run(run, name="verify", sources=[d.write(run.path / "array.v")], top=d.top, geometry=g,
                     lut=spec.lut(), gemms=gemms, seed=seed)
    assert res.passed, res.bench.messages


@pytest.mark.tools
@pytest.mark.sim
def test_a_wrong_reference_fails_the_bench(tmp_path):
    """The bench really compares: with the exact table as reference, the offset multiplier's sums differ."""
    need_tools("yosys", "iverilog")
    spec = arr.evolved_multiplier(offset_run(tmp_path / "m"))
    gemms = [varray.Gemm("a", 3, 3, 2)]
    g = geometry(2, 2, 1, "os", gemms=gemms)
    d = arr.generate(g, spec)
    run = RunDir.create(tmp_path / "run")
    res = varray.run(run, name="verify", sources=[d.write(run.path / "array.v")], top=d.top, geometry=g,
                     lut=arr.exact_multiplier(4, 4, True).lut(), gemms=gemms, seed=1)
    assert not res.passed and res.gemms[0].mismatches == 6 and res.gemms[0].cycles == res.gemms[0].expected_cycles
    assert "results differ from the reference" in res.bench.messages[0]


@pytest.mark.slow
@pytest.mark.tools
@pytest.mark.sim
@pytest.mark.parametrize("df", ["ws", "os"])
def test_8x8_array_on_a_64_cube_gemm(tmp_path, df):
    need_tools("yosys", "iverilog")
    spec = arr.exact_multiplier(8, 8, True)
    gemms = [varray.Gemm("g64", 64, 64, 64)]
    g = arr.Geometry(8, 8, 1, df, 8, 8, True, 32, 64, 64, 64)
    d = arr.generate(g, spec)
    run = RunDir.create(tmp_path / "run")
    res = varray.run(run, name="verify", sources=[d.write(run.path / "array.v")], top=d.top, geometry=g,
                     lut=spec.lut(), gemms=gemms, seed=1)
    assert res.passed, res.bench.messages
    assert res.gemms[0].cycles == {"ws": 5634, "os": 5570}[df]  # RTL_TIMING.md section 7
