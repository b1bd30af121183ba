"""One dense layer and the loss: forward/backward pairs, outputs first.

Layout is feature-major: an activation array has shape (units, batch), so the
batch is the contiguous axis and loops over it vectorize even when a layer has
only a handful of units. Weights keep the user's (n_in, n_out) shape.

Activation and loss are integer codes (the names are in ``fastnn.kernels``),
so one compiled kernel serves every network.
"""

import numpy as np

from ._jit import FASTMATH_STRICT, jit
from ._views import opaque, unliteral
from .blas import gemm
from .vexp import exp64

IDENTITY, RELU, SIGMOID, TANH = 0, 1, 2, 3
SSE, MSE = 0, 1


@jit(inline=True)
def _use_blas(n_in, n_out, m):
    # Below ~32k multiply-adds the call overhead of BLAS dominates (measured).
    return n_in * n_out * m >= 32768 and n_in >= 8 and n_out >= 8


@jit(internal=True, fastmath=FASTMATH_STRICT)  # exp64 must not be reassociated
def _sigmoid_forward(a):
    # a (n, m) in place: z -> 1 / (1 + exp(-z)), computed in float64 for float32 data too
    n, m = a.shape
    for j in range(n):
        row = a[j]
        for t in range(m):
            row[t] = 1.0 / (1.0 + exp64(-np.float64(row[t])))


@jit
def activation_forward(a, act):
    # a (n, m) in place: z -> act(z)
    n, m = a.shape
    if act == IDENTITY:
        return
    if act == SIGMOID:  # vectorized exp; libm's np.exp is a call per value
        _sigmoid_forward(a)
        return
    zero = a.dtype.type(0)  # float32 stays float32
    opaque_one = a.dtype.type(opaque(1))  # a plain store, not a masked one (see opaque)
    for j in range(n):
        row = a[j]
        if act == RELU:
            for t in range(m):
                z = row[t]
                row[t] = zero if z <= zero else z * opaque_one  # NaN stays NaN, as np.maximum
        else:
            for t in range(m):
                row[t] = np.tanh(row[t])


@jit
def activation_backward(d, a, act):
    # d (n, m) *= act'(z), from the activation's output a = act(z) (n, m)
    n, m = d.shape
    if act == IDENTITY:
        return
    zero, one = d.dtype.type(0), d.dtype.type(1)  # float32 stays float32
    opaque_one = d.dtype.type(opaque(1))  # a plain store, not a masked one (see opaque)
    for j in range(n):
        drow = d[j]
        arow = a[j]
        if act == RELU:
            for t in range(m):
                drow[t] = drow[t] * opaque_one if arow[t] > zero else zero  # np.where: no inf * 0
        elif act == SIGMOID:
            for t in range(m):
                s = arow[t]
                drow[t] = drow[t] * (s * (one - s))
        else:
            for t in range(m):
                s = arow[t]
                drow[t] = drow[t] * (one - s * s)


# How a combined row ends, applied while the value is still in a register:
# nothing, relu (forward), or the relu mask of the layer below (backward: keep
# the value where that layer's output aux > 0, as np.where, so no inf * 0).
# Other activations call libm or are rarer; they run as a separate pass.
FIN_NONE, FIN_RELU, FIN_RELU_MASK = 0, 1, 2


@jit(internal=True)
def _pass4(o, x, c, b, g, m, first, fin):
    # o[r][t] = fin(base_r + sum_k c[r][k] * x[k][t]) for 4 output rows and 4 source rows;
    # base_r = b[r] on the first pass, else o[r][t]; g: the 4 rows of aux (FIN_RELU_MASK).
    # first and fin are literals at every call site (see _dispatch): Numba compiles one
    # branch-free, vectorized loop per pair.
    o0, o1, o2, o3 = o
    x0, x1, x2, x3 = x
    g0, g1, g2, g3 = g
    c0, c1, c2, c3 = c
    zero = o0.dtype.type(0)  # the array's dtype: float32 stays float32
    for t in range(m):
        v0, v1, v2, v3 = x0[t], x1[t], x2[t], x3[t]
        s0 = (b[0] if first else o0[t]) + c0[0] * v0 + c0[1] * v1 + c0[2] * v2 + c0[3] * v3
        s1 = (b[1] if first else o1[t]) + c1[0] * v0 + c1[1] * v1 + c1[2] * v2 + c1[3] * v3
        s2 = (b[2] if first else o2[t]) + c2[0] * v0 + c2[1] * v1 + c2[2] * v2 + c2[3] * v3
        s3 = (b[3] if first else o3[t]) + c3[0] * v0 + c3[1] * v1 + c3[2] * v2 + c3[3] * v3
        if fin == FIN_RELU:  # NaN stays NaN, as np.maximum
            s0 = zero if s0 <= zero else s0
            s1 = zero if s1 <= zero else s1
            s2 = zero if s2 <= zero else s2
            s3 = zero if s3 <= zero else s3
        elif fin == FIN_RELU_MASK:
            s0 = s0 if g0[t] > zero else zero
            s1 = s1 if g1[t] > zero else zero
            s2 = s2 if g2[t] > zero else zero
            s3 = s3 if g3[t] > zero else zero
        o0[t], o1[t], o2[t], o3[t] = s0, s1, s2, s3


