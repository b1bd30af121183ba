"""fastnn.train_many and fastnn.predict_many on local threads (issue 19).

The contract: row k of train_many equals ``fastnn.train`` on network k alone,
with its lr (or optimizer settings) and its seed, BITWISE: the same kernels and
the same Run, and chunking never changes the numbers. Every comparison below is
``np.array_equal`` on the histories, the weights and the biases, except one:
with ``rows=``, a network that ``train(x[rows[k]], ...)`` would put on the Gram
path (full batch, rows <= half the input features, plain SGD, a wide first
layer) takes the generic path in train_many, equal within rounding (rtol 1e-9
float64, 1e-4 float32; measured here: ~4e-16 relative in float64).

The expected numbers never come from fastnn's own helpers: network k's seed is
rebuilt from the documented rule (``np.random.SeedSequence(seed).spawn(K)[k]``,
``Generator.spawn(K)[k]`` for a Generator), its data is ``x[rows[k]]``, its
settings are picked from the (K,) arrays by hand.

The Cluster (client=) tests are in test_cluster.py.
"""

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import fastnn
from fastnn import _driver, _many
from helpers import ARCHS, CHILD_PRELUDE, DTYPES, F32, F64, LR, MODES, RTOL, activation_for, \
    assert_moved, child_line, class_net, copies, grid_net

K = 3
EPOCHS = 8


# ----------------------------------------------------------------------------- helpers

def stack(per_network):
    """[[a_0 of network 0, a_1, ...], [a_0 of network 1, ...]] -> [stacked a_0, stacked a_1]."""
    return [np.stack(arrays) for arrays in zip(*per_network)]


def many_net(depth=2, dtype=F64, count=K, seed=0, same_init=False):
    """Shared data and ``count`` networks of grid_net's shapes (4 -> ... -> 2) from their own
    initial points. Even depths have biases, stacked (K, n) and (K, 1, n) alternately."""
    x, y, _, _ = grid_net(depth, dtype, seed=(depth, seed))
    nets = [grid_net(depth, dtype, seed=(depth, seed, 0 if same_init else 1 + k))
            for k in range(count)]
    w = stack([n[2] for n in nets])
    b = None if nets[0][3] is None else stack([n[3] for n in nets])
    return x, y, w, b


def many_class_net(depth, dtype, loss, labels=False, count=K):
    """class_net's data (one-hot rows, labels or soft targets) and ``count`` networks."""
    x, y, _, _ = class_net(depth, dtype, loss, seed=(depth, 5), labels=labels)
    nets = [class_net(depth, dtype, loss, seed=(depth, 6 + k)) for k in range(count)]
    w = stack([n[2] for n in nets])
    b = None if nets[0][3] is None else stack([n[3] for n in nets])
    return x, y, w, b


def pick(value, k):
    """Network k's share of a setting: an ndarray gives value[k], a tuple each of its items."""
    if k is None:
        return value
    if isinstance(value, tuple):
        return tuple(pick(v, k) for v in value)
    return value[k] if isinstance(value, np.ndarray) else value


def optimizer(cls, **settings):
    """make(k): a fresh cls with network k's settings (k=None: the settings as given)."""
    def make(k=None):
        return cls(**{name: pick(v, k) for name, v in settings.items()})
    make.label = cls.__name__
    return make


def fresh_seed(seed):
    """The caller's seed anew: ``seed`` is a factory (Generators and SeedSequences change as they
    spawn) or an int."""
    return seed() if callable(seed) else seed


def child_seed(seed, count, k):
    """Network k's seed by the documented rule, from a fresh copy of the caller's seed."""
    seed = fresh_seed(seed)
    if isinstance(seed, np.random.Generator):
        return seed.spawn(count)[k]
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return sequence.spawn(count)[k]


def alone(k, x, y, weights, biases=None, *, per_x=False, per_y=False, rows=None, lr=None,
          optimizer=None, seed=None, epochs=EPOCHS, **kw):
    """fastnn.train on network k alone, from copies: (history or DivergenceError, params).

    ``optimizer`` is a make(k) factory and ``seed`` a factory of fresh seeds."""
    count = weights[0].shape[0]
    xk = np.asarray(x)[k] if per_x else x
    yk = np.asarray(y)[k] if per_y else y
    if rows is not None:
        xk, yk = np.asarray(xk)[rows[k]], np.asarray(yk)[rows[k]]
    w = [a[k].copy() for a in weights]
    b = None if biases is None else [a[k].copy() for a in biases]
    if lr is not None:
        kw["lr"] = lr[k] if isinstance(lr, (list, np.ndarray)) else lr
    if optimizer is not None:
        kw["optimizer"] = optimizer(k)
    if kw.get("shuffle"):
        kw["seed"] = child_seed(seed, count, k)
    elif seed is not None:
        kw["seed"] = fresh_seed(seed)
    try:
        result = fastnn.train(xk, yk, w, b, epochs=epochs, **kw)
    except fastnn.DivergenceError as exc:
        result = exc
    return result, w + (b or [])


def many(x, y, weights, biases=None, *, optimizer=None, seed=None, epochs=EPOCHS, per_x=False,
         per_y=False, **kw):
    """train_many on copies; returns (history, params as [weights..., biases...], optimizer)."""
    w, b = copies(weights), copies(biases)
    opt = None if optimizer is None else optimizer()
    if opt is not None:
        kw["optimizer"] = opt
    if seed is not None:
        kw["seed"] = fresh_seed(seed)
    history = fastnn.train_many(x, y, w, b, epochs=epochs, **kw)
    return history, w + (b or []), opt


def network(params, k):
    return [p[k] for p in params]


