"""pytest setup for bench/: one BLAS thread, the row fixture, machine info, a closing summary.

Run from the repository root (a plain ``pytest`` skips every benchmark; only the
grid's quick structure test runs)::

    pytest --benchmark-only                                   # everything in bench/
    pytest bench/bench_grid.py --benchmark-only -k "b1_"      # part of the grid
    pytest --benchmark-only --benchmark-json=bench/results/pytest.json

* One BLAS thread for every row: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS /
  MKL_NUM_THREADS default to 1 before NumPy loads (a value you set wins), and
  when benchmarks run, threadpoolctl caps what is already loaded; torch rows call
  ``torch.set_num_threads(1)``.
* ``bench_row`` (fixture): verify a case's row against fastnn.reference, then
  time it with ``benchmark.pedantic``. Rounds fill FASTNN_BENCH_SECONDS (1.5 s)
  within [FASTNN_BENCH_MIN_ROUNDS, FASTNN_BENCH_MAX_ROUNDS] (3, 25).
* ``--benchmark-json`` files get ``machine_info["fastnn"]`` (CPU, versions, BLAS
  and its threads), read by ``bench/report.py``.
"""

import os
import sys

for _var, _value in (("OPENBLAS_NUM_THREADS", "1"), ("OMP_NUM_THREADS", "1"),
                     ("MKL_NUM_THREADS", "1"),
                     ("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")):
    os.environ.setdefault(_var, _value)  # before NumPy loads its BLAS: one thread per row

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402

ROW_SECONDS = float(os.environ.get("FASTNN_BENCH_SECONDS", "1.5"))
MIN_ROUNDS = int(os.environ.get("FASTNN_BENCH_MIN_ROUNDS", "3"))
MAX_ROUNDS = int(os.environ.get("FASTNN_BENCH_MAX_ROUNDS", "25"))
_RESULTS = []   # (group, row, median seconds) of every finished benchmark
_LIMITS = []    # the threadpoolctl limit, kept alive for the session


def benchmarks_run(config):
    return bool(config.getoption("benchmark_only", False)
                or not config.getoption("benchmark_skip", False))


def pytest_configure(config):
    if benchmarks_run(config):
        import _harness as H
        _LIMITS.append(H.one_blas_thread())


@pytest.fixture(scope="session")
def oracles():
    import _harness as H
    return H.Oracles()


@pytest.fixture
def bench_row(oracles):
    """bench_row(benchmark, case, label): verify, warm up, then time one row of a case."""
    import _harness as H
    from _impls import IMPLS, OPTIONAL

    def run(benchmark, case, label):
        _, impl_name, build = next(r for r in case.rows if r[0] == label)
        if impl_name in OPTIONAL:
            pytest.importorskip(OPTIONAL[impl_name])
        problem = build()
        row = H.prepare(label, IMPLS[impl_name], problem, oracles)  # verified and warm
        benchmark.group = case.name
        benchmark.extra_info.update(problem.describe(), impl=label, implementation=impl_name,
                                    case_group=case.group, verified=row.verified)
        rounds = H.rounds_for(row.seconds, ROW_SECONDS, MIN_ROUNDS, MAX_ROUNDS)
        result = benchmark.pedantic(row.impl.run, setup=row.impl.setup, rounds=rounds,
                                    iterations=1)
        unpacked = row.impl.unpack(result)
        if unpacked is not None and problem.verification() is problem and impl_name != "sklearn":
            H.check_training(f"{label} (last timed round)", problem, unpacked,
                             oracles.get(problem)[0])
    return run


def pytest_benchmark_update_machine_info(config, machine_info):
    import _harness as H
    machine_info["fastnn"] = H.machine_info()
    machine_info["fastnn"]["settings"] = {"row_seconds": ROW_SECONDS, "min_rounds": MIN_ROUNDS,
                                          "max_rounds": MAX_ROUNDS}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield
    bench = item.funcargs.get("benchmark") if hasattr(item, "funcargs") else None
    stats = getattr(getattr(bench, "stats", None), "stats", None)
    if stats is not None and stats.rounds:
        _RESULTS.append((bench.group, bench.extra_info.get("impl", bench.name), stats.median))


def pytest_terminal_summary(terminalreporter):
    """Medians and the usual ratios of every group, below pytest-benchmark's tables."""
    if not _RESULTS:
        return
    groups = {}
    for group, impl, median in _RESULTS:
        groups.setdefault(group, {})[impl] = median
    tr = terminalreporter
    tr.section("fastnn benchmark summary (medians of this run)")
    for group, rows in groups.items():
        parts = [f"{impl} {median * 1e3:.3g} ms" for impl, median in rows.items()]
        f = rows.get("fastnn")
        ratios = [f"{other}/fastnn {rows[other] / f:.3g}x" for other in ("numpy", "torch", "jax",
                                                                          "sklearn")
                  if f and other in rows]
        if f and "gemm-floor" in rows:
            ratios.append(f"fastnn/gemm-floor {f / rows['gemm-floor']:.3g}x")
        if "relu" in rows:  # an act: group
            ratios += [f"{a}/relu {rows[a] / rows['relu']:.3g}x" for a in ("sigmoid", "tanh")
                       if a in rows]
        tr.write_line(f"{group:44s} " + ", ".join(parts) + ("  |  " + ", ".join(ratios)
                                                             if ratios else ""))
