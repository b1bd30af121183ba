"""Plain NumPy reference: the oracle for fastnn's compiled kernels.

Written for reading, in the seeds' own style (rows are samples). Each function
mirrors the kernel of the same name in ``fastnn.kernels`` (which stores
activations transposed, (units, batch), for speed). ``train`` is the loop
``fastnn.train`` replaces, with the same arguments and the same numbers (to
rounding).
"""

import numpy as np

from ._errors import DivergenceError
from ._validate import (check_flag, check_network, check_params_finite, check_predict,
                        check_schedule, check_validation)
from .kernels import ACTIVATIONS, LOSSES
from .kernels import optim as KO
from .optim import resolve

_NAMES = {0: "identity", 1: "relu", 2: "sigmoid", 3: "tanh"}
_LOSS_NAMES = {0: "sse", 1: "mse", 2: "softmax_ce", 3: "sigmoid_bce"}
_RULES = (KO.SGD, KO.ADAM, KO.SK_SGD, KO.SK_ADAM)


def _known(value, choices, name):
    # a name (or rule code) this module computes; anything else would fall through silently
    if isinstance(value, (bool, np.bool_)) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                         f"found {value!r}")


def activation_forward(z, activation):
    """act(z), elementwise."""
    _known(activation, tuple(ACTIVATIONS), "activation")
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "sigmoid":
        with np.errstate(over="ignore"):  # exp(-z) overflows to inf: sigmoid is 0 there
            return 1 / (1 + np.exp(-z))
    if activation == "tanh":
        return np.tanh(z)
    return z


def activation_backward(d, a, activation):
    """d * act'(z), with the derivative written from the output a = act(z)."""
    _known(activation, tuple(ACTIVATIONS), "activation")
    if activation == "relu":
        return np.where(a > 0, d, 0)  # as the seeds' grad_h[z < 0] = 0: no inf * 0
    if activation == "sigmoid":
        return d * (a * (1 - a))
    if activation == "tanh":
        return d * (1 - a * a)
    return d