@jit(internal=True)
def _pass4x1(o, x, c, b, g, m, first, fin):
    # _pass4 with one source row x (c: its four coefficients): a remainder of one source
    # row costs a quarter of a padded four-row pass
    o0, o1, o2, o3 = o
    g0, g1, g2, g3 = g
    zero = o0.dtype.type(0)
    for t in range(m):
        v = x[t]
        s0 = (b[0] if first else o0[t]) + c[0] * v
        s1 = (b[1] if first else o1[t]) + c[1] * v
        s2 = (b[2] if first else o2[t]) + c[2] * v
        s3 = (b[3] if first else o3[t]) + c[3] * v
        if fin == FIN_RELU:
            s0 = zero if s0 <= zero else s0
            s1 = zero if s1 <= zero else s1
            s2 = zero if s2 <= zero else s2
            s3 = zero if s3 <= zero else s3
        elif fin == FIN_RELU_MASK:
            s0 = s0 if g0[t] > zero else zero
            s1 = s1 if g1[t] > zero else zero
            s2 = s2 if g2[t] > zero else zero
            s3 = s3 if g3[t] > zero else zero
        o0[t], o1[t], o2[t], o3[t] = s0, s1, s2, s3


@jit(internal=True)
def _pass1(o, x, c, b, g, m, first, fin):
    # _pass4 for a single output row: o and g rows, c four coefficients, b a scalar
    x0, x1, x2, x3 = x
    zero = o.dtype.type(0)
    for t in range(m):
        s = (b if first else o[t]) + c[0] * x0[t] + c[1] * x1[t] + c[2] * x2[t] + c[3] * x3[t]
        if fin == FIN_RELU:
            s = zero if s <= zero else s
        elif fin == FIN_RELU_MASK:
            s = s if g[t] > zero else zero
        o[t] = s


@jit(inline=True)
def _dispatch(kernel, o, x, c, b, g, m, first, fin):
    # runtime flags -> literal ones (see _pass4)
    if first:
        if fin == FIN_RELU:
            kernel(o, x, c, b, g, m, True, FIN_RELU)
        elif fin == FIN_RELU_MASK:
            kernel(o, x, c, b, g, m, True, FIN_RELU_MASK)
        else:
            kernel(o, x, c, b, g, m, True, FIN_NONE)
    elif fin == FIN_RELU:
        kernel(o, x, c, b, g, m, False, FIN_RELU)
    elif fin == FIN_RELU_MASK:
        kernel(o, x, c, b, g, m, False, FIN_RELU_MASK)
    else:
        kernel(o, x, c, b, g, m, False, FIN_NONE)


@jit(internal=True)  # not inlined: five inlined copies cost ~2 s of first compile, no speed
def _coefs(w, r, k, p, trans):
    # four coefficients of output row r for source rows k..k+p-1 (p <= 4), spread over four
    # slots as _sources does; a split coefficient is halved or quartered, which is exact
    # (powers of two), and c/2 * x + c/2 * x is c * x up to rounding, even for x = +-inf
    half, quarter = w.dtype.type(0.5), w.dtype.type(0.25)
    if trans:
        a, b, c, d = w[k, r], w[k + min(1, p - 1), r], w[k + min(2, p - 1), r], w[k + p - 1, r]
    else:
        a, b, c, d = w[r, k], w[r, k + min(1, p - 1)], w[r, k + min(2, p - 1)], w[r, k + p - 1]
    if p == 4:
        return (a, b, c, d)
    if p == 3:
        return (a, b, half * c, half * d)
    if p == 2:
        return (half * a, half * a, half * d, half * d)
    return (quarter * a, quarter * a, quarter * a, quarter * a)


@jit(inline=True)
def _sources(src, k, p):
    # source rows k..k+p-1 (p <= 4) in four slots: 0,1,2,3 / 0,1,2,2 / 0,0,1,1 / 0,0,0,0
    if p == 2:
        return (src[k], src[k], src[k + 1], src[k + 1])
    return (src[k], src[k + min(1, p - 1)], src[k + min(2, p - 1)], src[k + p - 1])


