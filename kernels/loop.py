"""Whole training loops, compiled: epochs x batches x layers in one call.

Every network is described by data, so one compilation per dtype (and code
path, see ``train_loop``) serves all depths, widths, activations and losses:

* ``params``: all weights, then biases, as one flat array of the network dtype;
* ``net``: int64 table, one row per layer: ``N_IN, N_OUT, ACT, W_OFF, B_OFF``
  (``B_OFF = -1``: no bias; offsets index ``params``);
* ``cfg``: int64 array ``LOSS, BATCH, CHECK`` (see ``CHECK_*``), optionally ``GRAM``
  (see ``GRAM_*``);
* ``work``: scratch of :func:`workspace_size` elements, allocated by the caller
  once, so nothing is allocated inside the loop.
"""

import numpy as np

from ._jit import jit
from ._views import block, unliteral
from .blas import gemm
from .layers import (IDENTITY, MSE, RELU, SIGMOID, SSE, TANH, _dense_backward, _dense_forward,
                     _use_blas, activation_forward, loss_forward_backward)

N_IN, N_OUT, ACT, W_OFF, B_OFF = 0, 1, 2, 3, 4
LOSS, BATCH, CHECK, GRAM = 0, 1, 2, 3
# CHECK_LOSS: stop after the first epoch whose loss is not finite, and report
# non-finite parameters at the end of the call. CHECK_EACH_EPOCH also checks
# the parameters after every epoch (used to pin down a divergence exactly).
CHECK_NONE, CHECK_LOSS, CHECK_EACH_EPOCH = 0, 1, 2
PARAMS_NOT_FINITE = -1
# cfg[GRAM] (optional; see gram_size): GRAM_START begins the Gram path's state in work
# (G, P, the summed gradients and w1 at the start), GRAM_CONTINUE carries it on from the
# previous call, GRAM_OFF never takes the path. Without the entry every call starts anew.
# GRAM_CONTINUE trusts the caller: the previous call took the path on the same work, x,
# parameters and lr (w1 is formed from the sum of the gradients times this call's lr).
GRAM_OFF, GRAM_START, GRAM_CONTINUE = 0, 1, 2


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


def gram_size(widths, batch, n_rows, in_order=True):
    """Extra scratch elements that let train_loop take the Gram path (0: it would not pay).

    Full-batch training in row order, 2 <= rows <= half the input features: the
    first layer's pre-activation x @ w1 is carried from epoch to epoch as
    P <- P - lr * d1 @ G with G = x x^T (N x N), and w1 is formed from its value at the
    start plus -lr * x^T @ (the summed d1) at the end of each call. That replaces the two
    N x d_in x n1 products of every epoch by one N x N x n1 product. It is the same
    arithmetic in real numbers; the rounding differs as with another summation order.
    The state carries over between calls (cfg[GRAM]), so chunking never changes it.
    """
    if len(widths) < 2:
        return 0
    batch = min(int(batch), int(n_rows))
    d_in, n1 = int(widths[0]), int(widths[1])
    use_blas = getattr(_use_blas, "py_func", _use_blas)
    if not (in_order and batch == n_rows and 2 <= batch and 2 * batch <= d_in  # as train_loop
            and use_blas(d_in, n1, batch)):
        return 0
    return batch * batch + 2 * n1 * batch + d_in * n1


def gram_state(work, widths, batch):
    """The part of ``work`` the Gram path carries from one call to the next besides the
    parameters (P and the summed gradients), for a caller that must replay a call:
    save it before the call, put it back before the replay (plain Python)."""
    m, n1 = int(batch), int(widths[1])
    start = workspace_size(widths, m) + m * m
    return work[start:start + 2 * n1 * m]


@jit(inline=True)
def _gram_pays(d_in, n1, m):
    # P's update (m*m*n1) costs at most a quarter of the two products it replaces
    # (2*m*d_in*n1)
    return 2 * m <= d_in and _use_blas(d_in, n1, m)


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


@jit(internal=True)
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


@jit(inline=True)
def network_forward(params, work, net, a_off, m):
    # forward through every layer; work holds a0 (n_0, m) and receives every activation
    _network_forward(params, work, net, a_off, m, True, 0)


@jit(inline=True)
def _network_forward(params, work, net, a_off, m, small, start):
    # network_forward from layer start on; small = None: every layer through gemm (see
    # _dense_forward)
    n_layers = net.shape[0]
    for layer in range(start, n_layers):
        a_in = block(work, a_off[layer], net[layer, N_IN], m)
        a_out = block(work, a_off[layer + 1], net[layer, N_OUT], m)
        _dense_forward(a_out, a_in, _weight(params, net, layer), _bias(params, net, layer),
                       net[layer, ACT], small)


