"""``flow.py library``: a library of approximate multipliers for one width, signedness, technology and
operand distribution, built on Dask.

A grid of WCE targets (``--eps``) times ``--seeds``; each member is an ordinary, fully verified evolve
run in ``<library>/members/eps<EPS>-seed<SEED>/``, built by :func:`evolve.job.run` inside one Dask task
(``Client.submit``, ``retries=1``). The default cluster is a :class:`distributed.LocalCluster` sized to the
machine (``cores // jobs`` worker processes of one thread); ``--scheduler tcp://HOST:PORT`` sends the same
tasks to a running cluster, whose workers must see the library directory and this checkout at the same
paths. A member is the unit of resume: a finished member (``report.json``, verified) is reused, an
interrupted or killed one continues from its checkpoint (evolve's ``--resume``, with the evolution time
already spent taken off its budget), so a member retried after its worker died counts nothing twice.

The catalogue, written atomically, is ``library.json`` and ``library.csv``: one row per member (and per
``--reference`` design, characterised by ``flow.py ppa``), with every error metric, area, power, delay,
energy, how the WCE was proven, whether it is dominated on each Pareto plane (power vs WCE, area vs
WCE, power vs MAE, and with non-uniform ``--operands`` power vs the MAE under them, ``power_mae_app``;
``dominated``: on none of the fronts) and how this build got it (``new``, ``resumed`` from its checkpoint,
``reused``). The planes are drawn in ``power_vs_mae.png``, ``area_vs_wce.png``, ``power_vs_wce.png`` and
``power_vs_mae_app.png``.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import config, metrics, stage
from core.config import option
from core.errors import ConfigError, FlowError
from core.run import read_json, save_figure, write_json, write_text
from evolve import COSTS
from evolve.cluster import CompositeStage, Task, build_member, check_cluster, member_name
from evolve.seeds import SEED_ARCHS
from rtl_gen.multiplier import design_name

RESULTS = ("library.json", "members", "references")  # what makes a library directory worth keeping
ERRORS = ("wce", "wce_pct", "mae", "mae_pct", "er", "mred", "bias", "nmed", "smape", "mse")
# the same under the library's operand distribution (--operands; WMED-style weights)
ERRORS_APP = ("wce_app", "mae_app", "mae_app_pct", "mse_app", "bias_app", "er_app", "mred_app")
PPA = ("area", "area_ratio", "power_w", "power_ratio", "delay_ns", "delay_ratio", "energy_pj", "power_cost",
       "power_cost_ratio")
# the Pareto planes: (name, x, y), each metric compared in its registry direction (core.metrics)
PLANES = (("power_wce", "wce", "power_w"), ("area_wce", "wce", "area"), ("power_mae", "mae", "power_w"))
# and power against the MAE under the operands, where they are not uniform (else it is power_mae)
APP_PLANE = ("power_mae_app", "mae_app", "power_w")
COLUMNS = ("kind", "name", "eps", "seed", "wce_limit", *ERRORS, *ERRORS_APP, *PPA, "wce_proof_method", "wce_proof_time_s",
           "verified", *(f"dominated_{p}" for p, _, _ in (*PLANES, APP_PLANE)), "dominated", "generations", "build",
           "run_dir")


def planes(operands: str) -> tuple[tuple[str, str, str], ...]:
    """The Pareto planes of a library on ``operands``: :data:`PLANES`, and :data:`APP_PLANE` unless uniform."""
    return PLANES if operands == "uniform" else (*PLANES, APP_PLANE)


@dataclass(frozen=True)
class LibraryConfig:
    """Settings of one library build."""

    eps: tuple[float, ...] = option((0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3),
                                    help="WCE targets, as fractions of N")
    seeds: tuple[int, ...] = option((1, 2), help="random seeds: one member per EPS and seed")
    bits: int = option(8, help="operand width of a (and of b unless --bits-b is given)")
    bits_b: int | None = option(None, help="operand width of b (default: --bits)")
    signed: bool = option(True, help="two's-complement operands; --no-signed for unsigned")
    tech: str = option("osu018", help="technology: built-in name, Liberty file, directory or TOML description")
    cost: str = option("area", choices=COSTS, help="objective of every member (power: switching energy on the "
                       "power stream of --operands)")
    mae_limit: float | None = option(None, help="every member's largest MAE under --operands, as a fraction of N")
    bias_limit: float | None = option(None, help="every member's largest |mean error| under --operands, as a "
                                      "fraction of N")
    mse_limit: float | None = option(None, help="every member's largest MSE under --operands, as a fraction of N^2")
    operands: str = option("uniform", help="operand distribution for power: 'uniform' or a histogram CSV "
                           "(value,count or value,count_a,count_b)")
    budget: float = option(600.0, unit="s", help="evolution time per member; 0 for none (then set --generations)")
    generations: int | None = option(None, help="generations per member")
    jobs: int = option(1, help="processes per member (a worker's share of the cores)")
    seed_arch: str = option("array", choices=SEED_ARCHS,
                            help="architecture of the exact seed of every run (auto: the smallest after mapping)")
    epoch: int = option(1000, unit="generations", help="generations between a member's checkpoints")
    power_vectors: int = option(2000, help="operand pairs simulated to measure switching activity")
    reference: Path | None = option(None, help="directory of other multipliers' Verilog (one top per file, named "
                                    "like the file) characterised by flow.py ppa and drawn with the library")
    tag: str | None = option(None, help="library name under runs/<design>/ (default: library-<tech>)")
    run_dir: Path | None = option(None, help="library directory (default: runs/<design>/<tag>)")
    scheduler: str | None = option(None, help="address of a running Dask scheduler, tcp://HOST:PORT (default: a "
                                   "local cluster sized to the machine)")
    scheduler_timeout: float = option(10.0, unit="s", help="how long to wait for --scheduler to answer")
    workers: int | None = option(None, help="worker processes of the local cluster (default: cores // jobs)")
    overwrite: bool = option(False, help="rebuild every member (beside the old library, which it then replaces)")

    def __post_init__(self) -> None:
        config.check_tag(self.tag)
        if not self.eps:
            raise ConfigError("EPS needs at least one value")
        for e in self.eps:
            config.check_range("EPS", e, 0.0, 1.0, lo_open=True, hi_open=True)
        if len(set(self.eps)) != len(self.eps):
            raise ConfigError(f"EPS values must be distinct, not {' '.join(map(str, self.eps))}")
        if not self.seeds:
            raise ConfigError("SEEDS needs at least one value")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"SEEDS must be distinct, not {' '.join(map(str, self.seeds))}")
        check_cluster(self)
        if self.reference is not None and not self.reference.is_dir():
            raise ConfigError(f"REFERENCE {self.reference} is not a directory")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    stage.add_arguments(parser, STAGE)


def main(args: argparse.Namespace) -> int:
    return stage.main(STAGE, args)


# ------------------------------------------------------------------------------------------ plan
def members(cfg: LibraryConfig) -> list[Any]:
    """Every member's evolve configuration (checked before anything runs), without its directory."""
    from evolve.job import EvolveConfig

    settings = {"bits": cfg.bits, "bits_b": cfg.bits_b, "signed": cfg.signed, "budget": cfg.budget,
                "generations": cfg.generations, "tech": cfg.tech, "cost": cfg.cost, "jobs": cfg.jobs,
                "epoch": cfg.epoch, "power_vectors": cfg.power_vectors, "operands": cfg.operands,
                "seed_arch": cfg.seed_arch, "mae_limit": cfg.mae_limit, "bias_limit": cfg.bias_limit,
                "mse_limit": cfg.mse_limit}
    return [config.from_dict(EvolveConfig, {k: v for k, v in settings.items() if v is not None}
                             | {"eps": e, "seed": s}) for e in sorted(cfg.eps) for s in cfg.seeds]


