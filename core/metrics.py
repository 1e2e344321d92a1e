"""The metric registry: every figure a report prints, with its unit and which direction is better.

Reports, fitness functions and plots look metrics up here instead of repeating names and units.
Report keys are flat (``area``, ``power_w``); the unit lives in the name where it is not the
technology's own (``area`` is in the Liberty's area unit, normally um^2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("lower", "higher", "")


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: str  # "lower", "higher" or "" (neither: a bias, a count)
    description: str

    def __post_init__(self) -> None:
        if self.better not in DIRECTIONS:
            raise ValueError(f"better of {self.name} must be one of {DIRECTIONS}, not {self.better!r}")

    @property
    def header(self) -> str:
        """The column head of a table: the name and, where there is one, the unit (``area (um^2)``)."""
        return f"{self.name} ({self.unit})" if self.unit and self.unit != self.name else self.name

    @property
    def sign(self) -> int:
        """+1 where higher is better, -1 where lower is; a metric without a direction has no sign."""
        if not self.better:
            raise ValueError(f"metric {self.name!r} has no better direction (it is {self.description})")
        return 1 if self.better == "higher" else -1

    def fmt_unit(self, value: object) -> str:
        """:meth:`fmt` followed by the unit (``12.5 um^2``; ``-`` alone for no value)."""
        text = self.fmt(value)
        return f"{text} {self.unit}" if self.unit and text not in ("", "-") else text

    def fmt(self, value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:.4f}" if self.name.endswith("_ratio") else f"{value:.6g}"
        return str(value)


_METRICS = [
    # errors of an approximate arithmetic circuit against its exact table
    Metric("wce", "", "lower", "worst-case error: max |y - a*b| over every input pair, proven (see wce_proof)"),
    Metric("wce_pct", "%", "lower", "worst-case error relative to N = max |a*b|"),
    Metric("wce_limit", "", "", "largest WCE allowed: floor(EPS * N)"),
    Metric("mae", "", "lower", "mean absolute error"),
    Metric("mae_pct", "%", "lower", "mean absolute error relative to N"),
    Metric("er", "%", "lower", "error rate: share of inputs with a wrong product"),
    Metric("mred", "%", "lower", "mean relative error distance, |y - p| / |p| over p != 0"),
    Metric("bias", "", "", "mean signed error, y - a*b"),
    Metric("nmed", "%", "lower", "normalised mean error distance, MAE / N"),
    Metric("smape", "%", "lower", "symmetric mean absolute percentage error, |y-p| / (|y|+|p|), 0/0 = 0"),
    Metric("mse", "", "lower", "mean squared error"),
    # the same errors under the application's operands (WMED-style: each pair weighted by p_a(a) p_b(b))
    Metric("wce_app", "", "lower", "largest |y - a*b| over the pairs the operand distribution produces"),
    Metric("mae_app", "", "lower", "mean absolute error under the operand distribution"),
    Metric("mae_app_pct", "%", "lower", "mae_app relative to N"),
    Metric("mse_app", "", "lower", "mean squared error under the operand distribution"),
    Metric("bias_app", "", "", "mean signed error under the operand distribution"),
    Metric("er_app", "%", "lower", "probability of a wrong product under the operand distribution"),
    Metric("mred_app", "%", "lower", "mean relative error distance under the operand distribution (p != 0)"),
    Metric("mae_limit", "", "", "largest weighted MAE allowed, as a fraction of N (--mae-limit)"),
    Metric("bias_limit", "", "", "largest |weighted mean error| allowed, as a fraction of N (--bias-limit)"),
    Metric("mse_limit", "", "", "largest weighted MSE allowed, as a fraction of N^2 (--mse-limit)"),
    # implementation costs
    Metric("area", "um^2", "lower", "cell area after mapping onto the technology (Liberty units)"),
    Metric("area_ratio", "", "lower", "area / area of the exact design synthesised by the same flow"),
    Metric("area_ratio_vs_seed", "", "lower", "area / mapped area of the exact seed the search started from "
           "(--seed-arch; under auto the smallest architecture)"),
    Metric("gate_area", "um^2", "lower", "area of the generic gates, each costed as its technology cell"),
    Metric("gates", "", "lower", "active generic gates"),
    Metric("transistors", "", "lower", "equivalent transistors of the generic gates (INV 2, NAND/NOR 4, "
           "AND/OR 6, XOR/XNOR 10)"),
    Metric("transistor_ratio", "", "lower", "transistors / transistors of the exact gate netlist"),
    Metric("cells", "", "lower", "standard cells after mapping"),
    Metric("depth", "", "lower", "logic depth in generic gates"),
    Metric("delay_ns", "ns", "lower", "critical-path delay from OpenSTA"),
    Metric("delay_ratio", "", "lower", "delay / delay of the exact design"),
    Metric("power_w", "W", "lower", "total power from OpenSTA with measured switching activity"),
    Metric("power_ratio", "", "lower", "power / power of the exact design"),
    Metric("power_dynamic_w", "W", "lower", "switching plus internal power"),
    Metric("power_leakage_w", "W", "lower", "leakage power"),
    Metric("energy_pj", "pJ", "lower", "energy per operation (power x clock period); of a network's "
           "assignment (dnn): per image"),
    Metric("power_vectorless_w", "W", "lower", "OpenSTA's vectorless power estimate from the input activities"),
    Metric("power_clock_w", "W", "lower", "power of the clock network and the registers' clock pins"),
    Metric("min_period_ns", "ns", "lower", "shortest clock period the design meets under OpenSTA"),
    Metric("energy_per_mac_pj", "pJ", "lower", "energy per multiply-accumulate: energy of the power GEMM / its "
           "MACs"),
    Metric("clock_period_ns", "ns", "", "clock period of synthesis, timing and power (given, or derived from "
           "the minimum period)"),
    Metric("clock_delay_ns", "ns", "", "the delay a derived clock period was computed from"),
    Metric("sim_period_ns", "ns", "", "clock period of the gate-level timing simulation that measures activity"),
    Metric("sim_settle_ns", "ns", "", "longest settling time of the cell models seen in a probe simulation"),
    Metric("exact_delay_ns", "ns", "lower", "critical-path delay of the exact design, from OpenSTA"),
    Metric("approx_delay_ns", "ns", "lower", "critical-path delay of the approximate design, from OpenSTA"),
    Metric("area_blocks", "um^2", "lower", "area of each block of an array's core: multipliers, the rest of the "
           "PEs, the pods' sequencers and feeders, the controller"),
    Metric("power_blocks", "W", "lower", "power of each block of an array's core (as area_blocks)"),
    Metric("area_in_array", "um^2", "lower", "area of one PE inside the array's core: (mult + pe blocks) / PEs"),
    Metric("mult_area", "um^2", "lower", "area of the PE's multiplier"),
    Metric("mult_power_w", "W", "lower", "power of the PE's multiplier"),
    Metric("mult_area_share", "", "", "the multiplier's share of the PE's area"),
    Metric("mult_power_share", "", "", "the multiplier's share of the PE's power"),
    Metric("bits", "bit", "", "capacity of each on-chip buffer (all pods)"),
    Metric("rtl_model_cycles", "cycles", "", "cycles the rtl cycle model (rtl_gen.rtl_cycles) predicts for the GEMM"),
    Metric("gemms_passed", "", "higher", "test GEMMs whose every result and cycle count was right"),
    Metric("runtime", "s", "lower", "wall-clock time of each step of the run, and their total"),
    # ratios of the array with the evolved multiplier to the array with the exact one
    Metric("energy_per_mac_ratio", "", "lower", "energy per MAC / that of the exact-multiplier array"),
    Metric("min_period_ratio", "", "lower", "minimum clock period / that of the exact-multiplier array"),
    Metric("pe_area_ratio", "", "lower", "PE area / PE area with the exact multiplier"),
    Metric("pe_power_ratio", "", "lower", "PE power / PE power with the exact multiplier"),
    Metric("mult_area_ratio_in_array", "", "lower", "the PE multiplier's area / the exact one's, both inside "
           "the array"),
    Metric("mult_power_ratio_in_array", "", "lower", "the PE multiplier's power / the exact one's, both inside "
           "the array"),
    Metric("array_ratio", "", "lower", "the figure of the array with the evolved multiplier / the same figure "
           "with the exact multiplier"),
    Metric("power_cost", "pJ", "lower", "the evaluator's switching energy per operation on the power stream "
           "(zero-delay toggles, plus --glitch x the unit-delay glitch toggles, x Liberty energy per toggle): the "
           "--cost power objective"),
    Metric("power_cost_ratio", "", "lower", "power_cost / power_cost of the exact seed"),
    Metric("power_cost_exact", "pJ", "lower", "power_cost of the exact seed on the same stream"),
    Metric("search_cost", "um^2", "lower", "the search's own cost of the shipped circuit (gates: generic gates "
           "each costed as its smallest cell; cells: Liberty cell areas)"),
    Metric("cost_area_correlation", "", "higher", "Pearson correlation of the search's cost and the mapped area "
           "over the run's successive best circuits"),
    Metric("power_cost_correlation", "", "higher", "Pearson correlation of power_cost and OpenSTA's power_w over "
           "a set of circuits"),
    Metric("references_dominated", "", "higher", "references of a library (other people's multipliers) that one "
           "of its members dominates on a Pareto plane"),
    # accelerator models (accel_models/)
    Metric("cycles", "cycles", "lower", "clock cycles, bandwidth stalls included"),
    Metric("compute_cycles", "cycles", "lower", "cycles of the cycle model alone (rtl: the RTL's start-to-done "
           "count)"),
    Metric("stall_cycles", "cycles", "lower", "cycles spent waiting for DRAM"),
    Metric("utilization", "", "higher", "MACs / (cycles x pods x rows x cols)"),
    Metric("time_s", "s", "lower", "time: of an inference, cycles x clock period; of a proof or a step, "
           "wall-clock"),
    Metric("macs", "", "", "multiply-accumulates executed"),
    Metric("dram_bytes", "B", "lower", "bytes moved between DRAM and the on-chip buffers"),
    Metric("sram_bytes", "B", "lower", "bytes read and written in the on-chip buffers"),
    Metric("energy_total_pj", "pJ", "lower", "energy of one inference: DRAM + SRAM + compute"),
    Metric("energy_dram_pj", "pJ", "lower", "ceil(N_m / R) x E_M (XAI-Gen)"),
    Metric("energy_sram_pj", "pJ", "lower", "on-chip buffer accesses x energy per byte"),
    Metric("energy_compute_pj", "pJ", "lower", "sum over pods of busy cycles x T x P_pod (XAI-Gen)"),
    Metric("energy_mult_pj", "pJ", "lower", "the multipliers' share of the compute energy"),
    Metric("energy_ratio", "", "lower", "energy / energy of the same network with exact multipliers"),
    Metric("energy_exact_pj", "pJ", "", "energy of one inference of the same network with exact multipliers"),
    Metric("e_access_pj", "pJ", "", "energy of one DRAM access, E_M (from the technology's memory model)"),
    Metric("n_m_words", "words", "lower", "words moved between DRAM and the buffers, N_m (XAI-Gen)"),
    Metric("model_wall_s", "s", "lower", "wall-clock time of the accelerator model"),
    Metric("area_um2", "um^2", "lower", "area of the multiplier lanes of a HAWX-style datapath"),
    Metric("latency_cycles", "cycles", "lower", "cycles from the first input to the last output"),
    Metric("interval_cycles", "cycles", "lower", "cycles between two inferences in a pipeline"),
    Metric("mac_share", "", "", "share of the MACs each multiplier executes"),
    Metric("splits", "", "", "layers run under each split of the work between pods"),
    # the DNN level (dnn/)
    Metric("accuracy", "", "higher", "top-1 accuracy on the evaluation images, LUT-exact INT8 inference"),
    Metric("baseline_accuracy", "", "higher", "accuracy with every layer exact (INT8, LUT inference)"),
    Metric("float_accuracy", "", "higher", "accuracy of the float network on the whole test set"),
    Metric("qat_accuracy", "", "higher", "accuracy after quantisation-aware training on the whole test set"),
    Metric("accuracy_loss", "", "lower", "baseline accuracy - accuracy of the chosen assignment"),
    Metric("test_accuracy_before", "", "higher", "test-set accuracy of the chosen assignment before fine-tuning"),
    Metric("test_accuracy_after", "", "higher", "test-set accuracy of the chosen assignment after fine-tuning"),
    Metric("eval_accuracy_after", "", "higher", "accuracy on the evaluation images after fine-tuning"),
    Metric("energy_reduction", "x", "higher", "energy of the exact assignment / energy of this one"),
    Metric("mult_energy_pj", "pJ", "lower", "multiplier energy of a network's multiplications per image"),
    Metric("accel_energy_pj", "pJ", "lower", "whole-accelerator energy per image (accel_models: array, buffers, "
           "DRAM, with the assignment's multipliers)"),
    Metric("exact_mult_energy_pj", "pJ", "lower", "multiplier energy per image of the all-exact network"),
    Metric("exact_accel_energy_pj", "pJ", "lower", "whole-accelerator energy per image of the all-exact network"),
    Metric("mult_energy_reduction", "x", "higher", "multiplier energy of the exact assignment / of this one"),
    Metric("accel_energy_reduction", "x", "higher", "whole-accelerator energy of the exact assignment / of this one"),
    Metric("wall_s", "s", "lower", "wall-clock time of one search method in this run"),
    Metric("finetuned_in_loop", "", "", "assignments of the search's front fine-tuned in the loop"),
    Metric("exact_int8_accuracy", "", "higher", "accuracy of the exact INT8 network on the full test split"),
    Metric("chosen_accuracy", "", "higher", "accuracy of the chosen (fine-tuned) network on the full test split"),
    Metric("chosen_accuracy_untuned", "", "higher", "accuracy of the chosen assignment before fine-tuning, full "
           "test split"),
    Metric("chosen_loss_vs_exact_int8", "", "lower", "exact INT8 accuracy - chosen accuracy, full test split"),
    Metric("lost", "", "lower", "evaluation images exact INT8 classifies right and this assignment wrong"),
    Metric("gained", "", "higher", "evaluation images exact INT8 classifies wrong and this assignment right"),
    Metric("loss_se", "", "lower", "paired standard error of the accuracy loss against exact INT8 on the same "
           "images"),
    Metric("chosen_lost", "", "lower", "test images exact INT8 classifies right and the chosen network wrong"),
    Metric("chosen_gained", "", "higher", "test images exact INT8 classifies wrong and the chosen network right"),
    Metric("chosen_loss_se", "", "lower", "paired standard error of the chosen network's test-split loss"),
    Metric("validation_accuracy", "", "higher", "validation accuracy after each fine-tuning epoch (0: the start)"),
    # block sparsity and the joint search (dnn/sparsity.py, dnn/joint.py)
    Metric("ratio", "", "", "block-sparsity ratio: share of a layer's weight blocks zeroed (of a ratio set: its "
           "uniform ratio)"),
    Metric("layer_ratios", "", "", "block-sparsity ratio of each masked layer"),
    Metric("density", "", "", "share of a layer's weights in kept blocks (1: dense)"),
    Metric("test_accuracy", "", "higher", "exact INT8 accuracy of a (block-sparse, retrained) network on the full "
           "test split"),
    Metric("test_accuracy_pruned", "", "higher", "exact INT8 test accuracy right after pruning, before retraining"),
    Metric("eval_accuracy", "", "higher", "exact INT8 accuracy on the evaluation images"),
    Metric("exact_time_s", "s", "lower", "inference time per image of the all-exact network (accel_models)"),
    Metric("time_reduction", "x", "higher", "inference time of the exact dense network / of this one"),
    Metric("energy_vs_approximation_only", "x", "higher", "energy of the best approximation-only assignment / "
           "energy of the joint (sparsity, assignment) answer"),
    Metric("time_vs_approximation_only", "x", "higher", "inference time of the best approximation-only "
           "assignment / of the joint answer"),
    Metric("validation_before", "", "higher", "validation accuracy before fine-tuning"),
    Metric("validation_after", "", "higher", "validation accuracy of the kept (best) fine-tuning checkpoint"),
    Metric("exact_energy_pj", "pJ", "", "energy per image of the exact assignment"),
    Metric("exact_area", "um^2", "", "multiplier area of the exact assignment"),
    Metric("pareto_size", "", "", "assignments on the Pareto front of accuracy, energy and area"),
    # the search itself
    Metric("generations", "", "", "generations run"),
    Metric("evaluations", "", "", "candidate circuits simulated exhaustively"),
    Metric("evals_per_s", "1/s", "higher", "evaluations per second of wall-clock time"),
    Metric("runtime_s", "s", "lower", "wall-clock time of the evolution (of a dnn run: of the whole run)"),
    Metric("total_runtime_s", "s", "lower", "wall-clock time of the whole run: evolution, verification, PPA"),
    Metric("candidates", "", "", "candidate circuits generated (some are never simulated: duplicates, "
           "inactive changes)"),
    Metric("operators", "", "", "mutations applied, by operator"),
    Metric("steps", "", "", "steps taken: simplifications of the descent, or solver calls of a proof"),
    Metric("cost", "", "lower", "the search's objective: gate area or transistors"),
    Metric("proofs", "", "", "circuits proven before they were accepted"),
    Metric("counterexamples", "", "", "input pairs a refuted proof added to the vector set"),
    # verification
    Metric("vectors", "", "", "input pairs (or operand vectors) simulated"),
    Metric("verification_vectors", "", "", "input pairs simulated to measure the errors"),
    Metric("pairs", "", "", "input pairs the error metrics were computed on"),
    Metric("tests", "", "", "cocotb tests run"),
    Metric("failures", "", "lower", "cocotb tests that failed"),
    Metric("mismatches", "", "lower", "outputs that differ from the expected table"),
    Metric("unknown", "", "lower", "outputs that were X or Z"),
    Metric("error", "", "", "|y - a*b| of one input pair (a counterexample's)"),
    Metric("wce_proof_time_s", "s", "lower", "wall-clock time of the proof of the WCE"),
    Metric("report_wce", "", "lower", "the WCE the run's report.json states, which the proof must confirm"),
]

REGISTRY: dict[str, Metric] = {m.name: m for m in _METRICS}


def get(name: str) -> Metric:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}") from None


def header(name: str) -> str:
    """The column head of metric ``name``: its name and unit."""
    return get(name).header


def dominates(a: Mapping[str, Any], b: Mapping[str, Any], names: Sequence[str]) -> bool:
    """Whether ``a`` is no worse than ``b`` in every metric of ``names`` and better in at least one, each
    metric compared in the direction the registry gives it (``better``)."""
    strictly = False
    for name in names:
        sign = get(name).sign
        x, y = sign * float(a[name]), sign * float(b[name])
        if x < y:
            return False
        strictly = strictly or x > y
    return strictly


def dominated(points: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[bool]:
    """For each point, whether another point of ``points`` dominates it in ``names``."""
    return [any(dominates(q, p, names) for q in points if q is not p) for p in points]


def weights(names: Sequence[str]) -> tuple[float, ...]:
    """DEAP fitness weights of ``names``: +1.0 where higher is better, -1.0 where lower is."""
    return tuple(float(get(n).sign) for n in names)


def axis_label(name: str, what: str | None = None) -> str:
    """A plot axis label: ``what`` (default the metric's name), its unit and which way is better."""
    m = get(name)
    unit = f" ({m.unit})" if m.unit else ""
    way = f", {m.better} is better" if m.better else ""
    return f"{what or m.name}{unit}{way}"


Cell = str | tuple[str, Callable[[Mapping[str, Any]], object]]


def table(records: Sequence[Mapping[str, Any]], columns: Sequence[Cell]) -> list[str]:
    """A markdown table, one row per record. A column is a metric name (headed with its name and unit,
    each cell ``Metric.fmt`` of the record's value) or ``(head, cell)``, a column that is no metric (a
    name, a shape), ``cell(record)`` its text."""
    heads: list[str] = []
    cells: list[Callable[[Mapping[str, Any]], object]] = []
    for c in columns:
        if isinstance(c, str):
            heads.append(header(c))
            cells.append(_cell(c))
        else:
            heads.append(c[0])
            cells.append(c[1])
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    lines += ["| " + " | ".join(str(cell(r)) for cell in cells) + " |" for r in records]
    return lines


def _cell(name: str) -> Callable[[Mapping[str, Any]], object]:
    m = get(name)
    return lambda r: m.fmt(r.get(name))


def row(name: str, *values: object, meaning: bool = True) -> str:
    """One row of a table of metrics, one per row: ``| name | value unit | ... | description |`` (a value
    of ``""`` leaves its cell empty, ``None`` is ``-``)."""
    m = get(name)
    cells = [name, *(m.fmt_unit(v) for v in values)]
    if meaning:
        cells.append(m.description.replace("|", "\\|"))
    return "| " + " | ".join(cells) + " |"


# Report keys that hold numbers but are no measured figure: settings, sizes, widths, seeds, indices.
# Every other number a report holds is a metric of the registry (tests/test_metrics_registry.py).
NOT_METRICS: frozenset[str] = frozenset({
    # operand widths, limits and constants of a design
    "wa", "wb", "acc_bits", "eps", "norm", "limit", "m_max", "k_max", "n_max",
    # a counterexample: its operands and products
    "a", "b", "y", "exact",
    # settings of a search or a simulation
    "seed", "islands", "power_vectors", "workers",
    # an accelerator's shape and memories; a GEMM's sizes
    "rows", "cols", "pods", "batch", "ifmap_kb", "filter_kb", "ofmap_kb", "dram_bw_bytes_per_cycle", "pes",
    "simd", "lanes_per_layer", "lanes_per_vector", "layers", "access_words", "clock_ns", "m", "k", "n",
    # a DNN run: its budget, image counts, epochs; an assignment's multiplier indices and its rank
    "max_acc_loss", "eval_images", "test_images", "epochs", "choice", "order", "images", "validation_images",
    "best_epoch", "points", "confidence", "select_images",
    # how many designs a catalogue compares
    "references",
    # a joint sparsity search: its block size
    "block",
})

# Report keys whose value holds no figure at all: the resolved settings of the command.
SETTINGS = frozenset({"settings"})

# Report keys whose value is a mapping keyed by data (layer, block or multiplier names), not by metric
# names: a number in it is the metric the key names, a record in it holds metrics by their own names.
KEYED: frozenset[str] = frozenset({"operators", "mac_share", "splits", "area_blocks", "power_blocks", "bits",
                                   "runtime", "macs", "references_dominated", "density", "layer_ratios"})


def numbers(report: object, path: str = "", name: str = "", keyed: bool = False) -> Iterator[tuple[str, str]]:
    """``(path, metric name)`` of every number (not a flag) in ``report``, however deeply nested; the
    metric of a number is the key it is stored under (inside a list, the list's key; inside a
    :data:`KEYED` mapping, the mapping's key); :data:`SETTINGS` are left out."""
    if isinstance(report, Mapping):
        for k, v in report.items():
            sub = f"{path}.{k}" if path else str(k)
            if not keyed and k in SETTINGS:
                continue
            yield from numbers(v, sub, name, False) if keyed else numbers(v, sub, str(k), str(k) in KEYED)
    elif isinstance(report, (list, tuple)):
        for i, v in enumerate(report):
            yield from numbers(v, f"{path}[{i}]", name, keyed)
    elif isinstance(report, (int, float)) and not isinstance(report, bool):
        yield path, name


def unregistered(report: object) -> list[str]:
    """Paths of the numbers in ``report`` that are neither a registered metric nor in :data:`NOT_METRICS`."""
    return sorted({path for path, name in numbers(report) if name not in REGISTRY and name not in NOT_METRICS})