@jit(inline=True)
def network_backward(grads, params, work, net, a_off, d_off, m, scale, keep):
    # backward from d_L (already in work); grads = keep * grads + scale * dloss/dparams
    # grads may be params itself (scale = -lr, keep = 1): the in-place SGD step.
    _network_backward(grads, params, work, net, a_off, d_off, m, scale, keep, True, 0)


@jit(inline=True)
def _network_backward(grads, params, work, net, a_off, d_off, m, scale, keep, small, stop):
    # network_backward down to layer stop (its d_out is left in work); small as in
    # _network_forward
    n_layers = net.shape[0]
    empty = block(work, 0, 0, 0)
    for layer in range(n_layers - 1, stop - 1, -1):
        n_in, n_out = net[layer, N_IN], net[layer, N_OUT]
        a_in = block(work, a_off[layer], n_in, m)
        d_out = block(work, d_off[layer + 1], n_out, m)
        d_in = empty if layer == 0 else block(work, d_off[layer], n_in, m)
        act_in = net[layer - 1, ACT] if layer > 0 else 0
        _dense_backward(d_in, _weight(grads, net, layer), _bias(grads, net, layer),
                        _weight(params, net, layer), d_out, a_in, act_in, scale, keep, small)


# Scalar helpers of the per-sample step. ``one`` is 1 in the network's dtype, so
# that float32 arithmetic stays float32, as in the reference.

@jit(inline=True)
def _act_scalar(z, act, one):
    # act(z) for one value; NaN stays NaN, as np.maximum
    if act == RELU:
        return one - one if z <= 0.0 else z
    if act == SIGMOID:
        return one / (one + np.exp(-z))
    if act == TANH:
        return np.tanh(z)
    return z


@jit(inline=True)
def _grad_scalar(s, a, act, one):
    # s * act'(z) from the output a = act(z); relu as np.where (no inf * 0)
    if act == RELU:
        return s if a > 0.0 else one - one
    if act == SIGMOID:
        return s * (a * (one - a))
    if act == TANH:
        return s * (one - a * a)
    return s


# The per-sample step indexes flat buffers at offsets read from the table. A signed
# index costs a test and a select each time (Numba wraps negative indices around,
# and LLVM cannot prove table offsets >= 0); an unsigned one is used as is. _u on
# every offset made mlp3_sgd 1.4x faster, with bitwise the same results (measured).
_u = np.uint64


@jit(inline=True)
def _sample_loss(work, d_last, a_last, y_off, n_out, loss, one):
    # loss_forward_backward for one sample (m = 1) on flat offsets
    d_last, a_last, y_off = _u(d_last), _u(a_last), _u(y_off)
    total = 0.0
    for j in range(n_out):
        r = work[a_last + _u(j)] - work[y_off + _u(j)]
        total += np.float64(r) * np.float64(r)  # float64 even for float32 data
        work[d_last + _u(j)] = (one + one) * r if loss == SSE else r  # MSE: r / m, m = 1
    if loss == MSE:
        total /= n_out
    return total


# Per-sample SGD works on one sample at a time, so every layer is a few dozen
# scalar multiply-adds and the loop overhead is what costs. For widths up to 8,
# loops capped at 8 iterations (exit early) unroll completely and are never
# vectorized (vector loops and their runtime checks cost more than they save at
# these trip counts): about 1.2x faster than plain loops on the 5-4-4-1 seed network.
SMALL = 8


@jit(inline=True)
def _sample_forward(params, work, w, b, a_in, a_out, n_in, n_out, act, one):
    # work[a_out:a_out+n_out] = act(b + w.T @ work[a_in:a_in+n_in]); w, b offsets in params
    # (b < 0: no bias)
    has_b = b >= 0
    w, b, a_in, a_out, n_out_u = _u(w), _u(b if has_b else 0), _u(a_in), _u(a_out), _u(n_out)
    if n_in <= SMALL and n_out <= SMALL:
        for j in range(SMALL):
            if j >= n_out:
                break
            s = params[b + _u(j)] if has_b else one - one
            for i in range(SMALL):
                if i >= n_in:
                    break
                s += work[a_in + _u(i)] * params[w + _u(i) * n_out_u + _u(j)]
            work[a_out + _u(j)] = _act_scalar(s, act, one)
    else:
        for j in range(n_out):
            s = params[b + _u(j)] if has_b else one - one
            for i in range(n_in):
                s += work[a_in + _u(i)] * params[w + _u(i) * n_out_u + _u(j)]
            work[a_out + _u(j)] = _act_scalar(s, act, one)


