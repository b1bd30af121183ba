"""Optimizers (issue 17): fastnn.SGD (momentum, Nesterov, weight decay) and fastnn.Adam as
torch.optim defines them, scikit-learn's rules (fastnn.optim.SklearnRule), and their state.

* fastnn.train against fastnn.reference.train: optimizers x losses x batch modes x dtypes;
* against torch.optim when torch is installed (trajectories with autograd gradients), and
  the scikit-learn rules against sklearn's own optimizer classes when it is installed;
* resumable state: two calls of 10 epochs give bitwise one call of 20 (shuffled runs pass one
  np.random.Generator as ``seed`` to both calls, so the second continues the stream of row
  orders; an int seed would restart it), other arrays raise ValueError, ``reset()``;
* the state after a DivergenceError matches the weights written back;
* bad input: TypeError / ValueError naming the argument, nothing modified.

Tolerances: rtol 1e-9 (float64) / 1e-4 (float32), measured as in test_equivalence (reference
rerun from initial parameters moved by +-1 ulp, ``helpers.ulp_spread``); see each test.
"""

import warnings

import numpy as np
import pytest

import fastnn
from fastnn import reference
from fastnn.optim import SklearnRule
from helpers import (DTYPES, F64, MODES, RTOL, activation_for, assert_params_close, buffers_of,
                     class_net, compare_with, copies, grid_net, run_with)

LOSSES = ["sse", "mse", "softmax_ce", "sigmoid_bce"]
BASE_LR = {"sse": 0.005, "mse": 0.05, "softmax_ce": 0.1, "sigmoid_bce": 0.2}

# name -> optimizer factory given the loss's plain-SGD lr. Adam's eps 1e-3 is comparable to
# sqrt(v), so a misplaced eps shows; the scikit-learn rules decay the weights only, by alpha / m.
OPTIMIZERS = {
    "sgd-momentum": lambda lr: fastnn.SGD(lr / 4, momentum=0.75),
    "sgd-nesterov-wd": lambda lr: fastnn.SGD(lr / 2, momentum=0.5, nesterov=True,
                                             weight_decay=0.01),
    "sgd-wd": lambda lr: fastnn.SGD(lr, weight_decay=0.05),
    "adam": lambda lr: fastnn.Adam(0.01),
    "adam-betas-eps-wd": lambda lr: fastnn.Adam(0.01, betas=(0.8, 0.99), eps=1e-3,
                                                weight_decay=0.05),
    "sk-sgd-nesterov": lambda lr: SklearnRule("sgd", lr / 4, alpha=0.1, momentum=0.75,
                                              nesterov=True),
    "sk-adam": lambda lr: SklearnRule("adam", 0.01, alpha=0.1),
}
# two networks: 4-5-3 relu with biases, and 4-5-3-3 relu/tanh without
ARCH = [(2, "relu"), (3, "per-layer")]