def assert_bitwise(actual, expected, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, \
        (what, actual.shape, expected.shape, actual.dtype, expected.dtype)
    if not np.array_equal(actual, expected, equal_nan=True):
        diff = np.nanmax(np.abs(actual.astype(np.float64) - expected))
        pytest.fail(f"{what}: not bitwise equal (max |diff| {diff:.3e})")


def assert_close(actual, expected, rtol, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    err, scale = float(np.max(np.abs(actual - expected))), float(np.max(np.abs(expected)))
    assert err <= rtol * scale, f"{what}: max |diff| {err:.3e} > {rtol:g} * {scale:.3e}"


def check(x, y, weights, biases=None, *, rtol=None, epochs=EPOCHS, **kw):
    """train_many against train per network: bitwise (or within rtol); returns (history, params).

    Hooks (callback, progress) go to train_many only. Also checks the result's type and
    shape, and that training moved the parameters."""
    hooks = {k: kw.pop(k) for k in ("callback", "callback_every", "progress") if k in kw}
    history, params, _ = many(x, y, weights, biases, epochs=epochs, **kw, **hooks)
    count = weights[0].shape[0]
    assert isinstance(history, np.ndarray) and history.dtype == np.float64
    assert history.shape == (count, epochs)
    for k in range(count):
        expected, p_alone = alone(k, x, y, weights, biases, epochs=epochs, **kw)
        assert isinstance(expected, np.ndarray), f"network {k} diverged alone: {expected}"
        if rtol is None:
            assert_bitwise(history[k], expected, f"history of network {k}")
            for i, (a, e) in enumerate(zip(network(params, k), p_alone)):
                assert_bitwise(a, e, f"parameter {i} of network {k}")
        else:
            np.testing.assert_allclose(history[k], expected, rtol=rtol)
            for i, (a, e) in enumerate(zip(network(params, k), p_alone)):
                assert_close(a, e, rtol, f"parameter {i} of network {k}")
    initial = list(weights) + list(biases or [])
    assert_moved(initial, params, RTOL[params[0].dtype])
    return history, params


@pytest.fixture
def spy(monkeypatch):
    """Records (run, thread name) for every compiled chunk of train and train_many."""
    seen = []
    real = _driver.advance

    def advance(run, count, orders):
        seen.append((run, threading.current_thread().name))
        return real(run, count, orders)

    monkeypatch.setattr(_driver, "advance", advance)
    return seen


ONE_ROW, GRAM, GENERIC = (True, None, None), (None, True, None), (None, None, True)
MODE_IDS = list(MODES)
LOSS_LR = {"sse": 0.005, "mse": 0.05, "softmax_ce": 0.1, "sigmoid_bce": 0.1}


# ----------------------------------------------------------------------------- bitwise contract

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODE_IDS)
@pytest.mark.parametrize("depth, act", ARCHS, ids=[f"d{d}-{a}" for d, a in ARCHS])
def test_equals_train_per_network(depth, act, mode, dtype, chunked):
    x, y, w, b = many_net(depth, dtype)
    check(x, y, w, b, activation=activation_for(act, depth), loss="mse", lr=0.02,
          **MODES[mode])


@pytest.mark.parametrize("mode", MODE_IDS)
def test_same_paths_as_train(mode, spy):
    # The contract's mechanism: each network gets the Run that train builds, on the same path
    # (one-row for batch 1 with plain SGD, generic otherwise on these small networks).
    x, y, w, b = many_net(2)
    history, _ = check(x, y, w, b, loss="mse", lr=LR["mse"], **MODES[mode])
    many_paths = {id(run): run.path for run, name in spy if name.startswith("fastnn")}
    train_paths = {id(run): run.path for run, name in spy if not name.startswith("fastnn")}
    assert len(many_paths) == K and len(train_paths) == K
    assert sorted(map(str, many_paths.values())) == sorted(map(str, train_paths.values()))
    expected = ONE_ROW if MODES[mode].get("batch_size") == 1 else GENERIC
    assert set(many_paths.values()) == {expected}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["full", "k5", "k1", "shuffle-k4"])
@pytest.mark.parametrize("loss, labels", [("sse", False), ("mse", False), ("softmax_ce", False),
                                          ("softmax_ce", True), ("sigmoid_bce", False)],
                         ids=["sse", "mse", "softmax_ce", "softmax_ce-labels", "sigmoid_bce"])
def test_losses(loss, labels, mode, dtype):
    x, y, w, b = many_class_net(2, dtype, loss, labels)
    if labels:
        assert y.ndim == 1 and y.dtype.kind == "i"
    check(x, y, w, b, activation="tanh", loss=loss, lr=LOSS_LR[loss], **MODES[mode])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODE_IDS)
@pytest.mark.parametrize("as_list", [False, True], ids=["array", "list"])
def test_lr_per_network(mode, dtype, as_list):
    x, y, w, b = many_net(4, dtype)
    lr = np.array([0.01, 0.05, 0.2])
    history, _ = check(x, y, w, b, activation="tanh", loss="mse",
                       lr=lr.tolist() if as_list else lr, **MODES[mode])
    # the settings do differ: same data, different lr, different curves
    assert not np.array_equal(history[0], history[1])


OPTIMIZERS = {
    "sgd-momentum": optimizer(fastnn.SGD, lr=0.02, momentum=np.array([0.0, 0.5, 0.9])),
    "sgd-nesterov": optimizer(fastnn.SGD, lr=np.array([0.01, 0.02, 0.03]),
                              momentum=np.array([0.3, 0.6, 0.9]), nesterov=True),
    "sgd-decay": optimizer(fastnn.SGD, lr=0.02, momentum=0.5,
                           weight_decay=np.array([0.0, 0.01, 0.1])),
    "sgd-all": optimizer(fastnn.SGD, lr=np.array([0.05, 0.02, 0.01]),
                         momentum=np.array([0.9, 0.0, 0.5]),
                         weight_decay=np.array([0.1, 0.0, 0.01])),
    "adam": optimizer(fastnn.Adam, lr=np.array([1e-3, 1e-2, 3e-2]),
                      betas=(np.array([0.9, 0.8, 0.5]), np.array([0.999, 0.99, 0.9])),
                      eps=np.array([1e-8, 1e-6, 1e-3]), weight_decay=np.array([0.0, 0.01, 0.1])),
    "adam-shared": optimizer(fastnn.Adam, lr=1e-2),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODE_IDS)
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_optimizers_per_network(opt, mode, dtype):
    x, y, w, b = many_net(2, dtype)
    check(x, y, w, b, activation="tanh", loss="mse", optimizer=OPTIMIZERS[opt], **MODES[mode])


SEEDS = {
    "int": lambda: 12345,
    "seed-sequence": lambda: np.random.SeedSequence(987),
    "generator": lambda: np.random.default_rng(2024),
}


@pytest.mark.parametrize("batch_size", [1, 4], ids=["k1", "k4"])
@pytest.mark.parametrize("kind", list(SEEDS))
def test_shuffle_seed_per_network(kind, batch_size):
    x, y, w, b = many_net(3)
    kw = dict(loss="mse", lr=LR["mse"], batch_size=batch_size, shuffle=True, seed=SEEDS[kind])
    history, params = check(x, y, w, b, **kw)
    # reproducible: the same seed gives the same numbers
    again, params_again, _ = many(x, y, w, b, **kw)
    assert_bitwise(again, history, "history of a second run")
    for i, (a, e) in enumerate(zip(params_again, params)):
        assert_bitwise(a, e, f"parameter {i} of a second run")
    # each network its own order: identical networks on the same data part ways
    x, y, w, b = many_net(3, same_init=True)
    same, _, _ = many(x, y, w, b, **kw)
    assert not np.array_equal(same[0], same[1]) and not np.array_equal(same[1], same[2])
    # without shuffle they would not
    in_order, _, _ = many(x, y, w, b, loss="mse", lr=LR["mse"], batch_size=batch_size)
    assert np.array_equal(in_order[0], in_order[1])


def test_different_seeds_differ():
    x, y, w, b = many_net(3)
    kw = dict(loss="mse", lr=LR["mse"], batch_size=4, shuffle=True)
    one, _, _ = many(x, y, w, b, seed=lambda: 1, **kw)
    two, _, _ = many(x, y, w, b, seed=lambda: 2, **kw)
    assert not np.array_equal(one, two)


