"""A network as the kernels see it, and one training step on a loaded batch.

A network is data, so one compilation per dtype serves every depth, width,
activation, loss and optimizer:

* ``params``: every weight, then every bias, in one flat array of the network's dtype;
  ``grads`` is shaped like it (empty when every step fuses plain SGD into backward);
* ``net``: int64 table, a row per layer: N_IN, N_OUT, ACT, W_OFF, B_OFF (-1: no bias), BLAS;
* ``cfg``: int64 settings (LOSS, BATCH, ...), ``hyper``: float64 settings (optim's LR .. EPS,
  LOSS_SCALE, L2_REPORT);
* ``track``: float64 counters carried from one call to the next (T, EPOCH, BEST_*, ...);
* ``work``: scratch laid out by ``workspace_layout`` (offsets in ``lay``).

``batch_step`` is the generic step: any batch size, loss and optimizer.
"""

import numpy as np
from numba import carray, config

from ._jit import jit, plain
from ._numba_private import pointer, pointer64
from .activations import SIGMOID, activation_forward, softmax_forward
from .dense import dense_backward, dense_forward
from .losses import SSE, loss_forward_backward
from .optim import LR, optimizer_update

N_IN, N_OUT, ACT, W_OFF, B_OFF, BLAS = range(6)
NET_COLUMNS = 6
(LOSS, BATCH, CHECK, RULE, NESTEROV, FUSED, REDUCE, N_WEIGHTS, DECAY_PER_ROW, PATIENCE,
 CHUNK) = range(11)
CFG_SIZE = 11
LOSS_SCALE, L2_REPORT = 7, 8  # hyper, after optim's entries
HYPER_SIZE = 9
T, EPOCH, BEST_VAL, BEST_EPOCH, BEST_T, SINCE_BEST, STOPPED, LOADED = range(8)
TRACK_SIZE = 8
# CHECK_LOSS: stop after the first epoch whose loss is not finite, and report non-finite
# parameters at the end of the call; CHECK_EACH_EPOCH also checks the parameters after
# every epoch (the driver's replay that pins a divergence down).
CHECK_NONE, CHECK_LOSS, CHECK_EACH_EPOCH = 0, 1, 2
PARAMS_NOT_FINITE = -1
REDUCE_STEPS, REDUCE_ROWS = 0, 1  # epoch loss: mean of the step losses, or weighted by rows


def workspace_layout(widths, m):
    """Offsets in the workspace for ``m`` rows of a network of ``widths`` (n_0 .. n_L), and
    its size: every activation (input first), every layer's gradient, the targets
    transposed and two float64 rows of loss scratch; ``lay[-1]`` is m (plain Python: the
    kernels only read ``lay``)."""
    widths = [int(n) for n in widths]
    n_layers = len(widths) - 1
    lay = np.zeros(2 * n_layers + 5, np.int64)
    off = 0
    for layer, n in enumerate(widths):  # activations a_0 .. a_L
        lay[layer] = off
        off += n * m
    for layer in range(1, n_layers + 1):  # gradients d_1 .. d_L
        lay[n_layers + layer] = off
        off += widths[layer] * m
    lay[2 * n_layers + 1] = off  # targets
    off += widths[-1] * m
    off += off % 2  # the loss scratch is float64 whatever the dtype: 8-byte aligned,
    lay[2 * n_layers + 2] = off  # and 4 m elements hold its 2 m values in float32 too
    off += 4 * m
    lay[2 * n_layers + 3] = off
    lay[2 * n_layers + 4] = m
    return lay, off


if config.DISABLE_JIT:
    def block(buf, off, n, m):
        """(n, m) view of the 1-D buf from off."""
        if off < 0 or off + n * m > buf.shape[0]:
            raise IndexError("block out of range")
        return buf[off:off + n * m].reshape((n, m))
