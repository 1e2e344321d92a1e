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
Modules, one per component (each imports only the ones above it in this list)::

    geometry     Geometry: shape, pods, dataflow, widths, buffer sizes
    mult         MultSpec: the PE multiplier, exact or an evolved run's approx.v
    hierarchy    instances of separately generated modules
    pe           ProcessingElement (``ws`` or ``os``)
    systolic     SystolicArray (``rows x cols`` PEs)
    pod          Pod: tile sequencer, feeders, output unit
    controller   ArrayCore: top controller, pods, REDUCE (no memories: the part synthesised for PPA)
    top          MultiPodArray: the accelerator with its buffers and host interface
    design       Design and generate(): the Verilog of every module of one configuration

This package re-exports what callers use (``from rtl_gen import array as arr; arr.generate(...)``).
"""

from rtl_gen.array.controller import ArrayCore
from rtl_gen.array.design import ARRAY_WAIVERS, IDENTIFIER, PARTS, Design, default_prefix, generate
from rtl_gen.array.geometry import DATAFLOWS, MAX_DIM, MAX_GEMM, MAX_PES, SPLITS, Geometry, ceil_div
from rtl_gen.array.mult import MultSpec, evolved_multiplier, exact_multiplier, load_multiplier, verilog_ports
from rtl_gen.array.pe import ProcessingElement
from rtl_gen.array.pod import Pod
from rtl_gen.array.systolic import SystolicArray
from rtl_gen.array.top import MultiPodArray
from rtl_gen.multiplier import MAX_WIDTH, MIN_WIDTH

__all__ = [
    "ARRAY_WAIVERS", "DATAFLOWS", "IDENTIFIER", "MAX_DIM", "MAX_GEMM", "MAX_PES", "MAX_WIDTH", "MIN_WIDTH",
    "PARTS", "SPLITS", "ArrayCore", "Design", "Geometry", "MultSpec", "MultiPodArray", "Pod", "ProcessingElement",
    "SystolicArray", "ceil_div", "default_prefix", "evolved_multiplier", "exact_multiplier", "generate", "load_multiplier",
    "verilog_ports",
]
