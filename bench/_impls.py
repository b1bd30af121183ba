"""The rows of the benchmarks: one class per way to train a :class:`_harness.Problem`.

Each implementation prepares a problem in ``__init__`` (untimed), hands out
fresh copies of the initial parameters in ``setup`` (untimed), trains in
``run`` (the only timed part), converts its result to NumPy in ``unpack`` and
checks itself against ``fastnn.reference`` in ``verify`` (which returns a line
saying how). Rows:

* ``fastnn``, ``fastnn-nocheck`` (check_finite=False): ``fastnn.train``;
* ``fastnn-callback``, ``fastnn-print``: ``fastnn.train`` with a callback after every
  epoch, or ``print_every=1`` (printed into a sink: fastnn's cost, not a terminal's);
* ``numpy``: ``fastnn.reference.train``, the plain per-batch NumPy loop, and the oracle;
* ``gemm-floor``: only that loop's matrix products (:class:`GemmFloor`);
* ``torch``: PyTorch eager without autograd, the NumPy loop written with tensors;
* ``torch-autograd``: PyTorch as users write it, autograd + ``torch.optim``;
* ``jax``: ``jit`` of the whole training, ``lax.scan`` over epochs and steps;
* ``sklearn``: ``MLPClassifier.fit`` (classification only; its own initialisation).

K networks per call (a :class:`_harness.ManyProblem`):

* ``fastnn-many``, ``fastnn-many-1thread``: one ``fastnn.train_many`` call, with the
  default threads or FASTNN_THREADS=1;
* ``fastnn-sequential``: K ``fastnn.train`` calls, each network with its seed;
* ``jax-vmap``: ``jax.vmap`` over the networks of the ``jax`` row's training, jit'd;
* ``torch-vmap``: ``torch.func``, one vmapped ``grad`` of ``functional_call`` per step.

Optional rows name the module they need in :data:`OPTIONAL`.
"""

import contextlib
import os
import warnings

import numpy as np

import fastnn
from fastnn import reference

from _harness import RTOL, check_training, time_run

OPTIONAL = {"torch": "torch", "torch-autograd": "torch", "jax": "jax", "sklearn": "sklearn",
            "jax-vmap": "jax", "torch-vmap": "torch.func"}


class Impl:
    """One way to train: ``setup() -> (args, kwargs)``, ``run(*args)`` (timed),
    ``unpack(result) -> (history, weights, biases)`` as NumPy, ``verify(oracle) -> str``."""
    name = ""

    def __init__(self, problem):
        self.problem = problem

    def unpack(self, result):
        return result

    def verify(self, oracle):
        """Run once and compare with the reference's (history, weights, biases)."""
        _, result = time_run(self)
        check_training(self.name, self.problem, self.unpack(result), oracle)
        return self.verified_text()

    def verified_text(self):
        p = self.problem
        rtol = p.rtol or RTOL[p.dtype]
        return f"matches fastnn.reference to rtol {rtol:g} over {p.epochs} epochs"


class FastnnImpl(Impl):
    name = "fastnn"
    extra = {}

    def setup(self):
        ws, bs = self.problem.fresh()
        return (self.problem.x, self.problem.y, ws, bs, self.problem.train_kwargs()), {}

    def run(self, x, y, ws, bs, kw):
        return fastnn.train(x, y, ws, bs, **kw, **self.extra), ws, bs


class FastnnNoCheckImpl(FastnnImpl):
    """check_finite=False: the cost of divergence checking (target <= 2%)."""
    name = "fastnn-nocheck"
    extra = {"check_finite": False}


def _every_epoch(epoch, loss):
    """A callback that does nothing (the cost measured is fastnn's)."""


class FastnnCallbackImpl(FastnnImpl):
    """A callback after every epoch (target: <= 1.3x relu2's run, <= 2.5x mlp3_gd's)."""
    name = "fastnn-callback"
    extra = {"callback": _every_epoch}


class _Sink:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


class FastnnPrintImpl(FastnnImpl):
    """print_every=1, into a sink."""
    name = "fastnn-print"
    extra = {"print_every": 1}

    def run(self, x, y, ws, bs, kw):
        with contextlib.redirect_stdout(_Sink()):
            return super().run(x, y, ws, bs, kw)


