"""Shared pieces of fastnn's benchmarks: workloads, implementations, checks.

Everything here is plain code, no pytest: ``bench_workloads.py`` turns it into
benchmark groups, ``conftest.py`` records the machine and prints a summary.

* :func:`make_problem` builds one workload (issue 3) from ``fastnn._workloads``,
  the seeded arrays ``python -m fastnn demo`` trains too.
* :data:`IMPLS` lists the implementations; each one prepares a problem, hands
  out fresh copies of the initial parameters (``setup``), runs the whole
  training (``run``, the only timed part) and converts its result to NumPy.
* :class:`GemmFloor` replays only the matrix products of the NumPy loop.
* :func:`check_training` compares a result with ``fastnn.reference``.
"""

import dataclasses
import math
import os
import time
from dataclasses import dataclass

import numpy as np

import fastnn
from fastnn import _workloads as _wl
from fastnn import reference

# ---------------------------------------------------------------- tolerances
# Agreement demanded of every implementation against fastnn.reference, on
# well-conditioned runs: float64 results differ only by the order of rounding
# (BLAS blocking, fused updates), float32 ones by float32 rounding of the same.
RTOL = {"float64": 1e-9, "float32": 1e-4}

# -------------------------------------------------------------------- timing
# Time budget of one benchmark row (seconds of timed rounds), and the bounds on
# its number of rounds. The budget keeps a whole ``pytest --benchmark-only``
# run within a few minutes on the 2-core reference machine. Override with
# FASTNN_BENCH_SECONDS / FASTNN_BENCH_MIN_ROUNDS / FASTNN_BENCH_MAX_ROUNDS.
ROW_SECONDS = float(os.environ.get("FASTNN_BENCH_SECONDS", "1.5"))
MIN_ROUNDS = int(os.environ.get("FASTNN_BENCH_MIN_ROUNDS", "3"))
MAX_ROUNDS = int(os.environ.get("FASTNN_BENCH_MAX_ROUNDS", "25"))


def choose_rounds(seconds_per_run):
    """Rounds that fill ROW_SECONDS, within [MIN_ROUNDS, MAX_ROUNDS]."""
    want = ROW_SECONDS / max(seconds_per_run, 1e-6)
    return int(min(MAX_ROUNDS, max(MIN_ROUNDS, round(want))))


