"""``flow.py sweep``: evolve over a grid of EPS values, then plot cost and error against EPS.

Each EPS is a member: an ordinary evolve run in ``<sweep>/eps<EPS>-seed<SEED>/``, built inside one Dask
task on the cluster of :mod:`evolve.cluster` (a LocalCluster sized to the machine, or ``--scheduler``), like
a library's members. A finished member is reused and an interrupted or killed one resumed from its
checkpoint, so a sweep can be stopped and started again. The roll-up is ``sweep.json``, ``sweep.csv``,
``sweep.md`` and two figures in the style of CircuitsDNA's figures 6 and 7: ``cost_vs_eps.png`` (area,
transistor and power ratios) and ``error_vs_eps.png`` (WCE, MAE, error rate).
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import config, metrics, stage
from core.config import option
from core.errors import ConfigError, must
from core.run import save_figure, write_json, write_text
from evolve import COSTS
from evolve.cluster import CompositeStage, Task, build_member, check_cluster, member_name
from evolve.seeds import SEED_ARCHS
from rtl_gen.multiplier import design_name

# the metrics of sweep.md's table, after EPS and before whether the run verified
TABLE = ("wce_limit", "wce", "wce_pct", "mae_pct", "er", "area_ratio", "transistor_ratio", "power_ratio", "delay_ratio")
COLUMNS = ("eps", "wce_limit", "wce", "wce_pct", "mae_pct", "er", "mred", "area", "area_ratio", "transistors",
           "transistor_ratio", "power_w", "power_ratio", "delay_ratio", "generations", "evaluations", "verified",
           "build")


@dataclass(frozen=True)
class SweepConfig:
    eps: tuple[float, ...] = option((0.001, 0.002, 0.005, 0.01, 0.02, 0.05), help="EPS values")
    bits: int = option(8, help="operand width of a (and of b unless --bits-b is given)")
    bits_b: int | None = option(None, help="operand width of b (default: --bits)")
    signed: bool = option(True, help="two's-complement operands; --no-signed for unsigned")
    seed: int = option(1, help="random seed of every run")
    budget: float = option(600.0, unit="s", help="evolution time per EPS; 0 for none (then set --generations)")
    generations: int | None = option(None, help="generations per EPS")
    tech: str = option("osu018", help="technology")
    cost: str = option("area", choices=COSTS, help="objective of every run")
    operands: str = option("uniform", help="operand distribution of every run (power stream, power cost, "
                           "weighted errors): 'uniform', a histogram CSV or a flow.py dnn run directory")
    mae_limit: float | None = option(None, help="largest MAE under the operand distribution, as a fraction of N")
    bias_limit: float | None = option(None, help="largest |bias| under the operand distribution, as a fraction of N")
    mse_limit: float | None = option(None, help="largest MSE under the operand distribution, as a fraction of N^2")
    jobs: int = option(2, help="processes per member (a worker's share of the cores)")
    seed_arch: str = option("array", choices=SEED_ARCHS,
                            help="architecture of the exact seed of every run (auto: the smallest after mapping)")
    tag: str | None = option(None, help="sweep name under runs/<design>/ (default: sweep-seed<SEED>)")
    run_dir: Path | None = option(None, help="sweep directory (default: runs/<design>/<tag>)")
    scheduler: str | None = option(None, help="address of a running Dask scheduler, tcp://HOST:PORT (default: a "
                                   "local cluster sized to the machine)")
    scheduler_timeout: float = option(10.0, unit="s", help="how long to wait for --scheduler to answer")
    workers: int | None = option(None, help="worker processes of the local cluster (default: cores // jobs)")
    overwrite: bool = option(False, help="redo runs that already finished (the new sweep is built beside the "
                             "old one and replaces it when it finished)")

    def __post_init__(self) -> None:
        config.check_tag(self.tag)
        if not self.eps:
            raise ConfigError("EPS needs at least one value")
        for e in self.eps:
            if not 0 < e < 1:
                raise must("EPS", "in (0, 1)", e)
        if len(set(self.eps)) != len(self.eps):
            raise ConfigError(f"EPS values must be distinct, not {' '.join(map(str, self.eps))}")
        check_cluster(self)


class SweepStage(CompositeStage):
    """A composite stage (:class:`evolve.cluster.CompositeStage`): one evolve run (the member stage) per EPS
    in the sweep directory, each a Dask task, then the roll-up. ``--overwrite`` builds the whole sweep
    beside the old one and replaces it when it finished."""

    name = "sweep"
    Config = SweepConfig
    listing = "sweep.json"
    outputs = ("config.json", "sweep.json", "sweep.csv", "sweep.md", "cost_vs_eps.png", "error_vs_eps.png",
               "eps<EPS>-seed<SEED>/")
    fingerprint = ("bits", "bits_b", "signed", "seed", "tech", "cost", "seed_arch", "operands", "mae_limit",
                   "bias_limit", "mse_limit")
    results = ("config.json", "sweep.json")  # a sweep directory is never debris: it holds member runs

    def prepare(self, cfg: SweepConfig, progress: bool) -> list[Any]:
        """Every member's evolve configuration, checked before anything runs."""
        from evolve.job import EvolveConfig

        settings = {"bits": cfg.bits, "bits_b": cfg.bits_b, "signed": cfg.signed, "seed": cfg.seed,
                    "budget": cfg.budget, "generations": cfg.generations, "tech": cfg.tech, "cost": cfg.cost,
                    "jobs": cfg.jobs, "seed_arch": cfg.seed_arch, "operands": cfg.operands,
                    "mae_limit": cfg.mae_limit, "bias_limit": cfg.bias_limit, "mse_limit": cfg.mse_limit}
        return [config.from_dict(EvolveConfig, {k: v for k, v in settings.items() if v is not None} | {"eps": e})
                for e in sorted(cfg.eps)]

    def default_dir(self, cfg: SweepConfig, plan: Any) -> Path:
        design = design_name(cfg.bits, cfg.bits if cfg.bits_b is None else cfg.bits_b, cfg.signed)
        return Path(design) / (cfg.tag or f"sweep-seed{cfg.seed}")

    def run(self, ctx: stage.Context) -> dict[str, Any]:
        cfg, runs, out = ctx.cfg, ctx.plan, ctx.run.path
        names = [member_name(m.eps, m.seed) for m in runs]
        tasks = [Task("member", name, build_member, (m, out / name, cfg.overwrite)) for name, m in zip(names, runs)]

        def roll_up(cluster: dict[str, Any], done: dict[str, dict[str, Any]], failures: list[dict[str, Any]]
                    ) -> dict[str, Any]:
            rows = [_row(done[name], ctx.run.final / name) for name in names if name in done]
            return _roll_up(out, rows, runs, cfg, cluster, [f["error"] for f in failures])

        return {**self.members(ctx, tasks, roll_up), "run_dir": str(ctx.run.final)}

    def summary(self, cfg: Any, report: dict[str, Any]) -> str:
        lines = [f"EPS {r['eps']:<6g} WCE {r['wce']:>6} (limit {r['wce_limit']:>6})  area {r['area_ratio']:.4f}  "
                 f"transistors {r['transistor_ratio']:.4f}  power {r['power_ratio']:.4f}  "
                 f"{'verified' if r['verified'] else 'NOT VERIFIED'}" for r in report["runs"]]
        return "\n".join([*lines, str(Path(report["run_dir"]) / "sweep.md")])