def problem(opt_name, loss, dtype):
    depth, activation = ARCH[(list(OPTIMIZERS).index(opt_name) + LOSSES.index(loss)) % 2]
    x, y, w, b = class_net(depth, dtype, loss)
    return x, y, w, b, activation_for(activation, depth)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_matches_reference(opt, loss, mode, dtype, chunked):
    # 10 epochs. Worst 1-ulp spread over these cases: float64 history 4.7e-16, parameters
    # 2.3e-15; float32 1.1e-7 / 7.4e-7. fastnn vs reference: SGD rules float64 4.8e-16 /
    # 6.5e-16, float32 7.0e-8 / 3.5e-7; Adam rules float64 2.9e-15 / 2.5e-14, float32 1.2e-6 /
    # 1.2e-5. Adam moves further than the spread of the initial weights suggests: it divides
    # gradients, which rounding perturbs most where they nearly cancel, by their own size, and
    # the float32 reference is itself 5e-6 .. 8e-6 from the float64 run on the same data
    # (fastnn: 1e-5 .. 1.8e-5; at 20 epochs the reference 3e-5 and fastnn vs reference 3e-5,
    # too close to rtol 1e-4). So float32 Adam keeps a margin of ~8, SGD of > 100. Every case
    # moves its parameters by >= 11%. In chunks of 3 rows (the chunked fixture), fastnn vs
    # reference: float64 4.8e-16 / 1.5e-15, float32 7.8e-8 / 7.6e-7.
    x, y, w, b, act = problem(opt, loss, dtype)
    make = lambda: OPTIMIZERS[opt](BASE_LR[loss])  # noqa: E731
    compare_with(x, y, w, b, activation=act, loss=loss, make_optimizer=make, epochs=10,
                 rtol=RTOL[dtype], **MODES[mode])


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_without_momentum_is_lr(dtype, mode):
    # fastnn.SGD(lr) is the plain step of lr=: bitwise the same numbers, on every path
    x, y, w, b = grid_net(2, dtype)
    kw = dict(activation="tanh", epochs=7, **MODES[mode])
    h_lr, p_lr, _ = run_with(fastnn.train, x, y, w, b, lr=0.005, **kw)
    h_opt, p_opt, opt = run_with(fastnn.train, x, y, w, b, lambda: fastnn.SGD(0.005), **kw)
    np.testing.assert_array_equal(h_opt, h_lr, strict=True)
    for a, e in zip(p_opt, p_lr):
        np.testing.assert_array_equal(a, e, strict=True)
    batch = MODES[mode].get("batch_size", 13)
    assert opt.steps == 7 * -(-13 // batch)


# --------------------------------------------------------------------------- torch

def torch_run(x, y, w, b, activation, loss, make_torch_optimizer, epochs, batch_size):
    """The same training with torch tensors, autograd and a torch.optim optimizer (batches in
    row order); returns (history, parameters)."""
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    params = [torch.tensor(a, requires_grad=True) for a in w + b]
    weights, biases = params[:len(w)], params[len(w):]
    opt = make_torch_optimizer(params)
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
           "identity": lambda v: v}[activation]
    xt, yt = torch.tensor(x), torch.tensor(y)
    n = x.shape[0]
    history = []
    for _ in range(epochs):
        losses = []
        for start in range(0, n, batch_size):
            xb, yb = xt[start:start + batch_size], yt[start:start + batch_size]
            m = xb.shape[0]
            z = xb
            for i, (wi, bi) in enumerate(zip(weights, biases)):
                z = z @ wi + bi
                if i < len(weights) - 1:
                    z = act(z)
            if loss == "sse":
                value = objective = ((z - yb) ** 2).sum()
            elif loss == "mse":
                value = ((z - yb) ** 2).sum() / z.numel()
                objective = ((z - yb) ** 2).sum() / (2 * m)  # the step follows this one
            elif loss == "softmax_ce":
                value = objective = -(yb * fn.log_softmax(z, dim=1)).sum() / m
            else:
                value = objective = fn.binary_cross_entropy_with_logits(z, yb, reduction="sum") / m
            opt.zero_grad()
            objective.backward()
            opt.step()
            losses.append(value.item())
        history.append(np.mean(losses))
    return np.array(history), [p.detach().numpy() for p in params]


TORCH_OPTIMIZERS = {
    # name: (fastnn factory, torch factory), given the SGD lr of the loss
    "sgd-momentum": (lambda lr: fastnn.SGD(lr, momentum=0.9),
                     lambda t, p, lr: t.optim.SGD(p, lr=lr, momentum=0.9)),
    "sgd-nesterov-wd": (lambda lr: fastnn.SGD(lr, momentum=0.6, nesterov=True, weight_decay=0.02),
                        lambda t, p, lr: t.optim.SGD(p, lr=lr, momentum=0.6, nesterov=True,
                                                     weight_decay=0.02)),
    "adam": (lambda lr: fastnn.Adam(0.01),
             lambda t, p, lr: t.optim.Adam(p, lr=0.01)),
    "adam-betas-eps-wd": (lambda lr: fastnn.Adam(0.02, betas=(0.7, 0.95), eps=1e-3,
                                                 weight_decay=0.1),
                          lambda t, p, lr: t.optim.Adam(p, lr=0.02, betas=(0.7, 0.95), eps=1e-3,
                                                        weight_decay=0.1)),
}
TORCH_SGD_LR = {"sse": 0.005, "mse": 0.02, "softmax_ce": 0.03, "sigmoid_bce": 0.03}


