"""Proofs of a multiplier netlist's worst-case error: ``|y(a, b) - a*b| <= T`` for *every* input pair.

Two methods, one contract (:func:`check` proves a bound or refutes it with a counterexample,
:func:`exact_wce` finds the WCE and proves it):

* ``exhaustive``: every one of the 2^(wa+wb) input pairs is simulated, 64 to a machine word, by a
  compiled kernel that also measures the error of each lane; a bound check stops at the first pair
  that breaks the bound. It is chosen where the pairs fit the time limit (2^24 pairs take about a
  second; its speed is measured on the first block and the rest projected).
* ``sat``: a miter in CNF, solved by CaDiCaL (python-sat): the approximate netlist and the exact
  reference (the synthesised exact seed, which Yosys proved equal to the RTL, or a shift-and-add
  multiplier built here) share one structurally hashed graph, so the logic the search left alone
  is one node; then ``D = Y - P`` in wa+wb+1 bits, and ``D > T or D < -T``. UNSAT proves the bound,
  a model is a counterexample (re-simulated before it is believed). The exact WCE is found by
  ascending over the counterexamples' errors with one incremental solver.

A proof that does not finish within its ``timeout`` says so (``status == "unknown"``): callers
reject the candidate, never accept it. Netlists are read through the :class:`GateNetlist` protocol
(the evolution's ``Netlist`` is one): addresses 0 and 1 are constants, then a's bits, b's bits and
the gates ``AND NAND OR NOR XOR XNOR NOT`` (codes 0..6) in topological order.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numba as nb
import numpy as np

from core import golden

METHODS = ("auto", "exhaustive", "sat")
SOLVER = "cadical195"
BLOCK_WORDS = 1 << 12  # 262,144 input pairs per scanned block
VIOLATIONS = 16  # counterexamples a refuting scan returns: the first it meets in its block
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_LANE = np.array([0xAAAAAAAAAAAAAAAA, 0xCCCCCCCCCCCCCCCC, 0xF0F0F0F0F0F0F0F0, 0xFF00FF00FF00FF00,
                  0xFFFF0000FFFF0000, 0xFFFFFFFF00000000], dtype=np.uint64)


class GateNetlist(Protocol):
    wa: int
    wb: int
    signed: bool
    func: np.ndarray
    in0: np.ndarray
    in1: np.ndarray
    out: np.ndarray

    @property
    def first(self) -> int: ...


@dataclass(frozen=True)
class Counterexample:
    """An input pair and what the circuit makes of it."""

    a_code: int
    b_code: int
    a: int
    b: int
    y: int
    exact: int

    @property
    def error(self) -> int:
        return abs(self.y - self.exact)

    def as_report(self) -> dict[str, int]:
        return {"a": self.a, "b": self.b, "y": self.y, "exact": self.exact, "error": self.error}


def vector_of(cex: Counterexample, wb: int) -> int:
    return (cex.a_code << wb) | cex.b_code


def refuting_vectors(proof: Proof, wb: int) -> list[int]:
    """Every vector a refutation found above its bound: its counterexample and the scan's others."""
    if proof.counterexample is None:
        return []
    return sorted({vector_of(proof.counterexample, wb), *proof.violations})


@dataclass(frozen=True)
class Proof:
    """The answer to "is |y - a*b| <= bound for all inputs?"."""

    status: str  # "proven" | "refuted" | "unknown"
    bound: int
    method: str  # "exhaustive" | "sat"
    time_s: float
    counterexample: Counterexample | None = None
    solver: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    violations: tuple[int, ...] = ()  # more vectors above the bound (exhaustive refutations), as vectors

    @property
    def proven(self) -> bool:
        return self.status == "proven"


