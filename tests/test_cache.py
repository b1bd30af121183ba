"""Numba's on-disk cache can never break fastnn (subprocess tests).

Issue 4: import and train work when NUMBA_CACHE_DIR cannot be written, when the
package directory is read-only, and when a cache file is truncated or corrupted
(a recompilation and at most a warning, never an exception); four processes
started at once on an empty cache all finish with identical, correct results
(numba issue 4807: concurrent cache writers).

Every test runs children on a private copy of the package, laid out as
installed (``site/fastnn/`` with ``site/fastnn/kernels/``, no __pycache__),
put first on PYTHONPATH. The copy is taken once per module, so the lead's
concurrent edits of kernels/ cannot turn a warm cache stale mid-module, and the
repository's own kernels/__pycache__ is never touched.

Unwritable for root: the tests run as root, where chmod does not stop writes,
so "unwritable" is built from paths that cannot be directories: a __pycache__
that is a regular *file* (Python and Numba both fail to create or write into
it), and cache directories placed *under* a regular file (mkdir fails with
NotADirectoryError). This is what a read-only mount does to the same calls
(makedirs / open for writing raise OSError).

Compilation dominates the cost (~15 s per cold process; 4 at once on 2 cores
~40-80 s depending on load), so the cold runs are few: the 4 concurrent
processes (which also warm the cache that the other tests copy), and one run
with no writable cache anywhere; the corrupted cache recompiles only what was
damaged.
"""

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fastnn import reference

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 600

CHILD = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        import numpy as np
        import fastnn
        out, dtype = sys.argv[1], np.dtype(sys.argv[2])
        rng = np.random.default_rng(42)
        x = rng.standard_normal((32, 5))
        y = rng.standard_normal((32, 2))
        w = [(rng.standard_normal((5, 6)) / np.sqrt(5)).astype(dtype),
             (rng.standard_normal((6, 2)) / np.sqrt(6)).astype(dtype)]
        b = [np.zeros(6, dtype), np.zeros(2, dtype)]
        hist = fastnn.train(x, y, w, b, activation="tanh", loss="mse", lr=0.05, epochs=20,
                            batch_size=8)
    np.savez(out, hist=hist, w0=w[0], w1=w[1], b0=b[0], b1=b[1])
    print(json.dumps({
        "fastnn": fastnn.__file__,
        "kernels": fastnn.kernels.__file__,
        "cache": type(fastnn.kernels.loop.run_epochs._cache).__name__,
        "hits": sum(fastnn.kernels.loop.run_epochs.stats.cache_hits.values()),
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
    }))
""")


def expected(dtype):
    """The reference run of CHILD's problem, in this process."""
    rng = np.random.default_rng(42)
    x = rng.standard_normal((32, 5))
    y = rng.standard_normal((32, 2))
    w = [(rng.standard_normal((5, 6)) / np.sqrt(5)).astype(dtype),
         (rng.standard_normal((6, 2)) / np.sqrt(6)).astype(dtype)]
    b = [np.zeros(6, dtype), np.zeros(2, dtype)]
    hist = reference.train(x, y, w, b, activation="tanh", loss="mse", lr=0.05, epochs=20,
                           batch_size=8)
    return dict(hist=hist, w0=w[0], w1=w[1], b0=b[0], b1=b[1])


# measured 1-ulp spread of this problem is far below these (see test_properties.py)
RTOL = {"float64": 1e-9, "float32": 1e-4}


def check_correct(result, dtype):
    ref = expected(np.dtype(dtype))
    for key, want in ref.items():
        got = result[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype],
                                   atol=RTOL[dtype] * np.abs(want).max(), err_msg=key)


def make_site(root):
    """root/site/fastnn (+ fastnn/kernels): the package as installed, no caches."""
    site = Path(root) / "site"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "fastnn", site / "fastnn", ignore=ignore)
    shutil.copytree(REPO / "kernels", site / "fastnn" / "kernels", ignore=ignore)
    return site


def block_pycache(site):
    """Make every __pycache__ of the package a regular file: nothing can be written there."""
    for pkg in (site / "fastnn", site / "fastnn" / "kernels"):
        (pkg / "__pycache__").write_text("not a directory\n")


