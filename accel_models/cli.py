"""``flow.py accel``: time, traffic and energy of a network on a (multi-pod) systolic accelerator.

Writes into the run directory: ``layers.csv`` (one row per layer), ``report.json``, ``report.md``,
``layers.png`` (energy by component and time per layer) and ``config.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import config as cfgmod
from core.config import check_range, option
from core.errors import ConfigError, must
from core.metrics import get as metric

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class AccelConfig:
    net: str = option("resnet18", help="network: a built-in name (lenet5, resnet20, resnet18, resnet50, vgg11, "
                      "vgg16, mobilenetv2, bert-base), a SCALE-Sim topology .csv, or a PyTorch model (.pt file "
                      "or module:factory, with --input-shape)")
    batch: int = option(1, help="batch size (folded into the GEMM rows)")
    seq_len: int = option(128, help="tokens of the BERT-base encoder layer", unit="tokens")
    input_shape: str | None = option(None, help="input shape of a PyTorch model, e.g. 1,3,224,224")
    topology_format: str = option("auto", help="format of a SCALE-Sim topology file",
                                  choices=("auto", "conv", "gemm"))
    array: str = option("128x128", help="PEs of one pod, ROWSxCOLS")
    pods: int = option(1, help="pods (systolic arrays) sharing each layer")
    dataflow: str = option("ws", help="dataflow", choices=("ws", "os", "is"))
    split: str = option("auto", help="how a layer is shared by the pods: by output columns (n), rows (m), the "
                        "reduction (k), or the fastest per layer (auto)", choices=("auto", "n", "m", "k"))
    cycle_model: str = option("rtl", help="rtl: the exact cycles of our RTL arrays (RTL_TIMING.md); scalesim: "
                              "SCALE-Sim v2's figures", choices=("rtl", "scalesim"))
    ifmap_kb: int = option(64, help="activation (ifmap) SRAM per pod", unit="KiB")
    filter_kb: int = option(64, help="weight (filter) SRAM per pod", unit="KiB")
    ofmap_kb: int = option(64, help="output (ofmap) SRAM per pod", unit="KiB")
    dram_bw: int = option(0, help="DRAM bandwidth (rtl: shared by the pods; scalesim: per buffer, SCALE-Sim's "
                          "USER mode); 0 = unlimited (SCALE-Sim's CALC mode)", unit="bytes/cycle")
    clock_ns: float | None = option(None, help="clock period (default: from the PPA runs, else 10)", unit="ns")
    mult: str = option("exact", help="multiplier of every layer the assignment does not name: exact or a "
                       "multiplier run directory")
    assign: Path | None = option(None, help="assignment JSON: {\"layer\": \"RUN_DIR or exact\"}, a list "
                                 "per filter")
    array_run: Path | None = option(None, help="array run directory (issue 5) giving P_pod")
    dram_pj_per_byte: float = option(160.0, help="DRAM energy (Horowitz ISSCC 2014)", unit="pJ/B")
    sram_pj_per_byte: float = option(2.5, help="SRAM energy (Horowitz ISSCC 2014, 32 KB)", unit="pJ/B")
    access_words: int | None = option(None, help="words per DRAM access, XAI-Gen's R (default: array rows)")
    acc_ratio: float = option(0.5, help="accumulator energy per PE-cycle / exact multiplier energy")
    reg_ratio: float = option(1.0, help="register energy per PE-cycle / exact multiplier energy")
    pe_other_area_um2: float = option(8448.0, help="area of a PE without its multiplier", unit="um^2")
    sparsity: float = option(0.0, help="share of zero weight blocks per layer, in [0, 1)")
    sparsity_block: int = option(8, help="weight block size (blocks are BxB)")
    sparsity_method: str = option("auto", help="which blocks are zeroed: lowest l1/l2 norm or variance (needs "
                                  "weights), random, or auto (l2 with weights, else random)",
                                  choices=("auto", "l1", "l2", "var", "random"))
    weights: Path | None = option(None, help=".npz of layer weights (PyTorch layout)")
    masks: Path | None = option(None, help=".npz of per-layer block masks (True = kept)")
    seed: int = option(1, help="seed of random masks")
    hawx_pes: int = option(16, help="HAWX costs: PEs of one block (a layer's block, or a shared vector)")
    hawx_simd: int = option(16, help="HAWX costs: SIMD width of one PE")
    tag: str | None = option(None, help="run name under runs/accel/ (default: from the settings)")
    run_dir: Path | None = option(None, help="run directory (default: runs/accel/<tag>)")
    overwrite: bool = option(False, help="replace an existing run directory")

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d+x\d+", self.array) or 0 in self.dims:
            raise must("ARRAY", "ROWSxCOLS with positive sizes, e.g. 128x128", self.array)
        for name in ("batch", "seq_len", "pods", "ifmap_kb", "filter_kb", "ofmap_kb", "sparsity_block",
                     "hawx_pes", "hawx_simd"):
            if getattr(self, name) < 1:
                raise must(name.upper(), "a positive integer", getattr(self, name))
        if self.dram_bw < 0:
            raise must("DRAM_BW", "0 (unlimited) or a positive number of bytes per cycle", self.dram_bw)
        if self.access_words is not None and self.access_words < 1:
            raise must("ACCESS_WORDS", "a positive integer", self.access_words)
        if self.clock_ns is not None and not self.clock_ns > 0:
            raise must("CLOCK_NS", "positive", self.clock_ns)
        for name in ("dram_pj_per_byte", "sram_pj_per_byte", "acc_ratio", "reg_ratio", "pe_other_area_um2"):
            if getattr(self, name) < 0:
                raise must(name.upper(), "non-negative", getattr(self, name))
        check_range("SPARSITY", self.sparsity, 0.0, 1.0, hi_open=True)
        if self.sparsity > 0 and self.masks is not None:
            raise ConfigError("give either --sparsity (masks derived per layer) or --masks, not both")
        if self.cycle_model == "scalesim" and (self.sparsity > 0 or self.masks is not None):
            raise ConfigError("block sparsity needs --cycle-model rtl (SCALE-Sim v2 has no sparse arrays)")
        if self.input_shape is not None:
            self.shape  # noqa: B018 - validates

    @property
    def dims(self) -> tuple[int, int]:
        r, c = self.array.split("x")
        return int(r), int(c)

    @property
    def shape(self) -> tuple[int, ...]:
        assert self.input_shape is not None
        try:
            dims = tuple(int(x) for x in self.input_shape.replace("x", ",").split(","))
        except ValueError:
            raise must("INPUT_SHAPE", "comma-separated positive integers, e.g. 1,3,224,224",
                       self.input_shape) from None
        if not dims or min(dims) < 1:
            raise must("INPUT_SHAPE", "comma-separated positive integers, e.g. 1,3,224,224", self.input_shape)
        return dims

    def default_tag(self, net_name: str) -> str:
        return self.tag or (f"{net_name}-{self.array}-p{self.pods}-{self.dataflow}-{self.cycle_model}"
                            + (f"-sp{self.sparsity:g}" if self.sparsity else ""))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cfgmod.add_arguments(parser, AccelConfig)


@dataclass
class Result:
    """Everything one ``accel`` evaluation produced (what the files are written from)."""

    cfg: AccelConfig
    net: str
    layers: list
    perfs: list
    evaluation: Any
    assignment: dict
    masks: dict
    mask_method: str | None
    hawx: dict
    wall_s: float
    # multiplying operations of a PyTorch model that no layer counts (torch_extract.Extraction)
    not_modelled: list = field(default_factory=list)


def evaluate(cfg: AccelConfig, *, progress: bool = False, layers: list | None = None,
             multipliers: tuple[str, ...] = ()) -> Result:
    """Run the models for ``cfg`` without writing anything (validation first, then the work).

    ``layers`` replaces the network ``cfg.net`` names (a caller that has its own model); ``multipliers``
    are run directories an assignment may use later (they must be known before energy is evaluated)."""
    import numpy as np

    from accel_models import assign, networks, sparsity
    from accel_models.energy import EnergyParams, Library, load_array
    from accel_models.memory import MemConfig
    from accel_models.model import Accelerator, Evaluation, Hardware

    weights = None
    not_modelled: list[dict[str, str]] = []
    if layers is not None:
        net_name = "custom"
    elif networks.is_torch_spec(cfg.net):
        from accel_models import torch_extract

        if cfg.input_shape is None:
            raise ConfigError("a PyTorch model needs --input-shape (e.g. 1,3,224,224)")
        net_name, extraction = torch_extract.load_full(cfg.net, cfg.shape)
        layers, weights, not_modelled = extraction.layers, extraction.weights, extraction.not_modelled
    else:
        net_name, layers = networks.load(cfg.net, batch=cfg.batch, seq_len=cfg.seq_len,
                                         topology_format=cfg.topology_format)
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise ConfigError("the network has two layers with the same name")
    if cfg.weights is not None:
        try:
            with np.load(cfg.weights, allow_pickle=False) as data:
                weights = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read weights {cfg.weights}: {exc}") from None
    masks: dict = {}
    method = None
    if cfg.masks is not None:
        masks = sparsity.load(cfg.masks, layers, cfg.sparsity_block)
        method = f"given ({cfg.masks})"
    elif cfg.sparsity > 0:
        masks, method = sparsity.derive(layers, cfg.sparsity, cfg.sparsity_block, cfg.sparsity_method, weights,
                                        cfg.seed)
    rows, cols = cfg.dims
    mem = MemConfig(cfg.ifmap_kb, cfg.filter_kb, cfg.ofmap_kb, cfg.dram_bw)
    hw = Hardware(rows, cols, cfg.pods, cfg.dataflow, cfg.split, cfg.cycle_model, mem, cfg.sparsity_block)
    params = EnergyParams(cfg.dram_pj_per_byte, cfg.sram_pj_per_byte, cfg.access_words, cfg.acc_ratio,
                          cfg.reg_ratio, cfg.pe_other_area_um2)
    lib = Library()
    for mult in multipliers:
        lib.get(str(mult))
    array = load_array(cfg.array_run) if cfg.array_run is not None else None
    if array is not None and array.mult != "exact":
        lib.get(array.mult)
    if cfg.assign is not None:
        assignment = assign.load(cfg.assign, layers, lib, default=cfg.mult)
    else:
        assignment = assign.uniform(layers, lib, cfg.mult)
    start = time.perf_counter()
    perfs = Accelerator(hw).prepare(layers, masks, progress=progress)
    evaluation = Evaluation(hw, perfs, lib, params, array, cfg.clock_ns)
    hawx = assign.hawx(layers, assignment, lib, params, cfg.hawx_pes, cfg.hawx_simd)
    wall = time.perf_counter() - start
    return Result(cfg, net_name, layers, perfs, evaluation, assignment, masks, method, hawx, wall, not_modelled)


def main(args: argparse.Namespace) -> int:
    cfg = cfgmod.from_namespace(AccelConfig, args)
    result = evaluate(cfg, progress=True)
    from core.run import RunDir

    tag = cfg.default_tag(result.net)
    run_dir = cfg.run_dir or ROOT / "runs" / "accel" / tag
    with RunDir.open(run_dir, overwrite=cfg.overwrite) as run:
        write(run, result)
        rep = json.loads((run.path / "report.json").read_text(encoding="utf-8"))
    print(f"{result.net}: {rep['cycles']:,} cycles ({rep['time_s'] * 1e3:.4g} ms), "
          f"{rep['energy_total_pj'] / 1e6:.4g} uJ, utilisation {rep['utilization']:.3f} -> {run.final}")
    return 0


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


def markdown(rep: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    a = rep["array"]
    bw = f"{a['dram_bw_bytes_per_cycle']} B/cycle" if a["dram_bw_bytes_per_cycle"] else "unlimited"
    lines = [
        f"# {rep['net']} on {a['pods']} x {a['rows']}x{a['cols']} ({a['dataflow']}, {rep['cycle_model']} model)",
        "",
        f"SRAM per pod: ifmap {a['ifmap_kb']} KiB, filter {a['filter_kb']} KiB, ofmap {a['ofmap_kb']} KiB; "
        f"DRAM bandwidth {bw}; clock {rep['clock_ns']:g} ns; assignment: {rep['assignment']}.",
        "",
        "| metric | value | unit |",
        "| --- | --- | --- |",
    ]
    for key in ("cycles", "compute_cycles", "stall_cycles", "time_s", "macs", "utilization", "dram_bytes",
                "sram_bytes", "energy_total_pj", "energy_dram_pj", "energy_sram_pj", "energy_compute_pj",
                "energy_mult_pj", "energy_ratio"):
        m = metric(key)
        lines.append(f"| {key} | {m.fmt(rep[key])} | {m.unit} |")
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
    lines += ["## Layers", "", "| layer | GEMM | split | cycles | util | DRAM B | energy pJ | multiplier |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        gemm = f"{r['m']}x{r['k']}x{r['n']}" + (f" x{r['groups']}" if r["groups"] > 1 else "")
        dram = r["dram_a_bytes"] + r["dram_b_bytes"] + r["dram_c_write_bytes"] + r["dram_c_read_bytes"]
        lines.append(f"| {r['layer']} | {gemm} | {r['split']} | {r['cycles']:,} | {r['utilization']:.3f} | "
                     f"{dram:,} | {r['energy_total_pj']:.4g} | {r['multiplier']} |")
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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(run: Any, result: Result) -> None:
    from core.run import git_revision

    rows = layer_rows(result)
    rep = report(result)
    conf = cfgmod.to_dict(result.cfg)
    conf["git_revision"] = git_revision(ROOT)
    run.write_json("config.json", conf)
    buf = io.StringIO()
    out = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    out.writeheader()
    out.writerows(rows)
    run.write_text("layers.csv", buf.getvalue())
    run.write_json("report.json", rep)
    run.write_text("report.md", markdown(rep, rows))
    a = rep["array"]
    plot(rows, run.path / "layers.png", f"{rep['net']}: {a['pods']} x {a['rows']}x{a['cols']} {a['dataflow']}, "
         f"{rep['cycle_model']} model")
