"""Layer kernels against fastnn.reference, one call at a time, over every block shape.

The small-layer loops (``_combine_rows``, ``_outer_update``) work on blocks of
four output rows x four source rows and 2 x 4 blocks of the weight gradient;
a partial block of two or three source rows repeats a real row with its
coefficient halved, and one remaining source row (or output row) has its own
pass. Widths 1..9 cover every remainder of both blockings, and widths of
8 and more with enough rows take the BLAS path. Layout: kernels take
activations feature-major, (units, batch), so the reference's arrays are
transposed on the way in and out.

Cheap enough for CI's interpreted (NUMBA_DISABLE_JIT=1) and bounds-checked
(NUMBA_BOUNDSCHECK=1) passes, see .ci/run.

Tolerance: a dot product of K terms computed in another order differs by at
most about (K + 1) * eps * sum|w_k * x_k| (the standard rounding bound); 4x that
bound leaves room for FMA contraction and is still far below any wrong term
(a wrong or dropped term moves the result by a whole |w_k * x_k|).
"""

import numba
import numpy as np
import pytest

from fastnn import kernels as K
from fastnn import reference

DTYPES = [np.float64, np.float32]
ACTS = ["identity", "relu", "sigmoid", "tanh"]
WIDTHS = [1, 2, 3, 4, 5, 7, 9]
ROWS = [1, 6, 37]


def _bound(abs_w, abs_x, k, dtype, extra=0.0):
    # 4 * (K + 1) * eps * (|W| |X| + |extra|), elementwise (see the module docstring);
    # extra: a term added to the dot product (the bias)
    return (4 * (k + 1) * np.finfo(dtype).eps * (abs_w @ abs_x + np.abs(extra))
            + np.finfo(dtype).tiny)


def _finite_abs(a):
    # |a| with non-finite entries as 0: bounds for the entries that stay finite
    return np.abs(np.where(np.isfinite(a), a, 0))


def _close(actual, expected, bound):
    # equal where the reference is not finite (same inf, or NaN), within bound elsewhere
    expected = np.asarray(expected)
    finite = np.isfinite(expected)
    assert np.array_equal(actual[~finite], expected[~finite], equal_nan=True)
    err = np.abs(actual[finite] - expected[finite])
    assert np.all(err <= np.broadcast_to(bound, expected.shape)[finite]), err.max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_dense_forward_every_block_shape(act, dtype, with_bias):
    rng = np.random.default_rng(11)
    code = K.ACTIVATIONS[act]
    for n_in in WIDTHS + [16]:
        for n_out in WIDTHS + [16]:
            for m in ROWS + [300]:
                x = rng.standard_normal((m, n_in)).astype(dtype)
                w = rng.standard_normal((n_in, n_out)).astype(dtype)
                b = rng.standard_normal(n_out).astype(dtype) if with_bias else None
                out = np.full((n_out, m), np.nan, dtype)
                K.dense_forward(out, np.ascontiguousarray(x.T), w,
                                b if with_bias else np.empty(0, dtype), code)
                z = x @ w + (0 if b is None else b)
                expected = reference.activation_forward(z, act)
                bound = _bound(np.abs(x), np.abs(w), n_in, dtype, 0.0 if b is None else b)
                if act in ("sigmoid", "tanh"):  # both map an error e to at most e (slope <= 1)
                    bound = bound + 4 * np.finfo(dtype).eps
                _close(out.T, expected, bound)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act_in", ACTS)