@dataclass(frozen=True)
class Wce:
    """The exact worst-case error, proven: no pair errs by more than ``wce``, and ``witness`` errs by it."""

    wce: int
    method: str
    solver: str | None
    time_s: float
    witness: Counterexample | None  # None only when wce == 0
    steps: int
    detail: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] | None = None  # every error metric over all pairs (exhaustive scans only)

    def as_report(self) -> dict[str, Any]:
        return {"method": self.method, "solver": self.solver, "time_s": round(self.time_s, 4),
                "wce": self.wce, "steps": self.steps,
                "counterexample_at_wce_minus_1": self.witness.as_report() if self.witness else None,
                **self.detail}


class ProofTimeout(Exception):
    """A proof did not finish within its time limit."""


# ------------------------------------------------------------------------------------ helpers
def _arrays(net: GateNetlist) -> tuple[np.ndarray, ...]:
    return (np.ascontiguousarray(net.func, dtype=np.int8), np.ascontiguousarray(net.in0, dtype=np.int32),
            np.ascontiguousarray(net.in1, dtype=np.int32), np.ascontiguousarray(net.out, dtype=np.int32))


def _active_order(net: GateNetlist) -> np.ndarray:
    """Indices of the gates some output depends on, in topological order."""
    func, in0, in1, out = _arrays(net)
    first = net.first
    need = np.zeros(len(func), dtype=np.bool_)
    for addr in out:
        if addr >= first:
            need[addr - first] = True
    for k in range(len(func) - 1, -1, -1):
        if need[k]:
            if in0[k] >= first:
                need[in0[k] - first] = True
            if func[k] != 6 and in1[k] >= first:
                need[in1[k] - first] = True
    return np.flatnonzero(need).astype(np.int32)


def counterexample(net: GateNetlist, a_code: int, b_code: int) -> Counterexample:
    """Simulate one input pair (plain Python, independent of both provers)."""
    wa, wb = net.wa, net.wb
    vals = [0, 1] + [(a_code >> k) & 1 for k in range(wa)] + [(b_code >> k) & 1 for k in range(wb)]
    func, in0, in1, out = _arrays(net)
    for k in range(len(func)):
        f, x = int(func[k]), vals[int(in0[k])]
        if f == 6:
            vals.append(1 - x)
            continue
        z = vals[int(in1[k])]
        r = (x & z) if f < 2 else (x | z) if f < 4 else (x ^ z)
        vals.append(r ^ (f & 1))
    nb_ = wa + wb
    code = sum(vals[int(addr)] << j for j, addr in enumerate(out))
    y = int(golden.decode(np.array([code]), nb_, net.signed)[0])
    a = int(golden.values(wa, net.signed)[a_code])
    b = int(golden.values(wb, net.signed)[b_code])
    return Counterexample(a_code, b_code, a, b, y, a * b)


# ------------------------------------------------------------------------------------ exhaustive
@nb.njit(cache=True, nogil=True, inline="always")
def _transpose64(x):  # pragma: no cover - compiled
    """Transpose a 64x64 bit matrix in place: bit i of word j becomes bit j of word i."""
    j = 32
    m = np.uint64(0x00000000FFFFFFFF)
    while j != 0:
        k = 0
        sj = np.uint64(j)
        while k < 64:
            t = ((x[k] >> sj) ^ x[k + j]) & m
            x[k + j] ^= t
            x[k] ^= t << sj
            k = (k + j + 1) & ~j
        j >>= 1
        m ^= m << np.uint64(j)


