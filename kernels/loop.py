"""Whole training loops, compiled: epochs x batches x layers in one call.

Every network is described by data, so one compilation per dtype serves all
depths, widths, activations and losses:

* ``params``: all weights, then biases, as one flat array of the network dtype;
* ``net``: int64 table, one row per layer: ``N_IN, N_OUT, ACT, W_OFF, B_OFF``
  (``B_OFF = -1``: no bias; offsets index ``params``);
* ``cfg``: int64 array ``LOSS, BATCH, CHECK`` (see ``CHECK_*``);
* ``work``: scratch of :func:`workspace_size` elements, allocated by the caller
  once, so nothing is allocated inside the loop.
"""

import numpy as np

from ._jit import jit
from ._views import block
from .layers import (IDENTITY, _act_grad_scalar, _act_scalar, dense_backward, dense_forward,
                     loss_forward_backward)

N_IN, N_OUT, ACT, W_OFF, B_OFF = 0, 1, 2, 3, 4
LOSS, BATCH, CHECK = 0, 1, 2
# CHECK_LOSS: stop after the first epoch whose loss is not finite, and report
# non-finite parameters at the end of the call. CHECK_EACH_EPOCH also checks
# the parameters after every epoch (used to pin down a divergence exactly).
CHECK_NONE, CHECK_LOSS, CHECK_EACH_EPOCH = 0, 1, 2
PARAMS_NOT_FINITE = -1


def workspace_size(widths, batch, with_grad=True):
    """Scratch elements for a network of ``widths`` (n_0 .. n_L) and ``batch`` rows.

    Activations for every layer (input included), plus, for training, the
    pre-activation gradient of every layer and the transposed targets.
    """
    widths = [int(n) for n in widths]
    size = sum(widths)
    if with_grad:
        size += sum(widths[1:]) + widths[-1]
    return size * int(batch)


@jit(inline=True)
def _weight(params, net, layer):
    # (n_in, n_out) view of one layer's weights
    return block(params, net[layer, W_OFF], net[layer, N_IN], net[layer, N_OUT])


@jit(inline=True)
def _bias(params, net, layer):
    # (n_out,) view of one layer's bias, or (0,) without one
    off = net[layer, B_OFF]
    if off < 0:
        return block(params, 0, 1, 0)[0]
    return block(params, off, 1, net[layer, N_OUT])[0]


@jit
def _offsets(net, m, with_grad):
    # start of each layer's activation (and gradient) block in the scratch
    n_layers = net.shape[0]
    a_off = np.empty(n_layers + 1, np.int64)
    d_off = np.empty(n_layers + 1, np.int64)
    off = 0
    a_off[0] = off
    off += net[0, N_IN] * m
    for layer in range(n_layers):
        a_off[layer + 1] = off
        off += net[layer, N_OUT] * m
    d_off[0] = -1
    if with_grad:
        for layer in range(n_layers):
            d_off[layer + 1] = off
            off += net[layer, N_OUT] * m
    return a_off, d_off, off


@jit
def load_batch(a0, yt, x, y, rows, start, m):
    # a0 (d_in, m) = x[rows[start:start+m]].T, yt (d_out, m) likewise; rows (0,) means in order
    d_in, d_out = x.shape[1], yt.shape[0]
    for t in range(m):
        r = rows[start + t] if rows.shape[0] > 0 else start + t
        for i in range(d_in):
            a0[i, t] = x[r, i]
        for j in range(d_out):
            yt[j, t] = y[r, j]


@jit
def network_forward(params, work, net, a_off, m):
    # forward through every layer; work holds a0 (n_0, m) and receives every activation
    n_layers = net.shape[0]
    for layer in range(n_layers):
        a_in = block(work, a_off[layer], net[layer, N_IN], m)
        a_out = block(work, a_off[layer + 1], net[layer, N_OUT], m)
        dense_forward(a_out, a_in, _weight(params, net, layer), _bias(params, net, layer),
                      net[layer, ACT])


