"""``flow.py accel``: time, traffic and energy of a network on a (multi-pod) systolic accelerator.

Writes into the run directory: ``layers.csv`` (one row per layer), ``report.json``, ``report.md``,
``layers.png`` (energy by component and time per layer) and ``config.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from accel_models.evaluation import AccelConfig, Result, evaluate
from core import metrics, stage
from core.run import save_figure


class AccelStage(stage.Stage):
    """Time, traffic and energy of a network on an accelerator; the cycle model runs in ``prepare`` (it
    reads every input: topology, weights, masks, multiplier runs), before the run directory exists."""

    name = "accel"
    Config = AccelConfig
    inputs = ("assign", "array_run", "weights", "masks")
    outputs = ("config.json", "report.json", "report.md", "layers.csv", "layers.png")
    packages = ("numpy", "matplotlib")
    renamed = (("--clock-ns", "--clock-period"),)

    def prepare(self, cfg: AccelConfig, progress: bool) -> Result:
        return evaluate(cfg, progress=progress)

    def default_dir(self, cfg: AccelConfig, plan: Result) -> Path:
        return Path("accel") / cfg.default_tag(plan.net)

    def run(self, ctx: stage.Context) -> dict[str, Any]:
        return write(ctx, ctx.plan)

    def summary(self, cfg: Any, rep: dict[str, Any]) -> str:
        return (f"{rep['net']}: {rep['cycles']:,} cycles ({rep['time_s'] * 1e3:.4g} ms), "
                f"{rep['energy_total_pj'] / 1e6:.4g} uJ, utilisation {rep['utilization']:.3f} -> {rep['run_dir']}")


STAGE = AccelStage()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    stage.add_arguments(parser, STAGE)


def main(args: argparse.Namespace) -> int:
    return stage.main(STAGE, args)


# --- outputs ------------------------------------------------------------------------------------

def _mult_label(mults: tuple) -> str:
    if len(mults) == 1:
        return Path(mults[0][0]).name if mults[0][0] != "exact" else "exact"
    return "; ".join(f"{(Path(n).name if n != 'exact' else n)}:{s:.3f}" for n, s in mults)


def layer_rows(result: Result) -> list[dict[str, Any]]:
    ev = result.evaluation
    energies = ev.layer_energy(result.assignment)
    rows = []
    scalesim = result.cfg.cycle_model == "scalesim"
    for perf, e in zip(result.perfs, energies):
        layer = perf.layer
        row: dict[str, Any] = {
            "layer": layer.name, "kind": layer.kind, "groups": layer.groups, "m": layer.m, "k": layer.k,
            "n": layer.n, "macs": perf.macs, "split": perf.split, "folds": perf.folds, "cycles": perf.cycles,
            "compute_cycles": perf.compute_cycles, "stall_cycles": perf.stall_cycles,
            "utilization": round(perf.utilization, 6), "time_us": perf.cycles * ev.clock_ns * 1e-3,
            "pod_busy_cycles": ";".join(str(b) for b in perf.pod_busy),
            "sram_a_reads_words": perf.sram_a_reads, "sram_b_reads_words": perf.sram_b_reads,
            "sram_c_reads_words": perf.sram_c_reads, "sram_c_writes_words": perf.sram_c_writes,
            "dram_a_bytes": perf.dram_a_bytes, "dram_b_bytes": perf.dram_b_bytes,
            "dram_c_write_bytes": perf.dram_c_write_bytes, "dram_c_read_bytes": perf.dram_c_read_bytes,
            "n_m_words": perf.dram_bytes, "energy_dram_pj": e.dram_pj, "energy_sram_pj": e.sram_pj, "energy_compute_pj": e.compute_pj,
            "energy_total_pj": e.total_pj, "energy_mult_pj": e.mult_pj, "multiplier": _mult_label(result.assignment[layer.name]),
            "weight_density": round(perf.weight_density, 6),
        }
        if scalesim:
            row["mapping_eff_pct"] = perf.mapping_eff
            row["compute_util_pct"] = perf.compute_util
        rows.append(row)
    return rows


def report(result: Result) -> dict[str, Any]:
    ev = result.evaluation
    cfg = result.cfg
    energies = ev.layer_energy(result.assignment)
    exact_energy, _ = ev.evaluate({n: (("exact", 1.0),) for n in ev.names})
    total = sum(e.total_pj for e in energies)
    cycles = sum(p.cycles for p in result.perfs)
    macs = sum(p.macs for p in result.perfs)
    rows, cols = cfg.dims
    splits: dict[str, int] = {}
    for p in result.perfs:
        splits[p.split] = splits.get(p.split, 0) + 1
    dram = sum(p.dram_bytes for p in result.perfs)
    return {
        "net": result.net, "layers": len(result.layers), "batch": cfg.batch,
        "array": {"rows": rows, "cols": cols, "pods": cfg.pods, "dataflow": cfg.dataflow,
                  "ifmap_kb": cfg.ifmap_kb, "filter_kb": cfg.filter_kb, "ofmap_kb": cfg.ofmap_kb,
                  "dram_bw_bytes_per_cycle": cfg.dram_bw or None},
        "cycle_model": cfg.cycle_model, "split_policy": cfg.split, "splits": splits,
        "cycles": cycles, "compute_cycles": sum(p.compute_cycles for p in result.perfs),
        "stall_cycles": sum(p.stall_cycles for p in result.perfs),
        "clock_ns": ev.clock_ns, "time_s": cycles * ev.clock_ns * 1e-9, "macs": macs,
        "utilization": macs / (cycles * cfg.pods * rows * cols),
        "dram_bytes": dram, "sram_bytes": sum(p.sram_bytes for p in result.perfs),
        "energy_total_pj": total, "energy_dram_pj": sum(e.dram_pj for e in energies),
        "energy_sram_pj": sum(e.sram_pj for e in energies),
        "energy_compute_pj": sum(e.compute_pj for e in energies),
        "energy_mult_pj": sum(e.mult_pj for e in energies),
        "energy_exact_pj": exact_energy, "energy_ratio": total / exact_energy if exact_energy else None,
        "n_m_words": dram, "access_words": ev.access_words, "e_access_pj": ev.e_access,
        "p_pod": ev.power.source, "energy_sources": list(ev.lib.sources),
        "multipliers": {n: {"energy_pj": m.energy_pj, "area": m.area} for n, m in ev.lib.mults.items()},
        "assignment": str(cfg.assign) if cfg.assign else f"every layer: {cfg.mult}",
        "hawx": result.hawx,
        "sparsity": None if not result.masks else {
            "method": result.mask_method, "block": cfg.sparsity_block, "target": cfg.sparsity,
            "weight_density": sum(p.weight_density * p.layer.weights for p in result.perfs)
            / sum(p.layer.weights for p in result.perfs),
            "macs_dense": sum(p.layer.macs for p in result.perfs)},
        "model_wall_s": result.wall_s,
        "not_modelled": result.not_modelled,
    }


SUMMARY = ("cycles", "compute_cycles", "stall_cycles", "time_s", "macs", "utilization", "dram_bytes", "sram_bytes",
           "energy_total_pj", "energy_dram_pj", "energy_sram_pj", "energy_compute_pj", "energy_mult_pj",
           "energy_ratio")


def markdown(rep: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    a = rep["array"]
    bw = f"{a['dram_bw_bytes_per_cycle']} B/cycle" if a["dram_bw_bytes_per_cycle"] else "unlimited"
    lines = [
        f"# {rep['net']} on {a['pods']} x {a['rows']}x{a['cols']} ({a['dataflow']}, {rep['cycle_model']} model)",
        "",
        f"SRAM per pod: ifmap {a['ifmap_kb']} KiB, filter {a['filter_kb']} KiB, ofmap {a['ofmap_kb']} KiB; "
        f"DRAM bandwidth {bw}; clock {rep['clock_ns']:g} ns; assignment: {rep['assignment']}.",
        "",
        "| metric | value | meaning |",
        "| --- | --- | --- |",
    ]
    lines += [metrics.row(key, rep[key]) for key in SUMMARY]
    lines += ["", f"Splits chosen: {', '.join(f'{k}: {v}' for k, v in rep['splits'].items())}.",
              f"P_pod: {rep['p_pod']}.", ""]
    for s in rep["energy_sources"]:
        lines.append(f"- {s}")
    h = rep["hawx"]
    sp, tp = h["spatial"], h["temporal"]

    def area(v: float | None) -> str:
        return "n/a (no area for the exact multiplier: give a multiplier run)" if v is None else f"{v:.6g} um^2"

    lines += ["", "## HAWX-style costs of this assignment", "",
              f"- spatial ({sp['lanes_per_layer']} lanes per layer): area {area(sp['area_um2'])}, latency "
              f"{sp['latency_cycles']:,} cycles, interval {sp['interval_cycles']:,} cycles, "
              f"energy {sp['energy_pj']:.6g} pJ",
              f"- temporal ({tp['lanes_per_vector']} lanes per vector, {len(tp['vectors'])} vector(s)): area "
              f"{area(tp['area_um2'])}, {tp['cycles']:,} cycles, energy {tp['energy_pj']:.6g} pJ", ""]
    if rep["sparsity"]:
        s = rep["sparsity"]
        lines += [f"Block sparsity: {s['block']}x{s['block']} blocks, target {s['target']:g}, method "
                  f"{s['method']}, kept weights {s['weight_density']:.4f}, MACs {rep['macs']:,} of "
                  f"{s['macs_dense']:,}.", ""]
    if rep.get("not_modelled"):
        lines += ["## Not modelled", "", "Operations of the model that multiply but are counted in no layer "
                  "(time and energy above leave them out):", ""]
        lines += [f"- {e['name']}: {e['op']} ({e.get('why') or e['shapes']})" for e in rep["not_modelled"]]
        lines.append("")
    lines += ["## Layers", ""]
    layers = [{**r, "dram_bytes": r["dram_a_bytes"] + r["dram_b_bytes"] + r["dram_c_write_bytes"]
               + r["dram_c_read_bytes"]} for r in rows]
    lines += metrics.table(layers, [
        ("layer", lambda r: r["layer"]),
        ("GEMM", lambda r: f"{r['m']}x{r['k']}x{r['n']}" + (f" x{r['groups']}" if r["groups"] > 1 else "")),
        ("split", lambda r: r["split"]), "cycles", "utilization", "dram_bytes", "energy_total_pj",
        ("multiplier", lambda r: r["multiplier"])])
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(rows) + 2), 4.5))
    bottom = [0.0] * len(rows)
    for key, label in (("energy_compute_pj", "compute"), ("energy_sram_pj", "SRAM"), ("energy_dram_pj", "DRAM")):
        vals = [r[key] * 1e-6 for r in rows]
        ax.bar(x, vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("energy per inference [uJ]")
    ax.set_xticks(list(x))
    ax.set_xticklabels([r["layer"] for r in rows], rotation=90, fontsize=6)
    ax2 = ax.twinx()
    ax2.plot(list(x), [r["time_us"] for r in rows], "k.-", label="time")
    ax2.set_ylabel("time [us]")
    handles, labels = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(handles + h2, labels + l2, loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def write(ctx: stage.Context, result: Result) -> dict[str, Any]:
    """layers.csv, report.json, report.md and layers.png of ``result``; returns the report."""
    rows = layer_rows(result)
    rep = {**report(result), "run_dir": str(ctx.run.final)}
    ctx.write_csv("layers.csv", rows)
    ctx.write_report(rep, markdown(rep, rows))
    a = rep["array"]
    plot(rows, ctx.run.path / "layers.png", f"{rep['net']}: {a['pods']} x {a['rows']}x{a['cols']} {a['dataflow']}, "
         f"{rep['cycle_model']} model")
    return rep
