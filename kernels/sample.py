"""The tiny-network path: plain SGD with ``batch_size=1``, every layer at most 8 wide,
any activation, a pointwise loss (not softmax_ce).

There a step is a few dozen multiply-adds, and the (units, 1) views of the
generic path cost more than the arithmetic (about 20 ns each, several per
layer). This path indexes ``params`` and ``work`` directly, with unsigned
offsets (Numba wraps negative indices around, a test per access that LLVM
cannot remove for offsets read from a table), in loops of at most SMALL
iterations that unroll completely, sums each output in a register, fuses the
update into backward, and reads its settings once per epoch (a store to
``params`` could alias them). No call is left in the loop: exp64 and tanh64 are
inlined, so this path is compiled without reassociation, which sums of at most
8 terms do not need. It computes what ``network.batch_step`` computes
for m = 1. A/B figures: docs/design.md.
"""

import numpy as np

from ._jit import FASTMATH_STRICT, jit
from .activations import activation_grad, activation_value
from .losses import finish_loss, pointwise_loss
from .network import ACT, B_OFF, LOSS, LOSS_SCALE, LR, N_IN, N_OUT, T, W_OFF

_u = np.uint64
SMALL = 8  # widest layer this path takes: loops capped at 8 iterations unroll completely


@jit(fastmath=FASTMATH_STRICT)  # inlines exp64 and tanh64; layers of <= 8 need no reassoc
def sample_epoch(params, track, work, lay, net, cfg, hyper, x, y, rows):
    # one epoch of sample_step over the rows of x, y listed in rows (all, in order, when it is
    # empty); returns the mean of the step losses
    n_rows = rows.shape[0] if rows.shape[0] > 0 else x.shape[0]
    loss, lr = cfg[LOSS], params.dtype.type(hyper[LR])  # float32 networks step in float32
    total = 0.0
    for start in range(n_rows):
        r = rows[start] if rows.shape[0] > 0 else start  # a caller's row index: signed
        total += sample_step(params, work, lay, net, x, y, r, loss, lr)
    track[T] += n_rows
    return hyper[LOSS_SCALE] * total / n_rows


@jit(inline=True)
def sample_step(params, work, lay, net, x, y, r, loss, lr):
    # one SGD step on row r: forward, loss, backward and update; returns its loss
    n_layers = net.shape[0]
    a0, y_off = _u(lay[0]), _u(lay[2 * n_layers + 1])
    for i in range(x.shape[1]):
        work[a0 + _u(i)] = x[r, _u(i)]
    for j in range(y.shape[1]):
        work[y_off + _u(j)] = y[r, _u(j)]
    for layer in range(n_layers):
        _forward(params, work, net[layer, W_OFF], net[layer, B_OFF], lay[layer], lay[layer + 1],
                 net[layer, N_IN], net[layer, N_OUT], net[layer, ACT])
    n = net[n_layers - 1, N_OUT]
    z_off, d_off = _u(lay[n_layers]), _u(lay[2 * n_layers])
    value = 0.0
    for j in range(SMALL):
        if j >= n:
            break
        share, grad = pointwise_loss(work[z_off + _u(j)], work[y_off + _u(j)], loss, 1)
        work[d_off + _u(j)] = grad
        value += share
    value = finish_loss(value, loss, n, 1)
    for layer in range(n_layers - 1, -1, -1):
        _backward(params, work, net[layer, W_OFF], net[layer, B_OFF], lay[layer],
                  lay[n_layers + layer + 1], lay[n_layers + layer] if layer > 0 else -1,
                  net[layer, N_IN], net[layer, N_OUT], net[layer - 1, ACT] if layer > 0 else 0, lr)
    return value


@jit(inline=True)
def _forward(params, work, w, b, a_in, a_out, n_in, n_out, act):
    # work[a_out:a_out + n_out] = act(b + w.T @ work[a_in:a_in + n_in]) (b < 0: no bias); each
    # output summed in a register
    w, a_in, a_out, n_out_u = _u(w), _u(a_in), _u(a_out), _u(n_out)
    zero = params.dtype.type(0)
    for j in range(SMALL):
        if j >= n_out:
            break
        s = params[_u(b) + _u(j)] if b >= 0 else zero
        for i in range(SMALL):
            if i >= n_in:
                break
            s += work[a_in + _u(i)] * params[w + _u(i) * n_out_u + _u(j)]
        work[a_out + _u(j)] = activation_value(s, act, zero)


@jit(inline=True)
def _backward(params, work, w, b, a_in, d_out, d_in, n_in, n_out, act_in, lr):
    # SGD step of one layer from d_out = d loss / d z; d_in (if >= 0) receives d loss / d z of
    # the layer below, from the weights before their update
    w, a_in, d_out, n_out_u = _u(w), _u(a_in), _u(d_out), _u(n_out)
    one = params.dtype.type(1)
    for j in range(SMALL):
        if j >= n_out or b < 0:
            break
        params[_u(b) + _u(j)] -= lr * work[d_out + _u(j)]
    for i in range(SMALL):
        if i >= n_in:
            break
        ai = work[a_in + _u(i)]
        row = w + _u(i) * n_out_u
        s = one - one
        for j in range(SMALL):
            if j >= n_out:
                break
            dj = work[d_out + _u(j)]
            s += params[row + _u(j)] * dj
            params[row + _u(j)] -= lr * (ai * dj)
        if d_in >= 0:
            work[_u(d_in) + _u(i)] = activation_grad(s, ai, act_in, one)
