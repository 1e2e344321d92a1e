"""Compiled kernels of the evaluator: bit-parallel simulation, WCE checks and netlist passes.

Simulation is bit-parallel: one ``uint64`` word carries 64 input vectors. Values are kept per
chunk of ``ch`` words so that the working set of one chunk (every address) stays in the L2 cache.
Only active gates are simulated, and a child is simulated *incrementally*: only gates whose genes
changed, or that read a changed gate, are recomputed (into a scratch buffer); everything else is
read from the parent's cache.

The error is bit-sliced too: the exact products ``p`` are stored as bit planes in offset binary
(``nbc = nb + 2`` bits), ``|y - p|`` is a bit-serial subtract and conditional negate, and the
maximum over a chunk's lanes is found plane by plane from the top. Evaluation stops at the first
chunk whose maximum exceeds the limit, so most failing children cost a fraction of a simulation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NOT = 6
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True)
def active_mask(func, in0, in1, out, first):
    n = func.shape[0]
    act = np.zeros(n, np.bool_)
    for i in range(out.shape[0]):
        a = out[i]
        if a >= first:
            act[a - first] = True
    for k in range(n - 1, -1, -1):
        if act[k]:
            a = in0[k]
            if a >= first:
                act[a - first] = True
            if func[k] != NOT:
                b = in1[k]
                if b >= first:
                    act[b - first] = True
    return act


@njit(cache=True)
def depth(func, in0, in1, out, first):
    return levels(func, in0, in1, out, first, active_mask(func, in0, in1, out, first))


@njit(cache=True)
def levels(func, in0, in1, out, first, act):
    """Logic depth in gates of the active gates ``act``."""
    n = func.shape[0]
    lvl = np.zeros(first + n, np.int32)
    for k in range(n):
        if act[k]:
            d = lvl[in0[k]]
            if func[k] != NOT and lvl[in1[k]] > d:
                d = lvl[in1[k]]
            lvl[first + k] = d + 1
    best = 0
    for i in range(out.shape[0]):
        if lvl[out[i]] > best:
            best = lvl[out[i]]
    return best


@njit(cache=True)
def merge_equivalent(func, in0, in1, out, first):
    """Merge structurally equal gates and fold trivial ones, in place; returns how many were removed.

    Rules: equal (function, inputs) with commutative inputs sorted; g(x, x) and gates with a
    constant input reduce to a wire, a constant or a NOT. References are redirected to the
    representative; the merged gates become inactive.
    """
    return _simplify(func, in0, in1, out, first, True)


@njit(cache=True)
def fold_constants(func, in0, in1, out, first):
    """The cheap part of :func:`merge_equivalent`: fold g(x, x) and gates with constant inputs."""
    return _simplify(func, in0, in1, out, first, False)


@njit(cache=True)
def _simplify(func, in0, in1, out, first, strash):
    n = func.shape[0]
    rep = np.arange(first + n).astype(np.int32)
    seen = dict()
    seen[np.int64(-1)] = np.int64(-1)
    removed = 0
    act = active_mask(func, in0, in1, out, first)
    for k in range(n):
        a = rep[in0[k]]
        f = func[k]
        b = rep[in1[k]] if f != NOT else 0
        in0[k] = a
        if f != NOT:
            in1[k] = b
        if not act[k]:
            continue
        me = first + k
        alias = -1
        if f == NOT:
            if a <= 1:
                alias = 1 - a
        else:
            if a > b:
                a, b = b, a
                in0[k] = a
                in1[k] = b
            # a <= b here, so a constant input is always a
            if a == b:
                if f == 0 or f == 2:  # AND/OR x,x
                    alias = a
                elif f == 4:
                    alias = 0
                elif f == 5:
                    alias = 1
                else:  # NAND/NOR x,x = NOT x
                    func[k] = NOT
                    f = NOT
            elif a <= 1:
                c = a
                if f == 0:  # AND
                    alias = 0 if c == 0 else b
                elif f == 2:  # OR
                    alias = b if c == 0 else 1
                elif f == 4:  # XOR
                    if c == 0:
                        alias = b
                    else:
                        func[k] = NOT
                        in0[k] = b
                        f = NOT
                        a = b
                elif f == 5:  # XNOR
                    if c == 1:
                        alias = b
                    else:
                        func[k] = NOT
                        in0[k] = b
                        f = NOT
                        a = b
                elif f == 1:  # NAND
                    if c == 0:
                        alias = 1
                    else:
                        func[k] = NOT
                        in0[k] = b
                        f = NOT
                        a = b
                elif f == 3:  # NOR
                    if c == 1:
                        alias = 0
                    else:
                        func[k] = NOT
                        in0[k] = b
                        f = NOT
                        a = b
        if alias >= 0:
            rep[me] = alias
            removed += 1
            continue
        if not strash:
            continue
        key = (np.int64(f) * (first + n) + (a if f != NOT else in0[k])) * (first + n) + (b if f != NOT else 0)
        if key in seen:
            rep[me] = seen[key]
            removed += 1
        else:
            seen[key] = me
    for i in range(out.shape[0]):
        out[i] = rep[out[i]]
    return removed


@njit(cache=True)
def gate_cost(func, act, weights):
    total = 0.0
    for k in range(func.shape[0]):
        if act[k]:
            total += weights[func[k]]
    return total


@njit(cache=True, inline="always")
def _apply(f, st, r0, r1, rd, ch):
    """Row ``rd`` of the store = f(row r0, row r1)."""
    if f == 0:
        for i in range(ch):
            st[rd, i] = st[r0, i] & st[r1, i]
    elif f == 1:
        for i in range(ch):
            st[rd, i] = ~(st[r0, i] & st[r1, i])
    elif f == 2:
        for i in range(ch):
            st[rd, i] = st[r0, i] | st[r1, i]
    elif f == 3:
        for i in range(ch):
            st[rd, i] = ~(st[r0, i] | st[r1, i])
    elif f == 4:
        for i in range(ch):
            st[rd, i] = st[r0, i] ^ st[r1, i]
    elif f == 5:
        for i in range(ch):
            st[rd, i] = ~(st[r0, i] ^ st[r1, i])
    else:
        for i in range(ch):
            st[rd, i] = ~st[r0, i]


# The store is one 2-D array of rows of ``ch`` words: row (buf, chunk, address) is
# ``(buf * n_chunks + chunk) * n_addr + address``. Buffer 0 is the parent's cache; buffers 1.. are
# children's scratch rows. Indexing rows by number (not by array views) keeps the inner loops free
# of reference counting, which costs more than the logic itself.


@njit(cache=True)
def simulate_full(func, in0, in1, act, first, st, n_chunks, n_addr):
    """Compute every active gate into buffer 0 (inputs and constants must already be there)."""
    ch = st.shape[1]
    n = func.shape[0]
    for c in range(n_chunks):
        base = c * n_addr
        for k in range(n):
            if act[k]:
                _apply(func[k], st, base + in0[k], base + in1[k], base + first + k, ch)


@njit(cache=True)
def _gather_outputs(out, dirty, st, pbase, sbase, yb, nb, nbc, is_signed):
    ch = yb.shape[1]
    for j in range(nb):
        src = out[j]
        r = (sbase if dirty[src] else pbase) + src
        for i in range(ch):
            yb[j, i] = st[r, i]
    for j in range(nb, nbc):
        for i in range(ch):
            yb[j, i] = yb[nb - 1, i] if is_signed else np.uint64(0)
    # offset binary: flip the sign plane
    for i in range(ch):
        yb[nbc - 1, i] = ~yb[nbc - 1, i]


@njit(cache=True)
def _max_abs_diff(yb, ex, c, nbc, db, tmp):
    """max |y - p| over the lanes of chunk ``c``; ``ex`` holds p's planes in offset binary too."""
    ch = yb.shape[1]
    br = tmp[0]
    carry = tmp[1]
    for i in range(ch):
        br[i] = 0
    # both codes in offset binary: their difference is y - p, with the final borrow as its sign
    for k in range(nbc):
        for i in range(ch):
            yk = yb[k, i]
            ek = ex[c, k, i]
            t = yk ^ ek
            db[k, i] = t ^ br[i]
            br[i] = (~yk & ek) | (~t & br[i])
    for i in range(ch):
        carry[i] = br[i]
    for k in range(nbc):
        for i in range(ch):
            t = db[k, i] ^ br[i]
            db[k, i] = t ^ carry[i]
            carry[i] = t & carry[i]
    # the largest |d| in the chunk: keep the lanes that have every higher bit the maximum has
    cand = tmp[2]
    for i in range(ch):
        cand[i] = ALL
    best = 0
    for k in range(nbc - 1, -1, -1):
        hit = np.uint64(0)
        for i in range(ch):
            hit |= cand[i] & db[k, i]
        if hit != 0:
            best |= 1 << k
            for i in range(ch):
                cand[i] &= db[k, i]
    return best