def softmax_forward(z):
    """Row-wise softmax of z (m, n), after subtracting each row's max."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dense_forward(a_in, w, b, activation):
    """(m, n_in) -> (m, n_out): act(a_in @ w + b)."""
    z = a_in @ w
    if b is not None:
        z = z + b.reshape(1, -1)
    return activation_forward(z, activation)


def dense_backward(d_out, a_in, w, activation_in):
    """Gradients of one layer from d_out = dloss/dz (m, n_out).

    Returns (d_in, grad_w, grad_b): d_in = dloss/dz of the layer below (through
    its activation ``activation_in``; None when a_in is the input, which needs
    no gradient), grad_w = a_in.T @ d_out, grad_b = column sums.
    """
    grad_w = a_in.T @ d_out
    grad_b = d_out.sum(axis=0)
    d_in = None if activation_in is None else activation_backward(d_out @ w.T, a_in, activation_in)
    return d_in, grad_w, grad_b


def loss_forward_backward(z, y, loss):
    """(loss value as float64, dloss/dz) for a batch of m rows.

    sse:         sum((z - y)**2),                       gradient 2 (z - y)
    mse:         sum((z - y)**2) / (m * outputs),       gradient (z - y) / m
    softmax_ce:  mean over rows of -sum(y * log p),     gradient (p - y) / m,  p = softmax(z)
    sigmoid_bce: mean over rows of the sum over outputs of max(z, 0) - z y + log(1 + exp(-|z|)),
                 gradient (sigmoid(z) - y) / m
    """
    _known(loss, tuple(LOSSES), "loss")
    m = z.shape[0]
    if loss == "softmax_ce":
        shifted = z.astype(np.float64) - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        value = float(-(y * (shifted - log_norm)).sum() / m)
        return value, (softmax_forward(z) - y) / m
    if loss == "sigmoid_bce":
        z64 = z.astype(np.float64)
        value = float((np.maximum(z64, 0) - z64 * y + np.log1p(np.exp(-np.abs(z64)))).sum() / m)
        with np.errstate(over="ignore"):
            return value, (1 / (1 + np.exp(-z)) - y) / m
    r = z - y
    value = float(np.square(r.astype(np.float64)).sum())
    if loss == "sse":
        return value, 2.0 * r
    return value / r.size, r / m


def optimizer_update(p, g, buf, sq, rule, hyper, nesterov, t, decay):
    """One update of the parameter array p (in place) from its gradient g, with its state
    arrays buf and sq; hyper as ``fastnn.kernels.optim`` (LR .. EPS); t is the step, from 1."""
    _known(rule, _RULES, "rule")
    f = p.dtype.type
    lr, mu, b1, b2, eps = (f(hyper[KO.LR]), f(hyper[KO.MOMENTUM]), f(hyper[KO.BETA1]),
                           f(hyper[KO.BETA2]), f(hyper[KO.EPS]))
    if decay != 0:
        g = g + f(decay) * p
    if rule == KO.SGD:
        if mu == 0:
            p -= lr * g
            return
        buf[...] = g if t == 1 else mu * buf + g
        p -= lr * (g + mu * buf if nesterov else buf)
    elif rule == KO.ADAM:
        buf += (g - buf) * (f(1) - b1)
        sq[...] = b2 * sq + (f(1) - b2) * g * g
        c1, c2 = f(1.0 - hyper[KO.BETA1] ** t), f(1.0 - hyper[KO.BETA2] ** t)
        p -= (lr / c1) * (buf / (np.sqrt(sq) / np.sqrt(c2) + eps))
    elif rule == KO.SK_SGD:
        buf[...] = mu * buf - lr * g
        p += mu * buf - lr * g if nesterov else buf
    else:
        buf[...] = b1 * buf + (f(1) - b1) * g
        sq[...] = b2 * sq + (f(1) - b2) * (g * g)
        lr_t = f(hyper[KO.LR] * np.sqrt(1.0 - hyper[KO.BETA2] ** t) / (1.0 - hyper[KO.BETA1] ** t))
        p += -lr_t * buf / (np.sqrt(sq) + eps)


def network_forward(x, weights, biases, activations):
    """Activations of every layer, input first: [x, a_1, ..., z_out]."""
    outs = [x]
    for w, b, act in zip(weights, biases, activations):
        outs.append(dense_forward(outs[-1], w, b, act))
    return outs


def network_backward(d_out, outs, weights, activations):
    """Per-layer (grad_w, grad_b), from d_out = dloss/dz_out back to the input."""
    grads = [None] * len(weights)
    d = d_out
    for i in range(len(weights) - 1, -1, -1):
        act_in = activations[i - 1] if i > 0 else None
        d_in, grad_w, grad_b = dense_backward(d, outs[i], weights[i], act_in)
        grads[i] = (grad_w, grad_b)
        d = d_in
    return grads


def loss_and_grad(x, y, weights, biases=None, *, activation="relu", loss="sse"):
    """Loss of all rows as one batch, and the gradient the training step follows.

    Returns (value, [(grad_w, grad_b), ...]). For "mse" the step follows the
    gradient of sum((y_pred - y)**2) / (2 m), which is ``value * D_out / 2``.
    """
    net = check_network(x, y, weights, biases, activation, loss, update=False)
    acts = [_NAMES[c] for c in net.activations]
    outs = network_forward(net.x, net.weights, net.biases, acts)
    value, d = loss_forward_backward(outs[-1], net.y, loss)
    return value, network_backward(d, outs, net.weights, acts)


def predict(x, weights, biases=None, *, activation="relu", output="identity"):
    """The network's output for x, shape (N, D_out)."""
    net, _ = check_predict(x, weights, biases, activation, output)
    acts = [_NAMES[c] for c in net.activations]
    z = network_forward(net.x, net.weights, net.biases, acts)[-1]
    if output == "softmax":
        return softmax_forward(z)
    return activation_forward(z, "sigmoid") if output == "sigmoid" else z


def validation_loss(xv, yv, weights, biases, activations, loss):
    """The loss of all validation rows as one batch."""
    return loss_forward_backward(network_forward(xv, weights, biases, activations)[-1], yv, loss)[0]


