"""The stage contract (core/stage.py): validation before the disk, one config.json schema for every
command, the resume fingerprint refused by name, the report returned to the caller."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _accel_runs import mult_run

import flow
from core import stage
from core.config import option
from core.errors import ConfigError


def _schema(run: Path, command: str) -> dict[str, Any]:
    conf = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert tuple(conf) == stage.SCHEMA
    assert conf["command"] == command and isinstance(conf["settings"], dict)
    assert conf["packages"]["python"] and conf["packages"]["numpy"]
    return conf


# ------------------------------------------------------------------ a stage of the test's own
@dataclass(frozen=True)
class CountConfig:
    alpha: int = option(1, help="a setting that matters on resume")
    beta: int = option(1, help="one that may change")
    tag: str | None = option(None, help="run name")
    run_dir: Path | None = option(None, help="run directory")
    overwrite: bool = option(False, help="replace")
    resume: bool = option(False, help="continue")

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ConfigError(f"ALPHA must be >= 0, not {self.alpha!r}")


class CountStage(stage.Stage):
    """Writes the sum of its settings and how many times it ran on the directory."""

    name = "count"
    Config = CountConfig
    resumable = True
    fingerprint = ("alpha",)

    def run(self, ctx: stage.Context) -> dict[str, Any]:
        earlier = json.loads((ctx.run.path / "report.json").read_text())["runs"] if ctx.resumed else 0
        return {"sum": ctx.cfg.alpha + ctx.cfg.beta, "runs": earlier + 1}

    def markdown(self, report: dict[str, Any]) -> str:
        return f"# sum {report['sum']}\n"


def test_report_is_returned_and_written(tmp_path):
    report = CountStage().execute(CountConfig(alpha=2, beta=3, run_dir=tmp_path / "r"))
    assert report == {"sum": 5, "runs": 1}
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == report
    assert (tmp_path / "r" / "report.md").read_text() == "# sum 5\n"
    assert _schema(tmp_path / "r", "count")["settings"]["alpha"] == 2


def test_resume_refuses_a_changed_fingerprint_by_name(tmp_path):
    s = CountStage()
    s.execute(CountConfig(alpha=1, run_dir=tmp_path / "r"))
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=r"^RESUME: ALPHA differs from the run's \(1 -> 2\)$"):
        s.execute(CountConfig(alpha=2, resume=True, run_dir=tmp_path / "r"), given=["alpha", "resume", "run_dir"])
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()} == before


def test_resume_takes_the_stored_settings_and_those_given_again(tmp_path):
    s = CountStage()
    s.execute(CountConfig(alpha=4, beta=1, run_dir=tmp_path / "r"))
    # alpha not given again: the run's own; beta given: it changes
    report = s.execute(CountConfig(beta=7, resume=True, run_dir=tmp_path / "r"), given=["beta", "resume", "run_dir"])
    assert report == {"sum": 11, "runs": 2}
    assert _schema(tmp_path / "r", "count")["settings"]["beta"] == 7


def test_an_existing_run_is_refused_before_the_stage_runs(tmp_path):
    s = CountStage()
    s.execute(CountConfig(run_dir=tmp_path / "r"))
    with pytest.raises(ConfigError, match=r"already exists \(use --overwrite to replace it or --resume"):
        s.execute(CountConfig(beta=2, run_dir=tmp_path / "r"))
    assert json.loads((tmp_path / "r" / "report.json").read_text())["sum"] == 2


# ------------------------------------------------------------------ the commands
@pytest.mark.parametrize("argv, pattern", [
    (["accel", "--array", "0x8"], r"^error: ARRAY must be ROWSxCOLS"),
    (["accel", "--clock-period", "0"], r"^error: CLOCK_PERIOD must be > 0 ns, not 0\.0$"),
    (["ppa", "--verilog", "/no/such.v", "--top", "m"], r"^error: VERILOG /no/such\.v does not exist$"),
    (["ppa", "--verilog", "{tmp}/m.v", "--top", "m", "--bits", "17"],
     r"^error: BITS must be an operand width in 2\.\.16, not 17$"),
    (["array", "--bits", "1"], r"^error: BITS must be an operand width in 2\.\.16, not 1$"),
    (["dnn", "--tag", "a/b"], r"^error: TAG must be a directory name without '/', not 'a/b'$"),
    (["evolve", "--tag", ".x"], r"^error: TAG must be a directory name without '/', not '\.x'$"),
], ids=["accel-array", "accel-clock", "ppa-missing-verilog", "ppa-bits", "array-bits", "dnn-tag", "evolve-tag"])
def test_validation_before_any_directory(tmp_path, capsys, argv, pattern):
    import re

    (tmp_path / "m.v").write_text("module m (a, b, y); input [3:0] a, b; output [7:0] y; assign y = a * b; "
                                  "endmodule\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert flow.main([*argv, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(pattern, err[0]), err
    assert not (tmp_path / "r").exists()


def test_accel_writes_the_one_schema_and_returns_its_report(tmp_path):
    from accel_models.cli import STAGE
    from accel_models.evaluation import AccelConfig

    run = mult_run(tmp_path)
    report = STAGE.execute(AccelConfig(net="lenet5", array="8x8", mult=str(run), clock_period=5.0,
                                       run_dir=tmp_path / "a"), progress=False)
    assert report == json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["clock_ns"] == 5.0
    conf = _schema(tmp_path / "a", "accel")
    assert conf["settings"]["clock_period"] == 5.0 and conf["tools"] == {}
    # and the accelerator model reads its settings back from it (the DNN level's --accel)
    from accel_models.api import load_config

    back = load_config(tmp_path / "a" / "config.json")
    assert (back.net, back.array, back.mult, back.clock_period) == ("lenet5", "8x8", str(run), 5.0)


@pytest.mark.tools
def test_ppa_writes_the_one_schema(tmp_path):
    from conftest import need_tools

    need_tools("yosys", "iverilog", "vvp", "sta")
    v = tmp_path / "m.v"
    v.write_text("module m (a, b, y);\n input [2:0] a; input [2:0] b; output [5:0] y;\n assign y = a * b;\n"
                 "endmodule\n")
    assert flow.main(["ppa", "--verilog", str(v), "--top", "m", "--bits", "3", "--no-signed",
                      "--power-vectors", "50", "--run-dir", str(tmp_path / "p")]) == 0
    conf = _schema(tmp_path / "p", "ppa")
    assert set(conf["tools"]) == {"yosys", "iverilog", "vvp", "sta"} and all(conf["tools"].values())
    assert conf["settings"]["top"] == "m" and conf["settings"]["bits"] == 3


@pytest.mark.tools
@pytest.mark.sim
def test_array_writes_the_one_schema(tmp_path):
    from conftest import need_tools

    need_tools("yosys", "iverilog", "vvp")
    assert flow.main(["array", "--rows", "2", "--cols", "2", "--no-ppa", "--quiet", "--run-dir",
                      str(tmp_path / "a")]) == 0
    conf = _schema(tmp_path / "a", "array")
    assert set(conf["tools"]) == {"yosys", "iverilog", "vvp"} and conf["settings"]["rows"] == 2


# ------------------------------------------------------------------ dnn --resume with other --mults
def _dnn_runs(tmp_path: Path) -> dict[int, str]:
    from dnn import fixtures

    return {k: str(fixtures.write_run(tmp_path / f"ba{k}", fixtures.broken_array(k), {
        "area": 1000.0 - 50 * k, "energy_pj": 1.0 - 0.05 * k, "power_w": 1e-4, "clock_period_ns": 10.0,
        "exact": {"area": 1000.0, "power_w": 1e-4, "delay_ns": 3.0}})) for k in (3, 7)}


@pytest.mark.slow
def test_dnn_resume_with_other_mults_keys_rows_by_multiplier(tmp_path):
    """The candidates are sorted by energy: adding a cheaper one moves the others' indices. A resumed run
    must attach every earlier accuracy to the multiplier it was measured with."""
    pytest.importorskip("torch")
    runs = _dnn_runs(tmp_path)
    common = ["dnn", "--net", "lenet5", "--data", "digits", "--method", "exhaustive", "--epochs", "1",
              "--qat-epochs", "0", "--finetune-epochs", "0", "--eval-images", "60", "--threads", "1",
              "--cache-dir", str(tmp_path / "cache"), "--max-acc-loss", "0.5", "--quiet"]

    def rows(run: Path) -> dict[str, float]:
        out = {}
        for line in (run / "evaluations.jsonl").read_text().splitlines():
            r = json.loads(line)
            out[json.dumps(r["assignment"], sort_keys=True)] = r["accuracy"]
        return out

    assert flow.main([*common, "--mults", runs[3], "--run-dir", str(tmp_path / "r")]) == 0
    first = rows(tmp_path / "r")
    # ba7 is cheaper than ba3: it takes index 1, ba3 moves to 2
    assert flow.main([*common, "--mults", runs[3], runs[7], "--run-dir", str(tmp_path / "r"), "--resume"]) == 0
    assert flow.main([*common, "--mults", runs[3], runs[7], "--run-dir", str(tmp_path / "fresh")]) == 0
    fresh = rows(tmp_path / "fresh")
    resumed = json.loads((tmp_path / "r" / "report.json").read_text())
    assert resumed["evaluations"] == len(fresh) == 3 ** 5
    # every earlier row kept its multiplier: its accuracy is what a fresh run measures for that assignment
    for key, acc in first.items():
        assert fresh[key] == pytest.approx(acc), key
    import csv

    with open(tmp_path / "r" / "evaluations.csv", newline="") as f:
        for r in csv.DictReader(f):
            key = json.dumps(json.loads(r["assignment"]), sort_keys=True)
            assert float(r["accuracy"]) == pytest.approx(fresh[key]), key
    # a setting of the fingerprint is refused by name
    with pytest.raises(ConfigError, match=r"^RESUME: EVAL_IMAGES differs from the run's \(60 -> 50\)$"):
        from dnn.cli import STAGE

        STAGE.execute(STAGE.Config(net="lenet5", data="digits", eval_images=50, resume=True,
                                   run_dir=tmp_path / "r"), given=["eval_images", "resume", "run_dir"])


# ------------------------------------------------------------------ composites resume by finished members
@pytest.mark.parametrize("command, module", [("sweep", "evolve.sweep"), ("library", "evolve.library")],
                         ids=["sweep", "library"])
def test_a_composite_refuses_a_changed_shared_setting_by_name(tmp_path, capsys, command, module):
    import importlib

    composite = importlib.import_module(module).STAGE
    d = tmp_path / "c"
    d.mkdir()
    cfg = composite.Config(eps=(0.01,), bits=4, run_dir=d)
    (d / "config.json").write_text(json.dumps(composite.config_json(cfg)))
    before = (d / "config.json").read_bytes()
    code = flow.main([command, "--eps", "0.01", "--bits", "3", "--run-dir", str(d), "--quiet"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: RESUME: BITS differs from the run's (4 -> 3)"
    assert sorted(p.name for p in d.iterdir()) == ["config.json"] and (d / "config.json").read_bytes() == before


def test_default_run_directories_lie_under_the_one_runs_root(tmp_path, monkeypatch):
    from accel_models.cli import STAGE
    from accel_models.evaluation import AccelConfig

    monkeypatch.setenv("AXFLOW_RUNS", str(tmp_path / "runs"))
    report = STAGE.execute(AccelConfig(net="lenet5", array="8x8", tag="t"), progress=False)
    assert report["run_dir"] == str((tmp_path / "runs" / "accel" / "t").resolve())
    assert _schema(tmp_path / "runs" / "accel" / "t", "accel")["settings"]["tag"] == "t"
