"""Small-shape equivalence, cheap enough to run with the kernels interpreted.

Runs in the normal pass, and twice more in CI (see .ci/run):

    NUMBA_DISABLE_JIT=1 pytest -p no:cacheprovider -q tests/test_small.py
    NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR="$(mktemp -d)" pytest -p no:cacheprovider -q tests/test_small.py

With NUMBA_DISABLE_JIT=1 the kernels run as plain Python (their lines get
covered, and gemm uses its NumPy fallback); with NUMBA_BOUNDSCHECK=1 every
array access in compiled code is bounds-checked. That pass needs a fresh
NUMBA_CACHE_DIR: Numba's cache key ignores the boundscheck flag, so a warm
cache would silently supply unchecked code (``test_mode_is_live`` fails then).

Every case: depth 1-3, tiny widths, each activation (and a per-layer mix),
both losses, full batch / batch 1 / batch 3 / shuffled batch 3, both dtypes,
biases on every other case, 3 epochs; fastnn.train and predict against
fastnn.reference at issue 2's tolerances (rtol 1e-9 float64, 1e-4 float32,
measured spreads in test_properties.py).
"""

import os
import zlib

import numpy as np
import pytest

import fastnn
from fastnn import kernels as K
from fastnn import reference

DISABLE_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
BOUNDSCHECK = os.environ.get("NUMBA_BOUNDSCHECK", "") not in ("", "0")

RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}
SHAPES = {1: [3, 2], 2: [3, 4, 2], 3: [2, 5, 3, 1]}
ACTIVATIONS = ["relu", "sigmoid", "tanh", "identity", "mixed"]
BATCHES = {"full": dict(batch_size=None), "one": dict(batch_size=1),
           "three": dict(batch_size=3), "three-shuffled": dict(batch_size=3, shuffle=True,
                                                               seed=5)}


def case(depth, activation, dtype, bias, seed):
    widths = SHAPES[depth]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((7, widths[0]))
    y = rng.standard_normal((7, widths[-1]))
    w = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
         for a, b in zip(widths, widths[1:])]
    b = [(0.1 * rng.standard_normal(n)).astype(dtype) for n in widths[1:]] if bias else None
    if activation == "mixed":
        act = ["tanh", "relu", "sigmoid"][:depth - 1] if depth > 1 else "sigmoid"
    else:
        act = activation
    return x, y, w, b, act


def scaled_error(a, c):
    a, c = np.asarray(a, np.float64), np.asarray(c, np.float64)
    diff = np.max(np.abs(a - c))
    return 0.0 if diff == 0 else diff / np.max(np.abs(c))


# depth 1 has no hidden layer: its activation is unused, one is enough
NETS = [(1, "identity")] + [(d, a) for d in (2, 3) for a in ACTIVATIONS]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("loss", ["sse", "mse"])
@pytest.mark.parametrize("depth,activation", NETS)
def test_train_and_predict_match_reference(depth, activation, loss, batch, dtype):
    seed = zlib.crc32(repr((depth, activation, loss, batch, np.dtype(dtype).name)).encode())
    bias = seed % 2 == 0
    x, y, w0, b0, act = case(depth, activation, dtype, bias, seed)
    lr = 0.05 if loss == "mse" else 0.02 / (7 if batch == "full" else 3)
    kw = dict(activation=act, loss=loss, lr=lr, epochs=3, **BATCHES[batch])
    rtol = RTOL[np.dtype(dtype)]

    w_f, b_f = [a.copy() for a in w0], None if b0 is None else [a.copy() for a in b0]
    h_f = fastnn.train(x, y, w_f, b_f, **kw)
    w_r, b_r = [a.copy() for a in w0], None if b0 is None else [a.copy() for a in b0]
    h_r = reference.train(x, y, w_r, b_r, **kw)
    assert scaled_error(h_f, h_r) <= rtol  # relative to the largest loss: see test_properties
    for a, c in zip(w_f + (b_f or []), w_r + (b_r or [])):
        assert a.dtype == c.dtype and a.shape == c.shape
        assert scaled_error(a, c) <= rtol

    p_f = fastnn.predict(x, w_f, b_f, activation=act)
    p_r = reference.predict(x, w_r, b_r, activation=act)
    assert p_f.dtype == np.dtype(dtype) and scaled_error(p_f, p_r) <= rtol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch_size", [None, 64])
def test_blas_sized_layers(dtype, batch_size):
    # Layers big enough for the kernels' BLAS branch (gemm; its NumPy fallback when
    # NUMBA_DISABLE_JIT=1): n_in * n_out * batch >= 32768 and both widths >= 8.
    rng = np.random.default_rng(8)
    widths = [16, 32, 16]
    x = rng.standard_normal((128, widths[0]))
    y = rng.standard_normal((128, widths[-1]))
    w0 = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
          for a, b in zip(widths, widths[1:])]
    b0 = [(0.1 * rng.standard_normal(n)).astype(dtype) for n in widths[1:]]
    kw = dict(activation="sigmoid", loss="mse", lr=0.05, epochs=3, batch_size=batch_size)
    rtol = RTOL[np.dtype(dtype)]
    w_f, b_f = [a.copy() for a in w0], [a.copy() for a in b0]
    w_r, b_r = [a.copy() for a in w0], [a.copy() for a in b0]
    assert scaled_error(fastnn.train(x, y, w_f, b_f, **kw),
                        reference.train(x, y, w_r, b_r, **kw)) <= rtol
    for a, c in zip(w_f + b_f, w_r + b_r):
        assert scaled_error(a, c) <= rtol
    assert scaled_error(fastnn.predict(x, w_f, b_f, activation="sigmoid"),
                        reference.predict(x, w_r, b_r, activation="sigmoid")) <= rtol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation, loss, bias", [("mixed", "mse", True),
                                                    ("relu", "sse", False)])