@nb.njit(cache=True, nogil=True)
def _scan(func, in0, in1, out, order, first, wa, wb, is_signed, w_start, w_end, bound, stats, viol):  # pragma: no cover
    """Simulate words ``w_start .. w_end`` (64 input pairs each) and measure every lane's error.

    ``stats`` (float64[9]) accumulates: max error, its vector, sum |d|, sum d, sum d^2, count d != 0,
    sum |d|/|p| over p != 0, count p != 0, sum |d|/(|y|+|p|), count of ``viol``. With ``bound >= 0``
    the vectors of errors above it are collected in ``viol`` and the scan returns once it is full, or
    at the end of the range after the first. Returns the number of words scanned.
    """
    nbits = wa + wb
    n_vec = np.int64(1) << nbits
    vals = np.zeros(first + len(func), dtype=np.uint64)
    vals[1] = _ALL
    ow = np.zeros(64, dtype=np.uint64)
    bmask = (np.int64(1) << wb) - 1
    half_a = np.int64(1) << (wa - 1)
    half_b = np.int64(1) << (wb - 1)
    half_y = np.int64(1) << (nbits - 1)
    full_a = np.int64(1) << wa
    full_b = np.int64(1) << wb
    full_y = np.int64(1) << nbits
    best = stats[0]
    best_v = stats[1]
    s_abs = 0.0
    s_d = 0.0
    s_sq = 0.0
    n_err = 0.0
    s_rel = 0.0
    n_nz = 0.0
    s_smape = 0.0
    done = 0
    for w in range(w_start, w_end):
        base = np.int64(w) << 6
        for j in range(nbits):
            if j < 6:
                word = _LANE[j]
            elif (base >> j) & 1:
                word = _ALL
            else:
                word = np.uint64(0)
            # vector bit j is b's bit j below wb, a's bit j - wb above
            if j < wb:
                vals[2 + wa + j] = word
            else:
                vals[2 + j - wb] = word
        for i in range(len(order)):
            k = order[i]
            f = func[k]
            x = vals[in0[k]]
            if f == 6:
                r = ~x
            else:
                z = vals[in1[k]]
                if f < 2:
                    r = x & z
                elif f < 4:
                    r = x | z
                else:
                    r = x ^ z
                if f & 1:
                    r = ~r
            vals[first + k] = r
        for j in range(nbits):
            ow[j] = vals[out[j]]
        for j in range(nbits, 64):
            ow[j] = 0
        _transpose64(ow)  # now ow[lane] holds that lane's output code
        lanes = 64
        if n_vec - base < 64:
            lanes = n_vec - base
        hit = False
        for lane in range(lanes):
            code = np.int64(ow[lane])
            v = base + lane
            a = v >> wb
            b = v & bmask
            y = code
            if is_signed:
                if a >= half_a:
                    a -= full_a
                if b >= half_b:
                    b -= full_b
                if y >= half_y:
                    y -= full_y
            p = a * b
            d = y - p
            ad = d if d >= 0 else -d
            if ad > best:
                best = ad
                best_v = v
            if ad != 0:
                n_err += 1.0
                s_abs += ad
                s_d += d
                s_sq += float(d) * float(d)
                s_smape += ad / float((y if y >= 0 else -y) + (p if p >= 0 else -p))
            if p != 0:
                n_nz += 1.0
                s_rel += ad / float(p if p >= 0 else -p)
            if bound >= 0 and ad > bound:
                hit = True
                if stats[9] < len(viol):
                    viol[int(stats[9])] = v
                    stats[9] += 1
        done += 1
        if hit and stats[9] >= len(viol):
            break
    stats[0] = best
    stats[1] = best_v
    stats[2] += s_abs
    stats[3] += s_d
    stats[4] += s_sq
    stats[5] += n_err
    stats[6] += s_rel
    stats[7] += n_nz
    stats[8] += s_smape
    return done


@dataclass(frozen=True)
class Scan:
    """An exhaustive scan: the exact WCE and its pair, and every error metric over all pairs."""

    wce: int
    vector: int
    complete: bool
    time_s: float
    sums: np.ndarray
    n_vectors: int
    violations: tuple[int, ...] = ()  # vectors whose error is above the bound (at most VIOLATIONS)

    def metrics(self, n: int) -> dict[str, float]:
        """Error metrics (the report's names and units) over every input pair; N normalises."""
        s, cnt = self.sums, float(self.n_vectors)
        return {"mae": s[2] / cnt, "mae_pct": 100.0 * s[2] / cnt / n, "er": 100.0 * s[5] / cnt,
                "mred": 100.0 * (s[6] / s[7] if s[7] else 0.0), "bias": s[3] / cnt, "nmed": 100.0 * s[2] / cnt / n,
                "smape": 100.0 * s[8] / cnt, "mse": s[4] / cnt}