@njit(cache=True, inline="always")
def _simulate_chunk(func, in0, in1, first, order, dirty, st, pbase, sbase, ch):
    """One chunk: the dirty gates of ``order`` into rows ``sbase + address``, clean ones read at ``pbase``."""
    for idx in range(order.shape[0]):
        k = order[idx]
        a = first + k
        if not dirty[a]:
            continue
        i0 = in0[k]
        i1 = in1[k]
        r0 = (sbase if dirty[i0] else pbase) + i0
        r1 = (sbase if dirty[i1] else pbase) + i1
        _apply(func[k], st, r0, r1, sbase + a, ch)


@njit(cache=True)
def simulate(func, in0, in1, first, order, dirty, st, n_chunks, n_addr, buf):
    """Simulate the gates in ``order`` that are ``dirty`` into buffer ``buf``, every chunk (clean addresses
    are read from buffer 0): the value planes that consumers such as :mod:`evolve.app` read."""
    ch = st.shape[1]
    for c in range(n_chunks):
        _simulate_chunk(func, in0, in1, first, order, dirty, st, c * n_addr, (buf * n_chunks + c) * n_addr, ch)


@njit(cache=True)
def evaluate(func, in0, in1, out, first, order, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed,
             stop_above):
    """Simulate the gates in ``order`` that are ``dirty`` into buffer ``buf`` and return the WCE.

    Clean addresses are read from buffer 0 (the parent). The WCE is exact unless it exceeds
    ``stop_above``: then the evaluation stops at that chunk and returns the (larger) partial maximum.
    """
    ch = st.shape[1]
    nbc = ex.shape[1]
    yb = np.empty((nbc, ch), np.uint64)
    db = np.empty((nbc, ch), np.uint64)
    tmp = np.empty((3, ch), np.uint64)
    wce = 0
    for c in range(n_chunks):
        pbase = c * n_addr
        sbase = (buf * n_chunks + c) * n_addr
        _simulate_chunk(func, in0, in1, first, order, dirty, st, pbase, sbase, ch)
        _gather_outputs(out, dirty, st, pbase, sbase, yb, nb, nbc, is_signed)
        m = _max_abs_diff(yb, ex, c, nbc, db, tmp)
        if m > wce:
            wce = m
            if wce > stop_above:
                return wce
    return wce