class NumpyImpl(FastnnImpl):
    name = "numpy"

    def run(self, x, y, ws, bs, kw):
        return reference.train(x, y, ws, bs, **kw), ws, bs

    def verify(self, oracle):
        return "is fastnn.reference.train (the oracle)"


# -------------------------------------------------------------- gemm-floor
class GemmFloor(Impl):
    """Only the matrix products of the NumPy loop, on preallocated buffers.

    Per step with m rows, for every layer i (n_i -> n_i+1): the forward product
    a_i @ w_i, the weight gradient a_i.T @ d_i+1 and, except for the first
    layer, the hidden gradient d_i+1 @ w_i.T (the reference computes no input
    gradient either). Every product is ``np.dot(..., out=buffer)`` on NumPy's
    BLAS, the one the NumPy loop's ``@`` uses; the Python loop around them costs
    ~0.2 us per product. Minibatches run the same products per step, the last
    partial batch with its own size; the row gather of a shuffled batch,
    activations, loss and update are left out.
    """
    name = "gemm-floor"

    def __init__(self, problem):
        super().__init__(problem)
        counts = {}
        for start in range(0, problem.rows, problem.batch):
            m = min(problem.batch, problem.rows - start)
            counts[m] = counts.get(m, 0) + 1
        self.plans = [(self._plan(m), c) for m, c in counts.items()]

    def _plan(self, m):
        p = self.problem
        dt = p.x.dtype
        ws = [w.copy() for w in p.weights]
        a = [np.ascontiguousarray(p.x[:m])] + [np.empty((m, n), dt) for n in p.widths[1:]]
        d = [None] + [np.empty((m, n), dt) for n in p.widths[1:]]
        gw = [np.empty_like(w) for w in ws]
        fwd = [(a[i], ws[i], a[i + 1]) for i in range(len(ws))]
        bwd = []
        for i in range(len(ws) - 1, -1, -1):
            bwd.append((a[i].T, d[i + 1], gw[i]))
            if i > 0:
                bwd.append((d[i + 1], ws[i].T, d[i]))
        return dict(m=m, a=a, d=d, gw=gw, ws=ws, fwd=fwd, bwd=bwd, ops=fwd + bwd)

    def setup(self):
        return (), {}

    def run(self):
        dot = np.dot
        for plan, count in self.plans:
            ops = plan["ops"]
            for _ in range(self.problem.epochs * count):
                for x, y, out in ops:
                    dot(x, y, out=out)

    def unpack(self, result):
        return None

    def verify(self, oracle):
        """Replay one step's products of each batch size with the reference's elementwise
        work put between them, and check they give the reference's gradients: every
        product has the shape, operands and transposes of the NumPy loop's."""
        for plan, _ in self.plans:
            self._check_plan(plan)
        return f"replays the reference's products ({self.products()} per run)"

    def products(self):
        return sum(len(plan["ops"]) * c for plan, c in self.plans) * self.problem.epochs

    def _check_plan(self, plan):
        p = self.problem
        m, a, d, gw, ws = plan["m"], plan["a"], plan["d"], plan["gw"], plan["ws"]
        bs = p.biases or [None] * len(ws)
        acts, dot = p.activations, np.dot
        for i, (x, y, out) in enumerate(plan["fwd"]):
            dot(x, y, out=out)
            z = out if bs[i] is None else out + bs[i].reshape(1, -1)
            out[...] = reference.activation_forward(z, acts[i])
        _, d[-1][...] = reference.loss_forward_backward(a[-1], p.y[:m], p.kwargs["loss"])
        ops = iter(plan["bwd"])
        for i in range(len(ws) - 1, -1, -1):
            x, y, out = next(ops)
            dot(x, y, out=out)
            if i > 0:
                x, y, out = next(ops)
                dot(x, y, out=out)
                out[...] = reference.activation_backward(out, a[i], acts[i - 1])
        outs = reference.network_forward(p.x[:m], p.weights, bs, acts)
        _, d_last = reference.loss_forward_backward(outs[-1], p.y[:m], p.kwargs["loss"])
        rtol = RTOL[p.dtype]
        for i, (g, (g_ref, _)) in enumerate(zip(gw, reference.network_backward(
                d_last, outs, p.weights, acts))):
            np.testing.assert_allclose(g, g_ref, rtol=rtol, atol=rtol * float(np.abs(g_ref).max()),
                                       err_msg=f"gemm-floor: product for grad of weights[{i}]")