# ------------------------------------------------------------------ workloads
@dataclass
class Problem:
    """One training run: data, initial parameters and fastnn.train keywords."""
    workload: str
    dtype: str
    x: np.ndarray
    y: np.ndarray
    weights: list
    biases: list            # None (no biases) or one array per layer
    kwargs: dict            # activation, loss, lr, epochs, batch_size
    note: str = ""

    @property
    def widths(self):
        return [self.weights[0].shape[0]] + [w.shape[1] for w in self.weights]

    @property
    def batch(self):
        n = self.x.shape[0]
        b = self.kwargs.get("batch_size")
        return n if b is None else min(b, n)

    @property
    def steps_per_epoch(self):
        return -(-self.x.shape[0] // self.batch)

    @property
    def activations(self):
        """Per layer, the reference's names: hidden layers share one, output is identity."""
        act = self.kwargs.get("activation", "relu")
        return [act] * (len(self.weights) - 1) + ["identity"]

    def fresh(self):
        """Copies of the initial parameters (each timed round trains its own)."""
        ws = [w.copy() for w in self.weights]
        bs = None if self.biases is None else [b.copy() for b in self.biases]
        return ws, bs

    def gemm_flops(self):
        """Floating-point operations of the products one training run needs.

        Per step with m rows and layer i (n_i -> n_i+1): forward a_i @ w_i and
        weight gradient a_i.T @ d_i+1 for every layer, hidden gradient
        d_i+1 @ w_i.T for every layer but the first (no input gradient).
        """
        n = self.x.shape[0]
        total = 0
        for start in range(0, n, self.batch):
            m = min(self.batch, n - start)
            for i, (a, b) in enumerate(zip(self.widths, self.widths[1:])):
                total += (3 if i > 0 else 2) * 2 * m * a * b
        return total * self.kwargs["epochs"]


# The initial points are fastnn._workloads' (its docstring says why each
# converges; sigmoid2 starts from 0.1 x randn weights, since seed 002's
# unit-variance weights saturate every sigmoid and this generator's draw
# diverges at lr 1e-4). Every result is checked against the reference anyway.
WORKLOADS = {name: _wl.WORKLOADS[name] for name in ("relu2", "sigmoid2", "mlp3_gd", "mlp3_sgd")}
DTYPES = ("float64", "float32")
SWEEP_WIDTHS = (16, 64, 256, 1024)
SWEEP_EPOCHS = 50


def describe(w, epochs=None):
    """One line for the report: 'seeds 000/001/003: 64x1000->100->10, relu, SSE, ...'."""
    epochs = w.epochs if epochs is None else epochs
    lr = f"{w.lr:g}" if w.lr >= 1e-3 else f"{w.lr:.0e}".replace("e-0", "e-")
    parts = [w.shape, w.activation, w.loss.upper(), f"lr {lr}", f"{epochs} epochs",
             "full batch" if w.batch_size is None else f"batch_size={w.batch_size}"]
    if w.biases != "none":
        parts.append(f"biases {w.biases}")
    if w.weight_scale != 1.0:
        parts.append(f"weights {w.weight_scale:g} x randn")
    return f"seed{'s' if '/' in w.seeds else ''} {w.seeds}: " + ", ".join(parts)


def make_problem(workload, dtype, hidden=None, epochs=None):
    """A workload from ``fastnn._workloads`` (the arrays the demo uses too).

    ``hidden`` (the width sweep) replaces relu2's hidden width H and scales w1
    by sqrt(100 / H): the largest curvature seen by w2 grows like H * |w1|^2,
    and lr 1e-6 only converges near the seeds' value of that product.
    """
    w = WORKLOADS[workload]
    name = workload
    scale_w1 = 1.0
    if hidden is not None:
        w = dataclasses.replace(w, widths=(w.widths[0], hidden) + tuple(w.widths[2:]))
        scale_w1 = math.sqrt(100 / hidden)
        name += f"-h{hidden}"
    p = w.build(np.dtype(dtype))
    weights = [np.ascontiguousarray(a) for a in p.weights]
    if scale_w1 != 1.0:
        weights[0] = np.ascontiguousarray(weights[0] * weights[0].dtype.type(scale_w1))
    biases = None if p.biases is None else [np.ascontiguousarray(b) for b in p.biases]
    note = describe(w, epochs)
    if scale_w1 != 1.0:
        note += f", w1 scaled by sqrt(100/{hidden})"
    return Problem(name, np.dtype(dtype).name, np.ascontiguousarray(p.x), np.ascontiguousarray(p.y),
                   weights, biases, w.train_kwargs(epochs), note)


# ------------------------------------------------------------- verification
def check_training(label, problem, result, oracle):
    """Assert that (history, weights, biases) agree with the reference's.

    Loss history: a converging run's late losses are sums of squares of tiny
    differences y_pred - y of O(1) numbers, so their *relative* error is
    amplified by cancellation (float32 relu2: 1e-2 at a loss of 4e-5 that
    started at 3e7) even when every weight agrees to 1e-7. The residual norm
    sqrt(loss) has an absolute rounding error that scales with the size of the
    residuals the run works with, so it is compared with rtol and an atol of
    rtol * sqrt(loss of the first epoch). Parameters: rtol, with an atol of
    rtol * max|reference array| for entries that pass through zero.
    """
    rtol = RTOL[problem.dtype]
    hist, ws, bs = result
    ref_hist, ref_ws, ref_bs = oracle
    hist = np.asarray(hist, np.float64)
    assert hist.shape == ref_hist.shape, \
        f"{label}: loss history has shape {hist.shape}, want {ref_hist.shape}"
    assert np.isfinite(hist).all(), f"{label}: non-finite loss history"
    np.testing.assert_allclose(np.sqrt(hist), np.sqrt(ref_hist), rtol=rtol,
                               atol=rtol * math.sqrt(ref_hist[0]),
                               err_msg=f"{label}: sqrt(loss history) differs from fastnn.reference")
    pairs = list(zip(ws, ref_ws, [f"weights[{i}]" for i in range(len(ws))]))
    if ref_bs is not None:
        assert bs is not None and len(bs) == len(ref_bs), f"{label}: biases missing"
        pairs += list(zip(bs, ref_bs, [f"biases[{i}]" for i in range(len(bs))]))
    for got, want, name in pairs:
        got = np.asarray(got)
        assert got.shape == want.shape, f"{label}: {name} has shape {got.shape}, want {want.shape}"
        assert got.dtype == want.dtype, f"{label}: {name} has dtype {got.dtype}, want {want.dtype}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()),
                                   err_msg=f"{label}: final {name} differs from fastnn.reference")


