"""Activations: one scalar definition each, and the passes over (units, batch) arrays.

Codes (names in ``fastnn.kernels.ACTIVATIONS``)::

    IDENTITY  z                       slope 1
    RELU      max(z, 0)               slope 1 where a > 0, else 0 (as np.where: no inf * 0)
    SIGMOID   1 / (1 + exp(-z))       slope a (1 - a)
    TANH      tanh(z)                 slope 1 - a^2

Slopes are written from the output a = act(z), so backward needs no z.
Sigmoid and tanh are computed in float64 (``vmath``) and rounded once for float32.
"""

import numpy as np

from ._jit import FASTMATH_STRICT, jit
from .vmath import exp64, tanh64

IDENTITY, RELU, SIGMOID, TANH = 0, 1, 2, 3


@jit(inline=True)
def relu(z, zero):
    # max(z, 0) for one value; zero is 0 in z's dtype (NaN stays NaN, as np.maximum)
    return zero if z <= zero else z


@jit(inline=True)
def activation_value(z, act, zero):
    # act(z) for one value, in float64 for sigmoid and tanh; zero is 0 in z's dtype.
    # Inlined, it takes the caller's fastmath flags: callers compile with FASTMATH_STRICT.
    if act == RELU:
        return relu(z, zero)
    if act == SIGMOID:
        return 1.0 / (1.0 + exp64(-np.float64(z)))
    if act == TANH:
        return tanh64(np.float64(z))
    return z


@jit(inline=True)
def activation_grad(d, a, act, one):
    # d * act'(z) for one value, from the output a = act(z); one is 1 in d's dtype
    if act == RELU:
        return d if a > 0 else one - one
    if act == SIGMOID:
        return d * (a * (one - a))
    if act == TANH:
        return d * (one - a * a)
    return d


@jit(fastmath=FASTMATH_STRICT)  # exp64 and tanh64 must not be reassociated
def activation_forward(a, act):
    """Apply an activation in place: a (n, m) holds z on entry and act(z) on return.

    Parameters
    ----------
    a : ndarray (units, batch), float32 or float64, C-contiguous
    act : int
        IDENTITY, RELU (max(z, 0), NaN kept), SIGMOID (1 / (1 + exp(-z))) or TANH;
        sigmoid and tanh are computed in float64 and rounded once.

    Examples
    --------
    >>> a = np.array([[-1.0, 0.5]]); activation_forward(a, RELU); a
    array([[0. , 0.5]])
    """
    if act == IDENTITY:
        return
    zero = a.dtype.type(0)
    n, m = a.shape
    for j in range(n):
        row = a[j]
        for t in range(m):
            row[t] = activation_value(row[t], act, zero)


@jit(fastmath=FASTMATH_STRICT)  # exp64 must not be reassociated
def softmax_forward(p, tmp, z):
    """p (n, m) = softmax of z (n, m) over its n rows, column by column (p may be z).

    Stable: exp(z - max) / sum exp(z - max). ``tmp`` (2, m), float64, is scratch; on
    return tmp[0] holds each column's max_j z_j and tmp[1] its log sum_j exp(z_j - max),
    so that the softmax_ce loss needs no difference of large numbers.
    """
    n, m = z.shape
    top, total = tmp[0], tmp[1]
    for t in range(m):
        top[t] = z[0, t]
        total[t] = 0.0
    for j in range(1, n):
        for t in range(m):
            top[t] = z[j, t] if z[j, t] > top[t] else top[t]
    for j in range(n):
        for t in range(m):
            e = exp64(np.float64(z[j, t]) - top[t])
            p[j, t] = e
            total[t] += e
    for j in range(n):
        for t in range(m):
            p[j, t] = p[j, t] / total[t]
    for t in range(m):
        total[t] = np.log(total[t])


@jit
def activation_backward(d, a, act):
    """Multiply a gradient by an activation's derivative, in place: d (n, m) <- d * act'(z).

    Parameters
    ----------
    d : ndarray (units, batch)
        d loss / d a on entry, d loss / d z on return.
    a : ndarray (units, batch)
        The activation's output a = act(z): RELU keeps d where a > 0 (0 elsewhere, as
        np.where: no inf * 0), SIGMOID multiplies by a (1 - a), TANH by 1 - a^2.
    act : int
    """
    if act == IDENTITY:
        return
    one = d.dtype.type(1)
    n, m = d.shape
    for j in range(n):
        drow = d[j]
        arow = a[j]
        for t in range(m):
            drow[t] = activation_grad(drow[t], arow[t], act, one)