STAGE = SweepStage()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    stage.add_arguments(parser, STAGE)


def main(args: argparse.Namespace) -> int:
    return stage.main(STAGE, args)


def _roll_up(out: Path, rows: list[dict[str, Any]], runs: list[Any], cfg: SweepConfig,
             cluster: dict[str, Any] | None = None, failed: list[str] | None = None) -> dict[str, Any]:
    """sweep.json, sweep.csv, sweep.md and the plots of what ran; an interrupted sweep says what did not
    (``failed``: the members that failed, one line each). Returns what sweep.json holds."""
    done = {r["eps"] for r in rows}
    missing = [r.eps for r in runs if r.eps not in done]
    complete = [r for r in rows if not r["interrupted"]]
    failed = failed or []
    summary = {"settings": config.to_dict(cfg), "cluster": cluster,
               "complete": not missing and len(complete) == len(rows), "runs": rows, "not_run": missing,
               "failed": failed}
    write_json(out / "sweep.json", summary)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=(*COLUMNS, "interrupted"))
    w.writeheader()
    w.writerows({k: r.get(k) for k in (*COLUMNS, "interrupted")} for r in rows)
    write_text(out / "sweep.csv", buf.getvalue())
    write_text(out / "sweep.md", _markdown(rows, runs[0].design, cfg, missing, failed))
    if complete:
        _plots(out, complete, runs[0].design, cfg.tech)
    return summary


