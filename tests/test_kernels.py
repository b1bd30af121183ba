"""The kernel core, one operation at a time, against fastnn.reference (rows are samples there:
arrays are transposed on the way in and out).

Every kernel is called straight from Python on small C-contiguous arrays, so this module
stays cheap under CI's NUMBA_DISABLE_JIT=1 (kernels interpreted: the dense grid is thinned,
see GRID) and NUMBA_BOUNDSCHECK=1 (every signature used here is one per dtype).

Tolerances are rounding bounds, not fitted constants:
* dense layers: |computed - exact| <= 4 (K + 1) eps sum|terms| (+ 4 eps |a| for the
  activation's own rounding), K the length of each dot product, the "exact" value from the
  reference in float64 on the same inputs. A sum of K + 1 terms in any order is within
  (K + 1) eps / 2 of it, so this holds with a margin of >= 8 for any summation order or FMA
  use, and the reference's own float32 result satisfies it too (checked). Measured worst
  error / bound over the grid: forward 0.23 (float64) / 0.12 (float32), d_in 0.09, gw 0.07,
  gb 0.04, the fused step 0.09 (the reference's float32 forward: 0.26). A dropped bias, a
  wrong coefficient or a missed remainder row is off by about one term, >= 1e3x the bound in
  float32 and 1e12x in float64 (mutation-checked: a skipped remainder source, a bias sum
  of the wrong row, a 1e-7 relative error in one bias sum, the update before d_in).
* exp64 / tanh64: <= 4 ulp from NumPy (and from Python's libm math.exp / math.tanh).
  Measured (mpmath at 140 bits, and 2M-point scans against long double; not run here):
  exp64 within 1.06 ulp of exact, 1 ulp from NumPy; tanh64 within 2.5 ulp of exact (worst
  near |x| = 0.18, where e / (e + 2) rounds three times), 3 ulp from NumPy.
* losses, softmax, slopes and update rules: stated where they are checked.
"""

import math
from fractions import Fraction

import numba
import numpy as np
import pytest

from fastnn import kernels as K
from fastnn import reference as R
from fastnn.kernels import network as KN
from fastnn.kernels import optim as KO
from fastnn.kernels import vmath

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)
DTYPES = [pytest.param(F64, id="f64"), pytest.param(F32, id="f32")]
ACTS = {"identity": K.IDENTITY, "relu": K.RELU, "sigmoid": K.SIGMOID, "tanh": K.TANH}
INTERPRETED = numba.config.DISABLE_JIT
if INTERPRETED:  # NumPy scalars warn on the inf and NaN these tests feed the kernels on purpose
    pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

# Widths covering every remainder of the kernels' groups of four (1..9) plus a multiple of 16,
# and batches 1, 3, 8, 33 (33: vector loops with a tail). Interpreted, the kernels run about
# 1e4x slower: there every n_in and every n_out still appears (so every remainder of the groups
# of four, on both sides), paired cyclically, on two batch sizes.
WIDTHS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 16]
BATCHES = [1, 3, 8, 33]
if INTERPRETED:
    GRID = [(n_in, WIDTHS[(3 * i + 1) % len(WIDTHS)], m)
            for i, n_in in enumerate(WIDTHS) for m in (1, 5)]
else:
    GRID = [(n_in, n_out, m) for n_in in WIDTHS for n_out in WIDTHS for m in BATCHES]


def eps(dtype):
    return float(np.finfo(dtype).eps)


def f64(a):
    return None if a is None else np.asarray(a, np.float64)


def outputs(act, shape, rng):
    """Plausible values of act's output, float64: where its slope lies in [0, 1]."""
    z = 2.0 * rng.standard_normal(shape)
    return R.activation_forward(z, act)


def nan_filled(shape, dtype):
    # outputs the kernels must overwrite without reading
    return np.full(shape, np.nan, dtype)


def assert_within(actual, expected, bound, what):
    """|actual - expected| <= bound elementwise; NaN where expected is NaN, inf equal."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(actual), nan), f"{what}: NaN where NumPy has none, or not"
    inf = np.isinf(expected)
    assert np.array_equal(actual[inf], expected[inf]), f"{what}: infinities differ"
    finite = ~(nan | inf)
    err = np.abs(actual[finite] - expected[finite])
    bound = np.broadcast_to(bound, expected.shape)[finite]
    worst = int(np.argmax(err - bound)) if err.size else 0
    assert np.all(err <= bound), (f"{what}: off by {err[worst]:.3e}, bound {bound[worst]:.3e}")


# --------------------------------------------------------------------------- dense layers

def layer(n_in, n_out, m, dtype, act_in, bias, rng):
    """a_in (n_in, m) as the layer below's output, w (n_in, n_out), b (n_out,) or (0,)."""
    a_in = outputs(act_in, (n_in, m), rng).astype(dtype)
    w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = (0.5 * rng.standard_normal(n_out) if bias else np.zeros(0)).astype(dtype)
    return a_in, w, b


