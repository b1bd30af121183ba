"""The special paths (kernels/sample.py, kernels/gram.py) against the generic one.

The driver picks a path per run (fastnn/_state.py): one-row plain SGD on layers
of at most 8 units takes the sample path, full-batch plain SGD on wide data (rows
at most half the input features, a first layer for BLAS) the Gram path, anything
else the generic path. Each special path computes what the generic one does,
rounded differently: forcing the generic path (monkeypatching the choice) must
give the same numbers within the tolerances of helpers.py. Measured here: the Gram
path differs from the generic one by at most 5e-16 (float64) / 4e-7 (float32)
relative over 30 epochs, the sample path by 3e-16 / 2e-7, against a 1-ulp spread of
the initial weights of 4e-16 / 2e-7; a missing w1 update moves the result by > 1e-3.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn
from fastnn import _state
from fastnn._validate import check_network
from fastnn.optim import resolve
from helpers import RTOL, assert_moved, assert_params_close, compare, copies, run

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)
DTYPES = [pytest.param(F64, id="f64"), pytest.param(F32, id="f32")]
SAMPLE, GRAM, GENERIC = (True, None, None), (None, True, None), (None, None, True)


def problem(widths, rows, dtype, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((rows, widths[0])), rng.standard_normal((rows, widths[-1]))
    w = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths, widths[1:])]
    b = [0.1 * rng.standard_normal(n) for n in widths[1:]] if bias else None
    cast = lambda arrays: None if arrays is None else [a.astype(dtype) for a in arrays]  # noqa: E731
    return x.astype(dtype), y.astype(dtype), cast(w), cast(b)


def path_of(x, y, w, b, loss="sse", lr=0.01, optimizer=None, **setup):
    net = check_network(x, y, w, b, "relu", loss)
    opt = resolve(None if optimizer else lr, optimizer)
    return _state.Run(net, opt, _state.Setup(**setup)).path


@pytest.fixture
def generic_only(monkeypatch):
    """Every run takes the generic path."""
    monkeypatch.setattr(_state.KG, "gram_pays", lambda *args: False)
    monkeypatch.setattr(_state.K.sample, "SMALL", 0)


def test_the_driver_picks_the_path():
    tiny = problem([5, 4, 4, 1], 30, F64)
    wide = problem([96, 24, 8], 40, F64)
    assert path_of(*tiny, batch_size=1) == SAMPLE
    assert path_of(tiny[0], (tiny[1] > 0) * 1.0, *tiny[2:], batch_size=1,
                   loss="sigmoid_bce") == SAMPLE
    assert path_of(*tiny, batch_size=2) == GENERIC
    assert path_of(*tiny, batch_size=1, optimizer=fastnn.Adam()) == GENERIC
    assert path_of(*problem([5, 9, 1], 30, F64), batch_size=1) == GENERIC  # a layer of 9
    assert path_of(*wide) == GRAM
    assert path_of(*wide, in_order=False) == GENERIC  # shuffled rows
    assert path_of(*wide, batch_size=20) == GENERIC
    assert path_of(*wide, optimizer=fastnn.SGD(0.01, momentum=0.9)) == GENERIC
    assert path_of(*wide, validation=wide[:2]) == GENERIC
    assert path_of(*problem([96, 24, 8], 49, F64)) == GENERIC  # rows > half the features
    assert path_of(*problem([96, 4, 8], 40, F64)) == GENERIC  # first layer too small for BLAS


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "identity"])
@pytest.mark.parametrize("loss", ["sse", "mse", "sigmoid_bce"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_sample_path_trains_like_the_generic_path(dtype, activation, loss, bias, monkeypatch):
    x, y, w, b = problem([5, 7, 3, 2], 23, dtype, seed=5, bias=bias)
    if loss == "sigmoid_bce":
        y = (y > 0).astype(dtype)
    kw = dict(activation=activation, loss=loss, lr=0.02, epochs=12, batch_size=1,
              shuffle=True, seed=3)
    assert path_of(x, y, w, b, loss=loss, batch_size=1) == SAMPLE
    h, p = run(fastnn.train, x, y, w, b, **kw)
    monkeypatch.setattr(_state.K.sample, "SMALL", 0)
    h_generic, p_generic = run(fastnn.train, x, y, w, b, **kw)
    np.testing.assert_allclose(h, h_generic, rtol=RTOL[dtype])
    assert_params_close(p, p_generic, RTOL[dtype])
    assert_moved(copies(w) + copies(b or []), p_generic, RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("widths", [[96, 24, 8], [96, 24, 16, 4]])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "identity"])
@pytest.mark.parametrize("loss", ["sse", "mse"])
def test_gram_path_trains_like_the_generic_path(dtype, widths, activation, loss, monkeypatch):
    x, y, w, b = problem(widths, 40, dtype, seed=3, bias=len(widths) == 4)
    assert path_of(x, y, w, b) == GRAM
    kw = dict(activation=activation, loss=loss, lr=1e-3, epochs=30)
    h, p = run(fastnn.train, x, y, w, b, **kw)
    monkeypatch.setattr(_state.KG, "gram_pays", lambda *args: False)
    h_generic, p_generic = run(fastnn.train, x, y, w, b, **kw)
    np.testing.assert_allclose(h, h_generic, rtol=RTOL[dtype])
    assert_params_close(p, p_generic, RTOL[dtype])
    assert_moved(copies(w) + copies(b or []), p_generic, RTOL[dtype])


def test_a_missing_w1_update_would_be_caught(generic_only):
    # the tolerance is far below an error in the Gram algebra: w1 left untrained moves
    # the result by more than 1e-3
    x, y, w, b = problem([96, 24, 8], 40, F64, seed=3)
    _, p = run(fastnn.train, x, y, w, b, lr=1e-3, epochs=30)
    assert np.abs(p[0] - w[0]).max() > 1e-3 * np.abs(p[0]).max()


def test_batches_split_for_small_blas_kernels_by_the_widest_blas_layer(monkeypatch):
    # where OpenBLAS has small-matrix kernels (products up to 100**3 multiply-adds), a batch
    # splits into even chunks whose BLAS products fit them, if that leaves 32 rows
    from fastnn.kernels import _blaslib
    monkeypatch.setattr(_blaslib, "SMALL_GEMM_MACS", _blaslib.SMALL_KERNEL_MACS)
    rows = lambda widths, batch: _state.chunk_rows(widths, F64, batch)  # noqa: E731
    assert rows([64, 64, 64], 244) == 244  # 64 * 64 * 244 <= 10**6
    assert rows([64, 64, 64], 256) == 128  # two chunks, not 244 + 12
    assert rows([64, 64, 64], 1000) == 200
    assert rows([20, 64, 64, 1], 256) == 128  # the widest layer decides
    assert rows([176, 176, 176], 512) == 32
    assert rows([176, 176, 176], 33) == 32  # 32 + 1: halves of 17 would be too few
    assert rows([200, 200, 200], 200) == 200  # 25 rows: too few to pay
    assert rows([1024, 8, 1], 200) == 200  # no layer goes through BLAS (small.py's loops)
    assert rows([8, 8, 8], 4000) == 4000
    monkeypatch.setattr(_blaslib, "SMALL_GEMM_MACS", 0)  # another core: no small kernels
    assert rows([64, 64, 64], 256) == 256


@pytest.mark.parametrize("dtype", DTYPES)
def test_batches_split_for_small_blas_kernels_train_like_the_reference(dtype, monkeypatch):
    # 64 -> 64 -> 64 in shuffled batches of 256 from 1000 rows: chunks of 128 (the last batch
    # 128 + 104) with the small-kernel rule on, whatever this machine's BLAS. 20 epochs, tanh,
    # mse. 1-ulp spread: float64 history 2.2e-16, parameters 5.4e-16; float32 1.3e-8 /
    # 2.4e-7. fastnn vs reference: float64 4.8e-16 / 4.3e-16, float32 1.8e-8 / 2.0e-7.
    from fastnn.kernels import _blaslib
    monkeypatch.setattr(_blaslib, "SMALL_GEMM_MACS", _blaslib.SMALL_KERNEL_MACS)
    assert _state.chunk_rows([64, 64, 64], dtype, 256) == 128
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1000, 64)).astype(dtype)
    y = np.tanh(x @ rng.standard_normal((64, 64)) / 8).astype(dtype)
    w = [(rng.standard_normal((64, 64)) / 8).astype(dtype) for _ in range(2)]
    b = [np.full(64, 0.1, dtype) for _ in range(2)]
    compare(x, y, w, b, activation="tanh", loss="mse", lr=0.05, epochs=20, batch_size=256,
            shuffle=True, seed=3, rtol=RTOL[dtype])


def test_chunks_and_hooks_do_not_change_the_numbers_of_the_gram_path():
    # the Gram state carries over the compiled calls: a callback every third epoch
    # splits the run, bitwise the same history and weights as one call
    x, y, w, _ = problem([1000, 100, 10], 64, F64, seed=1, bias=False)
    assert path_of(x, y, w, None) == GRAM
    h1, p1 = run(fastnn.train, x, y, w, lr=1e-3, epochs=40)
    h2, p2 = run(fastnn.train, x, y, w, lr=1e-3, epochs=40, callback=lambda e, v: None,
                 callback_every=3)
    np.testing.assert_array_equal(h1, h2)
    for u, v in zip(p1, p2):
        np.testing.assert_array_equal(u, v)
    assert h1[-1] < h1[0]


def test_gram_path_stops_at_the_same_epoch_on_divergence(monkeypatch):
    # lr far too big: the Gram path raises at the epoch the generic path does, and leaves
    # the weights of the epoch before (finite), as close to the generic path's as rounding
    x, y, w, b = problem([96, 24, 8], 40, F64, seed=4)
    kw = dict(activation="identity", lr=0.5, epochs=200)
    errors, params = [], []
    for force_generic in (False, True):
        if force_generic:
            monkeypatch.setattr(_state.KG, "gram_pays", lambda *args: False)
        ws, bs = copies(w), copies(b)
        with pytest.raises(fastnn.DivergenceError) as info:
            fastnn.train(x, y, ws, bs, **kw)
        errors.append(info.value)
        params.append(ws + bs)
    assert 0 < errors[0].epoch == errors[1].epoch < 200
    assert all(np.isfinite(p).all() for p in params[0])
    np.testing.assert_allclose(errors[0].history, errors[1].history, rtol=1e-6)


ONLY_WHAT_RUNS = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba.core import event

    compiled = []

    class Count(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__name__)

        def on_end(self, ev):
            pass

    event.register("numba:compile", Count())
    import fastnn
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    w = [rng.standard_normal((3, 4)) / 2, rng.standard_normal((4, 2)) / 2]
    fastnn.train(x, y, w, lr=0.01, epochs=2, batch_size=int(sys.argv[1]))
    run_epochs = fastnn.kernels.loop.run_epochs
    print(json.dumps({"compiled": compiled,
                      "signatures": [[str(t) for t in sig[:2]] for sig in run_epochs.signatures]}))
""")


@pytest.mark.parametrize("path", ["generic", "sample"])
def test_only_the_path_that_runs_is_compiled(tmp_path, path):
    # an empty cache, so that every kernel the run needs is compiled (and seen compiling)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    batch_size = {"generic": "5", "sample": "1"}[path]
    proc = subprocess.run([sys.executable, "-c", ONLY_WHAT_RUNS, batch_size], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    compiled = info["compiled"]
    assert "run_epochs" in compiled and "gram_sync" not in compiled, info
    if path == "generic":
        assert info["signatures"] == [["none", "none"]], info
        assert "network_backward" in compiled and "sample_epoch" not in compiled, info
    else:  # the one-row path: none of the generic path's layer kernels
        assert info["signatures"] == [["bool", "none"]], info
        assert "sample_epoch" in compiled, info
        assert not {"network_forward", "network_backward", "load_batch", "optimizer_update",
                    "loss_forward_backward"} & set(compiled), info
