"""Start-up costs, each measured in fresh subprocesses (``sys.executable -c``).

Groups (every row times whole subprocesses; the derived numbers the issue
asks for are in ``extra_info["derived"]``, printed in the closing summary and
by ``bench/report.py``):

* ``startup-import``: ``python -c pass`` and the import of numpy, numba and
  fastnn. ``derived.import_s`` is measured inside the fresh process around
  the import statement alone (no interpreter start-up).
* ``startup-first-call``: with a warm kernel cache (NUMBA_CACHE_DIR pointing at
  a directory filled beforehand), a fresh process times its first
  ``fastnn.train`` call and then warm calls of the same size;
  ``derived.first_call_extra_s`` = first - fastest warm call.
* ``startup-compile``: with NUMBA_CACHE_DIR set to an empty directory, the
  first call of a workload's training (3 epochs on its float64 data):
  ``derived.compile_s`` = first - fastest warm call is the first-ever compile
  of the kernels that training needs, including writing the cache. One row
  per code path (only the path a network runs is compiled): relu2 (``train_loop``,
  every layer through gemm, and the Gram path), mlp3_gd (``train_team``, the
  small-layer loops on two threads) and mlp3_sgd (``train_loop``, one-sample steps).

Bytecode: fastnn's modules are byte-compiled first (the ``bytecode`` fixture), as
``pip install`` does for an installed package. Without that, a process run with
PYTHONDONTWRITEBYTECODE=1 (this machine sets it) compiles fastnn's sources on
every import: about 35 ms more.

NUMBA_CACHE_DIR overrides where Numba keeps its cache (by default next to the
source, in kernels/__pycache__), so these measurements neither use nor touch
the repository's cache.
"""

import compileall
import json
import os
import statistics
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPORT_ROUNDS = int(os.environ.get("FASTNN_BENCH_IMPORT_ROUNDS", "5"))
FIRST_CALL_ROUNDS = int(os.environ.get("FASTNN_BENCH_FIRST_CALL_ROUNDS", "3"))
COMPILE_ROUNDS = int(os.environ.get("FASTNN_BENCH_COMPILE_ROUNDS", "1"))

IMPORT_CODE = """\
import json, time
t0 = time.perf_counter()
{stmt}
print(json.dumps({{"import_s": time.perf_counter() - t0}}))
"""

# relu2's shape (64x1000 -> 100 -> 10, float64), 3 epochs: small enough that
# the first call's extra cost is not lost in the call itself.
FIRST_CALL_CODE = """\
import json, time
t0 = time.perf_counter()
import numpy as np
import fastnn
import_s = time.perf_counter() - t0
rng = np.random.default_rng(0)
x, y = rng.standard_normal((64, 1000)), rng.standard_normal((64, 10))
w0 = [rng.standard_normal((1000, 100)), rng.standard_normal((100, 10))]
def call():
    ws = [w.copy() for w in w0]
    t = time.perf_counter()
    fastnn.train(x, y, ws, lr=1e-6, epochs=3)
    return time.perf_counter() - t
first = call()
warm = min(call() for _ in range(5))
print(json.dumps({"import_s": import_s, "first_call_s": first, "warm_call_s": warm}))
"""


# The first call of one workload's training, 3 epochs (compile benchmark).
WORKLOAD_CALL_CODE = """\
import json, time
t0 = time.perf_counter()
import fastnn
from fastnn._workloads import WORKLOADS
import_s = time.perf_counter() - t0
p = WORKLOADS[{name!r}].build("float64")
kw = dict(p.train_kwargs(), epochs=3)
def call():
    ws = [a.copy() for a in p.weights]
    bs = None if p.biases is None else [b.copy() for b in p.biases]
    t = time.perf_counter()
    fastnn.train(p.x, p.y, ws, bs, **kw)
    return time.perf_counter() - t
first = call()
warm = min(call() for _ in range(5))
print(json.dumps({{"import_s": import_s, "first_call_s": first, "warm_call_s": warm}}))
"""
COMPILE_PATHS = {"relu2": "gemm, Gram path", "mlp3_gd": "small-layer loops",
                 "mlp3_sgd": "one-sample steps"}


