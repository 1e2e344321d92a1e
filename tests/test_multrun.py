"""The multiplier run model (core.multrun): one line per missing or inconsistent file."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from core import golden, multrun
from core.errors import ConfigError
from core.multrun import MultiplierRun

REPORT = {"design": "mul4s", "module": "mul4s_x", "wa": 4, "wb": 4, "signed": True, "eps": 0.05}


def _run(tmp_path, **report):
    return MultiplierRun.write(tmp_path / "r", {**REPORT, **report}, lut=golden.table(4, 4, True),
                               verilog="module mul4s_x (a, b, y);\nendmodule\n")


def test_write_then_load(tmp_path):
    run = _run(tmp_path)
    again = MultiplierRun.load(run.path, 4, 4, True, need=(multrun.LUT, multrun.VERILOG))
    assert (again.wa, again.wb, again.signed, again.design) == (4, 4, True, "mul4s")
    assert np.load(run.path / "lut.npy").dtype == np.int32
    assert np.array_equal(again.lut(), golden.table(4, 4, True))
    assert again.verilog().startswith("module mul4s_x")


@pytest.mark.parametrize("case,message", [
    ("nodir", r"^multiplier run directory .*nowhere does not exist$"),
    ("nolut", r"^multiplier run directory .* has no lut\.npy$"),
    ("noreport", r"^multiplier run directory .* has no report\.json$"),
    ("badjson", r"^multiplier report .*report\.json must be valid JSON, not a corrupt file"),
    ("list", r"^multiplier report .*report\.json must hold a JSON object, not list$"),
    ("nowb", r"^.*report\.json has no 'wb' entry$"),
    ("badsigned", r"^.*report\.json: wa and wb must be positive integers and signed a boolean$"),
    ("wa", r"^the multiplier in .* has 4-bit a operands, not 8$"),
    ("signed", r"^the multiplier in .* is signed, not unsigned$"),
], ids=["nodir", "nolut", "noreport", "badjson", "list", "nowb", "badsigned", "wa", "signed"])
def test_bad_run(tmp_path, case, message):
    run = _run(tmp_path).path
    kwargs: dict = {"need": (multrun.LUT,)}
    if case == "nodir":
        run = tmp_path / "nowhere"
    elif case == "nolut":
        (run / "lut.npy").unlink()
    elif case == "noreport":
        (run / "report.json").unlink()
    elif case == "badjson":
        (run / "report.json").write_text("{", encoding="utf-8")
    elif case == "list":
        (run / "report.json").write_text("[]", encoding="utf-8")
    elif case == "nowb":
        (run / "report.json").write_text(json.dumps({"wa": 4, "signed": True}), encoding="utf-8")
    elif case == "badsigned":
        (run / "report.json").write_text(json.dumps({**REPORT, "signed": 1}), encoding="utf-8")
    elif case == "wa":
        kwargs["wa"] = 8
    else:
        kwargs["signed"] = False
    with pytest.raises(ConfigError, match=message):
        MultiplierRun.load(run, **kwargs)


def test_lut_must_fit_the_report(tmp_path):
    run = _run(tmp_path)
    multrun.write_lut(run.path, np.zeros((8, 16)))
    with pytest.raises(ConfigError,
                       match=r"^product table .*lut\.npy must have shape \(16, 16\), not \(8, 16\)$"):
        run.lut()


def test_latest_picks_the_newest_verified_run(tmp_path):
    for i, passed in enumerate((True, True, False)):
        report = {**REPORT, "verification": {"passed": passed}}
        MultiplierRun.write(tmp_path / "runs" / "mul4s" / f"t{i}", report, lut=golden.table(4, 4, True),
                            verilog="module m; endmodule\n")
        time.sleep(0.01)
    assert multrun.latest(tmp_path / "runs", 0.05, "mul4s") == tmp_path / "runs" / "mul4s" / "t1"
    assert multrun.latest(tmp_path / "runs", 0.01, "mul4s") is None
