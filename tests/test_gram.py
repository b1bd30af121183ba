"""The Gram path of full-batch training (``gram_size`` and ``train_loop``).

With the whole batch in row order and fewer rows than input features, the first
layer's pre-activation is carried from epoch to epoch as P <- P - lr * d1 @ G with
G = x x^T, and w1 gets the summed update once per call. Same arithmetic in real
numbers; only the rounding differs. Tolerances: across these problems (30 epochs,
every activation, loss and dtype), the Gram path moved the parameters by at most
5e-16 (float64) and 4e-7 (float32) relative to the per-epoch path, against 4e-16
and 2e-7 for a 1-ulp change of the initial w1. The tolerances below sit ~200x and
~25x above that, and far below any error in the algebra (a missing or doubled
update of w1 or of P changes the result at the 1e-3 level, checked below).
"""

import numpy as np
import pytest

import fastnn
from fastnn import kernels as K
from fastnn import reference
from fastnn._driver import _Packed
from fastnn._validate import check_network

RTOL = {np.float64: 1e-13, np.float32: 1e-5}


@pytest.mark.parametrize("widths, batch, n_rows, in_order, pays", [
    ([1000, 100, 10], 64, 64, True, True),      # relu2
    ([1000, 1000, 10], 64, 64, True, True),     # sigmoid2
    ([1000, 100, 10], 64, 64, False, False),    # shuffled rows: a new G every epoch
    ([1000, 100, 10], 32, 64, True, False),     # mini-batches
    ([100, 100, 10], 64, 64, True, False),      # 2 * rows > input features
    ([1000, 4, 1], 64, 64, True, False),        # a first layer too small for BLAS
    ([1000, 100, 10], 64, 1, True, False),      # one row: one-sample steps
    ([1000], 64, 64, True, False),              # no layer
    ([5, 4, 4, 1], 900, 900, True, False),      # mlp3_gd
])
def test_gram_size(widths, batch, n_rows, in_order, pays):
    size = K.gram_size(widths, batch, n_rows, in_order)
    if pays:
        n1 = widths[1]
        assert size == n_rows * n_rows + 2 * n1 * n_rows + widths[0] * n1
    else:
        assert size == 0


def _problem(widths, n_rows, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, widths[0]))
    y = rng.standard_normal((n_rows, widths[-1]))
    ws = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths, widths[1:])]
    bs = [0.1 * rng.standard_normal(b) for b in widths[1:]]
    return x.astype(dtype), y.astype(dtype), [w.astype(dtype) for w in ws], \
        [b.astype(dtype) for b in bs]


