"""Compiled replay of SCALE-Sim v2's demand streams through its buffer models (see ``scalesim.py``).

Dataflow codes: 0 ws, 1 os, 2 is. ``geom`` = (ifmap H, ifmap W, filter W, channels, stride H,
stride W, ofmap W). Operand codes: 0 ifmap, 1 filter. Addresses are operand-relative (SCALE-Sim adds
a per-operand offset, which changes nothing in the counts).

For every fold (columns outer, rows inner, as SCALE-Sim loops) and every demand row ``s`` of the fold,
the addresses a demand row holds follow from SCALE-Sim's construction (prefix/suffix rows of null
requests, skew, flip); the generators below name, for each dataflow, which cells of the row are valid.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def fold_efficiencies(sr, sc, R, C, t, fold_cycles):
    row_fold = (sr + R - 1) // R
    col_fold = (sc + C - 1) // C
    agg_map = 0.0
    agg_comp = 0.0
    n = 0
    for fc in range(col_fold):
        col_used = min(C, sc - fc * C)
        for fr in range(row_fold):
            row_used = min(R, sr - fr * R)
            mac = row_used * col_used
            agg_map += mac / (R * C)
            agg_comp += (mac * t) / (R * C * fold_cycles)
            n += 1
    return agg_map / n, agg_comp / n


@njit(cache=True, inline="always")
def _ifmap_addr(m, k, geom):
    H = geom[0]
    W = geom[1]
    fw = geom[2]
    ch = geom[3]
    ew = geom[6]
    orow = m // ew
    ocol = m - orow * ew
    irow = orow * geom[4]
    icol = ocol * geom[5]
    fwc = fw * ch
    crow = k // fwc
    kk = k - crow * fwc
    ccol = kk // ch
    cch = kk - ccol * ch
    if crow + irow < H and ccol + icol < W:
        return (crow * W + ccol) * ch + cch + (irow * W + icol) * ch
    return -1


@njit(cache=True, inline="always")
def _addr(operand, i, j, K, geom):
    """Address of element (i, j) of the ifmap (M x K) or filter (K x N) operand matrix."""
    if operand == 0:
        return _ifmap_addr(i, j, geom)
    return j * K + i


@njit(cache=True)
def _prefetch_elem(df, operand, row, c, R, C, M, K, N, geom):
    """Element (row, c) of SCALE-Sim's prefetch matrix for this dataflow and operand."""
    if df == 0:
        if operand == 0:  # ws ifmap: row folds of the M x K matrix, R columns each
            fr = row // M
            col = fr * R + c
            return _ifmap_addr(row - fr * M, col, geom) if col < K else -1
        fc = row // K  # ws filter: column folds of K x N, C columns each
        col = fc * C + c
        return col * K + (row - fc * K) if col < N else -1
    if df == 1:
        if operand == 0:  # os ifmap: transposed (K x M), row folds of R columns
            fr = row // K
            m = fr * R + c
            return _ifmap_addr(m, row - fr * K, geom) if m < M else -1
        fc = row // K  # os filter: K x N, column folds of C
        col = fc * C + c
        return col * K + (row - fc * K) if col < N else -1
    if operand == 0:  # is ifmap: transposed (K x M), column folds of C
        fc = row // K
        m = fc * C + c
        return _ifmap_addr(m, row - fc * K, geom) if m < M else -1
    fr = row // N  # is filter: per row fold, the transposed slice (N x R)
    k = fr * R + c
    return (row - fr * N) * K + k if k < K else -1


