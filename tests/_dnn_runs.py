"""``flow.py dnn`` command lines of a tiny LeNet-5 run (digits, a few hundred images, two characterised
broken-array multipliers written as multiplier runs) for the tests of the joint sparsity search, and
the briefly trained LeNet-5 and costed multiplier runs of the in-process search tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dnn import fixtures


def mult_runs(tmp_path: Path) -> list[str]:
    out = []
    for k, energy in ((3, 0.9), (6, 0.65)):
        out.append(str(fixtures.write_run(tmp_path / f"ba{k}", fixtures.broken_array(k), {
            "area": 1000.0 * energy, "energy_pj": energy, "power_w": energy * 1e-4, "clock_period_ns": 10.0,
            "exact": {"area": 1000.0, "power_w": 1e-4, "delay_ns": 3.0}})))
    return out


COSTS = {3: (900.0, 0.9), 6: (700.0, 0.65)}  # broken-array k: (area, energy_pj) of the in-process tests


def small_lenet_and_runs(root: Path) -> tuple[Any, Any, list[str]]:
    """LeNet-5 trained briefly on digits, its data, and the run directories of broken-array multipliers
    ba3 and ba6 costed by :data:`COSTS` (written under ``root``)."""
    from dnn import data, train

    d = data.load("digits")
    model, _ = train.trained(train.Recipe("lenet5", epochs=2, qat_epochs=1, seed=1), d, None)
    runs = [str(fixtures.write_run(root / f"ba{k}", fixtures.broken_array(k), {
        "area": area, "energy_pj": energy, "power_w": energy * 1e-4, "clock_period_ns": 10.0,
        "exact": {"area": 1000.0, "power_w": 1e-4, "delay_ns": 3.0}})) for k, (area, energy) in COSTS.items()]
    return model, d, runs


def dnn_argv(tmp_path: Path, *extra: str, run: str = "run") -> list[str]:
    return ["dnn", "--net", "lenet5", "--data", "digits", "--mults", *mult_runs(tmp_path), "--method", "hawx",
            "--epochs", "1", "--qat-epochs", "0", "--eval-images", "60", "--representatives", "4",
            "--ig-steps", "2", "--threads", "1", "--finetune-epochs", "0", "--train-limit", "300",
            "--run-dir", str(tmp_path / run), "--cache-dir", str(tmp_path / "cache"), "--max-acc-loss", "0.05",
            *extra]
