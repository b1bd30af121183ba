"""train_loop's code paths: only what a network runs gets compiled, and it computes
exactly what the all-paths build computes.

``train_loop(..., sample, batched, small)`` leaves a path out of the compilation
when its flag is None; ``train_paths`` picks the flags for one training run
(one-sample steps, batches with small-layer loops, or batches with gemm only).
"""

import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from fastnn import kernels as K
from fastnn._driver import _Packed
from fastnn._validate import check_network

SAMPLE, GEMM, SMALL = (True, None, None, None), (None, True, None, None), (None, True, True, None)
GRAM, GRAM_SMALL = (None, True, None, True), (None, True, True, True)  # with the Gram path


@pytest.mark.parametrize("widths, batch, n_rows, expected", [
    ([1000, 100, 10], 64, 64, GRAM),     # relu2: 64 rows, both layers through BLAS
    ([1000, 1000, 10], 64, 64, GRAM),    # sigmoid2
    ([1000, 100, 10], 501, 501, GEMM),   # more rows than half the inputs: no Gram path
    ([1000, 4, 4, 1], 64, 64, SMALL),    # a small first layer: no Gram path
    ([1000, 100, 10], 64, 128, GEMM),    # two full batches
    ([1000, 100, 10], 64, 65, SMALL),    # the last batch of one row takes the small path
    ([1000, 100, 10], 1000, 30, GRAM_SMALL),  # 100 x 10 x 30 is below the BLAS threshold
    ([5, 4, 4, 1], 900, 900, SMALL),     # mlp3_gd
    ([5, 4, 4, 1], 1, 90, SAMPLE),       # mlp3_sgd
    ([1000, 100, 10], 64, 1, SAMPLE),    # a single row is a one-sample step
])
def test_train_paths_pick_what_runs(widths, batch, n_rows, expected):
    assert K.train_paths(widths, batch, n_rows) == expected
    assert K.gemm_only(widths, batch, n_rows) == (expected in (GEMM, GRAM))
    shuffled = K.train_paths(widths, batch, n_rows, in_order=False)
    assert shuffled == expected[:3] + (None,)  # the Gram path needs the rows in order
    assert (expected[3] is True) == (K.gram_size(widths, batch, n_rows) > 0)


def _problem(widths, n_rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, widths[0]))
    y = rng.standard_normal((n_rows, widths[-1]))
    ws = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths, widths[1:])]
    bs = [0.1 * rng.standard_normal(b) for b in widths[1:]]
    return x, y, ws, bs


def _run(net, batch, paths, order):
    n_rows = net.x.shape[0]
    packed = _Packed(net, K.workspace_size(net.widths, batch)
                     + K.gram_size(net.widths, batch, n_rows, in_order=order.size == 0))
    losses = np.zeros(order.shape[0] if order.size else 3)
    cfg = np.array([net.loss, batch, K.CHECK_LOSS], np.int64)
    status = K.train_loop(losses, packed.params, packed.work, packed.table, cfg, 0.01,
                          net.x, net.y, order, *paths)
    return status, losses, packed.params.copy()


