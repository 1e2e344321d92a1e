"""``flow.py sweep``: evolve over a grid of EPS values, then plot cost and error against EPS.

Each EPS is an ordinary evolve run in ``<out>/eps<EPS>-seed<SEED>/``; a finished one is reused and an
interrupted one resumed, so a sweep can be stopped and started again. The roll-up is
``sweep.json``, ``sweep.csv``, ``sweep.md`` and two figures in the style of CircuitsDNA's figures 6 and 7:
``cost_vs_eps.png`` (area, transistor and power ratios) and ``error_vs_eps.png`` (WCE, MAE, error rate).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import config, metrics, stage
from core.config import option
from core.errors import ConfigError, must
from core.run import read_json, save_figure, write_json, write_text
from evolve import COSTS
from evolve.seeds import SEED_ARCHS
from rtl_gen.multiplier import design_name

MIN_REST_S = 0.001  # a resumed run whose time is spent still finishes: one epoch, then verification
# the metrics of sweep.md's table, after EPS and before whether the run verified
TABLE = ("wce_limit", "wce", "wce_pct", "mae_pct", "er", "area_ratio", "transistor_ratio", "power_ratio", "delay_ratio")
COLUMNS = ("eps", "wce_limit", "wce", "wce_pct", "mae_pct", "er", "mred", "area", "area_ratio", "transistors",
           "transistor_ratio", "power_w", "power_ratio", "delay_ratio", "generations", "evaluations", "verified")


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
    jobs: int = option(2, help="processes per run")
    seed_arch: str = option("array", choices=SEED_ARCHS,
                            help="architecture of the exact seed of every run (auto: the smallest after mapping)")
    tag: str | None = option(None, help="sweep name under runs/<design>/ (default: sweep-seed<SEED>)")
    run_dir: Path | None = option(None, help="sweep directory (default: runs/<design>/<tag>)")
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


class SweepStage(stage.Stage):
    """A composite stage: one evolve run (the member stage) per EPS in the sweep directory, then the
    roll-up. It resumes by finished members: running it again on its directory reuses finished runs and
    resumes interrupted ones, and a setting that the members share (``fingerprint``) may not change.
    ``--overwrite`` builds the whole sweep beside the old one and replaces it when it finished."""

    name = "sweep"
    Config = SweepConfig
    outputs = ("config.json", "sweep.json", "sweep.csv", "sweep.md", "cost_vs_eps.png", "error_vs_eps.png",
               "eps<EPS>-seed<SEED>/")
    resumable = True
    fingerprint = ("bits", "bits_b", "signed", "seed", "tech", "cost", "seed_arch", "operands", "mae_limit",
                   "bias_limit", "mse_limit")
    results = ("config.json", "sweep.json")  # a sweep directory is never debris: it holds member runs
    renamed = (("--out", "--run-dir"),)
    stored_required = False  # a sweep directory from before config.json: resumed as given

    def resuming(self, cfg: SweepConfig) -> bool:
        path = self.directory(cfg, None)
        return not cfg.overwrite and path.is_dir() and any(path.iterdir())

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
        rows: list[dict[str, Any]] = []
        try:
            for run_cfg in runs:
                rows.append(_one(run_cfg, out, ctx.run.final, ctx.progress))
                if rows[-1]["interrupted"]:  # Ctrl-C stopped this run's evolution: stop the sweep here
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            _roll_up(out, rows, runs, cfg)
            print(f"interrupted: {ctx.run.final / 'sweep.md'} says which EPS finished; run the sweep again to "
                  "resume it", file=sys.stderr)
            raise
        ctx.reported = True  # sweep.json is its report
        return {**_roll_up(out, rows, runs, cfg), "run_dir": str(ctx.run.final)}

    def summary(self, cfg: Any, report: dict[str, Any]) -> str:
        lines = [f"EPS {r['eps']:<6g} WCE {r['wce']:>6} (limit {r['wce_limit']:>6})  area {r['area_ratio']:.4f}  "
                 f"transistors {r['transistor_ratio']:.4f}  power {r['power_ratio']:.4f}  "
                 f"{'verified' if r['verified'] else 'NOT VERIFIED'}" for r in report["runs"]]
        return "\n".join([*lines, str(Path(report["run_dir"]) / "sweep.md")])

    def exit_code(self, report: dict[str, Any]) -> int:
        return 0 if all(r["verified"] for r in report["runs"]) else 5


STAGE = SweepStage()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    stage.add_arguments(parser, STAGE)


def main(args: argparse.Namespace) -> int:
    return stage.main(STAGE, args)


def _roll_up(out: Path, rows: list[dict[str, Any]], runs: list[Any], cfg: SweepConfig) -> dict[str, Any]:
    """sweep.json, sweep.csv, sweep.md and the plots of what ran; an interrupted sweep says what did not.
    Returns what sweep.json holds."""
    done = {r["eps"] for r in rows}
    missing = [r.eps for r in runs if r.eps not in done]
    complete = [r for r in rows if not r["interrupted"]]
    summary = {"settings": config.to_dict(cfg), "complete": not missing and len(complete) == len(rows),
               "runs": rows, "not_run": missing}
    write_json(out / "sweep.json", summary)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=(*COLUMNS, "interrupted"))
    w.writeheader()
    w.writerows({k: r.get(k) for k in (*COLUMNS, "interrupted")} for r in rows)
    write_text(out / "sweep.csv", buf.getvalue())
    write_text(out / "sweep.md", _markdown(rows, runs[0].design, cfg, missing))
    if complete:
        _plots(out, complete, runs[0].design, cfg.tech)
    return summary


def _one(cfg: Any, out: Path, final: Path, progress: bool) -> dict[str, Any]:
    """One member in ``out`` (the sweep directory, or its staging directory, which becomes ``final``):
    reused when finished, resumed from its checkpoint when interrupted, else run."""
    from dataclasses import replace

    from evolve import engine, job

    name = f"eps{cfg.eps:g}-seed{cfg.seed}"
    run_dir = out / name
    report = run_dir / "report.json"
    if report.is_file():
        r = read_json(report, "run report")
        if isinstance(r, dict) and not r.get("interrupted"):
            return _row(r, final / name)
    resume = (run_dir / "checkpoint.npz").is_file()
    if resume and cfg.budget > 0:  # every EPS gets the same evolution time: an interrupted run only the rest
        spent = engine.checkpoint_elapsed(run_dir / "checkpoint.npz") or 0.0
        cfg = replace(cfg, budget=max(cfg.budget - spent, MIN_REST_S))
    cfg = replace(cfg, run_dir=run_dir, resume=resume)
    r = job.run(cfg, given={"budget": cfg.budget, "generations": cfg.generations} if resume else None,
                progress=progress)
    return _row(r, final / name)


def _row(r: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    return {**{k: r.get(k) for k in COLUMNS if k != "verified"}, "verified": r["verification"]["passed"],
            "interrupted": bool(r.get("interrupted")), "run_dir": str(run_dir)}


def _markdown(rows: list[dict[str, Any]], design: str, cfg: SweepConfig, missing: list[float]) -> str:
    lines = [f"# {design}: cost and error against EPS on {cfg.tech}", "",
             f"Seed {cfg.seed}, {cfg.budget:g} s of evolution per EPS" if cfg.generations is None
             else f"Seed {cfg.seed}, {cfg.generations} generations per EPS", ""]
    lines += metrics.table(rows, [("EPS", lambda r: f"{r['eps']:g}"), *TABLE, ("verified", lambda r: (
        "yes" if r["verified"] else "NO") + (" (interrupted: evolved for less than its budget)" if r["interrupted"]
                                             else ""))])
    for e in missing:
        lines.append(f"| {e:g} |" + " |" * len(TABLE) + " not run (interrupted sweep) |")
    if missing or any(r["interrupted"] for r in rows):
        lines += ["", "**Interrupted sweep**: run it again to resume it (finished runs are reused, the "
                  "interrupted one continues from its checkpoint)."]
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
