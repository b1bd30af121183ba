"""Optimizers: the update rule's settings, and its state for the arrays it trains.

An optimizer object remembers, after a ``train`` call, its step count and
buffers (momentum, or Adam's moments) for the weights and biases it trained. A
later call with the same optimizer and the same arrays continues exactly where
the first stopped: two calls of 10 epochs give bitwise the numbers of one call
of 20. Passing it other arrays raises ``ValueError``; ``reset()`` forgets the state.
"""

import copy
import math
import numbers
import struct

import numpy as np

from .kernels import optim as KO


def _setting(value, name, low=None, high=None, low_open=False, high_open=False):
    """A real setting, or for fastnn.train_many a 1-D sequence of one per network."""
    if isinstance(value, np.ndarray) and value.ndim == 0:  # as the number it holds
        value = value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        values = np.asarray(value)
        if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a real number, or one per network (a 1-D sequence "
                            f"of reals), found {_kind(value)}")
        for i, v in enumerate(values.tolist()):
            _real(v, f"{name}[{i}]", low, high, low_open, high_open)
        return values.astype(np.float64)
    return _real(value, name, low, high, low_open, high_open)


def _kind(value):
    a = np.asarray(value)
    return f"an array of dtype {a.dtype} and shape {a.shape}"


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


def _as_float32(value):
    """value rounded to float32, as a Python float (inf where float32 overflows)."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


class _Checked:
    """A setting checked whenever it is set, as the constructor checks it (an optimizer's
    settings may change between train calls, for a schedule)."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False):
        self.bounds = (low, high, low_open, high_open)

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None

    def __set__(self, obj, value):
        obj.__dict__[self.name] = _setting(value, self.name, *self.bounds)


class _Betas(_Checked):
    """Adam's pair of moment decay rates, each in [0, 1), checked whenever set."""

    def __set__(self, obj, betas):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, found {betas!r}")
        obj.__dict__["betas"] = tuple(_setting(b, f"betas[{i}]", 0.0, 1.0, high_open=True)
                                      for i, b in enumerate(betas))


