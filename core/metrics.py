"""The metric registry: every figure a report prints, with its unit and which direction is better.

Reports, fitness functions and plots look metrics up here instead of repeating names and units.
Report keys are flat (``area``, ``power_w``); the unit lives in the name where it is not the
technology's own (``area`` is in the Liberty's area unit, normally um^2).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: str  # "lower", "higher" or "" (neither: a bias, a count)
    description: str

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
    Metric("energy_pj", "pJ", "lower", "energy per operation: power x clock period"),
    Metric("power_cost", "pJ", "lower", "the evaluator's switching energy per operation on the power stream "
           "(zero-delay toggles x Liberty energy per toggle): the --cost power objective"),
    Metric("power_cost_ratio", "", "lower", "power_cost / power_cost of the exact seed"),
    Metric("power_cost_correlation", "", "higher", "Pearson correlation of power_cost and OpenSTA's power_w over "
           "a set of circuits"),
    # accelerator models (accel_models/)
    Metric("cycles", "cycles", "lower", "clock cycles, bandwidth stalls included"),
    Metric("compute_cycles", "cycles", "lower", "cycles of the cycle model alone (rtl: the RTL's start-to-done "
           "count)"),
    Metric("stall_cycles", "cycles", "lower", "cycles spent waiting for DRAM"),
    Metric("utilization", "", "higher", "MACs / (cycles x pods x rows x cols)"),
    Metric("time_s", "s", "lower", "cycles x clock period"),
    Metric("macs", "", "", "multiply-accumulates executed"),
    Metric("dram_bytes", "B", "lower", "bytes moved between DRAM and the on-chip buffers"),
    Metric("sram_bytes", "B", "lower", "bytes read and written in the on-chip buffers"),
    Metric("energy_total_pj", "pJ", "lower", "energy of one inference: DRAM + SRAM + compute"),
    Metric("energy_dram_pj", "pJ", "lower", "ceil(N_m / R) x E_M (XAI-Gen)"),
    Metric("energy_sram_pj", "pJ", "lower", "on-chip buffer accesses x energy per byte"),
    Metric("energy_compute_pj", "pJ", "lower", "sum over pods of busy cycles x T x P_pod (XAI-Gen)"),
    Metric("energy_mult_pj", "pJ", "lower", "the multipliers' share of the compute energy"),
    Metric("energy_ratio", "", "lower", "energy / energy of the same network with exact multipliers"),
    # the search itself
    Metric("generations", "", "", "generations run"),
    Metric("evaluations", "", "", "candidate circuits simulated exhaustively"),
    Metric("evals_per_s", "1/s", "higher", "evaluations per second of wall-clock time"),
    Metric("runtime_s", "s", "lower", "wall-clock time of the evolution"),
]

REGISTRY: dict[str, Metric] = {m.name: m for m in _METRICS}


def get(name: str) -> Metric:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}") from None