else:
    @jit(inline=True)
    def block(buf, off, n, m):
        # (n, m) view of the 1-D buf from off, without a reference count (see _numba_private);
        # unchecked here (a raise would keep LLVM from inlining it): the interpreted kernels
        # of the CI's NUMBA_DISABLE_JIT pass check every block
        return carray(pointer(buf, off), (n, m))

if config.DISABLE_JIT:
    def scratch64(buf, off, m):
        """(2, m) float64 view of the 1-D buf from off (4 m elements of a float32 buf)."""
        size = 2 * m * 8 // buf.itemsize
        if off < 0 or off + size > buf.shape[0]:
            raise IndexError("block out of range")
        return buf[off:off + size].view(np.float64).reshape((2, m))
else:
    @jit(inline=True)
    def scratch64(buf, off, m):
        # (2, m) float64 view of the 1-D buf from off (see block)
        return carray(pointer64(buf, off), (2, m))


@jit(inline=True)
def activation(work, lay, net, layer, m):
    # (n_layer, m) activation of a layer, 0 being the input
    n = net[0, N_IN] if layer == 0 else net[layer - 1, N_OUT]
    return block(work, lay[layer], n, m)


@jit(inline=True)
def gradient(work, lay, net, layer, m):
    # (n_layer, m) d loss / d z of a layer (1 .. L)
    return block(work, lay[net.shape[0] + layer], net[layer - 1, N_OUT], m)


@jit(inline=True)
def targets(work, lay, net, m):
    # (n_L, m) targets of the loaded batch, and the (2, m) float64 loss scratch
    n_layers = net.shape[0]
    return (block(work, lay[2 * n_layers + 1], net[n_layers - 1, N_OUT], m),
            scratch64(work, lay[2 * n_layers + 2], m))


@jit(inline=True)
def weight(params, net, layer):
    # (n_in, n_out) view of one layer's weights
    return block(params, net[layer, W_OFF], net[layer, N_IN], net[layer, N_OUT])


@jit(inline=True)
def bias(params, net, layer):
    # (n_out,) view of one layer's bias, or (0,) without one
    off = net[layer, B_OFF]
    return block(params, 0, 1, 0)[0] if off < 0 else block(params, off, 1, net[layer, N_OUT])[0]


@jit
def load_batch(work, lay, net, x, y, rows, start, m):
    # a_0 (n_0, m) = x[rows[start:start + m]].T and the targets likewise (none when y has no
    # rows); rows (0,): in order
    yt, _ = targets(work, lay, net, m)
    _transpose_rows(activation(work, lay, net, 0, m), x, rows, start)
    if y.shape[0] > 0:
        _transpose_rows(yt, y, rows, start)


BLOCK = 8  # batch rows per sweep (written out below): a 64-byte line of float64 outputs
_u = np.uint64


@jit
def _transpose_rows(out, src, rows, start):
    # out (n, m) = src[rows[start:start + m]].T (src[start:start + m] when rows is empty):
    # every unit of BLOCK rows per sweep, so those rows' lines are requested together (one
    # unit: a copy along the rows); unsigned unit and output indices, so that Numba tests
    # none for wrap-around (figures: docs/design.md)
    n, m = out.shape
    in_order = rows.shape[0] == 0
    full = m - m % BLOCK if n > 1 else 0
    for t in range(0, full, BLOCK):
        s = start + t
        if in_order:
            r0, r1, r2, r3, r4, r5, r6, r7 = s, s + 1, s + 2, s + 3, s + 4, s + 5, s + 6, s + 7
        else:  # a caller's rows: signed
            r0, r1, r2, r3 = rows[s], rows[s + 1], rows[s + 2], rows[s + 3]
            r4, r5, r6, r7 = rows[s + 4], rows[s + 5], rows[s + 6], rows[s + 7]
        for i in range(n):
            c = _u(i)
            out[c, _u(t)], out[c, _u(t + 1)], out[c, _u(t + 2)], out[c, _u(t + 3)] = (
                src[r0, c], src[r1, c], src[r2, c], src[r3, c])
            out[c, _u(t + 4)], out[c, _u(t + 5)], out[c, _u(t + 6)], out[c, _u(t + 7)] = (
                src[r4, c], src[r5, c], src[r6, c], src[r7, c])
    for i in range(n):
        for t in range(full, m):
            r = start + t if in_order else rows[start + t]
            out[_u(i), _u(t)] = src[r, _u(i)]


