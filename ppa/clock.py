"""The clock period at which power is simulated and reported, and the period of the timing simulation.

**Clock period.** Power is energy per operation times operations per second, so it is reported at a
clock period: one operand pair (or one array cycle) per period. Given by the user (``--clock-period``),
it must be at least the STA delay of the exact design on the technology, else the design could not run
at it (:func:`check`, a one-line :class:`~core.errors.ConfigError`). Not given, it is *derived*
(:func:`derive`): ``MARGIN`` x the STA delay of the slower of the exact and the evolved design,
rounded up to a whole nanosecond. The report records the period and how it was chosen.

**Simulation period.** The gate-level timing simulation that measures switching activity holds each
operand pair (or clock cycle) for the simulation period. Activity is counted per period, so any period
in which every net settles gives the same toggle counts; it need not be the clock period. It matters
where the cells' Verilog models have delays other than the Liberty's: GF180MCU's give every arc 1 ns,
so an 8x8 multiplier whose STA delay is 10.9 ns settles only after some 30 ns in simulation. Not given
(``--sim-period``), it is derived from a probe: the exact design is simulated at ``PROBE_FACTOR`` x
the clock period (event-driven simulation costs the same at any period) and the last output change
within a period is its settling time; the simulation period is the clock period when the models settle
within it, else ``MARGIN`` x the settling time rounded up to a whole nanosecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError

MARGIN = 1.25  # derived period = MARGIN x delay, rounded up to a whole ns
PROBE_FACTOR = 8  # the settling probe holds each vector for this many clock periods
ARRAY_SIM_MARGIN = 2.0  # arrays: sim period = this x the clock x (settling / STA delay of the exact multiplier)


CLOCK_HELP = ("clock period at which power is simulated and reported; at least the exact design's STA delay "
              "(default: derived, 1.25 x the STA delay of the slower design rounded up to a whole ns)")
SIM_HELP = ("period per operand pair of the gate-level power simulation (default: the clock period, longer when "
            "the cell models settle more slowly, e.g. GF180's 1 ns per arc)")


def check_periods(clock_period: float | None, sim_period: float | None) -> None:
    """The user's ``--clock-period`` and ``--sim-period`` (None: derived): :func:`core.config.check_clock`."""
    from core.config import check_clock

    check_clock(clock_period, sim_period)


def derive(delay_ns: float) -> float:
    """``MARGIN`` x ``delay_ns`` rounded up to a whole nanosecond (at least 1 ns)."""
    return float(max(1, math.ceil(MARGIN * delay_ns - 1e-9)))


def check(clock_period_ns: float, delay_ns: float, what: str) -> None:
    """A clock period set by the user must fit the exact design's STA delay."""
    if clock_period_ns < delay_ns:
        raise ConfigError(f"--clock-period must be at least the STA delay of {what} ({delay_ns:.4g} ns), "
                          f"not {clock_period_ns:g} ns (leave it out to derive it)")


@dataclass(frozen=True)
class Periods:
    """The clock and simulation periods of a run and how each was chosen."""

    clock_period_ns: float
    clock_period_source: str  # "user" or "derived"
    delay_ns: float  # the STA delay the clock period was derived from or checked against
    sim_period_ns: float
    sim_period_source: str  # "user", "clock" (the models settle within it), "derived" or "derived-ratio"
    settle_ns: float | None = None  # the exact design's (arrays: multiplier's) settling time in the probe

    def as_report(self) -> dict[str, object]:
        how = (f"set by the user (--clock-period), at least the STA delay {self.delay_ns:.4g} ns"
               if self.clock_period_source == "user" else
               f"derived: {MARGIN:g} x the STA delay {self.delay_ns:.4g} ns of the slower of the exact and "
               f"the approximate design, rounded up to a whole ns")
        sim = {"user": "set by the user (--sim-period)",
               "clock": "the clock period: the cell models settle within it",
               "derived": f"derived: {MARGIN:g} x the settling time of the exact design in the timing "
                          f"simulation, rounded up to a whole ns (the cell models are slower than the "
                          f"Liberty)",
               "derived-ratio": f"derived: {ARRAY_SIM_MARGIN:g} x the clock period x the ratio of the exact "
                                f"multiplier's settling time in a timing simulation to its STA delay, rounded "
                                f"up to a whole ns (the cell models are slower than the Liberty)",
               }[self.sim_period_source]
        return {"clock_period_ns": self.clock_period_ns, "clock_period_source": self.clock_period_source,
                "clock_period_how": how, "clock_delay_ns": self.delay_ns, "sim_period_ns": self.sim_period_ns,
                "sim_period_source": self.sim_period_source, "sim_period_how": sim, "sim_settle_ns": self.settle_ns}


def clock_period(user_ns: float | None, delay_ns: float, what: str) -> tuple[float, str]:
    """The clock period: the user's, checked against ``delay_ns``, or derived from it."""
    if user_ns is None:
        return derive(delay_ns), "derived"
    check(user_ns, delay_ns, what)
    return user_ns, "user"


def sim_period(user_ns: float | None, clock_ns: float, settle_ns: float | None) -> tuple[float, str]:
    """The simulation period: the user's, the clock period, or derived from a measured settling time."""
    if user_ns is not None:
        return user_ns, "user"
    if settle_ns is None or settle_ns <= clock_ns:
        return clock_ns, "clock"
    return max(clock_ns, derive(settle_ns)), "derived"


def array_sim_period(user_ns: float | None, clock_ns: float, mult_delay_ns: float | None,
                     mult_settle_ns: float | None) -> tuple[float, str]:
    """The simulation period of a clocked array: the user's; the clock period when the exact multiplier
    settles within its derived period; else scaled by how much slower the models are than the Liberty
    (there is no settling probe of a whole array: its simulation is the expensive step)."""
    if user_ns is not None:
        return user_ns, "user"
    if mult_settle_ns is None or mult_delay_ns is None or mult_settle_ns <= derive(mult_delay_ns):
        return clock_ns, "clock"
    ratio = mult_settle_ns / mult_delay_ns
    return max(clock_ns, float(math.ceil(ARRAY_SIM_MARGIN * ratio * clock_ns - 1e-9))), "derived-ratio"


def settle_time_ns(vcd_path: Path, signal_prefix: str, n_vectors: int, period_ps: int) -> float:
    """The latest change of any signal named ``signal_prefix*`` within a vector's period, over the
    first ``n_vectors`` periods of a VCD (inputs change at the start of each period)."""
    from vcdvcd import VCDVCD

    vcd = VCDVCD(str(vcd_path), store_tvs=True)
    latest = 0
    t_end = n_vectors * period_ps
    for name in vcd.references_to_ids:
        if not name.startswith(signal_prefix):
            continue
        for t, _value in vcd[name].tv:
            if t >= t_end:
                break
            latest = max(latest, int(t) % period_ps)
    return latest / 1000.0
