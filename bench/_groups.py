"""What is measured: the benchmark groups, as lists of :class:`_harness.Case`.

* ``seeds``: the four seed workloads (``fastnn._workloads``) in float64 and float32;
  rows fastnn, fastnn-nocheck, numpy, gemm-floor, torch, jax.
* ``grid``: networks users train (:data:`GRID`, one case per point); rows fastnn,
  numpy, gemm-floor, torch.
* ``act``: for each network of the grid that appears with relu, sigmoid and tanh,
  the three fastnn rows measured together (target: tanh and sigmoid <= 1.3x relu).
* ``check``: the seed workloads in float64, rows fastnn and fastnn-nocheck alone, so that
  check_finite's cost (target: at most 2%) is timed over more rounds than the seeds group's,
  which its NumPy rows pace.
* ``hooks``: the seed workloads in float64, rows fastnn, fastnn-callback (a callback after
  every epoch) and fastnn-print (print_every=1).
* ``classify``: digits-sized softmax classification with Adam (issue 17); rows
  fastnn, numpy, torch (autograd + torch.optim.Adam) and sklearn.
* ``many``: K = 64 networks per call (:class:`_harness.ManyProblem`), mlp3_gd-shaped
  and digits-sized; rows fastnn-many (one ``train_many`` call), fastnn-many-1thread,
  fastnn-sequential (64 ``train`` calls), jax-vmap and torch-vmap.

To add a group: write a function returning its cases and add it to :data:`GROUPS`;
add its row kinds to ``_impls.IMPLS``; give it a ``bench_<group>.py`` of a few
lines (see ``bench_grid.py``) and a section in ``report.py``.
"""

import functools
import zlib
from dataclasses import dataclass

import numpy as np

from _harness import Case, ManyProblem, Problem

DTYPES = ("float64", "float32")

# ---------------------------------------------------------------------- seeds
SEED_WORKLOADS = ("relu2", "sigmoid2", "mlp3_gd", "mlp3_sgd")
SEED_IMPLS = ("fastnn", "fastnn-nocheck", "numpy", "gemm-floor", "torch", "jax")


def describe_workload(w):
    """One line for the report: 'seeds 000/001/003: 64x1000->100->10, relu, SSE, ...'."""
    lr = f"{w.lr:g}" if w.lr >= 1e-3 else f"{w.lr:.0e}".replace("e-0", "e-")
    parts = [w.shape, w.activation, w.loss.upper(), f"lr {lr}", f"{w.epochs} epochs",
             "full batch" if w.batch_size is None else f"batch_size={w.batch_size}"]
    if w.biases != "none":
        parts.append(f"biases {w.biases}")
    if w.weight_scale != 1.0:
        parts.append(f"weights {w.weight_scale:g} x randn")
    return f"seed{'s' if '/' in w.seeds else ''} {w.seeds}: " + ", ".join(parts)


@functools.lru_cache(maxsize=None)
def seed_problem(workload, dtype):
    """A seed workload's arrays from fastnn._workloads (the ones the demo trains)."""
    from fastnn import _workloads  # here, not at import: collecting needs no fastnn
    w = _workloads.WORKLOADS[workload]
    p = w.build(np.dtype(dtype))
    c = np.ascontiguousarray
    return Problem(f"{workload}-{dtype}", np.dtype(dtype).name, c(p.x), c(p.y),
                   [c(a) for a in p.weights],
                   None if p.biases is None else [c(b) for b in p.biases],
                   w.train_kwargs(),
                   info={"workload": workload, "description": describe_workload(w)})


def seed_cases():
    return [Case("seeds", f"seed:{w}-{dt}",
                 [(impl, impl, functools.partial(seed_problem, w, dt)) for impl in SEED_IMPLS],
                 {"workload": w, "dtype": dt})
            for w in SEED_WORKLOADS for dt in DTYPES]


# ---------------------------------------------------------------------- check
CHECK_IMPLS = ("fastnn", "fastnn-nocheck")


