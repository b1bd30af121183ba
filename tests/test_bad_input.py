"""Bad input (issue 2): the right exception, a message naming the argument and what
was found, and no array modified, for fastnn.train, fastnn.reference.train and,
where the argument applies, fastnn.predict.

Each case starts from a valid network (x (6, 3), y (6, 2), weights (3, 4) and (4, 2),
biases (4,) and (1, 2)) and breaks one thing. Every array reachable from the call
(and the parent of every view) is snapshotted before the call and compared bytewise
after it.
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import fastnn
from fastnn import reference

VALID_ACTIVATIONS = ("identity", "relu", "sigmoid", "tanh")


def valid():
    rng = np.random.default_rng(0)
    return dict(
        x=rng.standard_normal((6, 3)),
        y=rng.standard_normal((6, 2)),
        weights=[rng.standard_normal((3, 4)), rng.standard_normal((4, 2))],
        biases=[rng.standard_normal(4), rng.standard_normal((1, 2))],
        kw=dict(lr=0.01, epochs=2),
        keep=[],  # parents of views, snapshotted too
    )


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def setw(i, make):
    def edit(c):
        c["weights"][i] = make(c["weights"][i])
    return edit


def setb(i, make):
    def edit(c):
        c["biases"][i] = make(c["biases"][i])
    return edit


def put(**values):
    def edit(c):
        for k, v in values.items():
            if k in ("x", "y", "weights", "biases"):
                c[k] = v(c[k]) if callable(v) else v
            else:
                c["kw"][k] = v
    return edit


def with_nan(name, index, value=np.nan):
    def edit(c):
        a = c[name].copy()
        a[index] = value
        c[name] = a
    return edit


def square_net_same_weight(c):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 3))
    c["weights"] = [w, w, rng.standard_normal((3, 2))]
    c["biases"] = None


def square_net_same_bias(c):
    rng = np.random.default_rng(1)
    b = np.zeros(3)
    c["weights"] = [rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal((3, 2))]
    c["biases"] = [b, b, rng.standard_normal(2)]


def overlapping_weights(c):
    big = np.random.default_rng(2).standard_normal((4, 6))
    c["weights"] = [big[:3, :4], big[:, 3:5]]  # column 3 is in both
    c["keep"].append(big)


def bias_view_of_weight(c):
    c["biases"][0] = c["weights"][1][:, 0]  # (4,) column of weights[1]


def weight_view_of_x(c):
    big = np.random.default_rng(3).standard_normal((6, 7))
    c["x"] = big[:, :3]
    c["weights"][0] = big[:3, 2:6]  # column 2 is x's last column
    c["keep"].append(big)


def self_overlapping(strides, length):
    """A writeable (3, 4) weight whose elements share memory, over ``length`` values."""
    def edit(c):
        base = np.random.default_rng(5).standard_normal(length)
        c["weights"][0] = as_strided(base, (3, 4), strides)
        c["keep"].append(base)
    return edit


def zero_stride_bias(c):
    base = np.zeros(1)
    c["biases"][0] = as_strided(base, (4,), (0,))
    c["keep"].append(base)


def validation_view_of_weight(c):
    c["kw"]["validation"] = (c["weights"][0][:, :3], np.zeros((3, 2)))


def float32_net(**kw):
    def edit(c):
        c["weights"] = [w.astype(np.float32) for w in c["weights"]]
        c["biases"] = [b.astype(np.float32) for b in c["biases"]]
        c["kw"].update(kw)
    return edit


def float32_net_x_beyond_range(c):
    float32_net()(c)
    c["x"] = c["x"].copy()
    c["x"][0, 0] = 1e200


def weight_view_of_y(c):
    big = np.random.default_rng(3).standard_normal((6, 6))
    c["y"] = big[:, :2]
    c["weights"][1] = big[:4, 1:3]
    c["keep"].append(big)


# (id, edit, exception, regex matched against the message, applies to predict)
CASES = [
    # wrong ndim
    ("x-1d", put(x=lambda x: x[:, 0]), ValueError, r"^x must be 2-D.*found shape \(6,\)", True),
    ("x-3d", put(x=lambda x: x[None]), ValueError, r"^x must be 2-D.*found shape \(1, 6, 3\)", True),
    ("x-0d", put(x=np.float64(1.0)), ValueError, r"^x must be 2-D.*found shape \(\)", True),
    ("y-1d", put(y=lambda y: y[:, 0]), ValueError,
     r"^a 1-D y needs a network with one output, found 2 outputs", False),
    ("y-3d", put(y=lambda y: y[None]), ValueError, r"^y must be 1-D or 2-D.*found shape \(1, 6, 2\)",
     False),
    ("weight-1d", setw(0, np.ravel), ValueError, r"^weights\[0\] must be 2-D.*found shape \(12,\)", True),
    ("weight-3d", setw(1, lambda w: w[None]), ValueError,
     r"^weights\[1\] must be 2-D.*found shape \(1, 4, 2\)", True),
    ("bias-column", setb(0, lambda b: b[:, None].copy()), ValueError,
     r"^biases\[0\] must have shape \(4,\) or \(1, 4\), found shape \(4, 1\)", True),
    ("bias-3d", setb(1, lambda b: b[None].copy()), ValueError,
     r"^biases\[1\] must have shape \(2,\) or \(1, 2\), found shape \(1, 1, 2\)", True),
    # rows and chaining
    ("xy-rows", put(y=lambda y: y[:5]), ValueError, r"^y must have one row per row of x \(6\), found 5 rows", False),
    ("no-chain", setw(1, lambda w: np.zeros((5, 2))), ValueError,
     r"^weights\[1\] must have 4 rows.*found shape \(5, 2\)", True),
    ("x-columns", put(x=np.zeros((6, 4))), ValueError,
     r"^x must have 3 columns.*weights\[0\].*found shape \(6, 4\)", True),
    ("y-columns", put(y=np.zeros((6, 3))), ValueError,
     r"^y must have 2 columns.*\(weights\[-1\]\), found shape \(6, 3\)", False),
    ("zero-width", put(weights=[np.zeros((3, 0)), np.zeros((0, 2))], biases=None), ValueError,
     r"^weights\[0\] must have no zero dimension, found shape \(3, 0\)", True),
    # biases: shape and count
    ("bias-length", setb(0, lambda b: np.zeros(5)), ValueError,
     r"^biases\[0\] must have shape \(4,\) or \(1, 4\), found shape \(5,\)", True),
    ("bias-count-1", put(biases=lambda b: b[:1]), ValueError,
     r"^biases must hold one array per layer \(2\), found 1", True),
    ("bias-count-3", put(biases=lambda b: b + [np.zeros(2)]), ValueError,
     r"^biases must hold one array per layer \(2\), found 3", True),
    ("biases-array", put(biases=np.zeros(4)), TypeError,
     r"^biases must be None or a list or tuple.*found float64 array of shape \(4,\)", True),
    ("bias-list", setb(0, lambda b: b.tolist()), TypeError, r"^biases\[0\] must be a numpy.ndarray.*found list", True),
    # dtypes
    ("weight-int", setw(0, lambda w: np.round(w).astype(np.int64)), TypeError,
     r"^weights\[0\] must have dtype float32 or float64, found int64", True),
    ("weight-complex", setw(1, lambda w: w.astype(complex)), TypeError,
     r"^weights\[1\] must have dtype float32 or float64, found complex128", True),
    ("weight-object", setw(0, lambda w: w.astype(object)), TypeError,
     r"^weights\[0\] must have dtype float32 or float64, found object", True),
    ("weight-float16", setw(0, lambda w: w.astype(np.float16)), TypeError,
     r"^weights\[0\] must have dtype float32 or float64, found float16", True),
    ("bias-int", setb(0, lambda b: np.zeros(4, np.int32)), TypeError,
     r"^biases\[0\] must have dtype float32 or float64, found int32", True),
    ("mixed-weights", setw(1, lambda w: w.astype(np.float32)), TypeError,
     r"^weights\[1\] has dtype float32 but weights\[0\] has float64", True),
    ("mixed-bias", setb(1, lambda b: b.astype(np.float32)), TypeError,
     r"^biases\[1\] has dtype float32 but weights\[0\] has float64", True),
    ("x-complex", put(x=lambda x: x.astype(complex)), TypeError, r"^x must hold real numbers, found dtype complex128", True),
    ("x-strings", put(x=np.full((6, 3), "a")), TypeError, r"^x must hold real numbers, found dtype <U1", True),
    ("y-object", put(y=lambda y: y.astype(object)), TypeError, r"^y must hold real numbers, found dtype object", False),
    # read-only parameters (the last ones, so earlier arrays would show any update)
    ("readonly-weight", setw(1, readonly), ValueError, r"^weights\[1\] is read-only", False),
    ("readonly-bias", setb(1, readonly), ValueError, r"^biases\[1\] is read-only", False),
    # the same memory twice
    ("same-weight", square_net_same_weight, ValueError, r"^weights\[1\] and weights\[0\] are the same array", False),
    ("same-bias", square_net_same_bias, ValueError, r"^biases\[1\] and biases\[0\] are the same array", False),
    ("overlapping-weights", overlapping_weights, ValueError, r"^weights\[1\] and weights\[0\] share memory", False),
    ("bias-in-weight", bias_view_of_weight, ValueError, r"^biases\[0\] and weights\[1\] share memory", False),
    ("weight-in-x", weight_view_of_x, ValueError, r"^weights\[0\] shares memory with x", False),
    ("weight-in-y", weight_view_of_y, ValueError, r"^weights\[1\] shares memory with y", False),
    ("weight-rows-one-memory", self_overlapping((0, 8), 4), ValueError,
     r"^weights\[0\] has elements that share memory \(strides \(0, 8\)", False),
    ("weight-rows-overlap", self_overlapping((16, 8), 8), ValueError,
     r"^weights\[0\] has elements that share memory \(strides \(16, 8\)", False),
    ("bias-one-value", zero_stride_bias, ValueError,
     r"^biases\[0\] has elements that share memory", False),
    ("validation-in-weight", validation_view_of_weight, ValueError,
     r"^weights\[0\] shares memory with validation\[0\] \(x_val\)", False),
    ("weight-masked", setw(0, lambda w: np.ma.masked_array(w, mask=np.zeros(w.shape, bool))),
     TypeError, r"^weights\[0\] must be a numpy.ndarray.*mask.*found MaskedArray", True),
    # lr, epochs, batch_size
    ("lr-nan", put(lr=float("nan")), ValueError, r"^lr must be finite and > 0, found nan", False),
    ("lr-inf", put(lr=float("inf")), ValueError, r"^lr must be finite and > 0, found inf", False),
    ("lr-zero", put(lr=0.0), ValueError, r"^lr must be finite and > 0, found 0", False),
    ("lr-negative", put(lr=-1e-3), ValueError, r"^lr must be finite and > 0, found -0.001", False),
    ("lr-string", put(lr="0.1"), TypeError, r"^lr must be a real number, found str", False),
    ("lr-none", put(lr=None), TypeError, r"^give exactly one of lr .* found neither", False),
    ("lr-bool", put(lr=True), TypeError, r"^lr must be a real number, found bool", False),
    ("lr-0-in-float32", float32_net(lr=1e-50), ValueError,
     r"^lr must be representable in the network's dtype float32, found 1e-50, which is 0.0", False),
    ("lr-inf-in-float32", float32_net(lr=1e300), ValueError,
     r"^lr must be representable in the network's dtype float32, found 1e\+300, which is inf",
     False),
    ("adam-eps-0-in-float32", float32_net(lr=None, optimizer=fastnn.Adam(eps=1e-50)), ValueError,
     r"^eps must be representable in the network's dtype float32, found 1e-50", False),
    ("epochs-zero", put(epochs=0), ValueError, r"^epochs must be >= 1, found 0", False),
    ("epochs-negative", put(epochs=-5), ValueError, r"^epochs must be >= 1, found -5", False),
    ("epochs-float", put(epochs=2.0), TypeError, r"^epochs must be an int, found float", False),
    ("epochs-string", put(epochs="2"), TypeError, r"^epochs must be an int, found str", False),
    ("batch-zero", put(batch_size=0), ValueError, r"^batch_size must be >= 1, found 0", False),
    ("batch-negative", put(batch_size=-2), ValueError, r"^batch_size must be >= 1, found -2", False),
    ("batch-float", put(batch_size=2.5), TypeError, r"^batch_size must be an int, found float", False),
    # names
    ("activation-unknown", put(activation="softmax"), ValueError, r"^activation must be one of .*found 'softmax'", True),
    ("activation-case", put(activation="ReLU"), ValueError, r"^activation must be one of .*found 'ReLU'", True),
    ("activation-list-unknown", put(activation=["swish"]), ValueError,
     r"^activation must be one of .*found 'swish'", True),
    ("activation-list-length", put(activation=["relu", "tanh"]), ValueError,
     r"^activation must be one name or a sequence of one name per hidden layer \(1\), found a sequence of 2", True),
    ("activation-none", put(activation=None), TypeError, r"^activation must be a name.*found NoneType", True),
    ("loss-unknown", put(loss="mae"), ValueError,
     r"^loss must be one of 'sse', 'mse', 'softmax_ce', 'sigmoid_bce', found 'mae'", False),
    ("loss-none", put(loss=None), TypeError, r"^loss must be a name, found NoneType", False),
    # data
    ("x-empty", put(x=np.zeros((0, 3)), y=np.zeros((0, 2))), ValueError,
     r"^x must have at least one row, found shape \(0, 3\)", True),
    ("x-nan", with_nan("x", (2, 1)), ValueError, r"^x must be finite, found nan at index \(2, 1\)", True),
    ("x-inf", with_nan("x", (0, 0), -np.inf), ValueError, r"^x must be finite, found -inf at index \(0, 0\)", True),
    ("y-nan", with_nan("y", (3, 0)), ValueError, r"^y must be finite, found nan at index \(3, 0\)", False),
    ("y-inf", with_nan("y", (5, 1), np.inf), ValueError, r"^y must be finite, found inf at index \(5, 1\)", False),
    ("y-none", put(y=None), TypeError, r"^y must be an array of targets.*found None", False),
    ("x-beyond-float32", float32_net_x_beyond_range, ValueError,
     r"^x must be finite in the network's dtype float32, found 1e\+200 at index \(0, 0\), "
     r"beyond its largest value 3\.403e\+38", True),
    ("check-finite-string", put(check_finite="no"), TypeError,
     r"^check_finite must be True or False, found str", False),
    # containers
    ("weights-array", put(weights=lambda w: w[0]), TypeError,
     r"^weights must be a list or tuple.*found float64 array of shape \(3, 4\)", True),
    ("weights-none", put(weights=None), TypeError, r"^weights must be a list or tuple.*found NoneType", True),
    ("weights-empty", put(weights=[], biases=None), ValueError, r"^weights must hold at least one layer", True),
    ("weight-list", setw(0, lambda w: w.tolist()), TypeError,
     r"^weights\[0\] must be a numpy.ndarray.*found list", True),
    ("weight-matrix-of-lists", put(weights=lambda w: [w[0], w[1].tolist()]), TypeError,
     r"^weights\[1\] must be a numpy.ndarray.*found list", True),
    # parameters must start finite (training only)
    ("weight-nan", setw(1, lambda w: np.where(np.arange(w.size).reshape(w.shape) == 3, np.nan, w)),
     ValueError, r"^weights\[1\] must be finite before training, found nan at index \(1, 1\) "
                 r"\(or pass check_finite=False\)", False),
]

TRAINERS = [pytest.param(fastnn.train, id="fastnn"), pytest.param(reference.train, id="reference")]


def arrays_of(case):
    out = []
    for key in ("x", "y"):
        if isinstance(case[key], np.ndarray):
            out.append(case[key])
    for key in ("weights", "biases"):
        if isinstance(case[key], (list, tuple)):
            out += [a for a in case[key] if isinstance(a, np.ndarray)]
        elif isinstance(case[key], np.ndarray):
            out.append(case[key])
    return out + case["keep"]


def snapshot(arrays):
    return [(a, a.dtype, a.shape, a.tobytes()) for a in arrays]


def assert_untouched(snap):
    for a, dtype, shape, data in snap:
        assert a.dtype == dtype and a.shape == shape and a.tobytes() == data


def build(edit):
    case = valid()
    edit(case)
    return case


@pytest.mark.parametrize("fn", TRAINERS)
def test_valid_base_case_trains(fn):
    """The control: without the edit, every case's starting point is accepted, so
    the errors below come from the edit alone."""
    case = valid()
    before = snapshot(arrays_of(case))
    history = fn(case["x"], case["y"], case["weights"], case["biases"], **case["kw"])
    assert history.shape == (2,)
    assert any(a.tobytes() != data for a, _, _, data in before[2:])  # parameters did change
    # NumPy scalars are fine where Python numbers are
    fn(case["x"], case["y"], case["weights"], case["biases"], lr=np.float32(0.01),
       epochs=np.int64(2), batch_size=np.int32(4), shuffle=np.bool_(True), seed=np.int64(3))
    fn(case["x"], case["y"], case["weights"], case["biases"], lr=np.array(0.01), epochs=1,
       check_finite=np.bool_(False))  # a 0-d array is its number


@pytest.mark.parametrize("fn", TRAINERS)
@pytest.mark.parametrize("name, edit, exc, pattern, _", CASES, ids=[c[0] for c in CASES])
def test_train_rejects(fn, name, edit, exc, pattern, _):
    case = build(edit)
    snap = snapshot(arrays_of(case))
    with pytest.raises(exc, match=pattern) as info:
        fn(case["x"], case["y"], case["weights"], case["biases"], **case["kw"])
    other = ValueError if exc is TypeError else TypeError
    assert not isinstance(info.value, other)  # TypeError vs ValueError, not both
    if name in ("activation-unknown", "activation-case", "activation-list-unknown"):
        assert all(repr(n) in str(info.value) for n in VALID_ACTIVATIONS)
    if name == "loss-unknown":
        assert "'sse'" in str(info.value) and "'mse'" in str(info.value)
    assert_untouched(snap)


PREDICT_CASES = [c for c in CASES if c[4]]


@pytest.mark.parametrize("name, edit, exc, pattern, _", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
def test_predict_rejects(name, edit, exc, pattern, _):
    case = build(edit)
    snap = snapshot(arrays_of(case))
    activation = case["kw"].get("activation", "relu")
    with pytest.raises(exc, match=pattern):
        fastnn.predict(case["x"], case["weights"], case["biases"], activation=activation)
    with pytest.raises(exc, match=pattern):
        reference.predict(case["x"], case["weights"], case["biases"], activation=activation)
    assert_untouched(snap)


@pytest.mark.parametrize("predict", [fastnn.predict, reference.predict], ids=["fastnn", "reference"])
def test_predict_accepts_readonly_and_shared_parameters(predict):
    """predict only reads: read-only weights and biases, or one array used twice, are fine."""
    case = valid()
    expected = predict(case["x"], case["weights"], case["biases"])
    ro_w = [readonly(a) for a in case["weights"]]
    ro_b = [readonly(a) for a in case["biases"]]
    np.testing.assert_array_equal(predict(readonly(case["x"]), ro_w, ro_b), expected)
    w = np.random.default_rng(1).standard_normal((3, 3))
    out = predict(case["x"], [w, w], None, activation="tanh")
    np.testing.assert_allclose(out, np.tanh(case["x"] @ w) @ w, rtol=1e-12)


@pytest.mark.parametrize("fn", TRAINERS)
def test_error_leaves_earlier_parameters_untouched_even_with_valid_prefix(fn):
    """A bad last argument (y's final element) with a long valid network: validation
    finishes before any parameter is written."""
    rng = np.random.default_rng(4)
    w = [rng.standard_normal((3, 5)), rng.standard_normal((5, 5)), rng.standard_normal((5, 2))]
    b = [rng.standard_normal(5), rng.standard_normal((1, 5)), rng.standard_normal(2)]
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    y[-1, -1] = np.nan
    snap = snapshot([x, y] + w + b)
    with pytest.raises(ValueError, match=r"^y must be finite"):
        fn(x, y, w, b, lr=0.01, epochs=3, batch_size=2)
    assert_untouched(snap)


@pytest.mark.parametrize("call, pattern", [
    (lambda z: reference.activation_forward(z, "softmax"), r"^activation must be one of .*'softmax'"),
    (lambda z: reference.activation_forward(z, None), r"^activation must be one of .*None"),
    (lambda z: reference.activation_backward(z, z, "gelu"), r"^activation must be one of .*'gelu'"),
    (lambda z: reference.dense_forward(z, np.eye(2), None, "swish"), r"^activation must be one"),
    (lambda z: reference.loss_forward_backward(z, z, "mae"), r"^loss must be one of .*'mae'"),
    (lambda z: reference.loss_forward_backward(z, z, 2), r"^loss must be one of .*found 2"),
    (lambda z: reference.optimizer_update(z, z, z.copy(), z.copy(), 99, np.zeros(7), False, 1, 0),
     r"^rule must be one of 0, 1, 2, 3, found 99"),
], ids=["act-softmax", "act-none", "slope-gelu", "dense-swish", "loss-mae", "loss-code",
        "rule-99"])
def test_reference_operations_refuse_unknown_names(call, pattern):
    """The oracle's building blocks compute only what they name: an unknown name or code
    used to fall through to identity, mse or scikit-learn's Adam."""
    z = np.random.default_rng(6).standard_normal((3, 2))
    snap = snapshot([z])
    with pytest.raises(ValueError, match=pattern):
        call(z)
    assert_untouched(snap)