def unwritable_dir(root):
    """A path whose parent is a regular file: os.makedirs fails, even for root."""
    blocker = Path(root) / "a-regular-file"
    blocker.write_text("")
    return str(blocker / "cache")


def tree(path):
    return sorted((str(p.relative_to(path)), p.is_file() and p.stat().st_size)
                  for p in Path(path).rglob("*"))


def child_env(site, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NUMBA_") and k not in ("PYTHONPATH", "XDG_CACHE_HOME")}
    env["PYTHONPATH"] = str(site)
    env.update(extra)
    return env


def start(site, out, dtype, env):
    script = Path(out).parent / "child.py"
    if not script.exists():
        script.write_text(CHILD)
    return subprocess.Popen([sys.executable, str(script), str(out), dtype], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, out, site):
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    info = json.loads(stdout.strip().splitlines()[-1])
    # the child really ran the copy, laid out as installed
    assert Path(info["fastnn"]).is_relative_to(site), info
    assert Path(info["kernels"]) == site / "fastnn" / "kernels" / "__init__.py", info
    with np.load(str(out) + ".npz") as f:
        result = {k: f[k] for k in f.files}
    return result, info, stderr


def run(site, out, dtype, env):
    return finish(start(site, out, dtype, env), out, site)


def index_files(cache_dir):
    return sorted(Path(cache_dir).rglob("*.nbi"))


def index_loads(path):
    """True when a Numba cache index unpickles (version, then (stamp, overloads))."""
    try:
        with open(path, "rb") as f:
            pickle.load(f)
            stamp, overloads = pickle.loads(f.read())
        return isinstance(overloads, dict)
    except Exception:
        return False


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return make_site(tmp_path_factory.mktemp("pkg"))


@pytest.fixture(scope="module")
def concurrent_run(site, tmp_path_factory):
    """Four processes started at once on one empty NUMBA_CACHE_DIR.

    Two train float64 networks and two float32: the float32 and float64 entries
    of each function race for the same index and data file names, the hazard of
    numba issue 4807 (a writer's index naming another writer's data file).
    """
    root = tmp_path_factory.mktemp("concurrent")
    cache = root / "numba-cache"
    cache.mkdir()
    env = child_env(site, NUMBA_CACHE_DIR=str(cache))
    dtypes = ["float64", "float32", "float64", "float32"]
    procs = [start(site, root / f"out{i}", dt, env) for i, dt in enumerate(dtypes)]
    results = [finish(p, root / f"out{i}", site) for i, p in enumerate(procs)]
    return dict(cache=cache, env=env, dtypes=dtypes, results=results, root=root)


def test_four_processes_on_an_empty_cache(concurrent_run):
    results, dtypes = concurrent_run["results"], concurrent_run["dtypes"]
    for (result, info, _), dtype in zip(results, dtypes):
        check_correct(result, dtype)
        assert info["cache"] == "TolerantCache"
    for i, j in ((0, 2), (1, 3)):  # same dtype: identical, bitwise
        for key in results[i][0]:
            np.testing.assert_array_equal(results[i][0][key], results[j][0][key], strict=True)
    assert index_files(concurrent_run["cache"]), "nothing was cached"
    assert all(index_loads(p) for p in index_files(concurrent_run["cache"]))


def test_cache_written_concurrently_is_sound(concurrent_run, site):
    # A fifth process, both dtypes, loads what the four wrote: same results bitwise.
    root, env = concurrent_run["root"], concurrent_run["env"]
    hits = 0
    for i, dtype in ((0, "float64"), (1, "float32")):
        result, info, stderr = run(site, root / f"again-{dtype}", dtype, env)
        hits += info["hits"]
        for key in result:
            np.testing.assert_array_equal(result[key], concurrent_run["results"][i][0][key],
                                          strict=True)
    # The cache is used. (Not necessarily for both dtypes: racing writers can lose an
    # index update -- the last writer's index wins -- which costs a recompilation.)
    assert hits > 0, "the training loop was never loaded from the cache"


def _corrupt(cache):
    """Truncate, empty and garble cache files the float64 run needs."""
    def one(pattern):
        files = sorted(cache.rglob(pattern))
        assert files, pattern
        return files[0]

    hit = []
    index = one("loop.run_epochs-*.nbi")            # truncated mid-pickle, as by a crash
    data = index.read_bytes()
    index.write_bytes(data[:len(data) // 2])
    hit.append(index)
    # run_epochs is recompiled, so its callees are loaded: they are the ones damaged next
    for name in ("losses.loss_forward_backward-*.nbc", "network.network_backward-*.nbc"):
        for i, f in enumerate(sorted(cache.rglob(name))):
            if name.startswith("losses.loss"):
                f.write_bytes(b"")                   # empty data file
            else:
                f.write_bytes(b"\x00garbage\xff" * 8 + f.read_bytes()[80:])  # bad header
            hit.append(f)
    idx = one("network.network_forward-*.nbi")       # an index that is not a pickle at all
    idx.write_bytes(b"this is not a pickle")
    hit.append(idx)
    return hit


@pytest.fixture(scope="module")
def corrupted_run(concurrent_run, site, tmp_path_factory):
    """A float64 run on a copy of the warm cache with damaged files."""
    root = tmp_path_factory.mktemp("corrupted")
    cache = root / "numba-cache"
    shutil.copytree(concurrent_run["cache"], cache)
    hit = _corrupt(cache)
    env = child_env(site, NUMBA_CACHE_DIR=str(cache))
    result, info, stderr = run(site, root / "out", "float64", env)
    return dict(cache=cache, env=env, root=root, result=result, info=info, hit=hit)


def test_corrupted_cache_files(corrupted_run, concurrent_run, site):
    result, info = corrupted_run["result"], corrupted_run["info"]
    # same results as before, bitwise (the same code, recompiled), and correct
    for key in result:
        np.testing.assert_array_equal(result[key], concurrent_run["results"][0][0][key],
                                      strict=True)
    check_correct(result, "float64")
    # at most warnings: RuntimeWarnings naming fastnn, and the damage was noticed
    assert info["warnings"], "corrupted files were loaded without a word?"
    assert all(w.startswith("RuntimeWarning: fastnn") for w in info["warnings"]), info
    # the damaged cache keeps working (and its float32 entries were not lost)
    root, env = corrupted_run["root"], corrupted_run["env"]
    result, info, stderr = run(site, root / "out32", "float32", env)
    check_correct(result, "float32")
    for key in result:
        np.testing.assert_array_equal(result[key], concurrent_run["results"][1][0][key],
                                      strict=True)


def test_corrupted_index_is_repaired(corrupted_run):
    bad = [p.name for p in index_files(corrupted_run["cache"]) if not index_loads(p)]
    assert not bad, f"still unreadable after a successful run: {bad}"


def test_no_writable_cache_anywhere(tmp_path):
    # Read-only package (__pycache__ are files), NUMBA_CACHE_DIR under a regular file,
    # and no user-wide cache (XDG_CACHE_HOME under a regular file): Numba finds no
    # cache location at all, so fastnn must compile in memory. (A read-only package
    # with a writable user cache is Numba's own fallback, not tested: one more cold
    # compilation.)
    site = make_site(tmp_path)
    block_pycache(site)
    before = tree(site)
    env = child_env(site, NUMBA_CACHE_DIR=unwritable_dir(tmp_path),
                    XDG_CACHE_HOME=unwritable_dir(tmp_path))
    result, info, stderr = run(site, tmp_path / "out", "float64", env)
    check_correct(result, "float64")
    assert info["cache"] == "NullCache", info  # compiled in memory, as documented
    assert all(w.startswith("RuntimeWarning: fastnn") for w in info["warnings"]), info
    assert tree(site) == before  # nothing written into the package


def test_unwritable_numba_cache_dir(concurrent_run, site, tmp_path):
    # NUMBA_CACHE_DIR cannot be created, the package's own __pycache__ can: Numba falls
    # back to the in-tree cache. To spare a cold compilation, that cache is seeded with
    # the concurrent run's files (Numba 0.68 stamps sources by content and keys entries
    # by signature and bytecode, not by path; were that to change, this run would just
    # recompile, and pass more slowly).
    seeded = site / "fastnn" / "kernels" / "__pycache__"
    seeded.mkdir(exist_ok=True)
    for f in concurrent_run["cache"].rglob("*.nb[ic]"):
        shutil.copy2(f, seeded / f.name)
    result, info, stderr = run(
        site, tmp_path / "out", "float64",
        child_env(site, NUMBA_CACHE_DIR=unwritable_dir(tmp_path)))
    check_correct(result, "float64")
    for key in result:
        np.testing.assert_array_equal(result[key], concurrent_run["results"][0][0][key],
                                      strict=True)


EVERY_ENTRY = textwrap.dedent("""
    import json, sys
    import numpy as np
    import numba
    from numba.core import event

    compiled = []  # every function Numba compiles in this process (none, from a warm cache)

    class Count(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__qualname__)

        def on_end(self, ev):
            pass

    event.register("numba:compile", Count())
    import fastnn
    K = fastnn.kernels
    out = sys.argv[1]
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 2))
    res = {}
    for dt in ("float64", "float32"):
        w = [(rng.standard_normal((5, 6)) / 3).astype(dt), (rng.standard_normal((6, 2)) / 3).astype(dt)]
        b = [np.zeros(6, dt), np.zeros(2, dt)]
        res["sgd_" + dt] = fastnn.train(x, y, w, b, loss="mse", lr=0.01, epochs=3,
                                        batch_size=1, shuffle=True, seed=3)
        res["w_" + dt] = w[0]
        res["pred_" + dt] = fastnn.predict(x, w, b)
    w = [rng.standard_normal((5, 6)), rng.standard_normal((6, 2))]
    res["gradcheck"] = np.array([fastnn.gradcheck(x, y, w, activation="tanh")])
    try:  # the compiled loop stops on a non-finite loss
        fastnn.train(x * 1e200, y, w, lr=1.0, epochs=5)
        res["diverged_at"] = np.array([-1])
    except fastnn.DivergenceError as exc:
        res["diverged_at"] = np.array([exc.epoch])
    # every path: one-row steps above, minibatches with an optimizer and validation, Gram
    wide_x, wide_y = rng.standard_normal((8, 40)), rng.standard_normal((8, 3))
    for dt in ("float64", "float32"):
        w = [(rng.standard_normal((5, 6)) / 3).astype(dt), (rng.standard_normal((6, 2)) / 3).astype(dt)]
        res["adam_" + dt] = fastnn.train(x, y, w, optimizer=fastnn.Adam(0.01), epochs=3,
                                         batch_size=7, validation=(x[:9], y[:9]),
                                         early_stopping=2).loss
        w = [(rng.standard_normal((40, 16)) / 7).astype(dt), (rng.standard_normal((16, 3)) / 4).astype(dt)]
        res["gram_" + dt] = fastnn.train(wide_x, wide_y, w, lr=0.01, epochs=3)
    # rates near divergence on the 5-4-4-1 seed network: a one-ulp difference between
    # compiled and cached code grows to a visible one within 300 epochs
    from fastnn._workloads import WORKLOADS
    seed = WORKLOADS["mlp3_gd"].build(np.dtype("float64"))
    w, b = seed.copy_params()
    res["sensitive"] = fastnn.train(seed.x, seed.y, w, b, **dict(seed.train_kwargs(300), lr=1.78))
    w, b = seed.copy_params()
    w, b = [np.stack([a] * 3) for a in w], [np.stack([a] * 3) for a in b]
    res["sensitive_many"] = fastnn.train_many(seed.x, seed.y, w, b, **dict(
        seed.train_kwargs(300), lr=np.array([1.5, 1.78, 2.0])), on_divergence="freeze")
    loaded_only = list(compiled)
    # a new compilation after the cached loads still works (Numba refreshes its context)
    res["fresh"] = np.array([numba.njit(lambda a: np.linalg.norm(np.sort(a)))(x[0])])
    # new compiled code calling fastnn's kernels, which the second run loads from the cache
    # (link-only: as bitcode) to link into it
    @numba.njit
    def user(z, d, h, w, b):
        K.activation_forward(z, K.TANH)
        K.activation_backward(d, z, K.TANH)
        K.dense_forward(h[0], z, w, b, K.SIGMOID, False)  # kernels calling kernels
        K.dense_forward(h[1], z, w, b, K.SIGMOID, True)
        return K.network.all_finite(d.ravel())
    res["user_z"], res["user_d"] = x[:6].T.copy(), np.ones((5, 6))
    res["user_h"], res["user_w"] = np.empty((2, 3, 6)), rng.standard_normal((5, 3))
    res["user_ok"] = np.array([user(res["user_z"], res["user_d"], res["user_h"],
                                    res["user_w"], np.arange(3.0))])
    np.savez(out, **res)
    entries = (K.loop.run_epochs, K.network.predict_rows, K.network.loss_and_grad)
    print(json.dumps({"compiled": loaded_only,
                      "stats": {e.py_func.__name__: [sum(e.stats.cache_hits.values()),
                                                     sum(e.stats.cache_misses.values())]
                                for e in entries}}))
""")


def test_every_entry_point_from_a_warm_cache(site, tmp_path):
    # fastnn loads cached code without Numba's full context refresh (the first call's
    # main cost); a fresh process that only loads must still run every compiled entry
    # point correctly, and compile new code afterwards. And loaded code must compute
    # what the compiled code computed, bitwise: a Dask worker with a warm cache and a
    # client that compiles must agree.
    env = child_env(site, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    script = tmp_path / "every.py"
    script.write_text(EVERY_ENTRY)
    runs = []
    for i in range(2):  # the first run compiles everything, the second only loads
        proc = subprocess.run([sys.executable, str(script), str(tmp_path / f"r{i}")], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        with np.load(tmp_path / f"r{i}.npz") as f:
            runs.append(({k: f[k] for k in f.files}, json.loads(proc.stdout.splitlines()[-1])))
    (first, _), (loaded, info) = runs
    assert info["compiled"] == [], info["compiled"]  # nothing compiled: all from the cache
    for name, (hits, misses) in info["stats"].items():
        assert hits > 0 and misses == 0, (name, info)
    for key in first:  # the same code, compiled or loaded: bitwise the same results
        np.testing.assert_array_equal(loaded[key], first[key], strict=True)
    # and right: against the reference, in this process
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 2))
    for dt in ("float64", "float32"):
        w = [(rng.standard_normal((5, 6)) / 3).astype(dt), (rng.standard_normal((6, 2)) / 3).astype(dt)]
        b = [np.zeros(6, dt), np.zeros(2, dt)]
        hist = reference.train(x, y, w, b, loss="mse", lr=0.01, epochs=3, batch_size=1,
                               shuffle=True, seed=3)
        np.testing.assert_allclose(loaded["sgd_" + dt], hist, rtol=RTOL[dt])
        np.testing.assert_allclose(loaded["w_" + dt], w[0], rtol=RTOL[dt], atol=RTOL[dt])
        np.testing.assert_allclose(loaded["pred_" + dt], reference.predict(x, w, b),
                                   rtol=RTOL[dt], atol=RTOL[dt])
    assert loaded["gradcheck"][0] < 1e-6
    assert loaded["diverged_at"][0] >= 0
    assert loaded["fresh"][0] == np.linalg.norm(np.sort(x[0]))
    np.testing.assert_allclose(loaded["user_z"], np.tanh(x[:6].T), rtol=1e-12)
    np.testing.assert_allclose(loaded["user_d"], 1 - np.tanh(x[:6].T) ** 2, rtol=1e-12)
    z = loaded["user_w"].T @ np.tanh(x[:6].T) + np.arange(3.0)[:, None]
    np.testing.assert_allclose(loaded["user_h"], [1 / (1 + np.exp(-z))] * 2, rtol=1e-12)
    assert loaded["user_ok"][0]


def test_the_numba_internals_fastnn_relies_on_exist():
    # kernels/_numba_private.py is the one place fastnn uses Numba internals. A Numba
    # release that renames one must fail here, loudly, rather than turn every cached load
    # into a recompilation (pyproject.toml pins the Numba range this was tested with).
    from fastnn.kernels import _numba_private
    assert _numba_private.missing_internals() == []


def test_compiled_only_kernels_are_link_only_and_run_from_python():
    # Kernels called only from compiled code have no Python wrappers and no machine code
    # of their own: their callers link in and optimize their code (kernels/_numba_private.py).
    # From Python, such a kernel runs a twin compiled with a Python entry point. The entry
    # points fastnn calls from Python stay ordinary Numba functions.
    import inspect

    import numba

    import fastnn.kernels as K
    from fastnn.kernels import _numba_private
    kernels = {}
    for module in (K.activations, K.blas, K.dense, K.gram, K.loop, K.losses, K.network,
                   K.optim, K.sample, K.small, K.vmath):
        for name, obj in inspect.getmembers(module, lambda o: hasattr(o, "targetoptions")):
            if obj.py_func.__module__ == module.__name__ and not obj.targetoptions.get("inline"):
                kernels[name] = obj
    roots = {"run_epochs", "predict_rows", "loss_and_grad"}
    assert roots | {"network_forward", "activation_forward", "gemm"} <= set(kernels)
    for name, kernel in kernels.items():
        assert isinstance(kernel, _numba_private.CompiledOnly) == (name not in roots), name
        assert bool(kernel.targetoptions.get("no_cpython_wrapper")) == (name not in roots), name
    # compiled code calling one (compiled now, or loaded from the cache): its library is
    # link-only and has no address; the caller's library is an ordinary one
    caller = numba.njit(lambda a: K.network.all_finite(a))
    assert caller(np.array([1.0, 2.0])) and not caller(np.array([1.0, np.nan]))
    (own,) = K.network.all_finite.overloads.values()
    (outer,) = caller.overloads.values()
    assert _numba_private.link_only(own.library) and not _numba_private.link_only(outer.library)
    assert own.library.get_pointer_to_function(own.fndesc.mangled_name) == 0
    # and from Python, through its twin
    assert K.network.all_finite(np.array([3.0])) and not K.network.all_finite(np.array([np.inf]))
    assert not _numba_private.link_only(
        next(iter(K.network.all_finite._fastnn_twin.overloads.values())).library)


def test_threads_making_the_first_python_call_share_one_twin(monkeypatch):
    # two threads calling a compiled-only kernel from Python for the first time build one
    # twin between them (so it compiles once); the build is slowed to widen the race
    import threading
    import time

    from fastnn.kernels import _numba_private
    from fastnn.kernels._jit import jit

    def twice(a):
        return 2.0 * a[0]
    kernel = jit(twice)
    built = []

    def slow_twin(dispatcher):
        built.append(dispatcher)
        time.sleep(0.2)
        return original(dispatcher)
    original = _numba_private._python_twin
    monkeypatch.setattr(_numba_private, "_python_twin", slow_twin)
    start, results = threading.Barrier(2), []

    def call():
        start.wait()
        results.append(kernel(np.array([1.5])))
    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [3.0, 3.0] and len(built) == 1


def test_owned_copies_keep_numba_reference_count_pruning(tmp_path):
    # own_copies renames the callee copies a kernel owns only after its module passes:
    # Numba's reference-count pruning finds NRT_incref by name, and renamed before the
    # passes, the per-sample path kept its increfs (1.3x slower; docs/design.md).
    script = textwrap.dedent("""
        import re
        import numpy as np
        import fastnn
        from fastnn.kernels import sample
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
        w, b = [rng.standard_normal((3, 4)), rng.standard_normal((4, 1))], None
        fastnn.train(x, y, w, b, lr=0.01, epochs=1, batch_size=1)
        (compiled,) = sample.sample_epoch.overloads.values()
        ir = str(compiled.library._get_module_for_linking())
        print(len(re.findall(r"call[^\\n]*@NRT_(?:incref|decref)", ir)), ".own." in ir)
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "True"]  # pruned, and the owned copies renamed