def _train(net, gram, epochs, lr, check=K.CHECK_LOSS, calls=1):
    # train_loop takes the Gram path exactly when the caller makes room for it; calls > 1
    # splits the epochs over several calls that carry the Gram state on, as the driver does
    n = net.x.shape[0]
    extra = K.gram_size(net.widths, n, n) if gram else 0
    packed = _Packed(net, K.workspace_size(net.widths, n) + extra)
    losses = np.zeros(epochs)
    bounds = np.linspace(0, epochs, calls + 1).astype(int)
    status = 0
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        cfg = np.array([net.loss, n, check, K.GRAM_START if i == 0 else K.GRAM_CONTINUE],
                       np.int64)
        done = K.train_loop(losses[a:b], packed.params, packed.work, packed.table, cfg, lr,
                            net.x, net.y, np.empty((0, 0), np.int64))
        status += done
        if done != b - a:
            break
    return status, losses, packed.params.copy(), packed.work


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("widths", [[96, 24, 8], [96, 24, 16, 4]])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "identity"])
@pytest.mark.parametrize("loss", ["sse", "mse"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_gram_path_trains_like_the_per_epoch_path(dtype, widths, activation, loss, with_bias):
    n = 40
    x, y, ws, bs = _problem(widths, n, seed=3, dtype=dtype)
    net = check_network(x, y, ws, bs if with_bias else None, activation, loss)
    assert K.gram_size(net.widths, n, n) > 0
    got = _train(net, True, epochs=30, lr=1e-3)
    want = _train(net, False, epochs=30, lr=1e-3)
    # the path was taken: its scratch holds G = x x^T
    g_off = K.workspace_size(net.widths, n)
    gmat = got[3][g_off:g_off + n * n].reshape(n, n)
    np.testing.assert_allclose(gmat, x @ x.T, rtol=RTOL[dtype], atol=RTOL[dtype] * n)
    assert got[0] == want[0] == 30
    np.testing.assert_allclose(got[1], want[1], rtol=RTOL[dtype])
    scale = np.abs(want[2]).max()
    np.testing.assert_allclose(got[2], want[2], rtol=RTOL[dtype], atol=RTOL[dtype] * scale)
    # and it trained: every layer moved by far more than the tolerance
    start = _Packed(net).params
    assert np.abs(want[2] - start).max() > 1e3 * RTOL[dtype] * scale


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("calls", [2, 7])
def test_gram_state_carries_over_calls_bitwise(dtype, calls):
    # The driver runs chunks of epochs; the Gram state continues in the scratch, so
    # any split gives exactly the numbers of one call.
    x, y, ws, bs = _problem([96, 24, 16, 4], 40, seed=6, dtype=dtype)
    net = check_network(x, y, ws, bs, "tanh", "mse")
    one = _train(net, True, epochs=21, lr=1e-2)
    split = _train(net, True, epochs=21, lr=1e-2, calls=calls)
    assert one[0] == split[0] == 21
    np.testing.assert_array_equal(split[1], one[1])
    np.testing.assert_array_equal(split[2], one[2])


def test_chunks_and_hooks_do_not_change_the_numbers_of_the_gram_path():
    # A callback after every third epoch splits the run into chunks: bitwise the same
    # history and weights as one uninterrupted call.
    x, y, ws, _ = _problem([1000, 100, 10], 64, seed=1, dtype=np.float64)
    a, b = [w.copy() for w in ws], [w.copy() for w in ws]
    h1 = fastnn.train(x, y, a, lr=1e-3, epochs=40)
    h2 = fastnn.train(x, y, b, lr=1e-3, epochs=40, callback=lambda e, v: None, callback_every=3)
    np.testing.assert_array_equal(h1, h2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert h1[-1] < h1[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu2_shape_matches_the_reference_through_the_public_api(dtype):
    # fastnn.train on the seed shape (64 x 1000 -> 100 -> 10) takes the Gram path and
    # agrees with the NumPy loop, over several of the driver's chunks.
    x, y, ws, _ = _problem([1000, 100, 10], 64, seed=0, dtype=dtype)
    ws = [w * np.sqrt(w.shape[0]).astype(dtype) for w in ws]  # seed scale: standard normal
    mine, ref = [w.copy() for w in ws], [w.copy() for w in ws]
    h = fastnn.train(x, y, mine, lr=1e-6, epochs=60)
    h_ref = reference.train(x, y, ref, lr=1e-6, epochs=60)
    np.testing.assert_allclose(h, h_ref, rtol=RTOL[dtype])
    for a, b in zip(mine, ref):
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * np.abs(b).max())
    assert h[-1] < 1e-2 * h[0]


def test_gram_path_stops_at_the_same_epoch_on_divergence():
    # lr far too big: the loss overflows. The Gram path must stop at the same epoch with
    # w1 updated through that epoch, as the per-epoch path leaves it.
    x, y, ws, bs = _problem([96, 24, 8], 40, seed=4, dtype=np.float64)
    net = check_network(x, y, ws, bs, "identity", "sse")
    got = _train(net, True, epochs=200, lr=0.5)
    want = _train(net, False, epochs=200, lr=0.5)
    assert 0 < got[0] == want[0] < 200
    np.testing.assert_array_equal(np.isfinite(got[2]), np.isfinite(want[2]))
    np.testing.assert_array_equal(got[1][:got[0]] > 0, want[1][:want[0]] > 0)
    with pytest.raises(fastnn.DivergenceError) as info:
        fastnn.train(x, y, [w.copy() for w in ws], [b.copy() for b in bs],
                     activation="identity", lr=0.5, epochs=200)
    assert info.value.epoch == want[0]


def test_a_missing_w1_update_would_be_caught():
    # The tolerance is far below what an error in the algebra does: dropping the
    # final w1 update (training w1 not at all) moves the result by more than 1e-3.
    x, y, ws, bs = _problem([96, 24, 8], 40, seed=3, dtype=np.float64)
    net = check_network(x, y, ws, bs, "relu", "sse")
    want = _train(net, False, epochs=30, lr=1e-3)[2]
    frozen = want.copy()
    n_w1 = ws[0].size
    frozen[:n_w1] = _Packed(net).params[:n_w1]
    assert np.abs(frozen - want).max() > 1e-3 * np.abs(want).max()