def seed_float64_cases(group, impls):
    """A case per seed workload in float64, with these rows (the check and hooks groups)."""
    return [Case(group, f"{group}:{w}",
                 [(impl, impl, functools.partial(seed_problem, w, "float64")) for impl in impls],
                 {"workload": w, "dtype": "float64"})
            for w in SEED_WORKLOADS]


def check_cases():
    return seed_float64_cases("check", CHECK_IMPLS)


# ---------------------------------------------------------------------- hooks
HOOKS_IMPLS = ("fastnn", "fastnn-callback", "fastnn-print")


def hooks_cases():
    return seed_float64_cases("hooks", HOOKS_IMPLS)


# ----------------------------------------------------------------------- grid
@dataclass(frozen=True)
class Point:
    """One network of the grid. batch None is the full batch. epochs are fixed so that
    the numpy row takes 20-500 ms here (``python bench/grid.py --calibrate`` measures
    and suggests them; the report flags points outside that range). lr: the largest
    of 0.1/0.05/0.02/0.01 whose MSE falls steadily (also from --calibrate)."""
    widths: tuple
    batch: int
    rows: int
    activation: str
    shuffle: bool
    dtype: str
    lr: float
    epochs: int
    verify_epochs: int = None   # fewer epochs for the check against the reference
    family: str = None          # the same network with relu, sigmoid and tanh
    note: str = ""

    @property
    def name(self):
        net = "-".join(map(str, self.widths))
        batch = "full" if self.batch is None else self.batch
        return (f"{net}_b{batch}_n{self.rows}_{self.activation}"
                f"{'_shuf' if self.shuffle else ''}_{'f32' if self.dtype == 'float32' else 'f64'}")

    def macs_per_layer(self):
        m = self.rows if self.batch is None else min(self.batch, self.rows)
        return [a * b * m for a, b in zip(self.widths, self.widths[1:])]

    @property
    def size_class(self):
        """'blas' when every layer has >= 32k multiply-adds per step, 'tiny' when every
        layer has < 4k, else '' (the issue's two targeted regimes)."""
        macs = self.macs_per_layer()
        return "blas" if min(macs) >= 32768 else "tiny" if max(macs) < 4096 else ""


def _family(widths, batch, rows, shuffle, lr, epochs, name, **kw):
    """The same network with relu, sigmoid and tanh."""
    return [Point(widths, batch, rows, act, shuffle, "float64", lr, epochs, family=name, **kw)
            for act in ("relu", "sigmoid", "tanh")]


F64, F32 = "float64", "float32"
GRID = [
    # three networks with each activation: deep minibatch, BLAS-sized, one-row steps
    *_family((16, 64, 64, 64, 1), 32, 4096, True, 0.1, 4, "deep"),
    *_family((64, 64, 64), 256, 4096, False, 0.1, 10, "blas"),
    *_family((4, 4, 4, 1), 1, 256, True, 0.1, 5, "tiny"),
    # every layer < 4k multiply-adds per step
    Point((16, 16, 1), 1, 4096, "relu", True, F64, 0.1, 1),
    Point((4, 4, 4, 4, 1), 32, 256, "tanh", False, F64, 0.1, 100),
    Point((16, 4, 1), 32, 65536, "relu", True, F64, 0.1, 1),
    Point((4, 4, 4, 1), 1, 256, "relu", True, F32, 0.1, 5),
    # every layer >= 32k multiply-adds per step
    Point((16, 16, 1), None, 65536, "tanh", False, F64, 0.1, 3),
    Point((16, 64, 64), 256, 65536, "relu", True, F64, 0.1, 1),
    Point((256, 256, 256), 32, 4096, "relu", True, F64, 0.05, 1),
    Point((256, 256, 256), 32, 4096, "relu", True, F32, 0.05, 1),
    Point((16, 64, 64), None, 4096, "sigmoid", False, F64, 0.1, 12),
    # relu in float32 is chaotic over 10 epochs here: a 1-ulp change of the initial weights
    # moves the reference's weights by up to 5.6e-3 (elementwise, as verified), 7.2e-7 over 5
    Point((64, 64, 64), 256, 4096, "relu", False, F32, 0.1, 10, verify_epochs=5),
    # in between
    Point((16, 256, 1), 1, 256, "sigmoid", False, F64, 0.02, 3),
    Point((64, 16, 16, 1), 256, 4096, "relu", True, F32, 0.1, 12),
    Point((64, 16, 1), None, 256, "tanh", True, F64, 0.1, 250),
    Point((16, 64, 1), 256, 65536, "sigmoid", False, F64, 0.1, 1),
    Point((4, 16, 16, 1), 32, 4096, "sigmoid", True, F64, 0.1, 12),
    Point((16, 64, 64, 64, 1), 32, 4096, "tanh", True, F32, 0.1, 4),
    # wide data: full batch, rows <= half the input features (fastnn's Gram path)
    Point((1024, 64, 1), None, 256, "relu", False, F64, 0.1, 40, note="wide"),
    Point((1024, 256, 16), None, 256, "sigmoid", False, F32, 0.02, 25, note="wide"),
]
GRID_IMPLS = ("fastnn", "numpy", "gemm-floor", "torch")


