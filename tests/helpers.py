"""Helpers shared by the tests: seeded problems, comparisons with measured tolerances.

Tolerances: rtol 1e-9 in float64 and 1e-4 in float32, on settings chosen to be
well conditioned (measured by rerunning the reference from initial weights moved
by one ulp: see test_equivalence.py for the spreads of each setting).

Comparisons:
* loss histories: elementwise relative (losses are positive), plus an absolute
  floor only where a loss converges to ~0;
* parameters: per array, max |a - b| <= rtol * max |b|. An elementwise relative
  test is meaningless for entries that cancel to ~0.
"""

import select
import signal
import time

import numpy as np
import pytest

import fastnn
from fastnn import reference

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)
RTOL = {F64: 1e-9, F32: 1e-4}
DTYPES = [pytest.param(F64, id="f64"), pytest.param(F32, id="f32")]


def copies(arrays):
    return None if arrays is None else [a.copy() for a in arrays]


def assert_params_close(actual, expected, rtol, what="parameter"):
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape and a.dtype == e.dtype, (what, i, a.shape, e.shape, a.dtype, e.dtype)
        err = float(np.max(np.abs(a.astype(np.float64) - e.astype(np.float64))))
        scale = float(np.max(np.abs(e)))
        assert np.isfinite(err) and err <= rtol * scale, (
            f"{what} {i}: max |diff| {err:.3e} > rtol {rtol:g} * max |expected| {scale:.3e}")


def assert_history_close(actual, expected, rtol, atol=0.0):
    assert actual.dtype == np.float64 and actual.shape == expected.shape
    assert np.all(np.isfinite(actual))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def assert_moved(initial, final, rtol):
    """The run changed the parameters far more than the tolerance: the test can fail."""
    moved = max(float(np.max(np.abs(f.astype(np.float64) - i))) / float(np.max(np.abs(i)))
                for i, f in zip(initial, final) if np.max(np.abs(i)) > 0)
    assert moved > 100 * rtol, f"parameters moved only {moved:.2e}; the comparison is vacuous"


def run(fn, x, y, weights, biases=None, **kw):
    """Train copies with fn; returns (history, [weights..., biases...])."""
    w, b = copies(weights), copies(biases)
    history = fn(x, y, w, b, **kw)
    assert isinstance(history, np.ndarray) and history.dtype == np.float64
    return history, w + (b or [])


def compare(x, y, weights, biases=None, *, rtol, atol=0.0, **kw):
    h_ref, p_ref = run(reference.train, x, y, weights, biases, **kw)
    h_fast, p_fast = run(fastnn.train, x, y, weights, biases, **kw)
    assert len(h_ref) == len(h_fast) == kw["epochs"]
    assert_history_close(h_fast, h_ref, rtol, atol)
    assert_params_close(p_fast, p_ref, rtol)
    assert_moved(list(weights) + list(biases or []), p_ref, rtol)
    return h_fast, h_ref


# --------------------------------------------------------------------------- seed configurations

def relu2_data(dtype, seed=0):
    """Seeds 000/001/003: N, D_in, H, D_out = 64, 1000, 100, 10; randn data and weights."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((64, 1000)), rng.standard_normal((64, 10))
    w = [rng.standard_normal((1000, 100)), rng.standard_normal((100, 10))]
    return x.astype(dtype), y.astype(dtype), [a.astype(dtype) for a in w]


def sigmoid2_data(dtype, seed=2):
    """Seed 002: N, D_in, H, D_out = 64, 1000, 1000, 10."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((64, 1000)), rng.standard_normal((64, 10))
    w = [rng.standard_normal((1000, 1000)), rng.standard_normal((1000, 10))]
    return x.astype(dtype), y.astype(dtype), [a.astype(dtype) for a in w]


