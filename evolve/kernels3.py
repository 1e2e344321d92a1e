"""Compiled kernels of three-input nodes: the cell function set's simulation, cost, passes and mutation.

The counterpart of :mod:`evolve.kernels` for :class:`evolve.cellnet.CellNetlist`, on the same store of
bit planes (rows of ``ch`` words per address, buffer 0 the parent's cache) and the same error kernels.
A node's function is a code into the function set, described by arrays (:class:`evolve.cellnet.Tables`):

- ``arity[f]``: inputs read (slots ``in0``, ``in1``, ``in2``; the others are ignored);
- ``op[f]``: 0..6 where the function is a generic gate over ``in0``/``in1`` (the two-input kernels'
  codes: AND NAND OR NOR XOR XNOR NOT), computed as there; 7 for any other function, computed from its
  algebraic normal form: ``f = m0 ^ m1 a ^ m2 b ^ m3 ab ^ m4 c ^ m5 ac ^ m6 bc ^ m7 abc`` with
  ``anf[f, i]`` all ones or zero, so every three-input truth table is the same straight-line code (a loop
  per common cell measured no faster: the larger inlined kernel slowed the two-input nodes by more);
- ``area[f]``, ``group[f]`` (multi-output cell, or -1), ``garea[g]``, ``gsym[g]``: the cost;
- ``sym[f]``: the inputs may be sorted (merging, and matching the outputs of one adder);
- ``red_*[f, p]``: what the node reduces to when its inputs follow pattern ``p`` (constants and
  repeated inputs, :func:`pattern`): nothing (0), a constant (1), one of its inputs (2) or another
  function of the set on fewer inputs (3).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from evolve.kernels import (
    OP_ADD,
    OP_CONST,
    OP_DELETE,
    OP_GENE,
    OP_OUTPUT,
    _apply,
    _gather_outputs,
    _max_abs_diff,
    _pick_op,
    _rewire_output,
    _spare_between,
)

GENERIC = 7
N_PATTERNS = 125  # three slots, each constant 0, constant 1 or one of up to three variables


@njit(cache=True, inline="always")
def _slot(in0, in1, in2, k, s):
    if s == 0:
        return in0[k]
    if s == 1:
        return in1[k]
    return in2[k]


@njit(cache=True)
def active_mask(func, in0, in1, in2, out, first, arity):
    n = func.shape[0]
    act = np.zeros(n, np.bool_)
    for i in range(out.shape[0]):
        a = out[i]
        if a >= first:
            act[a - first] = True
    for k in range(n - 1, -1, -1):
        if act[k]:
            ar = arity[func[k]]
            for s in range(ar):
                a = _slot(in0, in1, in2, k, s)
                if a >= first:
                    act[a - first] = True
    return act


@njit(cache=True)
def levels(func, in0, in1, in2, out, first, arity, act):
    """Logic depth in nodes of the active netlist."""
    n = func.shape[0]
    lvl = np.zeros(first + n, np.int32)
    for k in range(n):
        if act[k]:
            d = 0
            for s in range(arity[func[k]]):
                x = lvl[_slot(in0, in1, in2, k, s)]
                if x > d:
                    d = x
            lvl[first + k] = d + 1
    best = 0
    for i in range(out.shape[0]):
        if lvl[out[i]] > best:
            best = lvl[out[i]]
    return best


@njit(cache=True)
def _group_key(func, in0, in1, in2, k, g, n_addr, gsym, ar):
    """Names the instance of multi-output cell ``g`` whose output node ``k`` is: the group and the inputs the
    node reads (sorted where the cell's outputs are all symmetric; unread slots as 0, as the netlist's view
    :meth:`evolve.cellnet.CellNetlist._instances` has them)."""
    a = in0[k]
    b = in1[k] if ar >= 2 else 0
    c = in2[k] if ar >= 3 else 0
    if gsym[g]:
        if a > b:
            a, b = b, a
        if b > c:
            b, c = c, b
        if a > b:
            a, b = b, a
    return ((np.int64(g) * n_addr + a) * n_addr + b) * n_addr + c


@njit(cache=True)
def cost(func, in0, in1, in2, act, first, weights, group, garea, gsym, arity):
    """Sum of the active nodes' weights; the outputs of one multi-output cell reading the same inputs
    are one instance, costed once (``garea``)."""
    n = func.shape[0]
    n_addr = first + n
    total = 0.0
    seen = dict()
    seen[np.int64(-1)] = True
    for k in range(n):
        if act[k]:
            f = func[k]
            g = group[f]
            if g < 0:
                total += weights[f]
            else:
                key = _group_key(func, in0, in1, in2, k, g, n_addr, gsym, arity[f])
                if key not in seen:
                    seen[key] = True
                    total += garea[g]
    return total


@njit(cache=True, inline="always")
def _apply3(f, op, anf, st, r0, r1, r2, rd, ch):
    """Row ``rd`` of the store = function ``f`` of rows r0, r1, r2."""
    o = op[f]
    if o < GENERIC:
        _apply(o, st, r0, r1, rd, ch)
        return
    m0, m1, m2, m3 = anf[f, 0], anf[f, 1], anf[f, 2], anf[f, 3]
    m4, m5, m6, m7 = anf[f, 4], anf[f, 5], anf[f, 6], anf[f, 7]
    for i in range(ch):
        a = st[r0, i]
        b = st[r1, i]
        c = st[r2, i]
        ab = a & b
        st[rd, i] = (m0 ^ (m1 & a) ^ (m2 & b) ^ (m3 & ab)
                     ^ (c & (m4 ^ (m5 & a) ^ (m6 & b) ^ (m7 & ab))))


@njit(cache=True)
def simulate_full(func, in0, in1, in2, act, first, st, n_chunks, n_addr, op, anf):
    """Compute every active node into buffer 0 (inputs and constants must already be there)."""
    ch = st.shape[1]
    n = func.shape[0]
    for c in range(n_chunks):
        base = c * n_addr
        for k in range(n):
            if act[k]:
                _apply3(func[k], op, anf, st, base + in0[k], base + in1[k], base + in2[k], base + first + k, ch)


@njit(cache=True, inline="always")
def _simulate_chunk(func, in0, in1, in2, first, order, dirty, st, pbase, sbase, ch, op, anf):
    """One chunk: the dirty nodes of ``order`` into rows ``sbase + address``, clean ones read at ``pbase``."""
    for idx in range(order.shape[0]):
        k = order[idx]
        a = first + k
        if not dirty[a]:
            continue
        i0, i1, i2 = in0[k], in1[k], in2[k]
        r0 = (sbase if dirty[i0] else pbase) + i0
        r1 = (sbase if dirty[i1] else pbase) + i1
        r2 = (sbase if dirty[i2] else pbase) + i2
        _apply3(func[k], op, anf, st, r0, r1, r2, sbase + a, ch)


@njit(cache=True)
def simulate(func, in0, in1, in2, first, order, dirty, st, n_chunks, n_addr, buf, op, anf):
    """:func:`evolve.kernels.simulate` for three-input nodes."""
    ch = st.shape[1]
    for c in range(n_chunks):
        _simulate_chunk(func, in0, in1, in2, first, order, dirty, st, c * n_addr, (buf * n_chunks + c) * n_addr, ch,
                        op, anf)


@njit(cache=True)
def evaluate(func, in0, in1, in2, out, first, order, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed,
             stop_above, op, anf):
    """:func:`evolve.kernels.evaluate` for three-input nodes."""
    ch = st.shape[1]
    nbc = ex.shape[1]
    yb = np.empty((nbc, ch), np.uint64)
    db = np.empty((nbc, ch), np.uint64)
    tmp = np.empty((3, ch), np.uint64)
    wce = 0
    for c in range(n_chunks):
        pbase = c * n_addr
        sbase = (buf * n_chunks + c) * n_addr
        _simulate_chunk(func, in0, in1, in2, first, order, dirty, st, pbase, sbase, ch, op, anf)
        _gather_outputs(out, dirty, st, pbase, sbase, yb, nb, nbc, is_signed)
        m = _max_abs_diff(yb, ex, c, nbc, db, tmp)
        if m > wce:
            wce = m
            if wce > stop_above:
                return wce
    return wce


@njit(cache=True)
def changed_genes(func, in0, in1, in2, pfunc, pin0, pin1, pin2, arity):
    """changed[k]: node k's genes differ from the parent's (inputs its function does not read do not count)."""
    n = func.shape[0]
    changed = np.empty(n, np.bool_)
    for k in range(n):
        f = func[k]
        ar = arity[f]
        changed[k] = (f != pfunc[k] or in0[k] != pin0[k] or (ar >= 2 and in1[k] != pin1[k])
                      or (ar >= 3 and in2[k] != pin2[k]))
    return changed


@njit(cache=True)
def fanout(func, in0, in1, in2, out, first, order, arity, group, gsym, pin_cap, po_cap):
    """What the active nodes ``order`` drive and leave idle: (load, idle_node, idle_func).

    ``load[address]``: the input pins of every active cell reading it (``pin_cap[f, slot]``; the outputs of
    one multi-output cell reading the same inputs are one instance, whose pins load once, as the first of its
    nodes reads them), plus ``po_cap`` per primary output. ``idle_func[m]``: an output of a multi-output
    instance that no node uses (a half adder used for its sum alone); it still switches, and
    ``idle_node[m]`` is the instance's node whose toggles it is counted with."""
    n = func.shape[0]
    n_addr = first + n
    n_funcs = arity.shape[0]
    load = np.zeros(n_addr)
    seen = dict()  # instance key -> True; -2 - (instance key * n_funcs + function) -> True: that output is used
    seen[np.int64(-1)] = True
    inst_key = np.empty(n, np.int64)  # the multi-output instances: key, first node, whether a copy
    inst_node = np.empty(n, np.int32)
    inst_copy = np.zeros(n, np.bool_)
    m = 0
    for idx in range(order.shape[0]):
        k = order[idx]
        f = func[k]
        g = group[f]
        if g >= 0:
            key = _group_key(func, in0, in1, in2, k, g, n_addr, gsym, arity[f])
            out_key = -2 - (key * n_funcs + f)
            if key in seen:
                if out_key not in seen:
                    seen[out_key] = True
                    continue  # another output of an instance whose pins are loaded already
                inst_copy[m] = True  # the same output twice, a copy: an instance of its own
            else:
                seen[key] = True
                seen[out_key] = True
            inst_key[m] = key
            inst_node[m] = k
            m += 1
        for s in range(arity[f]):
            load[_slot(in0, in1, in2, k, s)] += pin_cap[f, s]
    for j in range(out.shape[0]):
        load[out[j]] += po_cap
    count = 0
    for pass_ in range(2):
        if pass_ == 1:
            idle_node = np.empty(count, np.int32)
            idle_func = np.empty(count, np.int8)
            count = 0
        for i in range(m):
            k = inst_node[i]
            f = func[k]
            for h in range(n_funcs):
                if group[h] != group[f] or h == f:
                    continue
                if inst_copy[i] or (-2 - (inst_key[i] * n_funcs + h)) not in seen:
                    if pass_ == 1:
                        idle_node[count] = k
                        idle_func[count] = h
                    count += 1
    return load, idle_node, idle_func