# ------------------------------------------------------------------- torch
def _torch():
    import torch
    torch.set_num_threads(1)  # one BLAS/OpenMP thread, as every other row
    return torch


def _act_torch(torch, z, name):
    if name == "relu":
        return torch.relu_(z)
    if name == "sigmoid":
        return torch.sigmoid_(z)
    if name == "tanh":
        return torch.tanh_(z)
    return z


def _act_backward_torch(d, a, name):
    if name == "relu":
        return d.mul_(a > 0)
    if name == "sigmoid":
        return d.mul_(a * (1 - a))
    if name == "tanh":
        return d.mul_(1 - a * a)
    return d


class _TorchBase(Impl):
    def __init__(self, problem):
        super().__init__(problem)
        self.torch = _torch()
        self.x = self.torch.from_numpy(problem.x)
        self.y = self.torch.from_numpy(np.asarray(problem.y))

    def batches(self, rng):
        """(x, y) of each step of one epoch, rows as fastnn's shuffle draws them."""
        p, x, y = self.problem, self.x, self.y
        order = None if rng is None else self.torch.from_numpy(rng.permutation(p.rows))
        for start in range(0, p.rows, p.batch):
            if order is None:
                yield x[start:start + p.batch], y[start:start + p.batch]
            else:
                rows = order[start:start + p.batch]
                yield x[rows], y[rows]

    def rng(self):
        kw = self.problem.kwargs
        return np.random.default_rng(kw.get("seed")) if kw.get("shuffle") else None

    def unpack(self, result):
        hist, ws, bs = result
        return (hist, [w.detach().numpy() for w in ws],
                None if bs is None else [b.detach().numpy() for b in bs])


class TorchImpl(_TorchBase):
    """PyTorch eager, no autograd: the NumPy loop written with tensors (sse/mse, plain SGD)."""
    name = "torch"

    def setup(self):
        t = self.torch
        ws = [t.from_numpy(w.copy()) for w in self.problem.weights]
        bs = None if self.problem.biases is None else \
            [t.from_numpy(b.copy()) for b in self.problem.biases]
        return (ws, bs), {}

    def run(self, ws, bs):
        p = self.problem
        history = np.empty(p.epochs)
        rng = self.rng()
        with self.torch.no_grad():
            for epoch in range(p.epochs):
                total, steps = 0.0, 0
                for xb, yb in self.batches(rng):
                    total += self.step(ws, bs, xb, yb)
                    steps += 1
                history[epoch] = total / steps
        return history, ws, bs

    def step(self, ws, bs, xb, yb):
        """One SGD step on a batch; returns its loss (.item(): one sync per step, as users do)."""
        p = self.problem
        lr, acts = p.kwargs["lr"], p.activations
        bias = bs if bs is not None else [None] * len(ws)
        outs = [xb]
        for i, w in enumerate(ws):
            z = outs[-1] @ w
            if bias[i] is not None:
                z += bias[i]
            outs.append(_act_torch(self.torch, z, acts[i]))
        r = outs[-1] - yb
        value = r.double().square().sum().item()
        if p.kwargs["loss"] == "sse":
            d = r.mul_(2.0)
        else:
            value /= r.numel()
            d = r.div_(r.shape[0])
        for i in range(len(ws) - 1, -1, -1):
            grad_w = outs[i].T @ d
            d_in = None
            if i > 0:  # before this layer's update, as the NumPy loop
                d_in = _act_backward_torch(d @ ws[i].T, outs[i], acts[i - 1])
            ws[i].sub_(grad_w, alpha=lr)
            if bias[i] is not None:
                bias[i].sub_(d.sum(0).reshape(bias[i].shape), alpha=lr)
            d = d_in
        return value


