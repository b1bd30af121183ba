"""gradcheck: the compiled gradient against finite differences of the NumPy loss."""

import numbers
import warnings

import numpy as np

from . import reference
from ._state import Packed, layer_table
from ._validate import check_network
from .kernels import network as KN

_NAMES = {0: "identity", 1: "relu", 2: "sigmoid", 3: "tanh"}
_MAX_SHRINK = 12  # h is divided by 4 up to this many times to step off a ReLU kink


def gradcheck(x, y, weights, biases=None, *, activation="relu", loss="sse", eps=1e-5,
              samples=None, seed=0):
    """Check fastnn's analytic gradient against finite differences.

    The gradient checked is the one a training step follows, computed by the
    compiled kernels: of the reported loss for "sse", "softmax_ce" and
    "sigmoid_bce", of ``sum((y_pred - y)**2) / (2 m)`` for "mse" (m rows). It is
    compared, in float64 on copies, with a finite-difference derivative of the
    loss as ``fastnn.reference`` computes it in NumPy.

    Parameters
    ----------
    x, y, weights, biases, activation, loss
        As in :func:`fastnn.train`; nothing is modified (read-only arrays are fine).
    eps : float, default 1e-5
        Relative step: parameter ``p`` moves by ``h = eps * max(1, |p|)``.
    samples : int, optional
        Check this many parameters drawn at random (with ``seed``) instead of all.
    seed : int, default 0

    Returns
    -------
    float
        ``max_i |d_i - g_i| / max_i |g_i|``: the largest difference between the
        finite difference d_i and the analytic gradient g_i, relative to the
        gradient's largest entry (so that entries near zero, where finite
        differences only see rounding, cannot dominate). d_i is the Richardson
        extrapolation of central differences with steps h and h/2 (error O(h^4)).
        Where a step would cross a ReLU kink (a unit switching on or off), h is
        divided by 4 until none does; a parameter sitting on a kink, where the
        derivative does not exist, is skipped with a ``RuntimeWarning``. ``nan``
        when no parameter could be checked, ``inf`` when a difference is not finite.

        Measured (tests/test_gradcheck.py): correct gradients give at most 2.3e-9 over
        every activation, loss and depth tested, the seeds' networks included; a
        gradient that is wrong by 1% in one layer, or misses an activation's
        derivative, gives more than 1e-3. Treat more than 1e-6 as a failure.

    Raises
    ------
    ValueError
        Non-finite parameters, a non-finite loss at the given parameters,
        ``samples < 1``, ``eps <= 0`` or not finite, and everything train rejects.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    >>> w = [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))]
    >>> fastnn.gradcheck(x, y, w, activation="tanh") < 1e-6
    True
    """
    eps, samples = _check_settings(eps, samples, seed)
    net = check_network(x, y, weights, biases, activation, loss, update=False)
    w64 = [np.array(w, dtype=np.float64) for w in net.weights]
    b64 = [None if b is None else np.array(b, dtype=np.float64) for b in net.biases]
    net = check_network(net.x.astype(np.float64), net.y.astype(np.float64), w64,
                        b64 if biases is not None else None, activation, loss)
    table, _, n_params = layer_table(net, net.x.shape[0])
    packed = Packed(net, table, n_params)
    if not np.isfinite(packed.params).all():
        raise ValueError("weights and biases must be finite to check a gradient")
    objective = _Objective(net, packed, loss)
    if not np.isfinite(objective()[0]):
        raise ValueError(f"the {loss} loss is not finite at these weights: there is no "
                         f"gradient to check (scale the weights or the data down)")
    analytic = _analytic_gradient(net, packed)
    index = np.arange(n_params)
    if samples is not None and samples < n_params:
        index = np.random.default_rng(seed).choice(n_params, samples, replace=False)
    diffs, skipped = [], 0
    pattern = objective()[1]
    for i in index:
        numeric = _derivative(objective, int(i), eps, pattern)
        if numeric is None:
            skipped += 1
        else:
            diffs.append((abs(numeric - analytic[i]), abs(analytic[i])))
    if skipped:
        warnings.warn(f"fastnn.gradcheck: {skipped} of {len(index)} parameters sit on a ReLU "
                      f"kink, where the derivative does not exist; they were not checked",
                      RuntimeWarning, stacklevel=2)
    return _worst(diffs)


