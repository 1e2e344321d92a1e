"""Plots are written like every other result: rendered in memory, then renamed into place (core.run.save_figure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.run import save_figure

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "tech", "rtl_gen", "verify", "ppa", "evolve", "accel_models", "dnn")


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return fig


def test_a_plot_is_a_whole_png(tmp_path):
    path = save_figure(_figure(), tmp_path / "p.png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]


def test_a_failed_render_leaves_the_earlier_plot_as_it_was(tmp_path):
    path = tmp_path / "p.png"
    save_figure(_figure(), path)
    before = path.read_bytes()
    fig = _figure()

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the plot is rendered

    fig.savefig = broken
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_saves_a_figure_in_place(package):
    """The class of defect: a plot rendered straight into its file is half a file after a kill."""
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / package).rglob("*.py"))
                 if p.relative_to(ROOT).as_posix() != "core/run.py"
                 and re.search(r"\.savefig\(", p.read_text(encoding="utf-8"))]
    assert offenders == []