def _seed_of(*parts):
    """A seed shared by points with the same network and rows (activation triplets
    start from the same data and weights)."""
    return zlib.crc32(repr(parts).encode())


@functools.lru_cache(maxsize=None)
def grid_problem(point):
    """Seeded data: x standard normal; y from a random tanh teacher network of the same
    widths, scaled to unit variance; weights N(0, 1/fan_in), zero biases."""
    rng = np.random.default_rng(_seed_of(point.widths, point.rows))
    w = point.widths
    x = rng.standard_normal((point.rows, w[0]))
    teacher = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(w, w[1:])]
    h = x
    for t in teacher[:-1]:
        h = np.tanh(h @ t)
    y = h @ teacher[-1]
    y /= y.std(axis=0, keepdims=True)
    weights = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(w, w[1:])]
    dt = np.dtype(point.dtype)
    kwargs = dict(activation=point.activation, loss="mse", lr=point.lr, epochs=point.epochs,
                  batch_size=point.batch, shuffle=point.shuffle,
                  seed=0 if point.shuffle else None)
    info = {"point": point.name, "size_class": point.size_class, "family": point.family,
            "note": point.note}
    return Problem(point.name, dt.name, x.astype(dt), y.astype(dt),
                   [a.astype(dt) for a in weights], [np.zeros(b, dt) for b in w[1:]],
                   kwargs, info=info, verify_epochs=point.verify_epochs)


def grid_cases(points=None):
    return [Case("grid", f"grid:{p.name}",
                 [(impl, impl, functools.partial(grid_problem, p)) for impl in GRID_IMPLS],
                 {"point": p.name})
            for p in (GRID if points is None else points)]


def act_cases():
    """fastnn on each activation of a family, measured together."""
    families = {}
    for p in GRID:
        if p.family:
            families.setdefault(p.family, []).append(p)
    return [Case("act", f"act:{name}",
                 [(p.activation, "fastnn", functools.partial(grid_problem, p)) for p in pts],
                 {"family": name, "points": [p.name for p in pts]})
            for name, pts in families.items()]


# ------------------------------------------------------------------- classify
CLASSIFY_IMPLS = (("fastnn", "fastnn"), ("numpy", "numpy"), ("torch", "torch-autograd"),
                  ("sklearn", "sklearn"))