@pytest.mark.parametrize("mode", ["full", "k5", "k1", "shuffle-k4"])
@pytest.mark.parametrize("layout", ["x-and-y", "y-only", "x-labels", "x-1d-y"])
def test_data_per_network(layout, mode):
    rng = np.random.default_rng(33)
    x = rng.standard_normal((K, 13, 4))
    if layout == "x-labels":  # softmax_ce with (K, N) integer labels
        _, _, w, b = many_class_net(3, F64, "softmax_ce")
        y = rng.integers(0, 3, (K, 13))
        kw = dict(loss="softmax_ce", lr=0.1, per_x=True, per_y=True)
    elif layout == "x-1d-y":  # one output, y shared and 1-D, x per network
        w = stack([[rng.standard_normal((4, 5)) / 2, rng.standard_normal((5, 1))]
                   for _ in range(K)])
        b, y = None, rng.standard_normal(13)
        kw = dict(loss="mse", lr=LR["mse"], per_x=True)
    else:  # (K, N, D_out) targets, with x per network or shared
        _, _, w, b = many_net(2)
        if layout == "y-only":
            x = x[0]
        y = rng.standard_normal((K, 13, 2))
        kw = dict(loss="mse", lr=LR["mse"], per_x=layout == "x-and-y", per_y=True)
    history, _ = check(x, y, w, b, **kw, **MODES[mode])
    assert np.isfinite(history).all()
    # the data per network matter: network 1 on network 0's data gives other numbers
    if kw.get("per_x"):
        other, _ = alone(1, x[[0, 0, 0]], y, w, b, **kw, **MODES[mode])
        assert not np.array_equal(other, history[1])


def bootstrap(n_rows, count=K, size=None, seed=8):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n_rows, n_rows if size is None else size) for _ in range(count)]


def folds(n_rows, count=K):
    """Cross-validation: network k trains on every row but fold k (in order)."""
    parts = np.array_split(np.arange(n_rows), count)
    return [np.concatenate(parts[:k] + parts[k + 1:]) for k in range(count)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODE_IDS)
@pytest.mark.parametrize("kind", ["bootstrap", "folds", "int32-subset"])
def test_rows(kind, mode, dtype):
    x, y, w, b = many_net(2, dtype, seed=3)
    n = x.shape[0]
    rows = {"bootstrap": lambda: bootstrap(n), "folds": lambda: folds(n),
            "int32-subset": lambda: [np.array([12, 0, 5, 5, 7], np.int32), np.arange(0, n, 2),
                                     np.arange(n)[::-1]]}[kind]()
    assert any(len(np.unique(r)) < len(r) for r in rows) or kind != "bootstrap"  # repeats
    x_before, y_before = x.copy(), y.copy()
    history, _ = check(x, y, w, b, loss="mse", lr=LR["mse"], rows=rows, **MODES[mode])
    assert_bitwise(x, x_before, "x")
    assert_bitwise(y, y_before, "y")
    # the rows matter: the same networks on all rows give other numbers
    full, _, _ = many(x, y, w, b, loss="mse", lr=LR["mse"], **MODES[mode])
    assert not np.array_equal(full, history)


@pytest.mark.parametrize("mode", ["full", "k1", "shuffle-k4"])
def test_rows_with_data_per_network(mode):
    rng = np.random.default_rng(4)
    _, _, w, b = many_net(2)
    x, y = rng.standard_normal((K, 13, 4)), rng.standard_normal((K, 13, 2))
    check(x, y, w, b, loss="mse", lr=LR["mse"], rows=bootstrap(13, size=9), per_x=True,
          per_y=True, **MODES[mode])