class TorchAutogradImpl(_TorchBase):
    """PyTorch as users write it: autograd, ``torch.optim.Adam`` (or SGD), the loss from
    ``torch.nn.functional`` (cross_entropy on integer labels, or mse/sse)."""
    name = "torch-autograd"

    def setup(self):
        t = self.torch
        ws = [t.from_numpy(w.copy()).requires_grad_() for w in self.problem.weights]
        bs = [t.from_numpy(b.copy()).requires_grad_() for b in self.problem.biases]
        return (ws, bs, self.make_optimizer(ws + bs)), {}

    def make_optimizer(self, params):
        opt = self.problem.optimizer()
        if isinstance(opt, fastnn.Adam):
            return self.torch.optim.Adam(params, lr=opt.lr, betas=opt.betas, eps=opt.eps,
                                         weight_decay=opt.weight_decay)
        return self.torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum,
                                    nesterov=opt.nesterov, weight_decay=opt.weight_decay)

    def run(self, ws, bs, opt):
        p = self.problem
        F = self.torch.nn.functional
        acts, loss = p.activations, p.kwargs["loss"]
        history = np.empty(p.epochs)
        rng = self.rng()
        for epoch in range(p.epochs):
            total, steps = 0.0, 0
            for xb, yb in self.batches(rng):
                z = xb
                for w, b, act in zip(ws, bs, acts):
                    z = _act_torch(self.torch, z @ w + b, act) if act != "identity" else z @ w + b
                if loss == "softmax_ce":
                    value = F.cross_entropy(z, yb)
                else:
                    value = F.mse_loss(z, yb, reduction="sum" if loss == "sse" else "mean")
                opt.zero_grad()
                value.backward()
                opt.step()
                total += value.item()
                steps += 1
            history[epoch] = total / steps
        return history, ws, bs

    def verified_text(self):
        return super().verified_text() + " (autograd, torch.optim)"


# --------------------------------------------------------------------- jax
def _jax_loss(jax, jnp, loss):
    """(z, y) -> (loss value in float64, dloss/dz), as fastnn.reference.loss_forward_backward
    (sse, mse, softmax_ce on probability rows or integer labels)."""
    def squares(z, y):
        r = z - y
        value = jnp.sum(jnp.square(r.astype(jnp.float64)))
        return (value, 2 * r) if loss == "sse" else (value / r.size, r / r.shape[0])

    def softmax_ce(z, y):
        if y.ndim == 1:
            y = jax.nn.one_hot(y, z.shape[1], dtype=z.dtype)
        shifted = z.astype(jnp.float64) - z.max(axis=1, keepdims=True)
        log_norm = jnp.log(jnp.exp(shifted).sum(axis=1, keepdims=True))
        e = jnp.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return -(y * (shifted - log_norm)).sum() / z.shape[0], (p - y) / z.shape[0]
    return softmax_ce if loss == "softmax_ce" else squares