@jit(inline=True)
def _sample_backward(params, work, w, b, a_in, d_out, d_in, n_in, n_out, act_in, lr, one):
    # SGD step of one layer from d_out = dloss/dz; d_in (if >= 0) receives dloss/dz of the
    # layer below, from the weights before their update
    has_b, has_d = b >= 0, d_in >= 0
    w, b, a_in, d_out = _u(w), _u(b if has_b else 0), _u(a_in), _u(d_out)
    d_in, n_out_u = _u(d_in if has_d else 0), _u(n_out)
    if n_in <= SMALL and n_out <= SMALL:
        if has_b:
            for j in range(SMALL):
                if j >= n_out:
                    break
                params[b + _u(j)] += -lr * work[d_out + _u(j)]
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
                params[row + _u(j)] += -lr * (ai * dj)
            if has_d:
                work[d_in + _u(i)] = _grad_scalar(s, ai, act_in, one)
    else:
        if has_b:
            for j in range(n_out):
                params[b + _u(j)] += -lr * work[d_out + _u(j)]
        for i in range(n_in):
            ai = work[a_in + _u(i)]
            row = w + _u(i) * n_out_u
            s = one - one
            for j in range(n_out):
                dj = work[d_out + _u(j)]
                s += params[row + _u(j)] * dj
                params[row + _u(j)] += -lr * (ai * dj)
            if has_d:
                work[d_in + _u(i)] = _grad_scalar(s, ai, act_in, one)