def scan(net: GateNetlist, *, bound: int = -1, timeout: float | None = None, threads: int = 1,
         estimate_only: bool = False) -> Scan:
    """Simulate every input pair of ``net`` (stopping at an error above ``bound`` when >= 0).

    Blocks of :data:`BLOCK_WORDS` words run on ``threads`` threads (the kernel releases the GIL).
    With ``timeout``, the speed of the first block is measured and a scan projected to take longer
    raises :class:`ProofTimeout` at once, as does one that overruns.
    """
    func, in0, in1, out = _arrays(net)
    order = _active_order(net)
    nbits = net.wa + net.wb
    words = max(1, (1 << nbits) >> 6)
    blocks = [(s, min(words, s + BLOCK_WORDS)) for s in range(0, words, BLOCK_WORDS)]
    t0 = time.monotonic()
    found: list[int] = []

    def run(block: tuple[int, int]) -> tuple[np.ndarray, int, int]:
        st = np.zeros(10)
        st[1] = -1
        viol = np.zeros(VIOLATIONS, dtype=np.int64)
        done = _scan(func, in0, in1, out, order, net.first, net.wa, net.wb, net.signed, block[0], block[1],
                     bound, st, viol)
        found.extend(viol[:int(st[9])].tolist())
        return st, done, block[1] - block[0]

    results = [run(blocks[0])]
    first_s = time.monotonic() - t0
    if timeout is not None and len(blocks) > 1:
        projected = first_s * len(blocks) / max(1, threads)
        if projected > timeout:
            raise ProofTimeout(f"an exhaustive scan of 2^{nbits} pairs would take about {projected:.3g} s")
    hit = bound >= 0 and results[0][0][0] > bound
    rest = blocks[1:] if not hit and not estimate_only else []
    if rest:
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                for res in pool.map(run, rest):
                    results.append(res)
                    if timeout is not None and time.monotonic() - t0 > timeout:
                        raise ProofTimeout(f"the exhaustive scan of 2^{nbits} pairs overran {timeout:g} s")
        else:
            for blk in rest:
                res = run(blk)
                results.append(res)
                if bound >= 0 and res[0][0] > bound:
                    break
                if timeout is not None and time.monotonic() - t0 > timeout:
                    raise ProofTimeout(f"the exhaustive scan of 2^{nbits} pairs overran {timeout:g} s")
    sums = np.zeros(10)
    best, best_v = -1, -1
    complete = True
    for st, done, size in results:
        sums[2:] += st[2:]
        complete &= done == size
        if st[0] > best:
            best, best_v = int(st[0]), int(st[1])
    complete &= len(results) == len(blocks)
    return Scan(best, best_v, complete, time.monotonic() - t0, sums, 1 << nbits, tuple(found[:VIOLATIONS]))


