"""One ``accel`` evaluation without files: the configuration (:class:`AccelConfig`) and :func:`evaluate`.

``flow.py accel`` (:mod:`accel_models.cli`) writes a run directory from the :class:`Result`;
:mod:`accel_models.api` evaluates many assignments for the DNN level with the same code.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import check_clock, check_range, check_tag, option
from core.errors import ConfigError, must


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
    clock_period: float | None = option(None, help="clock period (default: from the PPA runs, else 10)", unit="ns")
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
        check_clock(self.clock_period)
        check_tag(self.tag)
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
    evaluation = Evaluation(hw, perfs, lib, params, array, cfg.clock_period)
    hawx = assign.hawx(layers, assignment, lib, params, cfg.hawx_pes, cfg.hawx_simd)
    wall = time.perf_counter() - start
    return Result(cfg, net_name, layers, perfs, evaluation, assignment, masks, method, hawx, wall, not_modelled)
