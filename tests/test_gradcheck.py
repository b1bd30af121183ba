"""fastnn.gradcheck: sound where finite differences are unreliable, never a pass on broken input.

gradcheck reports max_i |d_i - g_i| / max_i |g_i| (d: Richardson-extrapolated central
differences of the NumPy loss, g: the compiled gradient), stepping off ReLU kinks.
Measured: correct gradients give at most 2.3e-9 (the README's relu2 network, randn
or scaled weights, samples=200), 6.2e-10 over every activation x loss on small
networks; wrong gradients (one layer's gradient 1% off, a missing activation
derivative, a missing bias term) give more than 1e-3. Thresholds here: 1e-6 for a
pass, 1e-3 for a caught error.
"""

import warnings

import numpy as np
import pytest

import fastnn
from fastnn import _gradcheck

ACTIVATIONS = ["relu", "sigmoid", "tanh", "identity"]
LOSSES = ["sse", "mse", "softmax_ce", "sigmoid_bce"]


def make_net(widths=(4, 6, 5, 3), rows=12, seed=0, loss="sse", biases=True, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, widths[0]))
    y = rng.standard_normal((rows, widths[-1]))
    if loss == "softmax_ce":
        y = rng.integers(0, widths[-1], rows)
    elif loss == "sigmoid_bce":
        y = (y > 0) * 1.0
    w = [scale * rng.standard_normal((a, b)) for a, b in zip(widths, widths[1:])]
    b = [0.5 * rng.standard_normal(n) for n in widths[1:]] if biases else None
    return x, y, w, b


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("widths", [(4, 3), (4, 6, 3), (4, 6, 5, 3)], ids=["d1", "d2", "d3"])
def test_a_correct_gradient_passes(widths, activation, loss):
    x, y, w, b = make_net(widths, loss=loss, seed=len(widths))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a unit on a kink, skipped
        assert 0 <= fastnn.gradcheck(x, y, w, b, activation=activation, loss=loss) < 1e-6


@pytest.mark.parametrize("scale", [(1.0, 1.0), (0.03, 0.1)], ids=["randn", "scaled"])
def test_the_readme_network_passes(scale):
    # the README's relu2 network: the old check reported 6.7e-5 and 3.4e-2 here
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 1000)), rng.standard_normal((64, 10))
    w = [scale[0] * rng.standard_normal((1000, 100)), scale[1] * rng.standard_normal((100, 10))]
    assert fastnn.gradcheck(x, y, w, samples=200) < 1e-6


WRONG = {  # a bug in the compiled gradient, simulated on its output (flat: weights, biases)
    "layer 1% off": lambda g, sizes: g[:sizes[0]].__imul__(1.01),
    "last layer sign": lambda g, sizes: g[sum(sizes[:-1]):sum(sizes)].__imul__(-1.0),
    "bias missing": lambda g, sizes: g[sum(sizes):].__imul__(0.0),
}


@pytest.mark.parametrize("bug", list(WRONG))
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_a_wrong_gradient_is_caught(activation, loss, bug, monkeypatch):
    x, y, w, b = make_net(loss=loss, seed=3)
    sizes = [a.size for a in w]
    real = _gradcheck._analytic_gradient

    def wrong(net, packed):
        grads = real(net, packed)
        WRONG[bug](grads, sizes)
        return grads

    monkeypatch.setattr(_gradcheck, "_analytic_gradient", wrong)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert fastnn.gradcheck(x, y, w, b, activation=activation, loss=loss) > 1e-3


def test_a_missing_activation_derivative_is_caught(monkeypatch):
    # the analytic gradient computed as if the hidden activation were the identity
    x, y, w, b = make_net(seed=4)
    real = _gradcheck._analytic_gradient

    def no_derivative(net, packed):
        net.activations = [0] * len(net.activations)
        return real(net, packed)

    monkeypatch.setattr(_gradcheck, "_analytic_gradient", no_derivative)
    for activation in ("sigmoid", "tanh"):
        assert fastnn.gradcheck(x, y, w, b, activation=activation) > 1e-3


