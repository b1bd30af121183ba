"""The ``check`` group: what ``check_finite=True`` (the default) costs.

Cases: the four seed workloads in float64. Rows: ``fastnn`` and ``fastnn-nocheck``
(``check_finite=False``), the seeds group's two fastnn rows, timed here without the
NumPy and peer rows, whose runs of up to seconds leave the seeds group few rounds.
Goal: at most 2%.

Run: ``pytest bench/bench_check.py --benchmark-only`` (~1 minute here).
"""

import pytest

import _groups as G

CASES = G.check_cases()
ROWS = [(case, label) for case in CASES for label, _, _ in case.rows]


@pytest.mark.parametrize("case,row", ROWS, ids=[f"{c.name}-{r}" for c, r in ROWS])
def test_check(benchmark, bench_row, case, row):
    bench_row(benchmark, case, row)