def gram_problem(dtype):
    """40 rows x 200 features -> 16 -> 2; bootstraps of 30 rows: full batch, 2 * 30 <= 200 and
    a first layer wide enough for BLAS, so train(x[rows[k]], ...) takes the Gram path."""
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((40, 200)), rng.standard_normal((40, 2))
    w = stack([[rng.standard_normal((200, 16)) / np.sqrt(200), rng.standard_normal((16, 2)) / 4]
               for _ in range(K)])
    b = stack([[0.1 * rng.standard_normal(16), 0.1 * rng.standard_normal((1, 2))]
               for _ in range(K)])
    cast = lambda arrays: [a.astype(dtype) for a in arrays]  # noqa: E731
    return x.astype(dtype), y.astype(dtype), cast(w), cast(b), bootstrap(40, size=30, seed=1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_gram_exception_within_rounding(dtype, spy):
    x, y, w, b, rows = gram_problem(dtype)
    check(x, y, w, b, loss="mse", lr=0.01, rows=rows, epochs=20, rtol=RTOL[dtype])
    many_paths = [run.path for run, name in spy if name.startswith("fastnn")]
    train_paths = [run.path for run, name in spy if not name.startswith("fastnn")]
    assert set(train_paths) == {GRAM}, "the case must be one that train puts on the Gram path"
    assert set(many_paths) == {GENERIC}


def test_rows_gram_case_without_rows_is_bitwise(spy):
    # Without rows= the same networks take the Gram path in both: bitwise again.
    x, y, w, b, _ = gram_problem(F64)
    check(x[:30], y[:30], w, b, loss="mse", lr=0.01, epochs=20)
    assert {run.path for run, _ in spy} == {GRAM}


def test_one_network():
    x, y, w, b = many_net(2, count=1)
    history, _ = check(x, y, w, b, loss="mse", lr=0.05, batch_size=5)
    assert history.shape == (1, EPOCHS)


def test_float32_history_is_float64_and_inputs_cast():
    x, y, w, b = many_net(3, F32)
    history, params = check(x.astype(np.float64), y.astype(np.float64), w, b, loss="mse",
                            lr=0.05)
    assert history.dtype == np.float64 and params[0].dtype == np.float32


# ----------------------------------------------------------------------------- optimizer state

@pytest.mark.parametrize("mode", ["full", "k5", "k1"])
@pytest.mark.parametrize("opt", ["sgd-all", "sgd-nesterov", "adam", "lr"])
def test_two_calls_continue_like_one(opt, mode):
    x, y, w, b = many_net(2)
    kw = dict(activation="tanh", loss="mse", **MODES[mode])
    if opt == "lr":
        kw["lr"] = np.array([0.01, 0.02, 0.04])
        make = None
    else:
        make = OPTIMIZERS[opt]
    one, p_one, o_one = many(x, y, w, b, optimizer=make, epochs=10, **kw)
    w2, b2 = copies(w), copies(b)
    opt2 = None if make is None else make()
    if opt2 is not None:
        kw["optimizer"] = opt2
    first = fastnn.train_many(x, y, w2, b2, epochs=4, **kw)
    second = fastnn.train_many(x, y, w2, b2, epochs=6, **kw)
    assert_bitwise(np.concatenate([first, second], axis=1), one, "history of 4 + 6 epochs")
    for i, (a, e) in enumerate(zip(w2 + b2, p_one)):
        assert_bitwise(a, e, f"parameter {i} after 4 + 6 epochs")
    if make is not None:
        steps_per_epoch = -(-x.shape[0] // MODES[mode].get("batch_size", x.shape[0]))
        buffers, steps = opt2.state()
        assert_bitwise(steps, np.full(K, 10 * steps_per_epoch), "steps")
        assert buffers.shape[0] == K
        buffers_one, _ = o_one.state()
        assert_bitwise(buffers, buffers_one, "optimizer buffers")


@pytest.mark.parametrize("opt", ["sgd-all", "adam", "adam-shared"])
def test_optimizer_of_other_arrays_raises(opt):
    x, y, w, b = many_net(2)
    make = OPTIMIZERS[opt]
    _, _, used = many(x, y, w, b, optimizer=make, loss="mse")
    w2, b2 = copies(w), copies(b)
    with pytest.raises(ValueError, match="state of other weights"):
        fastnn.train_many(x, y, w2, b2, optimizer=used, loss="mse", epochs=2)
    assert all(np.array_equal(a, c) for a, c in zip(w2 + b2, w + b))
    # ... nor one network of them with train (settings per network: refused by train anyway)
    error = ValueError if used.per_network() is None else TypeError
    with pytest.raises(error, match="state of other weights|train_many"):
        fastnn.train(x, y, [a[0] for a in w2], [a[0] for a in b2], optimizer=used, epochs=2)
    assert all(np.array_equal(a, c) for a, c in zip(w2 + b2, w + b))
    # ... nor the same arrays in a different number of networks
    with pytest.raises(ValueError, match="state of other weights|for each of the 2 networks"):
        fastnn.train_many(x, y, [a[:2] for a in w2], [a[:2] for a in b2], optimizer=used,
                          loss="mse", epochs=2)
    used.reset()  # a reset optimizer starts anew: network k as a fresh optimizer does
    history = fastnn.train_many(x, y, w2, b2, optimizer=used, loss="mse", epochs=EPOCHS)
    fresh, _, _ = many(x, y, w, b, optimizer=make, loss="mse")
    assert_bitwise(history, fresh, "history after reset()")


# ----------------------------------------------------------------------------- divergence

def divergence_problem(same=(), count=4):
    """tanh / MSE networks; networks listed in ``same`` start from network 1's point."""
    x, y, w, b = many_net(2, count=count, seed=9)
    for k in same:
        for a in w + b:
            a[k] = a[1]
    return x, y, w, b


DIVERGE = dict(activation="tanh", loss="mse", epochs=200)


def diverged_alone(k, x, y, w, b, lr):
    result, params = alone(k, x, y, w, b, lr=lr, **DIVERGE)
    assert isinstance(result, fastnn.DivergenceError), f"network {k} should diverge alone"
    assert 0 < result.epoch < DIVERGE["epochs"] - 1
    return result, params


def assert_at_epochs(params, k, x, y, w, b, lr, epochs):
    """Network k's parameters equal train alone for ``epochs`` epochs (bitwise)."""
    _, expected = alone(k, x, y, w, b, lr=lr, activation=DIVERGE["activation"],
                        loss=DIVERGE["loss"], epochs=epochs)
    for i, (a, e) in enumerate(zip(network(params, k), expected)):
        assert_bitwise(a, e, f"parameter {i} of network {k} after {epochs} epochs")


@pytest.mark.parametrize("every", [None, 1, 7])
def test_divergence_raise(every):
    x, y, w, b = divergence_problem(same=[3])
    lr = np.array([0.05, 50.0, 0.1, 50.0])  # networks 1 and 3: the same run, which diverges
    err1, p1 = diverged_alone(1, x, y, w, b, lr)
    wm, bm = copies(w), copies(b)
    kw = {} if every is None else dict(callback=lambda e, losses: None, callback_every=every)
    with pytest.raises(fastnn.DivergenceError) as info:
        fastnn.train_many(x, y, wm, bm, lr=lr, **DIVERGE, **kw)
    err = info.value
    assert err.networks == [1, 3] and err.epochs == [err1.epoch, err1.epoch]
    assert "1, 3" in str(err)
    h = err.history
    assert h.dtype == np.float64 and h.shape[0] == 4 and err1.epoch < h.shape[1] <= 200
    for k in (1, 3):  # the losses up to the first non-finite epoch, NaN from there
        assert_bitwise(h[k, :err1.epoch], err1.history, f"history of network {k}")
        assert np.isnan(h[k, err1.epoch:]).all()
        for i, (a, e) in enumerate(zip(network(wm + bm, k), p1)):  # its last finite epoch
            assert_bitwise(a, e, f"parameter {i} of diverged network {k}")
    for k in (0, 2):  # the others stopped at a completed epoch, which their history covers
        finite = int(np.isfinite(h[k]).sum())
        assert finite >= err1.epoch and np.isfinite(h[k, :finite]).all()
        expected, _ = alone(k, x, y, w, b, lr=lr, activation="tanh", loss="mse", epochs=finite)
        assert_bitwise(h[k, :finite], expected, f"history of network {k}")
        assert_at_epochs(wm + bm, k, x, y, w, b, lr, finite)
        if every == 1:  # rounds of one epoch: they stop at the epoch that diverged
            assert finite == err1.epoch + 1


def test_divergence_freeze():
    x, y, w, b = divergence_problem()
    lr = np.array([0.05, 50.0, 0.1, 20.0])
    errors = {k: diverged_alone(k, x, y, w, b, lr) for k in (1, 3)}
    assert errors[1][0].epoch != errors[3][0].epoch
    history, params, _ = many(x, y, w, b, lr=lr, on_divergence="freeze", **DIVERGE)
    assert history.shape == (4, 200)
    for k, (err, p) in errors.items():
        assert_bitwise(history[k, :err.epoch], err.history, f"history of frozen network {k}")
        assert np.isnan(history[k, err.epoch:]).all()
        for i, (a, e) in enumerate(zip(network(params, k), p)):
            assert_bitwise(a, e, f"parameter {i} of frozen network {k}")
    for k in (0, 2):
        expected, p = alone(k, x, y, w, b, lr=lr, **DIVERGE)
        assert_bitwise(history[k], expected, f"history of network {k}")
        for i, (a, e) in enumerate(zip(network(params, k), p)):
            assert_bitwise(a, e, f"parameter {i} of network {k}")


def test_freeze_callback_gets_nan_for_frozen_networks():
    x, y, w, b = divergence_problem()
    lr = np.array([0.05, 50.0, 0.1, 0.05])
    err, _ = diverged_alone(1, x, y, w, b, lr)
    calls = []
    history, _, _ = many(x, y, w, b, lr=lr, on_divergence="freeze",
                         callback=lambda e, losses: calls.append((e, losses)), **DIVERGE)
    assert [e for e, _ in calls] == list(range(200))
    for e, losses in calls:
        assert isinstance(losses, np.ndarray) and losses.shape == (4,)
        assert_bitwise(losses, history[:, e], f"callback losses of epoch {e}")
    assert np.isnan(calls[err.epoch][1][1]) and np.isfinite(calls[err.epoch - 1][1][1])


def test_freeze_with_every_network_diverged_does_not_depend_on_the_rounds():
    x, y, w, b = divergence_problem(count=2)
    lr = np.array([50.0, 50.0])
    plain, _, _ = many(x, y, w, b, lr=lr, on_divergence="freeze", **DIVERGE)
    assert plain.shape == (2, 200) and not np.isfinite(plain[:, -1]).any()
    with_callback, _, _ = many(x, y, w, b, lr=lr, on_divergence="freeze",
                               callback=lambda e, losses: None, **DIVERGE)
    assert_bitwise(with_callback, plain, "history with a callback")


def test_divergence_in_epoch_0_leaves_that_network_untouched():
    x, y, w, b = many_net(2, seed=5)
    lr = np.array([0.05, 1e308, 0.05])  # the first update overflows
    err, _ = alone(1, x, y, w, b, lr=lr, activation="identity", epochs=5)
    assert isinstance(err, fastnn.DivergenceError) and err.epoch == 0
    wm, bm = copies(w), copies(b)
    with pytest.raises(fastnn.DivergenceError) as info:
        fastnn.train_many(x, y, wm, bm, activation="identity", lr=lr, epochs=5)
    assert info.value.networks == [1] and info.value.epochs == [0]
    assert np.isnan(info.value.history[1]).all()
    for a, a0 in zip(wm + bm, w + b):
        assert_bitwise(a[1], a0[1], "network 1's parameters")
    history, params, _ = many(x, y, w, b, activation="identity", lr=lr, epochs=5,
                              on_divergence="freeze")
    assert np.isnan(history[1]).all() and np.isfinite(history[[0, 2]]).all()
    for a, a0 in zip(params, w + b):
        assert_bitwise(a[1], a0[1], "frozen network 1's parameters")


def test_non_finite_initial_weights_rejected_before_any_training():
    x, y, w, b = many_net(2)
    w[1][2, 0, 0] = np.nan
    wm, bm = copies(w), copies(b)
    with pytest.raises(ValueError, match="finite"):
        fastnn.train_many(x, y, wm, bm, lr=0.05, epochs=3)
    for a, a0 in zip(wm + bm, w + b):
        assert_bitwise(a, a0, "parameters")


def test_check_finite_false_is_train_with_check_finite_false():
    x, y, w, b = divergence_problem()
    lr = np.array([0.05, 50.0, 0.1, 0.05])
    with np.errstate(all="ignore"):
        history, params, _ = many(x, y, w, b, lr=lr, check_finite=False, **DIVERGE)
        for k in range(4):
            expected, p = alone(k, x, y, w, b, lr=lr, check_finite=False, **DIVERGE)
            assert_bitwise(history[k], expected, f"history of network {k}")
            for i, (a, e) in enumerate(zip(network(params, k), p)):
                assert_bitwise(a, e, f"parameter {i} of network {k}")
    assert not np.isfinite(history[1]).all()


@pytest.mark.parametrize("value", ["stop", "explode"])
def test_on_divergence_values(value):
    x, y, w, b = many_net(2)
    wm = copies(w)
    with pytest.raises(ValueError, match="on_divergence"):
        fastnn.train_many(x, y, wm, copies(b), lr=0.05, epochs=2, on_divergence=value)
    assert all(np.array_equal(a, c) for a, c in zip(wm, w))


# ----------------------------------------------------------------------------- hooks

@pytest.mark.parametrize("every", [1, 3, 20])
def test_callback_epochs_and_losses(every):
    x, y, w, b = many_net(2)
    calls = []

    def callback(epoch, losses):
        calls.append((epoch, losses.copy()))
        assert isinstance(losses, np.ndarray) and losses.shape == (K,)

    history, _ = check(x, y, w, b, loss="mse", lr=0.05, epochs=20, callback=callback,
                       callback_every=every)
    assert [e for e, _ in calls] == [e for e in range(20) if (e + 1) % every == 0]
    for e, losses in calls:
        assert_bitwise(losses, history[:, e], f"losses of epoch {e}")


@pytest.mark.parametrize("stop", [False, np.False_], ids=["False", "np.False_"])
def test_callback_false_stops_every_network(stop):
    x, y, w, b = many_net(2, same_init=False)
    history, params, _ = many(x, y, w, b, loss="mse", lr=0.05, epochs=50, batch_size=5,
                              callback=lambda e, losses: stop if e == 6 else None)
    assert history.shape == (K, 7)
    for k in range(K):
        expected, p = alone(k, x, y, w, b, loss="mse", lr=0.05, epochs=7, batch_size=5)
        assert_bitwise(history[k], expected, f"history of network {k}")
        for i, (a, e) in enumerate(zip(network(params, k), p)):
            assert_bitwise(a, e, f"parameter {i} of network {k}")


def test_callback_truthy_and_none_do_not_stop():
    x, y, w, b = many_net(2)
    for answer in (True, None, 1, "no"):
        history, _, _ = many(x, y, w, b, lr=0.05, epochs=5,
                             callback=lambda e, losses, answer=answer: answer)
        assert history.shape == (K, 5)


def test_callback_exception_propagates_with_networks_at_that_epoch():
    x, y, w, b = many_net(2)
    wm, bm = copies(w), copies(b)

    def callback(epoch, losses):
        if epoch == 4:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        fastnn.train_many(x, y, wm, bm, loss="mse", lr=0.05, epochs=30, callback=callback)
    for k in range(K):
        _, p = alone(k, x, y, w, b, loss="mse", lr=0.05, epochs=5)
        for i, (a, e) in enumerate(zip(network(wm + bm, k), p)):
            assert_bitwise(a, e, f"parameter {i} of network {k}")


def _without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def test_progress_counts_networks_times_epochs(monkeypatch, capsys):
    _without_tqdm(monkeypatch)
    x, y, w, b = many_net(2)
    history, _ = check(x, y, w, b, loss="mse", lr=0.05, epochs=10, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n") and "\r" in err
    last = err.rstrip("\n").split("\r")[-1]
    assert last.startswith(f"network-epoch {K * 10}/{K * 10}  mean loss "), last
    shown = float(last.split()[4])
    assert shown == pytest.approx(float(np.mean(history[:, -1])), rel=1e-5)


def test_progress_stops_with_the_callback(monkeypatch, capsys):
    _without_tqdm(monkeypatch)
    x, y, w, b = many_net(2)
    history, _, _ = many(x, y, w, b, loss="mse", lr=0.05, epochs=10, progress=True,
                         callback=lambda e, losses: e < 3)
    assert history.shape == (K, 4)
    last = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert last.startswith(f"network-epoch {K * 4}/{K * 10}  "), last


def test_progress_with_every_network_frozen_warns_nothing(monkeypatch, capsys):
    _without_tqdm(monkeypatch)
    x, y, w, b = divergence_problem(count=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history, _, _ = many(x, y, w, b, lr=np.array([50.0, 50.0]), on_divergence="freeze",
                             progress=True, **DIVERGE)
    assert not np.isfinite(history[:, -1]).any()


def test_progress_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    x, y, w, b = many_net(2)
    many(x, y, w, b, loss="mse", lr=0.05, epochs=10, progress=True)
    err = capsys.readouterr().err
    assert f"{K * 10}/{K * 10}" in err


# ----------------------------------------------------------------------------- Ctrl-C

CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import fastnn

    out, K = sys.argv[1], 6
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 200))
    y = rng.standard_normal((64, 10))
    w = [rng.standard_normal((K, 200, 50)) / 15, rng.standard_normal((K, 50, 10)) / 7]
    lr = np.linspace(1e-4, 3e-4, K)
    # compile (or load from the cache), and start the pool's threads once, before the clock
    fastnn.train_many(x, y, [a.copy() for a in w], lr=lr, epochs=2, batch_size=16)
    print("start", time.monotonic(), flush=True)
    try:
        fastnn.train_many(x, y, w, lr=lr, epochs=10**6, batch_size=16)
    except KeyboardInterrupt as exc:
        print("caught", time.monotonic(), flush=True)
        np.save(out + "_w0.npy", w[0])
        np.save(out + "_w1.npy", w[1])
        np.save(out + "_history.npy", exc.history)
        raise
    print("finished", flush=True)
""")


def ctrl_c_problem():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 200)), rng.standard_normal((64, 10))
    w = [rng.standard_normal((6, 200, 50)) / 15, rng.standard_normal((6, 50, 10)) / 7]
    return x, y, w, np.linspace(1e-4, 3e-4, 6)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A child trains 6 networks with train_many, SIGINT after ~1 s; returns what it saved and
    the epochs each network's saved weights correspond to: its history row's count, or one
    less, when a replay with train gives them bitwise (else None)."""
    tmp = tmp_path_factory.mktemp("ctrl_c")
    script = tmp / "child.py"
    script.write_text(CHILD_PRELUDE + CHILD)
    out = str(tmp / "saved")
    proc = subprocess.Popen([sys.executable, str(script), out], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = child_line(proc, 300)
        assert line.startswith("start"), line + proc.stderr.read()
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        line = child_line(proc, 10)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stdout = line + stdout
    assert "caught" in stdout, stdout + stderr
    caught = float(stdout.split("caught")[1].split()[0])
    saved = [np.load(out + "_w0.npy"), np.load(out + "_w1.npy")]
    history = np.load(out + "_history.npy")

    # network k's weights, replayed for the epochs its history row counts, then one less
    x, y, w0, lr = ctrl_c_problem()
    reached = []
    for k in range(6):
        n = int(np.isfinite(history[k]).sum())
        candidates = [n] if n == 0 else [n, n - 1]
        found = None
        for epochs in candidates:
            w = [a[k].copy() for a in w0]
            if epochs:
                fastnn.train(x, y, w, lr=lr[k], epochs=epochs, batch_size=16)
            if all(np.array_equal(a, s[k]) for a, s in zip(w, saved)):
                found = epochs
                break
        reached.append(found)
    return dict(returncode=proc.returncode, stdout=stdout, stderr=stderr, sent=sent,
                caught=caught, saved=saved, history=history, reached=reached)


def test_ctrl_c_every_network_at_a_completed_epoch(interrupted):
    r = interrupted
    assert r["caught"] - r["sent"] < 1.0, f"KeyboardInterrupt {r['caught'] - r['sent']:.3f} s " \
                                          "after SIGINT"
    assert r["returncode"] == -signal.SIGINT, (r["returncode"], r["stderr"])
    assert "KeyboardInterrupt" in r["stderr"] and "finished" not in r["stdout"]
    assert all(np.isfinite(a).all() for a in r["saved"])
    # every network's weights are those after some whole number of epochs (>= 1)
    assert None not in r["reached"], f"no epoch reproduces network {r['reached'].index(None)}"
    assert min(r["reached"]) >= 1
    h = r["history"]
    assert h.dtype == np.float64 and h.shape[0] == 6 and h.shape[1] >= 1
    # the losses so far: finite, a prefix of each network's run, equal to train's losses
    x, y, w0, lr = ctrl_c_problem()
    for k in range(6):
        n = int(np.isfinite(h[k]).sum())
        assert n >= 1 and np.isfinite(h[k, :n]).all() and np.isnan(h[k, n:]).all()
        assert n <= r["reached"][k]
    k = 0
    n = int(np.isfinite(h[k]).sum())
    expected = fastnn.train(x, y, [a[k].copy() for a in w0], lr=lr[k], epochs=n, batch_size=16)
    assert_bitwise(h[k, :n], expected, "history of network 0")


def test_ctrl_c_history_covers_the_epochs_in_the_weights(interrupted):
    h = interrupted["history"]
    finite = [int(np.isfinite(h[k]).sum()) for k in range(6)]
    assert finite == interrupted["reached"]


# ----------------------------------------------------------------------------- threads

class RecordingPool(ThreadPoolExecutor):
    sizes = []

    def __init__(self, max_workers=None, *args, **kwargs):
        RecordingPool.sizes.append(max_workers)
        super().__init__(max_workers, *args, **kwargs)


@pytest.fixture
def pool_sizes(monkeypatch):
    RecordingPool.sizes = []
    monkeypatch.setattr(_many, "ThreadPoolExecutor", RecordingPool)
    return RecordingPool.sizes


@pytest.mark.parametrize("limit, cpus, count, expected", [
    (None, 4, 3, 3),   # every usable CPU, at most one thread per network
    (None, 4, 8, 4),
    ("2", 4, 8, 2),    # FASTNN_THREADS caps it
    (" 3 ", 4, 8, 3),
    ("1", 4, 8, 1),
    ("16", 4, 8, 4),   # ... but never above the usable CPUs
    ("", 2, 8, 2),     # empty: no limit
])
def test_threads_follow_affinity_and_fastnn_threads(limit, cpus, count, expected, monkeypatch,
                                                     pool_sizes, spy):
    if limit is None:
        monkeypatch.delenv("FASTNN_THREADS", raising=False)
    else:
        monkeypatch.setenv("FASTNN_THREADS", limit)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    x, y, w, b = many_net(2, count=count)
    history, _, _ = many(x, y, w, b, lr=0.05, epochs=3)
    assert pool_sizes == [expected]
    names = {name for _, name in spy}
    assert len(names) <= expected and all(n.startswith("fastnn") for n in names)


def test_one_thread_gives_the_same_numbers(monkeypatch, spy):
    x, y, w, b = many_net(3, count=6)
    kw = dict(loss="mse", lr=np.linspace(0.01, 0.1, 6), batch_size=4, shuffle=True,
              seed=lambda: 3, epochs=30)
    monkeypatch.setenv("FASTNN_THREADS", "1")
    h1, p1, _ = many(x, y, w, b, **kw)
    assert len({name for _, name in spy}) == 1
    monkeypatch.setenv("FASTNN_THREADS", "2")
    h2, p2, _ = many(x, y, w, b, **kw)
    assert_bitwise(h1, h2, "history on 1 and 2 threads")
    for i, (a, e) in enumerate(zip(p1, p2)):
        assert_bitwise(a, e, f"parameter {i} on 1 and 2 threads")


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "2 threads"])
def test_invalid_fastnn_threads(value, monkeypatch):
    monkeypatch.setenv("FASTNN_THREADS", value)
    x, y, w, b = many_net(2)
    wm, bm = copies(w), copies(b)
    opt = fastnn.Adam(0.01)
    with pytest.raises(ValueError, match="FASTNN_THREADS") as info:
        fastnn.train_many(x, y, wm, bm, optimizer=opt, epochs=2)
    assert repr(value) in str(info.value)
    for a, a0 in zip(wm + bm, w + b):
        assert_bitwise(a, a0, "parameters")
    assert opt.state() == (None, 0), "the optimizer took on a state"


def test_one_blas_thread_inside_and_restored_after(spy):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["user_api"] == "blas"]

    rng = np.random.default_rng(2)  # 64 rows, 128 -> 64: kernels.blas_pays
    x, y = rng.standard_normal((64, 128)), rng.standard_normal((64, 4))
    w = [rng.standard_normal((K, 128, 64)) / 11, rng.standard_normal((K, 64, 4)) / 8]
    inside = []
    real = _driver.advance

    def advance(run, count, orders):
        inside.append((run.uses_blas, blas_threads()))
        return real(run, count, orders)

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        if not before or max(before) < 2:
            pytest.skip("the BLAS library here cannot use 2 threads")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_driver, "advance", advance)
            fastnn.train_many(x, y, [a.copy() for a in w], lr=1e-3, epochs=3)
        after = blas_threads()
    assert inside and all(uses for uses, _ in inside), "the network must use BLAS"
    assert all(threads == [1] * len(threads) for _, threads in inside), inside
    assert after == before


