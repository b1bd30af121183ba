"""The benchmark core: problems, verification, timing and machine info. No pytest here.

Every benchmark in bench/ is a *case*: a named group of *rows*, each row one
implementation (``_impls.IMPLS``) training one :class:`Problem`. A case is
measured in three steps, whichever front end runs it (``bench_*.py`` under
pytest-benchmark, or ``grid.py`` / ``busy.py`` standalone):

1. build its problems (seeded arrays, ``_groups.py``);
2. prepare every row: construct it, run it once untimed and check the result
   against ``fastnn.reference`` (:func:`prepare`; this is also the warm-up:
   JIT compiles, thread pools start);
3. time the rows, either one after another (pytest-benchmark) or alternately,
   A B C A B C ... (:func:`interleave`), and keep medians.

Adding a group takes a function returning :class:`Case` objects in
``_groups.GROUPS`` and, if it needs a new kind of row, an ``Impl`` subclass in
``_impls.IMPLS``. The ``many`` group (K networks per call) trains a
:class:`ManyProblem`: its rows are checked network by network against the
reference.
"""

import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field, replace
from importlib import metadata

import numpy as np

# Agreement demanded of every row against fastnn.reference on well-conditioned runs:
# float64 results differ only in rounding order (BLAS blocking, fused updates).
RTOL = {"float64": 1e-9, "float32": 1e-4}


# ------------------------------------------------------------------- problems
@dataclass
class Problem:
    """One training run: data, initial parameters and fastnn.train keywords."""
    name: str
    dtype: str
    x: np.ndarray
    y: np.ndarray
    weights: list
    biases: list                 # None (no biases) or one array per layer
    kwargs: dict                 # fastnn.train keywords except optimizer
    optimizer: object = None     # () -> a fresh optimizer (they are stateful), or None
    info: dict = field(default_factory=dict)   # what the report prints about it
    verify_epochs: int = None    # epochs of the verification run (None: all)
    rtol: float = None           # None: RTOL[dtype]

    @property
    def widths(self):
        return [self.weights[0].shape[0]] + [w.shape[1] for w in self.weights]

    @property
    def rows(self):
        return self.x.shape[0]

    @property
    def batch(self):
        b = self.kwargs.get("batch_size")
        return self.rows if b is None else min(b, self.rows)

    @property
    def epochs(self):
        return self.kwargs["epochs"]

    @property
    def steps_per_epoch(self):
        return -(-self.rows // self.batch)

    @property
    def activations(self):
        """Per layer, the reference's names: hidden layers share one, the output is identity."""
        return [self.kwargs.get("activation", "relu")] * (len(self.weights) - 1) + ["identity"]

    def macs_per_layer(self):
        """Forward multiply-adds of one full batch, per layer: n_in * n_out * batch rows."""
        return [a * b * self.batch for a, b in zip(self.widths, self.widths[1:])]

    def train_kwargs(self, **over):
        """Keywords for fastnn.train / fastnn.reference.train, with a fresh optimizer."""
        kw = dict(self.kwargs, **over)
        if self.optimizer is not None:
            kw["optimizer"] = self.optimizer()
        return kw

    def fresh(self):
        """Copies of the initial parameters (each run trains its own)."""
        ws = [w.copy() for w in self.weights]
        bs = None if self.biases is None else [b.copy() for b in self.biases]
        return ws, bs

    def with_epochs(self, epochs):
        return replace(self, kwargs=dict(self.kwargs, epochs=epochs))

    def verification(self):
        """The problem the rows are checked on: fewer epochs where the run is chaotic."""
        if self.verify_epochs is None or self.verify_epochs >= self.epochs:
            return self
        return self.with_epochs(self.verify_epochs)

    def describe(self):
        """The extra_info every row of this problem carries into the JSON."""
        return dict(self.info, problem=self.name, dtype=self.dtype, widths=self.widths,
                    rows=self.rows, batch=self.batch, epochs=self.epochs,
                    steps_per_epoch=self.steps_per_epoch, macs_per_layer=self.macs_per_layer(),
                    activation=self.kwargs.get("activation", "relu"),
                    loss=self.kwargs.get("loss", "sse"),
                    shuffle=bool(self.kwargs.get("shuffle", False)))


@dataclass
class ManyProblem(Problem):
    """K networks of one shape trained together, as fastnn.train_many takes them:
    weights[i] (K, n_i, n_i+1), biases[i] (K, 1, n_i+1), shared x and y; kwargs are
    train_many's (lr a float or one per network, seed an int; optimizer settings shared
    by all)."""

    @property
    def count(self):
        return self.weights[0].shape[0]

    @property
    def widths(self):
        return [self.weights[0].shape[1]] + [w.shape[2] for w in self.weights]

    def network(self, k):
        """Network k alone: the Problem on which fastnn.train gives train_many's row k
        (its lr, and when shuffled the seed train_many documents for it)."""
        kw = dict(self.kwargs)
        if np.ndim(kw.get("lr")):
            kw["lr"] = float(kw["lr"][k])
        if kw.get("shuffle"):
            kw["seed"] = np.random.SeedSequence(kw.get("seed")).spawn(self.count)[k]
        return Problem(f"{self.name}[{k}]", self.dtype, self.x, self.y,
                       [w[k] for w in self.weights],
                       None if self.biases is None else [b[k] for b in self.biases],
                       kw, self.optimizer, verify_epochs=self.verify_epochs, rtol=self.rtol)

    def split(self, result):
        """[(history, weights, biases)] per network of a (K, epochs) history and stacked arrays."""
        hist, ws, bs = result
        hist = np.asarray(hist)
        return [(hist[k], [w[k] for w in ws], None if bs is None else [b[k] for b in bs])
                for k in range(self.count)]

    @staticmethod
    def stack(parts):
        """The inverse of :meth:`split`."""
        hists, ws, bs = zip(*parts)
        return (np.stack(hists), [np.stack(a) for a in zip(*ws)],
                None if bs[0] is None else [np.stack(a) for a in zip(*bs)])

    def describe(self):
        return dict(super().describe(), networks=self.count)


@dataclass
class Case:
    """A benchmark group: rows (label, impl name, problem builder), measured together."""
    group: str                   # the family: "seeds", "grid", "act", "classify", ...
    name: str                    # the pytest-benchmark group and JSON key
    rows: list                   # [(row label, impl name, () -> Problem)]
    info: dict = field(default_factory=dict)


# -------------------------------------------------------------- verification
def check_training(label, problem, result, oracle, rtol=None):
    """Assert that (history, weights, biases) agree with the reference's.

    Loss history: a converging run's late losses are sums of squares of tiny
    differences, so their relative error is amplified by cancellation even when
    every weight agrees; sqrt(loss) has an absolute error that scales with the
    residuals, so it is compared with rtol and an atol of rtol * sqrt(first
    loss). Parameters: rtol, with an atol of rtol * max|reference array| for
    entries that pass through zero.
    """
    if isinstance(problem, ManyProblem):  # network by network, each with its own scales
        for k, (got, want) in enumerate(zip(problem.split(result), problem.split(oracle))):
            check_training(f"{label}, network {k}", problem.network(k), got, want, rtol)
        return
    rtol = rtol or problem.rtol or RTOL[problem.dtype]
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
        got = np.asarray(got).reshape(want.shape)
        assert got.dtype == want.dtype, f"{label}: {name} has dtype {got.dtype}, want {want.dtype}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()),
                                   err_msg=f"{label}: final {name} differs from fastnn.reference")