class JaxImpl(Impl):
    """JAX: jit of the whole training, lax.scan over epochs (and over steps); plain SGD,
    sse/mse/softmax_ce, rows in order."""
    name = "jax"

    def __init__(self, problem):
        super().__init__(problem)
        import jax
        jax.config.update("jax_enable_x64", True)  # float64 workloads (and float64 losses)
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        self.train = jax.jit(self._train_fn())
        self.x, self.y = jnp.asarray(problem.x), jnp.asarray(problem.y)
        self.params = (tuple(jnp.asarray(w) for w in problem.weights),
                       tuple(jnp.asarray(b) for b in (problem.biases or [])))

    def _step_fn(self, lr):
        """One SGD step (params, (x, y)) -> (params, loss); lr a constant or a traced scalar."""
        jax, jnp, p = self.jax, self.jnp, self.problem
        acts, has_bias = p.activations, p.biases is not None
        loss = _jax_loss(jax, jnp, p.kwargs["loss"])
        fwd = {"relu": lambda z: jnp.maximum(z, 0), "sigmoid": jax.nn.sigmoid,
               "tanh": jnp.tanh, "identity": lambda z: z}
        back = {"relu": lambda d, a: d * (a > 0), "sigmoid": lambda d, a: d * (a * (1 - a)),
                "tanh": lambda d, a: d * (1 - a * a), "identity": lambda d, a: d}

        def step(params, batch):
            ws, bs = params
            outs = [batch[0]]
            for i in range(len(ws)):
                z = outs[-1] @ ws[i] + (bs[i].reshape(1, -1) if has_bias else 0)
                outs.append(fwd[acts[i]](z))
            value, d = loss(outs[-1], batch[1])
            new_ws, new_bs = list(ws), list(bs)
            for i in range(len(ws) - 1, -1, -1):
                new_ws[i] = ws[i] - lr * (outs[i].T @ d)
                if has_bias:
                    new_bs[i] = bs[i] - lr * d.sum(0).reshape(bs[i].shape)
                if i > 0:
                    d = back[acts[i - 1]](d @ ws[i].T, outs[i])
            return (tuple(new_ws), tuple(new_bs)), value
        return step

    def _batches(self, x, y):
        """One epoch's batches of rows in order: (stacked full batches, last partial batch
        or None)."""
        p = self.problem
        full, rest = divmod(p.rows, p.batch)
        m = p.batch
        stacked = (x[:full * m].reshape((full, m) + x.shape[1:]),
                   y[:full * m].reshape((full, m) + y.shape[1:]))
        return stacked, ((x[full * m:], y[full * m:]) if rest else None)

    def _epoch_fn(self, step):
        """(params, batches, tail) -> (params, mean step loss) of one epoch."""
        lax = self.jax.lax

        def epoch(params, batches, tail):
            if batches[0].shape[0] == 1 and tail is None:  # full batch: one step
                return step(params, (batches[0][0], batches[1][0]))
            params, values = lax.scan(step, params, batches)
            total, steps = values.sum(), values.shape[0]
            if tail is not None:
                params, v = step(params, tail)
                total, steps = total + v, steps + 1
            return params, total / steps
        return epoch

    def _epochs(self, params, lr, x, y, orders=None):
        """Every epoch (lax.scan) -> (params, losses): rows in order, or x[order] for each
        epoch's order."""
        lax, p = self.jax.lax, self.problem
        epoch = self._epoch_fn(self._step_fn(lr))
        if orders is None:
            batches, tail = self._batches(x, y)
            return lax.scan(lambda params, _: epoch(params, batches, tail), params, None,
                            length=p.epochs)

        def shuffled(params, order):
            return epoch(params, *self._batches(x[order], y[order]))
        return lax.scan(shuffled, params, orders)

    def _train_fn(self):
        lr = np.dtype(self.problem.dtype).type(self.problem.kwargs["lr"])
        return lambda params, x, y: self._epochs(params, lr, x, y)

    def setup(self):
        return (self.params, self.x, self.y), {}  # immutable: never modified

    def run(self, params, x, y):
        return self.jax.block_until_ready(self.train(params, x, y))

    def unpack(self, result):
        (ws, bs), hist = result
        return (np.asarray(hist), [np.asarray(w) for w in ws],
                [np.asarray(b) for b in bs] if self.problem.biases is not None else None)


# ----------------------------------------------------------------- sklearn
class SklearnImpl(Impl):
    """scikit-learn's MLPClassifier.fit with the problem's schedule and Adam settings.

    Its own initialisation (Glorot uniform), shuffling and Adam (eps outside the
    bias correction) make it incomparable with the reference number by number:
    ``verify`` checks that it ran every epoch and that its loss fell."""
    name = "sklearn"
    ACTIVATIONS = {"relu": "relu", "sigmoid": "logistic", "tanh": "tanh", "identity": "identity"}

    def __init__(self, problem):
        super().__init__(problem)
        from sklearn.neural_network import MLPClassifier
        opt, kw = problem.optimizer(), problem.kwargs
        self.params = dict(
            hidden_layer_sizes=tuple(problem.widths[1:-1]),
            activation=self.ACTIVATIONS[kw.get("activation", "relu")], solver="adam",
            batch_size=problem.batch, max_iter=problem.epochs, tol=0, n_iter_no_change=10**9,
            alpha=0.0, random_state=kw.get("seed") or 0, shuffle=bool(kw.get("shuffle")),
            learning_rate_init=opt.lr, beta_1=opt.betas[0], beta_2=opt.betas[1],
            epsilon=opt.eps)
        self.cls = MLPClassifier

    def setup(self):
        return (self.cls(**self.params),), {}

    def run(self, model):
        from sklearn.exceptions import ConvergenceWarning
        with warnings.catch_warnings():  # max_iter is the schedule here, not a failure
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(self.problem.x, self.problem.y)

    def unpack(self, result):
        return None

    def verify(self, oracle):
        _, model = time_run(self)
        curve = np.asarray(model.loss_curve_)
        assert model.n_iter_ == self.problem.epochs, f"sklearn ran {model.n_iter_} epochs"
        assert np.isfinite(curve).all() and curve[-1] < curve[0], "sklearn's loss did not fall"
        return (f"own initialisation and Adam, not comparable number by number: ran "
                f"{model.n_iter_} epochs, loss {curve[0]:.3g} -> {curve[-1]:.3g} "
                f"(reference {oracle[0][0]:.3g} -> {oracle[0][-1]:.3g})")