@njit(cache=True)
def mark_dirty(func, in0, in1, in2, first, act, changed, valid, dirty, arity):
    """:func:`evolve.kernels.mark_dirty` for three-input nodes (only the inputs a node reads count)."""
    n = func.shape[0]
    order = np.empty(n, np.int32)
    m = 0
    for k in range(n):
        a = first + k
        if act[k]:
            d = changed[k] or (not valid[a])
            for s in range(arity[func[k]]):
                if dirty[_slot(in0, in1, in2, k, s)]:
                    d = True
            dirty[a] = d
            order[m] = k
            m += 1
        else:
            dirty[a] = False
    return order[:m]


# ---------------------------------------------------------------------------------------------
# Simplification: constants, repeated inputs and structurally equal nodes.

@njit(cache=True)
def pattern(in0, in1, in2, k, ar):
    """The pattern of node ``k``'s used inputs: per slot 0/1 for a constant, 2.. for the first, second,
    third distinct address; unused slots count as constant 0. Returns ``c0 + 5 c1 + 25 c2``."""
    seen0 = -1
    seen1 = -1
    code = 0
    mul = 1
    for s in range(3):
        c = 0
        if s < ar:
            x = _slot(in0, in1, in2, k, s)
            if x <= 1:
                c = x
            elif x == seen0 or seen0 < 0:
                seen0 = x
                c = 2
            elif x == seen1 or seen1 < 0:
                seen1 = x
                c = 3
            else:
                c = 4
        code += c * mul
        mul *= 5
    return code