@njit(cache=True)
def changed_genes(func, in0, in1, pfunc, pin0, pin1):
    """changed[k]: gate k's genes differ from the parent's (a NOT's unused ``in1`` does not count)."""
    n = func.shape[0]
    changed = np.empty(n, np.bool_)
    for k in range(n):
        changed[k] = func[k] != pfunc[k] or in0[k] != pin0[k] or (func[k] != NOT and in1[k] != pin1[k])
    return changed


@njit(cache=True)
def fanout_load(func, in0, in1, out, first, order, pin_cap, po_cap):
    """The load every address drives: ``pin_cap[f, slot]`` of each input of an active gate (``order``)
    reading it, plus ``po_cap`` per primary output."""
    load = np.zeros(first + func.shape[0])
    for idx in range(order.shape[0]):
        k = order[idx]
        f = func[k]
        load[in0[k]] += pin_cap[f, 0]
        if f != NOT:
            load[in1[k]] += pin_cap[f, 1]
    for j in range(out.shape[0]):
        load[out[j]] += po_cap
    return load


@njit(cache=True)
def mark_dirty(func, in0, in1, first, act, changed, valid, dirty):
    """dirty[a] for gate addresses: its genes changed, its cached value is stale, or it reads a dirty
    address. Fills ``dirty`` (inputs stay False) and returns the active gates in order."""
    n = func.shape[0]
    order = np.empty(n, np.int32)
    m = 0
    for k in range(n):
        a = first + k
        if act[k]:
            d = changed[k] or (not valid[a]) or dirty[in0[k]]
            if func[k] != NOT and dirty[in1[k]]:
                d = True
            dirty[a] = d
            order[m] = k
            m += 1
        else:
            dirty[a] = False
    return order[:m]