@jit(internal=True)
def _combine_rows(out, src, w, trans, init, fin, aux):
    # out (R, m) = fin(init[:, None] + c @ src), c = w.T if trans else w; src (K, m),
    # init (R,) or (0,), aux (R, m) read by FIN_RELU_MASK. Small layers: axpy along the
    # contiguous batch axis, four source rows into four output rows per pass over the
    # batch (a 4 -> 4 layer loads and stores each output row once).
    n_rows, m = out.shape
    n_src = src.shape[0]
    has_init = init.shape[0] > 0
    zero = out.dtype.type(0)
    if n_src == 0:  # no source rows: out = fin(init)
        for r in range(n_rows):
            b = init[r] if has_init else zero
            for t in range(m):
                v = zero if fin == FIN_RELU and b <= zero else b
                out[r, t] = zero if fin == FIN_RELU_MASK and not aux[r, t] > zero else v
        return
    r = unliteral(0)  # a literal 0 would compile _coefs a second time
    while r < n_rows:
        q = 4 if n_rows - r >= 4 else 1  # output rows in this block
        for k in range(0, n_src, 4):
            p = min(4, n_src - k)
            first, fin_k = k == 0, fin if k + p == n_src else FIN_NONE
            if q == 4:
                o = (out[r], out[r + 1], out[r + 2], out[r + 3])
                g = (aux[r], aux[r + 1], aux[r + 2], aux[r + 3])
                b = ((init[r], init[r + 1], init[r + 2], init[r + 3]) if has_init
                     else (zero, zero, zero, zero))
                if p == 1:
                    c = (w[k, r], w[k, r + 1], w[k, r + 2], w[k, r + 3]) if trans else (
                        w[r, k], w[r + 1, k], w[r + 2, k], w[r + 3, k])
                    _dispatch(_pass4x1, o, src[k], c, b, g, m, first, fin_k)
                else:
                    c = (_coefs(w, r, k, p, trans), _coefs(w, r + 1, k, p, trans),
                         _coefs(w, r + 2, k, p, trans), _coefs(w, r + 3, k, p, trans))
                    _dispatch(_pass4, o, _sources(src, k, p), c, b, g, m, first, fin_k)
            else:
                _dispatch(_pass1, out[r], _sources(src, k, p), _coefs(w, r, k, p, trans),
                          init[r] if has_init else zero, aux[r], m, first, fin_k)
        r += q


@jit(inline=True)
def _store_update(gw, i, j, width, sums, scale, keep):
    # gw[i, j:j+width] = keep * gw[i, j:j+width] + scale * sums[:width]
    for q in range(width):
        g = scale * sums[q]
        gw[i, j + q] = g if keep == 0.0 else keep * gw[i, j + q] + g


@jit(internal=True)
def _outer_update(gw, a_in, d_out, scale, keep):
    # gw (n_in, n_out) = keep * gw + scale * a_in @ d_out.T for small layers: dot products
    # along the batch axis. Loads bound them, so each pass over the batch computes a 2 x 4
    # block of gw (six rows loaded for eight products), or a 4 x 1 block for a last single
    # column. Missing rows of a partial block repeat a real one (read only) and their sums
    # are dropped.
    n_in, m = a_in.shape
    n_out = d_out.shape[0]
    zero = a_in.dtype.type(0)  # sums in the data's dtype, as BLAS does
    for j in range(0, n_out, 4):
        width = min(4, n_out - j)
        if width == 1:
            e = d_out[j]
            for i in range(0, n_in, 4):
                rows = min(4, n_in - i)
                a0 = a_in[i]
                a1 = a_in[i + 1] if rows > 1 else a0
                a2 = a_in[i + 2] if rows > 2 else a0
                a3 = a_in[i + 3] if rows > 3 else a0
                s0 = s1 = s2 = s3 = zero
                for t in range(m):
                    v = e[t]
                    s0 += a0[t] * v
                    s1 += a1[t] * v
                    s2 += a2[t] * v
                    s3 += a3[t] * v
                sums = (s0, s1, s2, s3)
                for q in range(rows):
                    _store_update(gw, i + q, j, 1, (sums[q], zero, zero, zero), scale, keep)
            continue
        d0 = d_out[j]
        d1 = d_out[j + 1] if width > 1 else d0
        d2 = d_out[j + 2] if width > 2 else d0
        d3 = d_out[j + 3] if width > 3 else d0
        for i in range(0, n_in, 2):
            pair = i + 1 < n_in
            a0 = a_in[i]
            a1 = a_in[i + 1] if pair else a0
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            for t in range(m):
                u, v = a0[t], a1[t]
                e0, e1, e2, e3 = d0[t], d1[t], d2[t], d3[t]
                s00 += u * e0
                s01 += u * e1
                s02 += u * e2
                s03 += u * e3
                s10 += v * e0
                s11 += v * e1
                s12 += v * e2
                s13 += v * e3
            _store_update(gw, i, j, width, (s00, s01, s02, s03), scale, keep)
            if pair:
                _store_update(gw, i + 1, j, width, (s10, s11, s12, s13), scale, keep)