@njit(cache=True)
def _simplify(func, in0, in1, in2, out, first, strash, arity, sym, red_kind, red_val, red_map):
    n = func.shape[0]
    n_addr = first + n
    rep = np.arange(n_addr).astype(np.int32)
    seen = dict()
    seen[np.int64(-1)] = np.int64(-1)
    removed = 0
    act = active_mask(func, in0, in1, in2, out, first, arity)
    for k in range(n):
        in0[k] = rep[in0[k]]
        in1[k] = rep[in1[k]]
        in2[k] = rep[in2[k]]
        if not act[k]:
            continue
        me = first + k
        alias = -1
        f = func[k]
        p = pattern(in0, in1, in2, k, arity[f])
        kind = red_kind[f, p]
        if kind == 1:
            alias = red_val[f, p]
        elif kind == 2:
            alias = _slot(in0, in1, in2, k, red_val[f, p])
        elif kind == 3:
            s0 = _slot(in0, in1, in2, k, red_map[f, p, 0])
            s1 = _slot(in0, in1, in2, k, red_map[f, p, 1])
            s2 = _slot(in0, in1, in2, k, red_map[f, p, 2])
            func[k] = red_val[f, p]
            f = func[k]
            in0[k], in1[k], in2[k] = s0, s1, s2
        if alias >= 0:
            rep[me] = alias
            removed += 1
            continue
        ar = arity[f]
        for s in range(ar, 3):  # unused slots: constant 0, so equal nodes look equal
            if s == 1:
                in1[k] = 0
            else:
                in2[k] = 0
        if sym[f]:
            a, b, c = in0[k], in1[k], in2[k]
            if ar >= 2 and a > b:
                a, b = b, a
            if ar == 3:
                if b > c:
                    b, c = c, b
                if a > b:
                    a, b = b, a
            in0[k], in1[k], in2[k] = a, b, c
        if kind == 3:
            removed += 1
        if not strash:
            continue
        key = ((np.int64(f) * n_addr + in0[k]) * n_addr + in1[k]) * n_addr + in2[k]
        if key in seen:
            rep[me] = seen[key]
            removed += 1
        else:
            seen[key] = me
    for i in range(out.shape[0]):
        out[i] = rep[out[i]]
    return removed


