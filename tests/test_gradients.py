"""Gradients: the reference against finite differences, fastnn against the
reference, and one step worked by hand (seed 004, In [12]-[14]).

Objective whose gradient a training step follows (issue 2):
  "sse": sum((y_pred - y)**2)
  "mse": sum((y_pred - y)**2) / (2 m)  (= loss * D_out / 2; gradient (y_pred - y) / m)
"""

from fractions import Fraction

import numpy as np
import pytest

import fastnn
from fastnn import reference

ACTIVATIONS = ["relu", "sigmoid", "tanh", "identity"]
WIDTHS = [3, 4, 5, 2]  # depth d uses WIDTHS[:d] + [2]


def net(depth, bias, seed=0, rows=7):
    rng = np.random.default_rng(100 * depth + 10 * bias + seed)
    widths = WIDTHS[:depth] + [2]
    x = rng.standard_normal((rows, widths[0]))
    y = rng.standard_normal((rows, 2))
    w = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths, widths[1:])]
    b = [0.3 * rng.standard_normal(n) for n in widths[1:]] if bias else None
    return x, y, w, b


def act(name, z):
    # written independently of fastnn.reference
    return {"relu": lambda: np.where(z > 0, z, 0.0), "sigmoid": lambda: 1 / (1 + np.exp(-z)),
            "tanh": lambda: np.tanh(z), "identity": lambda: z}[name]()


def forward(x, w, b, activation):
    """Every pre-activation and the output, in plain NumPy."""
    a, zs = x, []
    for i, wi in enumerate(w):
        z = a @ wi + (0 if b is None else b[i])
        zs.append(z)
        a = z if i == len(w) - 1 else act(activation, z)
    return zs, a


def objective(x, y, w, b, activation, loss):
    r = forward(x, w, b, activation)[1] - y
    return float(np.sum(r * r)) / (1 if loss == "sse" else 2 * x.shape[0])


def finite_differences(x, y, w, b, activation, loss, eps=1e-6):
    """Central differences of the objective for every parameter: [(dw, db)]."""
    out = []
    for i in range(len(w)):
        grads = []
        for p in (w[i], None if b is None else b[i]):
            if p is None:
                grads.append(None)
                continue
            g = np.empty_like(p)
            for idx in np.ndindex(p.shape):
                saved = p[idx]
                h = eps * max(1.0, abs(saved))
                p[idx] = saved + h
                up = objective(x, y, w, b, activation, loss)
                p[idx] = saved - h
                down = objective(x, y, w, b, activation, loss)
                p[idx] = saved
                g[idx] = (up - down) / (2 * h)
            grads.append(g)
        out.append(tuple(grads))
    return out


def assert_grads_close(actual, expected, rtol, what):
    # per array: max |a - e| <= rtol * max |e|, over every layer's weight and bias
    scale = max(float(np.max(np.abs(g))) for pair in expected for g in pair if g is not None)
    for i, (a_pair, e_pair) in enumerate(zip(actual, expected)):
        for kind, a, e in zip(("w", "b"), a_pair, e_pair):
            if e is None:
                continue
            a = np.asarray(a).reshape(e.shape)
            err = float(np.max(np.abs(a - e)))
            assert err <= rtol * scale, f"{what}: layer {i} grad_{kind} off by {err:.2e} (scale {scale:.2e})"


CASES = [(d, a, loss, bias) for d in (1, 2, 3) for a in ACTIVATIONS for loss in ("sse", "mse")
         for bias in (False, True) if d > 1 or a == "relu"]  # depth 1: no hidden activation
IDS = [f"d{d}-{a}-{loss}-{'bias' if bias else 'nobias'}" for d, a, loss, bias in CASES]


def smooth_point(x, w, b, activation):
    # ReLU is not differentiable at 0: make sure no hidden pre-activation is near a kink
    # (a step of h <= 1e-6 * max(1, |p|) moves z by far less than 1e-3 here)
    if activation == "relu":
        zs, _ = forward(x, w, b, activation)
        assert min(float(np.min(np.abs(z))) for z in zs[:-1] or [np.ones(1)]) > 1e-3