def mlp3_data(dtype, rows, seed=4, zero_biases=False):
    """Seed 004: X (rows, 5), y = log(X @ beta + 20), a 5-4-4-1 net with (1, n) biases."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 5))
    y = np.log(x @ rng.standard_normal((5, 1)) + 20)
    w = [rng.standard_normal((5, 4)), rng.standard_normal((4, 4)), rng.standard_normal((4, 1))]
    if zero_biases:  # the SGD half of the seed starts from zero biases
        b = [np.zeros((1, 4)), np.zeros((1, 4)), np.zeros((1, 1))]
    else:
        b = [rng.standard_normal((1, 4)), rng.standard_normal((1, 4)), rng.standard_normal((1, 1))]
    cast = lambda arrays: [a.astype(dtype) for a in arrays]  # noqa: E731
    return x.astype(dtype), y.astype(dtype), cast(w), cast(b)


# the grid of small networks used across the tests

HIDDEN = [5, 3, 6]
N_ROWS = 13
# 13 rows: batch_size=5 gives batches 5, 5, 3 (a short last batch); shuffle with
# batch_size=4 gives 4, 4, 4, 1 in a new seeded order every epoch.
MODES = {
    "full": {},
    "k5": {"batch_size": 5},
    "k1": {"batch_size": 1},
    "shuffle-k4": {"batch_size": 4, "shuffle": True, "seed": 7},
}
LR = {"sse": 0.005, "mse": 0.05}
PER_LAYER = ["relu", "tanh", "sigmoid"]


def grid_net(depth, dtype, seed=None, rows=N_ROWS):
    """A depth-layer net 4 -> HIDDEN[:depth-1] -> 2 with 1/sqrt(fan_in) weights.

    Even depths get biases, alternating shapes (n,) and (1, n); odd depths none, so
    every activation, loss, batch mode and dtype runs with and without biases.
    """
    rng = np.random.default_rng(depth if seed is None else seed)
    widths = [4] + HIDDEN[:depth - 1] + [2]
    x, y = rng.standard_normal((rows, 4)), rng.standard_normal((rows, 2))
    w = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths, widths[1:])]
    b = None
    if depth % 2 == 0:
        b = [0.1 * rng.standard_normal((1, n) if i % 2 else (n,)) for i, n in enumerate(widths[1:])]
    cast = lambda arrays: None if arrays is None else [a.astype(dtype) for a in arrays]  # noqa: E731
    return x.astype(dtype), y.astype(dtype), cast(w), cast(b)


def activation_for(name, depth):
    if name == "per-layer":
        return [PER_LAYER[i % 3] for i in range(depth - 1)]  # [] for depth 1
    return name


# depth 1 has no hidden layer: only one plain name and the (empty) per-layer list
ARCHS = [(d, a) for d in (1, 2, 3, 4)
         for a in ("relu", "sigmoid", "tanh", "identity", "per-layer")
         if d > 1 or a in ("relu", "per-layer")]


def noncontiguous_net(dtype):
    """Weights as views: a slice of a bigger array, Fortran order, a strided slice;
    biases as a strided row slice (n,), a (1, n) slice and a Fortran (1, n).

    Returns x, y, weights, biases and [(parent, index)] with weights/biases views
    parent[index]."""
    rng = np.random.default_rng(21)
    parent_w = rng.standard_normal((12, 15)).astype(dtype)
    parent_w3 = rng.standard_normal((9, 8)).astype(dtype)
    parent_b = rng.standard_normal((3, 20)).astype(dtype)
    regions = [(parent_w, np.s_[2:6, 3:8]),     # w1 (4, 5): C slice
               (parent_w3, np.s_[::3, 1::4]),   # w3 (3, 2): strided both ways
               (parent_b, np.s_[1, ::4]),       # b1 (5,): strided
               (parent_b, np.s_[2:3, 0:3])]     # b2 (1, 3): slice of a row
    w1, w3, b1, b2 = (parent[index] for parent, index in regions)
    w2 = np.asfortranarray((rng.standard_normal((5, 3)) / 2).astype(dtype))  # (5, 3) Fortran
    b3 = np.asfortranarray(rng.standard_normal((1, 2)).astype(dtype))
    assert not (w1.flags.c_contiguous or w3.flags.c_contiguous or b1.flags.c_contiguous)
    assert w2.flags.f_contiguous and not w2.flags.c_contiguous
    x, y = rng.standard_normal((11, 4)).astype(dtype), rng.standard_normal((11, 2)).astype(dtype)
    return x, y, [w1, w2, w3], [b1, b2, b3], regions


# --------------------------------------------------------------------------- new losses, optimizers

CLASSES = 3  # outputs of class_net


def class_net(depth, dtype, loss, seed=None, rows=N_ROWS, n_in=4, n_out=CLASSES, labels=False):
    """grid_net's shapes (4 -> HIDDEN[:depth-1] -> n_out) with targets for a classification loss.

    softmax_ce: y is one-hot rows (N, n_out), or the (N,) int64 labels with ``labels=True``;
    sigmoid_bce: y in [0, 1], half the columns 0/1 and half soft. Even depths get biases.
    """
    rng = np.random.default_rng((depth, 17) if seed is None else seed)
    widths = [n_in] + HIDDEN[:depth - 1] + [n_out]
    x = rng.standard_normal((rows, n_in))
    w = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths, widths[1:])]
    b = None
    if depth % 2 == 0:
        b = [0.1 * rng.standard_normal((1, n) if i % 2 else (n,)) for i, n in enumerate(widths[1:])]
    if loss == "softmax_ce":
        cls = rng.integers(0, n_out, rows)
        y = cls if labels else np.eye(n_out)[cls]
    elif loss == "sigmoid_bce":
        y = rng.uniform(0, 1, (rows, n_out))
        y[:, ::2] = np.round(y[:, ::2])
    else:
        y = rng.standard_normal((rows, n_out))
    cast = lambda arrays: None if arrays is None else [a.astype(dtype) for a in arrays]  # noqa: E731
    return x.astype(dtype), (y if labels else y.astype(dtype)), cast(w), cast(b)


def run_with(fn, x, y, weights, biases=None, make_optimizer=None, **kw):
    """run() with a fresh optimizer from make_optimizer() (an optimizer holds the state of the
    arrays it trained, so two implementations cannot share one); returns (result, params, opt)."""
    w, b = copies(weights), copies(biases)
    opt = None if make_optimizer is None else make_optimizer()
    if opt is not None:
        kw["optimizer"] = opt
    result = fn(x, y, w, b, **kw)
    return result, w + (b or []), opt


def compare_with(x, y, weights, biases=None, *, rtol, atol=0.0, make_optimizer=None, **kw):
    """compare() for any train arguments, with a fresh optimizer per implementation.
    Returns (fastnn's result, the reference's result)."""
    r_ref, p_ref, _ = run_with(reference.train, x, y, weights, biases, make_optimizer, **kw)
    r_fast, p_fast, _ = run_with(fastnn.train, x, y, weights, biases, make_optimizer, **kw)
    h_ref = r_ref if isinstance(r_ref, np.ndarray) else r_ref.loss
    h_fast = r_fast if isinstance(r_fast, np.ndarray) else r_fast.loss
    assert h_fast.shape == h_ref.shape
    assert_history_close(h_fast, h_ref, rtol, atol)
    assert_params_close(p_fast, p_ref, rtol)
    assert_moved(list(weights) + list(biases or []), p_ref, rtol)
    return r_fast, r_ref


def ulp_perturbed(arrays, seed):
    """Copies of arrays with every nonzero entry moved by +-1 ulp at random (zeros kept):
    how the tolerances of the tests are measured (rerun the reference from these)."""
    rng = np.random.default_rng(seed)
    out = []
    for a in arrays:
        up = rng.integers(0, 2, a.shape).astype(bool)
        moved = np.where(up, np.nextafter(a, np.inf), np.nextafter(a, -np.inf)).astype(a.dtype)
        out.append(np.where(a == 0, a, moved))
    return out


def ulp_spread(x, y, weights, biases=None, *, make_optimizer=None, seeds=(1, 2, 3), **kw):
    """(history, parameter) spread of reference.train under 1-ulp perturbations of the initial
    parameters, measured as the comparisons measure: elementwise relative for histories,
    max |diff| / max |expected| per array for parameters."""
    r0, p0, _ = run_with(reference.train, x, y, weights, biases, make_optimizer, **kw)
    h0 = r0 if isinstance(r0, np.ndarray) else r0.loss
    dh = dp = 0.0
    for s in seeds:
        w = ulp_perturbed(weights, s)
        b = None if biases is None else ulp_perturbed(biases, s + 100)
        r, p, _ = run_with(reference.train, x, y, w, b, make_optimizer, **kw)
        h = r if isinstance(r, np.ndarray) else r.loss
        if h.shape != h0.shape:
            return np.inf, np.inf
        dh = max(dh, float(np.max(np.abs(h - h0) / np.abs(h0))))
        dp = max(dp, max(float(np.max(np.abs(a.astype(np.float64) - e))) / float(np.max(np.abs(e)))
                         for a, e in zip(p, p0)))
    return dh, dp


def buffers_of(optimizer):
    """The state buffers an optimizer keeps after a train call (momentum, Adam's moments)."""
    return optimizer.state()[0] if hasattr(optimizer, "state") else optimizer._buffers


# The first lines of a child process that prints "start", trains, and prints "caught" on
# Ctrl-C: its stacks can be dumped if it stops answering, and it takes SIGINT as a terminal's
# foreground process does even when the test runner was started with SIGINT ignored (a
# shell's background job, nohup), a state every child would otherwise inherit.
CHILD_PRELUDE = ("import faulthandler, signal\n"
                 "faulthandler.register(signal.SIGUSR1, all_threads=True)\n"
                 "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                 "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n")


def child_line(proc, timeout):
    """The child's next stdout line; after timeout seconds (no hang) a failure that
    shows the child's stderr and the stacks of its threads (CHILD_PRELUDE)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        proc.kill()
        pytest.fail(f"no output from the child within {timeout} s; its stderr:\n"
                    f"{proc.stderr.read()[-6000:]}")
    return proc.stdout.readline()