def _check_settings(eps, samples, seed):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a real number, found {type(eps).__name__}")
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be finite and > 0, found {eps!r}")
    if samples is not None:
        if isinstance(samples, bool) or not isinstance(samples, numbers.Integral):
            raise TypeError(f"samples must be None or an int >= 1, "
                            f"found {type(samples).__name__}")
        if samples < 1:
            raise ValueError(f"samples must be None or an int >= 1, found {samples}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, found {seed!r}")
    return float(eps), samples


class _Objective:
    """The loss whose gradient training follows, from the flat parameters, in NumPy; and
    the on/off pattern of every ReLU unit there."""

    def __init__(self, net, packed, loss):
        self.net, self.packed, self.loss = net, packed, loss
        self.acts = [_NAMES[c] for c in net.activations]
        self.scale = net.widths[-1] / 2.0 if loss == "mse" else 1.0

    def at(self, i, value):
        """The objective with parameter i set to value (and put back after)."""
        params = self.packed.params
        saved, params[i] = params[i], value
        try:
            return self()
        finally:
            params[i] = saved

    def __call__(self):
        weights = [flat for user, flat in self.packed.views[:len(self.net.weights)]]
        biases = [None] * len(weights)
        views = iter(self.packed.views[len(weights):])
        for i, b in enumerate(self.net.biases):
            biases[i] = None if b is None else next(views)[1]
        with np.errstate(all="ignore"):
            outs = reference.network_forward(self.net.x, weights, biases, self.acts)
            value = reference.loss_forward_backward(outs[-1], self.net.y, self.loss)[0]
        kinks = tuple((a > 0).tobytes() for a, act in zip(outs[1:], self.acts) if act == "relu")
        return self.scale * value, kinks


def _analytic_gradient(net, packed):
    # the compiled kernels' gradient of the objective (see loop.loss_and_grad)
    lay, size = KN.workspace_layout(net.widths, net.x.shape[0])
    cfg = np.zeros(KN.CFG_SIZE, np.int64)
    cfg[KN.LOSS] = net.loss
    hyper = np.zeros(KN.HYPER_SIZE)
    hyper[KN.LOSS_SCALE] = 1.0
    table, _, _ = layer_table(net, net.x.shape[0])
    grads = np.empty_like(packed.params)
    KN.loss_and_grad(grads, packed.params.copy(), np.empty(size), lay, table, cfg, hyper,
                     net.x, net.y)
    return grads


def _derivative(objective, i, eps, pattern):
    """Richardson-extrapolated central difference of the objective along parameter i, or
    None when no step small enough to keep the ReLU on/off pattern could be found."""
    base = objective.packed.params[i]
    h = eps * max(1.0, abs(base))
    for _ in range(_MAX_SHRINK):
        values = []
        for step in (h, -h, h / 2, -h / 2):
            value, kinks = objective.at(i, base + step)
            if kinks != pattern:
                break
            values.append(value)
        else:
            up, down, up2, down2 = values
            with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: reported as inf
                coarse, fine = (up - down) / (2 * h), (up2 - down2) / h
                return (4 * fine - coarse) / 3
        h /= 4
    return None


def _worst(diffs):
    if not diffs:
        return float("nan")
    errors = np.array([d for d, _ in diffs])
    if not np.isfinite(errors).all():
        return float("inf")
    scale = max(g for _, g in diffs)
    if scale == 0:
        return 0.0 if errors.max() == 0 else float("inf")
    return float(errors.max() / scale)
