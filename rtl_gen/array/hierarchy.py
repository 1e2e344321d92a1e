"""Instances of separately generated modules: a component stands for its module's ports only."""

from __future__ import annotations

from amaranth import ClockSignal, Instance, ResetSignal
from amaranth.lib import wiring
from amaranth.lib.wiring import In


def template(component: wiring.Component) -> wiring.Component:
    """A component used only for its signature (its Verilog is generated separately)."""
    component._MustUse__silence = True
    return component


def instance(module: str, component: wiring.Component, connect: dict[str, object]) -> Instance:
    """An ``Instance`` of ``module`` (the Verilog of ``component``), ports named as Amaranth names them."""
    kwargs: dict[str, object] = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
    for path, member, _ in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        kwargs[("i_" if member.flow == In else "o_") + name] = connect[name]
    return Instance(module, **kwargs)

