"""Classification losses (issue 17): softmax_ce and sigmoid_bce.

* the reference's gradient against central finite differences of an objective written here
  independently (log-sum-exp, logaddexp);
* fastnn.train against fastnn.reference.train over depths, activations, batch modes and
  dtypes, and on each code path a loss can take (generic, one-row, Gram);
* integer labels give bitwise the numbers of their one-hot rows;
* bad targets: ValueError naming the argument, nothing modified;
* huge logits: finite losses (log-sum-exp after the max; BCE's stable form);
* predict(output="softmax" / "sigmoid") against the reference.

Tolerances: rtol 1e-9 (float64) / 1e-4 (float32) as in test_equivalence, on settings whose
1-ulp spread was measured (reference rerun from initial parameters moved by +-1 ulp at random,
zeros kept; ``helpers.ulp_spread``): see each test.
"""

import warnings

import numpy as np
import pytest

import fastnn
from fastnn import _state, _validate, reference
from helpers import (DTYPES, F32, F64, MODES, RTOL, activation_for, assert_params_close,
                     class_net, compare_with, copies, run_with)

CLASS_LOSSES = ["softmax_ce", "sigmoid_bce"]
LR = {"softmax_ce": 0.1, "sigmoid_bce": 0.2}
# a subset of helpers.ARCHS: every activation, depths 1-4, with and without biases
ARCHS = [(1, "relu"), (2, "tanh"), (2, "sigmoid"), (3, "relu"), (3, "per-layer"),
         (4, "identity"), (4, "per-layer")]
ARCH_IDS = [f"d{d}-{a}" for d, a in ARCHS]


# --------------------------------------------------------------------------- finite differences

def forward(x, w, b, activation):
    """The output z of a network in plain NumPy (independent of fastnn.reference)."""
    a = x
    for i, wi in enumerate(w):
        z = a @ wi + (0 if b is None else b[i])
        a = z if i == len(w) - 1 else {"relu": lambda v: np.where(v > 0, v, 0.0),
                                       "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
                                       "tanh": np.tanh, "identity": lambda v: v}[activation](z)
    return a


def objective(x, y, w, b, activation, loss):
    """The reported loss, which is also the objective the step follows for these losses."""
    z = forward(x, w, b, activation)
    if loss == "softmax_ce":
        top = z.max(axis=1, keepdims=True)
        log_p = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
        return float(-(y * log_p).sum() / x.shape[0])
    # -y log s(z) - (1 - y) log(1 - s(z)), with -log s(z) = log(1 + e^-z)
    return float((y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)).sum() / x.shape[0])


def finite_differences(x, y, w, b, activation, loss, h=1e-6):
    out = []
    for i in range(len(w)):
        pair = []
        for p in (w[i], None if b is None else b[i]):
            if p is None:
                pair.append(None)
                continue
            g = np.empty_like(p)
            for idx in np.ndindex(p.shape):
                saved = p[idx]
                step = h * max(1.0, abs(saved))
                p[idx] = saved + step
                up = objective(x, y, w, b, activation, loss)
                p[idx] = saved - step
                down = objective(x, y, w, b, activation, loss)
                p[idx] = saved
                g[idx] = (up - down) / (2 * step)
            pair.append(g)
        out.append(pair)
    return out


FD_CASES = [(d, a, loss, bias) for loss in CLASS_LOSSES for d in (1, 2, 3)
            for a in ("relu", "sigmoid", "tanh", "identity") for bias in (False, True)
            if d > 1 or a == "relu"]


@pytest.mark.parametrize("depth, activation, loss, bias", FD_CASES,
                         ids=[f"{loss}-d{d}-{a}-{'bias' if bias else 'nobias'}"
                              for d, a, loss, bias in FD_CASES])
