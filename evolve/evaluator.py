"""The evaluator: simulate netlists on every input vector (or a sample) and measure their error.

Exhaustive up to 16 input bits in total (65,536 vectors for 8x8). Above that the search evaluates
a *vector set*: a seeded random sample, the corner cases (extreme operands, 0, +-1, powers of two)
and every counterexample a failed proof has found (:func:`search_vectors`); the WCE it measures is
then only a lower bound, and :mod:`verify.wce` proves the limit on all inputs before a circuit is
kept (counterexample-guided search, see :mod:`evolve.engine`). Vectors are packed 64 to a machine word
and simulated by the compiled kernels in :mod:`evolve.kernels`. The expected products come from
:mod:`core.golden`, the one source of expected values.
"""

from __future__ import annotations

import numpy as np

from core import golden
from core.error_metrics import Errors, errors_of
from evolve import kernels
from evolve.netlist import Netlist
from verify.multiplier import corner_codes

EXHAUSTIVE_MAX_BITS = 16
DEFAULT_SAMPLES = 1 << 16
CHUNK_WORDS = 64
NO_LIMIT = 1 << 62


def search_vectors(wa: int, wb: int, is_signed: bool, samples: int, seed: int,
                   extra: tuple[int, ...] | list[int] | np.ndarray = ()) -> np.ndarray:
    """The vectors (numbered ``(a << wb) | b``) a search above 16 input bits evaluates: ``samples``
    random pairs drawn with ``seed``, every pair of corner operands, and ``extra`` (counterexamples)."""
    rng = np.random.default_rng(seed)
    sample = rng.integers(0, 1 << (wa + wb), size=samples, dtype=np.int64)
    ca, cb = corner_codes(wa, is_signed), corner_codes(wb, is_signed)
    corners = ((ca[:, None] << wb) | cb[None, :]).ravel()
    return np.concatenate([sample, corners, np.asarray(extra, dtype=np.int64)])


def _planes(values: np.ndarray, nbits: int, n_chunks: int, ch: int) -> np.ndarray:
    """Bit planes of integer ``values`` (two's complement in ``nbits``): shape (n_chunks, nbits, ch)."""
    v = np.asarray(values, dtype=np.int64)
    out = np.empty((nbits, n_chunks * ch), dtype=np.uint64)
    for k in range(nbits):
        bits = ((v >> k) & 1).astype(np.uint8)
        out[k] = np.packbits(bits, bitorder="little").view("<u8")
    return np.ascontiguousarray(out.reshape(nbits, n_chunks, ch).transpose(1, 0, 2))


