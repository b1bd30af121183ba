"""print_every, callback and progress (issue 5, "In the API").

Small networks only: every train call here takes milliseconds once the
kernels are compiled.
"""

import sys

import numpy as np
import pytest

import fastnn
from fastnn import reference

EPOCHS = 23


def make_net(dtype=np.float64, biases=True, rows=30, widths=(4, 5, 3, 2), seed=0):
    """A small, well-conditioned network: data, weights and biases from one seeded rng."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, widths[0]))
    y = rng.standard_normal((rows, widths[-1]))
    weights = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
               for a, b in zip(widths, widths[1:])]
    bias = [(0.1 * rng.standard_normal((1, b))).astype(dtype) for b in widths[1:]] if biases else None
    return x, y, weights, bias


def copies(weights, biases):
    return [w.copy() for w in weights], None if biases is None else [b.copy() for b in biases]


def params(weights, biases):
    return list(weights) + list(biases or [])


def run(net, **kwargs):
    """Train fresh copies of net's parameters; returns (history, trained params)."""
    x, y, weights, biases = net
    w, b = copies(weights, biases)
    kwargs.setdefault("lr", 0.01)
    kwargs.setdefault("epochs", EPOCHS)
    history = fastnn.train(x, y, w, b, **kwargs)
    return history, params(w, b)


def assert_bitwise(result, expected):
    (h1, p1), (h2, p2) = result, expected
    assert h1.dtype == np.float64 and h1.shape == h2.shape
    np.testing.assert_array_equal(h1, h2)
    for a, b in zip(p1, p2):
        assert a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def net():
    return make_net()


# ----------------------------------------------------------------------------- print_every

@pytest.mark.parametrize("every", [1, 3, 7, EPOCHS - 1, EPOCHS, 100])
def test_print_every_prints_epoch_and_loss_like_the_seeds(net, every, capsys):
    history, _ = run(net, print_every=every)
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    # the seeds' `if t % every == 0: print(t, loss)`
    assert [int(line.split()[0]) for line in lines] == list(range(0, EPOCHS, every))
    for line in lines:
        epoch, loss = line.split()  # exactly two fields
        assert float(loss) == history[int(epoch)]  # printed at full precision


def test_print_every_none_prints_nothing(net, capsys):
    run(net)
    assert capsys.readouterr() == ("", "")


def test_print_every_stops_with_the_callback(net, capsys):
    history, _ = run(net, print_every=2, callback=lambda epoch, loss: epoch != 8)
    out = capsys.readouterr().out
    assert len(history) == 9
    assert [int(line.split()[0]) for line in out.splitlines()] == [0, 2, 4, 6, 8]


# ----------------------------------------------------------------------------- callback

@pytest.mark.parametrize("every", [1, 2, 5, EPOCHS, EPOCHS + 10])
def test_callback_epochs_and_losses(net, every):
    calls = []
    history, _ = run(net, callback=lambda epoch, loss: calls.append((epoch, loss)),
                     callback_every=every)
    assert len(history) == EPOCHS  # returning None never stops
    expected = [(e, history[e]) for e in range(EPOCHS) if (e + 1) % every == 0]
    assert calls == expected
    for epoch, loss in calls:
        assert type(epoch) is int and type(loss) is float


@pytest.mark.parametrize("every, stop_after_calls", [(1, 1), (1, 10), (3, 2), (4, 5), (EPOCHS, 1)])
def test_callback_false_stops_after_that_epoch(net, every, stop_after_calls):
    calls = []

    def callback(epoch, loss):
        calls.append(epoch)
        return len(calls) < stop_after_calls and None  # None, then False

    history, trained = run(net, callback=callback, callback_every=every)
    stop_epoch = every * stop_after_calls - 1
    assert calls[-1] == stop_epoch and len(calls) == stop_after_calls
    assert len(history) == stop_epoch + 1
    # the weights are exactly those of a run of that many epochs
    assert_bitwise((history, trained), run(net, epochs=stop_epoch + 1))


def test_callback_true_or_truthy_does_not_stop(net):
    for value in (True, 1, "stop?", 0.0):
        history, _ = run(net, callback=lambda epoch, loss: value)
        assert len(history) == EPOCHS


def test_callback_numpy_false_stops(net):
    # `return loss_array.min() > tol` gives numpy.bool_, not bool; it must stop too
    history, _ = run(net, callback=lambda epoch, loss: np.bool_(epoch < 5))
    assert len(history) == 6


def test_callback_exception_propagates_and_weights_hold_that_epoch(net):
    x, y, weights, biases = net
    w, b = copies(weights, biases)

    def callback(epoch, loss):
        if epoch == 6:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        fastnn.train(x, y, w, b, lr=0.01, epochs=EPOCHS, callback=callback)
    _, expected = run(net, epochs=7)
    for a, e in zip(params(w, b), expected):
        assert a.tobytes() == e.tobytes()