@pytest.mark.parametrize("batch_size", [13, 5], ids=["full", "k5"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("opt", list(TORCH_OPTIMIZERS))
def test_matches_torch(opt, loss, batch_size):
    # float64, 12 epochs of a 4-5-3 tanh net with biases, batches in row order. torch's own
    # arithmetic (autograd, foreach kernels, lerp for Adam's first moment) rounds differently;
    # measured max difference: history 6.6e-16, parameters 6.2e-14 (relative, as
    # assert_params_close; Adam's, as against the reference); the 1-ulp spread of these runs
    # is 4.9e-16 / 5.2e-15. Asserted rtol 1e-11.
    torch = pytest.importorskip("torch")
    make, make_torch = TORCH_OPTIMIZERS[opt]
    lr = TORCH_SGD_LR[loss]
    x, y, w, b = class_net(2, F64, loss)
    h_torch, p_torch = torch_run(x, y, w, b, "tanh", loss, lambda p: make_torch(torch, p, lr), 12,
                                 batch_size)
    h_fast, p_fast, optimizer = run_with(fastnn.train, x, y, w, b, lambda: make(lr),
                                         activation="tanh", loss=loss, epochs=12,
                                         batch_size=batch_size)
    np.testing.assert_allclose(h_fast, h_torch, rtol=1e-11)
    assert_params_close(p_fast, p_torch, 1e-11, "torch")
    assert optimizer.steps == 12 * -(-13 // batch_size)
    assert max(float(np.max(np.abs(p - q))) for p, q in zip(p_fast, w + b)) > 0.05


SK_RULES = [("sgd", dict(momentum=0.9, nesterovs_momentum=False)),
            ("sgd", dict(momentum=0.8, nesterovs_momentum=True)),
            ("sgd", dict(momentum=0.0, nesterovs_momentum=False)),
            ("adam", dict(beta_1=0.9, beta_2=0.999, epsilon=1e-8)),
            ("adam", dict(beta_1=0.7, beta_2=0.9, epsilon=1e-3))]


@pytest.mark.parametrize("solver, settings", SK_RULES,
                         ids=[f"{s}-{'-'.join(f'{v}' for v in kw.values())}" for s, kw in SK_RULES])
def test_sklearn_rules_match_sklearn_optimizers(solver, settings):
    # fastnn's SK_SGD / SK_ADAM kernels (through reference-free flat arrays) against
    # scikit-learn's own SGDOptimizer / AdamOptimizer, 8 steps on 3 arrays, alpha / m decay
    # added to the weights' gradients as sklearn's _backprop does. float64; measured max
    # |diff| / max |p| <= 2.0e-16 for SGD and Adam(0.7, 0.9), 2.6e-15 for Adam's beta2 = 0.999
    # (its reassociated second moment: see test_kernels' ADAM_REASSOC). Asserted 1e-13.
    opt_module = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    from fastnn import kernels as K
    rng = np.random.default_rng(len(settings) + len(solver))
    shapes, n_weights = [(4, 3), (3, 2), (3,)], 2  # two weights, then a bias
    params = [rng.standard_normal(s) for s in shapes]
    lr, alpha, m = 0.05, 0.3, 5
    if solver == "sgd":
        rule = SklearnRule("sgd", lr, alpha=alpha, momentum=settings["momentum"],
                           nesterov=settings["nesterovs_momentum"])
        sk = opt_module.SGDOptimizer([p.copy() for p in params], lr, "constant",
                                     settings["momentum"], settings["nesterovs_momentum"])
    else:
        rule = SklearnRule("adam", lr, alpha=alpha, betas=(settings["beta_1"], settings["beta_2"]),
                           eps=settings["epsilon"])
        sk = opt_module.AdamOptimizer([p.copy() for p in params], lr, settings["beta_1"],
                                      settings["beta_2"], settings["epsilon"])
    sk_params = [p.copy() for p in params]
    flat = np.concatenate([p.ravel() for p in params])
    state = np.zeros((2, flat.size))
    n_w = sum(p.size for p in params[:n_weights])
    for t in range(1, 9):
        grads = [rng.standard_normal(s) for s in shapes]
        sk_grads = [g + alpha * p / m if i < n_weights else g
                    for i, (g, p) in enumerate(zip(grads, sk_params))]
        sk.update_params(sk_params, sk_grads)
        K.optimizer_update(flat, np.concatenate([g.ravel() for g in grads]), state, rule.rule,
                           rule.hyper(), rule.nesterov, float(t), n_w, 1.0 / m)
    expected = np.concatenate([p.ravel() for p in sk_params])
    assert np.max(np.abs(flat - expected)) <= 1e-13 * np.max(np.abs(expected))
    assert np.max(np.abs(expected - np.concatenate([p.ravel() for p in params]))) > 0.05


# --------------------------------------------------------------------------- resumable state

RESUMABLE = {
    "sgd-momentum": lambda: fastnn.SGD(0.002, momentum=0.9),
    "sgd-nesterov-wd": lambda: fastnn.SGD(0.003, momentum=0.5, nesterov=True, weight_decay=0.1),
    "adam": lambda: fastnn.Adam(0.01),
    "adam-wd": lambda: fastnn.Adam(0.01, betas=(0.8, 0.9), weight_decay=0.01),
    "sk-sgd": lambda: SklearnRule("sgd", 0.002, alpha=0.1, momentum=0.9, nesterov=True),
    "sk-adam": lambda: SklearnRule("adam", 0.01, alpha=0.1),
    "sgd-plain": lambda: fastnn.SGD(0.005),  # fused into backward: the one-row path at k1
}


def split_vs_whole(train, x, y, w, b, make, calls, **kw):
    """(history, params, optimizer) of one call of sum(calls) epochs, and of calls epochs
    in successive calls with one optimizer (shuffle: one Generator for all of them)."""
    seed = kw.pop("seed", None)
    gen = (lambda: np.random.default_rng(seed)) if seed is not None else (lambda: None)
    extra = lambda g: {} if g is None else {"seed": g}  # noqa: E731
    h_one, p_one, o_one = run_with(train, x, y, w, b, make, epochs=sum(calls), **extra(gen()), **kw)
    wp, bp, opt, g = copies(w), copies(b), make(), gen()
    parts = [train(x, y, wp, bp, optimizer=opt, epochs=n, **extra(g), **kw) for n in calls]
    return (h_one, p_one, o_one), (np.concatenate(parts), wp + (bp or []), opt)


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("opt", list(RESUMABLE))
def test_two_calls_continue_exactly(opt, mode, fn):
    x, y, w, b = grid_net(2, F64)
    kw = dict(activation="relu", **MODES[mode])
    (h1, p1, o1), (h2, p2, o2) = split_vs_whole(fn, x, y, w, b, RESUMABLE[opt], [10, 10], **kw)
    np.testing.assert_array_equal(h2, h1, strict=True)
    for a, e in zip(p2, p1):
        np.testing.assert_array_equal(a, e, strict=True)
    assert o1.steps == o2.steps == 20 * -(-13 // MODES[mode].get("batch_size", 13))
    assert max(float(np.max(np.abs(p - q))) for p, q in zip(p1, w + b)) > 1e-2
    # uneven splits too, and three calls
    (h1, p1, _), (h3, p3, _) = split_vs_whole(fn, x, y, w, b, RESUMABLE[opt], [1, 12, 7], **kw)
    np.testing.assert_array_equal(h3, h1, strict=True)
    for a, e in zip(p3, p1):
        np.testing.assert_array_equal(a, e, strict=True)


def test_int_seed_restarts_the_row_orders():
    # the documented difference: an int seed starts the same stream in every call
    x, y, w, b = grid_net(2, F64)
    kw = dict(activation="relu", batch_size=4, shuffle=True)
    make = RESUMABLE["adam"]
    wp, bp, opt = copies(w), copies(b), make()
    h_a = fastnn.train(x, y, wp, bp, optimizer=opt, epochs=3, seed=5, **kw)
    h_b = fastnn.train(x, y, wp, bp, optimizer=opt, epochs=3, seed=5, **kw)
    h_one, _, _ = run_with(fastnn.train, x, y, w, b, make, epochs=6, seed=5, **kw)
    assert np.array_equal(h_a, h_one[:3]) and not np.array_equal(h_b, h_one[3:])


@pytest.mark.parametrize("make", [lambda: fastnn.SGD(1e-3)], ids=["sgd-plain"])
def test_two_calls_continue_exactly_on_the_gram_path(make):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 64)), rng.standard_normal((8, 2))
    w = [rng.standard_normal((64, 48)) / 8, rng.standard_normal((48, 2)) / 7]
    b = [np.zeros(48), np.zeros(2)]
    from fastnn import _state, _validate
    net = _validate.check_network(x, y, w, b, "tanh", "sse", update=False)
    # lr= takes the Gram path here (it restarts from the rounded weights in every call); an
    # optimizer object, which promises an exact continuation, takes the generic one
    plain = fastnn.optim.resolve(1e-3, None)
    assert _state.Run(net, plain, _state.Setup()).path == (None, True, None)
    assert _state.Run(net, make(), _state.Setup()).path == (None, None, True)
    (h1, p1, _), (h2, p2, _) = split_vs_whole(fastnn.train, x, y, w, b, make, [10, 10],
                                              activation="tanh")
    np.testing.assert_array_equal(h2, h1, strict=True)
    for a, e in zip(p2, p1):
        np.testing.assert_array_equal(a, e, strict=True)


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
def test_other_arrays_rejected_and_reset(fn):
    x, y, w, b = grid_net(2, F64)
    opt = fastnn.Adam(0.01)
    w1, b1 = copies(w), copies(b)
    fn(x, y, w1, b1, activation="relu", optimizer=opt, epochs=3)
    steps, buffers = opt.steps, buffers_of(opt).copy()
    assert steps == 3
    others = {
        "copies of the same values": (copies(w1), copies(b1)),
        "new weights, same biases": (copies(w1), b1),
        "no biases": (w1, None),
        "views of the same arrays": ([a[...] for a in w1], b1),
    }
    for name, (wo, bo) in others.items():
        snap = [a.copy() for a in wo + (bo or [])]
        with pytest.raises(ValueError, match=r"holds the state of other weights and biases.*"
                                             r"\.reset\(\)"):
            fn(x, y, wo, bo, activation="relu", optimizer=opt, epochs=2)
        for a, s in zip(wo + (bo or []), snap):
            np.testing.assert_array_equal(a, s, err_msg=name)
        assert opt.steps == steps, name
        np.testing.assert_array_equal(buffers_of(opt), buffers, err_msg=name)
    # after reset(), the optimizer starts anew: as a fresh one, bitwise
    opt.reset()
    assert opt.steps == 0
    h_reset, p_reset, _ = run_with(fn, x, y, w, b, lambda: opt, activation="relu", epochs=4)
    h_new, p_new, _ = run_with(fn, x, y, w, b, lambda: fastnn.Adam(0.01), activation="relu",
                               epochs=4)
    np.testing.assert_array_equal(h_reset, h_new, strict=True)
    for a, e in zip(p_reset, p_new):
        np.testing.assert_array_equal(a, e, strict=True)
    # and the original arrays are now "other" arrays
    with pytest.raises(ValueError, match=r"holds the state of other"):
        fn(x, y, w1, b1, activation="relu", optimizer=opt, epochs=1)


def test_state_carries_between_fastnn_and_reference():
    # one state layout for both: 10 epochs of fastnn then 10 of the reference with the same
    # optimizer equal 20 of the reference (rtol as test_matches_reference; measured history
    # 9.8e-16, parameters 9.9e-15)
    x, y, w, b = grid_net(2, F64)
    for make in (RESUMABLE["sgd-nesterov-wd"], RESUMABLE["adam"]):
        wp, bp, opt = copies(w), copies(b), make()
        fastnn.train(x, y, wp, bp, activation="tanh", optimizer=opt, epochs=10, batch_size=5)
        h = reference.train(x, y, wp, bp, activation="tanh", optimizer=opt, epochs=10, batch_size=5)
        h_ref, p_ref, o_ref = run_with(reference.train, x, y, w, b, make, activation="tanh",
                                       epochs=20, batch_size=5)
        np.testing.assert_allclose(h, h_ref[10:], rtol=1e-9)
        assert_params_close(wp + bp, p_ref, 1e-9)
        assert opt.steps == o_ref.steps == 60


# --------------------------------------------------------------------------- divergence

DIVERGING = {
    # (optimizer factory, batch_size, activation): the epoch measured where it diverges
    "sgd-momentum-full": (lambda: fastnn.SGD(0.02, momentum=0.9), None, "identity"),   # 11
    "sgd-momentum-k5": (lambda: fastnn.SGD(0.02, momentum=0.9), 5, "identity"),        # 8
    "adam-huge-lr": (lambda: fastnn.Adam(1e200), None, "identity"),                    # 1
    "sk-sgd-k5": (lambda: SklearnRule("sgd", 0.02, momentum=0.9), 5, "identity"),
}


@pytest.mark.parametrize("fn, callback_every", [
    pytest.param(fastnn.train, None, id="fastnn-one-chunk"),
    pytest.param(fastnn.train, 3, id="fastnn-chunks-of-3"),  # the divergence in a later chunk
    pytest.param(reference.train, None, id="reference")])
@pytest.mark.parametrize("case", list(DIVERGING))
def test_state_after_divergence(case, fn, callback_every):
    # After DivergenceError at epoch e the weights hold the end of epoch e - 1, and so must
    # the optimizer: its step count and buffers equal a fresh run of exactly e epochs
    # (check_finite=False), bitwise, and one more epoch from both gives the same bits.
    make, batch_size, act = DIVERGING[case]
    x, y, w, b = grid_net(2, F64)
    kw = dict(activation=act, batch_size=batch_size)
    if callback_every:
        kw.update(callback=lambda epoch, loss: None, callback_every=callback_every)
    wd, bd, opt = copies(w), copies(b), make()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(fastnn.DivergenceError) as info:
            fn(x, y, wd, bd, optimizer=opt, epochs=60, **kw)
        e = info.value.epoch
        assert 1 <= e < 60
        kw.pop("callback", None), kw.pop("callback_every", None)
        wr, br, ref_opt = copies(w), copies(b), make()
        fn(x, y, wr, br, optimizer=ref_opt, epochs=e, check_finite=False, **kw)
        assert opt.steps == ref_opt.steps == e * -(-13 // (batch_size or 13))
        np.testing.assert_array_equal(buffers_of(opt), buffers_of(ref_opt), strict=True)
        for a, c in zip(wd + bd, wr + br):
            np.testing.assert_array_equal(a, c, strict=True)
        h_a = fn(x, y, wd, bd, optimizer=opt, epochs=1, check_finite=False, **kw)
        h_b = fn(x, y, wr, br, optimizer=ref_opt, epochs=1, check_finite=False, **kw)
    np.testing.assert_array_equal(h_a, h_b, strict=True)
    assert not np.isfinite(h_a).all() or not all(np.isfinite(a).all() for a in wd + bd)
    for a, c in zip(wd + bd, wr + br):
        np.testing.assert_array_equal(a, c, strict=True)


# --------------------------------------------------------------------------- bad input

CONSTRUCTOR_ERRORS = [
    ("sgd-lr-zero", lambda: fastnn.SGD(0.0), ValueError, r"^lr must be finite and > 0, found 0"),
    ("sgd-lr-nan", lambda: fastnn.SGD(float("nan")), ValueError, r"^lr must be finite"),
    ("sgd-lr-str", lambda: fastnn.SGD("0.1"), TypeError, r"^lr must be a real number, found str"),
    ("sgd-lr-bool", lambda: fastnn.SGD(True), TypeError, r"^lr must be a real number, found bool"),
    ("sgd-momentum-negative", lambda: fastnn.SGD(0.1, momentum=-0.5), ValueError,
     r"^momentum must be finite and >= 0, found -0\.5"),
    ("sgd-momentum-inf", lambda: fastnn.SGD(0.1, momentum=float("inf")), ValueError,
     r"^momentum must be finite"),
    ("sgd-weight-decay-negative", lambda: fastnn.SGD(0.1, weight_decay=-1e-4), ValueError,
     r"^weight_decay must be finite and >= 0, found -0\.0001"),
    ("sgd-nesterov-without-momentum", lambda: fastnn.SGD(0.1, nesterov=True), ValueError,
     r"^nesterov=True needs momentum > 0"),
    ("sgd-nesterov-not-bool", lambda: fastnn.SGD(0.1, momentum=0.9, nesterov="yes"), TypeError,
     r"^nesterov must be True or False, found str"),
    ("adam-lr-negative", lambda: fastnn.Adam(-1e-3), ValueError, r"^lr must be finite and > 0"),
    ("adam-beta1-one", lambda: fastnn.Adam(betas=(1.0, 0.999)), ValueError,
     r"^betas\[0\] must be finite and >= 0 and < 1, found 1\.0"),
    ("adam-beta2-one", lambda: fastnn.Adam(betas=(0.9, 1.0)), ValueError,
     r"^betas\[1\] must be finite and >= 0 and < 1, found 1\.0"),
    ("adam-beta1-negative", lambda: fastnn.Adam(betas=(-0.1, 0.999)), ValueError,
     r"^betas\[0\] must be .*found -0\.1"),
    ("adam-beta2-above", lambda: fastnn.Adam(betas=(0.9, 1.5)), ValueError, r"^betas\[1\] must be"),
    ("adam-beta-nan", lambda: fastnn.Adam(betas=(float("nan"), 0.9)), ValueError,
     r"^betas\[0\] must be"),
    ("adam-betas-one-value", lambda: fastnn.Adam(betas=(0.9,)), TypeError,
     r"^betas must be a pair"),
    ("adam-betas-float", lambda: fastnn.Adam(betas=0.9), TypeError, r"^betas must be a pair"),
    ("adam-beta-str", lambda: fastnn.Adam(betas=("0.9", 0.999)), TypeError,
     r"^betas\[0\] must be a real number, found str"),
    ("adam-eps-zero", lambda: fastnn.Adam(eps=0.0), ValueError,
     r"^eps must be finite and > 0, found 0"),
    ("adam-eps-negative", lambda: fastnn.Adam(eps=-1e-8), ValueError,
     r"^eps must be finite and > 0"),
    ("adam-weight-decay-negative", lambda: fastnn.Adam(weight_decay=-0.1), ValueError,
     r"^weight_decay must be finite and >= 0, found -0\.1"),
    ("sklearn-solver", lambda: SklearnRule("lbfgs", 0.1), ValueError,
     r"^solver must be 'sgd' or 'adam'"),
    ("sklearn-alpha-negative", lambda: SklearnRule("sgd", 0.1, alpha=-1.0), ValueError,
     r"^alpha must be"),
    ("sklearn-momentum-above-1", lambda: SklearnRule("sgd", 0.1, momentum=1.5), ValueError,
     r"^momentum must be"),
    ("sklearn-beta-one", lambda: SklearnRule("adam", 0.1, betas=(0.9, 1.0)), ValueError,
     r"^beta_2 must be"),
    ("sklearn-epsilon-zero", lambda: SklearnRule("adam", 0.1, eps=0.0), ValueError,
     r"^epsilon must be"),
]


@pytest.mark.parametrize("name, build, exc, pattern", CONSTRUCTOR_ERRORS,
                         ids=[c[0] for c in CONSTRUCTOR_ERRORS])
def test_constructor_rejects(name, build, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        build()
    assert not isinstance(info.value, ValueError if exc is TypeError else TypeError)


SETTINGS_SET_LATER = [
    ("sgd-lr-negative", lambda: fastnn.SGD(0.1), "lr", -5.0, ValueError,
     r"^lr must be finite and > 0, found -5\.0"),
    ("sgd-lr-string", lambda: fastnn.SGD(0.1), "lr", "0.1", TypeError,
     r"^lr must be a real number, found str"),
    ("sgd-momentum-nan", lambda: fastnn.SGD(0.1, momentum=0.9), "momentum", np.nan, ValueError,
     r"^momentum must be finite"),
    ("adam-eps-zero", lambda: fastnn.Adam(), "eps", 0.0, ValueError, r"^eps must be finite and > 0"),
    ("adam-betas-one", lambda: fastnn.Adam(), "betas", (0.9, 1.0), ValueError,
     r"^betas\[1\] must be finite and >= 0 and < 1"),
    ("adam-weight-decay-negative", lambda: fastnn.Adam(), "weight_decay", -1.0, ValueError,
     r"^weight_decay must be finite and >= 0"),
]


@pytest.mark.parametrize("name, build, pattern", [
    ("nesterov-momentum-set-to-0", lambda: _with(fastnn.SGD(0.1, momentum=0.9, nesterov=True),
                                                  momentum=0.0),
     r"^nesterov=True needs momentum > 0"),
    ("beta-1-in-float32", lambda: fastnn.Adam(0.01, betas=(0.9, 0.99999999)),
     r"^betas\[1\] must be representable in the network's dtype float32, found 0\.99999999, "
     r"which is 1\.0"),
    ("momentum-inf-in-float32", lambda: fastnn.SGD(0.1, momentum=1e40),
     r"^momentum must be representable in the network's dtype float32, found 1e\+40"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_settings_are_checked_at_each_call(name, build, pattern):
    """What only a train call can check: settings set since construction that contradict
    each other, and settings the network's dtype cannot hold."""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 1))
    w = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 1)).astype(np.float32)]
    before = [a.copy() for a in w]
    for trainer in (fastnn.train, reference.train):
        with pytest.raises(ValueError, match=pattern):
            trainer(x, y, w, optimizer=build(), epochs=2)
    assert all(np.array_equal(a, c) for a, c in zip(w, before))


def _with(opt, **settings):
    for key, value in settings.items():
        setattr(opt, key, value)
    return opt


@pytest.mark.parametrize("name, build, attr, value, exc, pattern", SETTINGS_SET_LATER,
                         ids=[c[0] for c in SETTINGS_SET_LATER])
def test_settings_set_later_are_checked_as_the_constructor_checks_them(
        name, build, attr, value, exc, pattern):
    """A setting changed between calls (a schedule) is checked when set: a negative lr
    would train uphill, a string would fail deep inside."""
    opt = build()
    before = getattr(opt, attr)
    with pytest.raises(exc, match=pattern):
        setattr(opt, attr, value)
    assert getattr(opt, attr) == before


def test_a_setting_changed_between_calls_is_used():
    """lr lowered between two calls (a schedule): fastnn follows the reference loop given
    the same change, and the change matters."""
    x, y, w, b, act = problem("sgd-momentum", "mse", F64)
    histories = []
    for trainer, schedule in ((fastnn.train, True), (reference.train, True),
                              (fastnn.train, False)):
        wc, bc = [a.copy() for a in w], None if b is None else [a.copy() for a in b]
        opt = fastnn.SGD(0.05, momentum=0.9)
        first = trainer(x, y, wc, bc, activation=act, loss="mse", optimizer=opt, epochs=3)
        if schedule:
            opt.lr = np.array(0.01)  # a 0-d array is its number
            assert opt.lr == 0.01 and type(opt.lr) is float
        rest = trainer(x, y, wc, bc, activation=act, loss="mse", optimizer=opt, epochs=3)
        histories.append(np.concatenate([first, rest]))
    np.testing.assert_allclose(histories[0], histories[1], rtol=RTOL[F64])
    assert np.abs(histories[0][3:] - histories[2][3:]).max() > 1e-3 * np.abs(histories[2]).max()


def test_constructor_accepts_the_edges():
    # the open and closed ends of each range, and NumPy scalars
    fastnn.Adam(betas=(0.0, 0.0), eps=1e-300, weight_decay=0.0)
    fastnn.Adam(np.float32(0.01), betas=[np.float64(0.5), 0.25], eps=np.float32(1e-6))
    fastnn.SGD(np.float64(0.1), momentum=np.float32(0.9), nesterov=np.bool_(True))
    fastnn.SGD(1e-300, momentum=0.0, nesterov=False, weight_decay=0.0)
    opt = fastnn.SGD(0.1, momentum=2.5)  # torch allows momentum > 1
    assert opt.momentum == 2.5 and opt.steps == 0


class NotAnOptimizer:
    lr = 0.1

    def step(self):
        pass


TRAIN_ERRORS = [
    ("both-lr-and-optimizer", dict(lr=0.1, optimizer=fastnn.SGD(0.1)), TypeError,
     r"^give exactly one of lr .* and optimizer .*found both"),
    ("neither", dict(), TypeError, r"^give exactly one of lr .* and optimizer .*found neither"),
    ("optimizer-str", dict(optimizer="adam"), TypeError,
     r"^optimizer must be a fastnn optimizer .*found str"),
    ("optimizer-class", dict(optimizer=fastnn.Adam), TypeError,
     r"^optimizer must be a fastnn optimizer .*found type"),
    ("optimizer-float", dict(optimizer=0.1), TypeError,
     r"^optimizer must be a fastnn optimizer .*found float"),
    ("optimizer-duck", dict(optimizer=NotAnOptimizer()), TypeError,
     r"^optimizer must be a fastnn optimizer .*found NotAnOptimizer"),
    ("optimizer-dict", dict(optimizer={"lr": 0.1}), TypeError,
     r"^optimizer must be a fastnn optimizer"),
]


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
@pytest.mark.parametrize("name, kw, exc, pattern", TRAIN_ERRORS, ids=[c[0] for c in TRAIN_ERRORS])
def test_train_rejects(name, kw, exc, pattern, fn):
    # nothing modified: the arrays, and the state of an optimizer that trained them before
    x, y, w, b = grid_net(2, F64)
    trained = fastnn.SGD(0.01, momentum=0.9)
    fn(x, y, w, b, optimizer=trained, epochs=2, batch_size=5)
    snap = [a.copy() for a in [x, y] + w + b]
    steps, buffers = trained.steps, buffers_of(trained).copy()
    if name == "both-lr-and-optimizer":
        kw = dict(lr=0.1, optimizer=trained)
    with pytest.raises(exc, match=pattern):
        fn(x, y, w, b, epochs=2, **kw)
    for a, s in zip([x, y] + w + b, snap):
        np.testing.assert_array_equal(a, s, strict=True)
    assert trained.steps == steps
    np.testing.assert_array_equal(buffers_of(trained), buffers, strict=True)


@pytest.mark.parametrize("fn", [fastnn.train, reference.train], ids=["fastnn", "reference"])
def test_error_later_in_validation_leaves_the_optimizer_alone(fn):
    # an optimizer with state, then a call that fails on a bad target: no step is taken
    x, y, w, b = class_net(2, F64, "softmax_ce")
    opt = fastnn.Adam(0.01)
    fn(x, y, w, b, loss="softmax_ce", optimizer=opt, epochs=2)
    steps, buffers, snap = opt.steps, buffers_of(opt).copy(), [a.copy() for a in w + b]
    bad = y.copy()
    bad[3] = [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match=r"^y for softmax_ce must be probability rows"):
        fn(x, bad, w, b, loss="softmax_ce", optimizer=opt, epochs=2)
    assert opt.steps == steps
    np.testing.assert_array_equal(buffers_of(opt), buffers, strict=True)
    for a, s in zip(w + b, snap):
        np.testing.assert_array_equal(a, s, strict=True)


def test_repr_and_attributes():
    assert repr(fastnn.SGD(0.1, momentum=0.9)) == \
        "SGD(lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0)"
    assert repr(fastnn.Adam()) == "Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0)"
    opt = fastnn.Adam(0.5, betas=(0.5, 0.75), eps=1e-4, weight_decay=0.125)
    assert (opt.lr, opt.betas, opt.eps, opt.weight_decay, opt.steps) == (0.5, (0.5, 0.75), 1e-4,
                                                                        0.125, 0)
