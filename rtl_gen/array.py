"""Systolic and multi-pod arrays as Amaranth components, with a pluggable multiplier in every PE.

The timing of everything here is the contract written down in ``accel_models/RTL_TIMING.md``; the
``rtl`` cycle model (:mod:`rtl_gen.rtl_cycles`) computes it in closed form and the cocotb benches
(:mod:`verify.array`) check, for every shape they run, that the RTL needs exactly that many cycles.

Hierarchy (one Verilog module per line; ``array.v`` holds them all, multiplier included)::

    <top>            MultiPodArray: host ports, operand and result buffers (synchronous-read RAMs)
      core           ArrayCore: top controller, REDUCE unit, one pod per ...
        pod<p>         tile sequencer, feeders (address generators + valid bits), output unit
          sa           SystolicArray: R x C instances of
            pe_<r>_<c>   the PE module (one definition): registers, accumulator adder and
              mult         the multiplier module: exact (``*``) or an evolved ``approx.v``

The PE and multiplier are separate Verilog modules instantiated by name, so Yosys synthesises each once
and the evolved netlist is instantiated unchanged in every PE. Operands travel with a valid bit and a
PE adds ``mult(a, b)`` only when both are valid: an evolved multiplier may return a non-zero product
for a zero operand, so padding is masked, never fed as zeros.

Components:

* :class:`ProcessingElement` (``ws`` or ``os``), :class:`SystolicArray` (``rows x cols`` PEs),
* :class:`ArrayCore` (controller + pods, no memories: the part that is synthesised for PPA),
* :class:`MultiPodArray` (the accelerator with its buffers and host interface).

:func:`generate` returns the Verilog of every module of one configuration.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from dataclasses import astuple, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal, unsigned
from amaranth.back import verilog
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from core import golden, multrun, tools
from core.errors import ConfigError, must
from core.multrun import MultiplierRun
from core.tables import read_lut
from rtl_gen.multiplier import MAX_WIDTH, MIN_WIDTH, Multiplier, design_name

DATAFLOWS = ("ws", "os")
SPLITS = ("n", "m", "k")  # the code of a split is its index: the ``split`` port of MultiPodArray
MAX_DIM = 32  # rows, cols: beyond this the gate-level PPA of one pod takes hours on this flow
MAX_PES = 256  # rows x cols x pods, for the same reason (synthesis and gate-level simulation scale with it)
MAX_GEMM = 4096  # M, K, N: buffer depth (the RTL holds whole operands on chip)
MIN_ACC, MAX_ACC = 8, 64


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def bits_for(n: int) -> int:
    """Bits of an unsigned number that holds 0 .. n."""
    return max(1, int(n).bit_length())


def addr_bits(depth: int) -> int:
    """Bits of an address of ``depth`` entries."""
    return max(1, (int(depth) - 1).bit_length())


# ------------------------------------------------------------------------------------------ multiplier
@dataclass(frozen=True)
class MultSpec:
    """The multiplier of every PE: a Verilog module with ports ``a`` (wa), ``b`` (wb), ``y`` (wa+wb).

    ``lut`` is its product table indexed by operand codes (``lut[a_code, b_code]`` = product value);
    for the exact multiplier it is the goldenbrick table.
    """

    wa: int
    wb: int
    signed: bool
    module: str
    verilog: str = ""
    run_dir: Path | None = None  # None: the exact multiplier
    report: tuple[tuple[str, object], ...] = ()

    @property
    def exact(self) -> bool:
        return self.run_dir is None

    @property
    def label(self) -> str:
        return "exact" if self.exact else self.module

    def lut(self) -> np.ndarray:
        if self.exact:
            return golden.table(self.wa, self.wb, self.signed)
        assert self.run_dir is not None
        return read_lut(self.run_dir / "lut.npy", self.wa, self.wb, self.signed)

    def report_dict(self) -> dict:
        return dict(self.report)


def exact_multiplier(wa: int = 8, wb: int = 8, signed: bool = True) -> MultSpec:
    """The exact multiplier (``y = a * b``, Amaranth) as a PE multiplier."""
    for name, w in (("WA", wa), ("WB", wb)):
        if isinstance(w, bool) or not isinstance(w, int) or not MIN_WIDTH <= w <= MAX_WIDTH:
            raise must(name, f"an integer in {MIN_WIDTH}..{MAX_WIDTH}", w)
    name = design_name(wa, wb, signed)
    text = verilog.convert(Multiplier(wa, wb, signed_=signed), name=name, emit_src=False)
    return MultSpec(wa, wb, signed, name, text)


def _last_module(text: str) -> str | None:
    names = re.findall(r"^\s*module\s+(\\\S+|[A-Za-z_][\w$]*)", text, re.M)
    return names[-1] if names else None


def verilog_ports(path: Path, top: str) -> dict[str, tuple[str, int]]:
    """Direction and width of every port of ``top`` in ``path``, as Yosys reads them."""
    exe = tools.YOSYS.require()
    with tempfile.TemporaryDirectory(prefix="axf_ports_") as tmp:
        out = Path(tmp) / "ports.json"
        script = Path(tmp) / "ports.ys"
        script.write_text(f"read_verilog -sv {path.resolve()}\nhierarchy -top {top}\nwrite_json {out}\n",
                          encoding="utf-8")
        proc = subprocess.run([exe, "-q", "-s", str(script)], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(f"{path} cannot be read as Verilog: {last[0]}")
        data = json.loads(out.read_text())
    mod = data["modules"].get(top.lstrip("\\"))
    if mod is None:
        raise ConfigError(f"{path} does not define module {top}")
    return {name: (p["direction"], len(p["bits"])) for name, p in mod["ports"].items()}


def evolved_multiplier(run_dir: Path, *, wa: int | None = None, wb: int | None = None,
                       signed: bool | None = None) -> MultSpec:
    """The evolved multiplier of a run directory (``approx.v``, ``lut.npy``, ``report.json``).

    ``wa``, ``wb``, ``signed``: what the array's operands are; a run that disagrees is an error.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"MULT must be 'exact' or a multiplier run directory, not {str(run_dir)!r} "
                          "(no such directory)")
    run = MultiplierRun.load(run_dir, wa, wb, signed, need=(multrun.VERILOG, multrun.LUT))
    rwa, rwb, rsigned, rep = run.wa, run.wb, run.signed, run.report
    run.lut()  # checked now, not after the array is built
    text = run.verilog()
    top = _last_module(text)
    if top is None:
        raise ConfigError(f"{run_dir / 'approx.v'} defines no module")
    ports = verilog_ports(run_dir / "approx.v", top)
    want = {"a": ("input", rwa), "b": ("input", rwb), "y": ("output", rwa + rwb)}
    if ports != want:
        got = ", ".join(f"{d} {n}[{w}]" for n, (d, w) in sorted(ports.items()))
        need = ", ".join(f"{d} {n}[{w}]" for n, (d, w) in sorted(want.items()))
        raise ConfigError(f"module {top} in {run_dir / 'approx.v'} must have ports {need} (from report.json), "
                          f"not {got}")
    keep = ("design", "eps", "wce", "area", "area_ratio", "power_w", "power_ratio", "delay_ns", "tech",
            "clock_period_ns", "exact")
    report = tuple((k, rep[k]) for k in keep if k in rep)
    return MultSpec(rwa, rwb, rsigned, top.lstrip("\\"), text, run_dir.resolve(), report)


