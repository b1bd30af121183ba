"""Losses: the value and the gradient with respect to the output, in one pass.

Codes (names in ``fastnn.kernels.LOSSES``), on a batch of m rows; arrays are
(outputs, m), y the targets, z the output layer's values::

    SSE          sum (z - y)^2                              dz = 2 (z - y)
    MSE          sum (z - y)^2 / (m * outputs)              dz = (z - y) / m
    SOFTMAX_CE   mean over rows of -sum_c y_c log p_c,      dz = (p - y) / m
                 p = softmax(z) over the outputs (log-sum-exp after subtracting the max)
    SIGMOID_BCE  mean over rows of sum over outputs of      dz = (sigmoid(z) - y) / m
                 max(z, 0) - z y + log(1 + exp(-|z|))

MSE's step is the gradient of sum (z - y)^2 / (2 m): seed 004's, and
scikit-learn's. The value is summed in float64 for float32 data too.
"""

import numpy as np

from ._jit import FASTMATH_STRICT, jit
from .activations import softmax_forward
from .vmath import exp64

SSE, MSE, SOFTMAX_CE, SIGMOID_BCE = 0, 1, 2, 3


@jit
def loss_forward_backward(d, tmp, z, y, loss):
    """The loss of a batch and its gradient with respect to the output layer, in one pass.

    Parameters
    ----------
    d : ndarray (outputs, m)
        Receives d loss / d z (see the module docstring for each loss).
    tmp : ndarray float64 (2, m)
        Scratch (softmax_ce), float64 for float32 data too.
    z, y : ndarray (outputs, m)
        The output layer and the targets (feature-major: a column per row).
    loss : int
        SSE, MSE, SOFTMAX_CE or SIGMOID_BCE.

    Returns
    -------
    float
        The batch's loss, summed in float64 (float32 data too).
    """
    if loss == SOFTMAX_CE:
        return _softmax_ce(d, tmp, z, y)
    if loss == SIGMOID_BCE:
        return _sigmoid_bce(d, z, y)
    n, m = z.shape
    total = 0.0
    for j in range(n):
        for t in range(m):
            share, grad = squared_error(z[j, t], y[j, t], loss, m)
            d[j, t] = grad
            total += share
    return finish_loss(total, loss, n, m)


@jit(fastmath=FASTMATH_STRICT)  # pointwise_loss inlines exp64, which must not be reassociated
def _sigmoid_bce(d, z, y):
    # loss_forward_backward for SIGMOID_BCE
    n, m = z.shape
    total = 0.0
    for j in range(n):
        for t in range(m):
            share, grad = pointwise_loss(z[j, t], y[j, t], SIGMOID_BCE, m)
            d[j, t] = grad
            total += share
    return finish_loss(total, SIGMOID_BCE, n, m)


@jit(inline=True)
def pointwise_loss(z, y, loss, m):
    # (this element's share of the loss before finish_loss, d loss / d z) for SSE, MSE and
    # SIGMOID_BCE on a batch of m rows. Inlined, it takes the caller's fastmath flags: callers
    # compile with FASTMATH_STRICT (exp64)
    if loss == SIGMOID_BCE:
        e = exp64(-abs(np.float64(z)))  # stable for either sign of z
        p = 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)
        return max(np.float64(z), 0.0) - np.float64(z) * y + np.log1p(e), (p - y) / m
    return squared_error(z, y, loss, m)


@jit(inline=True)
def squared_error(z, y, loss, m):
    # pointwise_loss for SSE and MSE (no exp: safe to inline anywhere)
    r = z - y
    return np.float64(r) * np.float64(r), r + r if loss == SSE else r / m


@jit(inline=True)
def finish_loss(total, loss, n, m):
    # the loss of n outputs on m rows from the sum of pointwise_loss's shares
    if loss == MSE:
        return total / (n * m)
    if loss == SIGMOID_BCE:
        return total / m
    return total


@jit
def _softmax_ce(d, tmp, z, y):
    # softmax cross-entropy of (n, m) logits z against probability rows y; see loss_forward_backward
    n, m = z.shape
    softmax_forward(d, tmp, z)
    top, lse = tmp[0], tmp[1]
    total = 0.0
    for j in range(n):
        for t in range(m):  # -y log p = y (log sum exp(z - max) - (z - max)), in float64
            total += np.float64(y[j, t]) * (lse[t] - (np.float64(z[j, t]) - top[t]))
            d[j, t] = (d[j, t] - y[j, t]) / m
    return total / m