# ----------------------------------------------------------------------------- bad input

def _bad_cases():
    rng = np.random.default_rng(0)
    x, y, w, b = many_net(2)
    w_k2 = [w[0], w[1][:2]]
    cases = {
        "weights-2d": (dict(weights=[w[0][0], w[1][0]]), ValueError, "weights[0]"),
        "weights-not-list": (dict(weights=w[0]), TypeError, "weights"),
        "weights-mismatched-K": (dict(weights=w_k2), ValueError, "weights[1]"),
        "weights-mismatched-layers": (dict(weights=[w[0], w[0]]), ValueError, "weights[1]"),
        "weights-int": (dict(weights=[a.astype(np.int64) for a in w]), TypeError, "weights[0]"),
        "weights-read-only": (dict(weights=[w[0], np.broadcast_to(w[1][:1], w[1].shape)]),
                              ValueError, "weights[1]"),
        "biases-mismatched-K": (dict(biases=[b[0][:2], b[1]]), ValueError, "biases[0]"),
        "biases-wrong-width": (dict(biases=[b[0][:, :3], b[1]]), ValueError, "biases[0]"),
        "biases-1d": (dict(biases=[b[0][0], b[1]]), ValueError, "biases[0]"),
        "x-1d": (dict(x=x[:, 0]), ValueError, "x"),
        "x-4d": (dict(x=x[None, None]), ValueError, "x"),
        "x-wrong-columns": (dict(x=x[:, :3]), ValueError, "x"),
        "x-per-network-wrong-K": (dict(x=np.stack([x] * 2)), ValueError, "x"),
        "x-not-finite": (dict(x=np.where(np.arange(13)[:, None] == 4, np.inf, x)), ValueError,
                         "x"),
        "x-strings": (dict(x=np.full((13, 4), "a")), TypeError, "x"),
        "y-wrong-rows": (dict(y=y[:12]), ValueError, "y"),
        "y-per-network-wrong-K": (dict(y=np.stack([y] * 4)), ValueError, "y"),
        "y-per-network-not-finite": (dict(y=np.stack([y, y, y * np.nan])), ValueError, "y"),
        "rows-wrong-count": (dict(rows=[np.arange(13)] * 2), ValueError, "rows"),
        "rows-out-of-range": (dict(rows=[np.arange(13), np.arange(14), np.arange(13)]),
                              ValueError, "rows[1]"),
        "rows-negative": (dict(rows=[np.arange(13), np.arange(13), np.arange(-1, 12)]),
                          ValueError, "rows[2]"),
        "rows-float": (dict(rows=[np.arange(13.0)] * 3), ValueError, "rows[0]"),
        "rows-empty": (dict(rows=[np.arange(13), np.arange(0), np.arange(13)]), ValueError,
                       "rows[1]"),
        "rows-2d": (dict(rows=[np.arange(12).reshape(3, 4)] * 3), ValueError, "rows[0]"),
        "rows-not-a-sequence": (dict(rows=5), ValueError, "rows"),
        "lr-wrong-ndim": (dict(lr=np.full((K, 1), 0.1)), TypeError, "lr"),
        "lr-negative-entry": (dict(lr=[0.1, -0.1, 0.1]), ValueError, "lr[1]"),
        "lr-nan-entry": (dict(lr=[0.1, 0.1, np.nan]), ValueError, "lr[2]"),
        "lr-and-optimizer": (dict(optimizer=fastnn.SGD(0.1)), TypeError, "lr"),
        "no-lr": (dict(lr=None), TypeError, "lr"),
        "momentum-wrong-length": (dict(lr=None, optimizer=fastnn.SGD(0.1, momentum=[0.5, 0.9])),
                                  ValueError, "networks"),
        "adam-lengths-differ": (dict(lr=None, optimizer=fastnn.Adam(
            lr=[1e-3] * 3, betas=([0.9, 0.9], 0.999))), ValueError, "different lengths"),
        "optimizer-not-fastnn": (dict(lr=None, optimizer="adam"), TypeError, "optimizer"),
        "on-divergence": (dict(on_divergence="ignore"), ValueError, "on_divergence"),
        "epochs-0": (dict(epochs=0), ValueError, "epochs"),
        "epochs-float": (dict(epochs=2.0), TypeError, "epochs"),
        "batch-size-0": (dict(batch_size=0), ValueError, "batch_size"),
        "seed-negative": (dict(shuffle=True, seed=-3), ValueError, "seed"),
        "seed-float": (dict(shuffle=True, seed=1.5), TypeError, "seed"),
        "shuffle-string": (dict(shuffle="yes"), TypeError, "shuffle"),
        "callback-not-callable": (dict(callback=3), TypeError, "callback"),
        "callback-every-0": (dict(callback=print, callback_every=0), ValueError,
                             "callback_every"),
        "progress-string": (dict(progress="yes"), TypeError, "progress"),
        "activation-unknown": (dict(activation="gelu"), ValueError, "activation"),
        "loss-unknown": (dict(loss="hinge"), ValueError, "loss"),
        "labels-out-of-range": (dict(loss="softmax_ce", y=rng.integers(0, 5, 13)), ValueError,
                                "y"),
        "unknown-keyword": (dict(validation=(x, y)), TypeError, "validation"),
        "y-none": (dict(y=None), TypeError, "y must be an array of targets"),
        "no-networks": (dict(weights=[w[0][:0], w[1][:0]], biases=None), ValueError,
                        "weights[0] must hold at least one network"),
        "lr-per-network-for-2d-weights": (dict(weights=[w[0][0], w[1][0]], biases=None,
                                               lr=[0.1, 0.2, 0.3]), ValueError, "3-D"),
        "check-finite-string": (dict(check_finite="no"), TypeError, "check_finite"),
        "lr-0-in-float32": (dict(weights=[a.astype(np.float32) for a in w], biases=None,
                                 lr=[0.1, 1e-50, 0.1]), ValueError,
                            "lr[1] must be representable in the network's dtype float32, found "
                            "1e-50"),
        "task-seconds-string": (dict(task_seconds="1"), TypeError, "task_seconds"),
        "task-seconds-negative": (dict(task_seconds=-1.0), ValueError, "task_seconds"),
        "nan-in-network-2-with-adam": (
            dict(lr=None, optimizer=fastnn.Adam(0.01),
                 weights=[w[0], np.where(np.arange(w[1].size).reshape(w[1].shape)
                                         == w[1][0].size * 2 + 1, np.nan, w[1])]),
            ValueError, "network 2: weights[1] must be finite before training, found nan at "
                        "index (0, 1)"),
    }
    return x, y, w, b, cases


