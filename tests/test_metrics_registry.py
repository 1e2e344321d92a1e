"""Every figure a report holds is a metric of the registry (core/metrics.py), and the registry's directions
decide dominance.

The reports are those of the real commands on small inputs: one 4x4 multiplier evolved by ``flow.py
evolve`` serves verify, ppa (its approx.v), array (its PEs), sweep and library (which reuse it as a
finished run); accel runs on LeNet-5, dnn on LeNet-5 and digits. The array with its PPA (synthesis and
gate-level power of two arrays, about a minute and a half) is ``slow``; ``array_verified`` is the same
array verified only (``--no-ppa``). Each command's report.json is flattened recursively and every number
in it must be a registered metric or a key of ``metrics.NOT_METRICS``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _accel_runs import mult_run

from conftest import need_tools
from core import metrics

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--bits", "4", "--generations", "300", "--budget", "0", "--jobs", "1"]
EPS = "0.1"
MEMBER = f"eps{EPS}-seed1"


def flow(*args: str, timeout: float = 900) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "flow.py"), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


class Reports:
    """The report of each command, built on first use (one module-wide directory)."""

    def __init__(self, root: Path):
        self.root = root
        self.done: dict[str, dict] = {}

    def __getitem__(self, command: str) -> dict:
        if command not in self.done:
            self.done[command] = getattr(self, f"_{command}")()
        return self.done[command]

    @property
    def member(self) -> Path:
        """A 4x4 signed multiplier evolved, verified and characterised by the flow."""
        run = self.root / "member"
        if not (run / "report.json").is_file():
            need_tools("yosys", "iverilog", "vvp", "sta")
            flow("evolve", *TINY, "--power-vectors", "50", "--eps", EPS, "--run-dir", str(run), "--quiet")
        return run

    def _evolve(self) -> dict:
        return _json(self.member / "report.json")

    def _verify(self) -> dict:
        flow("verify", str(self.member))
        return _json(self.member / "reverify" / "reverify.json")

    def _ppa(self) -> dict:
        module = _json(self.member / "report.json")["module"]
        out = self.root / "ppa"
        flow("ppa", "--verilog", str(self.member / "approx.v"), "--top", module, "--bits", "4", "--power-vectors",
             "50", "--run-dir", str(out))
        return _json(out / "report.json")

    def _array(self, *ppa: str) -> dict:
        out = self.root / ("array_verified" if ppa else "array")
        flow("array", "--rows", "2", "--cols", "2", "--pods", "2", "--mult", str(self.member), "--shapes", "3x5x4:k",
             "--power-shape", "4x4x4", "--run-dir", str(out), *ppa)
        return _json(out / "report.json")

    def _array_verified(self) -> dict:
        return self._array("--no-ppa")

    def _sweep(self) -> dict:
        out = self.root / "sweep"
        shutil.copytree(self.member, out / MEMBER)  # a finished run: the sweep reuses it
        flow("sweep", "--eps", EPS, *TINY, "--run-dir", str(out), "--quiet")
        return _json(out / "sweep.json")

    def _library(self) -> dict:
        out = self.root / "library"
        shutil.copytree(self.member, out / "members" / MEMBER)  # a finished member: the library reuses it
        flow("library", "--eps", EPS, "--seeds", "1", *TINY, "--power-vectors", "50", "--workers", "1", "--run-dir", str(out), "--quiet")
        return _json(out / "library.json")

    def _accel(self) -> dict:
        run = mult_run(self.root / "mults")
        out = self.root / "accel"
        flow("accel", "--net", "lenet5", "--array", "8x8", "--pods", "2", "--mult", str(run), "--dram-bw", "8",
             "--run-dir", str(out))
        return _json(out / "report.json")

    def _dnn(self) -> dict:
        pytest.importorskip("torch")
        from dnn import fixtures

        runs = [str(fixtures.write_run(self.root / f"ba{k}", fixtures.broken_array(k), {
            "area": area, "energy_pj": energy, "power_w": energy * 1e-4, "clock_period_ns": 10.0,
            "exact": {"area": 1000.0, "power_w": 1e-4, "delay_ns": 3.0}}))
            for k, (area, energy) in {3: (900.0, 0.9), 6: (700.0, 0.65)}.items()]
        out = self.root / "dnn"
        flow("dnn", "--net", "lenet5", "--data", "digits", "--mults", *runs, "--method", "hawx", "nsga2",
             "--generations", "2", "--population", "6", "--epochs", "1", "--qat-epochs", "1", "--eval-images",
             "60", "--representatives", "4", "--threads", "1", "--run-dir", str(out), "--cache-dir",
             str(self.root / "cache"), "--sparsity-ratios", "0", "0.5", "--sparsity-block", "4",
             "--sparsity-epochs", "1")  # the joint sparsity section too
        return _json(out / "report.json")


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Reports:
    return Reports(tmp_path_factory.mktemp("reports"))


COMMANDS = ("evolve", "verify", "ppa", "array_verified", "sweep", "library", "accel", "dnn")


@pytest.mark.tools
@pytest.mark.parametrize("command", [*COMMANDS, pytest.param("array", marks=pytest.mark.slow)],
                         ids=[*COMMANDS, "array"])
def test_every_number_of_a_report_is_a_metric(reports, command):
    report = reports[command]
    assert list(metrics.numbers(report)), "the report holds no number at all"
    assert metrics.unregistered(report) == [], metrics.unregistered(report)


def test_an_unregistered_number_is_found():
    report = {"area": 1.0, "exact": {"area": 2.0, "bogus_w": 3.0}, "rows": [{"wce": 1, "made_up": 2}],
              "passed": True, "area_blocks": {"pe": 1.0}, "settings": {"anything": 4}}
    assert metrics.unregistered(report) == ["exact.bogus_w", "rows[0].made_up"]
    assert dict(metrics.numbers(report))["area_blocks.pe"] == "area_blocks"


def test_the_lists_of_non_metrics_hold_no_metric():
    assert not metrics.NOT_METRICS & set(metrics.REGISTRY)
    assert metrics.KEYED <= set(metrics.REGISTRY)


@pytest.mark.parametrize(("a", "b", "names", "expected"), [
    ({"area": 1.0, "wce": 2}, {"area": 2.0, "wce": 2}, ("area", "wce"), True),
    ({"area": 1.0, "wce": 3}, {"area": 2.0, "wce": 2}, ("area", "wce"), False),
    ({"area": 1.0, "wce": 2}, {"area": 1.0, "wce": 2}, ("area", "wce"), False),
    ({"accuracy": 0.9, "energy_pj": 1.0}, {"accuracy": 0.8, "energy_pj": 1.0}, ("accuracy", "energy_pj"), True),
    ({"accuracy": 0.8, "energy_pj": 1.0}, {"accuracy": 0.9, "energy_pj": 1.0}, ("accuracy", "energy_pj"), False),
], ids=["lower-better", "trade-off", "equal", "higher-better", "higher-worse"])
def test_dominance_reads_the_direction(a, b, names, expected):
    assert metrics.dominates(a, b, names) is expected


def test_a_metric_without_direction_cannot_decide_dominance():
    with pytest.raises(ValueError, match=r"^metric 'bias' has no better direction"):
        metrics.dominates({"bias": 0.0}, {"bias": 1.0}, ("bias",))


def test_nsga2_weights_are_the_registry_directions():
    pytest.importorskip("torch")
    from dnn import search

    assert search.Fitness.weights == (1.0, -1.0, -1.0)
    assert search.Fitness.weights == metrics.weights(search.OBJECTIVES)


def test_tables_are_headed_with_units_and_formatted_by_the_registry():
    lines = metrics.table([{"name": "x", "area": 1234.5, "area_ratio": 0.5, "cells": 1200}],
                          [("name", lambda r: r["name"]), "area", "area_ratio", "cells"])
    assert lines == ["| name | area (um^2) | area_ratio | cells |", "| --- | --- | --- | --- |",
                     "| x | 1234.5 | 0.5000 | 1,200 |"]
    assert metrics.row("power_w", 0.001, "", None) == \
        f"| power_w | 0.001 W |  | - | {metrics.get('power_w').description} |"
    assert metrics.axis_label("accuracy") == "accuracy, higher is better"
    assert metrics.axis_label("area_ratio", "ratio") == "ratio, lower is better"
