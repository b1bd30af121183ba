"""The seed workloads: one group per workload and dtype, one row per implementation.

Run from the repository root (a plain ``pytest`` skips them)::

    pytest bench/bench_workloads.py --benchmark-only           # ~6 minutes here
    pytest bench/bench_workloads.py --benchmark-only -k "relu2 and float64"

Rows: ``fastnn``, ``fastnn-nocheck`` (check_finite=False), ``numpy``
(fastnn.reference.train), ``gemm-floor`` (only the NumPy loop's matrix
products), and ``torch`` / ``jax`` when importable. Each row is verified
against fastnn.reference and warmed up before timing, and its last timed
result is checked again.
"""

import pytest

import _groups as G

CASES = G.seed_cases()
ROWS = [(case, label) for case in CASES for label, _, _ in case.rows]


@pytest.mark.parametrize("case,row", ROWS, ids=[f"{c.name}-{r}" for c, r in ROWS])
def test_seed(benchmark, bench_row, case, row):
    bench_row(benchmark, case, row)
