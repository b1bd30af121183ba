"""One dense layer and the loss: forward/backward pairs, outputs first.

Layout is feature-major: an activation array has shape (units, batch), so the
batch is the contiguous axis and loops over it vectorize even when a layer has
only a handful of units. Weights keep the user's (n_in, n_out) shape.

Activation and loss are integer codes (the names are in ``fastnn.kernels``),
so one compiled kernel serves every network.
"""

import numpy as np

from ._jit import jit
from .blas import gemm

IDENTITY, RELU, SIGMOID, TANH = 0, 1, 2, 3
SSE, MSE = 0, 1


@jit(inline=True)
def _use_blas(n_in, n_out, m):
    # Below ~32k multiply-adds the call overhead of BLAS dominates (measured).
    return n_in * n_out * m >= 32768 and n_in >= 8 and n_out >= 8


@jit
def activation_forward(a, act):
    # a (n, m) in place: z -> act(z)
    n, m = a.shape
    if act == IDENTITY:
        return
    for j in range(n):
        row = a[j]
        if act == RELU:
            for t in range(m):
                z = row[t]
                row[t] = 0.0 if z <= 0.0 else z  # NaN stays NaN, as np.maximum
        elif act == SIGMOID:
            for t in range(m):
                row[t] = 1.0 / (1.0 + np.exp(-row[t]))
        else:
            for t in range(m):
                row[t] = np.tanh(row[t])


@jit
def activation_backward(d, a, act):
    # d (n, m) *= act'(z), from the activation's output a = act(z) (n, m)
    n, m = d.shape
    if act == IDENTITY:
        return
    for j in range(n):
        drow = d[j]
        arow = a[j]
        if act == RELU:
            for t in range(m):
                drow[t] = drow[t] if arow[t] > 0.0 else 0.0
        elif act == SIGMOID:
            for t in range(m):
                s = arow[t]
                drow[t] = drow[t] * (s * (1.0 - s))
        else:
            for t in range(m):
                s = arow[t]
                drow[t] = drow[t] * (1.0 - s * s)


@jit(inline=True)
def _act_scalar(z, act):
    # act(z) for one value; NaN stays NaN, as with np.maximum
    if act == RELU:
        return 0.0 if z <= 0.0 else z
    if act == SIGMOID:
        return 1.0 / (1.0 + np.exp(-z))
    if act == TANH:
        return np.tanh(z)
    return z


@jit(inline=True)
def _act_grad_scalar(a, act):
    # act'(z) from the output a = act(z)
    if act == RELU:
        return 1.0 if a > 0.0 else 0.0
    if act == SIGMOID:
        return a * (1.0 - a)
    if act == TANH:
        return 1.0 - a * a
    return 1.0


@jit(inline=True)
def _coef(w, r, k, trans):
    return w[k, r] if trans else w[r, k]


@jit
def _combine_rows(out, src, w, trans, init):
    # out (R, m) = init[:, None] + c @ src, c = w.T if trans else w; src (K, m); init (R,) or (0,)
    # Small layers: axpy along the contiguous batch axis, four output rows per pass over src
    # (a quarter of the loads of one row at a time).
    n_rows, m = out.shape
    n_src = src.shape[0]
    has_init = init.shape[0] > 0
    r = 0
    while r + 4 <= n_rows:
        o0, o1, o2, o3 = out[r], out[r + 1], out[r + 2], out[r + 3]
        b0 = init[r] if has_init else 0.0
        b1 = init[r + 1] if has_init else 0.0
        b2 = init[r + 2] if has_init else 0.0
        b3 = init[r + 3] if has_init else 0.0
        for t in range(m):
            o0[t] = b0
            o1[t] = b1
            o2[t] = b2
            o3[t] = b3
        for k in range(n_src):
            x = src[k]
            c0, c1 = _coef(w, r, k, trans), _coef(w, r + 1, k, trans)
            c2, c3 = _coef(w, r + 2, k, trans), _coef(w, r + 3, k, trans)
            for t in range(m):
                v = x[t]
                o0[t] += c0 * v
                o1[t] += c1 * v
                o2[t] += c2 * v
                o3[t] += c3 * v
        r += 4
    for r in range(r, n_rows):
        row = out[r]
        b0 = init[r] if has_init else 0.0
        for t in range(m):
            row[t] = b0
        for k in range(n_src):
            x = src[k]
            c = _coef(w, r, k, trans)
            for t in range(m):
                row[t] += c * x[t]


@jit
def _outer_update(gw, a_in, d_out, scale, keep):
    # gw (n_in, n_out) = keep * gw + scale * a_in @ d_out.T for small layers: dot products along
    # the batch axis, four columns of gw per pass over a_in[i].
    n_in, m = a_in.shape
    n_out = d_out.shape[0]
    for i in range(n_in):
        ai = a_in[i]
        j = 0
        while j <= n_out:
            width = min(4, n_out - j)
            if width == 0:
                break
            d0 = d_out[j]
            d1 = d_out[j + 1] if width > 1 else d0
            d2 = d_out[j + 2] if width > 2 else d0
            d3 = d_out[j + 3] if width > 3 else d0
            s0 = s1 = s2 = s3 = 0.0
            for t in range(m):
                a = ai[t]
                s0 += a * d0[t]
                s1 += a * d1[t]
                s2 += a * d2[t]
                s3 += a * d3[t]
            sums = (s0, s1, s2, s3)
            for q in range(width):
                g = scale * sums[q]
                gw[i, j + q] = g if keep == 0.0 else keep * gw[i, j + q] + g
            j += width


@jit
def dense_forward(a_out, a_in, w, b, act):
    # a_out (n_out, m) = act(w.T @ a_in + b[:, None]); a_in (n_in, m), w (n_in, n_out), b (n_out,) or (0,)
    n_in, m = a_in.shape
    n_out = a_out.shape[0]
    if _use_blas(n_in, n_out, m):
        has_bias = b.shape[0] > 0
        if has_bias:  # bias pre-filled, then beta = 1 adds the product to it
            for j in range(n_out):
                a_out[j, :] = b[j]
        gemm(a_out, w, a_in, True, False, 1.0, 1.0 if has_bias else 0.0)
    else:
        _combine_rows(a_out, a_in, w, True, b)
    activation_forward(a_out, act)


@jit
def dense_backward(d_in, gw, gb, w, d_out, a_in, act_in, scale, keep):
    # d_in (n_in, m) = (w @ d_out) * act_in'(a_in), skipped when d_in is (0, 0);
    # gw (n_in, n_out) = keep * gw + scale * a_in @ d_out.T;  gb (n_out,) likewise with sum(d_out).
    # gw, gb may be w, b themselves (scale = -lr, keep = 1): d_in uses w before it is updated.
    n_in, m = a_in.shape
    n_out = d_out.shape[0]
    blas = _use_blas(n_in, n_out, m)
    if gb.shape[0] > 0:
        for j in range(n_out):
            s = 0.0
            src = d_out[j]
            for t in range(m):
                s += src[t]
            gb[j] = scale * s if keep == 0.0 else keep * gb[j] + scale * s
    if d_in.shape[0] > 0:
        if blas:
            gemm(d_in, w, d_out, False, False, 1.0, 0.0)
        else:
            _combine_rows(d_in, d_out, w, False, gb[:0])
        activation_backward(d_in, a_in, act_in)
    if blas:
        gemm(gw, a_in, d_out, False, True, scale, keep)
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
