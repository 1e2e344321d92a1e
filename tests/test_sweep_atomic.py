"""The sweep's tables and plots replace the old ones by renaming, never by rewriting them in place."""

from __future__ import annotations

import os

from evolve import sweep

OUTPUTS = ("sweep.json", "sweep.csv", "sweep.md", "cost_vs_eps.png", "error_vs_eps.png")


class _Run:
    design = "mul8s"

    def __init__(self, eps: float):
        self.eps = eps


def _row(eps: float) -> dict:
    return {**{k: 1.0 for k in sweep.COLUMNS}, "eps": eps, "wce_limit": 3, "wce": 2, "verified": True,
            "interrupted": False, "run_dir": "x"}


def test_roll_up_replaces_every_file_by_rename(tmp_path):
    """Each old output is a hard link to a witness: a rewrite in place would change the witness too."""
    out = tmp_path / "sw"
    out.mkdir()
    for name in OUTPUTS:
        (tmp_path / f"witness_{name}").write_bytes(b"old")
        os.link(tmp_path / f"witness_{name}", out / name)
    cfg = sweep.SweepConfig(eps=(0.01, 0.02), run_dir=out)
    sweep._roll_up(out, [_row(0.01), _row(0.02)], [_Run(0.01), _Run(0.02)], cfg)
    for name in OUTPUTS:
        assert (tmp_path / f"witness_{name}").read_bytes() == b"old", name
        assert (out / name).read_bytes() != b"old", name
    assert (out / "cost_vs_eps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)  # no temporary file left behind
