"""``flow.py bench``: a suite that cannot run is an error when asked for, and a bug is never a skipped suite."""

from __future__ import annotations

import json

import pytest

import flow
from evolve import bench


@pytest.fixture
def no_torch(monkeypatch):
    """The dnn suite needs a package that is not installed; the other suites return one row, fast."""
    monkeypatch.setitem(bench.SUITE_PACKAGES, "dnn", (("axf_not_installed_pkg",), "make dnn-setup"))
    ran = []

    def fake_suite(name, quick):
        ran.append(name)
        return [bench.row(f"{name} rate", 1.0, "x/s")]

    monkeypatch.setattr(bench, "evolve_suite", lambda quick: fake_suite("evolve", quick))
    monkeypatch.setattr(bench, "SUITE_MODULES", {})
    return ran


def test_a_suite_asked_for_without_its_package_is_exit_3(no_torch, capsys, tmp_path):
    code = flow.main(["bench", "--suite", "evolve", "dnn", "--json", str(tmp_path / "b.json")])
    err = capsys.readouterr().err
    assert code == 3
    assert err == ("error: the dnn suite needs the Python package 'axf_not_installed_pkg': install it with "
                   "make dnn-setup\n")
    assert no_torch == [] and not (tmp_path / "b.json").exists()  # refused before any suite ran


def test_default_suites_report_the_missing_package_as_not_run(no_torch, monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "DEFAULT_SUITES", ("evolve", "dnn"))
    assert flow.main(["bench", "--json", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())
    assert [(r["suite"], r["name"]) for r in rows] == [("evolve", "evolve rate"), ("dnn", "dnn suite not run")]
    assert "axf_not_installed_pkg" in rows[1]["note"]
    assert no_torch == ["evolve"]


def test_a_missing_project_module_is_not_hidden(monkeypatch):
    monkeypatch.setitem(bench.SUITE_MODULES, "accel", "accel_models.axf_no_such_module")
    with pytest.raises(ModuleNotFoundError, match=r"accel_models\.axf_no_such_module"):
        bench.run_suite("accel", quick=True)