def run_oracle(problem):
    """fastnn.reference.train on fresh copies: (history, weights, biases), seconds."""
    ws, bs = problem.fresh()
    t0 = time.perf_counter()
    hist = reference.train(problem.x, problem.y, ws, bs, **problem.kwargs)
    return (hist, ws, bs), time.perf_counter() - t0


# -------------------------------------------------------------- gemm-floor
class GemmFloor:
    """Only the matrix products of the NumPy loop, on preallocated buffers.

    Per step with m rows, for every layer i (n_i -> n_i+1): the forward product
    a_i @ w_i, the weight gradient a_i.T @ d_i+1 and, except for the first
    layer, the hidden gradient d_i+1 @ w_i.T (the reference computes no input
    gradient either). Every product is ``np.dot(..., out=buffer)`` on NumPy's
    BLAS, the one the NumPy loop's ``@`` uses; the Python loop around them costs
    ~0.2 us per product. Nothing else is done: no activation, loss or update.
    """

    def __init__(self, problem):
        self.problem = problem
        n = problem.x.shape[0]
        self.batches = []   # (ops, a, d, gw) per distinct batch size, and its step count
        counts = {}
        for start in range(0, n, problem.batch):
            m = min(problem.batch, n - start)
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

    def run(self):
        dot = np.dot
        epochs = self.problem.kwargs["epochs"]
        for plan, count in self.plans:
            ops = plan["ops"]
            for _ in range(epochs * count):
                for x, y, out in ops:
                    dot(x, y, out=out)

    def verify(self):
        """Replay one step's products with the reference's elementwise work put
        between them, and check they give the reference's gradients: this
        proves every product has the shape, operands and transposes of the
        NumPy loop's."""
        p = self.problem
        plan = self.plans[0][0]
        m, a, d, gw, ws = plan["m"], plan["a"], plan["d"], plan["gw"], plan["ws"]
        bs = p.biases or [None] * len(ws)
        acts = p.activations
        dot = np.dot
        for i, (x, y, out) in enumerate(plan["fwd"]):
            dot(x, y, out=out)
            z = out if bs[i] is None else out + bs[i].reshape(1, -1)
            out[...] = reference.activation_forward(z, acts[i])
        _, d[-1][...] = reference.loss_forward_backward(a[-1], p.y[:m], p.kwargs["loss"])
        k = 0
        for i in range(len(ws) - 1, -1, -1):
            x, y, out = plan["bwd"][k]
            dot(x, y, out=out)
            k += 1
            if i > 0:
                x, y, out = plan["bwd"][k]
                dot(x, y, out=out)
                out[...] = reference.activation_backward(out, a[i], acts[i - 1])
                k += 1
        outs = reference.network_forward(p.x[:m], p.weights, bs, acts)
        _, d_last = reference.loss_forward_backward(outs[-1], p.y[:m], p.kwargs["loss"])
        grads = reference.network_backward(d_last, outs, p.weights, acts)
        rtol = RTOL[p.dtype]
        for i, (g, (g_ref, _)) in enumerate(zip(gw, grads)):
            np.testing.assert_allclose(g, g_ref, rtol=rtol, atol=rtol * float(np.abs(g_ref).max()),
                                       err_msg=f"gemm-floor: product for grad of weights[{i}]")
        n_products = sum(len(plan["ops"]) * c for plan, c in self.plans)
        flops = sum(2 * x.shape[0] * x.shape[1] * y.shape[1] * c
                    for plan, c in self.plans for x, y, _ in plan["ops"])
        assert flops * p.kwargs["epochs"] == p.gemm_flops()
        return n_products


# ----------------------------------------------------------- implementations
class Impl:
    """One way to train: ``setup() -> (args, kwargs)``, ``run(*args)`` (timed),
    ``unpack(result) -> (history, weights, biases)`` as NumPy (None: no result)."""
    name = ""
    needs_warm_estimate = False  # time a second untimed run to choose rounds

    def __init__(self, problem):
        self.problem = problem

    def unpack(self, result):
        return result


class FastnnImpl(Impl):
    name = "fastnn"

    def setup(self):
        ws, bs = self.problem.fresh()
        return (self.problem.x, self.problem.y, ws, bs), {}

    def run(self, x, y, ws, bs):
        return fastnn.train(x, y, ws, bs, **self.problem.kwargs), ws, bs