def test_dense_backward_every_block_shape(act_in, dtype):
    rng = np.random.default_rng(12)
    code = K.ACTIVATIONS[act_in]
    for n_in in WIDTHS + [16]:
        for n_out in WIDTHS + [16]:
            for m in ROWS + [300]:
                a_in = reference.activation_forward(
                    rng.standard_normal((m, n_in)), act_in).astype(dtype)
                d_out = rng.standard_normal((m, n_out)).astype(dtype)
                w = rng.standard_normal((n_in, n_out)).astype(dtype)
                d_in = np.full((n_in, m), np.nan, dtype)
                gw = np.full((n_in, n_out), np.nan, dtype)
                gb = np.full(n_out, np.nan, dtype)
                K.dense_backward(d_in, gw, gb, w, np.ascontiguousarray(d_out.T),
                                 np.ascontiguousarray(a_in.T), code, 1.0, 0.0)
                e_din, e_gw, e_gb = reference.dense_backward(d_out, a_in, w, act_in)
                _close(gw, e_gw, _bound(np.abs(a_in.T), np.abs(d_out), m, dtype))
                _close(gb, e_gb, _bound(np.ones((1, m)), np.abs(d_out), m, dtype)[0])
                _close(d_in.T, e_din, 2 * _bound(np.abs(d_out), np.abs(w.T), n_out, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward_in_place_update_uses_the_old_weights(dtype):
    # gw = w itself (scale -lr, keep 1): the SGD step; d_in must see w before the update
    rng = np.random.default_rng(13)
    lr = 0.125
    for n_in in WIDTHS:
        for n_out in WIDTHS:
            m = 7
            a_in = np.abs(rng.standard_normal((m, n_in))).astype(dtype)
            d_out = rng.standard_normal((m, n_out)).astype(dtype)
            w = rng.standard_normal((n_in, n_out)).astype(dtype)
            b = rng.standard_normal(n_out).astype(dtype)
            w0, b0 = w.copy(), b.copy()
            d_in = np.empty((n_in, m), dtype)
            K.dense_backward(d_in, w, b, w, np.ascontiguousarray(d_out.T),
                             np.ascontiguousarray(a_in.T), K.RELU, -lr, 1.0)
            e_din, e_gw, e_gb = reference.dense_backward(d_out, a_in, w0, "relu")
            _close(d_in.T, e_din, 2 * _bound(np.abs(d_out), np.abs(w0.T), n_out, dtype))
            _close(w, w0 - lr * e_gw, np.abs(w0) * np.finfo(dtype).eps
                   + lr * _bound(np.abs(a_in.T), np.abs(d_out), m, dtype))
            _close(b, b0 - lr * e_gb, np.abs(b0) * np.finfo(dtype).eps
                   + lr * _bound(np.ones((1, m)), np.abs(d_out), m, dtype)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_in", [1, 3, 4, 5, 16])
def test_non_finite_inputs_propagate_as_in_numpy(n_in, dtype):
    # relu as np.maximum (NaN stays NaN, -inf gives 0), the relu mask as np.where (no
    # inf * 0), and a split coefficient (c/2 * inf + c/2 * inf) still gives inf
    rng = np.random.default_rng(14)
    m, n_out = 40, 5
    x = rng.standard_normal((m, n_in)).astype(dtype)
    x[3, 0], x[7, -1], x[11, 0] = np.nan, np.inf, -np.inf
    w = rng.standard_normal((n_in, n_out)).astype(dtype)
    w[0, 1] = 0.0  # 0 * inf is NaN in both
    out = np.empty((n_out, m), dtype)
    K.dense_forward(out, np.ascontiguousarray(x.T), w, np.empty(0, dtype), K.RELU)
    with np.errstate(invalid="ignore"):
        expected = reference.activation_forward(x @ w, "relu")
    assert not np.isfinite(expected).all()
    _close(out.T, expected, _bound(_finite_abs(x), np.abs(w), n_in, dtype))

    d_out = rng.standard_normal((m, n_out)).astype(dtype)
    d_out[5, 2] = np.inf
    a_in = np.maximum(rng.standard_normal((m, n_in)), 0).astype(dtype)
    d_in = np.empty((n_in, m), dtype)
    gw, gb = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
    K.dense_backward(d_in, gw, gb, w, np.ascontiguousarray(d_out.T),
                     np.ascontiguousarray(a_in.T), K.RELU, 1.0, 0.0)
    with np.errstate(invalid="ignore"):
        e_din, _, _ = reference.dense_backward(d_out, a_in, w, "relu")
    _close(d_in.T, e_din, 2 * _bound(_finite_abs(d_out), np.abs(w.T), n_out, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_in_place_activations(act, dtype):
    rng = np.random.default_rng(15)
    z = rng.standard_normal((3, 41)).astype(dtype)
    z[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    a = z.copy()
    K.activation_forward(a, K.ACTIVATIONS[act])
    with np.errstate(over="ignore", invalid="ignore"):
        expected = reference.activation_forward(z, act)
    _close(a, expected, 4 * np.finfo(dtype).eps * np.maximum(_finite_abs(expected), 1))
    d = rng.standard_normal(z.shape).astype(dtype)
    d[1, :2] = [np.inf, np.nan]
    got = d.copy()
    K.activation_backward(got, a, K.ACTIVATIONS[act])
    with np.errstate(invalid="ignore"):
        expected = reference.activation_backward(d, a, act)
    # d * act'(a): act' is rounded once or twice (FMA), so the error is a few eps * |d|
    _close(got, expected, 4 * np.finfo(dtype).eps * _finite_abs(d) + np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("widths", [[5, 4, 4, 1], [8, 8, 8], [3, 9, 2], [9, 8, 1], [2, 12, 9, 3]],
                         ids=lambda w: "-".join(map(str, w)))
def test_per_sample_step_both_loop_forms(widths, act, with_bias, dtype):
    # sample_step unrolls layers whose widths are all <= SMALL (8) and loops over the others
    import fastnn
    rng = np.random.default_rng(16)
    x = rng.standard_normal((11, widths[0])).astype(dtype)
    y = rng.standard_normal((11, widths[-1])).astype(dtype)
    ws = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype) for a, b in zip(widths, widths[1:])]
    bs = [(0.1 * rng.standard_normal(b)).astype(dtype) for b in widths[1:]] if with_bias else []
    got_w, got_b = [w.copy() for w in ws], [b.copy() for b in bs]
    kw = dict(activation=act, loss="mse", lr=0.05, epochs=3, batch_size=1, shuffle=True, seed=3)
    h = fastnn.train(x, y, got_w, got_b if with_bias else None, **kw)
    h_ref = reference.train(x, y, ws, bs if with_bias else None, **kw)
    rtol = {np.float64: 1e-9, np.float32: 1e-4}[dtype]  # issue 2's tolerances (measured)
    np.testing.assert_allclose(h, h_ref, rtol=rtol)
    for a, e in zip(got_w + got_b, ws + bs):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * np.abs(e).max())


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compiled kernels only")
def test_internal_kernel_refuses_python_calls():
    # Private kernels have no Python wrapper (a faster first compile): a call from
    # Python must be a clear error, never a jump into the missing wrapper.
    from fastnn.kernels import layers
    a = np.zeros((4, 3))
    with pytest.raises(TypeError, match="_combine_rows is internal"):
        layers._combine_rows(a, a, np.zeros((4, 4)), True, np.zeros(0), 0, a)


def _exp64_probe():
    # exp64 compiled as the sigmoid kernel compiles it (FASTMATH_STRICT)
    from fastnn.kernels._jit import FASTMATH_STRICT, jit
    from fastnn.kernels.vexp import exp64

    @jit(fastmath=FASTMATH_STRICT)
    def probe(out, x):
        for i in range(x.shape[0]):
            out[i] = exp64(x[i])
    return probe


def test_vectorized_exp_within_one_ulp_and_ieee_at_the_edges():
    # the sigmoid's exp (kernels/vexp.py) against np.exp, which is within 0.51 ulp here;
    # measured: exp64 is within 0.87 ulp of the exact value. A reassociated build (folding
    # the rounding trick or the split ln2) is off by far more than 2 ulp.
    probe = _exp64_probe()
    rng = np.random.default_rng(17)
    n = 2000 if numba.config.DISABLE_JIT else 200_000
    x = np.concatenate([rng.uniform(-1, 1, n), rng.uniform(-708, 709.7, n),
                        rng.uniform(-745, -708, n // 10)])
    got = np.empty_like(x)
    probe(got, x)
    with np.errstate(under="ignore"):
        expected = np.exp(x)
    ulps = np.abs(got - expected) / np.spacing(expected)
    assert ulps.max() <= 2.0, ulps.max()
    edges = np.array([0.0, -0.0, 1e-300, -1e-300, 709.782712893384, 709.7827128933841,
                      -745.1332191019411, -745.1332191019412, 1000.0, -1000.0,
                      np.inf, -np.inf, np.nan])
    got = np.empty_like(edges)
    probe(got, edges)
    with np.errstate(over="ignore", under="ignore"):
        np.testing.assert_array_equal(got, np.exp(edges))