# ------------------------------------------------------------------------------------ SAT miter
class _Cnf:
    """A structurally hashed AND/XOR graph written as CNF (literal 1 is constant true)."""

    def __init__(self) -> None:
        self.n = 1
        self.clauses: list[list[int]] = [[1]]
        self.strash: dict[tuple[int, int, int], int] = {}

    def var(self) -> int:
        self.n += 1
        return self.n

    def AND(self, x: int, y: int) -> int:
        if x == -1 or y == -1 or x == -y:
            return -1
        if x == 1:
            return y
        if y == 1 or x == y:
            return x
        key = (0, min(x, y), max(x, y))
        z = self.strash.get(key)
        if z is None:
            z = self.strash[key] = self.var()
            self.clauses += [[-z, x], [-z, y], [z, -x, -y]]
        return z

    def OR(self, x: int, y: int) -> int:
        return -self.AND(-x, -y)

    def XOR(self, x: int, y: int) -> int:
        neg = (x < 0) != (y < 0)
        x, y = abs(x), abs(y)
        if x == y:
            r = -1
        elif x == 1:
            r = -y
        elif y == 1:
            r = -x
        else:
            key = (1, min(x, y), max(x, y))
            z = self.strash.get(key)
            if z is None:
                z = self.strash[key] = self.var()
                self.clauses += [[-z, x, y], [-z, -x, -y], [z, -x, y], [z, x, -y]]
            r = z
        return -r if neg else r

    def MAJ(self, x: int, y: int, z: int) -> int:
        return self.OR(self.AND(x, y), self.AND(z, self.OR(x, y)))

    def netlist(self, net: GateNetlist, inputs: list[int]) -> list[int]:
        """Literals of ``net``'s outputs over input literals (a's bits, then b's)."""
        func, in0, in1, out = _arrays(net)
        lits = [-1, 1, *inputs]
        ops = (self.AND, self.AND, self.OR, self.OR, self.XOR, self.XOR)
        order = set(_active_order(net).tolist())
        for k in range(len(func)):
            if k not in order:
                lits.append(-1)
                continue
            f = int(func[k])
            x = lits[int(in0[k])]
            if f == 6:
                lits.append(-x)
                continue
            r = ops[f](x, lits[int(in1[k])])
            lits.append(-r if f & 1 else r)
        return [lits[int(a)] for a in out]

    def add(self, x: list[int], y: list[int], carry: int) -> list[int]:
        """Ripple-carry sum of two equally wide bit vectors (LSB first), truncated to their width."""
        s = []
        for xi, yi in zip(x, y):
            s.append(self.XOR(self.XOR(xi, yi), carry))
            carry = self.MAJ(xi, yi, carry)
        return s

    def product(self, a: list[int], b: list[int], width: int, is_signed: bool) -> list[int]:
        """a*b modulo 2^width by shift-and-add of the operands extended to ``width`` bits.

        Exact for multiplier widths: |a*b| < 2^(width-1) signed, < 2^width unsigned."""
        def ext(v: list[int]) -> list[int]:
            return v + [v[-1] if is_signed else -1] * (width - len(v))

        a, b = ext(a), ext(b)
        acc = [-1] * width
        for j in range(width):
            row = [-1] * j + [self.AND(a[i], b[j]) for i in range(width - j)]
            acc = self.add(acc, row, -1)
        return acc

    def ge_const(self, bits: list[int], c: int) -> int:
        """A literal true iff the unsigned value of ``bits`` (LSB first) is >= ``c``."""
        if c <= 0:
            return 1
        if c >= 1 << len(bits):
            return -1
        r = 1  # the empty suffix is >= the empty constant
        for i, x in enumerate(bits):
            r = self.OR(x, r) if not (c >> i) & 1 else self.AND(x, r)
        return r


def _miter(net: GateNetlist, reference: GateNetlist | None) -> tuple[_Cnf, list[int], list[int], list[int]]:
    """CNF of ``net`` and the exact reference over shared inputs; returns (cnf, a, b, D) with D = Y - P
    in wa+wb+1 bits, two's complement, LSB first."""
    cnf = _Cnf()
    wa, wb, nbits = net.wa, net.wb, net.wa + net.wb
    a = [cnf.var() for _ in range(wa)]
    b = [cnf.var() for _ in range(wb)]
    y = cnf.netlist(net, a + b)
    p = cnf.netlist(reference, a + b) if reference is not None else cnf.product(a, b, nbits, net.signed)
    if len(p) > nbits:
        p = p[:nbits]
    ext = (lambda v: [*v, v[-1]]) if net.signed else (lambda v: [*v, -1])
    d = cnf.add(ext(y), [-x for x in ext(p)], 1)
    return cnf, a, b, d