# -------------------------------------------------------------------- many
@contextlib.contextmanager
def _environ(var, value):
    """The environment variable ``var`` set to ``value`` inside the block (None: untouched)."""
    if value is None:
        yield
        return
    old = os.environ.get(var)
    os.environ[var] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[var]
        else:
            os.environ[var] = old


def network_orders(problem):
    """(K, epochs, rows) row orders: network k's epochs as train_many shuffles them
    (``rng.permutation(rows)`` per epoch, rng from the seed ``ManyProblem.network(k)``
    names); None when the problem is not shuffled."""
    if not problem.kwargs.get("shuffle"):
        return None
    return np.stack([[rng.permutation(problem.rows) for _ in range(problem.epochs)]
                     for rng in (np.random.default_rng(problem.network(k).kwargs["seed"])
                                 for k in range(problem.count))])


def network_lrs(problem):
    """(K,) learning rates: one per network, or the shared one repeated."""
    lr = np.asarray(problem.kwargs["lr"], np.dtype(problem.dtype))
    return np.array(np.broadcast_to(lr, (problem.count,)))


class FastnnManyImpl(FastnnImpl):
    """One fastnn.train_many call; ``threads``: FASTNN_THREADS during it (None: as set)."""
    name = "fastnn-many"
    threads = None

    def run(self, x, y, ws, bs, kw):
        with _environ("FASTNN_THREADS", self.threads):
            return fastnn.train_many(x, y, ws, bs, **kw), ws, bs


class FastnnMany1ThreadImpl(FastnnManyImpl):
    name = "fastnn-many-1thread"
    threads = "1"


class FastnnSequentialImpl(FastnnImpl):
    """K fastnn.train calls on views of the stacked arrays, network k with its lr and the
    seed train_many gives it: bitwise train_many's results."""
    name = "fastnn-sequential"

    def __init__(self, problem):
        super().__init__(problem)
        self.networks = [problem.network(k) for k in range(problem.count)]

    def setup(self):
        ws, bs = self.problem.fresh()
        kws = [n.train_kwargs() for n in self.networks]
        return (self.problem.x, self.problem.y, ws, bs, kws), {}

    def run(self, x, y, ws, bs, kws):
        hist = [fastnn.train(x, y, [w[k] for w in ws], None if bs is None else
                             [b[k] for b in bs], **kw) for k, kw in enumerate(kws)]
        return np.stack(hist), ws, bs


class JaxVmapImpl(JaxImpl):
    """``jax.vmap`` over the networks of the ``jax`` row's training (same step and epochs),
    jit'd; the lr and, when shuffled, the row orders of each network (``network_orders``,
    drawn untimed) are vmapped arguments; an epoch gathers its rows once, x[order]."""
    name = "jax-vmap"

    def __init__(self, problem):
        super().__init__(problem)
        orders = network_orders(problem)
        self.lr = self.jnp.asarray(network_lrs(problem))
        self.orders = None if orders is None else self.jnp.asarray(orders)

    def _train_fn(self):
        shuffled = bool(self.problem.kwargs.get("shuffle"))
        return self.jax.vmap(self._epochs, in_axes=(0, 0, None, None, 0 if shuffled else None))

    def setup(self):
        return (self.params, self.lr, self.x, self.y, self.orders), {}

    def run(self, params, lr, x, y, orders):
        return self.jax.block_until_ready(self.train(params, lr, x, y, orders))