@njit(cache=True)
def commit(order, first, dirty, st, n_chunks, n_addr, buf):
    """Copy the recomputed rows of an accepted child (buffer ``buf``) into the parent's buffer 0."""
    ch = st.shape[1]
    for idx in range(order.shape[0]):
        a = first + order[idx]
        if dirty[a]:
            for c in range(n_chunks):
                src = (buf * n_chunks + c) * n_addr + a
                dst = c * n_addr + a
                for i in range(ch):
                    st[dst, i] = st[src, i]


@njit(cache=True)
def output_codes(out, st, n_chunks, n_addr, nb, n_vectors):
    """The output code of every vector from buffer 0's planes of ``out`` (int64)."""
    ch = st.shape[1]
    y = np.zeros(n_chunks * ch * 64, np.int64)
    for c in range(n_chunks):
        for j in range(nb):
            r = c * n_addr + out[j]
            for i in range(ch):
                w = st[r, i]
                base = (c * ch + i) * 64
                for lane in range(64):
                    if (w >> np.uint64(lane)) & np.uint64(1):
                        y[base + lane] |= 1 << j
    return y[:n_vectors]


# ---------------------------------------------------------------------------------------------
# Mutation. Operators, chosen by weight:
#   GENE    change one gene (a gate's function or one of its inputs) of a random gate; mutations of
#           inactive gates are neutral, so this repeats until an active gate has changed
#           (Goldman & Punch's "single active mutation")
#   OUTPUT  rewire a primary output to any address
#   ADD     route an active connection through an inactive gate (activating it)
#   DELETE  bypass an active gate: its readers take one of its inputs instead
#   MERGE   merge structurally equivalent gates and fold trivial ones (function unchanged)
#   CONST   tie an active gate's readers to constant 0 or 1 (a stuck-at: truncation, in effect)
# After every operator, gates left with constant or identical inputs are folded away, so that the
# cost of the child counts only logic that does something.

OP_GENE, OP_OUTPUT, OP_ADD, OP_DELETE, OP_MERGE, OP_CONST = 0, 1, 2, 3, 4, 5
N_OPS = 6
OP_NAMES = ("gene", "output", "add", "delete", "merge", "const")


@njit(cache=True)
def _pick_op(rng, cum):
    r = rng.random() * cum[cum.shape[0] - 1]
    for i in range(cum.shape[0]):
        if r < cum[i]:
            return i
    return cum.shape[0] - 1


@njit(cache=True)
def _spare_between(act, first, lo, limit, rng):
    """An inactive gate's address in ``lo..limit-1``, searched from a random start; -1 if there is none."""
    start = rng.integers(lo, limit)
    for t in range(limit - lo):
        cand = lo + (start - lo + t) % (limit - lo)
        if not act[cand - first]:
            return cand
    return -1