class _SatProver:
    """One incremental solver over the miter; each bound is a fresh activation literal."""

    def __init__(self, net: GateNetlist, reference: GateNetlist | None):
        from pysat.solvers import Solver

        t0 = time.monotonic()
        self.net = net
        self.cnf, self.a, self.b, self.d = _miter(net, reference)
        self.solver = Solver(name=SOLVER, bootstrap_with=self.cnf.clauses)
        self._sent = len(self.cnf.clauses)
        self.conflicts = 0
        self.encode_s = time.monotonic() - t0
        self.detail = {"variables": self.cnf.n, "clauses": len(self.cnf.clauses),
                       "reference": "seed netlist" if reference is not None else "shift-and-add"}

    def close(self) -> None:
        self.solver.delete()

    def check(self, bound: int, timeout: float | None) -> tuple[str, Counterexample | None]:
        """'proven' (|D| <= bound for all inputs), 'refuted' with a counterexample, or 'unknown'."""
        cnf = self.cnf
        u = [*self.d[:-1], -self.d[-1]]  # offset binary: D + 2^(width-1)
        off = 1 << (len(self.d) - 1)
        above = cnf.ge_const(u, off + bound + 1)
        below = -cnf.ge_const(u, off - bound)
        act = cnf.var()
        cnf.clauses.append([-act, above, below])
        return self._solve(act, timeout)

    def _solve(self, act: int, timeout: float | None) -> tuple[str, Counterexample | None]:
        for cl in self.cnf.clauses[self._sent:]:
            self.solver.add_clause(cl)
        self._sent = len(self.cnf.clauses)
        # CaDiCaL (1.9.5 in python-sat) cannot be interrupted, but it stops at a conflict budget and
        # resumes with what it learnt: solve in growing slices until the answer or the deadline
        deadline = None if timeout is None else time.monotonic() + timeout
        budget = 2000
        while True:
            if deadline is not None:
                self.solver.conf_budget(budget)
                res = self.solver.solve_limited(assumptions=[act])
            else:
                res = self.solver.solve(assumptions=[act])
            self.conflicts += budget if res is None else 0
            if res is not None or deadline is None or time.monotonic() >= deadline:
                break
            budget = min(budget * 2, 1 << 16)
        if res is None:
            return "unknown", None
        if res is False:
            return "proven", None
        model = self.solver.get_model()
        assert model is not None
        val = {abs(lit): lit > 0 for lit in model}
        a_code = sum(1 << i for i, v in enumerate(self.a) if val.get(v, False))
        b_code = sum(1 << i for i, v in enumerate(self.b) if val.get(v, False))
        return "refuted", counterexample(self.net, a_code, b_code)


# ------------------------------------------------------------------------------------ entry points
def _choose(net: GateNetlist, method: str, timeout: float | None, threads: int) -> str:
    """'exhaustive' where the scan of every pair is projected to fit ``timeout`` (measured on one block), else 'sat'."""
    if method not in METHODS:
        raise ValueError(f"proof method must be one of {', '.join(METHODS)}, not {method!r}")
    if method != "auto":
        return method
    nbits = net.wa + net.wb
    if nbits <= 20 or timeout is None:
        return "exhaustive"
    probe = scan(net, timeout=None, threads=1, estimate_only=True)
    blocks = math.ceil(((1 << nbits) >> 6) / BLOCK_WORDS)
    projected = probe.time_s * blocks / max(1, threads)
    return "exhaustive" if projected <= 0.8 * timeout else "sat"