def load_multiplier(spec: str | Path, *, wa: int = 8, wb: int = 8, signed: bool = True,
                    widths_given: bool = False) -> MultSpec:
    """``'exact'`` or a run directory. With ``widths_given`` the array's widths must match the run's."""
    if str(spec) == "exact":
        return exact_multiplier(wa, wb, signed)
    if widths_given:
        return evolved_multiplier(Path(spec), wa=wa, wb=wb, signed=signed)
    return evolved_multiplier(Path(spec))


# ------------------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class Geometry:
    """Everything that fixes the hardware: array shape, pods, dataflow, widths and buffer sizes."""

    rows: int
    cols: int
    pods: int
    dataflow: str
    wa: int
    wb: int
    signed: bool
    acc_bits: int = 32
    m_max: int = 64
    k_max: int = 64
    n_max: int = 64
    tile_skip: bool = False  # ws: a ``skip`` port of one bit per (K-tile, N panel); skipped tiles are not run

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "pods"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise must(name.upper(), "a positive integer", v)
        for name in ("rows", "cols"):
            if getattr(self, name) > MAX_DIM:
                raise must(name.upper(), f"at most {MAX_DIM} (the gate-level PPA of a larger array takes hours "
                           "here)", getattr(self, name))
        pes = self.rows * self.cols * self.pods
        if pes > MAX_PES:
            raise ConfigError(f"ROWS x COLS x PODS must be at most {MAX_PES} processing elements, not {pes}: "
                              "synthesis and gate-level simulation grow with the PE count, and a larger "
                              "configuration takes hours on this flow")
        if self.dataflow not in DATAFLOWS:
            raise must("DATAFLOW", "one of the listed choices", self.dataflow, DATAFLOWS)
        if not MIN_ACC <= self.acc_bits <= MAX_ACC or self.acc_bits < self.wa + self.wb:
            raise must("ACC_BITS", f"in {max(MIN_ACC, self.wa + self.wb)}..{MAX_ACC} (at least the product "
                       "width)", self.acc_bits)
        for name in ("m_max", "k_max", "n_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_GEMM:
                raise must(name.upper(), f"in 1..{MAX_GEMM}", v)
        if self.tile_skip and self.dataflow != "ws":
            raise must("DATAFLOW", "ws with tile skipping (an os tile holds outputs, not weights)", self.dataflow)

    @property
    def skip_bits(self) -> int:
        """Bits of the ``skip`` port: one per (K-tile, N panel), bit ``panel * kb + k_tile``."""
        return self.kb * self.nb if self.tile_skip else 0

    # buffer organisation (RTL_TIMING.md section 1)
    @property
    def kb(self) -> int:
        """ws: words of one A row in one bank (A is banked by k mod R)."""
        return ceil_div(self.k_max, self.rows)

    @property
    def nb(self) -> int:
        """Words of one B or C row in one bank (banked by n mod C)."""
        return ceil_div(self.n_max, self.cols)

    @property
    def mt_max(self) -> int:
        return ceil_div(self.m_max, self.rows)

    @property
    def a_depth(self) -> int:
        return self.m_max * self.kb if self.dataflow == "ws" else self.mt_max * self.k_max

    @property
    def b_depth(self) -> int:
        return self.k_max * self.nb

    @property
    def c_depth(self) -> int:
        return self.m_max * self.nb

    @property
    def buffer_bits(self) -> dict[str, int]:
        """On-chip buffer capacity in bits (all pods)."""
        p = self.pods
        return {"a": p * self.rows * self.a_depth * self.wa, "b": p * self.cols * self.b_depth * self.wb,
                "c": p * self.cols * self.c_depth * self.acc_bits}

    @property
    def name(self) -> str:
        """``sa8x8_ws`` for one pod, ``mp2x4x4_ws`` for two pods of 4x4."""
        shape = f"{self.rows}x{self.cols}"
        name = f"sa{shape}_{self.dataflow}" if self.pods == 1 else f"mp{self.pods}x{shape}_{self.dataflow}"
        return name + ("_skip" if self.tile_skip else "")


# ------------------------------------------------------------------------------------------ PE
class ProcessingElement(wiring.Component):
    """One PE: the multiplier module, valid-masked product, accumulator adder and pipeline registers.

    Both dataflows: ``a_in``/``av_in`` (activation and its valid bit) enter from the left and leave
    registered on ``a_out``/``av_out`` one cycle later (the data register only loads valid values).

    ``ws`` (weight stationary): ``w_in``/``wv_in`` shift into the weight register when ``load`` is 1
    (``w_out``/``wv_out`` feed the PE below); ``p_out <= p_in + (av_in & wv ? mult(a_in, w) : 0)``
    every cycle (latency 1, wrapping at ``acc_bits``).

    ``os`` (output stationary): ``b_in``/``bv_in`` enter from above and leave registered on
    ``b_out``/``bv_out``; the accumulator ``acc_out <= acc_out + (av_in & bv_in ? mult(a_in, b_in) : 0)``,
    or ``acc_out <= acc_in`` (the PE above's accumulator, 0 in row 0) when ``drain`` is 1.
    """

    def __init__(self, dataflow: str, mult: MultSpec, acc_bits: int = 32):
        if dataflow not in DATAFLOWS:
            raise must("DATAFLOW", "one of the listed choices", dataflow, DATAFLOWS)
        self.dataflow, self.mult, self.acc_bits = dataflow, mult, acc_bits
        wa, wb = mult.wa, mult.wb
        sig = {"a_in": In(wa), "av_in": In(1), "a_out": Out(wa), "av_out": Out(1)}
        if dataflow == "ws":
            sig.update({"w_in": In(wb), "wv_in": In(1), "w_out": Out(wb), "wv_out": Out(1), "load": In(1),
                        "p_in": In(acc_bits), "p_out": Out(acc_bits)})
        else:
            sig.update({"b_in": In(wb), "bv_in": In(1), "b_out": Out(wb), "bv_out": Out(1), "drain": In(1),
                        "acc_in": In(acc_bits), "acc_out": Out(acc_bits)})
        super().__init__(sig)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        wa, wb, acc = self.mult.wa, self.mult.wb, self.acc_bits
        a_reg = Signal(wa, reset_less=True)
        av_reg = Signal()
        with m.If(self.av_in):
            m.d.sync += a_reg.eq(self.a_in)
        m.d.sync += av_reg.eq(self.av_in)
        m.d.comb += [self.a_out.eq(a_reg), self.av_out.eq(av_reg)]
        y = Signal(wa + wb)
        prod = Signal(acc)
        if self.dataflow == "ws":
            w_reg = Signal(wb, reset_less=True)
            wv_reg = Signal()
            with m.If(self.load):
                m.d.sync += [w_reg.eq(self.w_in), wv_reg.eq(self.wv_in)]
            m.d.comb += [self.w_out.eq(w_reg), self.wv_out.eq(wv_reg)]
            b, valid = w_reg, self.av_in & wv_reg
        else:
            b_reg = Signal(wb, reset_less=True)
            bv_reg = Signal()
            with m.If(self.bv_in):
                m.d.sync += b_reg.eq(self.b_in)
            m.d.sync += bv_reg.eq(self.bv_in)
            m.d.comb += [self.b_out.eq(b_reg), self.bv_out.eq(bv_reg)]
            b, valid = self.b_in, self.av_in & self.bv_in
        m.submodules.mult = Instance(self.mult.module, i_a=self.a_in, i_b=b, o_y=y)
        ext = y.as_signed() if self.mult.signed else y
        m.d.comb += prod.eq(Mux(valid, ext, 0))
        if self.dataflow == "ws":
            p_reg = Signal(acc, reset_less=True)
            m.d.sync += p_reg.eq(self.p_in + prod)
            m.d.comb += self.p_out.eq(p_reg)
        else:
            acc_reg = Signal(acc)
            with m.If(self.drain):
                m.d.sync += acc_reg.eq(self.acc_in)
            with m.Else():
                m.d.sync += acc_reg.eq(acc_reg + prod)
            m.d.comb += self.acc_out.eq(acc_reg)
        return m


def _template(component: wiring.Component) -> wiring.Component:
    """A component used only for its signature (its Verilog is generated separately)."""
    component._MustUse__silence = True
    return component


def _instance(module: str, component: wiring.Component, connect: dict[str, object]) -> Instance:
    """An ``Instance`` of ``module`` (the Verilog of ``component``), ports named as Amaranth names them."""
    kwargs: dict[str, object] = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
    for path, member, _ in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        kwargs[("i_" if member.flow == In else "o_") + name] = connect[name]
    return Instance(module, **kwargs)


class SystolicArray(wiring.Component):
    """``rows x cols`` PEs (instances of the PE module ``pe_module``), no buffers, no control.

    ``ws``: ports ``a_in[r]``/``av_in[r]`` (left edge, row r), ``w_in[c]``/``wv_in[c]`` and ``load``
    (weights shift down one row per cycle while ``load`` = 1; after R loads PE(r, c) holds what
    entered column c R-1-r loads earlier), ``p_out[c]`` (bottom of column c). Activations move one PE
    right per cycle and partial sums one PE down, so the sum over the rows for an activation row that
    enters row r at cycle t - r leaves ``p_out[c]`` registered at the end of cycle t + R - 1 + c.

    ``os``: ``a_in[r]``/``av_in[r]``, ``b_in[c]``/``bv_in[c]`` (top edge), ``drain``, ``acc_out[c]``
    (the bottom row's accumulators; with ``drain`` = 1 every accumulator takes the one above, row 0
    takes 0). PE(r, c) sees at cycle t what entered row r at t - c and column c at t - r.
    """

    def __init__(self, rows: int, cols: int, dataflow: str, mult: MultSpec, acc_bits: int = 32,
                 pe_module: str = "axf_pe"):
        self.rows, self.cols, self.dataflow, self.mult, self.acc_bits = rows, cols, dataflow, mult, acc_bits
        self.pe_module = pe_module
        wa, wb = mult.wa, mult.wb
        sig = {"a_in": In(wa).array(rows), "av_in": In(1).array(rows)}
        if dataflow == "ws":
            sig.update({"w_in": In(wb).array(cols), "wv_in": In(1).array(cols), "load": In(1),
                        "p_out": Out(acc_bits).array(cols)})
        else:
            sig.update({"b_in": In(wb).array(cols), "bv_in": In(1).array(cols), "drain": In(1),
                        "acc_out": Out(acc_bits).array(cols)})
        super().__init__(sig)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        R, C, acc = self.rows, self.cols, self.acc_bits
        pe = _template(ProcessingElement(self.dataflow, self.mult, acc))
        ws = self.dataflow == "ws"
        # per-PE output signals
        a_out = [[Signal(self.mult.wa, name=f"a_{r}_{c}") for c in range(C)] for r in range(R)]
        av_out = [[Signal(name=f"av_{r}_{c}") for c in range(C)] for r in range(R)]
        v_out = [[Signal(self.mult.wb, name=f"{'w' if ws else 'b'}_{r}_{c}") for c in range(C)] for r in range(R)]
        vv_out = [[Signal(name=f"{'wv' if ws else 'bv'}_{r}_{c}") for c in range(C)] for r in range(R)]
        s_out = [[Signal(acc, name=f"{'p' if ws else 'acc'}_{r}_{c}") for c in range(C)] for r in range(R)]
        for r in range(R):
            for c in range(C):
                conn: dict[str, object] = {
                    "a_in": self.a_in[r] if c == 0 else a_out[r][c - 1],
                    "av_in": self.av_in[r] if c == 0 else av_out[r][c - 1],
                    "a_out": a_out[r][c], "av_out": av_out[r][c],
                }
                above_s = Const(0, acc) if r == 0 else s_out[r - 1][c]
                if ws:
                    conn.update({"w_in": self.w_in[c] if r == 0 else v_out[r - 1][c],
                                 "wv_in": self.wv_in[c] if r == 0 else vv_out[r - 1][c],
                                 "w_out": v_out[r][c], "wv_out": vv_out[r][c], "load": self.load,
                                 "p_in": above_s, "p_out": s_out[r][c]})
                else:
                    conn.update({"b_in": self.b_in[c] if r == 0 else v_out[r - 1][c],
                                 "bv_in": self.bv_in[c] if r == 0 else vv_out[r - 1][c],
                                 "b_out": v_out[r][c], "bv_out": vv_out[r][c], "drain": self.drain,
                                 "acc_in": above_s, "acc_out": s_out[r][c]})
                m.submodules[f"pe_{r}_{c}"] = _instance(self.pe_module, pe, conn)
        out = self.p_out if ws else self.acc_out
        for c in range(C):
            m.d.comb += out[c].eq(s_out[R - 1][c])
        return m


# ------------------------------------------------------------------------------------------ pods
IDLE, NEXT, PH_A, PH_B = 0, 1, 2, 3  # pod phases; PH_A = LOAD (ws) / COMPUTE (os), PH_B = STREAM / DRAIN


def _mem_ports(g: Geometry) -> dict[str, wiring.Member]:
    """One pod's ports to its buffers: A banks (one per row), B and C banks (one per column)."""
    R, C = g.rows, g.cols
    aa, ba, ca = addr_bits(g.a_depth), addr_bits(g.b_depth), addr_bits(g.c_depth)
    return {
        "a_raddr": Out(aa).array(R), "a_ren": Out(1).array(R), "a_rdata": In(g.wa).array(R),
        "b_raddr": Out(ba).array(C), "b_ren": Out(1).array(C), "b_rdata": In(g.wb).array(C),
        "c_raddr": Out(ca).array(C), "c_ren": Out(1).array(C), "c_rdata": In(g.acc_bits).array(C),
        "c_waddr": Out(ca).array(C), "c_we": Out(1).array(C), "c_wdata": Out(g.acc_bits).array(C),
    }


def _share_ports(g: Geometry) -> dict[str, wiring.Member]:
    """What the controller tells a pod (sampled with ``go``) and the GEMM sizes it holds during RUN."""
    mw, kw, nw = bits_for(g.m_max), bits_for(g.k_max), bits_for(g.n_max)
    tw = bits_for(max(g.mt_max, g.kb, g.nb))
    sw = bits_for(max(g.pods, 1))
    lw = max(mw, kw)
    extra: dict[str, wiring.Member] = {"skip": In(g.skip_bits)} if g.tile_skip else {}
    return {
        **extra,
        "go": In(1), "busy": Out(1),
        "m": In(mw), "k": In(kw), "n": In(nw),
        "o_count": In(tw), "u_count": In(tw),  # tiles of the outer / inner loop
        "o0": In(tw), "o_step": In(sw), "u0": In(tw), "u_step": In(sw),
        "base": In(lw), "size": In(lw),  # ws: first row m0 and rows mp; os: first k0 and length kp
    }


class Pod(wiring.Component):
    """One pod: the tile sequencer, the feeders and output unit of RTL_TIMING.md section 4, one array.

    Tiles run back to back from the cycle after ``go`` until ``busy`` falls. Loops: ws - outer over
    N panels ``o``, inner over K-tiles ``u``, streaming rows ``base .. base+size-1``; os - outer over
    M-tiles ``o``, inner over N panels ``u``, reducing over ``base .. base+size-1``. Each loop starts at
    ``o0``/``u0`` and steps by ``o_step``/``u_step`` while below ``o_count``/``u_count``.
    """

    def __init__(self, g: Geometry, mult: MultSpec, pe_module: str):
        self.g, self.mult, self.pe_module = g, mult, pe_module
        super().__init__({**_share_ports(g), **_mem_ports(g)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        g = self.g
        m.submodules.sa = sa = SystolicArray(g.rows, g.cols, g.dataflow, self.mult, g.acc_bits, self.pe_module)
        if g.dataflow == "ws":
            self._ws(m, sa)
        else:
            self._os(m, sa)
        return m

    # shared sequencing: loop registers, phase, tile advance
    def _loops(self, m: Module) -> tuple[Signal, Signal, Signal, Signal, dict[str, Signal]]:
        g = self.g
        phase = Signal(2)
        cnt = Signal(bits_for(max(g.m_max, g.k_max) + g.rows + g.cols))
        tw = len(self.o0)
        o, u = Signal(tw), Signal(tw)
        q = {name: Signal(len(getattr(self, name)), name=f"{name}_q")
             for name in ("o0", "o_step", "u0", "u_step", "base", "size")}
        m.d.comb += self.busy.eq(phase != IDLE)
        with m.If((phase == IDLE) & self.go):
            m.d.sync += [sig.eq(getattr(self, name)) for name, sig in q.items()]
            m.d.sync += [o.eq(self.o0), u.eq(self.u0), phase.eq(NEXT)]
        return phase, cnt, o, u, q

    def _advance(self, m: Module, phase: Signal, o: Signal, u: Signal, q: dict[str, Signal]) -> None:
        """End of a tile: the next (o, u) in loop order, or IDLE."""
        u_next = u + q["u_step"]
        o_next = o + q["o_step"]
        with m.If(u_next < self.u_count):
            m.d.sync += [u.eq(u_next), phase.eq(NEXT)]
        with m.Elif(o_next < self.o_count):
            m.d.sync += [u.eq(q["u0"]), o.eq(o_next), phase.eq(NEXT)]
        with m.Else():
            m.d.sync += phase.eq(IDLE)

    @staticmethod
    def _chain(m: Module, n: int, addr0: object, valid0: object, width: int, name: str
               ) -> tuple[list[object], list[object]]:
        """Lane i issues what lane 0 issued i cycles earlier (the skew of the systolic feed)."""
        addrs: list[object] = [addr0]
        valids: list[object] = [valid0]
        for i in range(1, n):
            a = Signal(width, name=f"{name}_addr{i}")
            v = Signal(name=f"{name}_v{i}")
            m.d.sync += [a.eq(addrs[-1]), v.eq(valids[-1])]
            addrs.append(a)
            valids.append(v)
        return addrs, valids

    def _first_kept(self, m: Module, panel: Any, start: Any, name: str) -> tuple[Any, Signal]:
        """Tile skipping: whether panel ``panel`` runs a K-tile at or after ``start``, and the first one."""
        kt = self.g.kb
        bits = self.skip.bit_select(panel * kt, kt)
        kept = Signal(kt, name=f"{name}_kept")
        m.d.comb += kept.eq(Cat(*[~bits[t] & (start <= t) for t in range(kt)]))
        idx: Any = Const(kt - 1, len(self.u0))
        for t in reversed(range(kt)):
            idx = Mux(kept[t], t, idx)
        first = Signal(len(self.u0), name=f"{name}_idx")
        m.d.comb += first.eq(idx)
        return kept.any(), first

    def _advance_skip(self, m: Module, phase: Signal, o: Signal, u: Signal, q: dict[str, Signal]) -> None:
        """End of a tile with tile skipping: the next K-tile of this panel that is not skipped, else the
        first of the next panel (or its first K-tile, run with no valid weight, when it skips them all)."""
        o_next = o + q["o_step"]
        more, u_more = self._first_kept(m, o, u + 1, "adv_u")
        found, u_first = self._first_kept(m, o_next, q["u0"], "adv_o")
        with m.If(more):
            m.d.sync += [u.eq(u_more), phase.eq(NEXT)]
        with m.Elif(o_next < self.o_count):
            m.d.sync += [u.eq(Mux(found, u_first, q["u0"])), o.eq(o_next), phase.eq(NEXT)]
        with m.Else():
            m.d.sync += phase.eq(IDLE)

    def _ws(self, m: Module, sa: SystolicArray) -> None:
        g = self.g
        R, C, KB, NB = g.rows, g.cols, g.kb, g.nb
        phase, cnt, o, u, q = self._loops(m)
        j, i = o, u  # panel, K-tile
        dead = Signal()  # tile skipping: this panel skips every K-tile, so its first runs with no weight
        dead_now: Any = Const(0)
        if g.tile_skip:
            found0, u_first0 = self._first_kept(m, self.o0, self.u0, "go")
            with m.If((phase == IDLE) & self.go):
                m.d.sync += u.eq(Mux(found0, u_first0, self.u0))
        aa, ba, ca = len(self.a_raddr[0]), len(self.b_raddr[0]), len(self.c_raddr[0])
        first = Signal()
        kvalid = Signal(R)  # k0 + r < K
        cvalid = Signal(C)  # n0 + c < N
        b_addr = Signal(ba + 1)
        b_kk = Signal(bits_for(g.kb * R + R))
        bv = Signal(C)  # valid bits of the B data arriving this cycle
        a_addr0 = Signal(aa + 1)
        a_u = Signal(len(cnt))
        c_addr0 = Signal(ca + 1)

        # B reads: issued in NEXT (for LOAD l = 0) and in LOAD l = 0 .. R-2 (for l + 1)
        b_issue = Signal()
        b_issue_addr = Signal(ba + 1)
        b_issue_kk = Signal(len(b_kk))
        k0 = i * R
        n0 = j * C
        is_first: Any = i == q["u0"]
        if g.tile_skip:
            any_kept, u_first = self._first_kept(m, j, q["u0"], "panel")
            is_first = Mux(any_kept, i == u_first, 1)
            dead_now = Mux(phase == NEXT, ~any_kept, dead)
            with m.If(phase == NEXT):
                m.d.sync += dead.eq(~any_kept)
        with m.If(phase == NEXT):
            m.d.comb += [b_issue.eq(1), b_issue_kk.eq(k0 + R - 1), b_issue_addr.eq((k0 + R - 1) * NB + j)]
            m.d.sync += [
                first.eq(is_first),
                kvalid.eq(Cat(*[k0 + r < self.k for r in range(R)])),
                cvalid.eq(Cat(*[n0 + c < self.n for c in range(C)])),
                a_addr0.eq(q["base"] * KB + i), a_u.eq(0),
                c_addr0.eq(q["base"] * NB + j),
                cnt.eq(0), phase.eq(PH_A),
            ]
        with m.Elif((phase == PH_A) & (cnt < R - 1)):
            m.d.comb += [b_issue.eq(1), b_issue_kk.eq(b_kk), b_issue_addr.eq(b_addr)]
        col_ok = Cat(*[n0 + c < self.n for c in range(C)])  # valid in NEXT, where cvalid is being set
        b_cols = Mux(phase == NEXT, col_ok, cvalid)
        for c in range(C):
            m.d.comb += [self.b_raddr[c].eq(b_issue_addr), self.b_ren[c].eq(b_issue & (b_issue_kk < self.k)
                                                                              & b_cols[c] & ~dead_now)]
        m.d.sync += bv.eq(Cat(*self.b_ren))
        with m.If(b_issue):
            m.d.sync += [b_addr.eq(b_issue_addr - NB), b_kk.eq(b_issue_kk - 1)]

        # LOAD: weights shift down; the last LOAD cycle issues the first A reads
        m.d.comb += sa.load.eq(phase == PH_A)
        for c in range(C):
            m.d.comb += [sa.w_in[c].eq(self.b_rdata[c]), sa.wv_in[c].eq(bv[c])]
        with m.If(phase == PH_A):
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == R - 1):
                m.d.sync += [cnt.eq(0), phase.eq(PH_B)]

        # A feed: row 0 reads row m0 + t for STREAM cycle t in cycle t - 1; row r lags r cycles
        a_issue = ((phase == PH_A) & (cnt == R - 1)) | ((phase == PH_B) & (a_u < q["size"]))
        with m.If(a_issue):
            m.d.sync += [a_addr0.eq(a_addr0 + KB), a_u.eq(a_u + 1)]
        addrs, valids = self._chain(m, R, a_addr0, a_issue, aa + 1, "a")
        av = Signal(R)
        for r in range(R):
            m.d.comb += [self.a_raddr[r].eq(addrs[r]), self.a_ren[r].eq(valids[r] & kvalid[r])]
        m.d.sync += av.eq(Cat(*self.a_ren))
        for r in range(R):
            m.d.comb += [sa.a_in[r].eq(self.a_rdata[r]), sa.av_in[r].eq(av[r])]

        # output unit: column c writes row t - R - c in STREAM cycle t, its old value read in t - 1
        t1 = cnt + 1
        c_issue = (phase == PH_B) & (t1 >= R) & (t1 < q["size"] + R)
        with m.If(c_issue):
            m.d.sync += c_addr0.eq(c_addr0 + NB)
        caddrs, cvalids = self._chain(m, C, c_addr0, c_issue, ca + 1, "c")
        for c in range(C):
            wa_ = Signal(ca, name=f"c_wa{c}")
            we = Signal(name=f"c_we{c}")
            m.d.comb += [self.c_raddr[c].eq(caddrs[c]), self.c_ren[c].eq(cvalids[c] & cvalid[c] & ~first)]
            m.d.sync += [wa_.eq(caddrs[c]), we.eq(cvalids[c] & cvalid[c])]
            m.d.comb += [self.c_waddr[c].eq(wa_), self.c_we[c].eq(we),
                         self.c_wdata[c].eq(Mux(first, 0, self.c_rdata[c]) + sa.p_out[c])]

        with m.If(phase == PH_B):
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == q["size"] + (R + C - 2)):
                m.d.sync += cnt.eq(0)
                if g.tile_skip:
                    self._advance_skip(m, phase, o, u, q)
                else:
                    self._advance(m, phase, o, u, q)

    def _os(self, m: Module, sa: SystolicArray) -> None:
        g = self.g
        R, C, NB, KM = g.rows, g.cols, g.nb, g.k_max
        phase, cnt, o, u, q = self._loops(m)
        i, j = o, u  # M-tile, panel
        aa, ba, ca = len(self.a_raddr[0]), len(self.b_raddr[0]), len(self.c_raddr[0])
        rowv = Signal(R)  # m0 + r < M
        colv = Signal(C)  # n0 + c < N
        a_addr0 = Signal(aa + 1)
        b_addr0 = Signal(ba + 1)
        a_u = Signal(len(cnt))
        d_addr = Signal(ca + 1)
        d_row = Signal(bits_for(g.mt_max * R))
        m0 = i * R
        n0 = j * C

        # COMPUTE cycle t: row 0 reads A[m0][k0 + t], column 0 reads B[k0 + t][n0] in cycle t - 1
        issue = Signal()
        ia, ib = Signal(aa + 1), Signal(ba + 1)
        with m.If(phase == NEXT):
            m.d.comb += [issue.eq(1), ia.eq(i * KM + q["base"]), ib.eq(q["base"] * NB + j)]
            m.d.sync += [
                rowv.eq(Cat(*[m0 + r < self.m for r in range(R)])),
                colv.eq(Cat(*[n0 + c < self.n for c in range(C)])),
                d_addr.eq((m0 + R - 1) * NB + j), d_row.eq(m0 + R - 1),
                cnt.eq(0), phase.eq(PH_A),
            ]
        with m.Elif(phase == PH_A):
            m.d.comb += [issue.eq(a_u < q["size"]), ia.eq(a_addr0), ib.eq(b_addr0)]
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == q["size"] + (R + C - 3)):
                m.d.sync += [cnt.eq(0), phase.eq(PH_B)]
        with m.If(issue):
            m.d.sync += [a_addr0.eq(ia + 1), b_addr0.eq(ib + NB), a_u.eq(Mux(phase == NEXT, 1, a_u + 1))]
        # row 0 / column 0 of a tile are always inside the GEMM; further lanes check rowv/colv
        addrs, valids = self._chain(m, R, ia, issue, aa + 1, "a")
        baddrs, bvalids = self._chain(m, C, ib, issue, ba + 1, "b")
        av, bv = Signal(R), Signal(C)
        for r in range(R):
            ok = valids[r] if r == 0 else valids[r] & rowv[r]
            m.d.comb += [self.a_raddr[r].eq(addrs[r]), self.a_ren[r].eq(ok)]
        for c in range(C):
            ok = bvalids[c] if c == 0 else bvalids[c] & colv[c]
            m.d.comb += [self.b_raddr[c].eq(baddrs[c]), self.b_ren[c].eq(ok)]
        m.d.sync += [av.eq(Cat(*self.a_ren)), bv.eq(Cat(*self.b_ren))]
        for r in range(R):
            m.d.comb += [sa.a_in[r].eq(self.a_rdata[r]), sa.av_in[r].eq(av[r])]
        for c in range(C):
            m.d.comb += [sa.b_in[c].eq(self.b_rdata[c]), sa.bv_in[c].eq(bv[c])]

        # DRAIN cycle d: write the bottom row to C row m0 + R - 1 - d, shift the accumulators down
        m.d.comb += sa.drain.eq(phase == PH_B)
        for c in range(C):
            m.d.comb += [self.c_waddr[c].eq(d_addr), self.c_wdata[c].eq(sa.acc_out[c]),
                         self.c_we[c].eq((phase == PH_B) & colv[c] & (d_row < self.m)),
                         self.c_raddr[c].eq(0), self.c_ren[c].eq(0)]
        with m.If(phase == PH_B):
            m.d.sync += [cnt.eq(cnt + 1), d_addr.eq(d_addr - NB), d_row.eq(d_row - 1)]
            with m.If(cnt == R - 1):
                m.d.sync += cnt.eq(0)
                self._advance(m, phase, o, u, q)


