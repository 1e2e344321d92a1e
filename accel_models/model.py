"""The accelerator model: per-layer time and traffic on a (multi-pod) systolic array, and energy per
multiplier assignment, re-evaluated in microseconds.

``Accelerator(hw).prepare(layers)`` runs the cycle model once per layer (the part that does not
depend on the multipliers: cycles, the split over pods, SRAM and DRAM traffic) and returns an
:class:`Evaluation`; ``Evaluation.evaluate(assignment)`` then gives energy and time for any assignment
of multipliers to layers or filters with a few multiply-adds per layer. This is the interface the DNN
search uses (``dnn/``): build once, evaluate thousands of assignments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from accel_models import memory, sparsity
from accel_models.energy import ArrayPPA, EnergyParams, Library, PodPower, pod_power
from accel_models.layers import Layer
from accel_models.memory import MemConfig
from core.errors import ConfigError, must
from rtl_gen import rtl_cycles

CYCLE_MODELS = ("rtl", "scalesim")
SPLIT_CHOICES = ("auto", "n", "m", "k")


@dataclass(frozen=True)
class Hardware:
    """What the cycle model needs to know about the accelerator."""

    rows: int = 128
    cols: int = 128
    pods: int = 1
    dataflow: str = "ws"
    split: str = "auto"
    cycle_model: str = "rtl"
    mem: MemConfig = field(default_factory=MemConfig)
    block: int = 8  # sparsity block size

    def __post_init__(self) -> None:
        for what in ("rows", "cols", "pods", "block"):
            v = getattr(self, what)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise must(what.upper(), "a positive integer", v)
        if self.dataflow not in rtl_cycles.DATAFLOWS:
            raise must("DATAFLOW", "one of the listed choices", self.dataflow, rtl_cycles.DATAFLOWS)
        if self.split not in SPLIT_CHOICES:
            raise must("SPLIT", "one of the listed choices", self.split, SPLIT_CHOICES)
        if self.cycle_model not in CYCLE_MODELS:
            raise must("CYCLE_MODEL", "one of the listed choices", self.cycle_model, CYCLE_MODELS)


@dataclass(frozen=True)
class LayerPerf:
    """Time and traffic of one layer (all its groups), independent of the multipliers."""

    layer: Layer
    split: str
    cycles: int  # with bandwidth stalls
    compute_cycles: int  # the cycle model alone (rtl: the RTL's start-to-done count, summed over groups)
    stall_cycles: int
    utilization: float  # MACs / (cycles x pods x rows x cols)
    pod_busy: tuple[int, ...]  # cycles each pod is busy (clocked), summed over groups
    macs: int  # MACs executed (fewer than the layer's with sparsity)
    sram_a_reads: int
    sram_b_reads: int
    sram_c_reads: int
    sram_c_writes: int
    dram_a_bytes: int
    dram_b_bytes: int
    dram_c_write_bytes: int
    dram_c_read_bytes: int
    mapping_eff: float | None = None  # SCALE-Sim's mapping efficiency (%), scalesim model only
    compute_util: float | None = None  # SCALE-Sim's compute utilisation (%), scalesim model only
    weight_density: float = 1.0  # kept weight blocks (by weight count), 1 when dense
    folds: int = 0  # array tiles (rtl) or SCALE-Sim folds run, over all pods and groups
    c_word_bytes: int = 4  # bytes of one SRAM C access (accumulator or, for SCALE-Sim, a word)

    @property
    def dram_bytes(self) -> int:
        return self.dram_a_bytes + self.dram_b_bytes + self.dram_c_write_bytes + self.dram_c_read_bytes

    @property
    def sram_bytes(self) -> int:
        """Bytes moved in and out of the SRAMs: array-side accesses plus the DRAM fills and drains."""
        return (self.sram_a_reads + self.sram_b_reads + (self.sram_c_reads + self.sram_c_writes) * self.c_word_bytes
                + self.dram_bytes)


class Accelerator:
    """A systolic (multi-pod) accelerator and its cycle model."""

    def __init__(self, hw: Hardware):
        self.hw = hw

    # --- time and traffic ---------------------------------------------------------------------

    def layer(self, layer: Layer, mask: np.ndarray | None = None) -> LayerPerf:
        if self.hw.cycle_model == "scalesim":
            if mask is not None:
                raise ConfigError("block sparsity needs --cycle-model rtl (SCALE-Sim v2 has no sparse arrays)")
            return self._scalesim(layer)
        return self._rtl(layer, mask)

    def _splits(self) -> list[str]:
        if self.hw.split != "auto":
            return [self.hw.split]
        return ["n"] if self.hw.pods == 1 else list(rtl_cycles.SPLITS)

    def _rtl(self, layer: Layer, mask: np.ndarray | None) -> LayerPerf:
        hw = self.hw
        bitmap = 0
        if mask is None or layer.kind == "matmul":
            groups: list[tuple[tuple[int, ...] | None, int, int | None]] = [(None, layer.groups, None)]
            density = 1.0
        else:
            per_group = sparsity.k_eff(mask, layer, hw.cols, hw.block, hw.dataflow)
            kept = sparsity.kept_weights(mask, layer, hw.block)
            tally: dict[tuple[tuple[int, ...], int], int] = {}
            for k_group, kw in zip(per_group, kept):
                tally[(k_group, kw)] = tally.get((k_group, kw), 0) + 1
            groups = [(ke, count, kw) for (ke, kw), count in tally.items()]
            density = sum(kept) / layer.weights
            bitmap = sparsity.bitmap_bytes(mask)
        best: LayerPerf | None = None
        for split in self._splits():
            acc = _Acc(hw.pods)
            for ke, count, kept_w in groups:
                run = rtl_cycles.plan(layer.m, layer.k, layer.n, rows=hw.rows, cols=hw.cols,
                                      dataflow=hw.dataflow, pods=hw.pods, split=split,
                                      k_eff=None if ke is None else list(ke))
                wbytes = None
                if ke is not None and kept_w is not None:
                    wbytes = _weight_bytes(run, layer, ke, kept_w, bitmap, hw)
                t = memory.traffic(run, hw.mem, wbytes)
                compute, total = memory.layer_cycles(run, t)
                acc.add(count, run, t, compute, total)
            perf = acc.perf(layer, split, hw, density)
            if best is None or perf.cycles < best.cycles:
                best = perf
        assert best is not None
        return best

    def _scalesim(self, layer: Layer) -> LayerPerf:
        from accel_models import scalesim
        from accel_models.networks import scalesim_repeats, scalesim_row

        hw = self.hw
        cfg = scalesim.ScaleSimConfig(hw.rows, hw.cols, hw.dataflow, hw.mem.ifmap_kb, hw.mem.filter_kb,
                                      hw.mem.ofmap_kb, hw.mem.dram_bw or None)
        reps = scalesim_repeats(layer)
        row = scalesim_row(layer)
        g = scalesim.geometry(row)
        if hw.pods == 1:
            r = scalesim.simulate_row(row, cfg)
            return _ss_perf(layer, "n", hw, [(r, 1)], [r.total_cycles], 0, reps, g.m * g.k * g.n)
        best: LayerPerf | None = None
        cache: dict[tuple[int, ...], scalesim.ScaleSimLayer] = {}
        for split in self._splits():
            run = rtl_cycles.plan(g.m, g.k, g.n, rows=hw.rows, cols=hw.cols, dataflow=hw.dataflow, pods=hw.pods,
                                  split=split)
            results = []
            for w in run.pods:
                if w.tiles == 0:
                    continue
                if split == "n" and layer.kind == "conv":
                    sub = (*row[:5], w.n, *row[6:])  # the pod's filters, same convolution
                else:
                    sub = (w.m, w.k, 1, w.k, 1, w.n, 1, 1)  # the pod's share as a GEMM
                if sub not in cache:
                    cache[sub] = scalesim.simulate_row(sub, cfg)
                results.append((cache[sub], 1))
            busy = [r.total_cycles for r, _ in results] + [0] * (hw.pods - len(results))
            perf = _ss_perf(layer, split, hw, results, busy, run.reduce, reps, g.m * g.k * g.n)
            if best is None or perf.cycles < best.cycles:
                best = perf
        assert best is not None
        return best

    def prepare(self, layers: Sequence[Layer], masks: Mapping[str, np.ndarray] | None = None,
                progress: bool = False) -> list[LayerPerf]:
        masks = masks or {}
        it: Sequence[Layer] = layers
        if progress:
            from tqdm import tqdm

            it = tqdm(layers, desc=f"{self.hw.cycle_model} model", unit="layer", leave=False)
        return [self.layer(layer, masks.get(layer.name)) for layer in it]


def _weight_bytes(run: rtl_cycles.RtlRun, layer: Layer, ke: tuple[int, ...], kept: int, bitmap: int,
                  hw: Hardware) -> list[int | None]:
    """Compressed weight bytes one pass of each pod fetches (kept blocks plus the block bitmap)."""
    if hw.dataflow == "is":
        full = ke[0] * layer.n
    else:
        widths = [min(hw.cols, layer.n - j * hw.cols) for j in range(len(ke))]
        full = sum(k * w for k, w in zip(ke, widths))
    rho = kept / full if full else 0.0
    out: list[int | None] = []
    for p in run.pods:
        if p.tiles == 0:
            out.append(0)
            continue
        per_pass = p.b_reads / (p.m_tiles if hw.dataflow == "os" else p.panels if hw.dataflow == "is" else 1)
        out.append(round(per_pass * rho) * hw.mem.word_bytes + bitmap)
    return out


class _Acc:
    """Sums the runs of a layer's groups."""

    def __init__(self, pods: int):
        self.busy = [0] * pods
        self.compute = self.total = self.macs = self.tiles = 0
        self.sram = [0, 0, 0, 0]
        self.dram = [0, 0, 0, 0]

    def add(self, count: int, run: rtl_cycles.RtlRun, t: memory.Traffic, compute: int, total: int) -> None:
        self.compute += count * compute
        self.total += count * total
        self.macs += count * run.macs
        self.tiles += count * sum(p.tiles for p in run.pods)
        for i, p in enumerate(t.pods):
            self.busy[i] += count * p.busy
        for w in run.pods:
            self.sram[0] += count * w.a_reads
            self.sram[1] += count * w.b_reads
            self.sram[2] += count * w.c_reads
            self.sram[3] += count * w.c_writes
        self.sram[2] += count * run.reduce_reads
        self.sram[3] += count * run.reduce_writes
        for i, v in enumerate((t.a_read, t.b_read, t.c_write, t.c_read)):
            self.dram[i] += count * v

    def perf(self, layer: Layer, split: str, hw: Hardware, density: float) -> LayerPerf:
        util = self.macs / (self.total * hw.pods * hw.rows * hw.cols)
        s, d = self.sram, self.dram
        return LayerPerf(layer, split, self.total, self.compute, self.total - self.compute, util, tuple(self.busy),
                         self.macs, s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3], weight_density=density,
                         folds=self.tiles)