@jit
def network_backward(grads, params, work, net, a_off, d_off, m, scale, keep):
    # backward from d_L (already in work); grads = keep * grads + scale * dloss/dparams
    # grads may be params itself (scale = -lr, keep = 1): the in-place SGD step.
    n_layers = net.shape[0]
    empty = block(work, 0, 0, 0)
    for layer in range(n_layers - 1, -1, -1):
        n_in, n_out = net[layer, N_IN], net[layer, N_OUT]
        a_in = block(work, a_off[layer], n_in, m)
        d_out = block(work, d_off[layer + 1], n_out, m)
        d_in = empty if layer == 0 else block(work, d_off[layer], n_in, m)
        act_in = net[layer - 1, ACT] if layer > 0 else 0
        dense_backward(d_in, _weight(grads, net, layer), _bias(grads, net, layer),
                       _weight(params, net, layer), d_out, a_in, act_in, scale, keep)


@jit
def sample_step(params, work, net, a_off, d_off, y_off, loss, lr):
    # One SGD step on the single sample in work (m = 1): forward, loss, backward and update.
    # Returns the sample's loss. With one sample, per-layer calls and views cost more than
    # the arithmetic, so this fuses dense_forward/dense_backward into flat index loops.
    n_layers = net.shape[0]
    for layer in range(n_layers):
        n_in, n_out, act = net[layer, N_IN], net[layer, N_OUT], net[layer, ACT]
        w, b, a_in, a_out = net[layer, W_OFF], net[layer, B_OFF], a_off[layer], a_off[layer + 1]
        for j in range(n_out):
            work[a_out + j] = params[b + j] if b >= 0 else 0.0
        for i in range(n_in):
            ai = work[a_in + i]
            row = w + i * n_out
            for j in range(n_out):
                work[a_out + j] += ai * params[row + j]
        if act != IDENTITY:
            for j in range(n_out):
                work[a_out + j] = _act_scalar(work[a_out + j], act)
    n_out = net[n_layers - 1, N_OUT]
    value = loss_forward_backward(block(work, d_off[n_layers], n_out, 1),
                                  block(work, a_off[n_layers], n_out, 1),
                                  block(work, y_off, n_out, 1), loss)
    for layer in range(n_layers - 1, -1, -1):
        n_in, n_out = net[layer, N_IN], net[layer, N_OUT]
        w, b, a_in, d_out = net[layer, W_OFF], net[layer, B_OFF], a_off[layer], d_off[layer + 1]
        if b >= 0:
            for j in range(n_out):
                params[b + j] += -lr * work[d_out + j]
        act_in = net[layer - 1, ACT] if layer > 0 else IDENTITY
        for i in range(n_in):
            ai = work[a_in + i]
            row = w + i * n_out
            s = 0.0
            for j in range(n_out):
                dj = work[d_out + j]
                s += params[row + j] * dj  # the weight before its update
                params[row + j] += -lr * (ai * dj)
            if layer > 0:
                work[d_off[layer] + i] = s * _act_grad_scalar(ai, act_in)
    return value


@jit
def all_finite(a):
    # True when every element of the 1-D array a is finite
    ok = True
    for i in range(a.shape[0]):
        v = a[i]
        ok &= (v - v) == 0.0  # inf - inf and nan - nan are nan
    return ok