class TorchVmapImpl(_TorchBase):
    """torch.func as its model-ensembling recipe: an nn.Sequential on the meta device, the
    networks' parameters stacked in the dict ``stack_module_state`` gives, per step one
    ``vmap(grad(objective))`` of ``functional_call`` over the networks, then plain SGD in
    place. The objective's gradient is the one fastnn follows (for mse, of sum(r^2)/2m);
    the reported loss is its aux. Shuffled: each network's rows (``network_orders``, drawn
    untimed) gathered per step."""
    name = "torch-vmap"

    def __init__(self, problem):
        super().__init__(problem)
        t, p = self.torch, problem
        self.model = self._model().to("meta")
        self.layers = [j for j, m in enumerate(self.model) if isinstance(m, t.nn.Linear)]
        orders = network_orders(p)
        self.orders = None if orders is None else t.from_numpy(orders)
        self.lr = t.from_numpy(network_lrs(p))
        data = 0 if orders is not None else None
        self.grads = t.func.vmap(t.func.grad(self._objective, has_aux=True),
                                 in_dims=(0, data, data))

    def _model(self):
        t, p = self.torch, self.problem
        acts = {"relu": t.nn.ReLU, "sigmoid": t.nn.Sigmoid, "tanh": t.nn.Tanh}
        layers = []
        for a, b, act in zip(p.widths, p.widths[1:], p.activations):
            layers.append(t.nn.Linear(a, b, bias=p.biases is not None,
                                      dtype=getattr(t, p.dtype)))
            if act != "identity":
                layers.append(acts[act]())
        return t.nn.Sequential(*layers)

    def _objective(self, params, xb, yb):
        """(objective whose gradient a step follows, reported loss) of one network's batch."""
        F = self.torch.nn.functional
        z = self.torch.func.functional_call(self.model, params, (xb,))
        loss = self.problem.kwargs["loss"]
        if loss == "softmax_ce":
            value = F.cross_entropy(z, yb)
            return value, value.detach().double()
        r = z - yb
        value = r.double().square().sum()
        if loss == "sse":
            return r.square().sum(), value.detach()
        return r.square().sum() / (2 * r.shape[0]), value.detach() / r.numel()

    def setup(self):
        t, p = self.torch, self.problem
        params = {}
        for j, w in zip(self.layers, p.weights):  # nn.Linear keeps (out, in)
            params[f"{j}.weight"] = t.from_numpy(w.transpose(0, 2, 1).copy())
        for j, b in zip(self.layers, p.biases or []):
            params[f"{j}.bias"] = t.from_numpy(b.reshape(p.count, -1).copy())
        return (params,), {}

    def run(self, params):
        p, t = self.problem, self.torch
        history = t.empty(p.count, p.epochs, dtype=t.float64)
        lrs = {k: self.lr.reshape((-1,) + (1,) * (v.dim() - 1)) for k, v in params.items()}
        for epoch in range(p.epochs):
            total, steps = 0, 0
            for start in range(0, p.rows, p.batch):
                xb, yb = self.batch(epoch, start)
                grads, values = self.grads(params, xb, yb)
                for k, g in grads.items():
                    params[k].sub_(g.mul_(lrs[k]))
                total, steps = total + values, steps + 1
            history[:, epoch] = total / steps
        return history, params

    def batch(self, epoch, start):
        """The step's rows: shared (m, .) in order, or (K, m, .) from each network's order."""
        stop = start + self.problem.batch
        if self.orders is None:
            return self.x[start:stop], self.y[start:stop]
        rows = self.orders[:, epoch, start:stop]
        return self.x[rows], self.y[rows]

    def unpack(self, result):
        history, params = result
        ws = [params[f"{j}.weight"].transpose(1, 2).numpy() for j in self.layers]
        bs = None if self.problem.biases is None else \
            [params[f"{j}.bias"].numpy() for j in self.layers]
        return history.numpy(), ws, bs


IMPLS = {cls.name: cls for cls in (FastnnImpl, FastnnNoCheckImpl, FastnnCallbackImpl,
                                    FastnnPrintImpl, NumpyImpl, GemmFloor,
                                    TorchImpl, TorchAutogradImpl, JaxImpl, SklearnImpl,
                                    FastnnManyImpl, FastnnMany1ThreadImpl, FastnnSequentialImpl,
                                    JaxVmapImpl, TorchVmapImpl)}


def available(name):
    """True when the implementation's optional module imports."""
    module = OPTIONAL.get(name)
    if module is None:
        return True
    try:
        __import__(module)
        return True
    except Exception:  # a broken optional install counts as missing
        return False