BAD = _bad_cases()


def _fresh(value):
    """A copy of an argument array (or list of arrays); read-only arrays stay as they are."""
    if isinstance(value, list):
        return [_fresh(a) for a in value]
    if isinstance(value, np.ndarray) and value.flags.writeable:
        return value.copy()
    return value


@pytest.mark.parametrize("case", list(BAD[4]))
def test_bad_input_is_rejected_and_nothing_changes(case):
    x, y, w, b, cases = BAD
    change, error, name = cases[case]
    args = dict(x=x, y=y, weights=w, biases=b, lr=0.05, epochs=3)
    args.update(change)
    args = {k: _fresh(v) for k, v in args.items()}
    arrays = {k: v for k, v in args.items() if k in ("x", "y", "weights", "biases", "rows")}
    before = {k: [np.copy(a) for a in v] if isinstance(v, list) else np.copy(v)
              for k, v in arrays.items()}
    opt = args.get("optimizer")
    with pytest.raises(error) as info:
        fastnn.train_many(args.pop("x"), args.pop("y"), args.pop("weights"), args.pop("biases"),
                          **args)
    assert name in str(info.value), str(info.value)
    for key, value in arrays.items():
        if isinstance(value, list):
            assert all(np.array_equal(a, c, equal_nan=c.dtype.kind == "f")
                       for a, c in zip(value, before[key])), key
        else:
            assert np.array_equal(value, before[key], equal_nan=before[key].dtype.kind == "f"), key
    if isinstance(opt, fastnn.optim.Optimizer):
        assert opt.state() == (None, 0), "the optimizer took on a state"


