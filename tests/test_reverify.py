"""``flow.py verify RUN_DIR`` writes under ``RUN_DIR/reverify/`` and leaves every file of the run as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_evolve_e2e import QUICK, flow

from conftest import need_tools

pytestmark = [pytest.mark.tools, pytest.mark.sim]


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run3s(tmp_path_factory):
    need_tools("yosys", "iverilog", "vvp", "sta")
    d = tmp_path_factory.mktemp("reverify") / "mul3s"
    proc = flow("evolve", "--bits", "3", "--eps", "0.05", "--generations", "200", "--budget", "0", "--seed", "2",
                "--run-dir", str(d), *QUICK)
    assert proc.returncode == 0, proc.stderr
    return d


def test_verify_changes_no_file_of_the_run(run3s):
    before = _hashes(run3s)
    for _ in range(2):  # the second verify replaces the first one's results, still touching nothing else
        proc = flow("verify", str(run3s))
        assert proc.returncode == 0, proc.stderr
        after = _hashes(run3s)
        assert {k: after.get(k) for k in before} == before
        new = sorted(set(after) - set(before))
        assert new and all(k.startswith("reverify/") or k == ".reverify.lock" for k in new), new
    out = run3s / "reverify"
    report = json.loads((out / "reverify.json").read_text())
    assert report["passed"] and set(report["benches"]) == {"reprove", "reverify_gates", "reverify_mapped"}
    assert (out / "COMMANDS").read_text().count("iverilog") >= 2
    assert any(p.name.endswith("_sim_reverify_gates.log") for p in (out / "logs").iterdir())
    assert not (run3s / "reverify.json").exists()