@pytest.mark.parametrize("depth, activation, loss, bias", CASES, ids=IDS)
def test_reference_gradient_matches_finite_differences(depth, activation, loss, bias):
    # Measured: max |analytic - FD| / max |gradient| <= 8.4e-10 over these cases (FD
    # rounding ~ u * objective / h); a wrong derivative (e.g. s instead of s(1 - s), a
    # missing 1/m, a dropped bias term) is off by >= 1e-2. rtol 1e-6.
    x, y, w, b = net(depth, bias)
    smooth_point(x, w, b, activation)
    value, grads = reference.loss_and_grad(x, y, w, b, activation=activation, loss=loss)
    r = forward(x, w, b, activation)[1] - y
    assert value == pytest.approx(float(np.sum(r * r)) / (1 if loss == "sse" else r.size), rel=1e-14)
    fd = finite_differences(x, y, w, b, activation, loss)
    assert_grads_close([(gw, gb if bias else None) for gw, gb in grads], fd, 1e-6, "reference")


@pytest.mark.parametrize("depth, activation, loss, bias", CASES, ids=IDS)
def test_compiled_gradient_matches_reference(depth, activation, loss, bias):
    # fastnn's gradient, read back through the public API: one full-batch epoch with
    # lr = 2**-12 moves every parameter by exactly lr * grad up to one rounding, so
    # (p0 - p1) / lr recovers grad to ~u * |p| / lr ~ 5e-13 absolute. Measured max
    # diff / max |grad| <= 1.9e-12 over these cases. rtol 1e-9.
    x, y, w, b = net(depth, bias)
    lr = 2.0 ** -12
    w1 = [a.copy() for a in w]
    b1 = None if b is None else [a.copy() for a in b]
    fastnn.train(x, y, w1, b1, activation=activation, loss=loss, lr=lr, epochs=1)
    compiled = [((w0 - wn) / lr, None if b is None else (b[i] - b1[i]) / lr)
                for i, (w0, wn) in enumerate(zip(w, w1))]
    _, grads = reference.loss_and_grad(x, y, w, b, activation=activation, loss=loss)
    expected = [(gw, gb if bias else None) for gw, gb in grads]
    assert_grads_close(compiled, expected, 1e-9, "fastnn vs reference")


def kinked_net():
    """A ReLU net sitting exactly on a kink: unit 0 of the hidden layer has
    pre-activation exactly 0 on row 0 (x row of zeros, bias 0) and is negative on
    every other row. The analytic gradient of bias[0][0] is 0 (derivative 0 at z == 0,
    as in the seeds); a central difference sees relu(h) - relu(-h) = h, half a slope."""
    x = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0], [1.5, 1.5]])
    y = np.array([[1.0], [0.0], [2.0], [1.0]])
    w = [np.array([[-1.0, 0.5], [-1.0, 0.25]]), np.array([[2.0], [1.0]])]
    b = [np.array([0.0, 0.5]), np.array([0.25])]
    return x, y, w, b


def test_finite_differences_disagree_at_a_kink():
    """At a ReLU kink the analytic gradient (derivative 0 at z == 0, as the seeds) is not
    the derivative of the loss: the independent finite differences see half a slope.
    (fastnn.gradcheck skips such parameters: tests/test_gradcheck.py.)"""
    x, y, w, b = kinked_net()
    _, grads = reference.loss_and_grad(x, y, w, b, activation="relu")
    fd = finite_differences(x, y, w, b, "relu", "sse")
    assert grads[0][1][0] == 0.0
    # d/db: residual of row 0 is 0.25 + 0.5 * 1 - 1 = -0.25; through w2[0] = 2 and half
    # a ReLU slope: 2 * (-0.25) * 2 * 0.5 = -0.5
    assert fd[0][1][0] == pytest.approx(-0.5, abs=1e-5)  # (2 r0 + 2h, h = 1e-6)
    with pytest.raises(AssertionError):
        assert_grads_close(grads, fd, 1e-6, "at a kink")