def _digits():
    """scikit-learn's digits (bundled, no download) scaled to [0, 1], or random data of
    that shape when scikit-learn is missing."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        rng = np.random.default_rng(0)
        return rng.random((1797, 64)), rng.integers(0, 10, 1797), "random 1797x64, 10 classes"
    d = load_digits()
    return d.data / 16.0, d.target.astype(np.int64), "sklearn digits (1797x64, 10 classes)"


@functools.lru_cache(maxsize=None)
def classify_problem(dtype="float64"):
    import fastnn
    x, labels, source = _digits()
    rng = np.random.default_rng(0)
    widths = (64, 64, 10)
    dt = np.dtype(dtype)
    weights = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dt)
               for a, b in zip(widths, widths[1:])]
    kwargs = dict(activation="relu", loss="softmax_ce", epochs=30, batch_size=32,
                  shuffle=True, seed=0)
    return Problem(f"classify-{dtype}", dt.name, x.astype(dt), labels, weights,
                   [np.zeros(b, dt) for b in widths[1:]], kwargs,
                   optimizer=lambda: fastnn.Adam(lr=1e-3),
                   info={"data": source, "optimizer": "Adam(lr=1e-3)"})


def classify_cases():
    return [Case("classify", "classify:digits-float64",
                 [(label, impl, classify_problem) for label, impl in CLASSIFY_IMPLS],
                 {"dtype": "float64"})]


# ----------------------------------------------------------------------- many
MANY = 64  # networks per call
MANY_IMPLS = ("fastnn-many", "fastnn-many-1thread", "fastnn-sequential", "jax-vmap", "torch-vmap")
MANY_LR = (1e-3, 1e-1)  # the digits networks' learning rates: np.geomspace over this range
MANY_DIGITS_EPOCHS = 5  # fastnn-sequential ~0.5 s here


@functools.lru_cache(maxsize=None)
def many_mlp3_problem(count=MANY):
    """mlp3_gd's data and schedule; network k starts from mlp3_gd's initial point for seed k
    (``_workloads.build("mlp3_gd", seed=k)``'s weights and biases; network 0 is the seed
    workload's own)."""
    from fastnn import _workloads
    w = _workloads.WORKLOADS["mlp3_gd"]
    base = seed_problem("mlp3_gd", "float64")
    starts = [w.build(np.float64, seed=k) for k in range(count)]
    weights = [np.stack(a) for a in zip(*(s.weights for s in starts))]
    biases = [np.stack(a) for a in zip(*(s.biases for s in starts))]
    text = (f"{count} networks like mlp3_gd ({describe_workload(w)}), network k from the "
            "workload's seed k")
    return ManyProblem(f"many-mlp3_gd-{count}", "float64", base.x, base.y, weights, biases,
                       w.train_kwargs(), info={"description": text})


@functools.lru_cache(maxsize=None)
def many_digits_problem(count=MANY):
    """classify's network and data, plain SGD with one lr per network, a few epochs;
    weights N(0, 1/fan_in) drawn per network, zero biases."""
    x, labels, source = _digits()
    rng = np.random.default_rng(0)
    widths = (64, 64, 10)
    weights = [rng.standard_normal((count, a, b)) / np.sqrt(a) for a, b in zip(widths, widths[1:])]
    epochs, (lo, hi) = MANY_DIGITS_EPOCHS, MANY_LR
    kwargs = dict(activation="relu", loss="softmax_ce", lr=np.geomspace(lo, hi, count),
                  epochs=epochs, batch_size=32, shuffle=True, seed=0)
    text = (f"{count} networks {x.shape[0]}x64->64->10 ({source}), relu, softmax_ce on "
            f"integer labels, SGD lr np.geomspace({lo:g}, {hi:g}, {count}), batch_size=32, "
            f"shuffle=True, seed=0, {epochs} epochs; weights N(0, 1/fan_in) per network, "
            "zero biases")
    return ManyProblem(f"many-digits-{count}", "float64", x, labels, weights,
                       [np.zeros((count, 1, b)) for b in widths[1:]], kwargs,
                       info={"data": source, "description": text})


def many_cases():
    return [Case("many", f"many:{name}-{MANY}",
                 [(impl, impl, functools.partial(build, MANY)) for impl in MANY_IMPLS],
                 {"networks": MANY})
            for name, build in (("mlp3_gd", many_mlp3_problem), ("digits", many_digits_problem))]


GROUPS = {"seeds": seed_cases, "check": check_cases, "hooks": hooks_cases, "grid": grid_cases,
          "act": act_cases, "classify": classify_cases, "many": many_cases}


def cases(groups):
    """The cases of the named groups, in order."""
    return [c for g in groups for c in GROUPS[g]()]
