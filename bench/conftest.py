"""pytest setup for bench/: shared fixtures, machine info, a closing summary.

* ``fastnn_warm`` (session): fastnn's kernels compiled or loaded for both
  dtypes before any benchmark, so no JIT compilation is ever timed.
* ``oracles`` (session): fastnn.reference results per workload, computed once.
* The JSON written by ``--benchmark-json`` gets ``machine_info["fastnn"]``:
  CPU model, cores, library versions and BLAS, read by ``bench/report.py``.
* After the run, a short summary of medians, ratios and start-up numbers is
  printed below pytest-benchmark's tables.
"""

import os
import platform
import sys
from importlib import metadata

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as H  # noqa: E402

_RESULTS = []  # (group, impl, median seconds, extra_info) of every finished benchmark


@pytest.fixture(scope="session")
def fastnn_warm():
    H.warm_fastnn()


@pytest.fixture(scope="session")
def oracles():
    return {}


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
    for dist in ("numpy", "numba", "scipy", "llvmlite", "fastnn", "pytest-benchmark",
                 "torch", "jax", "jaxlib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def blas_info():
    """NumPy's BLAS (the NumPy loop and the gemm-floor) and SciPy's (fastnn's compiled kernels)."""
    info = {}
    try:
        import numpy as np
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["numpy"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict mode
        pass
    try:
        import scipy
        cfg = scipy.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["scipy"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:
        pass
    return info


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["fastnn"] = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "versions": library_versions(),
        "blas": blas_info(),
        "threads_env": {k: os.environ[k] for k in
                        ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                         "NUMBA_NUM_THREADS") if k in os.environ},
        "settings": {"row_seconds": H.ROW_SECONDS, "min_rounds": H.MIN_ROUNDS,
                     "max_rounds": H.MAX_ROUNDS},
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield
    bench = item.funcargs.get("benchmark") if hasattr(item, "funcargs") else None
    stats = getattr(bench, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None and stats.stats.rounds:
        _RESULTS.append((bench.group, bench.extra_info.get("impl", bench.name),
                         stats.stats.median, dict(bench.extra_info)))


def _ms(seconds):
    from report import fmt_time
    return fmt_time(seconds)


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("fastnn benchmark summary (medians of this run)")
    groups = {}
    for group, impl, median, extra in _RESULTS:
        groups.setdefault(group, {})[impl] = (median, extra)
    for group, rows in groups.items():
        if group.startswith("startup"):
            continue
        parts = [f"{impl} {_ms(m)}" for impl, (m, _) in rows.items()]
        ratios = []
        f = rows.get("fastnn", (None,))[0]
        if f:
            for other, text in (("numpy", "numpy/fastnn"), ("jax", "jax/fastnn"),
                                ("torch", "torch/fastnn")):
                if other in rows:
                    ratios.append(f"{text} {rows[other][0] / f:.2f}x")
            if "gemm-floor" in rows:
                ratios.append(f"fastnn/gemm-floor {f / rows['gemm-floor'][0]:.2f}x")
        tr.write_line(f"{group:24s} " + ", ".join(parts) + ("  |  " + ", ".join(ratios) if ratios else ""))
    for group, rows in groups.items():
        if not group.startswith("startup"):
            continue
        for impl, (median, extra) in rows.items():
            derived = extra.get("derived", {})
            text = ", ".join(f"{k} {_ms(v)}" for k, v in derived.items())
            tr.write_line(f"{group:24s} {impl}: subprocess {_ms(median)}" + (f"; {text}" if text else ""))