@njit(cache=True)
def merge_equivalent(func, in0, in1, in2, out, first, arity, sym, red_kind, red_val, red_map):
    """Fold constant and repeated inputs and merge structurally equal nodes, in place; returns how
    many nodes were removed or reduced."""
    return _simplify(func, in0, in1, in2, out, first, True, arity, sym, red_kind, red_val, red_map)


@njit(cache=True)
def fold_constants(func, in0, in1, in2, out, first, arity, sym, red_kind, red_val, red_map):
    return _simplify(func, in0, in1, in2, out, first, False, arity, sym, red_kind, red_val, red_map)


@njit(cache=True)
def redirect(func, in0, in1, in2, out, first, addr, to):
    """Every reader of ``addr`` reads ``to`` instead (in place; no folding)."""
    n = func.shape[0]
    for q in range(addr - first + 1, n):
        if in0[q] == addr:
            in0[q] = to
        if in1[q] == addr:
            in1[q] = to
        if in2[q] == addr:
            in2[q] = to
    for q in range(out.shape[0]):
        if out[q] == addr:
            out[q] = to


# ---------------------------------------------------------------------------------------------
# Mutation: the operators of :func:`evolve.kernels.mutate`, for nodes of one to three inputs.

@njit(cache=True)
def mutate(func, in0, in1, in2, out, first, act, rng, cum, arity, sym, red_kind, red_val, red_map, inv):
    """Apply operators until one changes the phenotype; returns that operator's number.

    DELETE bypasses a node with one of its inputs, or (half of the time, ``inv`` being the inverter's code)
    makes it an inverter of that input."""
    n = func.shape[0]
    n_out = out.shape[0]
    n_funcs = arity.shape[0]
    for _ in range(100000):
        op = _pick_op(rng, cum)
        if op == OP_GENE:
            k = rng.integers(0, n)
            a = first + k
            g = rng.integers(0, 4)
            if g == 0:
                nf = rng.integers(0, n_funcs - 1)
                if nf >= func[k]:
                    nf += 1
                func[k] = nf
            else:
                x = rng.integers(0, a)
                if g == 1:
                    in0[k] = x
                elif g == 2:
                    in1[k] = x
                else:
                    in2[k] = x
                if g > arity[func[k]]:
                    continue  # an input the function does not read: neutral
            if act[k]:
                return op
        elif op == OP_OUTPUT:
            if _rewire_output(out, first + n, rng):
                return op
        elif op == OP_ADD:
            j = rng.integers(0, n + n_out)
            if j < n:
                if not act[j]:
                    continue
                slot = rng.integers(0, arity[func[j]])
                src = _slot(in0, in1, in2, j, slot)
                limit = first + j
            else:
                slot = 3
                src = out[j - n]
                limit = first + n
            lo = max(src + 1, first)
            if lo >= limit:
                continue
            m = _spare_between(act, first, lo, limit, rng)
            if m < 0:
                continue
            mk = m - first
            func[mk] = rng.integers(0, n_funcs)
            in0[mk] = src
            in1[mk] = rng.integers(0, m)
            in2[mk] = rng.integers(0, m)
            if slot == 0:
                in0[j] = m
            elif slot == 1:
                in1[j] = m
            elif slot == 2:
                in2[j] = m
            else:
                out[j - n] = m
            return op
        elif op == OP_DELETE or op == OP_CONST:
            k = rng.integers(0, n)
            if not act[k]:
                continue
            if op == OP_CONST:
                r = rng.integers(0, 2)
            else:
                r = _slot(in0, in1, in2, k, rng.integers(0, arity[func[k]]))
                if inv >= 0 and func[k] != inv and rng.integers(0, 2) == 1:
                    # most cells invert: the node becomes an inverter of that input instead of a wire
                    func[k] = inv
                    in0[k] = r
                    fold_constants(func, in0, in1, in2, out, first, arity, sym, red_kind, red_val, red_map)
                    return op
            redirect(func, in0, in1, in2, out, first, first + k, r)
            fold_constants(func, in0, in1, in2, out, first, arity, sym, red_kind, red_val, red_map)
            return op
        else:
            if merge_equivalent(func, in0, in1, in2, out, first, arity, sym, red_kind, red_val, red_map) > 0:
                return op
    return -1


@njit(cache=True)
def assess(func, in0, in1, in2, out, pfunc, pin0, pin1, pin2, first, weights, max_depth, cost_cap, valid,
           dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed, stop_above, arity, op, anf, group, garea, gsym):
    """:func:`evolve.kernels.assess` for three-input nodes: (wce, cost, depth, act, order)."""
    act = active_mask(func, in0, in1, in2, out, first, arity)
    c = cost(func, in0, in1, in2, act, first, weights, group, garea, gsym, arity)
    empty = np.empty(0, np.int32)
    if c > cost_cap:
        return -2, c, 0, act, empty
    dep = levels(func, in0, in1, in2, out, first, arity, act)
    if dep > max_depth:
        return -3, c, dep, act, empty
    changed = changed_genes(func, in0, in1, in2, pfunc, pin0, pin1, pin2, arity)
    order = mark_dirty(func, in0, in1, in2, first, act, changed, valid, dirty, arity)
    wce = evaluate(func, in0, in1, in2, out, first, order, dirty, st, n_chunks, n_addr, buf, ex, nb, is_signed,
                   stop_above, op, anf)
    return wce, c, dep, act, order
