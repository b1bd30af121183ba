"""Validation and early stopping (issue 17).

``train(..., validation=(x_val, y_val))`` returns ``fastnn.History(loss, val_loss, best_epoch,
stopped_early)``; without it, the loss array as before. ``early_stopping=k`` stops after k
epochs without a better validation loss and leaves the weights and the optimizer state at the
best epoch: bitwise those of a run of best_epoch + 1 epochs.

Tolerances: rtol 1e-9 (float64) / 1e-4 (float32) as elsewhere; measured spreads (reference rerun
from initial parameters moved by +-1 ulp) next to each test. Which epoch is best is compared
with the reference only where the two lowest validation losses are far apart relative to the
tolerance (a near tie may be broken either way by rounding alone); the guard is asserted, so
it cannot silently skip.
"""

import numpy as np
import pytest

import fastnn
from fastnn import reference
from helpers import (DTYPES, F32, F64, MODES, RTOL, assert_history_close, assert_params_close,
                     buffers_of, copies, run_with)

LOSSES = ["sse", "mse", "softmax_ce", "sigmoid_bce"]
LR = {"sse": 0.0025, "mse": 0.0125, "softmax_ce": 0.125, "sigmoid_bce": 0.125}
OPTIMIZERS = {
    "lr": None,
    "sgd-momentum": lambda loss: fastnn.SGD(LR[loss] / 4, momentum=0.75),
    "adam": lambda loss: fastnn.Adam(0.005),
}