# --------------------------------------------------------------------------- golden test

def fractions(text):
    """A matrix of exact numbers written one row per line ("5/2 -1 0")."""
    return [[Fraction(t) for t in line.split()] for line in text.strip().splitlines()]


def as_float(rows):
    return np.array([[float(v) for v in row] for row in rows])


# Seed 004's first hand-worked step (In [9]-[14]) on 3 rows instead of 900: the same
# 5-4-4-1 ReLU net with (1, n) biases, mse, lr 0.1, gradients with 1/m (m = 3). Inputs
# are small dyadic numbers, so the forward pass is exact in binary floating point.
# Every intermediate below was worked out in exact rational arithmetic (fractions).
X = fractions("""
    1  0 -1  2  1
    0  1  2 -1  0
    2 -1  0  1 -2
""")
Y = fractions("1\n2\n0")
W1 = fractions("""
    1/2   -1     1     0
    -1   1/2     1     1
     0     1  -1/2   1/2
     1     0   1/2    -1
   -1/2    1     0     1
""")
B1 = fractions("1/2 -1/2 0 1")
W2 = fractions("""
     1    -1   1/2     0
    1/2    1    -1     1
     0   -1/2    1   1/2
    -1   1/2     0     1
""")
B2 = fractions("0 1/2 -1 1/2")
W3 = fractions("1\n-1/2\n1\n1/2")
B3 = fractions("1/2")

# forward (In [9]): z1 = X @ w1 + b1, e.g. z1[0, 0] = 1/2 + 0 + 0 + 2 - 1/4 ... + b1 = 5/2
Z1 = fractions("""
   5/2  -3/2   5/2  -1/2
  -3/2     2  -1/2     4
   9/2    -5   3/2    -3
""")
A1 = fractions("""
   5/2     0   5/2     0
     0     2     0     4
   9/2     0   3/2     0
""")
Z2 = fractions("""
   5/2  -13/4  11/4   7/4
    -3    9/2    -3  13/2
   9/2  -19/4  11/4   5/4
""")
A2 = fractions("""
   5/2     0  11/4   7/4
     0   9/2     0  13/2
   9/2     0  11/4   5/4
""")
Y_PRED = fractions("53/8\n3/2\n67/8")
MSE = Fraction(3265, 96)  # ((45/8)^2 + (1/2)^2 + (67/8)^2) / 3
# backward (In [12])
DY_PRED = fractions("45/8\n-1/2\n67/8")
DW3 = fractions("69/4\n-3/4\n77/6\n91/16")
DB3 = fractions("9/2")
DZ2 = fractions("""
   45/8     0  45/8  45/16
      0   1/4     0   -1/4
   67/8     0  67/8  67/16
""")
DW2 = fractions("""
   69/4     0  69/4   69/8
      0   1/6     0   -1/6
   71/8     0  71/8  71/16
      0   1/3     0   -1/3
""")
DB2 = fractions("14/3 1/12 14/3 9/4")
DZ1 = fractions("""
  135/16  0  225/32     0
       0  0       0  -1/8
  201/16  0  335/32     0
""")
DW1 = fractions("""
  179/16  0   895/96      0
  -67/16  0  -335/96  -1/24
  -45/16  0   -75/32  -1/12
  157/16  0   785/96   1/24
  -89/16  0  -445/96      0
""")
DB1 = fractions("7 0 35/6 -1/24")
# the update (In [14]): p - 1/10 * dp
W1_NEW = fractions("""
   -99/160   -1   13/192        0
   -93/160  1/2  259/192  241/240
      9/32    1   -17/64   61/120
     3/160    0  -61/192 -241/240
     9/160    1   89/192        1
""")
B1_NEW = fractions("-1/5 -1/2 -7/12 241/240")
W2_NEW = fractions("""
   -29/40     -1  -49/40   -69/80
      1/2  59/60      -1    61/60
   -71/80   -1/2    9/80    9/160
       -1   7/15       0    31/30
""")
B2_NEW = fractions("-7/15 59/120 -22/15 11/40")
W3_NEW = fractions("-29/40\n-17/40\n-17/60\n-11/160")
B3_NEW = fractions("1/20")


