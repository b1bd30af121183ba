"""Optimizers: the update rule's settings, and its state for the arrays it trains.

An optimizer object remembers, after a ``train`` call, its step count and
buffers (momentum, or Adam's moments) for the weights and biases it trained. A
later call with the same optimizer and the same arrays continues exactly where
the first stopped: two calls of 10 epochs give bitwise the numbers of one call
of 20. Passing it other arrays raises ``ValueError``; ``reset()`` forgets the state.
"""

import numbers

import numpy as np

from .kernels import optim as KO


def _real(value, name, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, found {type(value).__name__}")
    value = float(value)
    bad = not np.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        rule = " and ".join(p for p in (lo, hi) if p)
        raise ValueError(f"{name} must be finite{' and ' + rule if rule else ''}, found {value!r}")
    return value


class Optimizer:
    """Base class: settings for the kernels, and the state of the arrays trained."""

    rule = KO.SGD
    nesterov = False
    decay_per_row = False  # scikit-learn divides alpha by the batch's rows

    def __init__(self):
        self.reset()

    def reset(self):
        """Forget the state: the next ``train`` call starts from step 0 with zero buffers."""
        self._arrays = None   # the weights and biases trained, in order
        self._buffers = None  # (2, P) in the network's dtype
        self.steps = 0        # update steps taken so far

    @property
    def fused(self):
        """True when the update is the plain ``p -= lr * g``, fused into backward."""
        return False

    def hyper(self):
        """float64 values for the kernels' hyper array, by index."""
        h = np.zeros(KO.HYPER_SIZE)
        h[KO.LR] = self.lr
        return h

    def bind(self, arrays, n_params, dtype):
        """The state buffers for these arrays (new zeros on first use) and the step count."""
        if self._arrays is not None:
            same = len(arrays) == len(self._arrays) and all(
                a is b for a, b in zip(arrays, self._arrays))
            if not same or self._buffers.shape[1] != n_params or self._buffers.dtype != dtype:
                raise ValueError(
                    f"this {type(self).__name__} holds the state of other weights and biases "
                    f"(it trained {len(self._arrays)} arrays, found {len(arrays)} others); "
                    f"use a new optimizer, or call .reset() to start its state anew")
            return self._buffers, self.steps
        return np.zeros((2, n_params), dtype), 0

    def keep(self, arrays, buffers, steps):
        """Remember the state after a train call (buffers is the kernels' own array)."""
        self._arrays, self._buffers, self.steps = list(arrays), buffers, int(steps)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent as ``torch.optim.SGD`` (dampening 0).

    With g the gradient plus ``weight_decay * p`` (every parameter, biases included)::

        b = g (first step), then b = momentum * b + g
        p -= lr * (g + momentum * b)    with nesterov
        p -= lr * b                     without (p -= lr * g when momentum is 0)

    Parameters
    ----------
    lr : float
        Learning rate, finite and > 0.
    momentum : float, default 0
        Momentum factor, >= 0.
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0).
    weight_decay : float, default 0
        L2 penalty added to the gradient, >= 0.
    """

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr = _real(lr, "lr", 0.0, low_open=True)
        self.momentum = _real(momentum, "momentum", 0.0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, found {type(nesterov).__name__}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0, found momentum=0.0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _real(weight_decay, "weight_decay", 0.0)
        super().__init__()

    @property
    def fused(self):
        return self.momentum == 0.0 and self.weight_decay == 0.0

    def hyper(self):
        h = super().hyper()
        h[KO.MOMENTUM] = self.momentum
        h[KO.DECAY] = h[KO.BIAS_DECAY] = self.weight_decay
        return h

    def _settings(self):
        return dict(lr=self.lr, momentum=self.momentum, nesterov=self.nesterov,
                    weight_decay=self.weight_decay)


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam``.

    With g the gradient plus ``weight_decay * p`` (L2, every parameter) and t the step::

        m = beta1 * m + (1 - beta1) * g,   v = beta2 * v + (1 - beta2) * g**2
        p -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t)

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, finite and > 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the moments, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, > 0.
    weight_decay : float, default 0
        L2 penalty added to the gradient, >= 0.
    """

    rule = KO.ADAM

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr = _real(lr, "lr", 0.0, low_open=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, found {betas!r}")
        self.betas = (_real(betas[0], "betas[0]", 0.0, 1.0, high_open=True),
                      _real(betas[1], "betas[1]", 0.0, 1.0, high_open=True))
        self.eps = _real(eps, "eps", 0.0, low_open=True)
        self.weight_decay = _real(weight_decay, "weight_decay", 0.0)
        super().__init__()

    def hyper(self):
        h = super().hyper()
        h[KO.DECAY] = h[KO.BIAS_DECAY] = self.weight_decay
        h[KO.BETA1], h[KO.BETA2] = self.betas
        h[KO.EPS] = self.eps
        return h

    def _settings(self):
        return dict(lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)


class _PlainSGD(SGD):
    """What ``lr=`` means: p -= lr * g, no state worth keeping."""

    def bind(self, arrays, n_params, dtype):
        return np.zeros((2, 0), dtype), 0

    def keep(self, arrays, buffers, steps):
        pass


def resolve(lr, optimizer):
    """The optimizer a train call uses, from its exclusive ``lr`` and ``optimizer`` arguments."""
    if (lr is None) == (optimizer is None):
        raise TypeError("give exactly one of lr (plain SGD) and optimizer (fastnn.SGD or "
                        f"fastnn.Adam), found {'both' if lr is not None else 'neither'}")
    if optimizer is None:
        return _PlainSGD(lr)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastnn optimizer such as fastnn.SGD(lr) or "
                        f"fastnn.Adam(), found {type(optimizer).__name__}")
    return optimizer


__all__ = ["SGD", "Adam", "Optimizer"]


class SklearnRule(Optimizer):
    """scikit-learn's update rules, for ``fastnn.sklearn``: SGD (momentum, Nesterov) or Adam.

    Its L2 penalty alpha decays the weights only, divided by the batch's rows, as
    scikit-learn's ``MLPRegressor`` and ``MLPClassifier`` do.
    """

    decay_per_row = True

    def __init__(self, solver, lr, alpha=0.0, momentum=0.0, nesterov=False, betas=(0.9, 0.999),
                 eps=1e-8):
        if solver not in ("sgd", "adam"):
            raise ValueError(f"solver must be 'sgd' or 'adam', found {solver!r}")
        self.rule = KO.SK_SGD if solver == "sgd" else KO.SK_ADAM
        self.lr = _real(lr, "learning_rate_init", 0.0, low_open=True)
        self.alpha = _real(alpha, "alpha", 0.0)
        self.momentum = _real(momentum, "momentum", 0.0, 1.0)
        self.nesterov = bool(nesterov) and solver == "sgd" and self.momentum > 0
        self.betas = (_real(betas[0], "beta_1", 0.0, 1.0, high_open=True),
                      _real(betas[1], "beta_2", 0.0, 1.0, high_open=True))
        self.eps = _real(eps, "epsilon", 0.0, low_open=True)
        super().__init__()

    def hyper(self):
        h = super().hyper()
        h[KO.MOMENTUM], h[KO.DECAY] = self.momentum, self.alpha
        h[KO.BETA1], h[KO.BETA2] = self.betas
        h[KO.EPS] = self.eps
        return h

    def _settings(self):
        return dict(solver="sgd" if self.rule == KO.SK_SGD else "adam", lr=self.lr,
                    alpha=self.alpha, momentum=self.momentum, nesterov=self.nesterov,
                    betas=self.betas, eps=self.eps)