@njit(cache=True)
def _rewire_output(out, n_addr, rng):
    """OP_OUTPUT: a random output reads a random other address; False if the draw changed nothing."""
    j = rng.integers(0, out.shape[0])
    new = rng.integers(0, n_addr)
    if new == out[j]:
        return False
    out[j] = new
    return True


@njit(cache=True)
def mutate(func, in0, in1, out, first, act, rng, cum, n_funcs):
    """Apply operators until one changes the phenotype; returns that operator's number.

    ``act`` is the parent's active mask; ``cum`` the cumulative operator weights.
    """
    n = func.shape[0]
    n_out = out.shape[0]
    for _ in range(100000):
        op = _pick_op(rng, cum)
        if op == OP_GENE:
            k = rng.integers(0, n)
            a = first + k
            g = rng.integers(0, 3)
            if g == 0:
                nf = rng.integers(0, n_funcs - 1)
                if nf >= func[k]:
                    nf += 1
                func[k] = nf
            elif g == 1:
                in0[k] = rng.integers(0, a)
            else:
                in1[k] = rng.integers(0, a)
                if func[k] == NOT:
                    continue  # NOT ignores in1: neutral
            if act[k]:
                return op
        elif op == OP_OUTPUT:
            if _rewire_output(out, first + n, rng):
                return op
        elif op == OP_ADD:
            # a random active reader: a gate input or an output
            j = rng.integers(0, n + n_out)
            if j < n:
                if not act[j]:
                    continue
                slot = rng.integers(0, 1 if func[j] == NOT else 2)
                src = in0[j] if slot == 0 else in1[j]
                limit = first + j  # the new gate must come before its reader
            else:
                slot = 2
                src = out[j - n]
                limit = first + n
            lo = max(src + 1, first)
            if lo >= limit:
                continue
            m = _spare_between(act, first, lo, limit, rng)  # an inactive gate between src and the reader
            if m < 0:
                continue
            mk = m - first
            func[mk] = rng.integers(0, n_funcs - 1)  # a two-input gate
            in0[mk] = src
            in1[mk] = rng.integers(0, m)
            if slot == 0:
                in0[j] = m
            elif slot == 1:
                in1[j] = m
            else:
                out[j - n] = m
            return op
        elif op == OP_DELETE or op == OP_CONST:
            k = rng.integers(0, n)
            if not act[k]:
                continue
            a = first + k
            if op == OP_CONST:
                r = rng.integers(0, 2)
            else:
                r = in0[k] if (func[k] == NOT or rng.integers(0, 2) == 0) else in1[k]
            for q in range(k + 1, n):
                if in0[q] == a:
                    in0[q] = r
                if in1[q] == a:
                    in1[q] = r
            for q in range(n_out):
                if out[q] == a:
                    out[q] = r
            fold_constants(func, in0, in1, out, first)
            return op
        else:
            if merge_equivalent(func, in0, in1, out, first) > 0:
                return op
    return -1


@njit(cache=True)
def assess(func, in0, in1, out, pfunc, pin0, pin1, first, weights, max_depth, cost_cap, valid, dirty, st,
           n_chunks, n_addr, buf, ex, nb, is_signed, stop_above):
    """Everything the evolution needs to know about one child, in one call.

    Returns (wce, cost, depth, act, order). The child is not simulated when its cost exceeds
    ``cost_cap`` (wce = -2) or its depth exceeds ``max_depth`` (wce = -3): it cannot win.
    """
    act = active_mask(func, in0, in1, out, first)
    cost = gate_cost(func, act, weights)
    empty = np.empty(0, np.int32)
    if cost > cost_cap:
        return -2, cost, 0, act, empty
    dep = levels(func, in0, in1, out, first, act)
    if dep > max_depth:
        return -3, cost, dep, act, empty
    order = mark_dirty(func, in0, in1, first, act, changed_genes(func, in0, in1, pfunc, pin0, pin1), valid, dirty)
    wce = evaluate(func, in0, in1, out, first, order, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed,
                   stop_above)
    return wce, cost, dep, act, order