@jit
def network_forward(params, work, lay, net, m, first):
    # activations of layers first + 1 .. L from that of layer first
    for layer in range(first, net.shape[0]):
        dense_forward(activation(work, lay, net, layer + 1, m), activation(work, lay, net, layer, m),
                      weight(params, net, layer), bias(params, net, layer), net[layer, ACT],
                      net[layer, BLAS] != 0)


@jit
def network_backward(grads, params, work, lay, net, m, scale, keep, last):
    # from d_L in work down to layer last: grads = keep * grads + scale * d loss / d params;
    # grads may be params itself (scale = -lr, keep = 1: the fused SGD step)
    for layer in range(net.shape[0] - 1, last - 1, -1):
        d_in = gradient(work, lay, net, layer, m) if layer > 0 else block(work, 0, 0, m)
        dense_backward(d_in, weight(grads, net, layer), bias(grads, net, layer),
                       weight(params, net, layer), gradient(work, lay, net, layer + 1, m),
                       activation(work, lay, net, layer, m), net[layer - 1, ACT] if layer > 0 else 0,
                       scale, keep, net[layer, BLAS] != 0)


@jit(inline=True)
def batch_loss(params, work, lay, net, cfg, hyper, m):
    # the loss of the loaded batch as reported (scaled, plus the L2 term if asked); leaves
    # d loss / d z of the output layer in work
    return output_loss(work, lay, net, cfg, hyper, m) + l2_report(params, cfg, hyper, m)


@jit(inline=True)
def output_loss(work, lay, net, cfg, hyper, m):
    # the scaled loss of the m rows loaded in work; leaves d loss / d z of the output layer
    n_layers = net.shape[0]
    yt, tmp = targets(work, lay, net, m)
    return hyper[LOSS_SCALE] * loss_forward_backward(
        gradient(work, lay, net, n_layers, m), tmp, activation(work, lay, net, n_layers, m), yt,
        cfg[LOSS])


@jit(inline=True)
def l2_report(params, cfg, hyper, m):
    # scikit-learn adds alpha / (2 m) * the sum of squared weights to a batch's loss
    if hyper[L2_REPORT] == 0.0:
        return 0.0
    squares = 0.0
    for i in range(cfg[N_WEIGHTS]):
        squares += np.float64(params[i]) * np.float64(params[i])
    return hyper[L2_REPORT] * squares / m


@jit(inline=True)
def batch_epoch(params, grads, state, track, work, lay, net, cfg, hyper, x, y, rows):
    # one epoch of batch_step over the rows of x, y listed in rows (all, in order, when it is
    # empty), in batches of cfg[BATCH]; returns the epoch loss (cfg[REDUCE])
    n_rows = rows.shape[0] if rows.shape[0] > 0 else x.shape[0]
    batch = min(cfg[BATCH], n_rows)
    n_steps = (n_rows + batch - 1) // batch
    by_rows = cfg[REDUCE] == REDUCE_ROWS
    chunk = min(cfg[CHUNK], batch) if cfg[CHUNK] > 0 else batch
    fixed = n_steps == 1 and rows.shape[0] == 0 and batch == chunk  # loaded once, in order
    total = 0.0
    for s in range(n_steps):
        start = s * batch
        m = min(batch, n_rows - start)
        value = batch_step(params, grads, state, track, work, lay, net, cfg, hyper, x, y, rows,
                           start, m, chunk, fixed)
        total += value * m if by_rows else value
    return total / (n_rows if by_rows else n_steps)


