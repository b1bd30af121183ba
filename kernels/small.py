"""Loops for layers too small for BLAS, along the contiguous batch axis.

A layer of a few units is a handful of multiply-adds per row: loads and stores
bound it, not arithmetic. So each pass over the batch combines four source rows
into four output rows (a 4 -> 4 layer loads and stores each output row once),
applying forward's relu while the value is in a register; the weight gradient
(and the bias's) takes 2 x 4 blocks of dot products per pass.
Rows and sources outside a group of four go one at a time, so every product is
computed exactly once. ``dense`` uses these when BLAS does not pay; A/B figures
in docs/design.md.
"""

from ._jit import jit




@jit
def combine_rows(out, src, w, trans, init, relu):
    # out (R, m) = init[:, None] + c @ src with c = w.T if trans else w, (R, K), then max(., 0)
    # when relu; src (K, m); init (R,) or (0,); K >= 1
    n_rows, n_src = out.shape[0], src.shape[0]
    zero = out.dtype.type(0)
    full = n_src - n_src % 4  # sources in groups of four, then one at a time
    for r in range(0, n_rows - n_rows % 4, 4):  # rows in groups of four
        b = (init[r], init[r + 1], init[r + 2], init[r + 3]) if init.shape[0] > 0 else (
            zero, zero, zero, zero)
        for k in range(0, full, 4):
            _pass44(out, src, r, k, _coefs(w, trans, r, k), b, k == 0, relu and k + 4 == n_src)
        for k in range(full, n_src):
            for q in range(4):
                c = w[k, r + q] if trans else w[r + q, k]
                _pass11(out, src, r + q, k, c, b[q], k == 0, relu and k == n_src - 1)
    for r in range(n_rows - n_rows % 4, n_rows):  # the remaining rows, source by source
        b = init[r] if init.shape[0] > 0 else zero
        for k in range(n_src):
            c = w[k, r] if trans else w[r, k]
            _pass11(out, src, r, k, c, b, k == 0, relu and k == n_src - 1)


@jit(inline=True)
def _coefs(w, trans, r, k):
    # c[i][j]: the coefficient of source k + j for output row r + i (i, j < 4)
    if trans:
        return ((w[k, r], w[k + 1, r], w[k + 2, r], w[k + 3, r]),
                (w[k, r + 1], w[k + 1, r + 1], w[k + 2, r + 1], w[k + 3, r + 1]),
                (w[k, r + 2], w[k + 1, r + 2], w[k + 2, r + 2], w[k + 3, r + 2]),
                (w[k, r + 3], w[k + 1, r + 3], w[k + 2, r + 3], w[k + 3, r + 3]))
    return ((w[r, k], w[r, k + 1], w[r, k + 2], w[r, k + 3]),
            (w[r + 1, k], w[r + 1, k + 1], w[r + 1, k + 2], w[r + 1, k + 3]),
            (w[r + 2, k], w[r + 2, k + 1], w[r + 2, k + 2], w[r + 2, k + 3]),
            (w[r + 3, k], w[r + 3, k + 1], w[r + 3, k + 2], w[r + 3, k + 3]))


@jit(inline=True)
def _relu(s, relu, zero):
    # max(s, 0) when relu (NaN stays NaN, as np.maximum), else s
    return zero if relu and s <= zero else s


@jit(inline=True)
def _base(b, current, first):
    # what a pass adds to: b on the first pass, else the value so far (both evaluated: the
    # loop then has no conditional load and vectorizes)
    return b if first else current


