"""OpenSTA: critical-path delay and total power of a mapped netlist.

Exposes :func:`available`, :func:`version` and :func:`run`, plus :func:`analyse`.

Power uses switching activity *measured* per net (from the VCD of a gate-level simulation, see
:mod:`ppa.activity`). The Debian OpenSTA (2019) cannot read a VCD, and it re-derives the activity of
every internal pin by probabilistic propagation from the primary inputs, overwriting activities set
on internal pins (``set_power_activity -pins`` also has a Tcl bug there). Propagation assumes
independent inputs, which reconvergent fan-out in a multiplier violates. So the flow asks OpenSTA
for each instance's power at unit activity (``set_power_activity -global -activity 1``: one
transition per clock period on every pin), whose dynamic part is linear in the activity, and scales it
by the measured activity of the net the instance drives (for a cell with several connected outputs, a
full adder's sum and carry, the mean of their activities):

    P = sum_i  alpha_i * (P_internal,i + P_switching,i)|alpha=1  +  P_leakage,i

OpenSTA's own vectorless estimate (measured activities on the input ports, ``set_power_activity
-input_ports``, propagated by OpenSTA) is reported next to it as ``power_vectorless_w``.

**Clocked designs** (``clock_port``): the clock is a real clock on that port, inputs and outputs are
constrained against it, so the longest path is register to register (or port to register) and
``min_period_ns`` is the clock period minus the worst slack. Sequential cells need care: OpenSTA
gives a clock pin the clock's own activity (two transitions per period) whatever ``-global`` says,
so a flip-flop's power at unit activity holds a clock-pin part that does not depend on how often its
data changes. Scaling all of it by the output's activity would make an idle register free. So each
instance's power is also asked at zero global activity: what is left there (internal power of clock
pins; zero for combinational cells) is counted once per period as it is, and only the difference is
scaled by the activity of the net the instance drives:

    P = sum_i  P_clock,i  +  alpha_i * (P_i|alpha=1 - P_clock,i)  +  P_leakage,i

(``P_clock`` = dynamic power at ``-global -activity 0``). The data part of a flip-flop (D-pin and
Q internal power, the Q net) is scaled by its output's activity, which for a register equals its
captured input activity (glitches on D that are not captured are not counted). There is no clock
tree: the clock net's wiring and buffers, which depend on clock-tree synthesis, are not in the total.
No vectorless estimate is made for clocked designs (OpenSTA 2019 crashes propagating activities
around register feedback loops).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from core import tools
from core.errors import ConfigError, ToolError
from core.run import RunDir, tail
from tech import Technology

_UNITS = {"1ps": 1e-3, "10ps": 1e-2, "100ps": 0.1, "1ns": 1.0, "10ns": 10.0, "1us": 1e3}


def available() -> bool:
    return tools.STA.available()


def version() -> str:
    return tools.STA.version()


def run(run_dir: RunDir, script: str, *, step: str) -> Path:
    """Run an OpenSTA Tcl script (kept next to the logs); returns the log path.

    OpenSTA reports a failing command (an unreadable Liberty file, a design that does not link, a Tcl
    error) as an ``Error: ...`` line, carries on with the next one and exits 0: such a line is a
    :class:`ToolError` naming the first error.
    """
    exe = tools.STA.require()
    path = run_dir.logs / f"{step}.tcl"
    path.write_text(script, encoding="utf-8")
    log = run_dir.run("OpenSTA", [exe, "-no_splash", "-exit", str(path.resolve())], step=step)
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    errors = [line.strip() for line in lines if _ERROR.match(line)]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ToolError("OpenSTA", 0, log, tail(log), reason=f"{errors[0]}{more}")
    return log


_ERROR = re.compile(r"^Error: ")


@dataclass(frozen=True, kw_only=True)
class StaResult:
    delay_ns: float
    clock_period_ns: float
    power_w: float | None = None
    power_dynamic_w: float | None = None
    power_leakage_w: float | None = None
    power_vectorless_w: float | None = None
    # instance -> (its connected output nets, internal, switching at unit activity, leakage)
    instances: dict[str, tuple[tuple[str, ...], float, float, float]] = field(default_factory=dict, repr=False)
    power_clock_w: float | None = None  # clocked designs: the clock-pin part (in power_dynamic_w)
    min_period_ns: float | None = None  # clocked designs: period - worst slack
    instance_power_w: dict[str, float] = field(default_factory=dict, repr=False)  # measured, per instance

    @property
    def energy_pj(self) -> float | None:
        """Energy per operation: one operation per clock period."""
        return None if self.power_w is None else self.power_w * self.clock_period_ns * 1e3


def _tcl_word(text: str) -> str:
    if not re.fullmatch(r"[\w./+-]+", text):
        raise ConfigError(f"{text!r} cannot be passed to OpenSTA (use a path without spaces or quotes)")
    return text


def analyse(run_dir: RunDir, netlist: Path, top: str, tech: Technology, *, clock_period_ns: float,
            activity: dict[str, tuple[float, float]] | None = None,
            input_activity: dict[str, tuple[float, float]] | None = None,
            input_transition_ns: float = 0.1, step: str = "sta", clock_port: str | None = None) -> StaResult:
    """Delay of the longest path and, with measured ``activity`` (net -> (toggles per clock period,
    duty)), the total power at ``clock_period_ns``.

    ``clock_port``: the design is clocked by that port (see the module docstring); otherwise it is
    combinational and timed against a virtual clock."""
    scale = _UNITS.get(tech.time_unit.replace(" ", "").lower())
    if scale is None:
        raise ConfigError(f"Liberty time_unit {tech.time_unit!r} is not supported (choices: {', '.join(_UNITS)})")
    period = clock_period_ns / scale
    lines = [
        f"read_liberty {_tcl_word(str(tech.liberty))}",
        f"read_verilog {_tcl_word(str(Path(netlist).resolve()))}",
        f"link_design {_tcl_word(top)}",
    ]
    if clock_port is None:
        lines += [f"create_clock -name vclk -period {period}",
                  "set_input_delay 0 -clock vclk [all_inputs]",
                  "set_output_delay 0 -clock vclk [all_outputs]"]
    else:
        clk = _tcl_word(clock_port)
        lines += [f"create_clock -name clk -period {period} [get_ports {clk}]",
                  f"set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports {clk}]]",
                  "set_output_delay 0 -clock clk [all_outputs]"]
    lines += [
        f"set_load {tech.default_load} [all_outputs]",
        f"set_input_transition {input_transition_ns / scale} [all_inputs]",
        "set axf_paths [find_timing_paths -path_delay max -group_count 1]",
        "if {[llength $axf_paths]} { set axf_p [lindex $axf_paths 0]; "
        "puts \"AXF_DELAY [$axf_p data_arrival_time] [$axf_p slack]\" } else { puts \"AXF_DELAY 0 0\" }",
    ]
    if activity is not None:
        for port, (act, duty) in sorted((input_activity or {}).items()):
            lines.append(f"set_power_activity -input_ports [get_ports {{{port}}}] -activity {act:.6g} "
                         f"-duty {min(max(duty, 0.0), 1.0):.6g}")
        if clock_port is None:  # OpenSTA 2019's propagation crashes on register feedback loops
            lines.append("puts \"AXF_VECTORLESS [lindex [sta::design_power [sta::cmd_corner]] 3]\"")
        lines += [
            "set_power_activity -global -activity 1.0 -duty 0.5",
            "foreach inst [get_cells *] {",
            "  foreach pin [get_pins -of_objects $inst] {",  # one line per connected output: any net name
            "    if {[get_property $pin direction] == \"output\"} {",
            "      set net [get_nets -of_objects $pin]",
            "      if {$net != {} && $net != \"NULL\"} {",  # NULL: unconnected
            "        puts \"AXF_OUT [get_full_name $inst] [get_full_name $net]\"",
            "      }",
            "    }",
            "  }",
            "  set p [sta::instance_power $inst [sta::cmd_corner]]",
            "  puts \"AXF_INST [get_full_name $inst] [lindex $p 0] [lindex $p 1] [lindex $p 2]\"",
            "}",
        ]
        if clock_port is not None:
            lines += [
                "set_power_activity -global -activity 0.0 -duty 0.5",
                "foreach inst [get_cells *] {",
                "  set p [sta::instance_power $inst [sta::cmd_corner]]",
                "  if {[lindex $p 0] != 0 || [lindex $p 1] != 0} {",
                "    puts \"AXF_CLK [get_full_name $inst] [lindex $p 0] [lindex $p 1]\"",
                "  }",
                "}",
            ]
    log = run(run_dir, "\n".join(lines) + "\n", step=step)
    text = log.read_text(encoding="utf-8", errors="replace")
    m = re.search(r"^AXF_DELAY (\S+) (\S+)$", text, re.M)
    if not m:
        raise ToolError("OpenSTA", 0, log, text.splitlines()[-10:],
                        reason="its script printed no AXF_DELAY line (no timing path was reported)")
    delay_ns = float(m.group(1)) * 1e9
    min_period = clock_period_ns - float(m.group(2)) * 1e9 if clock_port is not None else None
    if activity is None:
        return StaResult(delay_ns=delay_ns, clock_period_ns=clock_period_ns, min_period_ns=min_period)
    clocked = {inst: float(i) + float(s) for inst, i, s in re.findall(r"^AXF_CLK (\S+) (\S+) (\S+)$", text, re.M)}
    outputs: dict[str, list[str]] = {}
    for inst, net in re.findall(r"^AXF_OUT (\S+) (\S+)$", text, re.M):
        outputs.setdefault(inst, []).append(net.replace("\\", ""))
    instances: dict[str, tuple[tuple[str, ...], float, float, float]] = {}
    per_inst: dict[str, float] = {}
    dynamic = leakage = clock = 0.0
    unmatched = []
    for inst, internal, switching, leak in re.findall(r"^AXF_INST (\S+) (\S+) (\S+) (\S+)$", text, re.M):
        i, s, lk = float(internal), float(switching), float(leak)
        nets = outputs.get(inst, [])
        instances[inst] = (tuple(nets), i, s, lk)
        unmatched += [n for n in nets if n not in activity]
        # several outputs: the mean activity (module docstring); OpenSTA 2019 gives no per-pin power
        alpha = sum(activity.get(n, (0.0, 0.0))[0] for n in nets) / len(nets) if nets else 0.0
        fixed = clocked.get(inst, 0.0)
        p_dyn = fixed + alpha * (i + s - fixed)
        per_inst[inst] = p_dyn + lk
        dynamic += p_dyn
        clock += fixed
        leakage += lk
    if unmatched:
        raise ConfigError(f"no switching activity was measured for net {unmatched[0]} "
                          f"({len(unmatched)} nets unmatched between the VCD and the netlist)")
    vl = re.search(r"^AXF_VECTORLESS (\S+)$", text, re.M)
    vectorless = float(vl.group(1)) if vl else math.nan
    return StaResult(delay_ns=delay_ns, clock_period_ns=clock_period_ns, power_w=dynamic + leakage,
                     power_dynamic_w=dynamic, power_leakage_w=leakage, power_vectorless_w=vectorless,
                     instances=instances, power_clock_w=clock if clock_port is not None else None,
                     min_period_ns=min_period, instance_power_w=per_inst)