def run_oracle(problem):
    """fastnn.reference.train on fresh copies: ((history, weights, biases), seconds); for
    a :class:`ManyProblem`, one run per network, stacked."""
    from fastnn import reference
    if isinstance(problem, ManyProblem):  # the reference per network, stacked
        t0 = time.perf_counter()
        parts = [run_oracle(problem.network(k))[0] for k in range(problem.count)]
        return ManyProblem.stack(parts), time.perf_counter() - t0
    ws, bs = problem.fresh()
    t0 = time.perf_counter()
    hist = reference.train(problem.x, problem.y, ws, bs, **problem.train_kwargs())
    return (np.asarray(hist), ws, bs), time.perf_counter() - t0


class Oracles:
    """fastnn.reference results, computed once per (verification) problem."""

    def __init__(self):
        self._cache = {}

    def get(self, problem):
        key = (problem.name, problem.dtype, problem.epochs)
        if key not in self._cache:
            self._cache[key] = run_oracle(problem)
        return self._cache[key]


# -------------------------------------------------------------------- timing
def time_run(impl):
    """Seconds of one run of impl (setup untimed), and its result."""
    args, kwargs = impl.setup()
    t0 = time.perf_counter()
    result = impl.run(*args, **kwargs)
    return time.perf_counter() - t0, result


@dataclass
class Row:
    """A prepared row: verified, warm, with an estimate of its run time."""
    label: str
    impl: object
    seconds: float       # one warm run, untimed estimate
    verified: str        # how it was checked


def prepare(label, impl_cls, problem, oracles):
    """Construct a row, verify it against the reference (this warms it up) and time one run."""
    check = problem.verification()
    if check is problem:
        impl = impl_cls(problem)
        verified = impl.verify(oracles.get(problem)[0])
    else:  # chaotic run: check on fewer epochs, time the full one
        verified = impl_cls(check).verify(oracles.get(check)[0])
        impl = impl_cls(problem)
    seconds, _ = time_run(impl)  # warm (the verification compiled, if anything does)
    return Row(label, impl, seconds, verified)


def rounds_for(seconds, budget, min_rounds, max_rounds):
    """Rounds that fill ``budget`` seconds, within [min_rounds, max_rounds]."""
    want = budget / max(seconds, 1e-6)
    return int(min(max_rounds, max(min_rounds, round(want))))