@jit(inline=True)
def dense_forward(a_out, a_in, w, b, act):
    # a_out (n_out, m) = act(w.T @ a_in + b[:, None]); a_in (n_in, m), w (n_in, n_out), b (n_out,) or (0,)
    _dense_forward(a_out, a_in, w, b, act, True)


@jit(inline=True)
def _dense_forward(a_out, a_in, w, b, act, small):
    # dense_forward; small = None: every layer through gemm, and the small-layer loops are
    # never compiled (Numba prunes "is None" branches by type before typing)
    n_in, m = a_in.shape
    n_out = a_out.shape[0]
    yes, no = unliteral(True), unliteral(False)  # one compilation of each callee
    if small is None or _use_blas(n_in, n_out, m):
        has_bias = b.shape[0] > 0
        if has_bias:  # bias pre-filled, then beta = 1 adds the product to it
            for j in range(n_out):
                a_out[j, :] = b[j]
        gemm(a_out, w, a_in, yes, no, 1.0, 1.0 if has_bias else 0.0)
    else:
        _combine_rows(a_out, a_in, w, yes, b, FIN_RELU if act == RELU else FIN_NONE, a_out)
        if act == RELU:  # applied by _combine_rows
            return
    activation_forward(a_out, act)


@jit(inline=True)
def dense_backward(d_in, gw, gb, w, d_out, a_in, act_in, scale, keep):
    # d_in (n_in, m) = (w @ d_out) * act_in'(a_in), skipped when d_in is (0, 0);
    # gw (n_in, n_out) = keep * gw + scale * a_in @ d_out.T;  gb (n_out,) likewise with sum(d_out).
    # gw, gb may be w, b themselves (scale = -lr, keep = 1): d_in uses w before it is updated.
    _dense_backward(d_in, gw, gb, w, d_out, a_in, act_in, scale, keep, True)


@jit(inline=True)
def _dense_backward(d_in, gw, gb, w, d_out, a_in, act_in, scale, keep, small):
    # dense_backward; small as in _dense_forward
    n_in, m = a_in.shape
    n_out = d_out.shape[0]
    blas = _use_blas(n_in, n_out, m)
    yes, no = unliteral(True), unliteral(False)  # one compilation of each callee
    if gb.shape[0] > 0:
        for j in range(n_out):
            s = 0.0
            src = d_out[j]
            for t in range(m):
                s += src[t]
            gb[j] = scale * s if keep == 0.0 else keep * gb[j] + scale * s
    if d_in.shape[0] > 0:
        if small is None or blas:
            gemm(d_in, w, d_out, no, no, 1.0, 0.0)
            activation_backward(d_in, a_in, act_in)
        else:
            _combine_rows(d_in, d_out, w, no, gb[:0],
                          FIN_RELU_MASK if act_in == RELU else FIN_NONE, a_in)
            if act_in != RELU:  # the relu mask is applied by _combine_rows
                activation_backward(d_in, a_in, act_in)
    if small is None or blas:
        gemm(gw, a_in, d_out, no, yes, scale, keep)
    else:
        _outer_update(gw, a_in, d_out, scale, keep)


@jit
def loss_forward_backward(d, pred, y, loss):
    # returns the batch loss (float64) and writes d (n, m) = dloss/dpred; pred, y (n, m)
    n, m = pred.shape
    total = 0.0
    for j in range(n):
        prow = pred[j]
        yrow = y[j]
        drow = d[j]
        if loss == SSE:
            for t in range(m):
                r = prow[t] - yrow[t]
                total += np.float64(r) * np.float64(r)  # float64 even for float32 data
                drow[t] = 2.0 * r
        else:
            for t in range(m):
                r = prow[t] - yrow[t]
                total += np.float64(r) * np.float64(r)  # float64 even for float32 data
                drow[t] = r / m
    if loss == MSE:
        total /= n * m
    return total
