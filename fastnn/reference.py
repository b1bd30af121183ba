"""Plain NumPy reference: the oracle for fastnn's compiled kernels.

Written for reading, in the seeds' own style (rows are samples). Each function
mirrors the kernel of the same name in ``fastnn.kernels`` (which stores
activations transposed, (units, batch), for speed).
"""

import numpy as np

from ._errors import DivergenceError
from ._validate import check_network, check_predict, check_schedule

_NAMES = {0: "identity", 1: "relu", 2: "sigmoid", 3: "tanh"}


def activation_forward(z, activation):
    """act(z), elementwise."""
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
    if activation == "relu":
        return np.where(a > 0, d, 0)  # as the seeds' grad_h[z < 0] = 0: no inf * 0
    if activation == "sigmoid":
        return d * (a * (1 - a))
    if activation == "tanh":
        return d * (1 - a * a)
    return d


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


def loss_forward_backward(y_pred, y, loss):
    """(loss value as float64, dloss/dy_pred).

    sse: sum((y_pred - y)**2),  gradient 2 (y_pred - y)
    mse: mean((y_pred - y)**2), gradient (y_pred - y) / m   (m = rows in the batch)
    """
    r = y_pred - y
    value = float(np.square(r.astype(np.float64)).sum())
    if loss == "sse":
        return value, 2.0 * r
    return value / r.size, r / r.shape[0]


def network_forward(x, weights, biases, activations):
    """Activations of every layer, input first: [x, a_1, ..., y_pred]."""
    outs = [x]
    for w, b, act in zip(weights, biases, activations):
        outs.append(dense_forward(outs[-1], w, b, act))
    return outs


def network_backward(d_out, outs, weights, activations):
    """Per-layer (grad_w, grad_b), from d_out = dloss/dy_pred back to the input."""
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


def predict(x, weights, biases=None, *, activation="relu"):
    """The network's output for x, shape (N, D_out)."""
    net = check_predict(x, weights, biases, activation)
    acts = [_NAMES[c] for c in net.activations]
    return network_forward(net.x, net.weights, net.biases, acts)[-1]


def train(x, y, weights, biases=None, *, activation="relu", loss="sse", lr, epochs,
          batch_size=None, shuffle=False, seed=None, check_finite=True):
    """The NumPy loop fastnn.train replaces: same signature, same numbers."""
    lr, epochs, batch_size = check_schedule(lr, epochs, batch_size, shuffle, seed)
    net = check_network(x, y, weights, biases, activation, loss)
    params = [p for p in net.weights + net.biases if p is not None]
    if check_finite and not all(np.isfinite(p).all() for p in params):
        raise ValueError("weights and biases must be finite before training "
                         "(or pass check_finite=False)")
    acts = [_NAMES[c] for c in net.activations]
    lr = net.dtype.type(lr)  # float32 networks compute in float32
    n = net.x.shape[0]
    batch = n if batch_size is None else min(batch_size, n)
    rng = np.random.default_rng(seed) if shuffle else None
    history = np.zeros(epochs)
    for epoch in range(epochs):
        saved = [p.copy() for p in params] if check_finite else None
        order = rng.permutation(n) if rng is not None else None
        step_losses = []
        for start in range(0, n, batch):
            rows = slice(start, start + batch) if order is None else order[start:start + batch]
            outs = network_forward(net.x[rows], net.weights, net.biases, acts)
            value, d = loss_forward_backward(outs[-1], net.y[rows], loss)
            step_losses.append(value)
            grads = network_backward(d, outs, net.weights, acts)
            for w, b, (grad_w, grad_b) in zip(net.weights, net.biases, grads):
                w -= lr * grad_w
                if b is not None:
                    b -= lr * grad_b.reshape(b.shape)
        history[epoch] = sum(step_losses) / len(step_losses)
        if check_finite and not (np.isfinite(history[epoch])
                                 and all(np.isfinite(p).all() for p in params)):
            for p, s in zip(params, saved):
                p[...] = s
            last = float(history[epoch - 1]) if epoch else None
            raise DivergenceError(epoch, last, history[:epoch], float(lr))
    return history