def references(directory: Path) -> list[tuple[Path, str]]:
    """The Verilog files of ``directory`` and their top modules (the module named like the file, or the
    file's only module)."""
    found = []
    for path in sorted(directory.glob("*.v")):
        text = path.read_text(encoding="utf-8", errors="replace")
        modules = re.findall(r"^\s*module\s+([A-Za-z_][A-Za-z0-9_$]*)", text, flags=re.M)
        if path.stem in modules:
            found.append((path, path.stem))
        elif len(modules) == 1:
            found.append((path, modules[0]))
        else:
            raise ConfigError(f"reference {path} must hold a module named {path.stem} or exactly one module, "
                              f"not {len(modules)}")
    if not found:
        raise ConfigError(f"REFERENCE {directory} holds no Verilog file (*.v)")
    return found


# ------------------------------------------------------------------------------------------ tasks
def characterise_reference(verilog: Path, top: str, cfg: LibraryConfig, run_dir: Path) -> dict[str, Any]:
    """One reference design through ``flow.py ppa``'s characterisation (reused when already done)."""
    from ppa.cli import PpaConfig, characterise

    try:
        report_path = run_dir / "report.json"
        if report_path.is_file() and not cfg.overwrite:
            r = read_json(report_path, "reference report")
            if isinstance(r, dict):
                return {"report": r, "reused": True}
        pcfg = PpaConfig(verilog=verilog, top=top, bits=cfg.bits, bits_b=cfg.bits_b, signed=cfg.signed,
                         tech=cfg.tech, power_vectors=cfg.power_vectors, operands=cfg.operands,
                         run_dir=run_dir, overwrite=run_dir.exists())
        return {"report": characterise(pcfg), "reused": False}
    except FlowError as err:
        return {"error": f"reference {verilog.name}: {err}", "exit_code": err.exit_code}


