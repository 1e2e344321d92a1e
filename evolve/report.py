"""Human-readable views of an evolution run: report.md, evolution.csv and evolution.png.

Every figure comes from ``report.json`` (itself measured by the flow); units and directions come
from the metric registry in :mod:`core.metrics`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from core import metrics
from core.run import save_figure

ERROR_KEYS = ("wce", "wce_pct", "mae", "mae_pct", "er", "mred", "bias", "nmed", "smape")
APP_ERROR_KEYS = ("wce_app", "mae_app", "mae_app_pct", "mse_app", "bias_app", "er_app", "mred_app")
COST_KEYS = ("area", "area_ratio", "transistors", "transistor_ratio", "cells", "gates", "depth", "delay_ns",
             "delay_ratio", "power_w", "power_ratio", "energy_pj")
SEARCH_KEYS = ("generations", "evaluations", "evals_per_s", "runtime_s")


def write_evolution_csv(path: Path, logbook: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        if logbook:  # the columns of every record (a resumed run's older records may hold fewer)
            w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for rec in logbook for k in rec)), restval="")
            w.writeheader()
            w.writerows(logbook)
    tmp.replace(path)


def plot_evolution(path: Path, logbook: list[dict[str, Any]], report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if logbook:
        gens = [r["generation"] for r in logbook]
        ax.plot(gens, [r["best_cost"] for r in logbook], label=f"best {report['cost_objective']}", color="C0")
        ax.plot(gens, [r["parent_cost"] for r in logbook], label="parent", color="C0", alpha=0.35, lw=0.8)
        ax2 = ax.twinx()
        ax2.plot(gens, [r["limit"] for r in logbook], color="C3", ls="--", lw=1, label="WCE limit")
        ax2.plot(gens, [r["best_wce"] for r in logbook], color="C3", lw=0.8, alpha=0.6, label="WCE of best")
        ax2.set_ylabel(metrics.axis_label("wce", "worst-case error"))
        ax2.set_ylim(bottom=0)
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(lines, [str(ln.get_label()) for ln in lines], loc="upper right", fontsize=8)
    ax.set_xlabel("generation")
    # the metric the search's cost is in: under --cost power its switching energy, not a gate count
    cost_metric = {"area": "gate_area", "transistors": "transistors", "power": "power_cost"}[report["cost_objective"]]
    ax.set_ylabel(metrics.axis_label(cost_metric, "cost"))
    ax.set_title(f"{report['design']} EPS={report['eps']:g} on {report['tech']}: area ratio "
                 f"{report['area_ratio']:.3f}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def markdown(r: dict[str, Any]) -> str:
    ex = r["exact"]
    v = r["verification"]
    lines = [
        f"# {r['module']}",
        "",
        f"Approximate {r['wa']}x{r['wb']} {'signed' if r['signed'] else 'unsigned'} multiplier evolved by axflow "
        f"under EPS = {r['eps']:g} (WCE limit {r['wce_limit']} = floor(EPS x N), N = {r['norm']}) on "
        f"{r['tech']}, minimising {r['cost_objective']}.",
        "",
        f"**Verification: {'PASSED' if v['passed'] else 'FAILED: ' + ', '.join(v['failed'])}** "
        f"({v['vectors']:,} vectors, {'exhaustive' if v['exhaustive'] else 'random sample'}).",
        "",
    ]
    if r.get("interrupted"):
        lines += ["**The evolution was interrupted**: this is the best circuit found so far; "
                  "continue it with `--resume`.", ""]
    lines += ["## Error", "", "| metric | value | | meaning |", "| --- | --- | --- | --- |"]
    lines += [metrics.row(k, r[k], "") for k in ERROR_KEYS]
    if r.get("mae_app") is not None:
        lines += [metrics.row(k, r[k], "") for k in APP_ERROR_KEYS]
        limits = [f"{k} {r[k]:g} x N{'^2' if k == 'mse_limit' else ''}" for k in ("mae_limit", "bias_limit", "mse_limit")
                  if r.get(k) is not None]
        lines += ["", f"The `_app` figures weigh every input pair by the operand distribution ({r.get('operands')})"
                  + (f"; the search held them to {' and '.join(limits)}" if limits else "") + "."]
    pf = r["wce_proof"]
    how = (f"by simulating all {pf['vectors']:,} input pairs" if pf["method"] == "exhaustive" else
           f"by a SAT miter ({pf['solver']}, {pf['steps']} solver calls, {pf['variables']:,} variables)")
    lines += ["", f"The WCE {r['wce']} is proven {how} in {pf['time_s']:.3g} s"
              + (f"; a = {pf['counterexample_at_wce_minus_1']['a']}, b = {pf['counterexample_at_wce_minus_1']['b']} "
                 f"errs by exactly that much" if pf.get("counterexample_at_wce_minus_1") else "") + "."]
    em = r.get("error_metrics", {})
    if em.get("method") == "estimate":
        lines += ["", f"The other metrics are **estimates** on {em['pairs']:,} uniformly random input pairs."]
    pr = r.get("proofs")
    if pr:
        med = "-" if pr["median_s"] is None else f"{pr['median_s']:.3g} s"
        mx = "-" if pr["max_s"] is None else f"{pr['max_s']:.3g} s"
        lines += ["", f"The search proved {pr['accepted']} circuits before accepting them (median {med}, max {mx}); "
                  f"{pr['refuted']} candidates were refuted, adding {pr['counterexamples']} counterexamples to its "
                  f"vector set, and {pr['unproven']} rejected because their proof overran "
                  f"{pr['proof_timeout_s']:g} s."]
    lines += ["", "## Cost (evolved | exact, same flow)", "", "| metric | evolved | exact | meaning |",
              "| --- | --- | --- | --- |"]
    exact_of = {"area": ex["area"], "transistors": ex["transistors"], "cells": ex["cells"], "gates": ex["gates"],
                "depth": ex["depth"], "delay_ns": ex["delay_ns"], "power_w": ex["power_w"],
                "energy_pj": ex["energy_pj"]}
    lines += [metrics.row(k, r[k], exact_of.get(k, "")) for k in COST_KEYS]
    if r.get("power_cost") is not None:
        lines += [metrics.row("power_cost", r["power_cost"], r.get("power_cost_exact"))]
        if r.get("power_cost_correlation") is not None:
            n = len(r["power_calibration"]["circuits"])
            lines += ["", f"The power cost correlates with OpenSTA's power at r = {r['power_cost_correlation']:.3f} "
                      f"over {n} circuits of this run (`--calibrate`)."]
    sa = r.get("seed_arch")
    if sa:
        others = ", ".join(f"{k} {v:g}" for k, v in sa["mapped_area"].items())
        powers = ", ".join(f"{k} {'does not settle' if v is None else f'{v * 1e3:.4g} mW'}"
                           for k, v in sa.get("power_w", {}).items())
        lines += ["", f"Seed: the exact {sa['arch']} multiplier (`--seed-arch {sa['choice']}`"
                  + (f"; mapped areas: {others}" if sa["choice"] == "auto" else "")
                  + (f"; chosen by power: {powers}" if powers else "")
                  + f"), mapped area {sa['area']:g}; area ratio against it {r['area_ratio_vs_seed']:.3f} "
                  "(the area ratio above is against the exact multiplier synthesised from a*b)."]
    tm = r["timing"]
    if tm["abc_delay_target_ps"]:
        lines += ["", f"Mapped with an ABC delay target of {tm['abc_delay_target_ps']} ps so that it is no slower "
                  f"than the exact multiplier ({tm['approx_delay_ns']:.4g} ns vs {tm['exact_delay_ns']:.4g} ns): "
                  f"timing {'met' if tm['met'] else 'NOT MET'}."]
    elif tm["required"] and not tm["met"]:
        lines += ["", f"**Slower than the exact multiplier under OpenSTA** ({tm['approx_delay_ns']:.4g} ns vs "
                  f"{tm['exact_delay_ns']:.4g} ns) although its logic depth is not greater and no ABC delay target "
                  "helped; `--timing sta` refuses such a result."]
    ck = r.get("clock")
    how = (f" ({ck['clock_period_how']}; timing simulation at {ck['sim_period_ns']:g} ns per operand pair: "
           f"{ck['sim_period_how']})" if ck else "")
    lines += ["", f"Power at a {r['clock_period_ns']:g} ns clock{how} with switching activity measured from a timing "
              f"simulation of {r['power_vectors']:,} operand pairs ({r['operands']}); OpenSTA's vectorless "
              f"estimate from the same input activities: {r['power_vectorless_w']:.4g} W "
              f"(exact {ex['power_vectorless_w']:.4g} W).", ""]
    lines += ["## Verification", "", "| check | result | vectors | mismatches | WCE | expected |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, b in v["benches"].items():
        if "proven" in b:
            lines.append(f"| {name} | {'proven' if b['proven'] else 'NOT PROVEN'} | formal | | | {b['method']} |")
        else:
            lines.append(f"| {name} | {'pass' if b['passed'] else 'FAIL'} | {b.get('vectors', '-')} | "
                         f"{b.get('mismatches', '-')} | {b.get('wce', '-')} | {b['expected']} |")
    lines += ["", "## Search", "", "| metric | value | | meaning |", "| --- | --- | --- | --- |"]
    lines += [metrics.row(k, r[k], "") for k in SEARCH_KEYS]
    if r.get("descent"):
        d = r["descent"]
        lines += ["", f"Steepest descent before the GP: {d['steps']} simplifications, {d['evaluations']:,} "
                  f"evaluations, {d['runtime_s']:.1f} s, to a cost of {d['cost']:.6g} (WCE {d['wce']})."]
    lines += ["", f"Stopped by: {r['stop_reason']}. Mutations applied: "
              + ", ".join(f"{k} {n:,}" for k, n in r["operators"].items()) + ".", "",
              "Files: `approx.v` (generic gates), `approx_" + r["tech"] + ".v` (cells), "
              + ("`lut.npy` / `lut.csv` (product table), " if r.get("lut") else "")
              + "`evolution.csv`, `evolution.png`, `config.json`, `COMMANDS`, `logs/`.", ""]
    return "\n".join(lines)