@jit
def _pass44(o, x, r, k, c, b, first, relu):
    # one pass over the batch: rows r .. r + 3 of o += c @ rows k .. k + 3 of x, starting from
    # b instead on the first pass, then max(., 0) when relu. Every load is unconditional (a
    # select picks) and whole arrays are passed, so that the loop vectorizes behind one
    # overlap check per array.
    zero = o.dtype.type(0)
    (c00, c01, c02, c03), (c10, c11, c12, c13), (c20, c21, c22, c23), (c30, c31, c32, c33) = c
    b0, b1, b2, b3 = b
    for t in range(o.shape[1]):
        v0, v1, v2, v3 = x[k, t], x[k + 1, t], x[k + 2, t], x[k + 3, t]
        s0 = _base(b0, o[r, t], first) + c00 * v0 + c01 * v1 + c02 * v2 + c03 * v3
        s1 = _base(b1, o[r + 1, t], first) + c10 * v0 + c11 * v1 + c12 * v2 + c13 * v3
        s2 = _base(b2, o[r + 2, t], first) + c20 * v0 + c21 * v1 + c22 * v2 + c23 * v3
        s3 = _base(b3, o[r + 3, t], first) + c30 * v0 + c31 * v1 + c32 * v2 + c33 * v3
        o[r, t], o[r + 1, t] = _relu(s0, relu, zero), _relu(s1, relu, zero)
        o[r + 2, t], o[r + 3, t] = _relu(s2, relu, zero), _relu(s3, relu, zero)


@jit
def _pass11(o, x, r, k, c, b, first, relu):
    # _pass44 for one output row and one source row
    zero = o.dtype.type(0)
    for t in range(o.shape[1]):
        o[r, t] = _relu(_base(b, o[r, t], first) + c * x[k, t], relu, zero)


@jit
def outer_rows(gw, gb, a_in, d_out, scale, keep):
    # gw (n_in, n_out) = keep * gw + scale * a_in @ d_out.T: dot products along the batch, a
    # 2 x 4 block of gw per pass over the batch (six rows loaded for eight products);
    # remaining rows and columns of gw in passes of their own. gb (n_out,) likewise with the
    # sums of d_out's rows, taken in the first passes; gb may have no elements (no bias).
    n_in, n_out = gw.shape
    zero = gw.dtype.type(0)
    has_b = gb.shape[0] > 0
    for i in range(0, n_in, 2):
        i1 = i + 1 if i + 1 < n_in else i  # a last single row is read twice, kept once
        for j in range(0, n_out - n_out % 4, 4):
            s0, s1, sums = _dot24(a_in[i], a_in[i1], (d_out[j], d_out[j + 1], d_out[j + 2],
                                                      d_out[j + 3]), zero)
            for q in range(4):
                _store(gw, i, j + q, s0[q], scale, keep)
                if i1 != i:
                    _store(gw, i1, j + q, s1[q], scale, keep)
                if i == 0 and has_b:
                    gb[j + q] = scale * sums[q] if keep == 0.0 else keep * gb[j + q] + scale * sums[q]
        for j in range(n_out - n_out % 4, n_out):
            s0 = s1 = total = zero
            a0, a1, e = a_in[i], a_in[i1], d_out[j]
            for t in range(e.shape[0]):
                s0 += a0[t] * e[t]
                s1 += a1[t] * e[t]
                total += e[t]
            _store(gw, i, j, s0, scale, keep)
            if i1 != i:
                _store(gw, i1, j, s1, scale, keep)
            if i == 0 and has_b:
                gb[j] = scale * total if keep == 0.0 else keep * gb[j] + scale * total


@jit(inline=True)
def _dot24(a0, a1, d, zero):
    # ((a0 . d[q] for q < 4), (a1 . d[q] for q < 4)), and (sum of d[q] for q < 4)
    d0, d1, d2, d3 = d
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
    t0 = t1 = t2 = t3 = zero
    for t in range(a0.shape[0]):
        u, v = a0[t], a1[t]
        e0, e1, e2, e3 = d0[t], d1[t], d2[t], d3[t]
        t0 += e0
        t1 += e1
        t2 += e2
        t3 += e3
        s00 += u * e0
        s01 += u * e1
        s02 += u * e2
        s03 += u * e3
        s10 += v * e0
        s11 += v * e1
        s12 += v * e2
        s13 += v * e3
    return (s00, s01, s02, s03), (s10, s11, s12, s13), (t0, t1, t2, t3)


@jit(inline=True)
def _store(g, i, j, s, scale, keep):
    # g[i, j] = keep * g[i, j] + scale * s (keep = 0: g[i, j] is not read)
    g[i, j] = scale * s if keep == 0.0 else keep * g[i, j] + scale * s