@njit(cache=True)
def prefetch_sequence(df, operand, R, C, M, K, N, geom):
    """The operand's valid addresses in SCALE-Sim's prefetch order, and the matrix size (with nulls).

    The skewed operands are rolled out along anti-diagonals (SCALE-Sim's fix for its issues #15/#16);
    the others (ws filter, is ifmap) are read row by row.
    """
    if df == 0:
        rows, cols, rolled = (M * ((K + R - 1) // R), R, True) if operand == 0 else \
            (K * ((N + C - 1) // C), C, False)
    elif df == 1:
        rows, cols, rolled = (K * ((M + R - 1) // R), R, True) if operand == 0 else \
            (K * ((N + C - 1) // C), C, True)
    else:
        rows, cols, rolled = (K * ((M + C - 1) // C), C, False) if operand == 0 else \
            (N * ((K + R - 1) // R), R, True)
    out = np.empty(rows * cols, dtype=np.int64)
    n = 0
    if rolled:
        for d in range(rows + cols):
            r_hi = min(d, rows - 1)
            r_lo = max(0, d - cols + 1)
            for r in range(r_hi, r_lo - 1, -1):
                a = _prefetch_elem(df, operand, r, d - r, R, C, M, K, N, geom)
                if a != -1:
                    out[n] = a
                    n += 1
    else:
        for r in range(rows):
            for c in range(cols):
                a = _prefetch_elem(df, operand, r, c, R, C, M, K, N, geom)
                if a != -1:
                    out[n] = a
                    n += 1
    return out[:n], rows * cols


@njit(cache=True)
def _csr(seq, eps, space):
    """For every address, the ascending ids of the prefetch sets (``eps`` valid elements each) holding it."""
    ptr = np.zeros(space + 1, dtype=np.int64)
    for j in range(seq.shape[0]):
        ptr[seq[j] + 1] += 1
    for a in range(space):
        ptr[a + 1] += ptr[a]
    fill = ptr[:-1].copy()
    sets = np.empty(seq.shape[0], dtype=np.int64)
    for j in range(seq.shape[0]):
        a = seq[j]
        sets[fill[a]] = j // eps
        fill[a] += 1
    return ptr, sets


@njit(cache=True)
def _user_hit(a, ptr, sets, s0, s1):
    lo = ptr[a]
    hi = ptr[a + 1]
    if lo == hi:
        return False
    if s0 < s1:
        left = lo
        right = hi
        while left < right:  # first set id >= s0
            mid = (left + right) // 2
            if sets[mid] < s0:
                left = mid + 1
            else:
                right = mid
        return left < hi and sets[left] < s1
    return sets[hi - 1] >= s0 or sets[lo] < s1


# read-buffer state (USER mode): a_start, a_end, last_prefetch_cycle, num_access, initialised, prefetches
# read-buffer parameters: n_lines, a_lines, p_lines, active_size, prefetch_size, bw, fetch_rows

@njit(cache=True)
def _user_read(buf, n, cycle, st, par, ptr, sets):
    nl = par[0]
    bw = par[5]
    if st[4] == 0:
        nreq = min((par[3] + bw - 1) // bw, par[6])
        st[3] += nreq * bw
        st[2] = cycle - 1
        st[0] = 0
        st[1] = par[1]
        st[4] = 1
    offset = 1
    for i in range(n):
        a = buf[i]
        guard = 0
        while not _user_hit(a, ptr, sets, st[0], st[1]):
            st[0] = (st[0] + par[2]) % nl
            st[1] = (st[0] + par[1]) % nl
            nreq = (par[4] + bw - 1) // bw
            st[3] += nreq * bw
            st[2] += nreq + 1
            st[5] += 1
            pot = st[2] - (cycle + offset)
            if pot > 0:
                offset += pot
            guard += 1
            if guard > nl + 2:
                raise RuntimeError("address missing from the prefetch sets (SCALE-Sim would not terminate)")
    return offset - 1


@njit(cache=True)
def _calc_read(buf, n, last, st):
    """Estimate-bandwidth read buffer: st = (block, inserted in block, block capacity, misses)."""
    for i in range(n):
        a = buf[i]
        if last[a] == st[0]:
            continue
        last[a] = st[0]
        st[3] += 1
        st[1] += 1
        if st[1] == st[2]:
            st[0] += 1
            st[1] = 0


# write-buffer state: free, line_idx, n_closed, drain_ptr, drain_end_cycle, num_access
# write-buffer parameters: total, active, bw, lines_per_drain

@njit(cache=True)
def _drain(start, st, par, valid):
    end = min(st[3] + par[3], st[2])
    n = end - st[3]
    if n <= 0:
        raise RuntimeError("write buffer drain with no lines (SCALE-Sim would fail here)")
    size = n * par[2] - (par[2] - valid[end - 1])
    st[5] += size
    st[0] += size
    st[3] = end
    return start + n - 1


@njit(cache=True)
def _write_line(count, cycle, st, par, valid):
    offset = 0
    current = cycle
    for _ in range(count):
        st[1] += 1
        st[0] -= 1
        if st[1] == par[2]:
            valid[st[2]] = par[2]
            st[2] += 1
            st[1] = 0
        if current < st[4]:
            if not st[0] > 0:
                offset += st[4] - current
                current = st[4]
        elif st[0] < par[1]:
            if st[1] != 0:
                valid[st[2]] = st[1]
                st[2] += 1
                st[1] = 0
            st[4] = _drain(current, st, par, valid)
    return offset


@njit(cache=True)
def _lines(df, s, fr, fc, R, C, M, K, N, T, rows_used, cols_used, geom, b_if, b_fi):
    """Fill the ifmap and filter addresses of demand row ``s`` of fold (fr, fc); count ofmap writes."""
    n_if = 0
    n_fi = 0
    n_of = 0
    if df == 0:  # ws: ifmap skewed over R after R prefix rows; filter flipped in rows 0..R-1
        for c in range(max(0, s - R - T + 1), min(rows_used, s - R + 1)):
            a = _ifmap_addr(s - c - R, fr * R + c, geom)
            if a != -1:
                b_if[n_if] = a
                n_if += 1
        if s < R and R - 1 - s < rows_used:
            k = fr * R + R - 1 - s
            for c in range(cols_used):
                b_fi[n_fi] = (fc * C + c) * K + k
                n_fi += 1
        lo = max(0, s - 2 * R + 1 - T + 1)
        hi = min(cols_used, s - 2 * R + 2)
        n_of = max(0, hi - lo)
    elif df == 1:  # os: ifmap and filter skewed from row 0; outputs after T - 1 rows, flipped
        for c in range(max(0, s - T + 1), min(rows_used, s + 1)):
            a = _ifmap_addr(fr * R + c, s - c, geom)
            if a != -1:
                b_if[n_if] = a
                n_if += 1
        for c in range(max(0, s - T + 1), min(cols_used, s + 1)):
            b_fi[n_fi] = (fc * C + c) * K + (s - c)
            n_fi += 1
        lo = max(0, s - T - R + 2)
        hi = min(cols_used, s - T - R + rows_used + 2)
        n_of = max(0, hi - lo)
    else:  # is: ifmap flipped in rows 0..R-1 (C wide); filter skewed over R after R prefix rows
        if s < R and R - 1 - s < rows_used:
            k = fr * R + R - 1 - s
            for c in range(cols_used):
                a = _ifmap_addr(fc * C + c, k, geom)
                if a != -1:
                    b_if[n_if] = a
                    n_if += 1
        for c in range(max(0, s - R - T + 1), min(rows_used, s - R + 1)):
            b_fi[n_fi] = (s - c - R) * K + fr * R + c
            n_fi += 1
        lo = max(0, s - 2 * R + 1 - T + 1)
        hi = min(cols_used, s - 2 * R + 2)
        n_of = max(0, hi - lo)
    return n_if, n_fi, n_of


@njit(cache=True)
def replay(df, R, C, M, K, N, geom, if_bytes, fi_bytes, of_bytes, bw, if_seq, if_total, fi_seq, fi_total):
    """Walk every demand row through the three buffers; returns
    (total cycles, stall cycles, ifmap DRAM reads, filter DRAM reads, ofmap DRAM writes)."""
    if df == 0:
        sr, sc, T = K, N, M
        L = T + 2 * R + C - 2
    elif df == 1:
        sr, sc, T = M, N, K
        L = T + R + C - 2
    else:
        sr, sc, T = K, M, N
        L = T + 2 * R + C - 2
    row_fold = (sr + R - 1) // R
    col_fold = (sc + C - 1) // C
    user = bw > 0
    if_space = geom[0] * geom[1] * geom[3]
    fi_space = K * N
    # read buffers
    if_last = np.full(if_space if not user else 1, -1, dtype=np.int64)
    fi_last = np.full(fi_space if not user else 1, -1, dtype=np.int64)
    if_st = np.zeros(6, dtype=np.int64)
    fi_st = np.zeros(6, dtype=np.int64)
    if_par = np.zeros(7, dtype=np.int64)
    fi_par = np.zeros(7, dtype=np.int64)
    if user:
        if_ptr, if_sets = _csr(if_seq, (if_bytes + 99) // 100, if_space)
        fi_ptr, fi_sets = _csr(fi_seq, (fi_bytes + 99) // 100, fi_space)
        for par, total, seq, tot_elems in ((if_par, if_bytes, if_seq, if_total),
                                           (fi_par, fi_bytes, fi_seq, fi_total)):
            eps = (total + 99) // 100
            active = (total + 1) // 2
            prefetch = total - active
            nl = seq.shape[0] // eps + 1
            a_lines = min((active + eps - 1) // eps, nl)
            p_lines = min((prefetch + eps - 1) // eps, nl - a_lines)
            par[0] = nl
            par[1] = a_lines
            par[2] = p_lines
            par[3] = active
            par[4] = prefetch
            par[5] = bw
            par[6] = (tot_elems + bw - 1) // bw
    else:
        if_ptr = np.zeros(1, dtype=np.int64)
        if_sets = np.zeros(1, dtype=np.int64)
        fi_ptr = if_ptr
        fi_sets = if_sets
        for st, total in ((if_st, if_bytes), (fi_st, fi_bytes)):
            items = total // 100
            st[2] = 50 * items if items > 0 else -1
    # write buffer
    w_total = of_bytes
    w_active = (w_total + 1) // 2
    w_bw = bw if user else C
    w_par = np.array([w_total, w_active, w_bw, (w_total - w_active + w_bw - 1) // w_bw], dtype=np.int64)
    w_st = np.zeros(6, dtype=np.int64)
    w_st[0] = w_total
    if df == 1:
        of_valid = M * N
    elif df == 0:
        of_valid = row_fold * M * N
    else:
        of_valid = row_fold * N * M
    valid = np.zeros(of_valid + 2, dtype=np.int64)
    b_if = np.empty(max(R, C), dtype=np.int64)
    b_fi = np.empty(max(R, C), dtype=np.int64)
    stall = 0
    i = 0
    last_out = 0
    for fc in range(col_fold):
        cols_used = min(C, sc - fc * C)
        for fr in range(row_fold):
            rows_used = min(R, sr - fr * R)
            for s in range(L):
                cycle = i + stall
                n_if, n_fi, n_of = _lines(df, s, fr, fc, R, C, M, K, N, T, rows_used, cols_used, geom,
                                          b_if, b_fi)
                st_if = 0
                st_fi = 0
                if user:
                    st_if = _user_read(b_if, n_if, cycle, if_st, if_par, if_ptr, if_sets)
                    st_fi = _user_read(b_fi, n_fi, cycle, fi_st, fi_par, fi_ptr, fi_sets)
                else:
                    _calc_read(b_if, n_if, if_last, if_st)
                    _calc_read(b_fi, n_fi, fi_last, fi_st)
                st_of = _write_line(n_of, cycle, w_st, w_par, valid)
                last_out = cycle + st_of
                stall += max(st_if, st_fi, st_of)
                i += 1
    # drain what is left in the write buffer
    if w_st[1] != 0:
        valid[w_st[2]] = w_st[1]
        w_st[2] += 1
        w_st[1] = 0
    cyc = last_out
    while w_st[3] < w_st[2]:
        cyc = _drain(cyc, w_st, w_par, valid) + 1
    if_dram = if_st[3]
    fi_dram = fi_st[3]
    return np.array([last_out, stall, if_dram, fi_dram, w_st[5]], dtype=np.int64)