def _row(r: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    return {**{k: r.get(k) for k in COLUMNS if k not in ("verified", "build")},
            "verified": r["verification"]["passed"], "build": r.get("_build"),
            "interrupted": bool(r.get("interrupted")), "run_dir": str(run_dir)}


def _markdown(rows: list[dict[str, Any]], design: str, cfg: SweepConfig, missing: list[float],
              failed: list[str]) -> str:
    lines = [f"# {design}: cost and error against EPS on {cfg.tech}", "",
             f"Seed {cfg.seed}, {cfg.budget:g} s of evolution per EPS" if cfg.generations is None
             else f"Seed {cfg.seed}, {cfg.generations} generations per EPS", ""]
    lines += metrics.table(rows, [("EPS", lambda r: f"{r['eps']:g}"), *TABLE, ("verified", lambda r: (
        "yes" if r["verified"] else "NO") + (" (interrupted: evolved for less than its budget)" if r["interrupted"]
                                             else ""))])
    for e in missing:
        lines.append(f"| {e:g} |" + " |" * len(TABLE) + (" not run (failed) |" if failed else
                                                           " not run (interrupted sweep) |"))
    if failed:
        lines += ["", "**Failed members**:", "", *(f"- {line}" for line in failed)]
    if missing or any(r["interrupted"] for r in rows):
        lines += ["", "**Interrupted sweep**: run it again to resume it (finished runs are reused, the "
                  "interrupted ones continue from their checkpoints)."]
    lines += ["", "![cost](cost_vs_eps.png) ![error](error_vs_eps.png)", ""]
    return "\n".join(lines)


def _plots(out: Path, rows: list[dict[str, Any]], design: str, tech: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = [100 * r["eps"] for r in rows]

    def plot(name: str, series: tuple[tuple[str, str], ...], what: str, errors: bool) -> None:
        # one axis, so one unit and one direction: the first series' (the others must share them)
        axis = {(metrics.get(key).unit, metrics.get(key).better) for key, _ in series}
        if len(axis) != 1:
            raise ValueError(f"the series of {name} must share a unit and a direction, not {sorted(axis)}")
        ylabel = metrics.axis_label(series[0][0], "ratio to the exact multiplier" if not errors else "error")
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, label in series:
            ax.plot(eps, [r[key] for r in rows], marker="o", label=label)
        if errors:  # on a log scale, with the limit EPS itself
            ax.plot(eps, eps, ls="--", color="grey", lw=1, label="limit")
            ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xlabel("EPS (WCE limit, % of N)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{design} on {tech}: {what} against EPS")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        save_figure(fig, out / name)

    plot("cost_vs_eps.png", (("area_ratio", "area"), ("transistor_ratio", "transistors"), ("power_ratio", "power")),
         "cost", errors=False)
    plot("error_vs_eps.png", (("wce_pct", "WCE %"), ("mae_pct", "MAE %"), ("mred", "MRED %")), "error", errors=True)