def _shared_memory_cases():
    """Stacked arrays whose networks share memory where network 0's arrays do not."""
    x, y, w, b = many_net(2)
    n0, n1 = w[0][0].size, w[1][0].size
    buf = np.random.default_rng(7).standard_normal(4 * n0 + x.size)
    w0 = buf[:K * n0].reshape(w[0].shape)
    one = as_strided(buf[:n0], w[0].shape, (0,) + w[0].strides[1:])  # K networks, one memory
    w1_in_w0 = as_strided(buf[n0:], w[1].shape, (n1 * 8, w[1].strides[1], 8))  # in w0[1]
    x_in_w0 = buf[2 * n0:2 * n0 + x.size].reshape(x.shape)  # from w0[2] on
    return buf, {
        "networks-one-memory": (x, [one, w[1].copy()], "weights[0] has elements that share memory"),
        "layers-overlap-past-network-0": (x, [w0, w1_in_w0], "weights[1] and weights[0] share memory"),
        "x-in-network-2": (x_in_w0, [w0, w[1].copy()], "weights[0] shares memory with x"),
    }, y


@pytest.mark.parametrize("case", ["networks-one-memory", "layers-overlap-past-network-0",
                                  "x-in-network-2"])
def test_memory_shared_by_any_network_is_rejected(case):
    """Every network's arrays are checked, not network 0's alone: sharing memory would train
    networks into one another, or change the data, silently."""
    buf, cases, y = _shared_memory_cases()
    x, w, message = cases[case]
    before = buf.copy()
    with pytest.raises(ValueError, match=re.escape(message)):
        fastnn.train_many(x, y, w, lr=0.05, epochs=2)
    assert_bitwise(buf, before, "the shared memory")