# ------------------------------------------------------------------------------------------ core
S_IDLE, S_SETUP, S_RUN, S_REDUCE, S_DONE = range(5)


class ArrayCore(wiring.Component):
    """The top controller, the pods and the REDUCE unit: everything of :class:`MultiPodArray` but the
    buffers and the host's buffer ports (this is what is synthesised for area, delay and power).

    Ports: ``start``, ``m``, ``k``, ``n``, ``split`` (sampled with ``start`` while idle), ``busy``,
    ``done`` (see :class:`MultiPodArray`), ``split_q`` and ``m_size`` (the split and ceil(M/P) of the
    GEMM run last, for the host's read-address decoder), and per pod ``p`` the buffer ports
    ``<a|b|c>_raddr[p][bank]`` / ``_ren`` / ``_rdata`` (synchronous read: data the cycle after the
    address) and ``c_waddr[p][bank]`` / ``c_we`` / ``c_wdata`` (written at the end of the cycle).
    """

    def __init__(self, g: Geometry, mult: MultSpec, pe_module: str):
        self.g, self.mult, self.pe_module = g, mult, pe_module
        mw, kw, nw = bits_for(g.m_max), bits_for(g.k_max), bits_for(g.n_max)
        P = g.pods
        sig: dict[str, wiring.Member] = {
            "start": In(1), "m": In(mw), "k": In(kw), "n": In(nw), "split": In(2),
            "busy": Out(1), "done": Out(1), "split_q": Out(2), "m_size": Out(mw),
        }
        if g.tile_skip:
            sig["skip"] = In(g.skip_bits)
        for name, member in _mem_ports(g).items():
            sig[name] = member.array(P)
        super().__init__(sig)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        g = self.g
        P, R, C = g.pods, g.rows, g.cols
        pods = [Pod(g, self.mult, self.pe_module) for _ in range(P)]
        for p, pod in enumerate(pods):
            m.submodules[f"pod{p}"] = pod

        state = Signal(3)
        mq, kq, nq = Signal(len(self.m)), Signal(len(self.k)), Signal(len(self.n))
        split = Signal(2)
        m.d.comb += [self.busy.eq((state == S_SETUP) | (state == S_RUN) | (state == S_REDUCE)),
                     self.done.eq(state == S_DONE), self.split_q.eq(split)]
        with m.If(((state == S_IDLE) | (state == S_DONE)) & self.start):
            m.d.sync += [mq.eq(self.m), kq.eq(self.k), nq.eq(self.n), split.eq(self.split), state.eq(S_SETUP)]
        skipq = Signal(g.skip_bits) if g.tile_skip else None
        if skipq is not None:
            with m.If(((state == S_IDLE) | (state == S_DONE)) & self.start):
                m.d.sync += skipq.eq(self.skip)

        # SETUP: every pod's share (RTL_TIMING.md section 5), sampled by the pods with go
        tw = len(pods[0].o0)
        mt, kt, nt = Signal(tw), Signal(tw), Signal(tw)
        mt_c = (mq + (R - 1)) // R
        kt_c = (kq + (R - 1)) // R
        nt_c = (nq + (C - 1)) // C
        m_size = Signal(len(self.m))
        k_size = (kq + (P - 1)) // P
        m_size_c = (mq + (P - 1)) // P
        m.d.comb += self.m_size.eq(m_size)
        if P == 1:  # every split is the same schedule
            sp_n, sp_m, sp_k = Const(1), Const(0), Const(0)
        else:
            sp_n, sp_m, sp_k = (split == 0) | (split == 3), split == 1, split == 2
        launched = Signal(P)
        work = []
        for p, pod in enumerate(pods):
            m.d.comb += [pod.m.eq(mq), pod.k.eq(kq), pod.n.eq(nq)]
            if skipq is not None:  # K-tiles beyond K count as skipped
                m.d.comb += pod.skip.eq(skipq | Cat(*[kt_c <= t for _ in range(g.nb) for t in range(g.kb)]))
            if g.dataflow == "ws":  # outer: N panels, inner: K-tiles, rows base .. base+size-1
                m.d.comb += [pod.o_count.eq(nt), pod.u_count.eq(kt)]
                m0 = p * m_size_c
                has = Mux(sp_n, p < nt_c, Mux(sp_m, m0 < mq, p < kt_c))
                m.d.comb += [
                    pod.o0.eq(Mux(sp_n, p, 0)), pod.o_step.eq(Mux(sp_n, P, 1)),
                    pod.u0.eq(Mux(sp_k, p, 0)), pod.u_step.eq(Mux(sp_k, P, 1)),
                    pod.base.eq(Mux(sp_m, m0, 0)),
                    pod.size.eq(Mux(sp_m, Mux(mq - m0 < m_size_c, mq - m0, m_size_c), mq)),
                ]
            else:  # outer: M-tiles, inner: N panels, reduction base .. base+size-1
                m.d.comb += [pod.o_count.eq(mt), pod.u_count.eq(nt)]
                k0 = p * k_size
                has = Mux(sp_n, p < nt_c, Mux(sp_m, p < mt_c, k0 < kq))
                m.d.comb += [
                    pod.o0.eq(Mux(sp_m, p, 0)), pod.o_step.eq(Mux(sp_m, P, 1)),
                    pod.u0.eq(Mux(sp_n, p, 0)), pod.u_step.eq(Mux(sp_n, P, 1)),
                    pod.base.eq(Mux(sp_k, k0, 0)),
                    pod.size.eq(Mux(sp_k, Mux(kq - k0 < k_size, kq - k0, k_size), kq)),
                ]
            work.append(has)
            m.d.comb += pod.go.eq((state == S_SETUP) & has)
        with m.If(state == S_SETUP):
            m.d.sync += [mt.eq(mt_c), kt.eq(kt_c), nt.eq(nt_c), m_size.eq(m_size_c), launched.eq(Cat(*work)),
                         state.eq(S_RUN)]

        # RUN: leave at the edge of the first cycle in which every pod is idle (the SYNC cycle)
        with m.If((state == S_RUN) & ~Cat(*[pod.busy for pod in pods]).any()):
            m.d.sync += state.eq(Mux(sp_k, S_REDUCE, S_DONE))

        for p, pod in enumerate(pods):
            for r in range(R):
                m.d.comb += [self.a_raddr[p][r].eq(pod.a_raddr[r]), self.a_ren[p][r].eq(pod.a_ren[r]),
                             pod.a_rdata[r].eq(self.a_rdata[p][r])]
            for c in range(C):
                m.d.comb += [self.b_raddr[p][c].eq(pod.b_raddr[c]), self.b_ren[p][c].eq(pod.b_ren[c]),
                             pod.b_rdata[c].eq(self.b_rdata[p][c]), pod.c_rdata[c].eq(self.c_rdata[p][c])]
                m.d.comb += [self.c_raddr[p][c].eq(pod.c_raddr[c]), self.c_ren[p][c].eq(pod.c_ren[c]),
                             self.c_waddr[p][c].eq(pod.c_waddr[c]), self.c_we[p][c].eq(pod.c_we[c]),
                             self.c_wdata[p][c].eq(pod.c_wdata[c])]
        if P > 1:
            self._reduce(m, state, mq, nq, nt, launched, pods)
        return m

    def _reduce(self, m: Module, state: Signal, mq: Signal, nq: Signal, nt: Signal, launched: Signal,
                pods: list[Pod]) -> None:
        """REDUCE (split k, several pods): cycle q reads row q // Nt, panel q % Nt of every launched pod's C
        bank; cycle q + 1 writes their sum to pod 0's bank. Overrides the pods' C ports while in REDUCE."""
        g = self.g
        P, C = g.pods, g.cols
        tw = len(nt)
        ca = len(self.c_raddr[0][0])
        r_row, r_pan = Signal(len(self.m)), Signal(tw)
        r_issue = (state == S_REDUCE) & (r_row < mq)
        r_addr = Signal(ca)
        m.d.comb += r_addr.eq(r_row * g.nb + r_pan)
        w_valid, w_addr, w_cols = Signal(), Signal(ca), Signal(C)
        m.d.sync += [w_valid.eq(r_issue), w_addr.eq(r_addr),
                     w_cols.eq(Cat(*[r_pan * C + c < nq for c in range(C)]))]
        with m.If(state == S_SETUP):
            m.d.sync += [r_row.eq(0), r_pan.eq(0)]
        with m.If(r_issue):
            with m.If(r_pan + 1 == nt):
                m.d.sync += [r_pan.eq(0), r_row.eq(r_row + 1)]
            with m.Else():
                m.d.sync += r_pan.eq(r_pan + 1)
        with m.If((state == S_REDUCE) & ~r_issue):
            m.d.sync += state.eq(S_DONE)  # the cycle that writes the last sum
        with m.If(state == S_REDUCE):
            for c in range(C):
                for p in range(P):
                    m.d.comb += [self.c_raddr[p][c].eq(r_addr), self.c_ren[p][c].eq(r_issue)]
                total = sum((Mux(launched[q], self.c_rdata[q][c], 0) for q in range(P)), Const(0, 1))
                m.d.comb += [self.c_waddr[0][c].eq(w_addr), self.c_we[0][c].eq(w_valid & w_cols[c]),
                             self.c_wdata[0][c].eq(total)]


