"""LUT exports read the way the consuming tools' own code reads them.

AdaPT: a C program includes the header through AdaPT's own ``#include STR(axx_mults/EXPAND(AXX_MULT).h)``
and indexes ``lut[(uint8_t)x][(uint8_t)y]`` with int8 operands in the order of AdaPT's kernels (conv2d:
weight first; linear: activation first). TFApprox: the ``.bin`` is read as native uint16 at
``(q_a << 8) | q_w`` with unsigned codes, and its convolution arithmetic
``total * s1 s2 + m2 sum(x) + m1 sum(w) - K m1 m2`` is recomputed from those entries.
"""

from __future__ import annotations

import csv
import shutil
import subprocess

import numpy as np
import pytest

import flow
from core import golden
from core.errors import ConfigError
from dnn import export, fixtures, mults

VALUES = np.r_[0:128, -128:0]  # operand value of each signed code


def _signed(seed: int = 3, spread: int = 40) -> np.ndarray:
    """An asymmetric signed table whose TFApprox entries q_a q_w + error stay in 0..65535."""
    lut = fixtures.lut_error(seed, spread, zero_exact=False)
    q = np.r_[128:256, 0:128]  # TFApprox's code q = value + 128 of each signed code
    qq = np.outer(q, q)
    exact = golden.table(8, 8, True)
    lut = exact + np.clip(lut - exact, -qq, 65535 - qq)
    assert not np.array_equal(lut, lut.T)
    return lut


