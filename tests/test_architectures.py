"""Exact multipliers of every architecture (rtl_gen.architectures) and ``evolve --seed-arch``.

Each architecture's generic-gate netlist, as Yosys synthesises it for the flow, is simulated on every
input pair (WCE 0); the bit-level construction is checked at the extreme widths through its numpy model;
Yosys must not find a multiplier or an adder in it to rebuild; and an evolution from a Booth seed and
one from the smallest mapped seed (auto) verify end to end.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import need_tools
from core import golden
from core.errors import ConfigError
from core.run import RunDir
from evolve.evaluator import Evaluator, reference_outputs
from evolve.job import EvolveConfig
from evolve.netlist import Netlist
from ppa import yosys
from rtl_gen.architectures import ARCHITECTURES, evaluate, multiplier
from rtl_gen.multiplier import design_name, to_verilog

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--power-vectors", "200", "--jobs", "1", "--epoch", "200", "--quiet"]
SIZES = [(2, 2), (4, 3), (8, 8)]
CASES = [(arch, s, wa, wb) for arch in ARCHITECTURES for s in (True, False) for wa, wb in SIZES]


def _id(case: tuple) -> str:
    arch, s, wa, wb = case
    return f"{arch}-{design_name(wa, wb, s)}"


def _synth(tmp_path: Path, arch: str, wa: int, wb: int, s: bool) -> tuple[RunDir, str, Netlist]:
    run = RunDir.create(tmp_path / "run")
    name = design_name(wa, wb, s)
    rtl = run.path / f"{name}_{arch}.v"
    rtl.write_text(to_verilog(multiplier(arch, wa, wb, signed_=s), name))
    yosys.synth_generic(run, [rtl], name, run.path / "seed.json", run.path / "seed.v")
    net = Netlist.from_yosys_json(json.loads((run.path / "seed.json").read_text()), name, wa, wb, s)
    return run, name, net


@pytest.mark.tools
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_synthesised_gates_are_exact_on_every_pair(tmp_path, case):
    need_tools("yosys")
    arch, s, wa, wb = case
    run, _, net = _synth(tmp_path, arch, wa, wb, s)
    wce, _ = Evaluator(wa, wb, s, net.n_addr).load_parent(net)
    assert wce == 0
    assert np.array_equal(reference_outputs(net), golden.table(wa, wb, s).ravel())
    if arch != "array":  # Yosys found no a*b or a+b to build its own way: the architecture is the netlist's
        log = sorted(run.logs.glob("*_synth.log"))[-1].read_text()
        assert re.findall(r"created (\d+) \$alu and (\d+) \$macc cells", log) == [("0", "0")]


WIDTHS = [(2, 16), (16, 2), (3, 5), (7, 7), (9, 12), (13, 15), (16, 16)]
MODEL = [(arch, s, wa, wb) for arch in ARCHITECTURES[1:] for s in (True, False) for wa, wb in WIDTHS]


@pytest.mark.parametrize("case", MODEL, ids=[_id(c) for c in MODEL])
def test_construction_is_exact_at_every_width(case):
    """The bit-level construction (the same code that builds the Amaranth netlist) on a sample with the
    corner operands (most negative, most positive, -1, 0), at the extreme widths."""
    arch, s, wa, wb = case
    rng = np.random.default_rng(wa * 100 + wb)
    corners_a = np.array([0, 1, (1 << wa) - 1, 1 << (wa - 1), (1 << (wa - 1)) - 1])
    corners_b = np.array([0, 1, (1 << wb) - 1, 1 << (wb - 1), (1 << (wb - 1)) - 1])
    ca, cb = (x.ravel() for x in np.meshgrid(corners_a, corners_b))
    a = np.concatenate([ca, rng.integers(0, 1 << wa, 4000)])
    b = np.concatenate([cb, rng.integers(0, 1 << wb, 4000)])
    value = (lambda c, w: np.where(c >> (w - 1) & 1, c - (1 << w), c)) if s else (lambda c, w: c)
    expected = (value(a, wa) * value(b, wb)) % (1 << (wa + wb))
    assert np.array_equal(evaluate(arch, wa, wb, s, a, b), expected)


@pytest.mark.parametrize("arch", ARCHITECTURES[1:])
def test_verilog_has_no_arithmetic_operators(arch):
    text = to_verilog(multiplier(arch, 6, 5, signed_=True), "mul6x5s")
    assigns = [line for line in text.splitlines() if line.strip().startswith("assign")]
    assert assigns and not any(re.search(r"[-+*]", line.split("=", 1)[1]) for line in assigns)


def test_unknown_architecture_is_one_line():
    with pytest.raises(ValueError, match=r"^ARCH must be one of the listed architectures, not 'karatsuba' "
                                         r"\(choices: array, booth, wallace, dadda\)$"):
        multiplier("karatsuba", 8, 8, signed_=True)


def test_seed_arch_and_seed_netlist_conflict():
    with pytest.raises(ConfigError, match=r"^SEED_ARCH and SEED_NETLIST cannot both be set$"):
        EvolveConfig(seed_arch="booth", seed_netlist=Path("x.v"))


def _flow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flow.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=900, stdin=subprocess.DEVNULL)


def test_seed_arch_choice_is_checked():
    proc = _flow("evolve", "--seed-arch", "karatsuba", "--run-dir", "/nonexistent/x")
    assert proc.returncode == 2
    assert "SEED_ARCH must be one of the listed choices, not 'karatsuba'" in proc.stderr


@pytest.mark.tools
@pytest.mark.sim
@pytest.mark.parametrize("arch", ["booth", "auto"])
def test_evolution_from_architecture_verifies(tmp_path, arch):
    need_tools("yosys", "iverilog", "vvp", "sta")
    d = tmp_path / "mul4s"
    proc = _flow("evolve", "--bits", "4", "--eps", "0.05", "--generations", "1000", "--budget", "0", "--seed", "3",
                 "--seed-arch", arch, "--run-dir", str(d), *QUICK)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((d / "report.json").read_text())
    assert r["verification"]["passed"] and r["wce"] <= r["wce_limit"]
    assert r["verification"]["benches"]["formal_rtl_vs_seed"]["proven"]  # the seed equals the plain a*b RTL
    assert json.loads((d / "config.json").read_text())["settings"]["seed_arch"] == arch
    info = r["seed_arch"]
    assert info["choice"] == arch
    areas = info["mapped_area"]
    if arch == "auto":
        assert set(areas) == set(ARCHITECTURES) and info["arch"] == min(areas, key=areas.get)
        assert areas["array"] == pytest.approx(r["exact"]["area"])  # the same RTL, mapped the same way
    else:
        assert info["arch"] == "booth" and set(areas) == {"booth"}
    assert info["area"] == pytest.approx(areas[info["arch"]])
    assert r["area_ratio_vs_seed"] == pytest.approx(r["area"] / info["area"])
    assert r["area_ratio"] == pytest.approx(r["area"] / r["exact"]["area"])
    # the seed is that architecture's: its gate netlist is the synthesis of its RTL, not of a*b
    seed_rtl = (d / info["rtl"]).read_text()
    assert (info["arch"] == "array") == (info["rtl"] == "mul4s.v") and "module mul4s" in seed_rtl


@pytest.mark.tools
@pytest.mark.sim
def test_auto_seed_under_power_is_the_least_power_architecture(tmp_path):
    """--cost power --seed-arch auto powers every architecture's mapped seed as the result is powered (the
    run's stream and periods) and starts from the least; the array's power is the exact reference's."""
    need_tools("yosys", "iverilog", "vvp", "sta")
    d = tmp_path / "mul4s"
    proc = _flow("evolve", "--bits", "4", "--eps", "0.05", "--generations", "300", "--budget", "0", "--seed", "2",
                 "--seed-arch", "auto", "--cost", "power", "--run-dir", str(d), *QUICK)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((d / "report.json").read_text())
    info = r["seed_arch"]
    assert info["by"] == "power" and set(info["power_w"]) == set(ARCHITECTURES)
    powers = {k: v for k, v in info["power_w"].items() if v is not None}
    assert info["arch"] == min(powers, key=powers.get)
    assert info["power_w"]["array"] == pytest.approx(r["exact"]["power_w"])
    # every other architecture was powered by its own timing simulation of its mapped netlist
    for arch in set(ARCHITECTURES) - {"array"}:
        assert (d / "sim_build" / f"power_seed_{arch}" / "activity.json").is_file()
    assert "chosen by power" in (d / "report.md").read_text()
    assert r["verification"]["passed"] and r["wce"] <= r["wce_limit"]
    # --resume takes the architectures' powers from seed_arch.json: no timing simulation runs again
    before = (d / "seed_arch.json").read_bytes()
    for arch in set(ARCHITECTURES) - {"array"}:
        shutil.rmtree(d / "sim_build" / f"power_seed_{arch}")
    proc = _flow("evolve", "--resume", "--generations", "400", "--run-dir", str(d))
    assert proc.returncode == 0, proc.stderr
    assert "as this run measured them" in proc.stderr + proc.stdout
    assert not any((d / "sim_build" / f"power_seed_{arch}").exists() for arch in ARCHITECTURES)
    assert (d / "seed_arch.json").read_bytes() == before
    assert json.loads((d / "report.json").read_text())["generations"] == 400
    # a corrupt record refuses the resume in one line and leaves every file of the run as it was
    (d / "seed_arch.json").write_text("[1, 2]")
    files = {p: p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}
    proc = _flow("evolve", "--resume", "--generations", "500", "--run-dir", str(d))
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: seed architecture") and "seed_arch.json" in last
    assert "Traceback" not in proc.stderr
    assert {p: p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()} == files