EDITS = {  # path: (network, train arguments); each takes the path its name says
    "generic": (dict(widths=(4, 5, 3, 2)), dict(lr=0.01)),
    "minibatch-adam": (dict(widths=(4, 5, 3, 2)), dict(batch_size=7, shuffle=True)),
    "one-row": (dict(widths=(4, 5, 3, 2), biases=False), dict(lr=0.01, batch_size=1)),
    "gram": (dict(widths=(40, 6, 2), rows=8, biases=False), dict(lr=0.01)),
}


def _change(which, w, b):
    if which == "first-layer":
        w[0][...] *= 0.5
        w[0][0, 0] = 0.0
    else:  # the last layer and every bias: on the Gram path, all but its carried layer
        w[-1][...] *= 0.5
        for a in b or []:
            a[...] += 0.1


@pytest.mark.parametrize("which", ["first-layer", "last-layer-and-biases"])
@pytest.mark.parametrize("path", list(EDITS))
def test_callback_changes_to_the_arrays_are_trained_on(path, which):
    """A callback that changes the weights (a clip, a mask) is obeyed: the run equals
    training to that epoch, changing the arrays, and training on in a second call
    (the same optimizer object and row-order stream continue). Before, the next chunk
    started from fastnn's own copy and overwrote the change."""
    shape, kw = EDITS[path]
    net = make_net(**shape)
    x, y, weights, biases = net
    at = 4

    def optimizer():
        return {"optimizer": fastnn.Adam(0.01)} if "lr" not in kw else {}

    w, b = copies(weights, biases)
    seed = np.random.default_rng(3)

    def callback(epoch, loss):
        if epoch == at:
            _change(which, w, b)
    history = fastnn.train(x, y, w, b, epochs=EPOCHS, callback=callback, seed=seed,
                           **kw, **optimizer())
    w2, b2 = copies(weights, biases)
    seed, opt = np.random.default_rng(3), optimizer()
    first = fastnn.train(x, y, w2, b2, epochs=at + 1, seed=seed, **kw, **opt)
    _change(which, w2, b2)
    rest = fastnn.train(x, y, w2, b2, epochs=EPOCHS - at - 1, seed=seed, **kw, **opt)
    expected = (np.concatenate([first, rest]), params(w2, b2))
    if path == "gram" and which != "first-layer":
        # the run keeps its carried products of the unchanged first layer, where a second
        # call forms them anew: equal to rounding (measured 1.5e-16 history, 1.6e-16
        # parameters), not bitwise
        np.testing.assert_allclose(history, expected[0], rtol=1e-12)
        for a, e in zip(params(w, b), expected[1]):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-15)
    else:
        assert_bitwise((history, params(w, b)), expected)
    w3, b3 = copies(weights, biases)
    untouched = fastnn.train(x, y, w3, b3, epochs=EPOCHS, seed=np.random.default_rng(3), **kw,
                             **optimizer())
    assert not np.array_equal(history, untouched)  # the change mattered


@pytest.mark.parametrize("many", [False, True], ids=["train", "train_many"])
def test_a_callback_leaving_a_non_finite_value_is_named(many):
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 1))
    w = [rng.standard_normal((2, 3, 4) if many else (3, 4)),
         rng.standard_normal((2, 4, 1) if many else (4, 1))]

    def callback(epoch, loss):
        if epoch == 3:
            w[1][(1, 2, 0) if many else (2, 0)] = np.nan
    train = fastnn.train_many if many else fastnn.train
    with pytest.raises(ValueError, match=("network 1: " if many else "^")
                       + r"weights\[1\] must be finite before training, found nan at index "
                         r"\(2, 0\), left there by the callback"):
        train(x, y, w, lr=0.01, epochs=10, callback=callback)


def test_train_many_callback_changes_are_trained_on():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    w = [0.5 * rng.standard_normal((3, 4, 5)), 0.5 * rng.standard_normal((3, 5, 2))]
    got = [a.copy() for a in w]

    def callback(epoch, losses):
        if epoch == 2:
            got[0][1] *= 0.5
    history = fastnn.train_many(x, y, got, lr=0.02, epochs=9, callback=callback)
    expected = [a.copy() for a in w]
    first = fastnn.train_many(x, y, expected, lr=0.02, epochs=3)
    expected[0][1] *= 0.5
    rest = fastnn.train_many(x, y, expected, lr=0.02, epochs=6)
    np.testing.assert_array_equal(history, np.concatenate([first, rest], axis=1))
    for a, e in zip(got, expected):
        assert a.tobytes() == e.tobytes()


