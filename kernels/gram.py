"""The Gram path: full-batch plain SGD on wide data (rows <= half the input features).

The generic loop does two N x d_in x n1 products per epoch for the first layer:
z1 = x w1 and its gradient x^T d1. An epoch changes w1 by -lr x^T d1, so it
changes x w1 by -lr G d1 with G = x x^T (N x N, formed once). This path carries
P = (x w1)^T from epoch to epoch with that one N x N x n1 product, and forms
w1 = w1_start - lr x^T (sum of the d1) only when the parameters are needed
(``gram_sync``: the end of a call, a per-epoch check). The same arithmetic in
real numbers, rounded differently, as another summation order would be. w1 after
an epoch depends on the sum alone, so chunking never changes the numbers.
A/B figures: docs/design.md.

Work beyond ``workspace_layout``: G (N, N), P (n1, N), the summed d1 (n1, N) and
w1 at the start (d_in, n1). P and the sum are carried from call to call: a caller
that replays a call saves and restores them (``gram_layout`` says where).
"""

import numpy as np

from ._jit import jit, plain
from .activations import activation_forward
from .blas import gemm
from .network import (ACT, LR, T, activation, batch_loss, bias, block, gradient, network_backward,
                      network_forward, weight, workspace_layout)

G_OFF, P_OFF, SUM_OFF, W1_OFF = range(4)  # after the workspace layout's own entries


def gram_pays(widths, batch, n_rows, in_order, first_blas):
    """True when the Gram path applies and pays (plain Python): one batch of all rows in
    order, 2 <= rows <= half the input features, a first layer big enough for BLAS."""
    return (in_order and batch >= n_rows and 2 <= n_rows and 2 * n_rows <= widths[0]
            and len(widths) >= 2 and first_blas)


def gram_layout(widths, m):
    """workspace_layout plus the Gram path's arrays; returns (lay, size, carried), carried
    being the (start, stop) of the state carried between calls (P and the summed d1)."""
    lay, size = workspace_layout(widths, m)
    d_in, n1 = int(widths[0]), int(widths[1])
    offsets = [size, size + m * m, size + m * m + n1 * m, size + m * m + 2 * n1 * m]
    carried = (offsets[P_OFF], offsets[W1_OFF])
    return np.concatenate([lay, np.array(offsets, np.int64)]), offsets[W1_OFF] + d_in * n1, carried


@jit(inline=True)
def _gram_arrays(work, lay, net, m):
    # G (m, m), P (n1, m), the summed d1 (n1, m) and w1 at the start (d_in, n1)
    base = 2 * net.shape[0] + 5
    d_in, n1 = net[0, 0], net[0, 1]
    return (block(work, lay[base + G_OFF], m, m), block(work, lay[base + P_OFF], n1, m),
            block(work, lay[base + SUM_OFF], n1, m), block(work, lay[base + W1_OFF], d_in, n1))


@jit(inline=True)
def gram_begin(params, work, lay, net, m):
    # G = x x^T, P = (x w1)^T, the sum = 0 and w1 at the start, from the loaded batch
    gmat, pre, dsum, w1_start = _gram_arrays(work, lay, net, m)
    a0, w1 = activation(work, lay, net, 0, m), weight(params, net, 0)
    gemm(gmat, a0, a0, plain(True), plain(False), 1.0, 0.0)
    gemm(pre, w1, a0, plain(True), plain(False), 1.0, 0.0)
    dsum[:, :] = 0.0
    _copy(w1_start, w1)


@jit(inline=True)
def gram_step(params, track, work, lay, net, cfg, hyper, m):
    # batch_step for the loaded full batch of m rows, with the first layer carried as P
    gmat, pre, dsum, _ = _gram_arrays(work, lay, net, m)
    a1, b1 = activation(work, lay, net, 1, m), bias(params, net, 0)
    n1 = a1.shape[0]
    for j in range(n1):
        bj = b1[j] if b1.shape[0] > 0 else 0.0
        for t in range(m):
            a1[j, t] = pre[j, t] + bj
    activation_forward(a1, net[0, ACT])
    network_forward(params, work, lay, net, m, plain(1))
    value = batch_loss(params, work, lay, net, cfg, hyper, m)
    lr = hyper[LR]
    network_backward(params, params, work, lay, net, m, -lr, 1.0, plain(1))
    d1 = gradient(work, lay, net, 1, m)
    for j in range(b1.shape[0]):  # as dense_backward with keep = 1
        s = 0.0
        for t in range(m):
            s += d1[j, t]
        b1[j] = b1[j] + -lr * s
    gemm(pre, d1, gmat, plain(False), plain(False), -lr, 1.0)  # G is symmetric
    for j in range(n1):
        for t in range(m):
            dsum[j, t] += d1[j, t]
    track[T] += 1.0
    return value


@jit
def gram_sync(params, work, lay, net, hyper):
    # w1 = w1 at the start - lr x^T (the summed d1)^T: the same however epochs were split
    m = lay[2 * net.shape[0] + 4]
    _, _, dsum, w1_start = _gram_arrays(work, lay, net, m)
    w1 = weight(params, net, 0)
    _copy(w1, w1_start)
    gemm(w1, activation(work, lay, net, 0, m), dsum, plain(False), plain(True), -hyper[LR], 1.0)


@jit
def _copy(dst, src):
    # dst (n, k) = src (n, k), element by element
    n, k = dst.shape
    for i in range(n):
        for j in range(k):
            dst[i, j] = src[i, j]

