"""The configuration that fixes an array's hardware (:class:`Geometry`) and the sizes derived from it."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError, must

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