def overfit_problem(loss, dtype, rows=20, seed=1):
    """A 4-6-3 tanh net whose validation loss first falls, then rises: the training targets
    are 2.5 t (regression) or labels, the validation targets t or the labels with about a
    third changed, on the same inputs. Returns x, y, x_val, y_val, weights, biases."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 4))
    w = [rng.standard_normal((4, 6)) / 2, rng.standard_normal((6, 3)) / 3]
    b = [np.zeros(6), np.zeros((1, 3))]
    t = np.tanh(x @ rng.standard_normal((4, 3)))
    if loss in ("sse", "mse"):
        y, yv = 2.5 * t, t
    elif loss == "softmax_ce":
        c = np.argmax(t, axis=1)
        cv = c.copy()
        flip = rng.random(rows) < 0.35
        cv[flip] = (c[flip] + 1) % 3
        y, yv = np.eye(3)[c], np.eye(3)[cv]
    else:
        y = (t > 0).astype(float)
        yv = y.copy()
        flip = rng.random(y.shape) < 0.3
        yv[flip] = 1 - yv[flip]
    cast = lambda a: a.astype(dtype)  # noqa: E731
    return cast(x), cast(y), cast(x), cast(yv), [cast(a) for a in w], [cast(a) for a in b]


def train_kw(loss, opt, mode, **extra):
    kw = dict(MODES[mode], activation="tanh", loss=loss, **extra)
    make = None if OPTIMIZERS[opt] is None else (lambda: OPTIMIZERS[opt](loss))
    if make is None:
        kw["lr"] = LR[loss]
    return make, kw


def gap(val_loss):
    """Relative distance between the two lowest validation losses."""
    v = np.sort(val_loss[np.isfinite(val_loss)])
    return (v[1] - v[0]) / abs(v[0])


def assert_history_like_reference(h_fast, h_ref, rtol):
    assert isinstance(h_fast, fastnn.History) and isinstance(h_ref, fastnn.History)
    # fastnn's and the reference's validation losses differ by <= 5.8e-15 (float64) and
    # 3.5e-6 (float32) relative (measured below): a gap above rtol cannot be reversed by
    # rounding. (Measured: no float64 case and 13 of 54 float32 early-stopping cases fall
    # below it.)
    if gap(h_ref.val_loss) > rtol:
        assert h_fast.best_epoch == h_ref.best_epoch
        assert h_fast.stopped_early == h_ref.stopped_early
        assert len(h_fast.loss) == len(h_ref.loss)
        assert_history_close(h_fast.loss, h_ref.loss, rtol)
        assert_history_close(h_fast.val_loss, h_ref.val_loss, rtol)
        return True
    # a near tie: the epochs agree up to where the reference stopped, and fastnn's best epoch
    # is as good as the reference's within the tolerance
    n = min(len(h_fast.loss), len(h_ref.loss))
    assert_history_close(h_fast.val_loss[:n], h_ref.val_loss[:n], rtol)
    assert h_ref.val_loss[h_fast.best_epoch] <= h_ref.val_loss.min() * (1 + 10 * rtol)
    return False


# --------------------------------------------------------------------------- history

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("loss", LOSSES)
def test_history_matches_reference(loss, opt, mode, dtype, chunked):
    # 25 epochs with a validation set, no early stopping: the validation loss of every
    # epoch as the reference computes it, and the best epoch. Worst 1-ulp spread over these
    # cases: float64 loss 3.7e-15, validation loss 1.1e-15, parameters 3.4e-15; float32
    # 1.2e-6 / 6.3e-7 / 3.3e-6. fastnn vs reference: float64 9.3e-15 / 5.8e-15 / 1.3e-14,
    # float32 2.2e-6 / 3.5e-6 / 6.4e-6. (At 40 epochs Adam with batch_size=1 reaches 1.6e-5 in
    # float32, where the float32 reference is itself 1.3e-5 from the float64 run: 25 epochs
    # keep a margin of ~15.)
    x, y, xv, yv, w, b = overfit_problem(loss, dtype)
    make, kw = train_kw(loss, opt, mode, epochs=25, validation=(xv, yv))
    h_ref, p_ref, _ = run_with(reference.train, x, y, w, b, make, **kw)
    h_fast, p_fast, _ = run_with(fastnn.train, x, y, w, b, make, **kw)
    assert len(h_fast.loss) == len(h_fast.val_loss) == 25 and not h_fast.stopped_early
    assert_history_like_reference(h_fast, h_ref, RTOL[dtype])
    assert_history_close(h_fast.val_loss, h_ref.val_loss, RTOL[dtype])
    assert_params_close(p_fast, p_ref, RTOL[dtype])
    assert h_fast.best_epoch == int(np.argmin(h_fast.val_loss))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_validation_in_blocks(loss, dtype):
    # 300 validation rows: the compiled pass goes in blocks of 256 (sums add up, means are
    # weighted by rows). Spread and fastnn vs reference as in test_history_matches_reference.
    x, y, _, _, w, b = overfit_problem(loss, dtype)
    xv, _, _, yv, _, _ = overfit_problem(loss, dtype, rows=300, seed=9)
    make, kw = train_kw(loss, "lr", "k5", epochs=5, validation=(xv, yv))
    h_ref, p_ref, _ = run_with(reference.train, x, y, w, b, make, **kw)
    h_fast, p_fast, _ = run_with(fastnn.train, x, y, w, b, make, **kw)
    assert_history_close(h_fast.val_loss, h_ref.val_loss, RTOL[dtype])
    # and one block of all 300 rows through predict, by hand
    out = reference.predict(xv, p_ref[:2], p_ref[2:], activation="tanh").astype(np.float64)
    value, _ = reference.loss_forward_backward(out, yv.astype(np.float64), loss)
    assert h_ref.val_loss[-1] == pytest.approx(value, rel=RTOL[dtype])


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_history_fields(dtype, fn):
    x, y, xv, yv, w, b = overfit_problem("mse", dtype)
    h = fn(x, y, copies(w), copies(b), activation="tanh", loss="mse", lr=0.0125, epochs=25,
           validation=(xv, yv))
    assert type(h) is fastnn.History and h._fields == ("loss", "val_loss", "best_epoch",
                                                        "stopped_early")
    loss, val_loss, best_epoch, stopped_early = h  # a NamedTuple: unpacks
    assert loss.dtype == val_loss.dtype == np.float64 and loss.shape == val_loss.shape == (25,)
    assert type(best_epoch) is int and type(stopped_early) is bool and not stopped_early
    assert best_epoch == int(np.argmin(val_loss)) and np.isfinite(val_loss).all()
    # without validation: the loss array, as before
    h = fn(x, y, copies(w), copies(b), activation="tanh", loss="mse", lr=0.0125, epochs=25)
    assert type(h) is np.ndarray and h.shape == (25,)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_validation_does_not_change_training(opt, mode):
    # the same losses and weights, bitwise, with or without a validation set
    x, y, xv, yv, w, b = overfit_problem("softmax_ce", F64)
    make, kw = train_kw("softmax_ce", opt, mode, epochs=12)
    h_plain, p_plain, o_plain = run_with(fastnn.train, x, y, w, b, make, **kw)
    h_val, p_val, o_val = run_with(fastnn.train, x, y, w, b, make, validation=(xv, yv), **kw)
    np.testing.assert_array_equal(h_val.loss, h_plain, strict=True)
    for a, e in zip(p_val, p_plain):
        np.testing.assert_array_equal(a, e, strict=True)
    if o_plain is not None:
        assert o_plain.steps == o_val.steps


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_validation_labels_bitwise_equal_one_hot(dtype, fn):
    x, y, xv, yv, w, b = overfit_problem("softmax_ce", dtype)
    labels = np.argmax(yv, axis=1)
    kw = dict(activation="tanh", loss="softmax_ce", lr=0.125, epochs=15, early_stopping=3)
    h_rows, p_rows, _ = run_with(fn, x, y, w, b, validation=(xv, yv), **kw)
    h_labels, p_labels, _ = run_with(fn, x, y, w, b, validation=(xv, labels), **kw)
    for a, e in zip(h_labels, h_rows):
        np.testing.assert_array_equal(a, e, strict=True)
    for a, e in zip(p_labels, p_rows):
        np.testing.assert_array_equal(a, e, strict=True)


# --------------------------------------------------------------------------- early stopping

def steps_per_epoch(mode, rows=20):
    return -(-rows // MODES[mode].get("batch_size", rows))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("patience", [1, 4])
@pytest.mark.parametrize("mode", ["full", "k5", "shuffle-k4"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("loss", ["mse", "softmax_ce", "sigmoid_bce"])
def test_early_stopping_restores_the_best_epoch(loss, opt, mode, patience, dtype, chunked):
    # Stops after `patience` epochs without a better validation loss; the weights and the
    # optimizer (step count and buffers) are then bitwise those of a fresh run of
    # best_epoch + 1 epochs, with or without the validation set, and training on from both
    # gives the same bits. Against the reference (where the guard of
    # assert_history_like_reference holds: all 54 float64 cases, 41 of 54 float32): measured
    # loss / validation loss / parameters 2.5e-15 / 4.8e-15 / 1.2e-14 (float64), 1.7e-6 /
    # 3.5e-6 / 5.7e-6 (float32); spreads as in test_history_matches_reference.
    x, y, xv, yv, w, b = overfit_problem(loss, dtype)
    make, kw = train_kw(loss, opt, mode)
    h, p, o = run_with(fastnn.train, x, y, w, b, make, epochs=200, validation=(xv, yv),
                       early_stopping=patience, **kw)
    best = h.best_epoch
    assert h.stopped_early and len(h.loss) == len(h.val_loss) == best + 1 + patience < 200
    assert best == int(np.argmin(h.val_loss)) and best > 0
    assert np.all(h.val_loss[best + 1:] >= h.val_loss[best])
    for validation in ((xv, yv), None):
        extra = {} if validation is None else {"validation": validation}
        h_b, p_b, o_b = run_with(fastnn.train, x, y, w, b, make, epochs=best + 1, **extra, **kw)
        loss_b = h_b if validation is None else h_b.loss
        np.testing.assert_array_equal(loss_b, h.loss[:best + 1], strict=True)
        for a, e in zip(p, p_b):
            np.testing.assert_array_equal(a, e, strict=True)
        if o is not None:
            assert o.steps == o_b.steps == (best + 1) * steps_per_epoch(mode)
            np.testing.assert_array_equal(buffers_of(o), buffers_of(o_b), strict=True)
    h_ref, p_ref, o_ref = run_with(reference.train, x, y, w, b, make, epochs=200,
                                   validation=(xv, yv), early_stopping=patience, **kw)
    if assert_history_like_reference(h, h_ref, RTOL[dtype]):
        assert_params_close(p, p_ref, RTOL[dtype])
        if o is not None:
            assert o_ref.steps == o.steps
    if o is not None:  # both optimizers continue alike (shuffled runs: with a new seed)
        more = dict(kw, seed=99) if kw.get("shuffle") else kw
        h1 = fastnn.train(x, y, p[:2], p[2:], optimizer=o, epochs=3, **more)
        h2 = fastnn.train(x, y, p_b[:2], p_b[2:], optimizer=o_b, epochs=3, **more)
        np.testing.assert_array_equal(h1, h2, strict=True)
        for a, e in zip(p, p_b):
            np.testing.assert_array_equal(a, e, strict=True)


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
def test_early_stopping_without_running_out_of_patience(fn):
    # patience never runs out: all epochs run, stopped_early is False, and the weights are
    # still those of the best epoch (with their optimizer state)
    x, y, xv, yv, w, b = overfit_problem("mse", F64)
    make = lambda: fastnn.SGD(0.003, momentum=0.75)  # noqa: E731
    kw = dict(activation="tanh", loss="mse", batch_size=5)
    h, p, o = run_with(fn, x, y, w, b, make, epochs=40, validation=(xv, yv), early_stopping=100,
                       **kw)
    assert len(h.loss) == 40 and not h.stopped_early and 0 < h.best_epoch < 30
    h_b, p_b, o_b = run_with(fn, x, y, w, b, make, epochs=h.best_epoch + 1, **kw)
    for a, e in zip(p, p_b):
        np.testing.assert_array_equal(a, e, strict=True)
    assert o.steps == o_b.steps
    np.testing.assert_array_equal(buffers_of(o), buffers_of(o_b), strict=True)
    # and without early_stopping the weights are those of the last epoch
    h_all, p_all, _ = run_with(fn, x, y, w, b, make, epochs=40, validation=(xv, yv), **kw)
    h_40, p_40, _ = run_with(fn, x, y, w, b, make, epochs=40, **kw)
    for a, e in zip(p_all, p_40):
        np.testing.assert_array_equal(a, e, strict=True)


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
def test_ties_keep_the_first_best_epoch(fn):
    # Zero validation inputs and no biases: the network outputs 0 there whatever it learns,
    # so every epoch has the same validation loss. Only a strictly better loss counts: epoch 0
    # stays the best, training stops after `patience` more epochs, and the weights are those
    # after one epoch.
    x, y, _, yv, w, _ = overfit_problem("mse", F64)
    xv = np.zeros_like(x)
    make = lambda: fastnn.SGD(0.01, momentum=0.5)  # noqa: E731
    kw = dict(activation="tanh", loss="mse", batch_size=5)
    h, p, o = run_with(fn, x, y, w, None, make, epochs=50, validation=(xv, yv), early_stopping=3,
                       **kw)
    assert np.all(h.val_loss == h.val_loss[0])
    assert h.best_epoch == 0 and h.stopped_early and len(h.loss) == 4
    _, p1, o1 = run_with(fn, x, y, w, None, make, epochs=1, **kw)
    for a, e in zip(p, p1):
        np.testing.assert_array_equal(a, e, strict=True)
    assert o.steps == o1.steps == 4
    h, _, _ = run_with(fn, x, y, w, None, lr=0.0125, epochs=6, validation=(xv, yv), **kw)
    assert h.best_epoch == 0 and not h.stopped_early


def test_stopped_early_on_the_last_epoch_agrees_with_reference():
    x, y, xv, yv, w, b = overfit_problem("mse", F64)
    kw = dict(activation="tanh", loss="mse", lr=0.0125, batch_size=5, validation=(xv, yv),
              early_stopping=3)
    h, _, _ = run_with(fastnn.train, x, y, w, b, epochs=200, **kw)
    epochs = h.best_epoch + 1 + 3  # exactly where patience runs out
    h_fast, p_fast, _ = run_with(fastnn.train, x, y, w, b, epochs=epochs, **kw)
    h_ref, p_ref, _ = run_with(reference.train, x, y, w, b, epochs=epochs, **kw)
    assert h_fast.best_epoch == h_ref.best_epoch and len(h_fast.loss) == len(h_ref.loss)
    assert_params_close(p_fast, p_ref, 1e-9)
    assert h_fast.stopped_early == h_ref.stopped_early


def test_early_stopping_leaves_the_generator_after_the_epochs_run():
    x, y, xv, yv, w, b = overfit_problem("mse", F64)
    kw = dict(activation="tanh", loss="mse", lr=0.0125, batch_size=4, shuffle=True, epochs=200,
              validation=(xv, yv), early_stopping=2)
    states = []
    for fn in (reference.train, fastnn.train):
        gen = np.random.default_rng(3)
        h = fn(x, y, copies(w), copies(b), seed=gen, **kw)
        assert h.stopped_early and len(h.loss) < 200
        states.append(gen.bit_generator.state)
    expected = np.random.default_rng(3)
    for _ in range(len(h.loss)):  # one permutation per epoch run
        expected.permutation(x.shape[0])
    assert states[0] == expected.bit_generator.state  # the reference
    assert states[1] == expected.bit_generator.state  # fastnn


# --------------------------------------------------------------------------- hooks and chunks

@pytest.mark.parametrize("patience", [None, 2])
@pytest.mark.parametrize("mode", ["full", "k1", "shuffle-k4"])
def test_callbacks_and_chunks_do_not_change_the_numbers(mode, patience, capsys):
    # a callback every epoch or every 3 epochs, print_every and progress split the run into
    # compiled chunks; the History, the weights and the optimizer come out bitwise the same
    x, y, xv, yv, w, b = overfit_problem("sigmoid_bce", F64)
    make = lambda: fastnn.Adam(0.005)  # noqa: E731
    kw = dict(MODES[mode], activation="tanh", loss="sigmoid_bce", epochs=60, validation=(xv, yv),
              early_stopping=patience)
    h0, p0, o0 = run_with(fastnn.train, x, y, w, b, make, **kw)
    seen = []
    for hooks in (dict(callback=lambda e, loss: seen.append((e, loss))),
                  dict(callback=lambda e, loss: None, callback_every=3),
                  dict(print_every=7, progress=True)):
        h, p, o = run_with(fastnn.train, x, y, w, b, make, **hooks, **kw)
        for a, e in zip(h, h0):
            np.testing.assert_array_equal(a, e, strict=True)
        for a, e in zip(p, p0):
            np.testing.assert_array_equal(a, e, strict=True)
        assert o.steps == o0.steps
        np.testing.assert_array_equal(buffers_of(o), buffers_of(o0), strict=True)
    assert [e for e, _ in seen] == list(range(len(h0.loss)))
    np.testing.assert_array_equal([loss for _, loss in seen], h0.loss)
    capsys.readouterr()


def test_callback_stop_with_validation():
    # a callback that returns False ends training: the History of the epochs run; with
    # early_stopping the weights go back to the best epoch so far, without it they stay
    x, y, xv, yv, w, b = overfit_problem("mse", F64)
    kw = dict(activation="tanh", loss="mse", lr=0.0125, batch_size=5, validation=(xv, yv))
    stop = lambda e, loss: e < 25  # noqa: E731 - the last epoch run is 25
    h, p, _ = run_with(fastnn.train, x, y, w, b, epochs=100, callback=stop, **kw)
    assert len(h.loss) == len(h.val_loss) == 26 and not h.stopped_early
    h26, p26, _ = run_with(fastnn.train, x, y, w, b, epochs=26, **kw)
    for a, e in zip(h, h26):
        np.testing.assert_array_equal(a, e, strict=True)
    for a, e in zip(p, p26):
        np.testing.assert_array_equal(a, e, strict=True)
    h, p, _ = run_with(fastnn.train, x, y, w, b, epochs=100, callback=stop, early_stopping=50, **kw)
    assert len(h.loss) == 26 and not h.stopped_early and h.best_epoch < 25
    _, p_best, _ = run_with(fastnn.train, x, y, w, b, epochs=h.best_epoch + 1, **kw)
    for a, e in zip(p, p_best):
        np.testing.assert_array_equal(a, e, strict=True)


def test_divergence_carries_the_validation_history():
    # DivergenceError.val_history: the validation losses of the finite epochs, as a run of
    # exactly that many epochs gives them
    x, y, xv, yv, w, b = overfit_problem("mse", F64)
    kw = dict(activation="identity", loss="mse", batch_size=5)
    for fn in (fastnn.train, reference.train):
        with pytest.raises(fastnn.DivergenceError) as info, np.errstate(all="ignore"):
            fn(x, y, copies(w), copies(b), lr=0.6, epochs=100, validation=(xv, yv), **kw)
        e = info.value.epoch
        assert e >= 2 and info.value.val_history.shape == (e,)
        h, _, _ = run_with(fn, x, y, w, b, lr=0.6, epochs=e, validation=(xv, yv), **kw)
        np.testing.assert_array_equal(info.value.val_history, h.val_loss, strict=True)
        np.testing.assert_array_equal(info.value.history, h.loss, strict=True)


# --------------------------------------------------------------------------- bad input

def bad_validation_cases():
    x, y, xv, yv, w, b = overfit_problem("mse", F64, rows=6)

    def with_value(a, index, value):
        a = a.copy()
        a[index] = value
        return a

    labels = np.array([0, 1, 2, 0, 1, 2])
    return [
        # (id, loss, validation, early_stopping, exception, message)
        ("early-stopping-without-validation", "mse", None, 3, ValueError,
         r"^early_stopping needs validation=\(x_val, y_val\).*found validation=None"),
        ("early-stopping-zero", "mse", (xv, yv), 0, ValueError,
         r"^early_stopping must be None or an int >= 1, found 0"),
        ("early-stopping-negative", "mse", (xv, yv), -2, ValueError, r"^early_stopping must be"),
        ("early-stopping-bool", "mse", (xv, yv), True, TypeError,
         r"^early_stopping must be None or an int >= 1 .*found bool"),
        ("early-stopping-float", "mse", (xv, yv), 2.0, TypeError,
         r"^early_stopping must be .*found float"),
        ("early-stopping-str", "mse", (xv, yv), "3", TypeError,
         r"^early_stopping must be .*found str"),
        ("validation-array", "mse", np.stack([xv[:, :3], yv]), None, TypeError,
         r"^validation must be a pair \(x_val, y_val\)"),
        ("validation-triple", "mse", (xv, yv, yv), None, TypeError,
         r"^validation must be a pair \(x_val, y_val\), found a sequence of 3"),
        ("validation-x-only", "mse", (xv,), None, TypeError, r"^validation must be a pair"),
        ("x-val-columns", "mse", (xv[:, :3], yv), None, ValueError,
         r"^validation\[0\] \(x_val\) must have at least one row and 4 columns, "
         r"found shape \(6, 3\)"),
        ("x-val-1d", "mse", (xv[:, 0], yv), None, ValueError,
         r"^validation\[0\] \(x_val\) must be 2-D"),
        ("x-val-empty", "mse", (xv[:0], yv[:0]), None, ValueError,
         r"^validation\[0\] \(x_val\) must have at least one row"),
        ("y-val-columns", "mse", (xv, yv[:, :2]), None, ValueError,
         r"^validation\[1\] \(y_val\) must have 3 columns"),
        ("y-val-rows", "mse", (xv, yv[:5]), None, ValueError,
         r"^validation\[1\] \(y_val\) must have one row per row of x_val \(6\), found 5 rows"),
        ("x-val-complex", "mse", (xv.astype(complex), yv), None, TypeError,
         r"^validation\[0\] \(x_val\) must hold real numbers, found dtype complex128"),
        ("y-val-strings", "mse", (xv, np.full((6, 3), "a")), None, TypeError,
         r"^validation\[1\] \(y_val\) must hold real numbers"),
        ("x-val-nan", "mse", (with_value(xv, (2, 1), np.nan), yv), None, ValueError,
         r"^validation\[0\] \(x_val\) must be finite, found nan at index \(2, 1\)"),
        ("y-val-inf", "mse", (xv, with_value(yv, (4, 2), -np.inf)), None, ValueError,
         r"^validation\[1\] \(y_val\) must be finite, found -inf at index \(4, 2\)"),
        ("y-val-label-range", "softmax_ce", (xv, with_value(labels, 3, 3)), 2, ValueError,
         r"^validation\[1\] \(y_val\) as class labels .*found 3"),
        ("y-val-label-fraction", "softmax_ce", (xv, labels + 0.5), 2, ValueError,
         r"^validation\[1\] \(y_val\) as class labels .*non-integer"),
        ("y-val-rows-not-probabilities", "softmax_ce", (xv, np.full((6, 3), 0.5)), None, ValueError,
         r"^validation\[1\] \(y_val\) for softmax_ce must be probability rows"),
        ("y-val-bce-range", "sigmoid_bce", (xv, with_value(np.zeros((6, 3)), (1, 1), 1.25)), None,
         ValueError,
         r"^validation\[1\] \(y_val\) for sigmoid_bce must lie in \[0, 1\], found 1\.25"),
    ], (x, y, w, b)


BAD, BASE = bad_validation_cases()


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
@pytest.mark.parametrize("name, loss, validation, patience, exc, pattern", BAD,
                         ids=[c[0] for c in BAD])
def test_bad_validation_rejected(name, loss, validation, patience, exc, pattern, fn):
    # the right exception and message, and nothing modified: parameters, data, validation
    # arrays, and the state of an optimizer that trained these arrays before
    x, y, w, b = BASE[0].copy(), BASE[1].copy(), copies(BASE[2]), copies(BASE[3])
    if loss == "softmax_ce":
        y = np.eye(3)[[0, 1, 2, 2, 1, 0]]
    elif loss == "sigmoid_bce":
        y = np.eye(6, 3)
    opt = fastnn.Adam(0.01)
    fn(x, y, w, b, activation="tanh", loss=loss, optimizer=opt, epochs=2)
    if isinstance(validation, np.ndarray):
        parts = [validation]
    else:
        parts = [a for a in (validation or ()) if isinstance(a, np.ndarray)]
    arrays = [x, y] + w + b + parts
    snap = [a.copy() for a in arrays]
    steps, buffers = opt.steps, buffers_of(opt).copy()
    with pytest.raises(exc, match=pattern) as info:
        fn(x, y, w, b, activation="tanh", loss=loss, optimizer=opt, epochs=3,
           validation=validation, early_stopping=patience)
    assert not isinstance(info.value, ValueError if exc is TypeError else TypeError)
    for a, s in zip(arrays, snap):
        np.testing.assert_array_equal(a, s, strict=True)
    assert opt.steps == steps
    np.testing.assert_array_equal(buffers_of(opt), buffers, strict=True)


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
def test_validation_data_converted_like_training_data(fn):
    # lists, ints, another float dtype, Fortran order: the same as converting first, bitwise
    x, y, xv, yv, w, b = overfit_problem("mse", F32)
    kw = dict(activation="tanh", loss="mse", lr=0.0125, epochs=6)
    h0, p0, _ = run_with(fn, x, y, w, b, validation=(xv, yv), **kw)
    for form in (lambda a: a.astype(F64), lambda a: a.tolist(), np.asfortranarray,
                 lambda a: np.repeat(a, 2, axis=1)[:, ::2]):
        h, p, _ = run_with(fn, x, y, w, b, validation=[form(xv), form(yv)], **kw)
        for a, e in zip(h, h0):
            np.testing.assert_array_equal(a, e, strict=True)
        for a, e in zip(p, p0):
            np.testing.assert_array_equal(a, e, strict=True)
    assert h0.val_loss.dtype == np.float64
