"""``flow.py library``: a tiny 4x4 library on a real Dask LocalCluster and on a real ``dask scheduler`` with
two ``dask worker`` processes; its catalogue against the members' reports, resume by finished members,
the lock, Ctrl-C, and a scheduler that does not answer."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import background, killing_the_worker, need_tools, wait_for

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--bits", "4", "--seeds", "1", "--generations", "300", "--budget", "0", "--power-vectors", "50",
        "--jobs", "1", "--epoch", "100", "--quiet"]
EPS = ["--eps", "0.02", "0.05"]


def flow(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "flow.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)


def snapshot(lib: Path) -> dict[str, tuple[int, bytes]]:
    """mtime and bytes of every member's report.json and approx.v."""
    return {str(p.relative_to(lib)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(lib.glob("members/*/*")) if p.name in ("report.json", "approx.v")}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    need_tools("yosys", "iverilog", "vvp", "sta")
    lib = tmp_path_factory.mktemp("library") / "lib"
    proc = flow("library", *EPS, *TINY, "--run-dir", str(lib))
    assert proc.returncode == 0, proc.stderr
    return lib


def test_catalogue_rows_are_the_members_reports(library):
    cat = json.loads((library / "library.json").read_text())
    assert cat["complete"] and cat["not_built"] == [] and cat["failed"] == []
    assert cat["cluster"]["scheduler"] == "local" and cat["cluster"]["workers"] >= 1
    assert [r["name"] for r in cat["rows"]] == ["eps0.02-seed1", "eps0.05-seed1"]
    with open(library / "library.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["name"] for r in csv_rows] == ["eps0.02-seed1", "eps0.05-seed1"]
    for row, csv_row in zip(cat["rows"], csv_rows):
        rep = json.loads((library / "members" / row["name"] / "report.json").read_text())
        assert rep["eps"] == row["eps"] and rep["verification"]["passed"] and row["verified"]
        assert rep["wce"] <= rep["wce_limit"] == row["wce_limit"]
        for key in ("wce", "wce_pct", "mae", "mae_pct", "er", "mred", "bias", "mse", "area", "area_ratio",
                    "power_w", "power_ratio", "delay_ns", "delay_ratio", "energy_pj", "generations"):
            assert row[key] == rep[key], key
            assert float(csv_row[key]) == pytest.approx(rep[key], rel=1e-12), key
        assert row["wce_proof"] == rep["wce_proof"] and row["wce_proof_method"] == rep["wce_proof"]["method"]
        assert row["build"] == "new"
    for name in ("power_vs_mae.png", "area_vs_wce.png", "power_vs_wce.png"):
        assert (library / name).stat().st_size > 1000


def test_dominance_flags_follow_the_rows(library):
    from evolve.library import PLANES, dominated

    rows = json.loads((library / "library.json").read_text())["rows"]
    for plane, x, y in PLANES:
        assert [r[f"dominated_{plane}"] for r in rows] == dominated([(r[x], r[y]) for r in rows])
    for r in rows:
        assert r["dominated"] == all(r[f"dominated_{p}"] for p, _, _ in PLANES)


@pytest.mark.parametrize(("points", "expected"), [
    ([(0, 3.0), (3, 2.0)], [False, False]),
    ([(1, 3.0), (1, 2.0)], [True, False]),
    ([(1, 2.0), (1, 2.0)], [False, False]),
    ([(0, 1.0), (2, 2.0), (1, 0.5)], [False, True, False]),
], ids=["trade-off", "same-x", "equal", "one-dominated"])
def test_dominated(points, expected):
    from evolve.library import dominated

    assert dominated(points) == expected


def test_second_build_reuses_finished_members(library):
    before = snapshot(library)
    assert len(before) == 4
    t0 = time.monotonic()
    proc = flow("library", *EPS, *TINY, "--run-dir", str(library))
    assert proc.returncode == 0, proc.stderr
    assert snapshot(library) == before
    assert [r["build"] for r in json.loads((library / "library.json").read_text())["rows"]] == ["reused"] * 2
    assert time.monotonic() - t0 < 60  # no member evolved again (one takes ~20 s)
    assert json.loads((library / "library.json").read_text())["complete"]


@pytest.mark.parametrize("value", ["127.0.0.1:8786", "tcp://", "http://host:1"], ids=["no-scheme", "empty", "http"])
def test_scheduler_address_is_checked(tmp_path, value):
    proc = flow("library", *EPS, *TINY, "--run-dir", str(tmp_path / "lib"), "--scheduler", value, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: SCHEDULER must be a Dask scheduler address such as tcp://HOST:PORT, "
                                   f"not {value!r}")


@pytest.mark.slow
def test_second_build_refuses_then_ctrl_c_then_resume(tmp_path):
    need_tools("yosys", "iverilog", "vvp", "sta")
    lib = tmp_path / "lib"
    args = ["library", *EPS, *TINY, "--run-dir", str(lib)]
    with background(*args) as first:
        wait_for(first, (lib / "members").is_dir, timeout=120)  # made under the lock, once the cluster is up
        second = flow(*args)
        assert second.returncode == 2
        assert second.stderr.strip() == (f"error: run directory {lib} is in use by another command (it holds the "
                                         f"lock {tmp_path / '.lib.lock'})")
        wait_for(first, lambda: bool(list(lib.glob("members/*/checkpoint.npz"))), timeout=120)  # one evolving
        started = {p.parent.name for p in lib.glob("members/*/checkpoint.npz")}
        os.killpg(first.pid, signal.SIGINT)  # a terminal's Ctrl-C: the client and its cluster's processes
        _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    cat = json.loads((lib / "library.json").read_text())
    assert not cat["complete"] and len(cat["rows"]) + len(cat["not_built"]) == 2
    finished = {r["name"] for r in cat["rows"]}
    third = flow(*args)
    assert third.returncode == 0, third.stderr
    cat = json.loads((lib / "library.json").read_text())
    assert cat["complete"] and [r["name"] for r in cat["rows"]] == ["eps0.02-seed1", "eps0.05-seed1"]
    assert all(r["verified"] and r["generations"] == 300 for r in cat["rows"])
    builds = {r["name"]: r["build"] for r in cat["rows"]}
    assert all(builds[name] == "reused" for name in finished)
    assert all(builds[name] == "resumed" for name in started - finished)


@pytest.mark.slow
def test_build_on_an_external_scheduler(dask_cluster, tmp_path):
    need_tools("yosys", "iverilog", "vvp", "sta")
    lib = tmp_path / "lib"
    proc = flow("library", *EPS, *TINY, "--run-dir", str(lib), "--scheduler", dask_cluster)
    assert proc.returncode == 0, proc.stderr
    cat = json.loads((lib / "library.json").read_text())
    assert cat["cluster"] == {"scheduler": dask_cluster, "address": dask_cluster, "workers": 2}
    assert cat["complete"] and [r["name"] for r in cat["rows"]] == ["eps0.02-seed1", "eps0.05-seed1"]
    for row in cat["rows"]:
        rep = json.loads((lib / "members" / row["name"] / "report.json").read_text())
        assert row["verified"] and row["wce"] == rep["wce"] and row["area"] == rep["area"]


@pytest.mark.slow
def test_killed_worker_member_resumes_from_its_checkpoint(dask_cluster, tmp_path):
    """SIGKILL the worker process evolving a member: Dask runs the task again and the member continues
    from its checkpoint to exactly its generations (none counted twice)."""
    need_tools("yosys", "iverilog", "vvp", "sta")
    lib = tmp_path / "lib"
    args = ("library", "--eps", "0.05", *TINY, "--generations", "10000", "--run-dir", str(lib),
            "--scheduler", dask_cluster)
    # the checkpoint is written as the search starts, before its first epoch
    rc, err = killing_the_worker(dask_cluster, args, lib / "members" / "eps0.05-seed1" / "checkpoint.npz",
                                 "member-eps0.05-seed1", start=180, finish=300)
    assert rc == 0, err
    (row,) = json.loads((lib / "library.json").read_text())["rows"]
    rep = json.loads((lib / "members" / "eps0.05-seed1" / "report.json").read_text())
    assert row["build"] == "resumed" and row["verified"]
    assert rep["generations"] == row["generations"] == 10000


def test_references_are_characterised_and_listed(tmp_path):
    """An EvoApproxLib-style 4x4 unsigned multiplier (WCE 1, error rate 1/4) next to a one-member library."""
    need_tools("yosys", "iverilog", "vvp", "sta")
    from test_ppa_any import evo_style

    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "mul4u_T1.v").write_text(evo_style(4, "mul4u_T1"))
    lib = tmp_path / "lib"
    proc = flow("library", "--no-signed", "--eps", "0.05", *TINY, "--run-dir", str(lib), "--reference", str(refs))
    assert proc.returncode == 0, proc.stderr
    cat = json.loads((lib / "library.json").read_text())
    assert [(r["kind"], r["name"]) for r in cat["rows"]] == [("member", "eps0.05-seed1"), ("reference", "mul4u_T1")]
    ref = cat["rows"][1]
    rep = json.loads((lib / "references" / "mul4u_T1" / "report.json").read_text())
    assert ref["wce"] == rep["wce"] == 1 and ref["er"] == pytest.approx(25.0)
    assert ref["area"] == rep["area"] and ref["power_w"] == rep["power_w"] and ref["energy_pj"] == rep["energy_pj"]
    assert ref["wce_proof_method"] == "exhaustive simulation" and ref["build"] == "new"


@pytest.mark.parametrize(("files", "message"), [
    ({}, r"^REFERENCE .* holds no Verilog file \(\*\.v\)$"),
    ({"x.v": "module a(); endmodule\nmodule b(); endmodule\n"},
     r"^reference .*x\.v must hold a module named x or exactly one module, not 2$"),
], ids=["empty", "ambiguous-top"])
def test_reference_directory_is_checked(tmp_path, files, message):
    from core.errors import ConfigError
    from evolve.library import references

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        references(tmp_path)


def test_references_dominated_counts_members_only():
    """A reference counts as beaten on a plane only when a member dominates it; references do not beat
    each other, and a tie on both metrics is not domination."""
    from evolve.library import references_dominated

    def r(kind, name, wce, area, power, mae):
        return {"kind": kind, "name": name, "wce": wce, "area": area, "power_w": power, "mae": mae}

    rows = [r("member", "m1", 10, 100.0, 1.0, 2.0), r("member", "m2", 50, 60.0, 0.5, 9.0),
            r("reference", "beaten", 12, 120.0, 1.2, 3.0),       # m1 is better on every plane
            r("reference", "tied", 10, 100.0, 1.0, 2.0),         # equal to m1: not dominated
            r("reference", "alone", 5, 500.0, 5.0, 1.0),         # nobody has a WCE that low
            r("reference", "by_ref", 13, 130.0, 1.3, 3.5)]       # dominated by 'beaten' and by m1
    got = references_dominated(rows)
    assert got["power_wce"] == {"references": 4, "references_dominated": 2, "not_dominated": ["tied", "alone"]}
    assert got["area_wce"]["not_dominated"] == ["tied", "alone"]
    rows[-1]["area"] = 90.0  # smaller than every member of WCE <= 13: off the members' area front
    got = references_dominated(rows)
    assert got["area_wce"]["not_dominated"] == ["tied", "alone", "by_ref"]
    assert got["power_wce"]["not_dominated"] == ["tied", "alone"]


def test_best_member_at_or_under_each_references_wce():
    from evolve.library_bench import best_at_wce

    rows = [{"kind": "member", "name": "m1", "wce": 10, "area": 80.0, "power_w": 2.0},
            {"kind": "member", "name": "m2", "wce": 40, "area": 50.0, "power_w": 1.0},
            {"kind": "reference", "name": "r_hi", "wce": 40, "area": 100.0, "power_w": 4.0},
            {"kind": "reference", "name": "r_lo", "wce": 5, "area": 100.0, "power_w": 4.0}]
    got = best_at_wce(rows)
    assert [g[0] for g in got] == ["r_lo", "r_hi"]
    assert got[1][2] == {"power_w": 0.25, "area": 0.5}  # m2's WCE 40 counts: at or under
    assert all(v != v for v in got[0][2].values())  # no member at WCE <= 5: NaN