# ------------------------------------------------------------------------------------------ top
class MultiPodArray(wiring.Component):
    """A GEMM accelerator: ``pods`` systolic arrays of ``rows x cols`` PEs, their buffers and a controller.

    ``Cout[M x N] = A[M x K] x B[K x N]`` for any 1 <= M <= m_max, K <= k_max, N <= n_max; ``Cout`` is the
    exact sum of the products the PE multipliers return, modulo 2^acc_bits. Timing: RTL_TIMING.md.

    Host ports (all sampled at the rising edge of ``clk``; ``rst`` is synchronous):

    ============================ ====== ==================================================================
    port                         dir    latency / rule
    ============================ ====== ==================================================================
    a_we, a_row, a_col, a_data   in     ``A[a_row][a_col] <= a_data`` at the edge where a_we = 1, one
                                        element per cycle, only while idle (ignored while busy); every
                                        pod's copy is written
    b_we, b_row, b_col, b_data   in     the same for ``B[b_row][b_col]``
    m, k, n                      in     GEMM size, 1 <= m <= m_max etc.; sampled with ``start``
    split                        in     0 = n, 1 = m, 2 = k (section 5), sampled with ``start``; with one
                                        pod every split is the same schedule (3 acts as 0)
    start                        in     sampled while idle (``busy`` = 0); ignored while busy
    busy                         out    registered; 1 from the edge that samples ``start`` until ``done``
    done                         out    registered; rises ``rtl_cycles.gemm_cycles(...)`` edges after the
                                        edge that sampled ``start``, stays 1 until the next ``start``
    c_row, c_col                 in     read address of ``Cout``
    c_data                       out    ``Cout[c_row][c_col]`` one cycle after the address (registered);
                                        valid while ``done`` = 1 (acc_bits wide, two's complement)
    ============================ ====== ==================================================================

    Buffers (synchronous-read RAMs, per pod): A in ``rows`` banks (ws: by k mod R, os: by m mod R),
    B and C in ``cols`` banks (by n mod C); ``buffer_bits`` of the geometry gives their capacity.
    """

    def __init__(self, g: Geometry, mult: MultSpec, *, core_module: str, pe_module: str):
        self.g, self.mult, self.core_module, self.pe_module = g, mult, core_module, pe_module
        mw, kw, nw = bits_for(g.m_max), bits_for(g.k_max), bits_for(g.n_max)
        ra, ka, na = addr_bits(g.m_max), addr_bits(g.k_max), addr_bits(g.n_max)
        super().__init__({
            "a_we": In(1), "a_row": In(ra), "a_col": In(ka), "a_data": In(g.wa),
            "b_we": In(1), "b_row": In(ka), "b_col": In(na), "b_data": In(g.wb),
            "m": In(mw), "k": In(kw), "n": In(nw), "split": In(2), "start": In(1),
            "busy": Out(1), "done": Out(1),
            "c_row": In(ra), "c_col": In(na), "c_data": Out(g.acc_bits),
            **({"skip": In(g.skip_bits)} if g.tile_skip else {}),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        g = self.g
        P, R, C = g.pods, g.rows, g.cols
        core = _template(ArrayCore(g, self.mult, self.pe_module))
        conn: dict[str, Signal] = {}
        for path, member, _ in core.signature.flatten(core):
            name = "__".join(str(p) for p in path)
            shape = member.shape
            conn[name] = Signal(shape, name=f"core_{name}")
        for name in ("start", "m", "k", "n", "split", *(("skip",) if g.tile_skip else ())):
            m.d.comb += conn[name].eq(getattr(self, name))
        m.d.comb += [self.busy.eq(conn["busy"]), self.done.eq(conn["done"])]
        m.submodules.core = _instance(self.core_module, core, conn)
        busy = conn["busy"]
        rst = ResetSignal()  # buffers are read during reset, so their outputs are never undefined

        # host write decode (ws: A banked by column, os: by row)
        if g.dataflow == "ws":
            a_bank, a_addr = self.a_col % R, self.a_row * g.kb + self.a_col // R
        else:
            a_bank, a_addr = self.a_row % R, (self.a_row // R) * g.k_max + self.a_col
        b_bank, b_addr = self.b_col % C, self.b_row * g.nb + self.b_col // C
        c_bank, c_addr = self.c_col % C, self.c_row * g.nb + self.c_col // C

        # host read: which pod holds Cout[c_row][c_col] (RTL_TIMING.md section 5)
        c_pod = Signal(range(P))
        if P > 1:
            split, m_size = conn["split_q"], conn["m_size"]
            by_m = (sum((self.c_row >= p * m_size for p in range(1, P)), Const(0, 1)) if g.dataflow == "ws"
                    else (self.c_row // R) % P)
            m.d.comb += c_pod.eq(Mux(split == 1, by_m, Mux(split == 2, 0, (self.c_col // C) % P)))
        sel_pod, sel_bank = Signal(range(P)), Signal(range(C))
        m.d.sync += [sel_pod.eq(c_pod), sel_bank.eq(c_bank)]
        c_words = []
        for p in range(P):
            for r in range(R):
                mem = memory.Memory(shape=unsigned(g.wa), depth=g.a_depth, init=[])
                m.submodules[f"a_p{p}_b{r}"] = mem
                wp, rp = mem.write_port(), mem.read_port()
                m.d.comb += [wp.addr.eq(a_addr), wp.data.eq(self.a_data), wp.en.eq(self.a_we & ~busy & (a_bank == r)),
                             rp.addr.eq(conn[f"a_raddr__{p}__{r}"]), rp.en.eq(conn[f"a_ren__{p}__{r}"] | rst),
                             conn[f"a_rdata__{p}__{r}"].eq(rp.data)]
            for c in range(C):
                mem = memory.Memory(shape=unsigned(g.wb), depth=g.b_depth, init=[])
                m.submodules[f"b_p{p}_b{c}"] = mem
                wp, rp = mem.write_port(), mem.read_port()
                m.d.comb += [wp.addr.eq(b_addr), wp.data.eq(self.b_data), wp.en.eq(self.b_we & ~busy & (b_bank == c)),
                             rp.addr.eq(conn[f"b_raddr__{p}__{c}"]), rp.en.eq(conn[f"b_ren__{p}__{c}"] | rst),
                             conn[f"b_rdata__{p}__{c}"].eq(rp.data)]
                mem = memory.Memory(shape=unsigned(g.acc_bits), depth=g.c_depth, init=[])
                m.submodules[f"c_p{p}_b{c}"] = mem
                wp, rp = mem.write_port(), mem.read_port()
                m.d.comb += [wp.addr.eq(conn[f"c_waddr__{p}__{c}"]), wp.data.eq(conn[f"c_wdata__{p}__{c}"]),
                             wp.en.eq(conn[f"c_we__{p}__{c}"]),
                             rp.addr.eq(Mux(busy, conn[f"c_raddr__{p}__{c}"], c_addr)),
                             rp.en.eq(Mux(busy, conn[f"c_ren__{p}__{c}"], 1)),
                             conn[f"c_rdata__{p}__{c}"].eq(rp.data)]
                c_words.append((p, c, rp.data))
        with m.Switch(Cat(sel_bank, sel_pod)):
            for p, c, word in c_words:
                with m.Case(c | (p << len(sel_bank))):
                    m.d.comb += self.c_data.eq(word)
        return m


# ------------------------------------------------------------------------------------------ Verilog
PARTS = ("mult", "pe", "core", "top")
# Lint waivers of array.v (Amaranth's back end writes the Verilog; these are properties of its output)
ARRAY_WAIVERS = {
    "WIDTH": "Amaranth's Verilog back end leaves operand extension and truncation to Verilog's rules "
             "(e.g. a 2-bit state compared with 1'h1); the semantics are Amaranth's, verified cycle-exactly",
    "UNUSEDSIGNAL": "the back end keeps intermediate wires and unused bits of its cells (e.g. the high "
                    "bits of a sum that is truncated)",
    "LITENDIAN": "a zero-width signal (the pod index of a one-pod array) is written [-1:0]; it is never read",
    "DECLFILENAME": "array.v holds every module of the array, none of them named array",
    "UNSIGNED": "with one PE row or column a loop bound is 0 and a comparison such as cnt < 0 is constantly "
                "false, as the schedule wants",
    "CASEINCOMPLETE": "a read-back multiplexer decodes only the (pod, bank) codes that exist; its output is "
                      "set to 0 before the case, so the other codes read 0",
}
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOP_ATTR = re.compile(r"^\(\*\s*top\s*=\s*1\s*\*\)\s*\n", re.M)


def _rename_modules(text: str, mapping: dict[str, str]) -> str:
    """``text`` with every module named in ``mapping`` renamed, definitions and instantiations."""
    for old, new in mapping.items():
        text = re.sub(rf"(?<![\w$\\.'`]){re.escape(old)}(?![\w$])", new, text)
    return text


@dataclass(frozen=True)
class Design:
    """The Verilog of one configuration, module by module (each through Amaranth's back end).

    Every module name starts with ``prefix`` (by default the geometry's name and a hash of the
    configuration and the multiplier's Verilog), so two arrays, or an array and the ``approx.v`` its
    multiplier came from, live in one design: the multiplier is shipped under the prefix too
    (``<prefix>_mult``, its Verilog otherwise unchanged). Only the top carries ``(* top = 1 *)``.
    """

    geometry: Geometry
    mult: MultSpec
    top: str
    core: str
    pe: str
    modules: tuple[tuple[str, str], ...]  # (part, Verilog) in dependency order: mult, pe, core, top
    mult_module: str = ""  # the multiplier's name inside this design

    def text(self, parts: tuple[str, ...] = PARTS) -> str:
        from core.verilog import TIMESCALE, explanation, waived

        # each part in its own waivers: a shipped approx.v switches its own waivers on again at its end
        body = "\n".join(waived(v, ARRAY_WAIVERS, explain=False) for part, v in self.modules if part in parts)
        return "\n".join([TIMESCALE, *explanation(ARRAY_WAIVERS), body])

    def write(self, path: Path, parts: tuple[str, ...] = PARTS) -> Path:
        path.write_text(self.text(parts), encoding="utf-8")
        return path


def default_prefix(g: Geometry, mult: MultSpec) -> str:
    """``<geometry name>_<hash>``: the hash covers every setting of ``g`` and the multiplier's Verilog."""
    fields = astuple(g) if g.tile_skip else astuple(g)[:-1]  # names of arrays without the option unchanged
    h = hashlib.sha256(repr(fields).encode() + b"\0" + mult.verilog.encode()).hexdigest()[:8]
    return f"{g.name}_{h}"


def generate(g: Geometry, mult: MultSpec, prefix: str | None = None) -> Design:
    """Verilog of the multiplier, the PE, the core (controller, pods, arrays) and the top with its buffers.

    ``prefix``: the top's name and the start of every other module's (default :func:`default_prefix`).
    """
    if (mult.wa, mult.wb, mult.signed) != (g.wa, g.wb, g.signed):
        raise ConfigError(f"the multiplier {mult.label} is {mult.wa}x{mult.wb} "
                          f"{'signed' if mult.signed else 'unsigned'}, the array "
                          f"{g.wa}x{g.wb} {'signed' if g.signed else 'unsigned'}")
    if prefix is None:
        prefix = default_prefix(g, mult)
    elif not isinstance(prefix, str) or not IDENTIFIER.fullmatch(prefix):
        raise must("PREFIX", "a Verilog identifier (letters, digits and _, not starting with a digit)", prefix)
    top = prefix
    pe_name, core_name, mult_name = f"{top}_pe", f"{top}_core", f"{top}_mult"
    defined = re.findall(r"^\s*module\s+([A-Za-z_][\w$]*)", mult.verilog, re.M)
    mapping = {m: (mult_name if m == mult.module else f"{mult_name}_{m}") for m in defined}
    shipped = replace(mult, module=mult_name, verilog=_rename_modules(_TOP_ATTR.sub("", mult.verilog), mapping))
    pe = verilog.convert(ProcessingElement(g.dataflow, shipped, g.acc_bits), name=pe_name, emit_src=False)
    core = verilog.convert(ArrayCore(g, shipped, pe_name), name=core_name, emit_src=False)
    top_v = verilog.convert(MultiPodArray(g, shipped, core_module=core_name, pe_module=pe_name), name=top,
                            emit_src=False)
    header = (f"// {mult_name}: the PE multiplier "
              f"({'exact, Amaranth' if mult.exact else f'evolved, {mult.module} from {mult.run_dir}/approx.v'}; "
              "module names prefixed, nothing else changed)\n")
    return Design(g, mult, top, core_name, pe_name,
                  (("mult", header + shipped.verilog), ("pe", _TOP_ATTR.sub("", pe)),
                   ("core", _TOP_ATTR.sub("", core)), ("top", top_v)), mult_name)