# Rows shorter than a block run back to back for about a block on each turn, and only the
# second half of those runs counts: a 0.5 ms fastnn run takes 2-3x longer right after a
# 100 ms NumPy run and needs 3-5 runs to settle (caches, branch predictors, clocks), a
# cost pytest-benchmark's back-to-back rounds never see either. A block is at least
# BLOCK_SECONDS and a tenth of the round, so a fast row beside 3 s rows gets samples too.
BLOCK_SECONDS = 0.05
MAX_REPS = 200


def block_seconds(rows):
    return max(BLOCK_SECONDS, 0.1 * sum(r.seconds for r in rows))


def interleave(rows, rounds):
    """Time rows alternately for ``rounds`` rounds; {label: [seconds, ...]}.

    The order rotates every round, so no row always runs right after the same
    other one (caches, clocks and the neighbour's memory traffic even out)."""
    times = {r.label: [] for r in rows}
    block = block_seconds(rows)
    for k in range(rounds):
        for r in rows[k % len(rows):] + rows[:k % len(rows)]:
            reps = max(1, min(MAX_REPS, round(block / max(r.seconds, 1e-6))))
            runs = [time_run(r.impl)[0] for _ in range(reps)]
            times[r.label] += runs[reps // 2:]
    return times


def round_seconds(rows):
    """Estimated seconds of one interleaved round."""
    block = block_seconds(rows)
    return sum(max(r.seconds, min(block, MAX_REPS * r.seconds)) for r in rows)


def summarize(times):
    """Median, quartiles and min of a list of run times (seconds)."""
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median": statistics.median(times), "q1": q[0], "q3": q[2], "iqr": q[2] - q[0],
            "min": min(times), "rounds": len(times), "times": list(times)}


# ------------------------------------------------------------ BLAS threading
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread_env():
    """One BLAS thread for every row (setdefault: a caller's choice wins). Only works
    before NumPy loads its BLAS; :func:`one_blas_thread` covers the case it did."""
    for var in BLAS_ENV:
        os.environ.setdefault(var, "1")


def one_blas_thread():
    """Limit every loaded BLAS and OpenMP pool to one thread, and torch too if loaded."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables above are then the only control
        return None
    return threadpool_limits(limits=int(os.environ.get("OPENBLAS_NUM_THREADS", "1")))


# -------------------------------------------------------------- machine info
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions():
    versions = {"python": platform.python_version()}
    for dist in ("numpy", "numba", "llvmlite", "scipy", "fastnn", "threadpoolctl",
                 "pytest-benchmark", "torch", "jax", "jaxlib", "scikit-learn", "matplotlib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def blas_info():
    """The BLAS libraries loaded in this process and their thread counts (threadpoolctl),
    or NumPy's build configuration when threadpoolctl is missing."""
    import numpy  # noqa: F401  (loads its BLAS)
    try:
        import scipy.linalg  # noqa: F401  (SciPy's BLAS: fastnn's kernels may call it)
        from threadpoolctl import threadpool_info
        return [{"api": p.get("internal_api"), "version": p.get("version"),
                 "threads": p.get("num_threads"),
                 "library": os.path.basename(p.get("filepath", "")),
                 "arch": p.get("architecture")} for p in threadpool_info()]
    except ImportError:
        cfg = numpy.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        return [{"api": cfg.get("name"), "version": cfg.get("version"), "library": "numpy"}]


def fastnn_blas():
    """Which library fastnn's kernels call for their products (kernels/_blaslib.py)."""
    from fastnn.kernels import _blaslib
    return {_blaslib.NUMPY: "NumPy's OpenBLAS (ILP64)",
            _blaslib.SCIPY: "SciPy's BLAS (LP64)"}.get(_blaslib.KIND, _blaslib.KIND)


def dgemm_flops(n=512, repeat=20):
    """flop/s of NumPy's BLAS on one thread multiplying two n x n float64 matrices: the
    fastest of ``repeat`` products, what this core's arithmetic reaches through a tuned
    library. The report compares flop rates against it."""
    from threadpoolctl import threadpool_limits
    a, b = np.random.default_rng(0).standard_normal((2, n, n))
    out = np.empty((n, n))
    limits = threadpool_limits(limits=1)
    try:
        best = np.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
    finally:
        limits.restore_original_limits()
    return 2 * n ** 3 / best


def machine_info():
    """What the report prints about the machine, the libraries and the thread settings."""
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "dgemm_flops": dgemm_flops(),
            "system": f"{platform.system()} {platform.release()}",
            "versions": library_versions(), "blas": blas_info(),
            "fastnn_blas": fastnn_blas(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "threads_env": {k: os.environ[k] for k in BLAS_ENV + ("NUMBA_NUM_THREADS",
                                                                   "FASTNN_THREADS")
                            if k in os.environ}}