# ------------------------------------------------------------------------------------------ build
@dataclass
class Plan:
    members: list[Any]
    references: list[tuple[Path, str]]


class LibraryStage(CompositeStage):
    """A composite stage (:class:`evolve.cluster.CompositeStage`): one evolve run per EPS and seed (and one
    ppa run per reference design), each a Dask task, then the catalogue."""

    name = "library"
    Config = LibraryConfig
    listing = "library.json"
    outputs = ("config.json", "library.json", "library.csv", "power_vs_mae.png", "area_vs_wce.png",
               "power_vs_wce.png", "power_vs_mae_app.png", "members/", "references/")
    fingerprint = ("bits", "bits_b", "signed", "tech", "cost", "operands", "seed_arch", "power_vectors", "mae_limit",
                   "bias_limit", "mse_limit")
    results = ("config.json", *RESULTS)

    def prepare(self, cfg: LibraryConfig, progress: bool) -> Plan:
        plan = members(cfg)  # every setting checked before anything runs
        if cfg.operands != "uniform":
            from ppa import activity

            activity.read_operands(cfg.operands, plan[0].wa, plan[0].wb, cfg.signed)
        return Plan(plan, references(cfg.reference) if cfg.reference is not None else [])

    def default_dir(self, cfg: LibraryConfig, plan: Any) -> Path:
        design = design_name(cfg.bits, cfg.bits if cfg.bits_b is None else cfg.bits_b, cfg.signed)
        return Path(design) / (cfg.tag or f"library-{cfg.tech}")

    def run(self, ctx: stage.Context) -> dict[str, Any]:
        cfg, plan, refs, where = ctx.cfg, ctx.plan.members, ctx.plan.references, ctx.run.path
        names = [member_name(m.eps, m.seed) for m in plan]
        tasks = [Task("member", name, build_member, (m, where / "members" / name, cfg.overwrite))
                 for name, m in zip(names, plan)]
        tasks += [Task("reference", top, characterise_reference,
                       (verilog.resolve(), top, cfg, where / "references" / top)) for verilog, top in refs]

        def roll_up(cluster: dict[str, Any], done: dict[str, dict[str, Any]], failures: list[dict[str, Any]]
                    ) -> dict[str, Any]:
            return _catalogue(where, ctx.run.final, cfg, cluster, plan, refs, done, failures)

        result = self.members(ctx, tasks, roll_up, folders=("members", *(("references",) if refs else ())))
        return {**result, "path": str(ctx.run.final)}

    def summary(self, cfg: Any, result: dict[str, Any]) -> str:
        beaten = ", ".join(f"{plane} {v['references_dominated']}/{v['references']}"
                           for plane, v in result["references_dominated"].items() if v["references"])
        return (f"{len(result['members'])} members, {len(result['references'])} references, "
                f"{sum(not r['dominated'] for r in result['rows'])} on a Pareto front"
                f"{f'; references dominated by a member: {beaten}' if beaten else ''}: "
                f"{Path(result['path']) / 'library.csv'}")


STAGE = LibraryStage()


def build(cfg: LibraryConfig, *, progress: bool = True) -> dict[str, Any]:
    """Build (or resume) the library; returns its catalogue. Ctrl-C writes the catalogue of the members
    finished so far and raises KeyboardInterrupt (the others resume next time)."""
    return STAGE.execute(cfg, progress=progress)