class _Optimizer:
    """The optimizer's rule and its state as per-array views of fastnn's flat buffers."""

    def __init__(self, optimizer, params, n_weights):
        self.opt = optimizer
        self.params = params
        n = sum(p.size for p in params)
        self.flat, self.t = optimizer.bind(params, n, params[0].dtype)
        self.hyper = optimizer.hyper()
        self.views, off = [], 0
        for i, p in enumerate(params):
            if self.flat.shape[1]:
                bufs = (self.flat[0, off:off + p.size].reshape(p.shape),
                        self.flat[1, off:off + p.size].reshape(p.shape))
            else:
                bufs = (None, None)
            decay = self.hyper[KO.DECAY] if i < n_weights else self.hyper[KO.BIAS_DECAY]
            self.views.append((bufs, decay))
            off += p.size

    def step(self, grads, m):
        self.t += 1
        scale = 1.0 / m if self.opt.decay_per_row else 1.0
        for p, g, ((buf, sq), decay) in zip(self.params, grads, self.views):
            optimizer_update(p, g.reshape(p.shape), buf, sq, self.opt.rule, self.hyper,
                             self.opt.nesterov, self.t, decay * scale)

    def snapshot(self):
        return [p.copy() for p in self.params], self.flat.copy(), self.t

    def restore(self, snap):
        for p, s in zip(self.params, snap[0]):
            p[...] = s
        self.flat[...] = snap[1]
        self.t = snap[2]

    def keep(self):
        self.opt.keep(self.params, self.flat, self.t)


def train(x, y, weights, biases=None, *, activation="relu", loss="sse", lr=None, optimizer=None,
          epochs, batch_size=None, shuffle=False, seed=None, validation=None, early_stopping=None,
          check_finite=True):
    """The NumPy loop fastnn.train replaces: same arguments, same numbers (to rounding)."""
    optimizer = resolve(lr, optimizer)
    epochs, batch_size = check_schedule(epochs, batch_size, shuffle, seed)
    net = check_network(x, y, weights, biases, activation, loss)
    optimizer.check_dtype(net.dtype)
    val, patience = check_validation(validation, early_stopping, net, loss)
    params = [p for p in net.weights + net.biases if p is not None]
    check_flag(check_finite, "check_finite")
    if check_finite:
        check_params_finite(net.weights, net.biases)
    opt = _Optimizer(optimizer, params, len(net.weights))
    acts = [_NAMES[c] for c in net.activations]
    n = net.x.shape[0]
    batch = n if batch_size is None else min(batch_size, n)
    rng = np.random.default_rng(seed) if shuffle else None
    history, val_history = [], []
    best = (np.inf, -1, None)  # validation loss, epoch, snapshot
    stopped = False
    for epoch in range(epochs):
        saved = opt.snapshot() if check_finite else None
        order = rng.permutation(n) if rng is not None else None
        step_losses = []
        for start in range(0, n, batch):
            rows = slice(start, start + batch) if order is None else order[start:start + batch]
            outs = network_forward(net.x[rows], net.weights, net.biases, acts)
            value, d = loss_forward_backward(outs[-1], net.y[rows], loss)
            step_losses.append(value)
            grads = network_backward(d, outs, net.weights, acts)
            flat = [g for g, _ in grads] + [gb for (_, gb), b in zip(grads, net.biases)
                                            if b is not None]
            opt.step(flat, outs[0].shape[0])
        history.append(sum(step_losses) / len(step_losses))
        if check_finite and not (np.isfinite(history[-1])
                                 and all(np.isfinite(p).all() for p in params)):
            opt.restore(saved)
            opt.keep()
            raise DivergenceError(epoch, history[-2] if epoch else None, np.array(history[:-1]),
                                  optimizer.lr, np.array(val_history) if val else None)
        if val is not None:
            val_history.append(validation_loss(*val, net.weights, net.biases, acts, loss))
            if val_history[-1] < best[0]:
                best = (val_history[-1], epoch, opt.snapshot() if patience else None)
            elif patience and epoch - best[1] >= patience:
                stopped = True  # patience ran out, on the last epoch too
                break
    if patience and best[2] is not None:
        opt.restore(best[2])
    opt.keep()
    if val is None:
        return np.array(history)
    from ._driver import History
    return History(np.array(history), np.array(val_history), best[1],
                   stopped)
