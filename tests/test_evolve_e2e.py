"""The evolve job end to end through the real command line, on small multipliers.

Every run must verify; its files must agree with each other (the product table is what the shipped
Verilog computes, within the WCE limit); runs are reproducible from their seed, resumable, and
survive Ctrl-C.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import need_tools
from core import golden

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.tools, pytest.mark.sim]
QUICK = ["--power-vectors", "200", "--jobs", "1", "--epoch", "200", "--quiet"]


def flow(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flow.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(autouse=True)
def _tools():
    need_tools("yosys", "iverilog", "vvp", "sta")


@pytest.fixture(scope="module")
def run4s(tmp_path_factory):
    """A 4x4 signed run at EPS 5% (limit 3), limited by generations: deterministic."""
    need_tools("yosys", "iverilog", "vvp", "sta")
    d = tmp_path_factory.mktemp("e2e") / "mul4s"
    proc = flow("evolve", "--bits", "4", "--eps", "0.05", "--generations", "3000", "--budget", "0", "--seed", "3",
                "--run-dir", str(d), *QUICK)
    assert proc.returncode == 0, proc.stderr
    return d


def test_report_and_files_agree(run4s):
    r = json.loads((run4s / "report.json").read_text())
    assert r["design"] == "mul4s" and r["wce_limit"] == 3 and r["norm"] == 64
    assert r["verification"]["passed"] and r["verification"]["exhaustive"]
    assert set(r["verification"]["benches"]) == {"exact_rtl", "seed_gates", "exact_mapped", "approx_gates",
                                                 "approx_mapped", "formal_rtl_vs_seed", "formal_approx_vs_mapped"}
    lut = np.load(run4s / "lut.npy")
    assert lut.dtype == np.int32 and lut.shape == (16, 16)
    exact = golden.table(4, 4, True)
    err = np.abs(lut - exact)
    assert err.max() == r["wce"] <= 3 and r["mae"] == pytest.approx(err.mean())
    assert r["er"] == pytest.approx(100 * np.mean(err != 0))
    # the shipped Verilog, simulated, produced exactly this table
    for bench in ("approx_gates", "approx_mapped"):
        simulated = np.load(run4s / "sim_build" / bench / "simulated.npy")
        assert np.array_equal(golden.decode(simulated, 8, True), lut.ravel())
    with open(run4s / "lut.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 256 and {int(rows[0]["a"]), int(rows[-1]["a"])} == {0, -1}
    assert all(int(row["y"]) == lut[int(row["a"]) & 15, int(row["b"]) & 15] for row in rows)
    for key in ("area_ratio", "transistor_ratio", "power_ratio", "delay_ratio"):
        assert 0 < r[key] < 1.5
    assert r["area"] == pytest.approx(r["area_ratio"] * r["exact"]["area"])
    assert r["evaluations"] > 0 and r["generations"] == 3000 and r["stop_reason"] == "3000 generations"
    assert not r["interrupted"]


def test_shipped_verilog_is_self_contained_with_top_last(run4s):
    text = (run4s / "approx.v").read_text()
    r = json.loads((run4s / "report.json").read_text())
    modules = [line.split()[1] for line in text.splitlines() if line.startswith("module ")]
    assert modules[-1] == r["module"] and r["module"].startswith("mul4s_ax_")
    assert "input [3:0] a;" in text and "output [7:0] y;" in text


def test_run_records_what_it_did(run4s):
    cfg = json.loads((run4s / "config.json").read_text())
    assert cfg["settings"]["eps"] == 0.05 and cfg["settings"]["seed"] == 3
    assert cfg["tools"]["yosys"] and cfg["tools"]["sta"] and cfg["tools"]["iverilog"]
    commands = (run4s / "COMMANDS").read_text()
    for tool in ("yosys", "iverilog", "vvp", "sta"):
        assert tool in commands
    logs = sorted(p.name for p in (run4s / "logs").glob("*.log"))
    assert logs and all(name.split("_", 1)[0].isdigit() for name in logs)
    with open(run4s / "evolution.csv", newline="") as f:
        book = list(csv.DictReader(f))
    assert int(book[-1]["generation"]) == 3000 and (run4s / "evolution.png").stat().st_size > 1000
    assert "PASSED" in (run4s / "report.md").read_text()


def test_same_seed_same_circuit(run4s, tmp_path):
    proc = flow("evolve", "--bits", "4", "--eps", "0.05", "--generations", "3000", "--budget", "0", "--seed", "3",
                "--run-dir", str(tmp_path / "again"), *QUICK)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again" / "approx.v").read_text() == (run4s / "approx.v").read_text()


def test_resume_continues_where_it_stopped(run4s, tmp_path):
    """2000 generations, then --resume to 3000, gives the circuit of a straight 3000-generation run."""
    d = tmp_path / "resumed"
    first = flow("evolve", "--bits", "4", "--eps", "0.05", "--generations", "2000", "--budget", "0", "--seed", "3",
                 "--run-dir", str(d), *QUICK)
    assert first.returncode == 0, first.stderr
    second = flow("evolve", "--resume", "--generations", "3000", "--run-dir", str(d), "--quiet")
    assert second.returncode == 0, second.stderr
    assert (d / "approx.v").read_text() == (run4s / "approx.v").read_text()
    assert json.loads((d / "report.json").read_text())["generations"] == 3000


def test_resume_refuses_a_changed_run(run4s, tmp_path):
    proc = flow("evolve", "--resume", "--eps", "0.1", "--run-dir", str(run4s))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: RESUME: EPS differs from the run's (0.05 -> 0.1)"


def test_corrupt_checkpoint_is_reported(tmp_path, run4s):
    import shutil

    d = tmp_path / "corrupt"
    shutil.copytree(run4s, d)
    (d / "checkpoint.npz").write_bytes(b"not a zip file")
    proc = flow("evolve", "--resume", "--run-dir", str(d), "--quiet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: checkpoint {d / 'checkpoint.npz'} is corrupt or truncated: delete it "
                                   "or use --overwrite to start again")


def test_foreign_checkpoint_is_reported(tmp_path, run4s):
    import shutil

    d = tmp_path / "foreign"
    shutil.copytree(run4s, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["settings"]["seed"] = 4
    (d / "config.json").write_text(json.dumps(cfg))
    proc = flow("evolve", "--resume", "--run-dir", str(d), "--quiet")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: checkpoint {d / 'checkpoint.npz'} belongs to a different run: SEED is 3 "
                                   "there, 4 here")


def test_unsigned_unequal_widths(tmp_path):
    d = tmp_path / "mul3x5u"
    proc = flow("evolve", "--bits", "3", "--bits-b", "5", "--no-signed", "--eps", "0.02", "--generations", "1000",
                "--budget", "0", "--run-dir", str(d), *QUICK)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((d / "report.json").read_text())
    lut = np.load(d / "lut.npy")
    assert r["design"] == "mul3x5u" and lut.shape == (8, 32) and r["wce_limit"] == 5
    assert np.abs(lut - golden.table(3, 5, False)).max() <= 5 and r["verification"]["passed"]


def test_technology_independence_gf180(tmp_path, gf180_dir):
    d = tmp_path / "gf"
    proc = flow("evolve", "--bits", "4", "--eps", "0.05", "--generations", "1000", "--budget", "0",
                "--tech", str(gf180_dir), "--run-dir", str(d), "--cost", "transistors", *QUICK)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((d / "report.json").read_text())
    assert r["tech"] == "gf180mcu" and r["verification"]["passed"]
    assert "gf180mcu_fd_sc_mcu9t5v0__" in (d / "approx_gf180mcu.v").read_text()
    assert r["cost_objective"] == "transistors" and r["power_w"] > 0 and r["delay_ns"] > 0


def test_ctrl_c_leaves_a_verified_design_and_a_checkpoint(tmp_path):
    d = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, str(ROOT / "flow.py"), "evolve", "--bits", "4", "--eps", "0.05",
                             "--budget", "300", "--run-dir", str(d), "--checkpoint-every", "1", *QUICK],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while not (d / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    r = json.loads((d / "report.json").read_text())
    assert r["interrupted"] and r["stop_reason"] == "interrupted" and r["verification"]["passed"]
    assert "interrupted" in (d / "report.md").read_text()
    resumed = flow("evolve", "--resume", "--budget", "3", "--run-dir", str(d), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    r2 = json.loads((d / "report.json").read_text())
    assert r2["generations"] > r["generations"] and not r2["interrupted"]


def test_wide_design_is_proven_on_every_input(tmp_path):
    """17 input bits: the search evaluates a vector set, but the WCE in the report is proven on all
    inputs, and it equals an independent simulation of the shipped netlist on every pair."""
    from evolve.evaluator import reference_outputs
    from evolve.netlist import load

    d = tmp_path / "mul9x8u"
    proc = flow("evolve", "--bits", "9", "--bits-b", "8", "--no-signed", "--eps", "0.01", "--generations", "300",
                "--budget", "0", "--samples", "4096", "--run-dir", str(d), *QUICK)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((d / "report.json").read_text())
    assert "wce_is_bound" not in r and "limit_enforced_on" not in r
    assert r["wce_proof"]["method"] == "exhaustive" and r["error_metrics"] == {"method": "exhaustive",
                                                                               "pairs": 1 << 17}
    net = load(d / "approx.json")
    err = np.abs(reference_outputs(net) - golden.table(9, 8, False).ravel())
    assert r["wce"] == err.max() <= r["wce_limit"] and r["mae"] == pytest.approx(err.mean())
    wit = r["wce_proof"]["counterexample_at_wce_minus_1"]
    assert wit["error"] == r["wce"] == abs(wit["y"] - wit["a"] * wit["b"])
    assert not (d / "lut.npy").exists() and r["lut"] is None  # tables only up to 16 input bits
    assert r["proofs"]["accepted"] >= 1 and r["proofs"]["median_s"] is not None
    v = r["verification"]
    assert v["passed"] and not v["exhaustive"] and v["benches"]["approx_mapped"]["mismatches"] == 0
    seed = v["benches"]["formal_rtl_vs_seed"]
    assert seed["proven"] and seed["method"] == "exhaustive scan against a*b" and seed["pairs"] == 1 << 17


def test_interrupted_member_gets_only_the_rest_of_its_budget(run4s, tmp_path, monkeypatch):
    """A sweep or library resuming an interrupted member gives it what is left of BUDGET, so every member
    evolves equally long."""
    import shutil

    from evolve import cluster, engine, job

    spent = engine.checkpoint_elapsed(run4s / "checkpoint.npz")
    assert spent == pytest.approx(json.loads((run4s / "report.json").read_text())["runtime_s"])
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    assert engine.checkpoint_elapsed(tmp_path / "bad.npz") is None

    d = tmp_path / "eps0.05-seed3"
    d.mkdir()
    shutil.copyfile(run4s / "checkpoint.npz", d / "checkpoint.npz")
    seen = []

    def run(cfg, *, given=None, progress=True):
        seen.append((cfg.budget, cfg.resume, given))
        return json.loads((run4s / "report.json").read_text())

    monkeypatch.setattr(job, "run", run)
    base = job.EvolveConfig(bits=4, eps=0.05, seed=3, budget=spent + 100.0)
    assert cluster.build_member(base, d, False)["resumed"]
    budget, resume, given = seen[-1]
    assert resume and budget == pytest.approx(100.0) and given["budget"] == budget
    cluster.build_member(job.EvolveConfig(bits=4, eps=0.05, seed=3, budget=spent / 2), d, False)
    assert seen[-1][0] == cluster.MIN_REST_S


def test_unprovable_result_is_exit_5_naming_proof_timeout(tmp_path, monkeypatch):
    """A result whose WCE proof cannot complete is an error naming --proof-timeout, never a report."""
    from core.errors import VerificationError
    from evolve import job
    from verify import wce

    def overrun(*args, **kwargs):
        raise wce.ProofTimeout("the SAT proof of the WCE overran 1 s")

    monkeypatch.setattr(wce, "exact_wce", overrun)
    cfg = job.EvolveConfig(bits=4, eps=0.05, generations=200, budget=0, seed=3, jobs=1, epoch=100,
                           power_vectors=50, run_dir=tmp_path / "r")
    with pytest.raises(VerificationError, match=r"could not be proven within --proof-timeout 60 s"):
        job.run(cfg, progress=False)
    assert not (tmp_path / "r" / "report.json").exists()


@pytest.mark.slow
def test_issue_12x12_command_ships_a_proven_wce(tmp_path):
    """The issue's command (12x12 signed, EPS 0.005): the report's WCE equals an exhaustive simulation of
    all 2^24 pairs of the shipped netlist (the evolution's evaluator, not the prover), within the limit;
    `flow.py verify` re-proves it."""
    from evolve.bench import exhaustive_wce
    from evolve.netlist import load

    d = tmp_path / "mul12s"
    proc = flow("evolve", "--eps", "0.005", "--bits", "12", "--signed", "--seed", "1", "--budget", "30",
                "--run-dir", str(d), "--power-vectors", "200", "--quiet", timeout=1800)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((d / "report.json").read_text())
    assert exhaustive_wce(load(d / "approx.json")) == r["wce"] <= r["wce_limit"] == 20971
    assert r["wce_proof"]["method"] == "exhaustive" and r["error_metrics"]["method"] == "exhaustive"
    again = flow("verify", str(d))
    assert again.returncode == 0, again.stderr


def test_resume_cut_short_in_the_finishing_phase_leaves_no_stale_report(run4s, tmp_path, monkeypatch):
    """A --resume interrupted during verification must not leave the old report naming other files:
    the directory is an unfinished run, and the next --resume finishes it consistently."""
    import shutil

    from evolve import job

    d = tmp_path / "r"
    shutil.copytree(run4s, d)
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "_verify", interrupted)
    cfg = job.EvolveConfig(resume=True, run_dir=d, budget=0, generations=6000)
    with pytest.raises(KeyboardInterrupt):
        job.run(cfg, given={"generations": 6000, "budget": 0, "resume": True, "run_dir": d}, progress=False)
    assert not (d / "report.json").exists() and (d / "checkpoint.npz").exists()
    monkeypatch.undo()
    again = flow("verify", str(d))
    assert again.returncode != 0 and "report.json" in again.stderr
    done = flow("evolve", "--resume", "--run-dir", str(d), "--budget", "0", "--generations", "6000", "--quiet")
    assert done.returncode == 0, done.stderr
    r = json.loads((d / "report.json").read_text())
    assert f"module {r['module']} " in (d / "approx.v").read_text()
    assert flow("verify", str(d)).returncode == 0