def check(net: GateNetlist, bound: int, *, timeout: float | None = None, method: str = "auto",
          reference: GateNetlist | None = None, threads: int = 1) -> Proof:
    """Prove ``|y - a*b| <= bound`` over every input pair of ``net``, or refute it with a counterexample.

    ``reference``: an exact netlist of the same shape (it makes SAT miters smaller); the built-in
    shift-and-add multiplier otherwise. ``timeout`` bounds the proof's seconds (None: unbounded).
    """
    t0 = time.monotonic()
    chosen = _choose(net, method, timeout, threads)
    if chosen == "exhaustive":
        try:
            s = scan(net, bound=bound, timeout=timeout, threads=threads)
        except ProofTimeout as e:
            if method == "exhaustive":
                return Proof("unknown", bound, "exhaustive", time.monotonic() - t0, detail={"reason": str(e)})
            chosen = "sat"
        else:
            if s.wce > bound:
                a_code, b_code = s.vector >> net.wb, s.vector & ((1 << net.wb) - 1)
                return Proof("refuted", bound, "exhaustive", time.monotonic() - t0,
                             counterexample(net, a_code, b_code), violations=s.violations)
            return Proof("proven", bound, "exhaustive", time.monotonic() - t0, detail={"vectors": s.n_vectors})
    left = None if timeout is None else max(0.0, timeout - (time.monotonic() - t0))
    prover = _SatProver(net, reference)
    try:
        status, cex = prover.check(bound, left)
    finally:
        prover.close()
    if cex is not None and cex.error <= bound:
        raise AssertionError(f"the SAT model {cex} does not break the bound {bound}: the miter is wrong")
    return Proof(status, bound, "sat", time.monotonic() - t0, cex, SOLVER, prover.detail)


def exact_wce(net: GateNetlist, *, lower: int = 0, timeout: float | None = None, method: str = "auto",
              reference: GateNetlist | None = None, threads: int = 1, metrics: bool = False) -> Wce:
    """The exact worst-case error of ``net``, proven, with an input pair that reaches it.

    Exhaustive: one scan. SAT: ``|D| <= T`` refuted at T = ``lower`` - 1 (a known error, e.g. the
    largest on the search's vectors) and at each counterexample's error until UNSAT proves the last
    one is the maximum. Raises :class:`ProofTimeout` when the proof cannot complete within ``timeout``.
    ``metrics``: an exhaustive scan also returns every error metric over all pairs (``Wce.metrics``).
    """
    t0 = time.monotonic()
    chosen = _choose(net, method, timeout, threads)
    if chosen == "exhaustive":
        try:
            s = scan(net, timeout=timeout, threads=threads)
        except ProofTimeout:
            if method == "exhaustive":
                raise
            chosen = "sat"
        else:
            wit = None
            if s.wce > 0:
                wit = counterexample(net, s.vector >> net.wb, s.vector & ((1 << net.wb) - 1))
                assert wit.error == s.wce, "the scan and the plain simulation disagree"
            norm = golden.norm(net.wa, net.wb, net.signed)
            return Wce(s.wce, "exhaustive", None, time.monotonic() - t0, wit, 1, {"vectors": s.n_vectors},
                       s.metrics(norm) if metrics else None)
    prover = _SatProver(net, reference)
    try:
        witness: Counterexample | None = None
        t = lower - 1 if lower > 0 else 0  # first question: is the WCE <= t?
        steps = 0
        while True:
            left = None if timeout is None else timeout - (time.monotonic() - t0)
            if left is not None and left <= 0:
                raise ProofTimeout(f"the SAT proof of the WCE overran {timeout:g} s")
            status, cex = prover.check(t, left)
            steps += 1
            if status == "unknown":
                raise ProofTimeout(f"the SAT proof of the WCE overran {timeout:g} s")
            if status == "proven":
                if witness is None and t > 0:  # the hint was above the WCE: ascend from 0
                    t = 0
                    continue
                return Wce(t, "sat", SOLVER, time.monotonic() - t0, witness, steps, prover.detail)
            assert cex is not None and cex.error > t
            witness, t = cex, cex.error
    finally:
        prover.close()
