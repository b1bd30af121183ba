"""Training benchmarks: one group per workload and dtype, one row per implementation.

Run from the repository root (a plain ``pytest`` skips them)::

    pytest --benchmark-only                       # everything in bench/
    pytest bench/bench_workloads.py --benchmark-only -k "relu2 and float64"

Rows: ``fastnn``, ``numpy`` (fastnn.reference.train), ``gemm-floor`` (only the
NumPy loop's matrix products, see ``_harness.GemmFloor``), and ``torch`` /
``jax`` when importable (``pip install -e ".[compare]"``). Before a row is
timed, its implementation has been warmed up and its result (loss history and
final parameters) checked against fastnn.reference; the last timed round's
result is checked again. Each round trains fresh copies of the initial
parameters, made by ``setup`` outside the timing.
"""

import time

import pytest

import _harness as H

CASES = [(w, dt, impl) for w in H.WORKLOADS for dt in H.DTYPES for impl in H.IMPLS]
SWEEP = [(h, impl) for h in H.SWEEP_WIDTHS for impl in ("fastnn", "numpy", "gemm-floor")]


def _bench(benchmark, problem, impl_name, oracles, group):
    if impl_name in H.OPTIONAL:
        pytest.importorskip(H.OPTIONAL[impl_name])
    key = (problem.workload, problem.dtype)
    if key not in oracles:
        oracles[key] = H.run_oracle(problem)
    oracle, oracle_seconds = oracles[key]
    impl = H.IMPLS[impl_name](problem)
    label = f"{group} {impl_name}"

    # Verify before timing (this also warms up JITs and thread pools).
    if impl_name == "numpy":
        # The numpy row *is* the oracle (fastnn.reference.train): its run above
        # is the check, and its time sizes the rounds.
        seconds = oracle_seconds
    elif impl_name == "gemm-floor":
        n_products = impl.floor.verify()
        benchmark.extra_info["products"] = n_products
        args, kwargs = impl.setup()
        t0 = time.perf_counter()
        impl.run(*args, **kwargs)
        seconds = time.perf_counter() - t0
    else:
        args, kwargs = impl.setup()
        t0 = time.perf_counter()
        result = impl.run(*args, **kwargs)
        seconds = time.perf_counter() - t0
        H.check_training(label, problem, impl.unpack(result), oracle)
        if impl.needs_warm_estimate:  # the first run compiled: time a warm one
            args, kwargs = impl.setup()
            t0 = time.perf_counter()
            impl.run(*args, **kwargs)
            seconds = time.perf_counter() - t0

    rounds = H.choose_rounds(seconds)
    benchmark.group = group
    benchmark.extra_info.update(
        workload=problem.workload, dtype=problem.dtype, impl=impl_name,
        epochs=problem.kwargs["epochs"], steps_per_epoch=problem.steps_per_epoch,
        widths=problem.widths, gemm_flops=problem.gemm_flops(), description=problem.note,
        verified=True, rtol=H.RTOL[problem.dtype])
    result = benchmark.pedantic(impl.run, setup=impl.setup, rounds=rounds, iterations=1)
    if impl_name != "gemm-floor":
        H.check_training(label + " (last timed round)", problem, impl.unpack(result), oracle)


@pytest.mark.parametrize("workload,dtype,impl", CASES, ids=["-".join(c) for c in CASES])
def test_workload(benchmark, fastnn_warm, oracles, workload, dtype, impl):
    problem = H.make_problem(workload, dtype)
    _bench(benchmark, problem, impl, oracles, f"{workload}-{dtype}")


@pytest.mark.parametrize("hidden,impl", SWEEP, ids=[f"h{h}-{i}" for h, i in SWEEP])
def test_width_sweep(benchmark, fastnn_warm, oracles, hidden, impl):
    """relu2's shape with hidden width 16..1024, float64, fewer epochs."""
    problem = H.make_problem("relu2", "float64", hidden=hidden, epochs=H.SWEEP_EPOCHS)
    benchmark.extra_info["sweep_hidden"] = hidden
    _bench(benchmark, problem, impl, oracles, f"sweep-h{hidden}-float64")