def _ss_perf(layer: Layer, split: str, hw: Hardware, results: list, busy: list[int], reduce: int, reps: int,
             macs_one: int) -> LayerPerf:
    """A layer's figures from SCALE-Sim-exact per-pod results (``reps`` runs of one group/image)."""
    cycles = max(busy) + reduce
    stalls = max(r.stall_cycles for r, _ in results)
    sums = [sum(getattr(r, f) for r, _ in results) for f in
            ("ifmap_sram_reads", "filter_sram_reads", "ofmap_sram_writes", "ifmap_dram_reads", "filter_dram_reads",
             "ofmap_dram_writes")]
    total = reps * cycles
    util = reps * macs_one / (total * hw.pods * hw.rows * hw.cols)
    first = results[0][0]
    return LayerPerf(layer, split, total, total - reps * stalls, reps * stalls, util,
                     tuple(reps * b for b in busy), reps * macs_one, reps * sums[0], reps * sums[1], 0,
                     reps * sums[2], reps * sums[3], reps * sums[4], reps * sums[5], 0,
                     mapping_eff=first.mapping_eff if hw.pods == 1 else None,
                     compute_util=first.compute_util if hw.pods == 1 else None, c_word_bytes=1,
                     folds=reps * sum(r.folds for r, _ in results))