@jit(inline=True)
def batch_step(params, grads, state, track, work, lay, net, cfg, hyper, x, y, rows, start, m,
               chunk, fixed):
    # one step on the m rows x[rows[start:start + m]] (loaded once if fixed), in chunks of at
    # most chunk rows, so that every pass stays in the cache: a mean over m rows is its chunks'
    # means weighted by rows, and their gradients add up in grads; returns the step's loss
    fused = cfg[FUSED] != 0  # plain SGD: the update in backward (never with chunks)
    mean = cfg[LOSS] != SSE
    value = l2_report(params, cfg, hyper, m)
    for c0 in range(0, m, chunk):
        mc = min(chunk, m - c0)
        if not fixed or track[LOADED] == 0.0:
            load_batch(work, lay, net, x, y, rows, start + c0, mc)
            track[LOADED] = 1.0 if fixed else 0.0
        network_forward(params, work, lay, net, mc, plain(0))
        share = mc / m if mean else 1.0
        value += share * output_loss(work, lay, net, cfg, hyper, mc)
        if fused:
            network_backward(params, params, work, lay, net, mc, -hyper[LR], 1.0, plain(0))
        else:
            network_backward(grads, params, work, lay, net, mc, share, 0.0 if c0 == 0 else 1.0,
                             plain(0))
    if fused:
        track[T] += 1.0
    else:
        apply_update(params, grads, state, track, cfg, hyper, m)
    return value


@jit(inline=True)
def apply_update(params, grads, state, track, cfg, hyper, m):
    # one optimizer step from grads, counting it in track[T]
    t = track[T] + 1.0
    track[T] = t
    scale = 1.0 / m if cfg[DECAY_PER_ROW] != 0 else 1.0
    optimizer_update(params, grads, state, cfg[RULE], hyper, cfg[NESTEROV] != 0, t,
                     cfg[N_WEIGHTS], scale)


@jit
def all_finite(a):
    # True when every element of the 1-D array a is finite
    ok = True
    for i in range(a.shape[0]):
        v = a[i]
        ok &= (v - v) == 0.0  # inf - inf and nan - nan are nan
    return ok


OUT_IDENTITY, OUT_SOFTMAX, OUT_SIGMOID = 0, 1, 2


@jit(python=True)
def predict_rows(out, params, work, lay, net, x, output):
    # out (N, n_L) = the network on x (N, n_0), in blocks of lay[-1] rows; output: OUT_IDENTITY,
    # OUT_SOFTMAX or OUT_SIGMOID applied to the output layer
    n_layers = net.shape[0]
    n_rows, rows = x.shape[0], lay[lay.shape[0] - 1]
    no_y = x[:0]
    no_rows = np.empty(0, np.int64)
    for start in range(0, n_rows, rows):
        m = min(rows, n_rows - start)
        load_batch(work, lay, net, x, no_y, no_rows, start, m)
        network_forward(params, work, lay, net, m, plain(0))
        z = activation(work, lay, net, n_layers, m)
        if output == OUT_SOFTMAX:
            _, tmp = targets(work, lay, net, m)
            softmax_forward(z, tmp, z)
        elif output == OUT_SIGMOID:
            activation_forward(z, SIGMOID)
        for t in range(m):
            for j in range(z.shape[0]):
                out[start + t, j] = z[j, t]


@jit(python=True)
def loss_and_grad(grads, params, work, lay, net, cfg, hyper, x, y):
    # all rows of x, y as one batch: returns its loss as reported and writes grads (shaped like
    # params) = the gradient a training step follows
    m = x.shape[0]
    load_batch(work, lay, net, x, y, np.empty(0, np.int64), plain(0), m)
    network_forward(params, work, lay, net, m, plain(0))
    value = batch_loss(params, work, lay, net, cfg, hyper, m)
    network_backward(grads, params, work, lay, net, m, 1.0, 0.0, plain(0))
    return value