class Evaluator:
    """Exhaustive (or sampled) bit-parallel evaluation of netlists of one shape.

    The evaluator owns a cache of every address's bit planes for the current *parent*; children
    are simulated incrementally against it (:meth:`check_child`) and an accepted child is folded
    in with :meth:`commit`.
    """

    def __init__(self, wa: int, wb: int, is_signed: bool, n_addr: int, *, children: int = 1,
                 samples: int = DEFAULT_SAMPLES, seed: int = 0, chunk_words: int = CHUNK_WORDS,
                 vectors: np.ndarray | None = None):
        """Vectors: all of them up to 16 input bits, else :func:`search_vectors` (``samples`` drawn
        with ``seed``, and the corner cases); or exactly the ``vectors`` given (numbered ``(a << wb) | b``)."""
        self.wa, self.wb, self.signed = wa, wb, is_signed
        self.nb = wa + wb
        self.nbc = self.nb + 2
        self.first = 2 + wa + wb
        self.n_addr = n_addr
        self.norm = golden.norm(wa, wb, is_signed)
        if vectors is not None:
            vectors = np.asarray(vectors, dtype=np.int64)
            self.sampled = len(np.unique(vectors)) < (1 << (wa + wb))
        elif wa + wb <= EXHAUSTIVE_MAX_BITS:
            self.sampled = False
            vectors = np.arange(1 << (wa + wb), dtype=np.int64)
        else:
            self.sampled = True
            vectors = search_vectors(wa, wb, is_signed, samples, seed)
        self.vectors = vectors
        self.n_vectors = len(vectors)
        a_codes, b_codes = golden.vector_codes(wa, wb, vectors)
        self.exact = golden.values(wa, is_signed)[a_codes] * golden.values(wb, is_signed)[b_codes]

        words = -(-self.n_vectors // 64)
        self.ch = ch = min(chunk_words, words)
        self.n_chunks = n_chunks = -(-words // ch)
        pad = n_chunks * ch * 64 - self.n_vectors
        # padding lanes repeat vector 0: they never change a maximum
        a_pad = np.concatenate([a_codes, np.repeat(a_codes[:1], pad)])
        b_pad = np.concatenate([b_codes, np.repeat(b_codes[:1], pad)])
        self.exact_padded = np.concatenate([self.exact, np.repeat(self.exact[:1], pad)])
        self.children = children
        self.store = np.zeros(((1 + children) * n_chunks * n_addr, ch), dtype=np.uint64)
        parent = self.store[:n_chunks * n_addr].reshape(n_chunks, n_addr, ch)
        parent[:, 1, :] = kernels.ALL
        parent[:, 2:2 + wa, :] = _planes(a_pad, wa, n_chunks, ch)
        parent[:, 2 + wa:self.first, :] = _planes(b_pad, wb, n_chunks, ch)
        self.ex = self._offset(self.exact_padded)
        self.valid = np.zeros(n_addr, dtype=np.bool_)
        self.valid[:self.first] = True
        self._no_dirty = np.zeros(n_addr, dtype=np.bool_)

    def _offset(self, values: np.ndarray) -> np.ndarray:
        """Planes of values in ``nbc``-bit offset binary (two's complement with the sign bit flipped)."""
        planes = _planes(values, self.nbc, self.n_chunks, self.ch)
        planes[:, self.nbc - 1, :] = ~planes[:, self.nbc - 1, :]
        return planes

    # -------------------------------------------------------------- parent
    def load_parent(self, net: Netlist) -> tuple[int, np.ndarray]:
        """Simulate ``net`` from scratch into the parent cache; returns its exact WCE and active mask."""
        act = net.simulate(self.store, self.n_chunks, self.n_addr)
        self.valid[:] = False
        self.valid[:self.first] = True
        self.valid[self.first:][act] = True
        order = np.flatnonzero(act).astype(np.int32)
        wce = kernels.evaluate(net.func, net.in0, net.in1, net.out, net.first, order, self._no_dirty,
                               self.store, self.n_chunks, self.n_addr, 0, self.ex, self.nb, self.signed,
                               NO_LIMIT)
        return int(wce), act

    # -------------------------------------------------------------- children
    def check_child(self, child: Netlist, changed: np.ndarray, act: np.ndarray, buf: int,
                    dirty: np.ndarray, stop_above: int = -1) -> tuple[int, np.ndarray]:
        """Simulate ``child`` incrementally against the parent cache, into scratch buffer ``buf``.

        ``changed[k]``: gate k's genes differ from the parent's. Returns (wce, order): the WCE is
        exact unless it exceeds ``stop_above`` (>= 0), where simulation stops early and a partial
        maximum above the limit comes back. ``order`` (the active gates) and ``dirty`` are what
        :meth:`commit` needs.
        """
        order = kernels.mark_dirty(child.func, child.in0, child.in1, child.first, act, changed, self.valid,
                                   dirty)
        result = kernels.evaluate(child.func, child.in0, child.in1, child.out, child.first, order, dirty,
                                  self.store, self.n_chunks, self.n_addr, buf, self.ex, self.nb, self.signed,
                                  stop_above if stop_above >= 0 else NO_LIMIT)
        return int(result), order

    def commit(self, order: np.ndarray, dirty: np.ndarray, buf: int, act: np.ndarray) -> None:
        """Make the child simulated into buffer ``buf`` the parent of the cache."""
        kernels.commit(order, self.first, dirty, self.store, self.n_chunks, self.n_addr, buf)
        self.valid[self.first:] = act

    # -------------------------------------------------------------- whole netlists
    def outputs(self, net: Netlist) -> np.ndarray:
        """Output values (decoded, int64) of ``net`` on the evaluator's vectors; leaves the cache alone."""
        st = self.store[:self.n_chunks * self.n_addr].copy()
        net.simulate(st, self.n_chunks, self.n_addr)
        codes = kernels.output_codes(net.out, st, self.n_chunks, self.n_addr, self.nb, self.n_vectors)
        return golden.decode(codes, self.nb, self.signed)

    def errors(self, net: Netlist) -> Errors:
        return errors_of(self.outputs(net), self.exact, self.norm, self.sampled)

    def lut(self, net: Netlist) -> np.ndarray:
        """The product table ``lut[a_code, b_code]`` (int32); exhaustive evaluators only."""
        if self.sampled:
            raise ValueError("a product table needs exhaustive evaluation")
        return self.outputs(net).reshape(1 << self.wa, 1 << self.wb).astype(np.int32)


def reference_outputs(net: Netlist, vectors: np.ndarray | None = None) -> np.ndarray:
    """Output values by plain simulation: one byte per vector and gate, every gate re-simulated (a cell
    netlist's nodes by their truth tables).

    The straightforward way (CircuitsDNA's engine works like this). It shares nothing with the
    bit-parallel kernels, so tests use it as the independent reference and ``make bench`` as the
    baseline the evaluator is measured against.
    """
    if vectors is None:
        vectors = np.arange(1 << (net.wa + net.wb), dtype=np.int64)
    a, b = golden.vector_codes(net.wa, net.wb, vectors)
    vals = np.zeros((net.n_addr, len(vectors)), dtype=np.uint8)
    vals[1] = 1
    for k in range(net.wa):
        vals[2 + k] = (a >> k) & 1
    for k in range(net.wb):
        vals[2 + net.wa + k] = (b >> k) & 1
    ops = (np.bitwise_and, np.bitwise_and, np.bitwise_or, np.bitwise_or, np.bitwise_xor, np.bitwise_xor)
    tables = getattr(net, "tables", None)  # a cell netlist: each node by its truth table
    for k in range(net.n_gates):
        if tables is not None:
            row = sum(vals[x].astype(np.int64) << s for s, x in enumerate(net.used_inputs(k)))
            vals[net.first + k] = (tables.cells.functions[int(net.func[k])].table >> row) & 1
            continue
        f = int(net.func[k])
        x = vals[net.in0[k]]
        if f == 6:
            r = 1 - x
        else:
            r = ops[f](x, vals[net.in1[k]])
            if f in (1, 3, 5):
                r = 1 - r
        vals[net.first + k] = r
    codes = np.zeros(len(vectors), dtype=np.int64)
    for j, addr in enumerate(net.out):
        codes |= vals[addr].astype(np.int64) << j
    return golden.decode(codes, net.wa + net.wb, net.signed)