def test_reference_gradient_matches_finite_differences(depth, activation, loss, bias):
    # Measured: max |analytic - FD| / max |gradient| <= 8.3e-9 over these cases (FD rounding
    # ~ eps * objective / h); a missing 1/m or a wrong sign is off by O(1). rtol 1e-6.
    rng = np.random.default_rng([depth, len(activation), len(loss), bias])
    widths = [3, 4, 5][:depth] + [3]
    x = rng.standard_normal((7, widths[0]))
    w = [rng.standard_normal((a, c)) / np.sqrt(a) for a, c in zip(widths, widths[1:])]
    b = [0.3 * rng.standard_normal(n) for n in widths[1:]] if bias else None
    if loss == "softmax_ce":
        y = rng.dirichlet(np.ones(3), 7)
        y[::2] = np.eye(3)[rng.integers(0, 3, 4)]
    else:
        y = rng.uniform(0, 1, (7, 3))
        y[:, 0] = np.round(y[:, 0])
    if activation == "relu":  # no hidden pre-activation near ReLU's kink
        a = x
        for wi, bi in zip(w[:-1], (b or [0] * depth)[:-1]):
            z = a @ wi + bi
            assert np.min(np.abs(z)) > 1e-3
            a = np.maximum(z, 0)
    value, grads = reference.loss_and_grad(x, y, w, b, activation=activation, loss=loss)
    assert value == pytest.approx(objective(x, y, w, b, activation, loss), rel=1e-13)
    fd = finite_differences(x, y, w, b, activation, loss)
    scale = max(float(np.max(np.abs(g))) for pair in fd for g in pair if g is not None)
    for i, ((gw, gb), (fw, fb)) in enumerate(zip(grads, fd)):
        assert np.max(np.abs(gw - fw)) <= 1e-6 * scale, f"layer {i} weights"
        if bias:
            assert np.max(np.abs(gb - fb)) <= 1e-6 * scale, f"layer {i} bias"


# --------------------------------------------------------------------------- fastnn vs reference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("depth, activation", ARCHS, ids=ARCH_IDS)
@pytest.mark.parametrize("loss", CLASS_LOSSES)
def test_matches_reference(loss, depth, activation, mode, dtype):
    # 13 rows, 3 outputs, 20 epochs at lr 0.1 (softmax_ce) / 0.2 (sigmoid_bce). Worst 1-ulp
    # spread over these cases: float64 history 3.2e-15, parameters 5.1e-15; float32 7.6e-7,
    # 3.1e-6. fastnn vs reference: float64 6.2e-16 / 2.9e-15, float32 2.2e-7 / 2.1e-6. Every
    # case moves its parameters by >= 20%. (softmax_ce at lr 0.2 is chaotic for the deep
    # identity net with batch_size=1: spread 3e-4 in float32.)
    x, y, w, b = class_net(depth, dtype, loss)
    compare_with(x, y, w, b, activation=activation_for(activation, depth), loss=loss,
                 lr=LR[loss], epochs=20, rtol=RTOL[dtype], **MODES[mode])


def path_of(x, y, w, b, loss, batch_size=None, optimizer=None):
    """Which of run_epochs's paths train takes: 'generic', 'sample' or 'gram'."""
    net = _validate.check_network(x, y, w, b, "tanh", loss, update=False)
    plain = fastnn.optim.resolve(0.1, None)  # lr=: an optimizer object never takes the Gram path
    run = _state.Run(net, optimizer or plain, _state.Setup(batch_size=batch_size))
    sample, gram, _ = run.path
    return "sample" if sample else "gram" if gram else "generic"