@jit(inline=True)
def sample_step(params, work, net, a_off, d_off, y_off, loss, lr):
    # One SGD step on the single sample in work (m = 1): forward, loss, backward and update.
    # Returns the sample's loss. With one sample, per-layer calls and views cost more than
    # the arithmetic, so this works on flat offsets into params and work.
    n_layers = net.shape[0]
    one = params.dtype.type(1)
    lr = params.dtype.type(lr)  # as the reference: float32 data, float32 step
    for layer in range(n_layers):
        _sample_forward(params, work, net[layer, W_OFF], net[layer, B_OFF], a_off[layer],
                        a_off[layer + 1], net[layer, N_IN], net[layer, N_OUT], net[layer, ACT],
                        one)
    value = _sample_loss(work, d_off[n_layers], a_off[n_layers], y_off,
                         net[n_layers - 1, N_OUT], loss, one)
    for layer in range(n_layers - 1, -1, -1):
        _sample_backward(params, work, net[layer, W_OFF], net[layer, B_OFF], a_off[layer],
                         d_off[layer + 1], d_off[layer] if layer > 0 else -1,
                         net[layer, N_IN], net[layer, N_OUT],
                         net[layer - 1, ACT] if layer > 0 else IDENTITY, lr, one)
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
def train_loop(losses, params, work, net, cfg, lr, x, y, order, sample=True, batched=True,
               small=True, gram=True):
    # Runs len(losses) epochs of SGD on params in place; losses (E,) float64 receives epoch losses.
    # x (N, d_in), y (N, d_out); order (E, N) int64 row order per epoch, or (0, 0) for in order.
    # Returns the epochs completed with a finite loss (and finite parameters, per cfg[CHECK]),
    # or PARAMS_NOT_FINITE when only the final parameter check failed.
    # sample, batched, small, gram: None leaves a code path out of the compilation (Numba
    # prunes "is None" branches by type before typing): sample = one-sample steps (batch 1),
    # batched = steps of 2+ rows, small = hand-written loops for small layers in batched
    # steps (without it every layer goes through gemm), gram = the Gram path (gram_size).
    # The defaults compile all four; train_paths picks what one run needs, and only that
    # is compiled (first compiles: see the README's start-up table).
    n_rows = x.shape[0]
    n_layers = net.shape[0]
    batch = min(cfg[BATCH], n_rows)
    if batched is None and batch != 1:
        raise ValueError("train_loop: batched=None needs cfg[BATCH] == 1")
    check = cfg[CHECK]
    loss = cfg[LOSS]
    n_steps = (n_rows + batch - 1) // batch
    a_off, d_off, _ = _offsets(net, batch, True)
    y_off = d_off[n_layers] + net[n_layers - 1, N_OUT] * batch
    d_in, d_outw = net[0, N_IN], net[n_layers - 1, N_OUT]
    n1 = net[0, N_OUT]
    no_rows = order[0, :0] if order.shape[0] > 0 else np.empty(0, np.int64)
    fixed_batch = n_steps == 1 and order.shape[0] == 0
    if fixed_batch:  # full batch in order: load it once for the whole call
        load_batch(block(work, a_off[0], net[0, N_IN], batch),
                   block(work, y_off, d_outw, batch), x, y, no_rows, unliteral(0), batch)
    # The Gram path (see gram_size), when the caller made room for it
    g_mode = cfg[GRAM] if cfg.shape[0] > GRAM else GRAM_START
    on_gram = (batched is not None and gram is not None and fixed_batch and batch > 1
               and g_mode != GRAM_OFF and _gram_pays(d_in, n1, batch)
               and work.shape[0] >= y_off + d_outw * batch + batch * batch + 2 * n1 * batch
               + d_in * n1)
    start = 1 if on_gram else 0  # the layer the usual forward and backward start or stop at
    # each _gram_step call sits under single "is not None" tests: Numba prunes those
    if batched is not None:
        if gram is not None:
            if on_gram and g_mode != GRAM_CONTINUE:
                _gram_step(unliteral(_G_BEGIN), params, work, net, a_off, d_off, batch, lr)
    status = losses.shape[0]
    for epoch in range(losses.shape[0]):
        rows = order[epoch] if order.shape[0] > 0 else no_rows
        total = 0.0
        for step in range(n_steps):
            start_row = step * batch
            m = min(batch, n_rows - start_row)
            if sample is not None:
                if batched is None or batch == 1:  # copy the sample in place: cheaper than views
                    r = rows[step] if rows.shape[0] > 0 else step  # a caller's row: signed
                    for i in range(d_in):
                        work[_u(i)] = x[r, _u(i)]  # a_off[0] == 0
                    for j in range(d_outw):
                        work[_u(y_off) + _u(j)] = y[r, _u(j)]
                    total += sample_step(params, work, net, a_off, d_off, y_off, loss, lr)
                    continue
            if batched is not None:
                yt = block(work, y_off, d_outw, m)
                if not fixed_batch:
                    load_batch(block(work, a_off[0], net[0, N_IN], m), yt, x, y, rows, start_row,
                               m)
                if gram is not None:
                    if on_gram:
                        _gram_step(unliteral(_G_FORWARD), params, work, net, a_off, d_off, m,
                                   lr)
                _network_forward(params, work, net, a_off, m, small, start)
                pred = block(work, a_off[n_layers], d_outw, m)
                total += loss_forward_backward(block(work, d_off[n_layers], d_outw, m), pred, yt,
                                               loss)
                _network_backward(params, params, work, net, a_off, d_off, m, -lr, 1.0, small,
                                  start)
                if gram is not None:
                    if on_gram:
                        _gram_step(unliteral(_G_BACKWARD), params, work, net, a_off, d_off, m,
                                   lr)
        losses[epoch] = total / n_steps
        if check != CHECK_NONE:
            if not np.isfinite(losses[epoch]):
                status = epoch
                break
            if check == CHECK_EACH_EPOCH:
                if batched is not None:
                    # the parameters of this epoch, w1 included: a D_in x N x n1 product
                    # per epoch, so such a call (the driver's replay after a divergence)
                    # runs up to ~10x longer than the chunk it replays
                    if gram is not None:
                        if on_gram:
                            _gram_step(unliteral(_G_WEIGHTS), params, work, net,
                                       a_off, d_off, batch, lr)
                if not all_finite(params):
                    status = epoch
                    break
    if batched is not None:
        if gram is not None:
            if on_gram:
                _gram_step(unliteral(_G_WEIGHTS), params, work, net, a_off, d_off, batch, lr)
    if status == losses.shape[0] and check == CHECK_LOSS and not all_finite(params):
        return PARAMS_NOT_FINITE
    return status


_G_BEGIN, _G_FORWARD, _G_BACKWARD, _G_WEIGHTS = 0, 1, 2, 3


