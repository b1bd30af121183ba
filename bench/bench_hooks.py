"""The ``hooks`` group: what a callback after every epoch, or ``print_every=1``, costs.

Cases: the four seed workloads in float64. Rows: ``fastnn`` (no hook),
``fastnn-callback`` (a callback that does nothing, after every epoch) and
``fastnn-print`` (``print_every=1``, printed into a sink). Every row is checked
against fastnn.reference before timing: hooks never change the numbers. Goals:
a callback or print_every=1 costs <= 1.3x relu2's run and <= 2.5x mlp3_gd's.

Run: ``pytest bench/bench_hooks.py --benchmark-only`` (~1 minute here).
"""

import pytest

import _groups as G

CASES = G.hooks_cases()
ROWS = [(case, label) for case in CASES for label, _, _ in case.rows]


@pytest.mark.parametrize("case,row", ROWS, ids=[f"{c.name}-{r}" for c, r in ROWS])
def test_hooks(benchmark, bench_row, case, row):
    bench_row(benchmark, case, row)
