"""Start-up costs, each measured in fresh subprocesses (``sys.executable -c``).

Run: ``pytest bench/bench_startup.py --benchmark-only`` (about 2 minutes here:
most of it is the first-ever compiles). Every row times whole subprocesses;
the numbers the targets use are measured inside the fresh process and kept in
``extra_info["derived"]`` (read by ``report.py``).

* ``startup-import``: ``python -c pass`` and the import of numpy, numba and
  fastnn; ``derived.import_s`` times the import statement alone.
* ``startup-compile``: the first-ever call with an empty NUMBA_CACHE_DIR, one
  row per code path of ``_paths.PATHS`` (generic, sample, gram) and ``all``:
  the three in one process. ``derived.compile_s`` = sum over the process's
  paths of (first call - fastest warm call): compiling, and writing the cache.
  Targets: <= 5 s per path, <= 15 s for all, float64.
* ``startup-first-call``: with a warm cache (the ``all`` row's directory), a
  fresh process's first call of each path minus a warm call
  (``derived.first_call_extra_s``, target <= 0.15 s): loading the kernels.

fastnn's modules are byte-compiled first (the ``bytecode`` fixture), as ``pip
install`` does: with PYTHONDONTWRITEBYTECODE=1 (this machine sets it) a
process would otherwise compile fastnn's sources on every import (~35 ms).
NUMBA_CACHE_DIR keeps these runs away from the repository's own kernel cache.
"""

import compileall
import json
import os
import statistics
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
IMPORT_ROUNDS = int(os.environ.get("FASTNN_BENCH_IMPORT_ROUNDS", "5"))
FIRST_CALL_ROUNDS = int(os.environ.get("FASTNN_BENCH_FIRST_CALL_ROUNDS", "3"))
COMPILE_ROUNDS = int(os.environ.get("FASTNN_BENCH_COMPILE_ROUNDS", "1"))
PATHS = ("generic", "sample", "gram")  # _paths.PATHS, without importing fastnn here
DTYPE = "float64"

IMPORT_CODE = """\
import json, time
t0 = time.perf_counter()
{stmt}
print(json.dumps({{"import_s": time.perf_counter() - t0}}))
"""

# The first call of each path in turn, then its warm calls; one JSON line.
CALL_CODE = """\
import json, sys, time
t0 = time.perf_counter()
import fastnn
import_s = time.perf_counter() - t0
sys.path.insert(0, {bench!r})
import _paths
out = {{"import_s": import_s, "paths": {{}}}}
for path in {paths!r}:
    call = _paths.make(path, {dtype!r})
    first = call()
    warm = min(call() for _ in range(5))
    out["paths"][path] = {{"first_call_s": first, "warm_call_s": warm}}
print(json.dumps(out))
"""


def run_python(code, cache_dir=None):
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def call_code(paths, dtype=DTYPE):
    return CALL_CODE.format(bench=BENCH, paths=tuple(paths), dtype=dtype)


def snapshot(directory):
    """{relative path: (size, mtime)} of every file under directory."""
    out = {}
    for base, _, files in os.walk(directory):
        for name in files:
            st = os.stat(os.path.join(base, name))
            out[os.path.relpath(os.path.join(base, name), directory)] = (st.st_size, st.st_mtime_ns)
    return out


def median(values):
    return statistics.median(values) if values else float("nan")


def extra_seconds(result, key="first_call_s"):
    """Sum over a process's paths of (first call - fastest warm call)."""
    return sum(r[key] - r["warm_call_s"] for r in result["paths"].values())


@pytest.fixture(scope="module", autouse=True)
def bytecode():
    """Byte-compile fastnn's sources (``__pycache__``), as installing a package does."""
    for folder in ("fastnn", "kernels"):
        assert compileall.compile_dir(os.path.join(ROOT, folder), quiet=1), folder


@pytest.fixture(scope="module")
def warm_cache():
    """{"dir": a NUMBA_CACHE_DIR holding every path's kernels}, filled by the ``all``
    compile row, or by the first-call benchmark when that row is deselected."""
    return {}


@pytest.mark.parametrize("module", ["python", "numpy", "numba", "fastnn"])
def test_import(benchmark, module):
    stmt = "pass" if module == "python" else f"import {module}"
    inner = []

    def run():
        inner.append(run_python(IMPORT_CODE.format(stmt=stmt))["import_s"])

    benchmark.group = "startup-import"
    benchmark.extra_info.update(impl=module, statement=stmt)
    benchmark.pedantic(run, rounds=IMPORT_ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info["derived"] = {"import_s": median(inner[1:] or inner)}
    benchmark.extra_info["import_s_all"] = inner


@pytest.mark.parametrize("path", PATHS + ("all",))
def test_compile(benchmark, tmp_path_factory, warm_cache, path):
    """First-ever compile of one path's float64 kernels (or all of them) in an empty cache."""
    paths = PATHS if path == "all" else (path,)
    dirs, results = [], []

    def setup():
        dirs.append(tmp_path_factory.mktemp("numba-cold-cache"))
        return (dirs[-1],), {}

    def run(d):
        results.append(run_python(call_code(paths), cache_dir=d))

    benchmark.group = "startup-compile"
    benchmark.extra_info.update(impl=path, paths=list(paths), dtype=DTYPE)
    benchmark.pedantic(run, setup=setup, rounds=COMPILE_ROUNDS, iterations=1)
    written = snapshot(dirs[-1])
    # without cache files the first-call benchmark below would measure a compile
    assert written, f"NUMBA_CACHE_DIR={dirs[-1]} received no cache files"
    if path == "all":
        warm_cache["dir"] = dirs[-1]
    benchmark.extra_info["derived"] = {
        "compile_s": median([extra_seconds(r) for r in results]),
        "per_path_s": {p: median([r["paths"][p]["first_call_s"] - r["paths"][p]["warm_call_s"]
                                  for r in results]) for p in paths}}
    benchmark.extra_info["runs"] = results
    benchmark.extra_info["cache_files"] = len(written)


@pytest.mark.parametrize("path", PATHS)
def test_first_call_warm_cache(benchmark, tmp_path_factory, warm_cache, path):
    """Extra time of a path's first train call in a fresh process with a warm cache."""
    if "dir" not in warm_cache:  # the compile benchmark was deselected: fill a cache here
        warm_cache["dir"] = tmp_path_factory.mktemp("numba-warm-cache")
        run_python(call_code(PATHS), cache_dir=warm_cache["dir"])
    d = warm_cache["dir"]
    before = snapshot(d)
    results = []

    def run():
        results.append(run_python(call_code((path,)), cache_dir=d))

    benchmark.group = "startup-first-call"
    benchmark.extra_info.update(impl=path, dtype=DTYPE)
    benchmark.pedantic(run, rounds=FIRST_CALL_ROUNDS, iterations=1)
    # a warm cache is only read: a new or rewritten file means fastnn recompiled
    unchanged = snapshot(d) == before
    benchmark.extra_info["cache_unchanged"] = unchanged
    benchmark.extra_info["derived"] = {
        "first_call_extra_s": median([extra_seconds(r) for r in results]),
        "first_call_s": median([r["paths"][path]["first_call_s"] for r in results]),
        "warm_call_s": median([r["paths"][path]["warm_call_s"] for r in results]),
        "import_s": median([r["import_s"] for r in results])}
    benchmark.extra_info["runs"] = results
    assert unchanged, (f"the warm cache in {d} was rewritten by a fresh process: "
                       f"fastnn recompiled instead of loading its kernels")