def _run(code, cache_dir=None):
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _snapshot(directory):
    """{relative path: (size, mtime)} of every file under directory."""
    out = {}
    for base, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(base, name)
            st = os.stat(path)
            out[os.path.relpath(path, directory)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module", autouse=True)
def bytecode():
    """Byte-compile fastnn's sources (``__pycache__``), as installing a package does."""
    for folder in ("fastnn", "kernels"):
        assert compileall.compile_dir(os.path.join(ROOT, folder), quiet=1), folder


@pytest.fixture(scope="module")
def cache_state():
    """Shared between the compile and first-call benchmarks: a warmed cache dir."""
    return {}


def _median(values):
    return statistics.median(values) if values else float("nan")


@pytest.mark.parametrize("module", ["python", "numpy", "numba", "fastnn"])
def test_import(benchmark, module):
    stmt = "pass" if module == "python" else f"import {module}"
    inner = []

    def run():
        inner.append(_run(IMPORT_CODE.format(stmt=stmt))["import_s"])

    benchmark.group = "startup-import"
    benchmark.extra_info.update(impl=module, statement=stmt)
    benchmark.pedantic(run, rounds=IMPORT_ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info["derived"] = {"import_s": _median(inner[1:] or inner)}
    benchmark.extra_info["import_s_all"] = inner


@pytest.mark.parametrize("workload", list(COMPILE_PATHS))
def test_compile(benchmark, tmp_path_factory, cache_state, workload):
    """First-ever compile of the float64 kernels one workload's training needs, in an
    empty cache."""
    dirs, results = [], []

    def setup():
        d = tmp_path_factory.mktemp("numba-cold-cache")
        dirs.append(d)
        return (d,), {}

    def run(d):
        results.append(_run(WORKLOAD_CALL_CODE.format(name=workload), cache_dir=d))

    benchmark.group = "startup-compile"
    benchmark.extra_info.update(impl=f"fastnn-cold-cache-{workload}", workload=workload,
                                path=COMPILE_PATHS[workload])
    benchmark.pedantic(run, setup=setup, rounds=COMPILE_ROUNDS, iterations=1)
    written = _snapshot(dirs[-1])
    # Without cache files the warm measurement below would be meaningless.
    assert written, f"NUMBA_CACHE_DIR={dirs[-1]} received no cache files"
    if workload == "relu2":  # the first-call benchmark runs relu2's shape
        cache_state["dir"] = dirs[-1]
    compile_s = [r["first_call_s"] - r["warm_call_s"] for r in results]
    benchmark.extra_info["derived"] = {"compile_s": _median(compile_s)}
    benchmark.extra_info["runs"] = results
    benchmark.extra_info["cache_files"] = len(written)


def test_first_call_warm_cache(benchmark, tmp_path_factory, cache_state):
    """Extra time of the first train call in a fresh process with a warm cache."""
    if "dir" not in cache_state:  # compile benchmark deselected: warm a directory here
        d = tmp_path_factory.mktemp("numba-warm-cache")
        _run(FIRST_CALL_CODE, cache_dir=d)
        cache_state["dir"] = d
    d = cache_state["dir"]
    before = _snapshot(d)
    results = []

    def run():
        results.append(_run(FIRST_CALL_CODE, cache_dir=d))

    benchmark.group = "startup-first-call"
    benchmark.extra_info.update(impl="fastnn-warm-cache-float64")
    benchmark.pedantic(run, rounds=FIRST_CALL_ROUNDS, iterations=1)
    # A warm cache is only read: any new or rewritten file means a recompilation
    # (for example a kernel source edited since the cache was written).
    after = _snapshot(d)
    benchmark.extra_info["cache_unchanged"] = after == before
    extra = [r["first_call_s"] - r["warm_call_s"] for r in results]
    benchmark.extra_info["derived"] = {
        "first_call_extra_s": _median(extra),
        "first_call_s": _median([r["first_call_s"] for r in results]),
        "warm_call_s": _median([r["warm_call_s"] for r in results]),
        "import_s": _median([r["import_s"] for r in results]),
    }
    benchmark.extra_info["runs"] = results
    assert after == before, (f"the warm cache in {d} was rewritten by a fresh process: "
                             f"fastnn recompiled instead of loading its kernels")