# --- energy per assignment ----------------------------------------------------------------------

# A layer's multipliers: (multiplier name, share of the layer's filters) pairs.
LayerMults = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class LayerEnergy:
    dram_pj: float
    sram_pj: float
    compute_pj: float
    mult_pj: float  # the multipliers' share of compute_pj

    @property
    def total_pj(self) -> float:
        return self.dram_pj + self.sram_pj + self.compute_pj


class Evaluation:
    """Per-layer costs that do not depend on the multipliers, and energy for any assignment."""

    def __init__(self, hw: Hardware, perfs: list[LayerPerf], lib: Library, params: EnergyParams,
                 array: ArrayPPA | None = None, clock_ns: float | None = None):
        self.hw = hw
        self.perfs = perfs
        self.lib = lib
        self.params = params
        self.array = array
        lib.frozen = True  # the exact reference (and so P_pod) is fixed from here on
        self.power: PodPower = pod_power(hw.rows, hw.cols, hw.pods, hw.dataflow, lib, params, array)
        access = params.access_words or hw.rows
        self.access_words = access
        e_access = access * params.dram_pj_per_byte  # E_M: one access of ``access`` one-byte words
        self.e_access = e_access
        self.names = [p.layer.name for p in perfs]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.dram_pj = np.array([math.ceil(p.dram_bytes / access) * e_access for p in perfs])
        self.sram_pj = np.array([p.sram_bytes * params.sram_pj_per_byte for p in perfs])
        self.pod_cycles = np.array([sum(p.pod_busy) for p in perfs], dtype=np.float64)
        self.cycles = np.array([p.cycles for p in perfs], dtype=np.int64)
        self.clock_ns = clock_ns or (array.clock_ns if array else None) or lib.clock_ns or 10.0

    def layer_mult_pj(self, mults: LayerMults) -> float:
        return sum(share * self.lib.get(name).energy_pj for name, share in mults)

    def compute_pj(self, assignment: Mapping[str, LayerMults]) -> np.ndarray:
        """Compute energy per layer: sum over pods of busy cycles x energy per pod-cycle (cl T P_pod)."""
        exact = (("exact", 1.0),)
        per_cycle = np.array([self.power.per_cycle(self.layer_mult_pj(assignment.get(n, exact)))
                              for n in self.names])
        return self.pod_cycles * per_cycle

    def evaluate(self, assignment: Mapping[str, LayerMults]) -> tuple[float, float]:
        """(total energy in pJ, time in s) of one inference under ``assignment``."""
        compute = self.compute_pj(assignment)
        energy = float(compute.sum() + self.dram_pj.sum() + self.sram_pj.sum())
        return energy, float(self.cycles.sum()) * self.clock_ns * 1e-9

    def layer_energy(self, assignment: Mapping[str, LayerMults]) -> list[LayerEnergy]:
        compute = self.compute_pj(assignment)
        exact = (("exact", 1.0),)
        pes = self.hw.rows * self.hw.cols
        mult = [self.pod_cycles[i] * pes * self.layer_mult_pj(assignment.get(n, exact))
                for i, n in enumerate(self.names)]
        return [LayerEnergy(float(d), float(s), float(c), float(m))
                for d, s, c, m in zip(self.dram_pj, self.sram_pj, compute, mult)]
