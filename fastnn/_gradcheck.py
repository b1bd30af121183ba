"""Check the compiled gradient against central finite differences."""

import numpy as np

from . import kernels as K
from ._driver import _Packed
from ._validate import check_network


def gradcheck(x, y, weights, biases=None, *, activation="relu", loss="sse",
              eps=1e-5, samples=None, seed=0):
    """Maximum relative error of fastnn's analytic gradient against central differences.

    Works in float64 on copies (nothing is modified). The gradient checked is the
    one training follows: of the reported loss for "sse", and of
    sum((y_pred - y)**2) / (2 m) for "mse". ``samples=k`` checks k parameters
    drawn at random (``seed``) instead of all of them.
    """
    net = check_network(x, y, weights, biases, activation, loss, update=False)
    w64 = [np.array(w, dtype=np.float64) for w in net.weights]
    b64 = [None if b is None else np.array(b, dtype=np.float64) for b in net.biases]
    net64 = check_network(net.x.astype(np.float64), net.y.astype(np.float64), w64,
                          b64 if biases is not None else None, activation, loss)
    packed = _Packed(net64)
    params = packed.params
    cfg = np.array([net64.loss, net64.x.shape[0], K.CHECK_NONE], np.int64)
    work = np.empty(K.workspace_size(net64.widths, net64.x.shape[0]), np.float64)
    scratch = np.empty_like(params)
    scale = 1.0 if loss == "sse" else net64.widths[-1] / 2.0

    def objective(p):
        return scale * K.loss_and_grad(scratch, p, work, packed.table, cfg, net64.x, net64.y)

    grads = np.empty_like(params)
    K.loss_and_grad(grads, params, work, packed.table, cfg, net64.x, net64.y)
    index = np.arange(params.size)
    if samples is not None and samples < params.size:
        index = np.random.default_rng(seed).choice(params.size, samples, replace=False)
    worst = 0.0
    for i in index:
        saved = params[i]
        h = eps * max(1.0, abs(saved))
        params[i] = saved + h
        up = objective(params)
        params[i] = saved - h
        down = objective(params)
        params[i] = saved
        numeric = (up - down) / (2 * h)
        denom = max(abs(numeric), abs(grads[i]), 1e-8)
        worst = max(worst, abs(numeric - grads[i]) / denom)
    return worst