def test_team_full_batch(dtype, activation, loss, bias):
    # A full batch of K.team.MIN_ROWS rows with small layers: kernels/team.py's two
    # parts (in one thread here: interpreted kernels never start a second one).
    widths = SHAPES[3]
    n_rows = K.team.MIN_ROWS
    assert K.team_parts(widths, n_rows, n_rows) == (n_rows // 2, n_rows // 2)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n_rows, widths[0]))
    y = rng.standard_normal((n_rows, widths[-1]))
    w0 = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
          for a, b in zip(widths, widths[1:])]
    b0 = [(0.1 * rng.standard_normal(n)).astype(dtype) for n in widths[1:]] if bias else None
    act = ["tanh", "relu"] if activation == "mixed" else activation
    kw = dict(activation=act, loss=loss, lr=0.5 if loss == "mse" else 1e-3, epochs=3)
    rtol = RTOL[np.dtype(dtype)]
    w_f, b_f = [a.copy() for a in w0], None if b0 is None else [a.copy() for a in b0]
    w_r, b_r = [a.copy() for a in w0], None if b0 is None else [a.copy() for a in b0]
    assert scaled_error(fastnn.train(x, y, w_f, b_f, **kw),
                        reference.train(x, y, w_r, b_r, **kw)) <= rtol
    for a, c, a0 in zip(w_f + (b_f or []), w_r + (b_r or []), w0 + (b0 or [])):
        assert scaled_error(a, c) <= rtol
        assert scaled_error(c, a0) > 10 * rtol  # every array moved: the comparison can fail


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow, on purpose
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_divergence_small(dtype):
    # The divergence path (loss check, per-epoch replay, write-back) in this mode too.
    x, y, w0, b0, act = case(2, "tanh", dtype, True, 1)
    epochs = []
    for train in (fastnn.train, reference.train):
        w, b = [a.copy() for a in w0], [a.copy() for a in b0]
        with pytest.raises(fastnn.DivergenceError) as info:
            train(x, y, w, b, activation=act, lr=50.0, epochs=200, batch_size=3)
        assert all(np.isfinite(a).all() for a in w + b)
        epochs.append(info.value.epoch)
        w_replay, b_replay = [a.copy() for a in w0], [a.copy() for a in b0]
        if info.value.epoch:
            train(x, y, w_replay, b_replay, activation=act, lr=50.0,
                  epochs=info.value.epoch, batch_size=3, check_finite=False)
        for a, c in zip(w + b, w_replay + b_replay):
            np.testing.assert_array_equal(a, c)
    assert epochs[0] == epochs[1]


def test_gradcheck_small():
    # The stand-alone gradient kernel (loss_and_grad) against finite differences.
    for loss in ("sse", "mse"):
        x, y, w, b, act = case(3, "mixed", np.float64, True, 3)
        assert fastnn.gradcheck(x, y, w, b, activation=act, loss=loss) < 1e-6


def test_mode_is_live():
    """The pass really runs in the mode it claims (else it would test nothing new)."""
    from numba.core.dispatcher import Dispatcher
    if DISABLE_JIT:
        # kernels are plain Python functions, gemm is the NumPy fallback
        assert not isinstance(K.train_loop, Dispatcher)
        assert not isinstance(K.gemm, Dispatcher)
        c = np.zeros((2, 2))
        K.gemm(c, np.eye(2), np.full((2, 2), 3.0), False, False, 2.0, 0.0)
        np.testing.assert_array_equal(c, 6.0)
    elif BOUNDSCHECK:
        # an out-of-range row index must raise instead of reading past the array
        x = np.zeros((4, 2))
        y = np.zeros((4, 1))
        a0 = np.zeros((2, 1))
        yt = np.zeros((1, 1))
        with pytest.raises(IndexError):
            K.load_batch(a0, yt, x, y, np.array([4]), 0, 1)
        # and the training loop was compiled here, not loaded from a cache
        xs, ys, ws, bs, act = case(2, "tanh", np.float64, True, 0)
        fastnn.train(xs, ys, ws, bs, activation=act, lr=1e-3, epochs=1)
        hits = sum(K.train_loop.stats.cache_hits.values())
        assert hits == 0, "bounds-check pass loaded kernels from a warm cache (compiled " \
                          "without checks): give it a fresh NUMBA_CACHE_DIR"
    else:
        assert isinstance(K.train_loop, Dispatcher)