def test_lr_of_the_wrong_length_names_lr():
    x, y, w, b = many_net(2)
    with pytest.raises(ValueError, match="lr") as info:
        fastnn.train_many(x, y, copies(w), copies(b), lr=[0.1, 0.2], epochs=2)
    assert "3" in str(info.value) and "2" in str(info.value)


def test_lr_of_the_wrong_length_is_a_value_error():
    x, y, w, b = many_net(2)
    wm = copies(w)
    with pytest.raises(ValueError, match="3 networks, found 2"):
        fastnn.train_many(x, y, wm, copies(b), lr=[0.1, 0.2], epochs=2)
    assert all(np.array_equal(a, c) for a, c in zip(wm, w))


def test_per_network_settings_are_refused_by_train():
    x, y, w, b = many_net(2)
    with pytest.raises(TypeError, match="train_many"):
        fastnn.train(x, y, [a[0].copy() for a in w], lr=[0.1, 0.2, 0.3], epochs=2)


def test_client_must_be_a_dask_client():
    x, y, w, b = many_net(2)
    wm = copies(w)
    with pytest.raises((TypeError, AttributeError)):
        fastnn.train_many(x, y, wm, copies(b), lr=0.05, epochs=2, client="tcp://127.0.0.1:1")
    assert all(np.array_equal(a, c) for a, c in zip(wm, w))


def test_client_address_string_is_a_clear_type_error():
    x, y, w, b = many_net(2)
    with pytest.raises(TypeError, match="client"):
        fastnn.train_many(x, y, copies(w), copies(b), lr=0.05, epochs=2,
                          client="tcp://127.0.0.1:1")


# ----------------------------------------------------------------------------- predict_many

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["identity", "softmax", "sigmoid"])
@pytest.mark.parametrize("depth, act", [(1, "relu"), (2, "tanh"), (3, "per-layer"),
                                        (4, "relu")])
def test_predict_many_equals_predict(depth, act, output, dtype):
    x, _, w, b = many_net(depth, dtype)
    x = np.concatenate([x] * 400)  # 5200 rows: more than one of predict's blocks
    activation = activation_for(act, depth)
    out = fastnn.predict_many(x, w, b, activation=activation, output=output)
    assert out.shape == (K, x.shape[0], 2) and out.dtype == dtype
    for k in range(K):
        expected = fastnn.predict(x, [a[k] for a in w], None if b is None else [a[k] for a in b],
                                  activation=activation, output=output)
        assert_bitwise(out[k], expected, f"output of network {k}")
    assert not np.array_equal(out[0], out[1])


def test_predict_many_per_network_x_and_read_only_weights():
    x, _, w, b = many_net(2)
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((K, 7, 4))
    for a in w + b:
        a.flags.writeable = False
    out = fastnn.predict_many(xs, w, b)
    for k in range(K):
        assert_bitwise(out[k], fastnn.predict(xs[k], [a[k] for a in w], [a[k] for a in b]),
                       f"output of network {k}")


def test_predict_many_after_train_many():
    x, y, w, b = many_net(2)
    history, params, _ = many(x, y, w, b, loss="mse", lr=0.05, epochs=30)
    out = fastnn.predict_many(x, params[:2], params[2:])
    mse = np.mean((out - y) ** 2, axis=(1, 2))
    # the loss of the final weights is below the last epoch's (taken before its update)
    assert np.all(mse < history[:, -1])


@pytest.mark.parametrize("change, error, name", [
    (dict(weights="w2d"), ValueError, "weights[0]"),
    (dict(x="wrong-K"), ValueError, "x"),
    (dict(output="tanh"), ValueError, "output"),
    (dict(activation="gelu"), ValueError, "activation"),
])
def test_predict_many_bad_input(change, error, name):
    x, _, w, b = many_net(2)
    args = dict(x=x, weights=w, biases=b)
    if change.get("weights") == "w2d":
        args["weights"] = [a[0] for a in w]
        args["biases"] = None
    elif change.get("x") == "wrong-K":
        args["x"] = np.stack([x] * 4)
    else:
        args.update(change)
    with pytest.raises(error) as info:
        fastnn.predict_many(args.pop("x"), args.pop("weights"), args.pop("biases"), **args)
    assert name in str(info.value)