def forward_expected(a_in, w, b, act):
    """(exact output, rounding bound) of dense_forward in a_in's dtype, from float64."""
    bias = f64(b) if b.size else None
    out = R.dense_forward(f64(a_in).T, f64(w), bias, act).T
    terms = np.abs(f64(w)).T @ np.abs(f64(a_in)) + (np.abs(f64(b))[:, None] if b.size else 0)
    k = a_in.shape[0] + 1
    return out, 4 * k * eps(a_in.dtype) * terms + 4 * eps(a_in.dtype) * np.abs(out)


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("blas", [True, False], ids=["blas", "loops"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_forward(dtype, blas, act, bias):
    rng = np.random.default_rng([len(act), blas, bias, dtype.itemsize])
    for n_in, n_out, m in GRID:
        a_in, w, b = layer(n_in, n_out, m, dtype, "tanh", bias, rng)
        expected, bound = forward_expected(a_in, w, b, act)
        ref = R.dense_forward(a_in.T, w, b if bias else None, act).T  # the mirror, in dtype
        assert_within(ref, expected, bound, "reference (the bound itself)")
        a_out = nan_filled((n_out, m), dtype)
        K.dense_forward(a_out, a_in, w, b, ACTS[act], blas)
        assert a_out.dtype == dtype
        assert_within(a_out, expected, bound, f"a_out {n_in}->{n_out} m={m}")


def backward_expected(d_out, a_in, w, act_in, gw0, gb0, scale, keep):
    """(exact, bound) for d_in, gw and gb of dense_backward, from float64."""
    e = eps(d_out.dtype)
    if gb0.size == 0:  # no bias: gb's expectation unused
        gb0 = np.zeros(d_out.shape[0])
    d_ref, gw_ref, gb_ref = R.dense_backward(f64(d_out).T, f64(a_in).T, f64(w), act_in)
    d_in = d_ref.T  # (w @ d_out) * slope; a slope carries 2 eps absolute (1 - a a, a (1 - a))
    slope = np.abs(R.activation_backward(np.ones(a_in.shape), f64(a_in), act_in))
    d_bound = (4 * (d_out.shape[0] + 2) * e) * (np.abs(f64(w)) @ np.abs(f64(d_out))) * np.maximum(
        slope, 1.0)
    gw = keep * f64(gw0) + scale * gw_ref
    gw_bound = 4 * (d_out.shape[1] + 2) * e * (
        abs(keep) * np.abs(f64(gw0)) + abs(scale) * (np.abs(f64(a_in)) @ np.abs(f64(d_out)).T))
    gb = keep * f64(gb0) + scale * gb_ref
    gb_bound = 4 * (d_out.shape[1] + 2) * e * (
        abs(keep) * np.abs(f64(gb0)) + abs(scale) * np.abs(f64(d_out)).sum(axis=1))
    return (d_in, d_bound), (gw, gw_bound), (gb, gb_bound)


# (scale, keep): the gradient itself (outputs not read: NaN-filled), a general combination,
# and the fused SGD step done by the next test
FORMS = [(1.0, 0.0), (-0.25, 0.5)]


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("act_in", list(ACTS))
@pytest.mark.parametrize("blas", [True, False], ids=["blas", "loops"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward(dtype, blas, act_in, bias):
    rng = np.random.default_rng([len(act_in), blas, bias, dtype.itemsize, 1])
    for n_in, n_out, m in GRID:
        a_in, w, _ = layer(n_in, n_out, m, dtype, act_in, bias, rng)
        d_out = rng.standard_normal((n_out, m)).astype(dtype)
        for scale, keep in FORMS:
            if keep == 0.0:
                gw0, gb0 = nan_filled(w.shape, dtype), nan_filled(n_out if bias else 0, dtype)
            else:
                gw0 = rng.standard_normal(w.shape).astype(dtype)
                gb0 = rng.standard_normal(n_out if bias else 0).astype(dtype)
            gw, gb, d_in = gw0.copy(), gb0.copy(), nan_filled((n_in, m), dtype)
            w_before = w.copy()
            K.dense_backward(d_in, gw, gb, w, d_out, a_in, ACTS[act_in], scale, keep, blas)
            np.testing.assert_array_equal(w, w_before)
            (e_d, b_d), (e_gw, b_gw), (e_gb, b_gb) = backward_expected(
                d_out, a_in, w, act_in, np.nan_to_num(gw0), np.nan_to_num(gb0), scale, keep)
            what = f"{n_in}->{n_out} m={m} scale={scale} keep={keep}"
            assert_within(d_in, e_d, b_d, "d_in " + what)
            assert_within(gw, e_gw, b_gw, "gw " + what)
            if bias:
                assert_within(gb, e_gb, b_gb, "gb " + what)
            else:
                assert gb.shape == (0,)


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("blas", [True, False], ids=["blas", "loops"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward_in_place_sgd_step(dtype, blas, bias):
    # gw = w, gb = b, scale = -lr, keep = 1: w -= lr * a_in @ d_out.T, and d_in from the old w
    lr = 0.375
    rng = np.random.default_rng([blas, bias, dtype.itemsize, 2])
    for i, (n_in, n_out, m) in enumerate(GRID):
        act_in = list(ACTS)[i % 4]
        a_in, w, b = layer(n_in, n_out, m, dtype, act_in, bias, rng)
        d_out = rng.standard_normal((n_out, m)).astype(dtype)
        w0, b0 = w.copy(), b.copy()
        d_in = nan_filled((n_in, m), dtype)
        K.dense_backward(d_in, w, b, w, d_out, a_in, ACTS[act_in], -lr, 1.0, blas)
        (e_d, b_d), (e_w, b_w), (e_b, b_b) = backward_expected(d_out, a_in, w0, act_in, w0, b0,
                                                               -lr, 1.0)
        what = f"{n_in}->{n_out} m={m} {act_in}"
        assert_within(d_in, e_d, b_d, "d_in (from the old w) " + what)
        assert_within(w, e_w, b_w, "w " + what)
        if bias:
            assert_within(b, e_b, b_b, "b " + what)
        else:
            assert b.shape == (0,)


@pytest.mark.parametrize("blas", [True, False], ids=["blas", "loops"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward_without_input_gradient(dtype, blas):
    # d_in with 0 rows (the first layer): skipped, the parameter gradients as usual
    rng = np.random.default_rng([blas, dtype.itemsize, 3])
    for n_in, n_out, m in GRID[::7]:
        a_in, w, _ = layer(n_in, n_out, m, dtype, "identity", True, rng)
        d_out = rng.standard_normal((n_out, m)).astype(dtype)
        gw, gb = nan_filled(w.shape, dtype), nan_filled(n_out, dtype)
        K.dense_backward(np.empty((0, m), dtype), gw, gb, w, d_out, a_in, K.RELU, 1.0, 0.0, blas)
        _, (e_gw, b_gw), (e_gb, b_gb) = backward_expected(
            d_out, a_in, w, "relu", np.zeros_like(gw), np.zeros_like(gb), 1.0, 0.0)
        assert_within(gw, e_gw, b_gw, f"gw {n_in}->{n_out} m={m}")
        assert_within(gb, e_gb, b_gb, f"gb {n_in}->{n_out} m={m}")


@pytest.mark.parametrize("act", ["identity", "relu", "sigmoid"])
@pytest.mark.parametrize("blas", [True, False], ids=["blas", "loops"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_non_finite_inputs_propagate_as_in_numpy(dtype, blas, act):
    # inf, -inf and NaN in a_in (and zero weights: inf * 0 is NaN) give NaN and inf exactly
    # where NumPy's products give them; relu keeps NaN (as np.maximum) and maps -inf to 0
    rng = np.random.default_rng([blas, dtype.itemsize, len(act), 4])
    for n_in, n_out, m in [(5, 6, 3), (8, 4, 9), (9, 9, 8), (1, 3, 2), (16, 5, 33)]:
        a_in, w, b = layer(n_in, n_out, m, dtype, "identity", True, rng)
        w[0, 0] = 0
        a_in[0, 0], a_in[-1, -1], a_in[n_in // 2, m // 2] = np.inf, -np.inf, np.nan
        if m > 1:
            a_in[0, 1] = np.inf  # one inf among finite values of the same column
        with np.errstate(invalid="ignore", over="ignore"):
            expected, bound = forward_expected(a_in, w, b, act)
            ref = R.dense_forward(a_in.T, w, b, act).T
        assert_within(ref, expected, np.nan_to_num(bound), "reference")
        a_out = nan_filled((n_out, m), dtype)
        K.dense_forward(a_out, a_in, w, b, ACTS[act], blas)
        assert_within(a_out, ref, np.nan_to_num(bound), f"a_out {n_in}->{n_out} m={m}")
        assert not np.isfinite(a_out).all() or act == "sigmoid"

        d_out = rng.standard_normal((n_out, m)).astype(dtype)
        d_in, gw, gb = (nan_filled(s, dtype) for s in ((n_in, m), w.shape, (n_out,)))
        with np.errstate(invalid="ignore", over="ignore"):
            e_d, e_gw, e_gb = R.dense_backward(d_out.T, a_in.T, w, act)
            (_, b_d), (_, b_gw), (_, b_gb) = backward_expected(
                d_out, a_in, w, act, np.zeros_like(gw), np.zeros_like(gb), 1.0, 0.0)
        K.dense_backward(d_in, gw, gb, w, d_out, a_in, ACTS[act], 1.0, 0.0, blas)
        assert_within(d_in, e_d.T, np.nan_to_num(b_d), f"d_in {n_in}->{n_out} m={m}")
        assert_within(gw, e_gw, np.nan_to_num(b_gw), f"gw {n_in}->{n_out} m={m}")
        assert not np.isfinite(gw).all()
        assert_within(gb, e_gb, b_gb, f"gb {n_in}->{n_out} m={m}")


# --------------------------------------------------------------------------- batches

@pytest.mark.parametrize("shuffled", [False, True], ids=["in_order", "shuffled"])
@pytest.mark.parametrize("m", [1, 7, 32, 33])
@pytest.mark.parametrize("n_in, n_out", [(1, 1), (5, 10), (8, 3), (13, 8), (64, 17)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_load_batch_transposes_the_rows(dtype, n_in, n_out, m, shuffled):
    # a_0 = x[rows].T and the targets = y[rows].T, bitwise, for one unit and more, batches on
    # both sides of the copy's groups of eight rows, from a batch that starts inside the rows;
    # nothing else in the workspace is written
    rng = np.random.default_rng([dtype.itemsize, n_in, n_out, m, shuffled])
    n_rows, start = 50, 9
    x = rng.standard_normal((n_rows, n_in)).astype(dtype)
    y = rng.standard_normal((n_rows, n_out)).astype(dtype)
    rows = rng.permutation(n_rows) if shuffled else np.empty(0, np.int64)
    net = np.array([[n_in, n_out, K.IDENTITY, 0, -1, 1]], np.int64)
    lay, size = KN.workspace_layout([n_in, n_out], m)
    work = nan_filled(size, dtype)
    KN.load_batch(work, lay, net, x, y, rows, start, m)
    picked = rows[start:start + m] if shuffled else np.arange(start, start + m)
    np.testing.assert_array_equal(work[lay[0]:lay[0] + n_in * m].reshape(n_in, m), x[picked].T)
    yt = work[lay[3]:lay[3] + n_out * m].reshape(n_out, m)
    np.testing.assert_array_equal(yt, y[picked].T)
    rest = np.ones(size, bool)
    rest[lay[0]:lay[0] + n_in * m] = rest[lay[3]:lay[3] + n_out * m] = False
    assert np.isnan(work[rest]).all()


# --------------------------------------------------------------------------- activations

def special_inputs(rng, dtype):
    """(5, 13) values over many magnitudes, IEEE specials and the edges of exp's range."""
    z = rng.standard_normal(65) * 10.0 ** rng.uniform(-4, 3, 65)
    z[:16] = [0.0, -0.0, np.inf, -np.inf, np.nan, 750.0, -750.0, 1e-310, -1e-310, 20.0, -19.5,
              0.625, -0.625, 88.0, -104.0, 1e30]
    return z.reshape(5, 13).astype(dtype)


def ulp_diff(a, b):
    """|a - b| in units in the last place of the dtype (NaN vs NaN: 0)."""
    itype = {4: np.int32, 8: np.int64}[a.dtype.itemsize]
    bits = lambda v: v.view(itype).astype(np.int64)  # noqa: E731
    key = lambda k: np.where(k < 0, -(k & (np.iinfo(itype).max)), k)  # noqa: E731
    both_nan = np.isnan(a) & np.isnan(b)
    return np.where(both_nan, 0, np.abs(key(bits(a)) - key(bits(b))))


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_forward(dtype, act):
    # relu and identity: bitwise as NumPy (NaN kept). sigmoid and tanh are computed in float64
    # (exp64, tanh64) and rounded once: measured against NumPy's float64 functions rounded to
    # the dtype 2 ulp (float64 sigmoid: 1 / (1 + e) rounds twice) / 0 ulp (float32), against
    # the reference in the dtype 2 ulp (NumPy's float32 exp is itself off). Asserted: 4 ulp.
    rng = np.random.default_rng([dtype.itemsize, len(act)])
    z = special_inputs(rng, dtype)
    a = z.copy()
    K.activation_forward(a, ACTS[act])
    with np.errstate(over="ignore"):
        ref = R.activation_forward(z.T, act).T
        ref64 = R.activation_forward(z.astype(F64).T, act).T.astype(dtype)
    assert a.dtype == dtype
    if act in ("identity", "relu"):
        np.testing.assert_array_equal(a, ref, strict=True)
    else:
        assert ulp_diff(a, ref64).max() <= 4, (z, a, ref64)
        assert ulp_diff(a, ref).max() <= 4, (z, a, ref)


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_backward(dtype, act):
    # d * slope from the output a: relu / identity bitwise (no inf * 0: a <= 0 gives 0 even
    # for an infinite d); sigmoid / tanh within 4 eps |d| (the slope is in [0, 1] and may be
    # formed with one FMA; measured <= 1 eps |d|)
    rng = np.random.default_rng([dtype.itemsize, len(act), 5])
    a = outputs(act, (4, 9), rng).astype(dtype)
    d = rng.standard_normal((4, 9)).astype(dtype)
    if act == "relu":
        a[0, :3], d[0, :3] = [0.0, -0.0, np.nan], np.inf  # no inf * 0, NaN output -> 0
    ref = R.activation_backward(d.T, a.T, act).T
    out = d.copy()
    K.activation_backward(out, a, ACTS[act])
    if act in ("identity", "relu"):
        np.testing.assert_array_equal(out, ref, strict=True)
    else:
        assert_within(out, ref, 4 * eps(dtype) * np.abs(f64(d)), "d * slope")


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_forward(dtype, n):
    # p over each column (the rows of the reference), stable for huge logits; tmp (float64
    # for either dtype) holds the max and log sum exp(z - max). p within 4 (n + 2) eps of the
    # reference (measured <= 0.5 eps; p in [0, 1]); the shifted log-sum-exp, which lies in
    # [0, log n], within 4 eps64 of it (the max is subtracted first: no overflow at 1e30).
    rng = np.random.default_rng([dtype.itemsize, n])
    z = (3 * rng.standard_normal((n, 7))).astype(dtype)
    z[:, 0] = 1e4
    z[0, 1], z[-1, 2] = 1e30, -1e30
    z[:, 3] = -800.0
    z[-1, 4] = 800.0  # the max in the last row (exp(800) overflows unless it is found)
    ref = R.softmax_forward(z.T).T
    z64 = f64(z)
    shifted = np.log(np.exp(z64 - z64.max(axis=0)).sum(axis=0))
    p, tmp = nan_filled(z.shape, dtype), nan_filled((2, 7), np.float64)
    K.softmax_forward(p, tmp, z)
    assert np.isfinite(p).all() and np.isfinite(tmp).all()
    assert_within(p, ref, 4 * (n + 2) * eps(dtype), "p")
    np.testing.assert_array_equal(tmp[0], z64.max(axis=0))
    assert_within(tmp[1], shifted, 4 * eps(np.float64) * np.maximum(shifted, 1), "log-sum-exp")
    np.testing.assert_allclose(p.sum(axis=0, dtype=np.float64), 1.0, rtol=0,
                               atol=4 * n * eps(dtype))
    q = z.copy()  # in place (predict's use): p may be z itself
    K.softmax_forward(q, tmp, q)
    np.testing.assert_array_equal(q, p)


# --------------------------------------------------------------------------- vmath

def _ulps64(a, b):
    return ulp_diff(np.asarray(a, np.float64), np.asarray(b, np.float64))


def _exp_points():
    rng = np.random.default_rng(6)
    return np.concatenate([
        np.linspace(-745.5, 709.9, 1501),                 # the whole range, subnormal results too
        rng.uniform(-746, 710, 1500),
        rng.standard_normal(500) * 10.0 ** rng.uniform(-20, 0, 500),  # near 0
        np.linspace(-745.2, -707, 300), np.linspace(700, 709.78, 200),  # both ends
        np.arange(-20, 21) * math.log(2),                 # at k ln2 (r near 0)
        (np.arange(-20, 21) + 0.5) * math.log(2)])        # half-way (|r| near ln2 / 2)


def _call(fn, xs):
    return np.array([fn(float(x)) for x in xs])


def test_exp64_within_a_few_ulp():
    xs = _exp_points()
    got = _call(vmath.exp64, xs)
    with np.errstate(over="ignore"):
        numpy_ = np.exp(xs)
        libm = np.array([math.exp(x) if x < 709.78 else np.exp(x) for x in xs])
    assert _ulps64(got, numpy_).max() <= 4
    assert _ulps64(got, libm).max() <= 4
    assert (got[xs < -708.4] < 2.3e-308).any()  # subnormal results were covered


def test_tanh64_within_a_few_ulp():
    rng = np.random.default_rng(7)
    edges = (np.arange(29) + 0.5) * math.log(2) / 2  # |r| near ln2 / 2 in the reduction of 2|x|
    mags = np.concatenate([np.logspace(-310, 1.5, 1500), rng.uniform(0, 25, 1000),
                           rng.uniform(0, 1, 1000),       # where e / (e + 2) has no 2**k to help
                           (edges[:, None] + np.linspace(-1e-6, 1e-6, 7)).ravel(),
                           np.linspace(18.5, 20.5, 200)])  # where tanh rounds to 1
    xs = np.concatenate([mags, -mags])
    got = _call(vmath.tanh64, xs)
    assert _ulps64(got, np.tanh(xs)).max() <= 4
    assert _ulps64(got, [math.tanh(x) for x in xs]).max() <= 4


def economized_series(degree, bound, terms=30):
    """(e**r - 1 - r) / r**2 = sum r**i / (i + 2)!, economized on |r| <= bound to ``degree``:
    in exact arithmetic, each Chebyshev polynomial above ``degree`` is subtracted from the
    Taylor series (of ``terms`` terms) to cancel its leading term."""
    scale = Fraction(bound)
    q = [scale ** i / math.factorial(i + 2) for i in range(terms)]  # in s = r / bound
    cheb = [[Fraction(1)], [Fraction(0), Fraction(1)]]  # T_n's monomial coefficients
    while len(cheb) < terms:
        nxt = [Fraction(0)] + [2 * c for c in cheb[-1]]
        for i, c in enumerate(cheb[-2]):
            nxt[i] -= c
        cheb.append(nxt)
    for n in range(terms - 1, degree, -1):
        lead = q[n] / cheb[n][n]
        q = [c - lead * t for c, t in zip(q, cheb[n] + [0] * (terms - n - 1))]
    return [float(q[i] / scale ** i) for i in range(degree + 1)]


def test_expm1_coefficients_are_the_economized_series():
    coefs = [getattr(vmath, f"P{i}") for i in range(10)]
    assert coefs == economized_series(9, math.log(2) / 2 + 1e-9)
    taylor = [1 / math.factorial(i + 2) for i in range(10)]
    assert coefs != taylor and np.allclose(coefs, taylor, rtol=0.01)  # a correction, not a typo


EXP_EDGES = [(np.inf, np.inf), (-np.inf, 0.0), (np.nan, np.nan), (0.0, 1.0), (-0.0, 1.0),
             (1e308, np.inf), (-1e308, 0.0), (710.0, np.inf), (-746.0, 0.0),
             (5e-324, 1.0), (-5e-324, 1.0)]
TANH_EDGES = [(np.inf, 1.0), (-np.inf, -1.0), (np.nan, np.nan), (0.0, 0.0),
              (-0.0, -0.0),
              (1e308, 1.0), (-1e308, -1.0), (1e-300, 1e-300), (-5e-324, -5e-324), (5e-324, 5e-324)]


def same_float(a, b):
    """Equal bit for bit (so -0.0 != 0.0), any NaN equal to any NaN."""
    a, b = np.float64(a), np.float64(b)
    return (np.isnan(a) and np.isnan(b)) or a.tobytes() == b.tobytes()


@pytest.mark.parametrize("x, expected", EXP_EDGES)
def test_exp64_edges(x, expected):
    with np.errstate(over="ignore"):
        assert same_float(np.exp(np.float64(x)), expected)  # the expectation is NumPy's
    assert same_float(vmath.exp64(x), expected)


def test_exp64_overflow_threshold():
    # the largest float64 exp is exp(709.782712893384); the next one up overflows
    top = 709.782712893384
    assert vmath.exp64(top) == np.exp(top) and math.isfinite(vmath.exp64(top))
    assert vmath.exp64(np.nextafter(top, np.inf)) == math.inf


@pytest.mark.parametrize("x, expected", TANH_EDGES)
def test_tanh64_edges(x, expected):
    assert same_float(np.tanh(np.float64(x)), expected)  # the expectation is NumPy's
    assert same_float(vmath.tanh64(x), expected), (x, vmath.tanh64(x), expected)


# --------------------------------------------------------------------------- losses

LOSSES = {"sse": K.SSE, "mse": K.MSE, "softmax_ce": K.SOFTMAX_CE, "sigmoid_bce": K.SIGMOID_BCE}


def loss_case(loss, n, m, dtype, rng, scale=3.0):
    z = (scale * rng.standard_normal((n, m))).astype(dtype)
    if loss == "softmax_ce":
        y = rng.dirichlet(np.ones(n), m).T  # probability columns, some one-hot
        y[:, ::3] = np.eye(n)[rng.integers(0, n, y[:, ::3].shape[1])].T
    elif loss == "sigmoid_bce":
        y = rng.uniform(0, 1, (n, m))
        y[:, ::2] = np.round(y[:, ::2])
    else:
        y = rng.standard_normal((n, m))
    return z, y.astype(dtype)


@pytest.mark.parametrize("m", [1, 5, 33])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_forward_backward(dtype, loss, n, m):
    # value: float64 for both dtypes; within 8 (n m) eps64 of the reference in float64 (sums of
    # the same float64 terms; measured 1.9 eps64), float32 within 8 eps32 of it (softmax's
    # log-sum-exp is kept in the dtype: measured 0.2 eps32 on these moderate logits, see
    # test_softmax_ce_value_float32_confident). d = dloss/dz within 8 eps (|d| + (|p| + |y|)
    # / m) elementwise (measured <= 0.3 of that bound; sse bitwise).
    rng = np.random.default_rng([dtype.itemsize, len(loss), n, m])
    z, y = loss_case(loss, n, m, dtype, rng)
    d, tmp = nan_filled((n, m), dtype), nan_filled((2, m), np.float64)
    value = K.loss_forward_backward(d, tmp, z, y, LOSSES[loss])
    ref_value, ref_d = R.loss_forward_backward(z.T, y.T, loss)
    assert isinstance(value, float) and ref_d.dtype == dtype and d.dtype == dtype
    rtol = 8 * n * m * eps(F64) if dtype == F64 else 8 * eps(F32)
    assert value == pytest.approx(ref_value, rel=rtol, abs=0)
    with np.errstate(over="ignore"):
        p = {"softmax_ce": R.softmax_forward(f64(z).T).T,
             "sigmoid_bce": R.activation_forward(f64(z), "sigmoid")}.get(loss, 0.0)
    bound = 8 * eps(dtype) * (np.abs(f64(ref_d.T)) + (np.abs(p) + np.abs(f64(y))) / m)
    assert_within(d, ref_d.T, bound, f"{loss} d")
    if loss == "sse":
        np.testing.assert_array_equal(d, ref_d.T)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_values_by_hand(dtype):
    # small cases worked out exactly, so that the kernel and the reference cannot share a
    # wrong formula
    z = np.array([[1.0, -2.0], [3.0, 0.5]], dtype)  # (n=2 outputs, m=2 rows)
    y = np.array([[0.0, 1.0], [1.0, 0.0]], dtype)
    d, tmp = np.empty_like(z), np.empty((2, 2))
    value = K.loss_forward_backward(d, tmp, z, y, K.SSE)
    assert value == 1 + 9 + 4 + 0.25
    np.testing.assert_array_equal(d, 2 * (z - y))
    value = K.loss_forward_backward(d, tmp, z, y, K.MSE)
    assert value == pytest.approx((1 + 9 + 4 + 0.25) / 4, rel=1e-15)
    np.testing.assert_allclose(d, (z - y) / 2, rtol=eps(dtype))
    z64 = f64(z)
    value = K.loss_forward_backward(d, tmp, z, y, K.SOFTMAX_CE)  # columns are the rows
    lse = np.log(np.exp(z64).sum(axis=0))
    expected = ((lse[0] - 3.0) + (lse[1] - (-2.0))) / 2
    assert value == pytest.approx(expected, rel=8 * eps(dtype))
    np.testing.assert_allclose(d, (np.exp(z64 - lse) - y) / 2, rtol=0, atol=4 * eps(dtype))
    value = K.loss_forward_backward(d, tmp, z, y, K.SIGMOID_BCE)
    sig = 1 / (1 + np.exp(-z64))
    expected = -(y * np.log(sig) + (1 - y) * np.log(1 - sig)).sum() / 2
    assert value == pytest.approx(expected, rel=8 * eps(dtype))
    np.testing.assert_allclose(d, (sig - y) / 2, rtol=0, atol=4 * eps(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_stable_for_huge_logits(dtype):
    # no overflow to inf or NaN: log-sum-exp after the max, and BCE's stable form
    big = 1e30
    z = np.array([[1e4, -1e4, big, 0.0], [0.0, 0.0, -big, 0.0], [-1e4, 1e4, 0.0, 1e-30]], dtype)
    y = np.array([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype)
    d, tmp = nan_filled(z.shape, dtype), nan_filled((2, 4), np.float64)
    value = K.loss_forward_backward(d, tmp, z, y, K.SOFTMAX_CE)
    # per column: 0 (right class at 1e4), 2e4, 2e30 (exact in float64: lse = max), log 3
    expected = (0.0 + 2e4 + float(2 * np.float64(dtype.type(big))) + math.log(3)) / 4
    assert math.isfinite(value) and value == pytest.approx(expected, rel=4 * eps(dtype))
    assert np.isfinite(d).all() and np.abs(d).max() <= 0.5
    ref_value, ref_d = R.loss_forward_backward(z.T, y.T, "softmax_ce")
    assert value == pytest.approx(ref_value, rel=4 * eps(dtype))
    d, yb = nan_filled(z.shape, dtype), np.full(z.shape, 0.25, dtype)
    value = K.loss_forward_backward(d, tmp, z, yb, K.SIGMOID_BCE)
    z64 = f64(z)
    expected = float((np.maximum(z64, 0) - z64 * 0.25 + np.log1p(np.exp(-np.abs(z64)))).sum() / 4)
    assert math.isfinite(value) and value == pytest.approx(expected, rel=4 * eps(dtype))
    assert np.isfinite(d).all() and np.abs(d).max() <= 0.25


def test_softmax_ce_value_float32_confident():
    # The loss is summed in float64 for float32 data too, and the reference computes it in
    # float64 from the same float32 logits: exact to 1e-12 here. A confident prediction has a
    # small loss, log(1 + 2 e^-margin), well conditioned in the logits (relative condition
    # ~ margin): a float32-accurate result is within ~margin * eps32 = 1.4e-6 of it.
    for margin in (5.0, 12.0, 20.0):
        z = np.array([[margin], [0.0], [0.0]], F32)
        y = np.array([[1.0], [0.0], [0.0]], F32)
        d, tmp = np.empty_like(z), np.empty((2, 1))
        value = K.loss_forward_backward(d, tmp, z, y, K.SOFTMAX_CE)
        exact = math.log1p(2 * math.exp(-margin))
        ref_value, _ = R.loss_forward_backward(z.T, y.T, "softmax_ce")
        assert ref_value == pytest.approx(exact, rel=1e-7)
        assert value == pytest.approx(exact, rel=32 * margin * eps(F32)), (margin, value, exact)


# --------------------------------------------------------------------------- update rules

def hyper(lr=0.05, momentum=0.7, decay=0.1, bias_decay=0.03, betas=(0.8, 0.95), eps_=1e-2):
    h = np.zeros(KO.HYPER_SIZE)
    h[[KO.LR, KO.MOMENTUM, KO.DECAY, KO.BIAS_DECAY, KO.BETA1, KO.BETA2, KO.EPS]] = (
        lr, momentum, decay, bias_decay, betas[0], betas[1], eps_)
    return h


# (rule, nesterov, hyper overrides): momentum 0 takes SGD's plain branch; eps 1e-2 is
# comparable to sqrt(v), so a misplaced eps shows
RULES = [
    ("sgd-plain-decay", KO.SGD, False, dict(momentum=0.0)),
    ("sgd-momentum", KO.SGD, False, {}),
    ("sgd-nesterov", KO.SGD, True, {}),
    ("sgd-momentum-no-decay", KO.SGD, False, dict(decay=0.0, bias_decay=0.0)),
    ("adam", KO.ADAM, False, {}),
    ("sk-sgd", KO.SK_SGD, False, dict(bias_decay=0.0)),
    ("sk-sgd-nesterov", KO.SK_SGD, True, dict(bias_decay=0.0)),
    ("sk-adam", KO.SK_ADAM, False, dict(bias_decay=0.0)),
]
# Adam's default beta2 = 0.999: compiled with reassociation, LLVM evaluated
# v = b2 v + (1 - b2) g^2 in a cancelling form, ~450 eps off (kernels/optim.py is strict now).
RULES += [
    pytest.param("adam-default", KO.ADAM, False,
                 dict(betas=(0.9, 0.999), eps_=1e-8, decay=0.0, bias_decay=0.0),
                 id="adam-default"),
    pytest.param("sk-adam-default", KO.SK_ADAM, False,
                 dict(betas=(0.9, 0.999), eps_=1e-8, bias_decay=0.0),
                 id="sk-adam-default"),
]


@pytest.mark.parametrize("name, rule, nesterov, over", RULES,
                         ids=[r[0] if isinstance(r, tuple) else r.id for r in RULES])
@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_update(dtype, name, rule, nesterov, over):
    # 6 steps on 37 parameters (29 weights, then 8 biases with their own decay), decay_scale
    # 0.5, gradients over four decades. The reference updates each part as an array.
    # Asserted per array (parameters, each state row): max |diff| <= 32 eps max |expected|;
    # measured <= 7 eps (Adam's m / (sqrt(v) / sqrt(c2) + eps) may be rounded differently).
    rng = np.random.default_rng([dtype.itemsize, rule, nesterov, len(name)])
    n_params, n_weights, scale = 37, 29, 0.5
    h = hyper(**over)
    p = rng.standard_normal(n_params).astype(dtype)
    state = np.zeros((2, n_params), dtype)
    if rule == KO.SGD:
        state[:] = np.nan  # step 1 sets the buffer to g without reading it
    p_ref, s_ref = p.copy(), np.zeros((2, n_params), dtype)
    p_start = p.copy()
    for t in range(1, 7):
        g = (rng.standard_normal(n_params) * 10.0 ** rng.uniform(-3, 1, n_params)).astype(dtype)
        K.optimizer_update(p, g, state, rule, h, nesterov, float(t), n_weights, scale)
        for lo, hi, decay in ((0, n_weights, h[KO.DECAY]), (n_weights, n_params, h[KO.BIAS_DECAY])):
            R.optimizer_update(p_ref[lo:hi], g[lo:hi], s_ref[0, lo:hi], s_ref[1, lo:hi], rule, h,
                               nesterov, t, decay * scale)
        tol = 32 * eps(dtype)
        for what, a, e in (("params", p, p_ref), ("state[0]", state[0], s_ref[0]),
                           ("state[1]", state[1], s_ref[1])):
            if what == "state[0]" and rule == KO.SGD and h[KO.MOMENTUM] == 0.0:
                continue  # no buffer
            if what == "state[1]" and rule in (KO.SGD, KO.SK_SGD):
                continue
            err = float(np.max(np.abs(f64(a) - e)))
            assert err <= tol * float(np.max(np.abs(e))), f"step {t} {what}: off by {err:.3e}"
    assert np.max(np.abs(p - p_start)) > 0.05  # the steps were not negligible


def test_sgd_momentum_step_by_hand():
    # torch.optim.SGD, dampening 0: b1 = g1, b2 = mu b1 + g2; nesterov steps by g + mu b
    h = hyper(lr=0.5, momentum=0.25, decay=0.0, bias_decay=0.0)
    for nesterov in (False, True):
        p, state = np.array([1.0, 2.0]), np.zeros((2, 2))
        g1, g2 = np.array([0.5, -1.0]), np.array([2.0, 4.0])
        K.optimizer_update(p, g1, state, KO.SGD, h, nesterov, 1.0, 2, 1.0)
        b1 = g1
        p1 = np.array([1.0, 2.0]) - 0.5 * (g1 + 0.25 * b1 if nesterov else b1)
        np.testing.assert_array_equal(p, p1)
        K.optimizer_update(p, g2, state, KO.SGD, h, nesterov, 2.0, 2, 1.0)
        b2 = 0.25 * b1 + g2
        np.testing.assert_array_equal(state[0], b2)
        np.testing.assert_array_equal(p, p1 - 0.5 * (g2 + 0.25 * b2 if nesterov else b2))