class FastnnNoCheckImpl(FastnnImpl):
    """fastnn with check_finite=False: the cost of divergence checking (issue 4: <= 2%)."""
    name = "fastnn-nocheck"

    def run(self, x, y, ws, bs):
        return fastnn.train(x, y, ws, bs, check_finite=False, **self.problem.kwargs), ws, bs


class NumpyImpl(FastnnImpl):
    name = "numpy"

    def run(self, x, y, ws, bs):
        return reference.train(x, y, ws, bs, **self.problem.kwargs), ws, bs


class GemmFloorImpl(Impl):
    name = "gemm-floor"

    def __init__(self, problem):
        super().__init__(problem)
        self.floor = GemmFloor(problem)

    def setup(self):
        return (), {}

    def run(self):
        self.floor.run()

    def unpack(self, result):
        return None


def _activation_torch(torch, z, name):
    if name == "relu":
        return torch.relu_(z)
    if name == "sigmoid":
        return torch.sigmoid_(z)
    if name == "tanh":
        return torch.tanh_(z)
    return z


def _activation_backward_torch(d, a, name):
    if name == "relu":
        return d.mul_(a > 0)
    if name == "sigmoid":
        return d.mul_(a * (1 - a))
    if name == "tanh":
        return d.mul_(1 - a * a)
    return d


class TorchImpl(Impl):
    """PyTorch eager, no autograd: the NumPy loop written with tensors."""
    name = "torch"  # eager: the checked first run is already warm enough to size the rounds

    def __init__(self, problem):
        super().__init__(problem)
        import torch
        torch.set_num_threads(2)  # the machine's cores; BLAS threads stay within them
        self.torch = torch
        self.x = torch.from_numpy(problem.x)
        self.y = torch.from_numpy(problem.y)

    def setup(self):
        t = self.torch
        ws = [t.from_numpy(w.copy()) for w in self.problem.weights]
        bs = None if self.problem.biases is None else [t.from_numpy(b.copy()) for b in self.problem.biases]
        return (ws, bs), {}

    def run(self, ws, bs):
        torch = self.torch
        p = self.problem
        kw = p.kwargs
        x, y = self.x, self.y
        n, batch, epochs = x.shape[0], p.batch, kw["epochs"]
        lr, sse, acts = kw["lr"], kw["loss"] == "sse", p.activations
        layers = len(ws)
        bias = bs if bs is not None else [None] * layers
        history = torch.zeros(epochs, dtype=torch.float64)
        with torch.no_grad():
            for epoch in range(epochs):
                total = torch.zeros((), dtype=torch.float64)
                for start in range(0, n, batch):
                    xb, yb = x[start:start + batch], y[start:start + batch]
                    outs = [xb]
                    for i in range(layers):
                        z = outs[-1] @ ws[i]
                        if bias[i] is not None:
                            z += bias[i]
                        outs.append(_activation_torch(torch, z, acts[i]))
                    r = outs[-1] - yb
                    step = r.double().square().sum()
                    if sse:
                        d = r.mul_(2.0)
                    else:
                        step = step / r.numel()
                        d = r.div_(r.shape[0])
                    total += step
                    for i in range(layers - 1, -1, -1):
                        grad_w = outs[i].T @ d
                        d_in = None
                        if i > 0:  # before this layer's update, as the NumPy loop
                            d_in = _activation_backward_torch(d @ ws[i].T, outs[i], acts[i - 1])
                        ws[i].sub_(grad_w, alpha=lr)
                        if bias[i] is not None:
                            bias[i].sub_(d.sum(0).reshape(bias[i].shape), alpha=lr)
                        d = d_in
                history[epoch] = total / p.steps_per_epoch
        return history, ws, bs

    def unpack(self, result):
        hist, ws, bs = result
        return (hist.numpy(), [w.numpy() for w in ws],
                None if bs is None else [b.numpy() for b in bs])