def test_golden_literals_are_the_seed_step():
    """The seed's own In [9]-[14] code, in float64, lands on the literals (checks the
    hand arithmetic; the forward pass is exact, the 1/m steps round once or twice)."""
    def relu(x):
        return (x > 0) * x
    X_, y = as_float(X), as_float(Y)
    w1, b1, w2, b2, w3, b3 = map(as_float, (W1, [B1[0]], W2, [B2[0]], W3, [B3[0]]))
    z1 = X_ @ w1 + b1
    a1 = relu(z1)
    z2 = a1 @ w2 + b2
    a2 = relu(z2)
    z3 = a2 @ w3 + b3
    y_pred = z3
    for got, want in ((z1, Z1), (a1, A1), (z2, Z2), (a2, A2), (y_pred, Y_PRED)):
        np.testing.assert_array_equal(got, as_float(want))
    assert np.mean((y - y_pred) ** 2) == pytest.approx(float(MSE), rel=1e-15)
    m = 3
    dy_pred = y_pred - y
    dw3 = (1/m) * (a2.T @ dy_pred)
    db3 = 1/m * np.sum(y_pred - y, axis=0, keepdims=True)
    da2 = (y_pred - y) @ w3.T
    dz2 = da2 * (a2 > 0).astype(float)
    dw2 = (1/m) * (a1.T @ dz2)
    db2 = (1/m) * np.sum(dz2, axis=0, keepdims=True)
    da1 = dz2 @ w2.T
    dz1 = da1 * (a1 > 0).astype(float)
    dw1 = (1/m) * X_.T @ dz1
    db1 = (1/m) * np.sum(dz1, axis=0, keepdims=True)
    np.testing.assert_array_equal(dy_pred, as_float(DY_PRED))
    np.testing.assert_array_equal(dz2, as_float(DZ2))
    np.testing.assert_array_equal(dz1, as_float(DZ1))
    for got, want in ((dw3, DW3), (db3, [DB3[0]]), (dw2, DW2), (db2, [DB2[0]]),
                      (dw1, DW1), (db1, [DB1[0]])):
        np.testing.assert_allclose(got, as_float(want), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-15), (np.float32, 1e-6)])
@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
def test_golden_step(fn, dtype, rtol):
    # each new parameter is p - 0.1 * g with g a product of dyadic numbers and 1/3:
    # a few roundings, so float64 agrees to ~1e-16 relative; float32 to ~1e-7
    cast = lambda rows: as_float(rows).astype(dtype)  # noqa: E731
    x, y = cast(X), cast(Y)
    w = [cast(W1), cast(W2), cast(W3)]
    b = [cast([B1[0]]), cast([B2[0]]), cast([B3[0]])]
    history = fn(x, y, w, b, loss="mse", lr=0.1, epochs=1)
    assert history.shape == (1,)
    assert history[0] == pytest.approx(float(MSE), rel=rtol)
    for got, want in zip(w + b, (W1_NEW, W2_NEW, W3_NEW, [B1_NEW[0]], [B2_NEW[0]], [B3_NEW[0]])):
        np.testing.assert_allclose(got, as_float(want), rtol=rtol, atol=rtol)


def test_golden_gradient():
    """reference.loss_and_grad returns the step's gradients (those of sum r^2 / (2m))."""
    x, y = as_float(X), as_float(Y)
    w = [as_float(W1), as_float(W2), as_float(W3)]
    b = [as_float([B1[0]]), as_float([B2[0]]), as_float([B3[0]])]
    value, grads = reference.loss_and_grad(x, y, w, b, loss="mse")
    assert value == pytest.approx(float(MSE), rel=1e-15)
    for (gw, gb), dw, db in zip(grads, (DW1, DW2, DW3), (DB1, DB2, DB3)):
        np.testing.assert_allclose(gw, as_float(dw), rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(gb.reshape(1, -1), as_float([db[0]]), rtol=1e-15, atol=1e-15)