# ----------------------------------------------------------------------------- same numbers

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("schedule", [
    dict(),                                            # full batch
    dict(batch_size=7),                                # mini-batches, short last batch
    dict(batch_size=4, shuffle=True, seed=11),         # a new order per epoch
    dict(batch_size=1, loss="mse", activation="tanh"),
])
def test_hooks_and_chunking_do_not_change_the_numbers(dtype, schedule, monkeypatch, capsys,
                                                       chunked):
    net = make_net(dtype)
    plain = run(net, **schedule)
    hooks = [
        dict(callback=lambda e, l: None),                     # one chunk per epoch
        dict(callback=lambda e, l: None, callback_every=5),   # chunks end on multiples of 5
        dict(print_every=3),
        dict(progress=True),
    ]
    for hook in hooks:
        assert_bitwise(run(net, **schedule, **hook), plain)
    # tiny chunks from the driver's own sizing
    import fastnn._driver as driver
    monkeypatch.setattr(driver, "CHUNK_SECONDS", 1e-9)
    assert_bitwise(run(net, **schedule), plain)
    capsys.readouterr()
    # and the numbers are the reference loop's
    x, y, weights, biases = net
    w, b = copies(weights, biases)
    ref = reference.train(x, y, w, b, lr=0.01, epochs=EPOCHS, **schedule)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(plain[0], ref, rtol=rtol)
    for a, e in zip(plain[1], params(w, b)):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol)


def test_hooks_off_history_is_full(net):
    history, _ = run(net)
    assert history.shape == (EPOCHS,) and np.all(np.isfinite(history)) and np.all(history > 0)


# ----------------------------------------------------------------------------- progress

def _without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def test_progress_without_tqdm_is_a_plain_line_on_stderr(net, monkeypatch, capsys):
    _without_tqdm(monkeypatch)
    history, trained = run(net, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1  # one line, updated with \r
    last = err.rstrip("\n").split("\r")[-1]
    assert f"{EPOCHS}/{EPOCHS}" in last
    assert f"{history[-1]:.6g}" in last
    assert_bitwise((history, trained), run(net))


def test_progress_without_tqdm_stops_with_the_callback(net, monkeypatch, capsys):
    _without_tqdm(monkeypatch)
    history, _ = run(net, progress=True, callback=lambda e, l: e < 4)
    err = capsys.readouterr().err
    assert len(history) == 5
    assert f"5/{EPOCHS}" in err.split("\r")[-1] and err.endswith("\n")


def test_progress_with_tqdm(net, capsys):
    pytest.importorskip("tqdm")
    history, trained = run(net, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{EPOCHS}/{EPOCHS}" in err
    assert_bitwise((history, trained), run(net))


# ----------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("kwargs, error, name", [
    (dict(print_every=0), ValueError, "print_every"),
    (dict(print_every=-2), ValueError, "print_every"),
    (dict(print_every=2.5), TypeError, "print_every"),
    (dict(print_every="10"), TypeError, "print_every"),
    (dict(print_every=True), TypeError, "print_every"),
    (dict(callback="print"), TypeError, "callback"),
    (dict(callback=3), TypeError, "callback"),
    (dict(callback=lambda e, l: None, callback_every=0), ValueError, "callback_every"),
    (dict(callback=lambda e, l: None, callback_every=-1), ValueError, "callback_every"),
    (dict(callback=lambda e, l: None, callback_every=1.0), TypeError, "callback_every"),
    (dict(callback_every=0), ValueError, "callback_every"),
    (dict(progress="yes"), TypeError, "progress"),
    (dict(progress=1), TypeError, "progress"),
    (dict(progress=None), TypeError, "progress"),
])
def test_bad_hook_arguments(net, kwargs, error, name):
    x, y, weights, biases = net
    w, b = copies(weights, biases)
    with pytest.raises(error, match=name):
        fastnn.train(x, y, w, b, lr=0.01, epochs=3, **kwargs)
    for a, e in zip(params(w, b), params(weights, biases)):  # nothing was trained
        np.testing.assert_array_equal(a, e)


def test_callback_every_none_with_a_callback_is_clear(net):
    # either accepted, or rejected by an error that names the argument (not a bare
    # "unsupported operand" from inside the driver)
    x, y, weights, biases = net
    w, b = copies(weights, biases)
    try:
        fastnn.train(x, y, w, b, lr=0.01, epochs=3, callback=lambda e, l: None,
                     callback_every=None)
    except (TypeError, ValueError) as exc:
        assert "callback_every" in str(exc)


def test_epochs_is_an_upper_bound_memory_follows_the_epochs_run(net):
    # 10**12 epochs with a callback that stops at epoch 4: the history is grown chunk by
    # chunk (preallocating it would need 7.3 TiB), so the call returns 4 losses
    import tracemalloc
    x, y, weights, biases = net
    weights, biases = copies(weights, biases)
    stops = []
    tracemalloc.start()
    try:
        history = fastnn.train(x, y, weights, biases, lr=0.01, epochs=10**12,
                               callback=lambda e, loss: stops.append(e) or e < 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(history) == 4 and stops == [0, 1, 2, 3]
    assert peak < 2**20, f"{peak} bytes traced"