# Not inlined, and no array-to-array slice assignments (Numba compiles an error message
# with the shapes for those, 4.7 s of one first compile): the Gram steps inlined into
# train_loop doubled its first compile (measured 9 -> 18 s for relu2).
@jit(internal=True)
def _gram_step(op, params, work, net, a_off, d_off, m, lr):
    # One step of the Gram path on its state after the workspace (see gram_size):
    # G = x x^T (m, m), P = w1.T @ x.T (n1, m), dsum = sum of d1 (n1, m), w1 at the start.
    # _G_BEGIN: form G, P, dsum = 0 and the copy of w1; _G_FORWARD: a1 = act(P + b1);
    # _G_BACKWARD: from d1 = dloss/dz1, b1 -= lr * d1.sum(1), P -= lr * d1 @ G (G is
    # symmetric), dsum += d1; _G_WEIGHTS: w1 = w1 at the start - lr * x.T @ dsum.T, which
    # depends on the sum only, so w1 after an epoch is the same however epochs are split.
    n_layers = net.shape[0]
    d_in, n1, d_out = net[0, N_IN], net[0, N_OUT], net[n_layers - 1, N_OUT]
    g_off = d_off[n_layers] + 2 * d_out * m  # after the last gradient and the targets
    yes, no = unliteral(True), unliteral(False)
    gmat = block(work, g_off, m, m)
    pre = block(work, g_off + m * m, n1, m)
    dsum = block(work, g_off + m * m + n1 * m, n1, m)
    w1_start = block(work, g_off + m * m + 2 * n1 * m, d_in, n1)
    a0 = block(work, a_off[0], d_in, m)
    w1 = _weight(params, net, 0)
    b1 = _bias(params, net, 0)
    if op == _G_BEGIN:
        gemm(gmat, a0, a0, yes, no, 1.0, 0.0)
        gemm(pre, w1, a0, yes, no, 1.0, 0.0)
        for j in range(n1):
            for t in range(m):
                dsum[j, t] = 0.0
        for i in range(d_in):
            for j in range(n1):
                w1_start[i, j] = w1[i, j]
    elif op == _G_FORWARD:
        a1 = block(work, a_off[1], n1, m)
        has_b = b1.shape[0] > 0
        for j in range(n1):
            for t in range(m):
                a1[j, t] = pre[j, t] + b1[j] if has_b else pre[j, t]
        activation_forward(a1, net[0, ACT])
    elif op == _G_BACKWARD:
        d1 = block(work, d_off[1], n1, m)
        scale = -lr
        if b1.shape[0] > 0:  # as _dense_backward with keep = 1
            for j in range(n1):
                s = 0.0
                for t in range(m):
                    s += d1[j, t]
                b1[j] = b1[j] + scale * s
        gemm(pre, d1, gmat, no, no, scale, 1.0)
        for j in range(n1):
            for t in range(m):
                dsum[j, t] += d1[j, t]
    else:
        for i in range(d_in):
            for j in range(n1):
                w1[i, j] = w1_start[i, j]
        gemm(w1, a0, dsum, no, yes, -lr, 1.0)


def gemm_only(widths, batch, n_rows):
    """True when every layer of a network of these widths takes the gemm path, for
    batches of ``batch`` rows and for the last, partial one (plain Python)."""
    batch = min(batch, n_rows)
    sizes = {batch, n_rows % batch} - {0}
    use_blas = getattr(_use_blas, "py_func", _use_blas)
    return all(use_blas(n_in, n_out, m) for m in sizes for n_in, n_out in zip(widths, widths[1:]))


def train_paths(widths, batch, n_rows, in_order=True):
    """train_loop's (sample, batched, small, gram) for this network, batch size and row
    order (plain Python): only the code that runs gets compiled. A flag left True where
    its path is not taken costs compile time only; train_loop still decides at run time."""
    if min(batch, n_rows) == 1:
        return True, None, None, None
    return (None, True, None if gemm_only(widths, batch, n_rows) else True,
            True if gram_size(widths, batch, n_rows, in_order) > 0 else None)


@jit
def predict_loop(out, params, work, net, x, small=True):
    # out (N, d_out) = network(x (N, d_in)), batch by batch through the scratch;
    # small = None: every layer through gemm, and the small-layer loops are not compiled
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
        _network_forward(params, work, net, a_off, m, small, 0)
        pred = block(work, a_off[n_layers], net[n_layers - 1, N_OUT], m)
        for t in range(m):
            for j in range(pred.shape[0]):
                out[start + t, j] = pred[j, t]


@jit
def loss_and_grad(grads, params, work, net, cfg, x, y):
    # One batch of all rows: returns its loss, writes grads (like params) = d(objective)/d(params)
    n_rows = x.shape[0]
    n_layers = net.shape[0]
    a_off, d_off, _ = _offsets(net, n_rows, True)
    d_outw = net[n_layers - 1, N_OUT]
    y_off = d_off[n_layers] + d_outw * n_rows
    yt = block(work, y_off, d_outw, n_rows)
    load_batch(block(work, a_off[0], net[0, N_IN], n_rows), yt, x, y,
               np.empty(0, np.int64), unliteral(0), n_rows)
    network_forward(params, work, net, a_off, n_rows)
    pred = block(work, a_off[n_layers], d_outw, n_rows)
    value = loss_forward_backward(block(work, d_off[n_layers], d_outw, n_rows), pred, yt, cfg[LOSS])
    network_backward(grads, params, work, net, a_off, d_off, n_rows, 1.0, 0.0)
    return value