# ------------------------------------------------------------------------------------------ catalogue
def _row(kind: str, name: str, m: Any, r: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    proof = r.get("wce_proof") or {}
    if kind == "member":
        method, time_s, verified = proof.get("method"), proof.get("time_s"), bool(r["verification"]["passed"])
    else:  # flow.py ppa measures its WCE by simulation, of every pair up to 16 input bits
        sampled = r.get("verification_vectors", 0) < (1 << (r["wa"] + r["wb"]))
        method, time_s, verified = "sampled simulation" if sampled else "exhaustive simulation", None, None
    return {"kind": kind, "name": name, "eps": m.eps if m else None, "seed": m.seed if m else None,
            "wce_limit": r.get("wce_limit"), **{k: r.get(k) for k in (*ERRORS, *ERRORS_APP, *PPA)},
            "wce_proof_method": method, "wce_proof_time_s": time_s, "verified": verified,
            "generations": r.get("generations"), "build": r.get("_build"), "run_dir": str(run_dir),
            "wce_proof": proof or None}


def power_cost_correlation(rows: list[dict[str, Any]]) -> float | None:
    """Pearson correlation of the evaluator's power cost and OpenSTA's power over the members that have both."""
    import numpy as np

    pts = [(r["power_cost"], r["power_w"]) for r in rows
           if r["kind"] == "member" and r.get("power_cost") is not None and r.get("power_w") is not None]
    if len(pts) < 3:
        return None
    x, y = np.array(pts, dtype=float).T
    return float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else None


def dominated(points: Sequence[Sequence[float]], names: Sequence[str] = ("wce", "power_w")) -> list[bool]:
    """For each point (its values of the metrics ``names``): whether another point is no worse in all of
    them and better in one, each metric in the direction the registry gives it."""
    return metrics.dominated([dict(zip(names, p)) for p in points], names)


def references_dominated(rows: list[dict[str, Any]], drawn: Sequence[tuple[str, str, str]] = PLANES
                         ) -> dict[str, dict[str, Any]]:
    """For each Pareto plane: how many references some member of the library dominates (no worse on both
    metrics, better on one; references do not count against each other), and which are not."""
    members = [r for r in rows if r["kind"] == "member"]
    refs = [r for r in rows if r["kind"] == "reference"]
    out = {}
    for plane, x, y in drawn:
        free = [r["name"] for r in refs if not metrics.dominated([*members, r], (x, y))[-1]]
        out[plane] = {"references": len(refs), "references_dominated": len(refs) - len(free), "not_dominated": free}
    return out


def _catalogue(where: Path, final: Path, cfg: LibraryConfig, cluster: dict[str, Any], plan: list[Any],
               refs: list[tuple[Path, str]],
               done: dict[str, dict[str, Any]], failures: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for m in plan:  # members in the order of the grid, then the references
        name = member_name(m.eps, m.seed)
        if name in done:
            rows.append(_row("member", name, m, done[name], final / "members" / name))
    for _, top in refs:
        if top in done:
            rows.append(_row("reference", top, None, done[top], final / "references" / top))
    drawn = planes(cfg.operands)
    for plane, x, y in drawn:
        flags = metrics.dominated(rows, (x, y))
        for r, flag in zip(rows, flags):
            r[f"dominated_{plane}"] = flag
    for r in rows:
        r["dominated"] = all(r[f"dominated_{p}"] for p, _, _ in drawn)  # on no front at all
    missing = [member_name(m.eps, m.seed) for m in plan if member_name(m.eps, m.seed) not in done]
    missing += [top for _, top in refs if top not in done]
    catalogue = {"settings": config.to_dict(cfg), "design": plan[0].design, "tech": cfg.tech, "cluster": cluster,
                 "complete": not missing, "not_built": missing, "failed": [f["error"] for f in failures],
                 "pareto_planes": [{"name": p, "x": x, "y": y} for p, x, y in drawn],
                 "power_cost_correlation": power_cost_correlation(rows),
                 "references_dominated": references_dominated(rows, drawn), "rows": rows}
    write_json(where / "library.json", catalogue)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_text(where / "library.csv", buf.getvalue())
    if rows:
        _plots(where, rows, plan[0].design, cfg.tech, drawn)
    return {**catalogue, "members": [r for r in rows if r["kind"] == "member"],
            "references": [r for r in rows if r["kind"] == "reference"]}


def _plots(where: Path, rows: list[dict[str, Any]], design: str, tech: str,
           drawn: tuple[tuple[str, str, str], ...] = PLANES) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"wce": "WCE", "mae": "MAE", "mae_app": "MAE under the operands", "power_w": "power", "area": "area"}
    for plane, x, y in drawn:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for kind, marker in (("member", "o"), ("reference", "s")):
            for front, colour in ((False, "tab:blue" if kind == "member" else "tab:orange"), (True, "lightgrey")):
                pts = [r for r in rows if r["kind"] == kind and r[f"dominated_{plane}"] == front]
                if pts:
                    ax.scatter([r[x] for r in pts], [r[y] for r in pts], marker=marker, color=colour,
                               edgecolors="black" if kind == "reference" else "none", zorder=3,
                               label=f"{'axflow' if kind == 'member' else 'reference'}"
                                     f"{' (dominated)' if front else ''}")
        front_pts = sorted((r[x], r[y]) for r in rows if not r[f"dominated_{plane}"])
        if len(front_pts) > 1:
            ax.step([p[0] for p in front_pts], [p[1] for p in front_pts], where="post", color="tab:blue",
                    lw=1, alpha=0.6, label="Pareto front")
        if any(r[x] > 0 for r in rows):
            ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel(metrics.axis_label(x, labels[x]))
        ax.set_ylabel(metrics.axis_label(y, labels[y]))
        ax.set_title(f"{design} on {tech}: {labels[y]} against {labels[x]}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"{y.split('_')[0]}_vs_{x}.png"
        save_figure(fig, where / name)