def wide_net(dtype, loss, seed=3):
    """6 rows of 64 features into 48 tanh units: full-batch plain SGD takes the Gram path."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 64))
    w = [rng.standard_normal((64, 48)) / 8, rng.standard_normal((48, 3)) / 7]
    b = [0.1 * rng.standard_normal(48), 0.1 * rng.standard_normal(3)]
    y = np.eye(3)[[0, 1, 2, 0, 1, 2]] if loss == "softmax_ce" else rng.uniform(0, 1, (6, 3))
    cast = lambda arrays: [a.astype(dtype) for a in arrays]  # noqa: E731
    return x.astype(dtype), y.astype(dtype), cast(w), cast(b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", CLASS_LOSSES)
def test_gram_path_matches_reference(loss, dtype):
    # The Gram path carries x w1 from epoch to epoch (a different rounding of the same sums).
    # 20 epochs at lr 0.1: 1-ulp spread float64 <= 1.8e-15 (history) / 5.2e-16 (parameters),
    # float32 3.7e-7 / 3.0e-7; fastnn vs reference float64 1.6e-15 / 4.4e-16, float32
    # 1.1e-6 / 2.4e-7.
    x, y, w, b = wide_net(dtype, loss)
    assert path_of(x, y, w, b, loss) == "gram"
    compare_with(x, y, w, b, activation="tanh", loss=loss, lr=0.1, epochs=20, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_paths_taken(dtype):
    # the grid above covers every path a classification loss can take: the one-row path for
    # sigmoid_bce (softmax_ce needs a whole output row: the generic path), and the generic path
    x, y, w, b = class_net(3, dtype, "sigmoid_bce")
    assert path_of(x, y, w, b, "sigmoid_bce", batch_size=1) == "sample"
    assert path_of(x, y, w, b, "sigmoid_bce", batch_size=5) == "generic"
    x, y, w, b = class_net(3, dtype, "softmax_ce")
    assert path_of(x, y, w, b, "softmax_ce", batch_size=1) == "generic"
    assert path_of(x, y, w, b, "softmax_ce", batch_size=1, optimizer=fastnn.Adam()) == "generic"


# --------------------------------------------------------------------------- integer labels

LABEL_FORMS = {
    "int64": lambda c: c.astype(np.int64),
    "int32": lambda c: c.astype(np.int32),
    "uint8": lambda c: c.astype(np.uint8),
    "float64-integral": lambda c: c.astype(np.float64),
    "float32-integral": lambda c: c.astype(np.float32),
    "list": lambda c: c.tolist(),
}


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", list(LABEL_FORMS))
def test_labels_bitwise_equal_one_hot(form, dtype, fn):
    x, labels, w, b = class_net(2, dtype, "softmax_ce", labels=True)
    onehot = np.eye(3, dtype=dtype)[labels]
    for kw in ({}, {"batch_size": 4, "shuffle": True, "seed": 5}, {"batch_size": 1},
               {"optimizer": lambda: fastnn.Adam(0.01)}):
        kw = dict(kw, activation="tanh", loss="softmax_ce", epochs=6)
        make = kw.pop("optimizer", None)
        if make is None:
            kw["lr"] = 0.1
        h_onehot, p_onehot, _ = run_with(fn, x, onehot, w, b, make, **kw)
        y = LABEL_FORMS[form](labels)
        before = np.array(y, copy=True)
        h_labels, p_labels, _ = run_with(fn, x, y, w, b, make, **kw)
        np.testing.assert_array_equal(h_labels, h_onehot, strict=True)
        for a, e in zip(p_labels, p_onehot):
            np.testing.assert_array_equal(a, e, strict=True)
        np.testing.assert_array_equal(np.asarray(y), before)  # labels are not written
    assert max(float(np.max(np.abs(p - q))) for p, q in zip(p_onehot, w + b)) > 1e-2


# --------------------------------------------------------------------------- bad targets

def base_case(loss):
    x, y, w, b = class_net(2, F64, loss, rows=6)
    return x, y, w, b


def with_entry(a, index, value):
    a[index] = value
    return a


BAD_TARGETS = [
    ("softmax_ce", "label-negative", np.array([0, 1, -1, 2, 0, 1]),
     r"^y as class labels .* \[0, 3\), found -1"),
    ("softmax_ce", "label-too-big", np.array([0, 1, 3, 2, 0, 1]),
     r"^y as class labels .* \[0, 3\), found 3"),
    ("softmax_ce", "label-fraction", np.array([0, 1, 1.5, 2, 0, 1]),
     r"^y as class labels .*non-integer"),
    ("softmax_ce", "label-nan", np.array([0, 1, np.nan, 2, 0, 1]),
     r"^y as class labels .*non-integer"),
    ("softmax_ce", "label-inf", np.array([0, 1, np.inf, 2, 0, 1]),
     r"^y as class labels .*non-integer"),
    ("softmax_ce", "row-sum-low", np.array([[1, 0, 0]] * 5 + [[0.5, 0.4, 0.0]]),
     r"^y for softmax_ce must be probability rows.*row 5 summing to 0\.9"),
    ("softmax_ce", "row-sum-high", np.array([[0.2, 0.3, 0.6]] + [[0, 1, 0]] * 5),
     r"^y for softmax_ce must be probability rows.*row 0 summing to 1\.1"),
    ("softmax_ce", "row-negative", np.array([[1.2, -0.2, 0.0]] + [[0, 1, 0]] * 5),
     r"^y for softmax_ce must be probability rows.*found -0\.2"),
    ("softmax_ce", "rows-of-zeros", np.zeros((6, 3)),
     r"^y for softmax_ce must be probability rows"),
    ("sigmoid_bce", "below-0", with_entry(np.full((6, 3), 0.5), (4, 1), -0.25),
     r"^y for sigmoid_bce must lie in \[0, 1\], found -0\.25"),
    ("sigmoid_bce", "above-1", with_entry(np.full((6, 3), 0.5), (2, 0), 1.5),
     r"^y for sigmoid_bce must lie in \[0, 1\], found 1\.5"),
    ("sigmoid_bce", "labels-for-3-outputs", np.array([0, 1, 1, 0, 1, 0]),
     r"^a 1-D y needs a network with one output, found 3"),
]


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
@pytest.mark.parametrize("loss, name, y, pattern", BAD_TARGETS, ids=[c[1] for c in BAD_TARGETS])
def test_bad_targets_rejected(loss, name, y, pattern, fn):
    x, _, w, b = base_case(loss)
    opt = fastnn.SGD(0.1, momentum=0.5)
    arrays = [x, y] + w + b
    before = [a.copy() for a in arrays]
    with pytest.raises(ValueError, match=pattern):
        fn(x, y, w, b, activation="tanh", loss=loss, optimizer=opt, epochs=2)
    for a, s in zip(arrays, before):
        np.testing.assert_array_equal(a, s, strict=True)
    assert opt.steps == 0  # the optimizer took no state either


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
def test_good_targets_at_the_edges_accepted(fn):
    # probability rows that sum to 1 within rounding, BCE targets exactly 0 and 1, float32
    # rows for a float32 network, and labels as a float array of integers
    x, _, w, b = base_case("softmax_ce")
    rows = np.random.default_rng(0).dirichlet(np.ones(3), 6)  # sums 1 +- a few ulp
    fn(x, rows, copies(w), copies(b), loss="softmax_ce", lr=0.1, epochs=1)
    fn(x.astype(F32), rows.astype(F32), [a.astype(F32) for a in w], [a.astype(F32) for a in b],
       loss="softmax_ce", lr=0.1, epochs=1)
    fn(x, np.eye(6, 3), copies(w), copies(b), loss="sigmoid_bce", lr=0.1, epochs=1)
    fn(x, np.array([0.0, 2.0, 1.0, 0.0, 2.0, 1.0]), copies(w), copies(b), loss="softmax_ce",
       lr=0.1, epochs=1)


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
def test_float32_probability_rows_for_a_float64_network(fn):
    x, _, w, b = class_net(2, F64, "softmax_ce")
    rows = np.random.default_rng(0).dirichlet(np.ones(3), x.shape[0]).astype(F32)
    assert np.abs(rows.sum(axis=1, dtype=F32) - 1).max() <= 2 * np.finfo(F32).eps
    fn(x, rows, copies(w), copies(b), loss="softmax_ce", lr=0.1, epochs=1)


# --------------------------------------------------------------------------- huge logits

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", CLASS_LOSSES)
def test_huge_logits_give_finite_losses(loss, dtype):
    # Output weights scaled so the logits reach |z| ~ 1e4 (float32's exp overflows past 88,
    # float64's past 709): the losses are large but finite, training runs (a tiny lr keeps the
    # steps finite), fastnn matches the reference (loss ~ 1e4 is well conditioned: rtol as
    # elsewhere), and NumPy warns of nothing on either side.
    x, y, w, b = class_net(2, dtype, loss)
    w = [w[0], (w[1] * 3000).astype(dtype)]
    z = np.abs(reference.predict(x, w, b, activation="tanh"))
    assert z.max() > 2000
    kw = dict(activation="tanh", loss=loss, lr=1e-6, epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h_fast, p_fast, _ = run_with(fastnn.train, x, y, w, b, **kw)
        h_ref, p_ref, _ = run_with(reference.train, x, y, w, b, **kw)
        out = fastnn.predict(x, p_fast[:2], p_fast[2:], activation="tanh",
                             output="softmax" if loss == "softmax_ce" else "sigmoid")
    assert np.isfinite(h_fast).all() and h_fast.min() > 100
    np.testing.assert_allclose(h_fast, h_ref, rtol=RTOL[dtype])
    assert_params_close(p_fast, p_ref, RTOL[dtype])
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    if loss == "softmax_ce":
        np.testing.assert_allclose(out.sum(axis=1, dtype=np.float64), 1.0,
                                   atol=4 * np.finfo(dtype).eps)


# --------------------------------------------------------------------------- predict

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
@pytest.mark.parametrize("depth, activation", ARCHS, ids=ARCH_IDS)
def test_predict_output_matches_reference(depth, activation, output, dtype):
    # One forward pass and the output map: measured max |diff| / max |out| <= 9.1e-16 (float64)
    # and 2.3e-7 (float32); rtol 1e-12 / 1e-5 (the training tolerances would hide a softmax
    # over the wrong axis only where the outputs are near-uniform, not here).
    x, _, w, b = class_net(depth, dtype, "softmax_ce")
    w[-1] = (3 * w[-1]).astype(dtype)  # spread the logits
    act = activation_for(activation, depth)
    out = fastnn.predict(x, w, b, activation=act, output=output)
    ref = reference.predict(x, w, b, activation=act, output=output)
    assert out.shape == ref.shape == (x.shape[0], 3) and out.dtype == dtype
    assert_params_close([out], [ref], {F64: 1e-12, F32: 1e-5}[dtype], "prediction")
    if output == "softmax":
        np.testing.assert_allclose(out.sum(axis=1, dtype=np.float64), 1.0,
                                   atol=8 * np.finfo(dtype).eps)
        assert np.all(np.argmax(out, axis=1) == np.argmax(
            fastnn.predict(x, w, b, activation=act), axis=1))
    if output == "sigmoid":
        z = reference.predict(x, w, b, activation=act).astype(np.float64)
        np.testing.assert_allclose(out, 1 / (1 + np.exp(-z)), rtol={F64: 1e-14, F32: 1e-6}[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_softmax_many_rows(dtype):
    # more rows than predict's blocks (4096): each block's softmax uses its own scratch
    x, _, w, b = class_net(3, dtype, "softmax_ce", rows=9001)
    w[-1] = (5 * w[-1]).astype(dtype)
    out = fastnn.predict(x, w, b, activation="relu", output="softmax")
    ref = reference.predict(x, w, b, activation="relu", output="softmax")
    err = np.max(np.abs(out - ref), axis=1)  # row by row
    assert np.all(err <= {F64: 1e-12, F32: 1e-5}[dtype])


@pytest.mark.parametrize("predict", [fastnn.predict, reference.predict],
                         ids=["fastnn", "reference"])
def test_predict_bad_output(predict):
    x, _, w, b = class_net(2, F64, "softmax_ce")
    for bad in ("logsoftmax", "Softmax", None, 1):
        with pytest.raises(ValueError, match=r"^output must be one of 'identity', 'softmax', "
                                             r"'sigmoid', found"):
            predict(x, w, b, output=bad)