class Optimizer:
    """Base class: settings for the kernels, and the state of the arrays trained."""

    rule = KO.SGD
    nesterov = False
    decay_per_row = False  # scikit-learn divides alpha by the batch's rows
    _numbers = ("lr",)     # settings that may be given per network (train_many)

    def __init__(self):
        self._member = None  # (buffers, steps, k): network k's share of a train_many state
        self.reset()

    def reset(self):
        """Forget the state: the next ``train`` call starts from step 0 with zero buffers."""
        self._arrays = None   # the weights and biases trained, in order
        self._buffers = None  # (2, P) in the network's dtype
        self.steps = 0        # update steps taken so far

    # An optimizer object promises that a second call continues bitwise; the Gram path,
    # which restarts its carried products from the rounded weights, is only for lr=.
    continues_exactly = True

    @property
    def fused(self):
        """True when the update is the plain ``p -= lr * g``, fused into backward."""
        return False

    def hyper(self):
        """float64 values for the kernels' hyper array, by index."""
        h = np.zeros(KO.HYPER_SIZE)
        h[KO.LR] = self.lr
        return h

    def check_dtype(self, dtype):
        """At each train call: every setting must survive the cast to the network's dtype
        (float32 takes values up to about 3.4e38, rounds a positive lr or eps below about
        7e-46 to 0 and a beta within 3e-8 of 1 to 1), and settings set since must agree."""
        self._check_nesterov()
        if dtype == np.float64:  # every setting is a finite float64 already (checked when set)
            return
        values = [(n, getattr(self, n)) for n in self._numbers if hasattr(self, n)]
        values += [(f"betas[{i}]", b) for i, b in enumerate(getattr(self, "betas", ()))]
        for name, value in values:
            each = value.tolist() if isinstance(value, np.ndarray) else [value]
            for k, v in enumerate(each):
                cast = _as_float32(v)
                if (math.isinf(cast) or (cast == 0 and name in ("lr", "eps"))
                        or (cast >= 1 and name.startswith("betas"))):
                    which = f"{name}[{k}]" if isinstance(value, np.ndarray) else name
                    raise ValueError(f"{which} must be representable in the network's dtype "
                                     f"{np.dtype(dtype)}, found {v!r}, which is {cast!r} there")

    def _check_nesterov(self):
        if self.nesterov and np.any(np.asarray(getattr(self, "momentum", 1.0)) == 0.0):
            raise ValueError("nesterov=True needs momentum > 0, found momentum=0.0")

    def per_network(self):
        """The number of networks the settings are given for (None: one setting for all)."""
        values = [getattr(self, name) for name in self._numbers] + list(getattr(self, "betas", ()))
        sizes = {v.size for v in values if isinstance(v, np.ndarray)}
        if len(sizes) > 1:
            raise ValueError(f"the per-network settings of this {type(self).__name__} have "
                             f"different lengths: {sorted(sizes)}")
        return sizes.pop() if sizes else None

    def member(self, k, buffers, steps):
        """Network k's optimizer in train_many: its own settings, its state in buffers[k]
        and steps[k] (arrays of the whole train_many state)."""
        one = copy.copy(self)
        for name in self._numbers:
            value = getattr(self, name)
            setattr(one, name, float(value[k]) if isinstance(value, np.ndarray) else value)
        if hasattr(self, "betas"):
            one.betas = tuple(float(b[k]) if isinstance(b, np.ndarray) else b for b in self.betas)
        one._member = (buffers, steps, k)
        return one

    def select(self, networks):
        """A copy for these networks (an index array) of train_many: their settings, no state."""
        part = copy.copy(self)
        for name in self._numbers:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                setattr(part, name, value[networks])
        if hasattr(self, "betas"):
            part.betas = tuple(b[networks] if isinstance(b, np.ndarray) else b for b in self.betas)
        part._member = None
        part.reset()
        return part

    def resume(self, arrays, buffers, steps):
        """Take over train_many's state (buffers (K, 2, P), steps (K,)) for these arrays."""
        self._arrays, self._buffers, self.steps = list(arrays), buffers, steps

    def state(self):
        """(buffers, steps) as kept by the last train or train_many call (None before)."""
        return self._buffers, self.steps

    def bind_many(self, arrays, count, n_params, dtype):
        """train_many's state: buffers (count, 2, P) and steps (count,) for these arrays."""
        if self._arrays is not None:
            self._check_same(arrays, (count, 2, n_params), dtype)
            return self._buffers, self.steps
        return np.zeros((count, 2, n_params), dtype), np.zeros(count, np.int64)

    def bind(self, arrays, n_params, dtype):
        """The state buffers for these arrays (new zeros on first use) and the step count."""
        if self._member is not None:
            buffers, steps, k = self._member
            return buffers[k], int(steps[k])
        if self._arrays is not None:
            self._check_same(arrays, (2, n_params), dtype)
            return self._buffers, self.steps
        return np.zeros((2, n_params), dtype), 0

    def _check_same(self, arrays, shape, dtype):
        same = len(arrays) == len(self._arrays) and all(a is b for a, b in zip(arrays, self._arrays))
        if not same or self._buffers.shape != shape or self._buffers.dtype != dtype:
            raise ValueError(
                f"this {type(self).__name__} holds the state of other weights and biases "
                f"(it trained {len(self._arrays)} arrays, found {len(arrays)} others); "
                f"use a new optimizer, or call .reset() to start its state anew")

    def keep(self, arrays, buffers, steps):
        """Remember the state after a train call (buffers is the kernels' own array)."""
        if self._member is not None:
            all_buffers, all_steps, k = self._member
            all_steps[k] = steps
            return
        self._arrays, self._buffers, self.steps = list(arrays), buffers, int(steps)

    def keep_many(self, arrays, buffers, steps):
        """Remember train_many's state: buffers (K, 2, P) and steps (K,)."""
        self._arrays, self._buffers, self.steps = list(arrays), buffers, steps

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

    _numbers = ("lr", "momentum", "weight_decay")
    lr, momentum, weight_decay = _Checked(0.0, low_open=True), _Checked(0.0), _Checked(0.0)

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr = lr
        self.momentum = momentum
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, found {type(nesterov).__name__}")
        self.nesterov = bool(nesterov)
        self._check_nesterov()
        self.weight_decay = weight_decay
        super().__init__()

    @property
    def fused(self):
        return bool(np.all(np.asarray(self.momentum) == 0.0)
                    and np.all(np.asarray(self.weight_decay) == 0.0))

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
    _numbers = ("lr", "eps", "weight_decay")  # and betas
    lr, eps, weight_decay = _Checked(0.0, low_open=True), _Checked(0.0, low_open=True), _Checked(0.0)
    betas = _Betas()

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
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

    continues_exactly = False

    def bind(self, arrays, n_params, dtype):
        return np.zeros((2, 0), dtype), 0

    def bind_many(self, arrays, count, n_params, dtype):
        return np.zeros((count, 2, 0), dtype), np.zeros(count, np.int64)

    def keep(self, arrays, buffers, steps):
        pass

    def keep_many(self, arrays, buffers, steps):
        pass


def resolve(lr, optimizer, networks=None):
    """The optimizer a train call uses, from its exclusive ``lr`` and ``optimizer`` arguments;
    ``networks`` is train_many's count (settings may be given per network there)."""
    if (lr is None) == (optimizer is None):
        raise TypeError("give exactly one of lr (plain SGD) and optimizer (fastnn.SGD or "
                        f"fastnn.Adam), found {'both' if lr is not None else 'neither'}")
    if optimizer is None:
        optimizer = _PlainSGD(lr)
    elif not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastnn optimizer such as fastnn.SGD(lr) or "
                        f"fastnn.Adam(), found {type(optimizer).__name__}")
    count = optimizer.per_network()
    if count is not None and networks is None:
        raise TypeError("settings with one value per network (arrays) are for "
                        "fastnn.train_many; fastnn.train takes one value")
    if count is not None and count != networks:
        given = [name for name in optimizer._numbers if isinstance(getattr(optimizer, name),
                                                                  np.ndarray)]
        given += ["betas"] if any(isinstance(b, np.ndarray) for b in
                                  getattr(optimizer, "betas", ())) else []
        what = "lr" if lr is not None else f"{type(optimizer).__name__}'s {', '.join(given)}"
        raise ValueError(f"{what} per network must have one value for each of the "
                         f"{networks} networks, found {count}")
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