class JaxImpl(Impl):
    """JAX: jit of the whole training, lax.scan over epochs (and over steps)."""
    name = "jax"
    needs_warm_estimate = True

    def __init__(self, problem):
        super().__init__(problem)
        import jax
        jax.config.update("jax_enable_x64", True)  # float64 workloads (and float64 losses)
        import jax.numpy as jnp
        from jax import lax
        self.jax, self.jnp = jax, jnp
        p = problem
        kw = p.kwargs
        n, m = p.x.shape[0], p.batch
        full, rest = divmod(n, m)
        acts, sse = p.activations, kw["loss"] == "sse"
        has_bias = p.biases is not None
        lr = np.dtype(p.dtype).type(kw["lr"])
        layers = len(p.weights)

        def act(z, name):
            if name == "relu":
                return jnp.maximum(z, 0)
            if name == "sigmoid":
                return jax.nn.sigmoid(z)
            if name == "tanh":
                return jnp.tanh(z)
            return z

        def act_back(d, a, name):
            if name == "relu":
                return d * (a > 0)
            if name == "sigmoid":
                return d * (a * (1 - a))
            if name == "tanh":
                return d * (1 - a * a)
            return d

        def step(params, batch):
            ws, bs = params
            xb, yb = batch
            outs = [xb]
            for i in range(layers):
                z = outs[-1] @ ws[i]
                if has_bias:
                    z = z + bs[i]
                outs.append(act(z, acts[i]))
            r = outs[-1] - yb
            value = jnp.sum(jnp.square(r.astype(jnp.float64)))
            if sse:
                d = 2 * r
            else:
                value = value / r.size
                d = r / r.shape[0]
            new_ws, new_bs = list(ws), list(bs)
            for i in range(layers - 1, -1, -1):
                new_ws[i] = ws[i] - lr * (outs[i].T @ d)
                if has_bias:
                    new_bs[i] = bs[i] - lr * d.sum(0).reshape(bs[i].shape)
                if i > 0:
                    d = act_back(d @ ws[i].T, outs[i], acts[i - 1])
            return (tuple(new_ws), tuple(new_bs)), value

        def train(params, x, y):
            if full == 1 and rest == 0:
                def epoch(params, _):
                    return step(params, (x, y))
            else:
                xs = x[:full * m].reshape(full, m, x.shape[1])
                ys = y[:full * m].reshape(full, m, y.shape[1])

                def epoch(params, _):
                    params, values = lax.scan(step, params, (xs, ys))
                    total = values.sum()
                    if rest:
                        params, v = step(params, (x[full * m:], y[full * m:]))
                        total = total + v
                    return params, total / (full + (1 if rest else 0))
            return lax.scan(epoch, params, None, length=kw["epochs"])

        self.train = jax.jit(train)
        self.x, self.y = jnp.asarray(p.x), jnp.asarray(p.y)
        self.params = (tuple(jnp.asarray(w) for w in p.weights),
                       tuple(jnp.asarray(b) for b in (p.biases or [])))

    def setup(self):
        # JAX arrays are immutable: the initial parameters are never modified.
        return (self.params, self.x, self.y), {}

    def run(self, params, x, y):
        return self.jax.block_until_ready(self.train(params, x, y))

    def unpack(self, result):
        (ws, bs), hist = result
        return (np.asarray(hist), [np.asarray(w) for w in ws],
                [np.asarray(b) for b in bs] if self.problem.biases is not None else None)


IMPLS = {cls.name: cls for cls in (FastnnImpl, FastnnNoCheckImpl, NumpyImpl, GemmFloorImpl,
                                    TorchImpl, JaxImpl)}
OPTIONAL = {"torch": "torch", "jax": "jax"}  # impl -> module that must be importable


def warm_fastnn():
    """Compile (or load from the cache) fastnn's kernels for both dtypes, every code
    path (small layers, one-sample steps, gemm layers with and without the Gram path:
    each compiles on its own)."""
    for dt in DTYPES:
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((8, 3)).astype(dt), rng.standard_normal((8, 2)).astype(dt)
        ws = [rng.standard_normal((3, 4)).astype(dt), rng.standard_normal((4, 2)).astype(dt)]
        bs = [np.zeros((1, 4), dt), np.zeros((1, 2), dt)]
        fastnn.train(x, y, ws, bs, activation="sigmoid", loss="mse", lr=1e-3, epochs=2, batch_size=3)
        fastnn.train(x, y, ws, None, lr=1e-3, epochs=2)
        fastnn.train(x, y, ws, bs, lr=1e-3, epochs=2, batch_size=1)
        x, y = rng.standard_normal((16, 64)).astype(dt), rng.standard_normal((16, 64)).astype(dt)
        ws = [(rng.standard_normal((64, 64)) / 8).astype(dt) for _ in range(2)]
        assert fastnn.kernels.gemm_only([64, 64, 64], 16, 16)
        assert fastnn.kernels.gram_size([64, 64, 64], 16, 16) > 0
        fastnn.train(x, y, ws, lr=1e-3, epochs=2)
        fastnn.train(x, y, ws, lr=1e-3, epochs=2, shuffle=True, seed=0)  # no Gram path