def _unsigned(seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    exact = golden.table(8, 8, False)
    return np.clip(exact + rng.integers(-60, 61, size=exact.shape), 0, 65535)


ADAPT_MAIN = r"""
#include <stdint.h>
#include <stdio.h>
#define STR(s) STR2(s)
#define STR2(s) #s
#define EXPAND(s) s
#include STR(axx_mults/EXPAND(AXX_MULT).h)
/* out[act][w]: the product AdaPT's kernel accumulates for activation act and weight w */
int main(void) {
    static int32_t out[256][256];
    for (int ia = 0; ia < 256; ++ia)
        for (int iw = 0; iw < 256; ++iw) {
            int8_t act = (int8_t)ia, w = (int8_t)iw;
#ifdef CONV2D  /* axx_conv2d.cpp: my_addmm(output, weight, finput): A = weight, B = unfolded input */
            out[ia][iw] = lut[(uint8_t)w][(uint8_t)act];
#else          /* axx_linear.cpp: my_addmm(result, input, weights.t()): A = input */
            out[ia][iw] = lut[(uint8_t)act][(uint8_t)w];
#endif
        }
    fwrite(out, sizeof out, 1, stdout);
    return 0;
}
"""


def _adapt_read(tmp_path, header, kernel: str) -> np.ndarray:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (Debian package gcc)")
    inc = tmp_path / "axx_mults"
    inc.mkdir(exist_ok=True)
    shutil.copy(header, inc / header.name)
    src = tmp_path / "main.c"
    src.write_text(ADAPT_MAIN, encoding="utf-8")
    exe = tmp_path / f"read_{kernel}"
    argv = [cc, "-std=c99", "-Wall", "-Werror", "-O0", f"-I{tmp_path}", f"-DAXX_MULT={header.stem}",
            *(["-DCONV2D"] if kernel == "conv2d" else []), str(src), "-o", str(exe)]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    raw = subprocess.run([str(exe)], check=True, stdin=subprocess.DEVNULL, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.int32).reshape(256, 256).astype(np.int64)


@pytest.mark.parametrize("kernel", ["linear", "conv2d"])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_adapt_header_as_adapt_kernels_read_it(tmp_path, kernel, signed):
    lut = _signed() if signed else _unsigned()
    m = mults.Multiplier("mul8s/e0.01-seed1", lut, signed)
    paths = export.export(m, tmp_path / "luts", ("adapt",))
    assert [p.name for p in paths] == ["mul8s_e0_01_seed1_linear.h", "mul8s_e0_01_seed1_conv2d.h"]
    header = next(p for p in paths if p.stem.endswith(kernel))
    seen = _adapt_read(tmp_path, header, kernel)
    assert np.array_equal(seen, lut)
    exact = golden.table(8, 8, signed)
    assert np.abs(seen - exact).max() == np.abs(lut - exact).max()  # the WCE through AdaPT is the run's


def test_adapt_header_mirrors_adapt_exact_header(tmp_path):
    # AdaPT's mul8s_acc.h starts {0, 0, ...}, then {0, 1, 2, ..., 127, -128, ..., -1}: row = first operand's code
    m = mults.Multiplier("exact8s", golden.table(8, 8, True), True)
    (linear, _) = export.export(m, tmp_path, ("adapt",))
    text = linear.read_text()
    assert "const int32_t lut[256][256] = {" in text
    rows = [line for line in text.splitlines() if line.startswith("  {")]
    assert rows[1] == "  {" + ", ".join(map(str, VALUES.tolist())) + "},"


def _tfapprox_entries(path) -> np.ndarray:
    raw = np.fromfile(path, dtype="<u2")  # TFApprox: std::vector<uint16>, file.read of 65536 * 2 bytes
    assert raw.size == 1 << 16
    return raw.astype(np.int64)


def _tfapprox_default() -> np.ndarray:
    i = np.arange(1 << 16)
    return ((i >> 8) * (i & 0xFF)).astype("<u2")  # lookupTable[i] = ATVT(i >> 8) * ATVT(i & 0xFF)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_tfapprox_exact_is_tfapprox_own_table(tmp_path, signed):
    m = mults.Multiplier("exact", golden.table(8, 8, signed), signed)
    (path,) = export.export(m, tmp_path, ("tfapprox",))
    assert path.read_bytes() == _tfapprox_default().tobytes()


def test_tfapprox_unsigned_index_is_act_shift_8_or_weight(tmp_path):
    lut = _unsigned()
    (path,) = export.export(mults.Multiplier("u", lut, False), tmp_path, ("tfapprox",))
    t = _tfapprox_entries(path)
    qa, qw = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    assert np.array_equal(t[(qa << 8) | qw], lut)


def _tfapprox_conv(t: np.ndarray, x: np.ndarray, w: np.ndarray, s1: float, m1: float, s2: float, m2: float):
    """TFApprox's reference table convolution of one output (approx_nn_conv_ops_ref.cpp), in float64."""
    qx = np.floor((x - m1) / s1 + 0.5).astype(np.int64)  # AT(((v - offset) * invScale) + 0.5)
    qw = np.floor((w - m2) / s2 + 0.5).astype(np.int64)
    total = t[(qx << 8) | qw].sum(axis=-1).astype(np.float64)
    return total * s1 * s2 + m2 * x.sum(axis=-1) + m1 * w.sum(axis=-1) - x.shape[-1] * m1 * m2


@pytest.mark.parametrize("table", ["asymmetric", "broken_array4"])
def test_tfapprox_signed_conversion_is_the_signed_hardware(tmp_path, table):
    lut = _signed() if table == "asymmetric" else fixtures.broken_array(4)
    m = mults.Multiplier("s", lut, True)
    (path,) = export.export(m, tmp_path, ("tfapprox",))
    t = _tfapprox_entries(path)
    # the symmetric INT8 range: min = -128 s, max = 127 s, so TFApprox's zero point is 128
    s1, s2 = 0.5, 0.25
    a, w = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    out = _tfapprox_conv(t, (s1 * a)[..., None], (s2 * w)[..., None], s1, -128 * s1, s2, -128 * s2)
    want = s1 * s2 * lut[a & 0xFF, w & 0xFF]
    assert np.array_equal(out, want)  # all 65,536 products
    exact = a * w
    assert np.abs(out / (s1 * s2) - exact).max() == np.abs(lut - golden.table(8, 8, True)).max()
    rng = np.random.default_rng(5)
    xa, xw = rng.integers(-128, 128, size=(64, 27)), rng.integers(-128, 128, size=(64, 27))
    out = _tfapprox_conv(t, s1 * xa, s2 * xw, s1, -128 * s1, s2, -128 * s2)
    assert np.array_equal(out, s1 * s2 * lut[xa & 0xFF, xw & 0xFF].sum(axis=-1))


def test_tfapprox_signed_that_does_not_fit_is_an_error(tmp_path):
    lut = golden.table(8, 8, True).copy()
    lut[128, 5] -= 1  # a = -128, w = 5: TFApprox's entry would be -1
    m = mults.Multiplier("mul8s/bad", lut, True)
    with pytest.raises(ConfigError, match=r"^TFApprox table entries of signed \(converted to TFApprox's "
                       r"unsigned offset-binary codes\) multiplier mul8s/bad must be in 0\.\.65535, not -1 "
                       r"\(a=-128, w=5\)"):
        export.export(m, tmp_path / "luts", ("tfapprox",))
    assert not (tmp_path / "luts").exists()


def test_dnn_refuses_tfapprox_before_the_run(tmp_path, capsys):
    pytest.importorskip("torch")
    lut = golden.table(8, 8, True).copy()
    lut[5, 128] -= 3
    costs = {"area": 800.0, "energy_pj": 0.8, "power_w": 8e-5,
             "exact": {"area": 1000.0, "power_w": 1e-4, "delay_ns": 3.0}}
    run = fixtures.write_run(tmp_path / "m", lut, costs)
    code = flow.main(["dnn", "--mults", str(run), "--export", "tfapprox", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "TFApprox table entries of signed" in err, err
    assert not (tmp_path / "r").exists()


def test_npy_and_csv_are_the_run_files(tmp_path):
    lut = _signed()
    run = fixtures.write_run(tmp_path / "run", lut, {})
    m = mults.Multiplier("r", lut, True)
    npy, csv_path = export.export(m, tmp_path / "luts", ("npy", "csv"))
    got = np.load(npy)
    assert got.dtype == np.int32 and np.array_equal(got, np.load(run / "lut.npy"))
    assert csv_path.read_bytes() == (run / "lut.csv").read_bytes()
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    first = rows[129]  # code-major rows: a code 0, b code 129 (value -127)
    assert (int(first["a"]), int(first["b"])) == (0, -127)
    assert int(first["y"]) == lut[0, 129]


def test_unknown_format_is_an_error(tmp_path):
    m = mults.Multiplier("r", golden.table(8, 8, True), True)
    with pytest.raises(ConfigError, match=r"^EXPORT must be one of the listed choices, not 'bin' "
                       r"\(choices: adapt, tfapprox, npy, csv\)$"):
        export.export(m, tmp_path, ("bin",))