@pytest.mark.parametrize("case, message", [
    ("nan weight", "must be finite"),
    ("huge weights", "loss is not finite"),
])
def test_broken_input_is_an_error_not_a_pass(case, message):
    x, y, w, b = make_net(seed=5)
    if case == "nan weight":
        w[1][2, 3] = np.nan
    else:  # the loss overflows: nothing to check
        w = [a * 1e200 for a in w]
    before = [a.copy() for a in w]
    with pytest.raises(ValueError, match=message):
        fastnn.gradcheck(x, y, w, b, activation="tanh")
    for a, c in zip(w, before):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(samples=0), ValueError, "samples must be None or an int >= 1, found 0"),
    (dict(samples=-3), ValueError, "samples must be None or an int >= 1, found -3"),
    (dict(samples=2.5), TypeError, "samples must be None or an int >= 1, found float"),
    (dict(eps=0), ValueError, "eps must be finite and > 0, found 0"),
    (dict(eps=-1e-5), ValueError, "eps must be finite and > 0"),
    (dict(eps=float("nan")), ValueError, "eps must be finite and > 0"),
    (dict(eps="1e-5"), TypeError, "eps must be a real number, found str"),
    (dict(activation="softplus"), ValueError, "activation"),
    (dict(loss="l1"), ValueError, "loss"),
])
def test_bad_settings(kwargs, error, message):
    x, y, w, b = make_net(seed=6)
    with pytest.raises(error, match=message):
        fastnn.gradcheck(x, y, w, b, **kwargs)


def test_a_result_that_cannot_be_computed_is_inf():
    # the loss is finite at w but overflows one step away: the difference is not finite
    x, y = np.ones((1, 1)), np.zeros((1, 1))
    w = [np.array([[np.sqrt(np.finfo(np.float64).max) * (1 - 4e-6)]])]
    assert np.isfinite(np.square(w[0]).sum())
    assert fastnn.gradcheck(x, y, w, activation="identity") == np.inf


def kinked_net():
    """Unit 0 of the hidden layer has pre-activation exactly 0 on row 0 and is negative on
    every other row: its bias sits on the kink, where the loss has no derivative."""
    x = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0], [1.5, 1.5]])
    y = np.array([[1.0], [0.0], [2.0], [1.0]])
    w = [np.array([[-1.0, 0.5], [-1.0, 0.25]]), np.array([[2.0], [1.0]])]
    b = [np.array([0.0, 0.5]), np.array([0.25])]
    return x, y, w, b


def test_a_parameter_on_a_kink_is_skipped_with_a_warning():
    x, y, w, b = kinked_net()
    with pytest.warns(RuntimeWarning, match="1 of 9 parameters sit on a ReLU kink"):
        assert fastnn.gradcheck(x, y, w, b, activation="relu") < 1e-6
    with pytest.warns(RuntimeWarning, match="1 of 1 parameters"):  # nothing left to check
        # bias[0][0] is parameter 6 (weights first: 4 + 2)
        n = 9
        for seed in range(200):
            index = np.random.default_rng(seed).choice(n, 1, replace=False)
            if index[0] == 6:
                break
        assert np.isnan(fastnn.gradcheck(x, y, w, b, activation="relu", samples=1, seed=seed))
    b[0][0] = -1e-3  # off the kink: every parameter is checked, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fastnn.gradcheck(x, y, w, b, activation="relu") < 1e-6


def test_steps_shrink_near_a_kink():
    # a unit 1e-7 from its kink: the default step (1e-5) would cross it, a smaller one is
    # taken and the check still passes
    x, y, w, b = kinked_net()
    b[0][0] = -1e-7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fastnn.gradcheck(x, y, w, b, activation="relu") < 1e-6


def test_nothing_is_modified_and_float32_is_checked_in_float64():
    x, y, w, b = make_net(seed=7)
    x32, w32, b32 = x.astype(np.float32), [a.astype(np.float32) for a in w], [
        a.astype(np.float32) for a in b]
    for args in [(x, y, w, b), (x32, y, w32, b32)]:
        before = [a.copy() for a in (args[0], args[1], *args[2], *args[3])]
        err = fastnn.gradcheck(*args, activation="sigmoid", loss="sse")
        after = (args[0], args[1], *args[2], *args[3])
        for a, c in zip(after, before):
            assert a.dtype == c.dtype and a.tobytes() == c.tobytes()
        assert err < 1e-6


def test_read_only_arrays_and_seeded_samples():
    x, y, w, b = make_net(seed=8)
    for a in (x, y, *w, *b):
        a.flags.writeable = False
    one = fastnn.gradcheck(x, y, w, b, activation="tanh", samples=5, seed=1)
    two = fastnn.gradcheck(x, y, w, b, activation="tanh", samples=5, seed=1)
    assert one == two and 0 <= one < 1e-6