def test_rtl_command_writes_the_architecture(tmp_path):
    out = tmp_path / "mul5x3u.v"
    proc = _flow("rtl", "--bits", "5", "--bits-b", "3", "--no-signed", "--arch", "dadda", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == to_verilog(multiplier("dadda", 5, 3, signed_=False), "mul5x3u")


@pytest.mark.parametrize(("text", "stored"), [
    ('{"arch": "array", "by": "area"}', None),  # chosen by area: nothing to reuse
    ('{"power_w": {"array": 1e-4}}', None),  # another set of architectures: measured again
])
def test_stored_seed_powers_reused_only_when_they_cover_the_architectures(tmp_path, text, stored):
    from evolve import seeds

    (tmp_path / seeds.INFO).write_text(text)
    assert seeds.stored_powers(tmp_path / seeds.INFO) == stored


def test_stored_seed_powers_of_every_architecture_are_reused(tmp_path):
    from evolve import seeds

    powers = {a: (None if i else 2e-4) for i, a in enumerate(ARCHITECTURES)}
    (tmp_path / seeds.INFO).write_text(json.dumps({"power_w": powers}))
    assert seeds.stored_powers(tmp_path / seeds.INFO) == powers


@pytest.mark.parametrize("text", [
    "{not json", "[1, 2]", '{"power_w": [1]}', '{"power_w": {"array": "fast"}}', '{"power_w": {"array": -1}}',
    '{"power_w": {"array": true}}', '{"power_w": {"array": null}}', '{"power_w": {}}',
])
def test_a_corrupt_seed_architecture_record_is_a_one_line_error(tmp_path, text):
    """--resume of a power-chosen run reads seed_arch.json: anything but that record is named, not guessed."""
    from core.errors import ConfigError
    from evolve import seeds

    (tmp_path / seeds.INFO).write_text(text)
    with pytest.raises(ConfigError, match=r"^seed architecture .*seed_arch\.json (must|records)") as exc:
        seeds.stored_powers(tmp_path / seeds.INFO)
    assert "\n" not in str(exc.value)


def test_only_a_netlist_that_does_not_settle_is_dropped_from_the_power_choice(tmp_path, monkeypatch):
    """Under --seed-arch auto --cost power an architecture whose timing simulation does not reproduce its
    table at the run's period is not a candidate; any other failure (OpenSTA reporting no power) stops
    the run rather than quietly removing the architecture from the comparison."""
    from types import SimpleNamespace

    from core.errors import SettleError, VerificationError
    from evolve import job
    from ppa import characterise

    cfg = SimpleNamespace(wa=4, wb=4, signed=True, design="mul4s", seed=1, power_vectors=8)
    pre = SimpleNamespace(exact_ppa={"power_w": 1e-4}, periods=SimpleNamespace(clock_period_ns=10.0,
                                                                                sim_period_ns=10.0))
    ctx = SimpleNamespace(cfg=cfg, preflight=pre, run=None, tech=None)
    failures = {"dadda": SettleError("does not settle"), "wallace": VerificationError("OpenSTA reported no power")}

    def measured(run, name, *args, **kwargs):
        arch = name.removeprefix("seed_")
        if arch in failures:
            raise failures[arch]
        return {"power_w": 2e-4}

    monkeypatch.setattr(characterise, "delay_and_power", measured)
    monkeypatch.setattr(job, "_power_stream", lambda ctx, probs: (np.zeros(8, np.int64), np.zeros(8, np.int64)))
    power = job._seed_power(ctx, None)
    assert power("array", None) == 1e-4
    assert power("dadda", None) is None
    with pytest.raises(VerificationError, match="no power"):
        power("wallace", None)
    assert power("booth", None) == 2e-4
