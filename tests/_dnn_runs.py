"""``flow.py dnn`` command lines of a tiny LeNet-5 run (digits, a few hundred images, two characterised
broken-array multipliers written as multiplier runs) for the tests of the joint sparsity search."""

from __future__ import annotations

from pathlib import Path

from dnn import fixtures


def mult_runs(tmp_path: Path) -> list[str]:
    out = []
    for k, energy in ((3, 0.9), (6, 0.65)):
        out.append(str(fixtures.write_run(tmp_path / f"ba{k}", fixtures.broken_array(k), {
            "area": 1000.0 * energy, "energy_pj": energy, "power_w": energy * 1e-4, "clock_period_ns": 10.0,
            "exact": {"area": 1000.0, "power_w": 1e-4, "delay_ns": 3.0}})))
    return out


def dnn_argv(tmp_path: Path, *extra: str, run: str = "run") -> list[str]:
    return ["dnn", "--net", "lenet5", "--data", "digits", "--mults", *mult_runs(tmp_path), "--method", "hawx",
            "--epochs", "1", "--qat-epochs", "0", "--eval-images", "60", "--representatives", "4",
            "--ig-steps", "2", "--threads", "1", "--finetune-epochs", "0", "--train-limit", "300",
            "--run-dir", str(tmp_path / run), "--cache-dir", str(tmp_path / "cache"), "--max-acc-loss", "0.05",
            *extra]