@jit
def train_loop(losses, params, work, net, cfg, lr, x, y, order):
    # Runs len(losses) epochs of SGD on params in place; losses (E,) float64 receives epoch losses.
    # x (N, d_in), y (N, d_out); order (E, N) int64 row order per epoch, or (0, 0) for in order.
    # Returns the epochs completed with a finite loss (and finite parameters, per cfg[CHECK]),
    # or PARAMS_NOT_FINITE when only the final parameter check failed.
    n_rows = x.shape[0]
    n_layers = net.shape[0]
    batch = min(cfg[BATCH], n_rows)
    check = cfg[CHECK]
    loss = cfg[LOSS]
    n_steps = (n_rows + batch - 1) // batch
    a_off, d_off, _ = _offsets(net, batch, True)
    y_off = d_off[n_layers] + net[n_layers - 1, N_OUT] * batch
    d_outw = net[n_layers - 1, N_OUT]
    no_rows = order[0, :0] if order.shape[0] > 0 else np.empty(0, np.int64)
    fixed_batch = n_steps == 1 and order.shape[0] == 0
    if fixed_batch:  # full batch in order: load it once for the whole call
        load_batch(block(work, a_off[0], net[0, N_IN], batch),
                   block(work, y_off, d_outw, batch), x, y, no_rows, 0, batch)
    for epoch in range(losses.shape[0]):
        rows = order[epoch] if order.shape[0] > 0 else no_rows
        total = 0.0
        for step in range(n_steps):
            start = step * batch
            m = min(batch, n_rows - start)
            yt = block(work, y_off, d_outw, m)
            if not fixed_batch:
                load_batch(block(work, a_off[0], net[0, N_IN], m), yt, x, y, rows, start, m)
            if batch == 1:
                total += sample_step(params, work, net, a_off, d_off, y_off, loss, lr)
                continue
            network_forward(params, work, net, a_off, m)
            pred = block(work, a_off[n_layers], d_outw, m)
            total += loss_forward_backward(block(work, d_off[n_layers], d_outw, m), pred, yt, loss)
            network_backward(params, params, work, net, a_off, d_off, m, -lr, 1.0)
        losses[epoch] = total / n_steps
        if check != CHECK_NONE:
            if not np.isfinite(losses[epoch]):
                return epoch
            if check == CHECK_EACH_EPOCH and not all_finite(params):
                return epoch
    if check == CHECK_LOSS and not all_finite(params):
        return PARAMS_NOT_FINITE
    return losses.shape[0]


@jit
def predict_loop(out, params, work, net, x):
    # out (N, d_out) = network(x (N, d_in)), batch by batch through the scratch
    n_rows = x.shape[0]
    n_layers = net.shape[0]
    widths_sum = net[0, N_IN]
    for layer in range(n_layers):
        widths_sum += net[layer, N_OUT]
    batch = max(1, min(n_rows, work.shape[0] // widths_sum))
    a_off, _, _ = _offsets(net, batch, False)
    no_rows = np.empty(0, np.int64)
    no_y = out[:0]
    for start in range(0, n_rows, batch):
        m = min(batch, n_rows - start)
        load_batch(block(work, a_off[0], net[0, N_IN], m), block(work, 0, 0, m),
                   x, no_y, no_rows, start, m)
        network_forward(params, work, net, a_off, m)
        pred = block(work, a_off[n_layers], net[n_layers - 1, N_OUT], m)
        for t in range(m):
            for j in range(pred.shape[0]):
                out[start + t, j] = pred[j, t]


@jit
def loss_and_grad(grads, params, work, net, cfg, x, y):
    # One batch of all rows: returns its loss and writes grads (like params) = d(objective)/d(params)
    n_rows = x.shape[0]
    n_layers = net.shape[0]
    a_off, d_off, _ = _offsets(net, n_rows, True)
    d_outw = net[n_layers - 1, N_OUT]
    y_off = d_off[n_layers] + d_outw * n_rows
    yt = block(work, y_off, d_outw, n_rows)
    load_batch(block(work, a_off[0], net[0, N_IN], n_rows), yt, x, y,
               np.empty(0, np.int64), 0, n_rows)
    network_forward(params, work, net, a_off, n_rows)
    pred = block(work, a_off[n_layers], d_outw, n_rows)
    value = loss_forward_backward(block(work, d_off[n_layers], d_outw, n_rows), pred, yt, cfg[LOSS])
    network_backward(grads, params, work, net, a_off, d_off, n_rows, 1.0, 0.0)
    return value