@pytest.mark.parametrize("widths, n_rows, batch, shuffle, expected", [
    ([64, 32, 32], 40, 40, False, GEMM),
    ([64, 32, 32], 80, 40, True, GEMM),
    ([200, 64, 16], 40, 40, False, GRAM),
    ([200, 64, 4], 40, 40, False, GRAM_SMALL),
    ([200, 100, 10], 65, 64, False, SMALL),  # gemm batches, then one row: small loops
    ([5, 4, 4, 1], 30, 8, True, SMALL),      # with a last, partial batch of 6 rows
    ([5, 4, 4, 1], 30, 1, True, SAMPLE),
])
def test_pruned_paths_train_exactly_like_all_paths(widths, n_rows, batch, shuffle, expected):
    # Same arithmetic, only less code compiled: results must be bitwise equal to the
    # default build of train_loop (every path compiled, chosen at run time).
    x, y, ws, bs = _problem(widths, n_rows, seed=21)
    net = check_network(x, y, ws, bs, "relu", "mse")
    paths = K.train_paths(net.widths, batch, n_rows, in_order=not shuffle)
    assert paths == expected
    rng = np.random.default_rng(5)
    order = (np.array([rng.permutation(n_rows) for _ in range(3)]) if shuffle
             else np.empty((0, 0), np.int64))
    got = _run(net, batch, paths, order)
    want = _run(net, batch, (), order)
    assert got[0] == want[0] == 3
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    assert np.all(np.isfinite(got[1])) and got[1][0] > 0
    if paths[3]:  # the Gram path ran: without it the rounding differs, the values agree
        plain = _run(net, batch, paths[:3] + (None,), order)
        assert not np.array_equal(plain[2], got[2])
        np.testing.assert_allclose(plain[2], got[2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("widths, n_rows", [([64, 32, 32], 40), ([64, 32, 32], 4)])
def test_predict_without_small_layers_predicts_exactly_like_all_paths(widths, n_rows):
    # small=None sends every layer through gemm: the same products whenever gemm_only
    # holds (40 rows); with 4 rows the layers are small and gemm must still be right.
    x, y, ws, bs = _problem(widths, n_rows, seed=8)
    net = check_network(x, y, ws, bs, "relu", "mse")
    packed = _Packed(net, K.workspace_size(net.widths, n_rows, with_grad=False))
    got, want = (np.empty((n_rows, widths[-1])) for _ in range(2))
    K.predict_loop(got, packed.params, packed.work, packed.table, net.x, None)
    K.predict_loop(want, packed.params, packed.work, packed.table, net.x)
    if K.gemm_only(widths, n_rows, n_rows):
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.abs(want).max() > 0


def test_one_sample_path_refuses_batches():
    x, y, ws, bs = _problem([5, 4, 1], 10, seed=2)
    net = check_network(x, y, ws, bs, "relu", "mse")
    with pytest.raises(ValueError, match="batched=None needs cfg\\[BATCH\\] == 1"):
        _run(net, 4, SAMPLE, np.empty((0, 0), np.int64))


COMPILED_SCRIPT = """
import json, numpy as np, fastnn
from fastnn.kernels import layers, loop
# the small-layer loops, then what only batches use (sample_step is inlined: no dispatcher),
# then the Gram path
kernels = (layers._combine_rows, layers._outer_update, layers.gemm,
           layers.loss_forward_backward, layers.activation_forward, loop._gram_step)
def compiled():
    return [len(k.signatures) for k in kernels]
rng = np.random.default_rng(0)
out = {}
x, y = rng.standard_normal((64, 200)), rng.standard_normal((64, 10))
w = [rng.standard_normal((200, 100)) / 15, rng.standard_normal((100, 10)) / 10]
fastnn.train(x[:9], y[:9], w, lr=1e-4, epochs=2, batch_size=1)
out["sample"] = compiled()
fastnn.train(x, y, w, lr=1e-4, epochs=2, shuffle=True, seed=1)  # every layer through gemm
fastnn.predict(x, w)
out["sample+gemm"] = compiled()
fastnn.train(x[:9], y[:9], w, lr=1e-4, epochs=2, shuffle=True, seed=1)  # 9 rows: small layers
out["sample+gemm+small"] = compiled()
fastnn.train(x, y, w, lr=1e-4, epochs=2)            # 64 rows of 200 in order: Gram path
out["all"] = compiled()
print(json.dumps(out))
"""


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compiled kernels only")
def test_only_the_paths_that_run_are_compiled(tmp_path):
    # An empty cache directory, so that every kernel a run needs is compiled here
    # (cached code would load without compiling its callees at all).
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", COMPILED_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # signatures of [_combine_rows, _outer_update, gemm, loss_forward_backward,
    # activation_forward, _gram_step] after each run
    assert out["sample"] == [0, 0, 0, 0, 0, 0], out
    assert out["sample+gemm"] == [0, 0, 1, 1, 1, 0], out
    assert out["sample+gemm+small"] == [1, 1, 1, 1, 1, 0], out
    assert out["all"] == [1, 1, 1, 1, 1, 1], out  # the check sees compilations
